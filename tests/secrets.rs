//! Database settings from Secrets Manager (moto on 127.0.0.1 speaks it), overriding the
//! individual settings; missing and malformed secrets; the password never printed.

mod common;

use common::s3::{aws_env, request, s3};
use common::*;

/// Creates a secret on the test server and returns its ARN.
fn create_secret(name: &str, value: &str) -> String {
    let body = serde_json::json!({ "Name": name, "SecretString": value }).to_string();
    let r = request(
        s3().port,
        "POST",
        "/",
        &[
            ("X-Amz-Target", "secretsmanager.CreateSecret"),
            ("Content-Type", "application/x-amz-json-1.1"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/secretsmanager/aws4_request, \
                 SignedHeaders=host, Signature=0",
            ),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    v["ARN"].as_str().unwrap().to_string()
}

fn loader(db: &Db) -> std::process::Command {
    let mut c = db.loader();
    for (k, v) in aws_env(&s3().endpoint) {
        c.env(k, v);
    }
    c
}

const PASSWORD: &str = "pw-5ecret-never-printed";

#[test]
fn the_secret_overrides_the_individual_settings() {
    let db = Db::new("secret");
    let value = serde_json::json!({
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": cluster().port,
        "dbname": db.name,
        "username": "postgres",
        "password": PASSWORD,
    });
    let arn = create_secret("cusip/db-ok", &value.to_string());
    // The individual settings point nowhere; the secret says where to go.
    let (code, out, err) = run(loader(&db)
        .arg(testdata("CED01-15R.PIP"))
        .env("CUSIP_DB_HOST", "db.invalid")
        .env("CUSIP_DB_NAME", "wrong")
        .env("CUSIP_DB_USER", "nobody")
        .env("CUSIP_DB_SECRET_ARN", &arn));
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("issuer"), 300);
    assert!(
        !out.contains(PASSWORD) && !err.contains(PASSWORD),
        "{out}{err}"
    );
    assert!(!db
        .sql("SELECT load_journal::text FROM load_journal")
        .contains(PASSWORD));
    // Port as a string, as hand-made secrets have it, works too.
    let value = serde_json::json!({ "host": "127.0.0.1", "port": cluster().port.to_string(), "dbname": db.name, "username": "postgres" });
    let arn = create_secret("cusip/db-string-port", &value.to_string());
    let (code, _, err) = run(loader(&db)
        .arg(testdata("CED01-15R.PIP"))
        .arg("--force")
        .env("CUSIP_DB_SECRET_ARN", &arn));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_missing_or_malformed_secret_is_a_clear_configuration_error() {
    let db = Db::new("badsecret");
    let (code, _, err) = run(loader(&db).arg(testdata("CED01-15R.PIP")).env(
        "CUSIP_DB_SECRET_ARN",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:cusip/none-AbCdEf",
    ));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    let arn = create_secret("cusip/db-malformed", &format!("host=x password={PASSWORD}"));
    let (code, out, err) = run(loader(&db)
        .arg(testdata("CED01-15R.PIP"))
        .env("CUSIP_DB_SECRET_ARN", &arn));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("is not JSON of the RDS shape"), "{err}");
    assert!(
        !out.contains(PASSWORD) && !err.contains(PASSWORD),
        "the secret's content is never shown: {err}"
    );
    let arn = create_secret("cusip/db-badport", r#"{"host": "h", "port": "eighty"}"#);
    let (code, _, err) = run(loader(&db)
        .arg(testdata("CED01-15R.PIP"))
        .env("CUSIP_DB_SECRET_ARN", &arn));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("\"port\" is not a port number"), "{err}");
    assert_eq!(db.count("issuer"), 0);
}
