//! The database refusing a load, and secrets kept out of every output.
//!
//! Each refusal happens to a database that already holds a day: the refused file leaves
//! the master and code tables exactly as they were (same rows and same physical row
//! versions), the exit code is the documented one, the message says what to fix, and the
//! same command succeeds once the obstacle is gone. Run by `make test-faults`, which
//! prints the scorecard.

mod common;

use std::process::Command;

use common::*;

/// Granted advisory locks in the test's own database (tests share the cluster).
const MY_ADVISORY_LOCKS: &str = "locktype = 'advisory' AND granted \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// Another session holding the issuer table's load lock (class "CUSP", object 1) until
/// `release` ends it server-side (its backend would sleep on with the lock if psql died).
fn hold_issuer_lock(db: &Db) -> std::process::Child {
    let c = cluster();
    let holder = psql_cmd(&c.bin, c.port, &db.name)
        .args([
            "-c",
            "SELECT pg_advisory_lock(1129665360, 1)",
            "-c",
            "SELECT pg_sleep(30)",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db
        .sql(&format!(
            "SELECT count(*) FROM pg_locks WHERE {MY_ADVISORY_LOCKS}"
        ))
        .trim()
        == "0"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock was never taken"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    holder
}

fn release(db: &Db, mut holder: std::process::Child) {
    db.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE {MY_ADVISORY_LOCKS}"
    ));
    let _ = holder.wait();
}

/// A database that already holds day 01-15: the state a refusal must leave untouched.
fn loaded(tag: &str) -> Db {
    let db = Db::new(tag);
    let (code, _, err) = run(db.loader().args(day("01-15")));
    assert_eq!(code, 0, "{err}");
    db
}

