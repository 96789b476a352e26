//! What an operator sees (issue 21): every message once and where the reader looks, JSON when
//! asked for, `.env`, variables that mean what their flags mean. Each test runs the real
//! binary and reads stdout and stderr apart.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn out(cmd: &mut Command) -> (i32, String, String) {
    run(cmd)
}

/// A loader with no database settings at all, in an empty directory.
fn bare() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cusip-loader"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(loader_cwd());
    c
}

#[test]
fn a_rejection_is_detailed_once_on_stdout_and_logged_once_on_stderr() {
    let db = Db::new("reject_once");
    let before = db.snapshot();
    let (code, stdout, stderr) = out(db.loader().arg(testdata("bad/badint-E.PIP")));
    assert_eq!(code, 65);
    assert_eq!(db.snapshot(), before);
    // stdout: the table, then the file's reason and each located problem, once.
    assert_eq!(
        stdout.matches("rejected, nothing loaded").count(),
        1,
        "{stdout}"
    );
    assert!(
        stdout
            .contains("badint-E.PIP line 3, column partial_maturity: \"TWELVE\" is not an integer"),
        "{stdout}"
    );
    assert!(!stdout.contains("badint-E.PIP: badint-E.PIP"), "{stdout}");
    assert!(
        !stdout.contains("error:"),
        "the run's error repeats the file's: {stdout}"
    );
    // A refused file's row: what was read, no write counts.
    let row = stdout
        .lines()
        .find(|l| l.starts_with("badint-E.PIP "))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[3..8], ["5", "-", "-", "-", "-"], "{row}");
    // stderr: log lines, one per event: the reason once, each problem once.
    assert_eq!(
        stderr.matches("rejected, nothing loaded").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("\"TWELVE\" is not an integer").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.lines().all(|l| l.starts_with("20")),
        "one line per event: {stderr}"
    );
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[test]
fn two_candidates_for_one_type_are_named_on_stdout() {
    let db = Db::new("two_candidates");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(testdata("CED01-16R.PIP"), dir.path().join("CED01-16R.PIP")).unwrap();
    std::fs::copy(testdata("CED01-16R.PIP"), dir.path().join("ced01-16r.pip")).unwrap();
    let (code, stdout, stderr) = out(db.loader().arg("--dir").arg(dir.path()).args([
        "--date",
        "2024-01-16",
        "--allow-missing",
    ]));
    assert_eq!(code, 65, "{stderr}");
    assert!(
        stdout.contains("CED01-16R.PIP") && stdout.contains("ced01-16r.pip"),
        "{stdout}"
    );
}

#[test]
fn usage_errors_are_one_short_message_on_stderr_and_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("issuers.txt");
    std::fs::write(&odd, b"x").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec![],
        vec![odd.display().to_string()],
        vec![
            testdata("CED01-15R.PIP").display().to_string(),
            "--dir".into(),
            "/tmp".into(),
        ],
        vec!["--bogus".into()],
    ];
    for args in cases {
        let (code, stdout, stderr) = out(bare().args(&args));
        assert_eq!(code, 64, "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert_eq!(stderr.matches("error:").count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Exit codes"), "{args:?}: {stderr}");
        assert!(stderr.lines().count() <= 8, "{args:?}: {stderr}");
    }
    // The exit-code table is --help's.
    let (code, stdout, _) = out(bare().arg("--help"));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("Exit codes:") && stdout.contains("143"),
        "{stdout}"
    );
}

