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

/// Over TLS the socket carries records, so the watchdog's count of the answers owed is kept
/// above TLS. A path that dies while the server runs the COMMIT (made long by a deferred
/// trigger the test adds to the journal) leaves the COMMIT's answer owed and the session
/// idle: exit 75 within twice `--net-timeout`, where counting by who spoke last waited for
/// ever (`tests/net.rs` has the same without TLS).
#[test]
fn a_dead_path_mid_commit_over_tls_ends_75_within_twice_the_timeout() {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let db = tls_db("deadcommit");
    db.script(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.status = 'loaded' THEN PERFORM pg_sleep(1.5); END IF; RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON load_journal \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
    );
    let fwd = common::forward::Forwarder::start(([127, 0, 0, 1], cluster().port).into());
    let net_timeout = Duration::from_secs(2);
    let mut child = db
        .loader()
        .arg(testdata("CED01-15R.PIP"))
        .env("CUSIP_DB_PORT", fwd.port.to_string())
        .args(["--sslmode", "require", "--net-timeout", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while db
        .sql(
            "SELECT count(*) FROM pg_stat_activity JOIN pg_stat_ssl USING (pid) \
             WHERE datname = current_database() AND application_name = 'cusip-loader' \
             AND state = 'active' AND ssl AND query LIKE 'COMMIT%'",
        )
        .trim()
        == "0"
    {
        assert!(
            child.try_wait().unwrap().is_none() && Instant::now() < deadline,
            "the COMMIT was never seen running"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    fwd.freeze();
    let frozen = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code().unwrap_or(-1);
        }
        if frozen.elapsed() > 6 * net_timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running {:?} after the path went dead",
                frozen.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = frozen.elapsed();
    let err = err.join().unwrap();
    assert_eq!(code, 75, "{err}");
    assert!(took < 2 * net_timeout, "took {took:?}:\n{err}");
    assert!(err.contains("stopped answering"), "{err}");
    assert!(err.contains("may have landed"), "{err}");
}
