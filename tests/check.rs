//! `--check`, the pre-flight: 0 for the owner and for the application role with the
//! documented grants, 69 with nothing listening, 77 for a missing grant, 78 for a missing or
//! outdated schema, the S3 prefix (moto) and the Secrets Manager secret; and never a write.

mod common;

use std::process::Command;

use common::s3::{aws_env, create_secret, s3};
use common::*;

/// The loader in `--check` mode, able to reach the test S3 server.
fn check(db: &Db) -> Command {
    let mut c = db.loader();
    for (k, v) in aws_env(&s3().endpoint) {
        c.env(k, v);
    }
    c.arg("--check");
    c
}

fn json(mut cmd: Command) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(cmd.args(["--output", "json"]));
    (code, summary(&out), err)
}

/// The line of check `name`.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.get(5..)
                .is_some_and(|rest| rest.starts_with(&format!("{name} ")))
        })
        .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
}

/// `(name, status, exit_code)` of every check in the JSON document.
fn verdicts(v: &serde_json::Value) -> Vec<(String, String, Option<i64>)> {
    v["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {v}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["exit_code"].as_i64(),
            )
        })
        .collect()
}

fn verdict(name: &str, status: &str, code: Option<i64>) -> (String, String, Option<i64>) {
    (name.to_string(), status.to_string(), code)
}

/// Everything a load could write: master and code tables (with each row's version), the
/// journal, the schema.
fn everything(db: &Db) -> (String, Vec<Vec<String>>, String) {
    (db.snapshot(), db.journal(), db.schema_dump())
}

/// An application role with the documented grants, named after the database.
fn app_role(db: &Db) -> String {
    let role = format!("app_{}", db.name);
    db.sql(&least_privilege_grants(&role, &db.name));
    role
}

#[test]
fn the_owner_and_the_application_role_pass_and_nothing_is_written() {
    let db = Db::new("pass");
    let (code, _, err) = run(db.loader().args(day("01-15")));
    assert_eq!(code, 0, "{err}");
    let role = app_role(&db);
    let before = everything(&db);

    let (code, out, err) = run(&mut check(&db));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let database = line(&out, "database");
    assert!(
        database.starts_with(&format!(
            "ok   database  connected to 127.0.0.1:{}/{} as postgres (PostgreSQL ",
            cluster().port,
            db.name
        )) && database.contains("no TLS, sslmode=prefer"),
        "{out}"
    );
    assert!(
        line(&out, "schema").starts_with(
            "ok   schema    issuer, issue, issue_attribute, 9 code tables, load_journal"
        ),
        "{out}"
    );
    assert!(
        line(&out, "rights").starts_with("ok   rights    postgres is a superuser: it may "),
        "{out}"
    );
    assert!(
        line(&out, "source").starts_with("skip source    no file source configured"),
        "{out}"
    );

    let mut as_app = check(&db);
    as_app.env("CUSIP_DB_USER", &role);
    let (code, v, err) = json(as_app);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["exit_code"], 0);
    assert!(v["error"].is_null());
    assert_eq!(
        verdicts(&v),
        [
            verdict("database", "ok", None),
            verdict("schema", "ok", None),
            verdict("rights", "ok", None),
            verdict("source", "skipped", None)
        ]
    );
    let rights = v["checks"][2]["message"].as_str().unwrap();
    assert!(
        rights.starts_with(&format!("{role} may SELECT, INSERT, UPDATE")),
        "{rights}"
    );
    assert_eq!(everything(&db), before, "--check wrote to the database");
}

#[test]
fn nothing_listening_is_69_and_the_database_checks_are_not_run() {
    let db = Db::new("noserver");
    let port = free_port().to_string();
    let mut c = check(&db);
    c.env("CUSIP_DB_PORT", &port);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 69, "{out}{err}");
    let database = line(&out, "database");
    assert!(
        database.starts_with("FAIL database  cannot connect to")
            && database.contains("is the server running and reachable?"),
        "{out}"
    );
    assert_eq!(
        line(&out, "schema"),
        "skip schema    not run: no database connection"
    );
    assert_eq!(
        line(&out, "rights"),
        "skip rights    not run: no database connection"
    );
    assert!(
        err.contains("ERROR --check: database: cannot connect"),
        "{err}"
    );
    let mut c = check(&db);
    c.env("CUSIP_DB_PORT", &port);
    let (code, v, _) = json(c);
    assert_eq!(code, 69);
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 69);
    assert_eq!(
        verdicts(&v),
        [
            verdict("database", "failed", Some(69)),
            verdict("schema", "not_run", None),
            verdict("rights", "not_run", None),
            verdict("source", "skipped", None)
        ]
    );
}