#[test]
fn with_json_chosen_every_outcome_is_one_json_document_on_stdout() {
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (vec!["--output", "json", "--bogus"], vec![]),
        (vec!["--output=json"], vec![]),
        (vec!["--bogus"], vec![("CUSIP_OUTPUT", "json")]),
        (vec![], vec![("CUSIP_OUTPUT", "json")]),
    ];
    for (args, env) in cases {
        let mut c = bare();
        c.args(&args);
        for (k, v) in &env {
            c.env(k, v);
        }
        let (code, stdout, stderr) = out(&mut c);
        assert_eq!(code, 64, "{args:?} {env:?}: {stderr}");
        let v = summary(&stdout);
        assert_eq!(v["exit_code"], 64, "{stdout}");
        assert_eq!(v["ok"], false);
        assert!(v["error"].as_str().unwrap().len() > 10, "{stdout}");
    }
    // A rejection in JSON carries its problems, structured.
    let db = Db::new("json_reject");
    let (code, stdout, _) = out(db
        .loader()
        .env("CUSIP_OUTPUT", "json")
        .arg(testdata("bad/badint-E.PIP")));
    assert_eq!(code, 65);
    let v = summary(&stdout);
    assert_eq!(v["files"][0]["problems"][0]["line"], 3, "{stdout}");
    assert_eq!(v["files"][0]["problems"][0]["column"], "partial_maturity");
}

