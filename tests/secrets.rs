//! Database settings from Secrets Manager (moto on 127.0.0.1 speaks it), overriding the
//! individual settings; missing and malformed secrets; the password never printed.

mod common;

use common::s3::{aws_env, create_secret, s3};
use common::*;

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