#[test]
fn a_missing_grant_is_77_and_named_with_the_grant_that_fixes_it() {
    let db = Db::new("nogrant");
    let role = app_role(&db);
    db.sql(&format!(
        "REVOKE UPDATE ON issue FROM {role}; REVOKE USAGE ON SEQUENCE load_journal_id_seq FROM {role}"
    ));
    let before = everything(&db);
    let mut c = check(&db);
    c.env("CUSIP_DB_USER", &role);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 77, "{out}{err}");
    assert!(line(&out, "schema").starts_with("ok "), "{out}");
    let rights = line(&out, "rights");
    assert!(
        rights.starts_with(&format!(
            "FAIL rights    {role} lacks UPDATE on issue, USAGE on sequence "
        )),
        "{out}"
    );
    assert!(
        rights.contains(&format!("GRANT UPDATE ON issue TO {role}"))
            && rights.contains(&format!(
                "GRANT USAGE ON SEQUENCE public.load_journal_id_seq TO {role}"
            ))
            && rights.contains("docs/operations.md"),
        "{out}"
    );
    assert_eq!(everything(&db), before, "--check wrote to the database");
    // What it says to run is what fixes it.
    db.sql(&format!(
        "GRANT UPDATE ON issue TO {role}; GRANT USAGE ON SEQUENCE public.load_journal_id_seq TO {role}"
    ));
    let mut c = check(&db);
    c.env("CUSIP_DB_USER", &role);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    // A role that cannot see the schema at all (PUBLIC may use it by default): the grant on
    // the schema.
    db.sql(&format!(
        "REVOKE USAGE ON SCHEMA public FROM {role}; REVOKE USAGE ON SCHEMA public FROM PUBLIC"
    ));
    let mut c = check(&db);
    c.env("CUSIP_DB_USER", &role);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 77, "{out}{err}");
    assert!(
        line(&out, "schema").contains(&format!("GRANT USAGE ON SCHEMA public TO {role}")),
        "{out}"
    );
    db.sql(&format!(
        "GRANT USAGE ON SCHEMA public TO {role}; GRANT USAGE ON SCHEMA public TO PUBLIC"
    ));
}

#[test]
fn an_initial_load_into_empty_tables_needs_their_owner() {
    let db = Db::new("initial");
    let role = app_role(&db);
    let mut c = check(&db);
    c.env("CUSIP_DB_USER", &role)
        .env("CUSIP_INITIAL_LOAD", "true");
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 77, "{out}{err}");
    let rights = line(&out, "rights");
    assert!(
        rights.starts_with(
            "FAIL rights    --initial-load always (CUSIP_INITIAL_LOAD) is set and issuer is empty"
        ) && rights.contains("use auto"),
        "{out}"
    );
    // auto, the default, takes the staged path where the role does not own the table.
    let mut c = check(&db);
    c.env("CUSIP_DB_USER", &role);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    // The owner may; and once a table holds rows a load merges as usual.
    let mut c = check(&db);
    c.env("CUSIP_INITIAL_LOAD", "true");
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    // An owner needs CREATE on the tables' schema too: the direct path rebuilds indexes.
    let owner = format!("own_{}", db.name);
    db.sql(&least_privilege_grants(&owner, &db.name));
    db.sql(&format!(
        "ALTER TABLE issuer OWNER TO {owner}; ALTER TABLE issue OWNER TO {owner}; \
         ALTER TABLE issue_attribute OWNER TO {owner}"
    ));
    let create = "needs CREATE on its schema public";
    let mut c = check(&db);
    c.env("CUSIP_DB_USER", &owner)
        .env("CUSIP_INITIAL_LOAD", "true");
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 77, "{out}{err}");
    assert!(
        line(&out, "rights").contains(create)
            && out.contains(&format!("GRANT CREATE ON SCHEMA public TO {owner}")),
        "{out}"
    );
    db.sql(&format!("GRANT CREATE ON SCHEMA public TO {owner}"));
    let mut c = check(&db);
    c.env("CUSIP_DB_USER", &owner)
        .env("CUSIP_INITIAL_LOAD", "true");
    let (_, out, _) = run(&mut c);
    assert!(!out.contains(create), "{out}");
    let (code, _, err) = run(db.loader().args(day("01-15")));
    assert_eq!(code, 0, "{err}");
    let mut c = check(&db);
    c.env("CUSIP_DB_USER", &role)
        .env("CUSIP_INITIAL_LOAD", "true");
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_missing_or_outdated_schema_is_78() {
    let db = Db::empty("noschema");
    let (code, out, err) = run(&mut check(&db));
    assert_eq!(code, 78, "{out}{err}");
    assert!(line(&out, "database").starts_with("ok "), "{out}");
    let schema = line(&out, "schema");
    assert!(
        schema.starts_with("FAIL schema    the schema is not what this loader expects: missing: all of the loader's 13 tables and 5 views")
            && schema.contains("cusip-loader --init-schema"),
        "{out}"
    );
    assert!(
        line(&out, "rights").starts_with("skip rights    not run"),
        "{out}"
    );
    // Nothing was created.
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace")
            .trim(),
        "0"
    );

    // A journal an older loader made lacks the newest columns.
    let db = Db::new("oldjournal");
    db.sql("ALTER TABLE load_journal DROP COLUMN sha256");
    let before = everything(&db);
    let (code, v, err) = json(check(&db));
    assert_eq!(code, 78, "{err}");
    assert_eq!(
        verdicts(&v)[..3],
        [
            verdict("database", "ok", None),
            verdict("schema", "failed", Some(78)),
            verdict("rights", "ok", None)
        ]
    );
    let schema = v["checks"][1]["message"].as_str().unwrap();
    assert!(
        schema.contains("missing: column load_journal.sha256"),
        "{schema}"
    );
    assert_eq!(everything(&db), before);

    // A trigger the loader does not know would make a load refuse: so does the check.
    let db = Db::new("trigger");
    db.script(
        "CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$; \
         CREATE TRIGGER audit BEFORE UPDATE ON issue FOR EACH ROW EXECUTE FUNCTION t();",
    );
    let (code, out, err) = run(&mut check(&db));
    assert_eq!(code, 78, "{out}{err}");
    assert!(
        line(&out, "schema").contains("trigger audit on issue"),
        "{out}"
    );
}

