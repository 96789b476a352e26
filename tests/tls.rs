//! TLS to PostgreSQL with libpq's sslmode meanings, against a cluster that accepts only
//! `hostssl` connections, with a CA and server certificate made for the test.

mod common;

use common::*;

fn ca(name: &str) -> String {
    cluster().dir.join(name).display().to_string()
}

fn tls_db(tag: &str) -> Db {
    use_tls();
    Db::new(tag)
}

fn load(db: &Db, extra: &[&str]) -> (i32, String, String) {
    run(db
        .loader()
        .arg(testdata("CED01-15R.PIP"))
        .arg("--force")
        .args(extra))
}

#[test]
fn verify_full_succeeds_with_the_right_ca_and_host() {
    let db = tls_db("verifyfull");
    let (code, _, err) = load(
        &db,
        &[
            "--host",
            "localhost",
            "--sslmode",
            "verify-full",
            "--sslrootcert",
            &ca("ca.crt"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("issuer"), 300);
    // The same through the environment.
    let (code, _, err) = run(db
        .loader()
        .arg(testdata("CED01-15R.PIP"))
        .env("CUSIP_DB_HOST", "localhost")
        .env("CUSIP_DB_SSLMODE", "verify-full")
        .env("CUSIP_DB_SSLROOTCERT", ca("ca.crt")));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_wrong_ca_fails_naming_the_real_cause() {
    let db = tls_db("wrongca");
    let (code, _, err) = load(
        &db,
        &[
            "--host",
            "localhost",
            "--sslmode",
            "verify-full",
            "--sslrootcert",
            &ca("wrong-ca.crt"),
        ],
    );
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("UnknownIssuer"), "the real cause: {err}");
    assert!(err.contains("not signed by a CA in --sslrootcert"), "{err}");
}

#[test]
fn a_wrong_host_name_fails_verify_full_but_passes_verify_ca() {
    let db = tls_db("wronghost");
    let (code, _, err) = load(
        &db,
        &[
            "--host",
            "127.0.0.1",
            "--sslmode",
            "verify-full",
            "--sslrootcert",
            &ca("ca.crt"),
        ],
    );
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("does not name the host \"127.0.0.1\""),
        "{err}"
    );
    let (code, _, err) = load(
        &db,
        &[
            "--host",
            "127.0.0.1",
            "--sslmode",
            "verify-ca",
            "--sslrootcert",
            &ca("ca.crt"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = load(
        &db,
        &[
            "--host",
            "127.0.0.1",
            "--sslmode",
            "verify-ca",
            "--sslrootcert",
            &ca("wrong-ca.crt"),
        ],
    );
    assert_eq!(code, 78, "verify-ca still checks the chain: {err}");
}

#[test]
fn require_prefer_and_allow_encrypt_without_a_ca() {
    let db = tls_db("require");
    for mode in ["require", "prefer", "allow"] {
        let (code, _, err) = load(&db, &["--sslmode", mode]);
        assert_eq!(code, 0, "{mode}: {err}");
    }
    // The server sees an encrypted session from the loader.
    let ssl = db.sql("SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE application_name = 'psql'");
    assert_eq!(ssl.trim(), "t");
}

#[test]
fn disable_against_a_tls_only_server_says_tls_is_required() {
    let db = tls_db("disable");
    let (code, _, err) = load(&db, &["--sslmode", "disable"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("the server requires TLS"), "{err}");
    let (code, _, err) = load(&db, &["--sslmode", "verify-full"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("--sslrootcert"), "{err}");
}

#[test]
fn a_database_url_carries_the_connection_and_tls_settings() {
    let db = tls_db("url");
    let url = format!(
        "postgresql://postgres@localhost:{}/{}?sslmode=verify-full&sslrootcert={}",
        cluster().port,
        db.name,
        ca("ca.crt")
    );
    let (code, _, err) = run(db
        .loader()
        .arg(testdata("CED01-15R.PIP"))
        .env("CUSIP_DB_HOST", "nowhere.invalid")
        .env("CUSIP_DB_NAME", "wrong")
        .env("CUSIP_DATABASE_URL", &url));
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("issuer"), 300);
    let wrong = url.replace("ca.crt", "wrong-ca.crt");
    let (code, _, err) = run(db
        .loader()
        .arg(testdata("CED01-15R.PIP"))
        .args(["--database-url", &wrong]));
    assert_eq!(code, 78, "{err}");
}