/// Runs a load that must be refused: its exit code, every needle in stderr, and a
/// snapshot identical to the one before.
fn refused(db: &Db, mut cmd: Command, code: i32, needles: &[&str]) {
    let before = db.snapshot();
    let (got, _, err) = run(&mut cmd);
    assert_eq!(got, code, "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    assert_eq!(db.snapshot(), before, "a refused load changed the database");
}

/// An application role with the documented grants, named after the database.
fn app_role(db: &Db) -> String {
    let role = format!("app_{}", db.name);
    db.sql(&least_privilege_grants(&role, &db.name));
    role
}

#[test]
fn a_role_without_rights_on_a_table_is_refused_with_77() {
    let db = loaded("norights");
    let role = app_role(&db);
    let as_app = |args: &[std::path::PathBuf]| {
        let mut c = db.loader();
        c.env("CUSIP_DB_USER", &role).args(args);
        c
    };
    let d16 = day("01-16");
    // 1. No UPDATE on issuer: the delta's changed issuers cannot be written.
    db.sql(&format!("REVOKE UPDATE ON issuer FROM {role}"));
    refused(&db, as_app(&d16), 77, &["42501", "issuer"]);
    // 2. No rights at all on issue_attribute (the issuer and issue files go in first).
    db.sql(&format!("GRANT UPDATE ON issuer TO {role}"));
    let (code, _, err) = run(&mut as_app(&d16[..2]));
    assert_eq!(code, 0, "{err}");
    db.sql(&format!("REVOKE ALL ON issue_attribute FROM {role}"));
    refused(&db, as_app(&d16[2..]), 77, &["42501", "issue_attribute"]);
    // Granted again, the same command finishes the day.
    db.sql(&format!(
        "GRANT SELECT, INSERT, UPDATE ON issue_attribute TO {role}"
    ));
    let (code, _, err) = run(&mut as_app(&d16));
    assert_eq!(code, 0, "{err}");
    assert_both_days(&db);
    score("database refusing: role without rights", 2, 2, 2, 0);
}

#[test]
fn a_lock_held_past_the_lock_timeout_fails_with_75() {
    let db = loaded("locktimeout");
    let holder = hold_issuer_lock(&db);
    let mut cmd = db.loader();
    cmd.args(day("01-16")).args(["--lock-timeout", "1"]);
    refused(&db, cmd, 75, &["waiting for the issuer load lock", "55P03"]);
    release(&db, holder);
    // Once the other session is gone the same command loads.
    let (code, _, err) = run(db.loader().args(day("01-16")).args(["--lock-timeout", "5"]));
    assert_eq!(code, 0, "{err}");
    assert_both_days(&db);
    score(
        "database refusing: lock held past --lock-timeout",
        1,
        1,
        1,
        0,
    );
}

#[test]
fn a_statement_past_the_statement_timeout_fails_with_75() {
    let db = loaded("stmttimeout");
    let holder = hold_issuer_lock(&db);
    // No lock timeout: the statement timeout is what ends the wait.
    let mut cmd = db.loader();
    cmd.args(day("01-16"))
        .args(["--lock-timeout", "0", "--statement-timeout", "1"]);
    refused(&db, cmd, 75, &["57014", "statement timeout"]);
    release(&db, holder);
    let (code, _, err) = run(db.loader().args(day("01-16")));
    assert_eq!(code, 0, "{err}");
    assert_both_days(&db);
    score("database refusing: statement timeout", 1, 1, 1, 0);
}

#[test]
fn a_least_privilege_role_loads_but_cannot_change_the_schema() {
    let db = Db::new("leastpriv");
    let role = app_role(&db);
    let as_app = || {
        let mut c = db.loader();
        c.env("CUSIP_DB_USER", &role);
        c
    };
    let (code, _, err) = run(as_app().args(day("01-15")));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(as_app().args(day("01-16")));
    assert_eq!(code, 0, "{err}");
    assert_both_days(&db);
    let mut init = as_app();
    init.arg("--init-schema");
    refused(
        &db,
        init,
        77,
        &[
            "may not create objects in schema public",
            "applied by its owner",
        ],
    );
    score("least-privilege role: loads, no DDL", 1, 1, 1, 0);
}

/// Every way the run can fail with a password configured; each one's stdout, stderr and
/// (where the database was reached) every journal row must be free of it.
#[test]
fn the_password_is_never_printed_nor_journaled() {
    const PW: &str = "hunter2-very-secret";
    let db = Db::new("secret");
    let c = cluster();
    let verbose = |cmd: &mut Command| {
        cmd.env("CUSIP_DB_PASSWORD", PW)
            .env("RUST_LOG", "trace")
            .env("CUSIP_LOG_FORMAT", "json");
    };
    let mut runs: Vec<(&str, Command, i32)> = Vec::new();
    // The server cannot be reached.
    let mut cmd = db.loader();
    verbose(&mut cmd);
    cmd.arg(testdata("CED01-15R.PIP"))
        .env("CUSIP_DB_PORT", free_port().to_string());
    runs.push(("unreachable", cmd, 69));
    // The server is reached and the data is bad: the failure goes into the journal.
    let mut cmd = db.loader();
    verbose(&mut cmd);
    cmd.arg(testdata("bad/badint-E.PIP"))
        .args(["--output", "json"]);
    runs.push(("bad data", cmd, 65));
    // The password inside a database URL naming a database that does not exist.
    let mut cmd = db.loader();
    verbose(&mut cmd);
    cmd.arg(testdata("CED01-15R.PIP")).args([
        "--database-url",
        &format!("postgresql://postgres:{PW}@127.0.0.1:{}/no_such_db", c.port),
    ]);
    runs.push(("url, no such database", cmd, 78));
    // The same URL, unreachable.
    let mut cmd = db.loader();
    verbose(&mut cmd);
    cmd.arg(testdata("CED01-15R.PIP")).args([
        "--database-url",
        &format!("postgresql://postgres:{PW}@127.0.0.1:{}/x", free_port()),
    ]);
    runs.push(("url, unreachable", cmd, 69));
    // Help and a usage error print the configuration's shape, never its values.
    let mut cmd = db.loader();
    verbose(&mut cmd);
    cmd.arg("--help");
    runs.push(("--help", cmd, 0));
    let mut cmd = db.loader();
    verbose(&mut cmd);
    cmd.arg("--no-such-flag");
    runs.push(("usage error", cmd, 64));
    let trials = runs.len() as u32;
    for (what, mut cmd, want) in runs {
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, want, "{what}: {err}");
        assert!(
            !out.is_empty() || !err.is_empty(),
            "{what}: no output to check"
        );
        assert!(
            !out.contains("hunter2") && !err.contains("hunter2"),
            "{what} printed the password:\n{out}{err}"
        );
    }
    let journal = db.sql("COPY (SELECT * FROM load_journal) TO STDOUT");
    assert!(
        journal.contains("failed"),
        "the bad file was journaled: {journal}"
    );
    assert!(!journal.contains("hunter2"), "{journal}");
    score(
        "secrets kept out of output and journal",
        trials,
        trials,
        trials,
        0,
    );
}