#[test]
fn an_s3_source_must_be_listable() {
    let db = Db::new("s3");
    let b = s3().new_bucket("check");
    s3().put_file(&b, "pif/CED01-15R.PIP", &testdata("CED01-15R.PIP"));
    // From the environment, as an ECS task has it.
    let mut c = check(&db);
    c.env("CUSIP_FILE_SOURCE", "s3").env("CUSIP_S3_BUCKET", &b);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        line(&out, "source"),
        format!("ok   source    s3://{b}/pif/ can be listed (holds objects)")
    );
    // From the command line; an empty prefix is fine (the files may not be there yet).
    let mut c = check(&db);
    c.args(["--s3-bucket", &b, "--s3-prefix", "later"]);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        line(&out, "source"),
        format!("ok   source    s3://{b}/later/ can be listed (empty so far)")
    );
    // A bucket that does not exist: the configuration is wrong.
    let mut c = check(&db);
    c.env("CUSIP_FILE_SOURCE", "s3")
        .env("CUSIP_S3_BUCKET", "no-such-bucket-for-check");
    let (code, v, err) = json(c);
    assert_eq!(code, 78, "{err}");
    assert_eq!(verdicts(&v)[3], verdict("source", "failed", Some(78)));
    let m = v["checks"][3]["message"].as_str().unwrap();
    assert!(
        m.contains("no-such-bucket-for-check does not exist") && m.contains("CUSIP_S3_BUCKET"),
        "{m}"
    );
    // The database was checked all the same.
    assert_eq!(verdicts(&v)[0], verdict("database", "ok", None));
    // CUSIP_FILE_SOURCE=s3 without a bucket: a failed check, after the others ran.
    let mut c = check(&db);
    c.env("CUSIP_FILE_SOURCE", "s3");
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 78, "{out}{err}");
    assert!(line(&out, "rights").starts_with("ok "), "{out}");
    assert!(
        line(&out, "source")
            .starts_with("FAIL source    CUSIP_FILE_SOURCE=s3 but no bucket is set"),
        "{out}"
    );
}

#[test]
fn a_local_source_must_be_a_readable_directory() {
    let db = Db::new("dir");
    let dir = tempfile::tempdir().unwrap();
    let mut c = check(&db);
    c.env("CUSIP_FILE_SOURCE", "local")
        .env("CUSIP_FILE_DIR", dir.path());
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        line(&out, "source").starts_with("ok   source    directory "),
        "{out}"
    );
    let mut c = check(&db);
    c.args(["--dir", "/nonexistent/pif"]);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 78, "{out}{err}");
    assert!(
        line(&out, "source")
            .starts_with("FAIL source    directory /nonexistent/pif cannot be read"),
        "{out}"
    );
}

#[test]
fn the_secret_is_used_as_a_load_uses_it() {
    let db = Db::new("secret");
    let value = serde_json::json!({
        "host": "127.0.0.1",
        "port": cluster().port,
        "dbname": db.name,
        "username": "postgres",
        "password": "never-printed",
    });
    let arn = create_secret("cusip/check-ok", &value.to_string());
    let mut c = check(&db);
    c.env("CUSIP_DB_HOST", "db.invalid")
        .env("CUSIP_DB_SECRET_ARN", &arn);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        line(&out, "database").contains(&format!("; settings from secret {arn})")),
        "{out}"
    );
    assert!(!out.contains("never-printed") && !err.contains("never-printed"));
    let mut c = check(&db);
    c.env(
        "CUSIP_DB_SECRET_ARN",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:cusip/none-AbCdEf",
    );
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 78, "{out}{err}");
    assert!(line(&out, "database").contains("does not exist"), "{out}");
    assert!(line(&out, "schema").contains("not run"), "{out}");
}

#[test]
fn it_is_a_mode_of_its_own() {
    let db = Db::new("usage");
    for extra in [&["--init-schema"][..], &["--validate-only"], &["--status"]] {
        let mut c = check(&db);
        c.args(extra);
        let (code, _, err) = run(&mut c);
        assert_eq!(code, 64, "{extra:?}: {err}");
    }
    let mut c = check(&db);
    c.arg(testdata("CED01-15R.PIP"));
    let (code, _, err) = run(&mut c);
    assert_eq!(code, 64, "{err}");
    assert_eq!(db.count("issuer"), 0);
}
