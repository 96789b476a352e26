//! Access denied by the server: moto enforcing credentials (after a few free setup actions)
//! rejects the loader's keys, and the loader says what permissions it needs.

mod common;

use common::s3::{aws_env, request, S3Server};
use common::*;

#[test]
fn access_denied_is_one_actionable_line_and_exit_77() {
    // moto authenticates every request after the first N; spend them on setup.
    let server = S3Server::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "40")]);
    server.create_bucket("locked");
    let body = std::fs::read(testdata("CED01-15R.PIP")).unwrap();
    server.put("locked", "pif/CED01-15R.PIP", &body);
    let mut enforced = false;
    for _ in 0..60 {
        if request(server.port, "GET", "/locked?list-type=2", &[], b"").status == 403 {
            enforced = true;
            break;
        }
    }
    assert!(enforced, "moto never started enforcing credentials");

    let db = Db::new("denied");
    let mut cmd = db.loader();
    for (k, v) in aws_env(&server.endpoint) {
        cmd.env(k, v);
    }
    for args in [
        &["--s3-bucket", "locked", "--date", "2024-01-15"][..],
        &["--s3-bucket", "locked", "--s3-key", "pif/CED01-15R.PIP"][..],
    ] {
        let (code, _, err) = run(cmd.args(args));
        assert_eq!(code, 77, "{err}");
        assert!(err.contains("access denied"), "{err}");
        assert!(
            err.contains("s3:ListBucket")
                && err.contains("s3:GetObject")
                && err.contains("kms:Decrypt"),
            "{err}"
        );
        assert!(err.contains("bucket policy"), "cross-account hint: {err}");
        // The reason is logged once, as one ERROR line.
        assert_eq!(err.matches(" ERROR ").count(), 1, "one line: {err}");
        assert_eq!(err.matches("access denied").count(), 1, "once: {err}");
        cmd = db.loader();
        for (k, v) in aws_env(&server.endpoint) {
            cmd.env(k, v);
        }
    }
    assert_eq!(db.count("issuer"), 0);
}