#[test]
fn a_directory_variable_with_a_date_loads_as_its_flag_would() {
    let db = Db::new("dir_variable");
    let (code, stdout, stderr) = out(db
        .loader()
        .env("CUSIP_FILE_DIR", testdata(""))
        .args(["--date", "2024-01-15"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.matches(" loaded").count(), 3, "{stdout}");
    // Both a bucket and a directory configured, and no source chosen: 78, naming the choice.
    let (code, stdout, stderr) = out(db
        .loader()
        .env("CUSIP_FILE_DIR", testdata(""))
        .env("CUSIP_S3_BUCKET", "b")
        .args(["--date", "2024-01-15"]));
    assert_eq!(code, 78, "{stdout}{stderr}");
    assert!(stderr.contains("CUSIP_FILE_SOURCE"), "{stderr}");
}

#[test]
fn dotenv_is_read_under_the_environment_and_the_flags_and_never_quoted() {
    let db = Db::new("dotenv");
    let dir = tempfile::tempdir().unwrap();
    // The real environment names the right database; .env a wrong one, which must lose.
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "CUSIP_DB_NAME=no_such_database\nCUSIP_FILE_DIR={}\n",
            testdata("").display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = out(db
        .loader()
        .current_dir(dir.path())
        .args(["--date", "2024-01-15"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("read settings from ./.env"), "{stderr}");
    assert!(!stderr.contains("no_such_database"), "{stderr}");
    assert_eq!(stdout.matches(" loaded").count(), 3, "{stdout}");
    // A flag wins over .env: --dir elsewhere.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = out(db
        .loader()
        .current_dir(dir.path())
        .arg("--dir")
        .arg(empty.path())
        .args(["--date", "2024-01-15"]));
    assert_eq!(code, 66, "{stderr}");
    // A line that does not parse: a warning that does not quote it, and the run goes on.
    std::fs::write(
        dir.path().join(".env"),
        "CUSIP_DB_PASSWORD=\"s3cr3t-never-logged\nNOT A LINE\n",
    )
    .unwrap();
    let (code, stdout, stderr) = out(db
        .loader()
        .current_dir(dir.path())
        .args(["--validate-only"])
        .arg(testdata("CED01-15R.PIP")));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("could not read ./.env"), "{stderr}");
    assert!(
        !stderr.contains("s3cr3t") && !stdout.contains("s3cr3t"),
        "{stderr}"
    );
    // No .env: nothing said about one.
    let (_, _, stderr) = out(db
        .loader()
        .arg("--validate-only")
        .arg(testdata("CED01-15R.PIP")));
    assert!(!stderr.contains(".env"), "{stderr}");
}

#[test]
fn validate_only_shows_what_it_read() {
    let (code, stdout, stderr) = out(bare()
        .args(["--validate-only"])
        .arg(testdata("CED01-15R.PIP")));
    assert_eq!(code, 0, "{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("CED01-15R.PIP"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[3], "300", "{row}");
    assert_ne!(cells[9], "-", "MB/s: {row}");
    assert_eq!(cells.last(), Some(&"valid"));
}

#[test]
fn a_database_without_the_schema_is_said_once() {
    let db = Db::empty("no_schema_once");
    let (code, stdout, stderr) = out(db.loader().args(day("01-15")));
    assert_eq!(code, 78, "{stderr}");
    let all = format!("{stdout}{stderr}");
    assert_eq!(
        all.matches("--init-schema").count(),
        2,
        "once per stream: {all}"
    );
    assert_eq!(stdout.matches("--init-schema").count(), 1, "{stdout}");
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert!(stdout.contains("not attempted"), "{stdout}");
    // A journal from before business dates: told to run --init-schema, nothing loaded.
    let db = Db::new("old_journal");
    db.sql("ALTER TABLE load_journal DROP COLUMN business_date");
    let before = db.snapshot();
    let (code, stdout, _) = out(db.loader().args(day("01-15")));
    assert_eq!(code, 78);
    assert!(stdout.contains("older than this loader"), "{stdout}");
    assert_eq!(db.snapshot(), before);
    assert_eq!(out(db.loader().arg("--init-schema")).0, 0);
    assert_eq!(out(db.loader().args(day("01-15"))).0, 0);
}

/// Snapshots a person reviews as a user would read them: `--help`, the table summary and
/// the JSON summary of a first day and a delta. What varies run to run (times, rates, paths,
/// memory) is masked; everything else must stay as reviewed.
mod snapshots {
    use super::*;

    #[test]
    fn help() {
        let (code, stdout, _) = out(bare().arg("--help"));
        assert_eq!(code, 0);
        insta::assert_snapshot!("help", stdout);
    }

    #[test]
    fn table_summary_of_a_day_and_its_delta() {
        let db = Db::new("snap_table");
        let (code, first, _) = out(db
            .loader()
            .arg("--dir")
            .arg(testdata(""))
            .args(["--date", "2024-01-15"]));
        assert_eq!(code, 0);
        let (code, delta, _) = out(db
            .loader()
            .arg("--dir")
            .arg(testdata(""))
            .args(["--date", "2024-01-16"]));
        assert_eq!(code, 0);
        let (code, rejected, _) = out(db.loader().arg(testdata("bad/badint-E.PIP")));
        assert_eq!(code, 65);
        // SECONDS and MB/S, the two columns before STATUS, vary (and so may their widths):
        // masked, with fixed spacing.
        insta::with_settings!({filters => vec![
            (r"\s+SECONDS\s+MB/S\s+STATUS", "  SECONDS  MB/S  STATUS"),
            (r"\s+\d+\.\d\d\s+\d+\.\d\s+(loaded|already loaded|FAILED)", "  S.SS  M.M  $1"),
        ]}, {
            insta::assert_snapshot!(
                "table",
                format!("$ --date 2024-01-15\n{first}\n$ --date 2024-01-16\n{delta}\n$ bad/badint-E.PIP\n{rejected}")
            );
        });
    }

    #[test]
    fn json_summary_of_a_delta() {
        let db = Db::new("snap_json");
        assert_eq!(
            out(db
                .loader()
                .arg("--dir")
                .arg(testdata(""))
                .args(["--date", "2024-01-15"]))
            .0,
            0
        );
        let (code, stdout, _) = out(db.loader().arg("--dir").arg(testdata("")).args([
            "--date",
            "2024-01-16",
            "--output",
            "json",
        ]));
        assert_eq!(code, 0);
        let v = summary(&stdout);
        insta::assert_json_snapshot!("json", v, {
            ".peak_rss_mb" => "[mb]",
            ".files[].source" => "[path]",
            ".files[].started_at" => "[time]",
            ".files[].seconds" => "[s]",
            ".files[].mb_per_s" => "[rate]",
            ".files[].phases[].seconds" => "[s]",
        });
    }
}

/// A cluster of its own where role `app` (password `app-pw`) must give its password over TCP,
/// as a production server asks (scram); everyone else is trusted.
fn cluster_with_password() -> OwnCluster {
    let own = OwnCluster::start();
    own.c
        .sql("postgres", "CREATE ROLE app LOGIN PASSWORD 'app-pw'");
    let hba = Path::new(&own.c.data()).join("pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\nhost all app 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    own.c.sql("postgres", "SELECT pg_reload_conf()");
    own
}

#[test]
fn a_missing_password_is_77_at_once_naming_where_a_password_goes() {
    let own = cluster_with_password();
    let c = &own.c;
    let loader = |pw: Option<&str>| {
        let mut cmd = bare();
        cmd.env("CUSIP_DB_HOST", "127.0.0.1")
            .env("CUSIP_DB_PORT", c.port.to_string())
            .env("CUSIP_DB_NAME", "postgres")
            .env("CUSIP_DB_USER", "app")
            // A scheduler's setting: retrying would go on for a minute.
            .env("CUSIP_DB_CONNECT_RETRY", "60")
            .arg("--status");
        if let Some(pw) = pw {
            cmd.env("CUSIP_DB_PASSWORD", pw);
        }
        cmd
    };
    let t = std::time::Instant::now();
    let (code, stdout, stderr) = out(&mut loader(None));
    let took = t.elapsed();
    assert_eq!(code, 77, "{stdout}{stderr}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "retried for {took:?}: {stderr}"
    );
    for must in ["CUSIP_DB_PASSWORD", "--db-secret-arn", "--database-url"] {
        assert!(stderr.contains(must), "{must}: {stderr}");
    }
    assert!(!stderr.contains("retrying"), "{stderr}");
    // A wrong password is 77 too, and the right one connects (78: this database has no
    // journal, which --status then says).
    assert_eq!(out(&mut loader(Some("wrong"))).0, 77);
    let (code, stdout, stderr) = out(&mut loader(Some("app-pw")));
    assert_eq!(code, 78, "{stdout}{stderr}");
}

#[test]
fn libpq_variables_and_the_password_file_sit_under_the_cusip_ones() {
    use std::os::unix::fs::PermissionsExt;
    let own = cluster_with_password();
    let c = &own.c;
    c.sql("postgres", "CREATE DATABASE pgvars");
    let home = tempfile::tempdir().unwrap();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{}:*:app:app-pw\n", c.port)).unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Only PG* variables and ~/.pgpass: the loader connects where psql would.
    let pg = |cmd: &mut Command| {
        cmd.env("HOME", home.path())
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", c.port.to_string())
            .env("PGDATABASE", "pgvars")
            .env("PGUSER", "app")
            .env("CUSIP_DB_CONNECT_RETRY", "0");
    };
    let mut cmd = bare();
    pg(&mut cmd);
    let (code, stdout, stderr) = out(cmd.arg("--status"));
    // Connected (78: the database has no journal yet).
    assert_eq!(code, 78, "{stdout}{stderr}");
    assert!(
        stderr.contains("host from PGHOST") && stderr.contains("user from PGUSER"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("password from {}", pgpass.display())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("app-pw") && !stdout.contains("app-pw"),
        "{stderr}"
    );
    // A CUSIP_* variable wins over its PG* one.
    let mut cmd = bare();
    pg(&mut cmd);
    let (code, _, stderr) = out(cmd.env("CUSIP_DB_NAME", "no_such_db").arg("--status"));
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("no_such_db") && stderr.contains("dbname from CUSIP_DB_NAME"),
        "{stderr}"
    );
    // A password file others can read is not used, as libpq would not: 77, and said why.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = bare();
    pg(&mut cmd);
    let (code, _, stderr) = out(cmd.arg("--status"));
    assert_eq!(code, 77, "{stderr}");
    assert!(
        stderr.contains("password file not used") && stderr.contains("chmod 0600"),
        "{stderr}"
    );
}
