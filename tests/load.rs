//! End-to-end: the real binary against a real PostgreSQL cluster.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

fn load(db: &Db, files: &[PathBuf]) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(db.loader().args(files).args(["--output", "json"]));
    let v = summary(&out);
    (code, v, err)
}

fn counts(v: &serde_json::Value, i: usize) -> [u64; 5] {
    let f = &v["files"][i];
    ["records", "inserted", "updated", "unchanged", "repeated"].map(|k| f[k].as_u64().unwrap())
}

#[test]
fn sample_date_loads_every_column_of_every_row_exactly() {
    let db = Db::new("sample");
    let (code, v, err) = load(&db, &day("01-15"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["ok"], true);
    for (i, (table, file)) in MASTER.iter().zip(day("01-15")).enumerate() {
        assert_table_matches(&db, table, std::slice::from_ref(&file));
        let rows = expected_rows(&file, if i == 0 { 1 } else { 2 }).len() as u64;
        let [records, inserted, updated, unchanged, _] = counts(&v, i);
        assert_eq!((inserted, updated, unchanged), (rows, 0, 0), "{table}");
        assert!(records >= rows);
    }
    // Every load is journalled with its counts and the file's sha256.
    let j = db.journal();
    assert_eq!(j.len(), 3);
    assert!(j.iter().all(|r| r[1] == "loaded"), "{j:?}");
    let fp = db.sql("SELECT fingerprint FROM load_journal ORDER BY id LIMIT 1");
    assert_eq!(fp.trim().len(), 64);
    // The views answer.
    assert!(db.count("v_security_summary") > 0);
}

#[test]
fn reloading_the_same_files_rewrites_no_row() {
    let db = Db::new("reload");
    assert_eq!(load(&db, &day("01-15")).0, 0);
    let before = db.snapshot();
    let mut files = day("01-15");
    files.push("--force".into());
    let (code, v, err) = load(&db, &files);
    assert_eq!(code, 0, "{err}");
    for i in 0..3 {
        let [records, inserted, updated, unchanged, repeated] = counts(&v, i);
        assert_eq!((inserted, updated), (0, 0), "file {i}");
        assert_eq!(unchanged, records - repeated);
    }
    // Same xmin and ctid for every row: nothing was physically rewritten.
    assert_eq!(db.snapshot(), before);
}

#[test]
fn a_rerun_of_loaded_files_is_skipped_via_the_journal() {
    let db = Db::new("rerun");
    assert_eq!(load(&db, &day("01-15")).0, 0);
    let before = db.snapshot();
    let (code, v, err) = load(&db, &day("01-15"));
    assert_eq!(code, 0, "{err}");
    for i in 0..3 {
        assert_eq!(v["files"][i]["status"], "already_loaded", "{v}");
    }
    assert_eq!(db.snapshot(), before);
    let statuses = db.sql("SELECT string_agg(status, ',' ORDER BY id) FROM load_journal");
    assert_eq!(
        statuses.trim(),
        "loaded,loaded,loaded,already loaded,already loaded,already loaded"
    );
    // The same name with different content is a different file: it loads.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("CED01-15R.PIP");
    let mut bytes = std::fs::read(testdata("CED01-15R.PIP")).unwrap();
    bytes.splice(0..0, b"\n".iter().copied());
    std::fs::write(&copy, bytes).unwrap();
    let (code, v, _) = load(&db, &[copy]);
    assert_eq!(code, 0);
    assert_eq!(v["files"][0]["status"], "loaded");
}

/// A local file's sha256 is computed while the load goes on, but the rerun rule still comes
/// first: a rerun is skipped even when the load that ran ahead meanwhile fails (here on a
/// trigger the loader does not know, found in milliseconds while the digest of a 20 MB file
/// takes far longer), and only a file that is not a rerun gets that refusal.
#[test]
fn a_rerun_is_skipped_whatever_the_load_that_ran_ahead_of_its_digest_found() {
    let db = Db::new("rerun_first");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("CED01-15R.PIP");
    let mut bytes = vec![b'\n'; 20 << 20];
    bytes.extend(std::fs::read(testdata("CED01-15R.PIP")).unwrap());
    std::fs::write(&big, bytes).unwrap();
    let (code, v, err) = load(&db, std::slice::from_ref(&big));
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["files"][0]["status"], "loaded", "{v}");
    db.sql(
        "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$; \
         CREATE TRIGGER stamp BEFORE UPDATE ON issuer FOR EACH ROW EXECUTE FUNCTION stamp()",
    );
    let before = db.snapshot();
    let (code, v, err) = load(&db, std::slice::from_ref(&big));
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["files"][0]["status"], "already_loaded", "{v}");
    assert_eq!(
        v["files"][0]["fingerprint"].as_str().map(str::len),
        Some(64),
        "{v}"
    );
    assert!(!err.contains("trigger"), "{err}");
    // Not a rerun: the same check refuses it, and nothing changes.
    let (code, _, err) = load(&db, &[day("01-16")[0].clone()]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("the loader does not know trigger stamp on issuer"),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);
    let statuses = db.sql("SELECT string_agg(status, ',' ORDER BY id) FROM load_journal");
    assert_eq!(statuses.trim(), "loaded,already loaded,failed");
    let sha = db.sql(
        "SELECT count(DISTINCT fingerprint) || ' ' || count(DISTINCT sha256) FROM load_journal \
         WHERE file_name = 'CED01-15R.PIP'",
    );
    assert_eq!(
        sha.trim(),
        "1 1",
        "both rows know the file by the same sha256"
    );
}

#[test]
fn the_delta_gives_exact_counts_and_contents() {
    let db = Db::new("delta");
    assert_eq!(load(&db, &day("01-15")).0, 0);
    let (code, v, err) = load(&db, &day("01-16"));
    assert_eq!(code, 0, "{err}");
    for (i, table) in MASTER.iter().enumerate() {
        let keys = if i == 0 { 1 } else { 2 };
        let old = expected_rows(&day("01-15")[i], keys);
        let new = expected_rows(&day("01-16")[i], keys);
        let key = |r: &Vec<u8>| {
            r.split(|&b| b == b'|')
                .take(keys)
                .collect::<Vec<_>>()
                .concat()
        };
        let (mut ins, mut upd, mut same) = (0, 0, 0);
        for r in &new {
            match old.iter().find(|o| key(o) == key(r)) {
                None => ins += 1,
                Some(o) if o == r => same += 1,
                Some(_) => upd += 1,
            }
        }
        let data_lines = std::fs::read(&day("01-16")[i])
            .unwrap()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && !l.starts_with(b"999999") && *l != b"\x1a" && *l != b"\r")
            .count() as u64;
        let [records, inserted, updated, unchanged, repeated] = counts(&v, i);
        assert_eq!(records, data_lines, "{table} records");
        assert_eq!(repeated, records - new.len() as u64, "{table} repeated");
        assert!(repeated > 0, "the delta has a repeated key in {table}");
        assert_eq!(
            (inserted, updated, unchanged),
            (ins, upd, same),
            "{table} counts"
        );
        assert!(
            ins > 0 && upd > 0 && same > 0,
            "{table}: the delta must exercise all three"
        );
        assert_table_matches(
            &db,
            table,
            &[day("01-15")[i].clone(), day("01-16")[i].clone()],
        );
        // The report names the repeated keys and their lines.
        let ex = &v["files"][i]["repeated_examples"][0];
        assert!(ex["lines"].as_array().unwrap().len() >= 2, "{ex}");
    }
}

/// (file, line, column) of the first problem each bad file must be reported with.
const BAD: &[(&str, &str, &str)] = &[
    ("badcode-E.PIP", "line 2", "column issue_status"),
    ("baddate-E.PIP", "line 5", "column maturity_date"),
    ("baddateformat-E.PIP", "line 2", "column dated_date"),
    ("badint-E.PIP", "line 3", "column partial_maturity"),
    ("badutf8-R.PIP", "line 3", "column issuer_name_1"),
    ("emptykey-R.PIP", "line 3", "column issuer_num"),
    (
        "fieldcount-R.PIP",
        "line 4",
        "has 15 fields; an issuer record has 16",
    ),
    ("fkissue-A.PIP", "line 3", "column issuer_num+issue_num"),
    ("fkissuer-E.PIP", "line 5", "column issuer_num"),
    ("notrailer-R.PIP", "without the 999999 trailer", "truncated"),
    ("nul-R.PIP", "line 4", "column issuer_name_1"),
    (
        "numprecision-E.PIP",
        "line 3",
        "column rate: \"1234.5\" has 4 integer digits; numeric(6,3) allows 3",
    ),
    (
        "numscale-E.PIP",
        "line 4",
        "column rate: \"5.2505\" has 4 decimals; numeric(6,3) allows 3",
    ),
    ("toolong-E.PIP", "line 3", "column issue_desc_1"),
    (
        "toolong-space-R.PIP",
        "line 2",
        "is 31 characters; varchar(30) allows 30",
    ),
];

#[test]
fn every_bad_file_is_refused_with_its_line_and_column_and_changes_nothing() {
    let db = Db::new("bad");
    assert_eq!(load(&db, &day("01-15")).0, 0);
    let mut checked = 0;
    for (file, line, column) in BAD {
        let before = db.snapshot();
        let journal_before = db.journal().len();
        let (code, out, err) = run(db.loader().arg(testdata(&format!("bad/{file}"))));
        assert_eq!(code, 65, "{file}: {err}");
        assert!(
            err.contains(&format!("{file} {line}")) || err.contains(line),
            "{file}: {err}"
        );
        assert!(
            err.contains(column),
            "{file} should mention {column}: {err}"
        );
        assert!(out.contains("FAILED"), "{file}: {out}");
        assert_eq!(db.snapshot(), before, "{file} changed the tables");
        let j = db.journal();
        assert_eq!(
            j.len(),
            journal_before + 1,
            "{file}: the failed attempt is journalled"
        );
        assert_eq!(j.last().unwrap()[1], "failed");
        checked += 1;
    }
    assert_eq!(
        checked,
        std::fs::read_dir(testdata("bad")).unwrap().count() - 1,
        "every file in testdata/bad has a case"
    );
}

#[test]
fn at_most_twenty_problems_are_collected() {
    let db = Db::new("twenty");
    assert_eq!(load(&db, &day("01-15")).0, 0);
    let (code, _, err) = run(db.loader().arg(testdata("bad/baddate25-E.PIP")));
    assert_eq!(code, 65);
    assert_eq!(err.matches("column maturity_date").count(), 20, "{err}");
    assert!(err.contains("there are more"), "{err}");
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn awkward_bytes_survive_exactly() {
    let db = Db::new("awkward");
    let dir = tempfile::tempdir().unwrap();
    // 30 characters, multibyte, full width; segment-edge spaces; quotes and backslashes.
    let full = "Société Générale Zürich Ünïcôd";
    assert_eq!(full.chars().count(), 30);
    let rows = [
        format!("00001A|1|{full}| SECOND SEGMENT |THIRD ||||||C|A||A|NY|20240115"),
        r#"00002B|2|"QUOTED" NAME|BACK\SLASH \N|\\|||||"|M|D|0000-00-00|B||01/15/2024"#.to_string(),
        "00003C|3|TRAILING SPACE |  |||||||G|A|00000000|L|CA|2024-01-15".to_string(),
    ];
    // CRLF, a blank line, the trailer, 0x1A and no final newline.
    let body = format!(
        "{}\r\n\r\n{}\r\n{}\r\n999999|END\r\n\x1a",
        rows[0], rows[1], rows[2]
    );
    let f = write(dir.path(), "CED02-01R.PIP", body.as_bytes());
    let (code, _, err) = run(db.loader().arg(&f));
    assert_eq!(code, 0, "{err}");
    assert_table_matches(&db, "issuer", std::slice::from_ref(&f));
    assert_eq!(
        db.sql("SELECT issuer_name_1 FROM issuer WHERE issuer_num = '00002B'"),
        "\"QUOTED\" NAME\n"
    );
    assert_eq!(
        db.sql("SELECT issuer_name_2 FROM issuer WHERE issuer_num = '00002B'"),
        "BACK\\SLASH \\N\n"
    );
    assert_eq!(
        db.sql("SELECT length(issuer_name_2) FROM issuer WHERE issuer_num = '00001A'"),
        "16\n"
    );
    assert_eq!(
        db.sql("SELECT issuer_name_1 FROM issuer WHERE issuer_num = '00001A'"),
        format!("{full}\n")
    );

    // One character more is refused, and nothing changes.
    let before = db.snapshot();
    let over = format!("00004D|4|{full}X||||||||C|A||A|NY|\n999999\n");
    let f = write(dir.path(), "CED02-02R.PIP", over.as_bytes());
    let (code, _, err) = run(db.loader().arg(&f));
    assert_eq!(code, 65);
    assert!(
        err.contains("line 1, column issuer_name_1")
            && err.contains("is 31 characters; varchar(30) allows 30"),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);
}

#[test]
fn text_in_other_encodings_is_transcoded_only_when_declared() {
    let db = Db::new("latin1");
    for (file, enc, want) in [
        ("latin1/latin1-R.PIP", "latin1", "é"),
        ("latin1/cp1252-R.PIP", "windows-1252", "€"),
    ] {
        let (code, _, err) = run(db.loader().arg(testdata(file)));
        assert_eq!(code, 65, "{file} without --encoding: {err}");
        assert!(err.contains("not valid UTF-8"), "{err}");
        let (code, _, err) = run(db.loader().arg(testdata(file)).args(["--encoding", enc]));
        assert_eq!(code, 0, "{file}: {err}");
        let names = db.sql("SELECT string_agg(concat(issuer_name_1, issuer_name_2, issuer_name_3), ' ') FROM issuer");
        assert!(names.contains(want), "{file}: {names}");
    }
}

#[test]
fn files_load_in_foreign_key_order_whatever_the_argument_order() {
    let db = Db::new("order");
    let mut files = day("01-15");
    files.reverse();
    let (code, v, err) = load(&db, &files);
    assert_eq!(code, 0, "{err}");
    let types: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["issuer", "issue", "issue_attr"]);
    assert_table_matches(&db, "issue_attribute", &[day("01-15")[2].clone()]);
}

#[test]
fn the_first_failure_stops_the_run() {
    let db = Db::new("stop");
    let files = vec![
        testdata("CED01-15R.PIP"),
        testdata("bad/fkissuer-E.PIP"),
        testdata("CED01-15A.PIP"),
    ];
    let (code, v, _) = load(&db, &files);
    assert_eq!(code, 65);
    let status: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["loaded", "failed", "not_attempted"]);
    assert!(db.count("issuer") > 0);
    assert_eq!(db.count("issue") + db.count("issue_attribute"), 0);
}

#[test]
fn type_override_and_usage_errors() {
    let db = Db::new("usage");
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("issuers.txt");
    std::fs::copy(testdata("CED01-15R.PIP"), &odd).unwrap();
    let (code, _, err) = run(db.loader().arg(&odd));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--type"), "{err}");
    let (code, _, err) = run(db.loader().arg(&odd).args(["--type", "issuer"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = run(db.loader().arg(&odd).args(["--type", "nonsense"]));
    assert_eq!(code, 64);
    let (code, _, _) = run(&mut db.loader());
    assert_eq!(code, 64);
    let (code, _, err) = run(db.loader().arg(dir.path().join("CED01-15R.PIP")));
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("no such file"), "{err}");
    let (code, _, err) = run(db.loader().arg(dir.path()));
    assert_eq!(code, 66, "{err}");
    let (code, out, _) = run(db.loader().arg("--help"));
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes:") && out.contains("143"), "{out}");
}

#[test]
fn database_problems_have_their_own_exit_codes() {
    let db = Db::new("dberr");
    let f = testdata("CED01-15R.PIP");
    // Nothing listens on this port.
    let port = free_port();
    let (code, _, err) = run(db.loader().arg(&f).env("CUSIP_DB_PORT", port.to_string()));
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    // Flags beat the environment.
    let (code, _, err) = run(db.loader().arg(&f).args(["--dbname", "no_such_db"]));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("no_such_db"), "{err}");
    // A database without the schema.
    let bare = Db::empty("bare");
    let (code, _, err) = run(bare.loader().arg(&f));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("--init-schema"), "{err}");
    // ... which --init-schema before the load fixes.
    let (code, _, err) = run(bare.loader().arg(&f).arg("--init-schema"));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_schema_applies_twice_without_change() {
    let db = Db::new("schema");
    assert_eq!(load(&db, &day("01-15")).0, 0);
    let dump = |db: &Db| db.pg_dump(&["--no-comments", "--exclude-table-data", "load_journal"]);
    let before = dump(&db);
    let (code, _, err) = run(db.loader().arg("--init-schema"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(dump(&db), before);
}

#[test]
fn json_and_table_summaries() {
    let db = Db::new("summary");
    let (code, out, _) = run(db.loader().args(day("01-15")));
    assert_eq!(code, 0);
    let header = out.lines().next().unwrap();
    for col in [
        "FILE",
        "TYPE",
        "RECORDS",
        "INSERTED",
        "UPDATED",
        "UNCHANGED",
        "REPEATED",
        "SECONDS",
        "MB/S",
        "STATUS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(out.matches("loaded").count(), 3, "{out}");
    let (code, out, _) =
        run(db
            .loader()
            .args(day("01-15"))
            .args(["--output", "json", "--log-format", "json"]));
    assert_eq!(code, 0);
    let v = summary(&out);
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["files"].as_array().unwrap().len(), 3);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let db = Db::new("jsonlog");
    let (code, _, err) = run(db
        .loader()
        .arg(testdata("CED01-15R.PIP"))
        .args(["--log-format", "json"]));
    assert_eq!(code, 0);
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string(), "{l}");
    }
}

#[test]
fn validate_only_checks_without_any_database() {
    let db = Db::empty("validate");
    // Nothing listens here: a validation that tried to connect would fail with 69.
    let port = free_port();
    let validator = || {
        let mut c = db.loader();
        c.env("CUSIP_DB_PORT", port.to_string())
            .arg("--validate-only");
        c
    };
    let (code, out, err) = run(validator().args(day("01-15")).args(["--output", "json"]));
    assert_eq!(code, 0, "{err}");
    let v = summary(&out);
    for i in 0..3 {
        assert_eq!(v["files"][i]["status"], "valid", "{v}");
    }
    assert_eq!(v["files"][1]["records"], 630);
    // The same rejections, lines and exit codes as a load, except what needs the database.
    for (file, line, column) in BAD {
        if file.starts_with("fk") || file.starts_with("badcode") {
            continue;
        }
        let (code, _, err) = run(validator().arg(testdata(&format!("bad/{file}"))));
        assert_eq!(code, 65, "{file}: {err}");
        assert!(err.contains(line) && err.contains(column), "{file}: {err}");
    }
    let (code, _, _) = run(validator().arg(testdata("bad/fkissuer-E.PIP")));
    assert_eq!(code, 0, "foreign keys need the database");
}

#[test]
fn a_refused_connection_is_retried_until_the_server_appears() {
    let db = Db::new("retry");
    let port = free_port();
    let child = db
        .loader()
        .arg(testdata("CED01-15R.PIP"))
        .env("CUSIP_DB_PORT", port.to_string())
        .env("CUSIP_DB_CONNECT_RETRY", "30")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The "failover" ends after 1.5 s: a forwarder to the real server appears on the port.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let target = cluster().port;
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = std::net::TcpStream::connect(("127.0.0.1", target)).unwrap();
            let (mut c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut c2, &mut s2.try_clone().unwrap()));
            let (mut c3, mut s3) = (client, server);
            std::thread::spawn(move || std::io::copy(&mut s3, &mut c3));
        }
    });
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("retrying in"), "{err}");
    assert_eq!(db.count("issuer"), 300);
}

#[test]
fn connect_retry_gives_up_in_bounded_time() {
    let db = Db::new("giveup");
    let t = std::time::Instant::now();
    let (code, _, err) = run(db
        .loader()
        .arg(testdata("CED01-15R.PIP"))
        .env("CUSIP_DB_PORT", free_port().to_string())
        .env("CUSIP_DB_CONNECT_RETRY", "2"));
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("gave up after"), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}

/// Indexes and constraints of the master tables, as the catalog defines them.
fn master_schema(db: &Db) -> String {
    db.sql(
        "SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
           FROM pg_constraint WHERE conrelid IN ('issuer'::regclass, 'issue'::regclass, 'issue_attribute'::regclass) \
         UNION ALL \
         SELECT indexdef FROM pg_indexes WHERE tablename IN ('issuer', 'issue', 'issue_attribute') \
         ORDER BY 1",
    )
}

fn initial_flags(v: &serde_json::Value) -> Vec<bool> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["initial_load"].as_bool().unwrap())
        .collect()
}

/// Each file's path and the reason for it, from the JSON summary.
fn paths(v: &serde_json::Value) -> Vec<(String, String)> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| {
                f[k].as_str()
                    .unwrap_or_else(|| panic!("{k}: {f}"))
                    .to_string()
            };
            (s("path"), s("path_reason"))
        })
        .collect()
}

#[test]
fn initial_load_gives_the_same_tables_as_the_default_merge() {
    let safe = Db::new("init_safe");
    let fast = Db::new("init_fast");
    // A DBA's own index must be dropped and rebuilt exactly like the schema's.
    fast.sql("CREATE INDEX dba_issue_desc_idx ON issue (issue_desc_1)");
    safe.sql("CREATE INDEX dba_issue_desc_idx ON issue (issue_desc_1)");
    let schema = master_schema(&fast);
    assert!(schema.contains("issue_issuer_fk") && schema.contains("dba_issue_desc_idx"));

    let mut files = day("01-15");
    files.extend(["--initial-load".into(), "never".into()]);
    let (code, vs, err) = load(&safe, &files);
    assert_eq!(code, 0, "{err}");
    // The default (auto) takes the direct path into empty tables the role owns.
    let (code, vf, err) = load(&fast, &day("01-15"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(initial_flags(&vs), [false; 3]);
    for ((path, why), table) in paths(&vs).iter().zip(MASTER) {
        assert_eq!(path, "staged", "{vs}");
        assert_eq!(
            why,
            &format!("{table} is empty, and --initial-load is never")
        );
    }
    for ((path, why), table) in paths(&vf).iter().zip(MASTER) {
        assert_eq!(path, "direct", "{vf}");
        assert!(
            why.starts_with(&format!("{table} is empty and ")) && why.ends_with("owns it"),
            "{why}"
        );
    }
    assert_eq!(
        err.matches("direct path: ").count(),
        3,
        "the log says which path and why: {err}"
    );
    assert_eq!(
        initial_flags(&vf),
        [true; 3],
        "empty tables take the initial-load path"
    );
    for i in 0..3 {
        assert_eq!(counts(&vs, i), counts(&vf, i), "file {i}");
    }
    for t in MASTER {
        assert_eq!(safe.dump(t), fast.dump(t), "{t}");
    }
    assert_table_matches(&fast, "issue", &day("01-15")[1..2]);
    assert_eq!(
        master_schema(&fast),
        schema,
        "every index and constraint is back"
    );
    // The constraints are in force again: a row without its issuer is refused by the table.
    let orphan = psql_on(
        &fast.name,
        "INSERT INTO issue (issuer_num, issue_num, issue_check) VALUES ('ZZZZZZ', 'ZZ', '0')",
    );
    assert!(!orphan.status.success());
    assert!(String::from_utf8_lossy(&orphan.stderr).contains("issue_issuer_fk"));

    // With rows present, --initial-load merges as usual: same counts, same tables.
    let (code, vs, err) = load(&safe, &day("01-16"));
    assert_eq!(code, 0, "{err}");
    let mut files = day("01-16");
    files.push("--initial-load".into());
    let (code, vf, err) = load(&fast, &files);
    assert_eq!(code, 0, "{err}");
    assert_eq!(initial_flags(&vf), [false; 3]);
    for (path, why) in paths(&vf) {
        assert_eq!(path, "compared", "{vf}");
        assert!(why.starts_with("compared with "), "{why}");
    }
    for i in 0..3 {
        assert_eq!(counts(&vs, i), counts(&vf, i), "file {i}");
    }
    for t in MASTER {
        assert_eq!(safe.dump(t), fast.dump(t), "{t}");
    }
}

#[test]
fn a_failed_initial_load_restores_the_table_with_its_indexes_and_keys() {
    let db = Db::new("init_fail");
    assert_eq!(run(db.loader().arg(&day("01-15")[0])).0, 0);
    // A DBA's CHECK constraint the loader knows nothing of stays attached, so the insert
    // fails after the indexes and foreign keys were dropped: all of it must roll back.
    let first = std::fs::read_to_string(&day("01-15")[1]).unwrap();
    let issuer = &first[..6];
    db.sql(&format!(
        "ALTER TABLE issue ADD CONSTRAINT dba_no_issuer CHECK (issuer_num <> '{issuer}')"
    ));
    let schema = master_schema(&db);
    let before = db.snapshot();
    let (code, _, err) = run(db.loader().arg(&day("01-15")[1]).arg("--initial-load"));
    assert_eq!(code, 65, "a constraint violation is a data error: {err}");
    assert!(err.contains("dba_no_issuer"), "{err}");
    assert_eq!(db.snapshot(), before);
    assert_eq!(master_schema(&db), schema);
    // Without the obstacle the same command loads.
    db.sql("ALTER TABLE issue DROP CONSTRAINT dba_no_issuer");
    let (code, _, err) = run(db.loader().arg(&day("01-15")[1]).arg("--initial-load"));
    assert_eq!(code, 0, "{err}");
    assert_table_matches(&db, "issue", &day("01-15")[1..2]);

    // A role that does not own the table cannot take this path: 77, and nothing changes.
    let role = format!("app_{}", db.name);
    db.sql(&least_privilege_grants(&role, &db.name));
    let before = db.snapshot();
    let schema = master_schema(&db);
    let (code, _, err) = run(db
        .loader()
        .env("CUSIP_DB_USER", &role)
        .env("CUSIP_INITIAL_LOAD", "true")
        .arg(&day("01-15")[2]));
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains("--initial-load always: issue_attribute is empty")
            && err.contains("needs its owner")
            && err.contains("use --initial-load auto"),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);
    assert_eq!(master_schema(&db), schema);

    // auto (the default) takes the staged path for it instead, and says why.
    let (code, v, err) = load_as(&db, &role, &day("01-15")[2..]);
    assert_eq!(code, 0, "{err}");
    let (path, why) = &paths(&v)[0];
    assert_eq!(path, "staged", "{v}");
    assert!(
        why.starts_with("issue_attribute is empty but owned by ")
            && why.contains(&format!("and {role} is not a member of that role")),
        "{why}"
    );
    assert_eq!(master_schema(&db), schema);
    assert_table_matches(&db, "issue_attribute", &day("01-15")[2..]);
}

/// Each master table's primary key constraint, by its OID: a new OID is a rebuilt key.
fn primary_keys(db: &Db) -> Vec<String> {
    MASTER
        .iter()
        .map(|t| {
            db.sql(&format!(
                "SELECT oid FROM pg_constraint WHERE conname = '{t}_pkey'"
            ))
        })
        .collect()
}

#[test]
fn the_direct_path_rebuilds_a_primary_key_only_when_nothing_would_be_lost() {
    // Nothing else depends on them: each primary key is dropped and built after the COPY
    // (a new constraint), with the same definition and the foreign keys that need it.
    let plain = Db::new("pk_plain");
    let schema = master_schema(&plain);
    let before = primary_keys(&plain);
    let (code, v, err) = load(&plain, &day("01-15"));
    assert_eq!(code, 0, "{err}");
    assert!(paths(&v).iter().all(|(p, _)| p == "direct"), "{v}");
    for (t, (b, a)) in MASTER.iter().zip(before.iter().zip(primary_keys(&plain))) {
        assert_ne!(b, &a, "{t}'s primary key was rebuilt");
    }
    assert_eq!(master_schema(&plain), schema);
    assert_table_matches(&plain, "issue_attribute", &day("01-15")[2..]);

    // A session using a referencing table (a consumer's query on issue_attribute) keeps
    // issue's key in place rather than queueing that table's readers behind the load; the
    // issuer's key, which only issue refers to, is rebuilt.
    let busy = Db::new("pk_busy");
    let before = primary_keys(&busy);
    let c = cluster();
    let mut reader = psql_cmd(&c.bin, c.port, &busy.name)
        .args([
            "-c",
            "BEGIN",
            "-c",
            "SELECT count(*) FROM issue_attribute",
            "-c",
            "SELECT pg_sleep(60)",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let reading = "SELECT count(*) FROM pg_locks WHERE relation = 'issue_attribute'::regclass \
                   AND mode = 'AccessShareLock' AND granted";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while busy.sql(reading).trim() == "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the reader never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (code, v, err) = load(&busy, &day("01-15")[..2]);
    busy.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%'",
    );
    let _ = reader.wait();
    assert_eq!(code, 0, "{err}");
    assert!(paths(&v).iter().all(|(p, _)| p == "direct"), "{v}");
    assert!(
        err.contains("a referencing table is in use; the primary key stays in place"),
        "{err}"
    );
    let after = primary_keys(&busy);
    assert_ne!(before[0], after[0], "issuer's key was rebuilt");
    assert_eq!(before[1], after[1], "issue's key stayed");
    assert_eq!(master_schema(&busy), schema);

    // Each key has something a rebuild would lose or that would refuse the drop: a table of
    // another role refers to issuer's, a view depends on issue's, issue_attribute's has a
    // comment. All three stay as they are, and the load is the same.
    let kept = Db::new("pk_kept");
    let owner = format!("own_{}", kept.name);
    let other = format!("oth_{}", kept.name);
    kept.sql(&least_privilege_grants(&owner, &kept.name));
    kept.script(&format!(
        "GRANT REFERENCES ON {refs} TO {owner}; \
         ALTER TABLE issuer OWNER TO {owner}; ALTER TABLE issue OWNER TO {owner}; \
         ALTER TABLE issue_attribute OWNER TO {owner}; \
         CREATE ROLE {other}; \
         CREATE TABLE dba_watch (issuer_num varchar(6) REFERENCES issuer); \
         ALTER TABLE dba_watch OWNER TO {other}; \
         CREATE VIEW dba_issue AS SELECT issuer_num, issue_num, issue_desc_1 FROM issue \
             GROUP BY issuer_num, issue_num; \
         COMMENT ON CONSTRAINT issue_attribute_pkey ON issue_attribute IS 'one per issue';",
        refs = REF_TABLES.join(", ")
    ));
    let schema = master_schema(&kept);
    let before = primary_keys(&kept);
    // An index build needs CREATE on the table's schema too, which PostgreSQL 15 does not
    // give every role on public: without it the owner's empty tables take the staged path
    // (auto), or are refused with 77 (always), instead of failing half-way.
    let snapshot = kept.snapshot();
    let (code, _, err) = run(kept
        .loader()
        .env("CUSIP_DB_USER", &owner)
        .arg("--initial-load=always")
        .arg(&day("01-15")[0]));
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains("needs CREATE on its schema public")
            && err.contains("GRANT CREATE ON SCHEMA public"),
        "{err}"
    );
    assert_eq!(kept.snapshot(), snapshot);
    let (code, v, err) = load_as(&kept, &owner, &day("01-15")[..1]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        paths(&v)[0],
        (
            "staged".to_string(),
            format!(
                "issuer is empty, but {owner} may not create in its schema public (the direct \
                 path rebuilds its indexes there)"
            )
        )
    );
    kept.sql("TRUNCATE issuer CASCADE; DELETE FROM load_journal");
    kept.sql(&format!("GRANT CREATE ON SCHEMA public TO {owner}"));
    let (code, v, err) = load_as(&kept, &owner, &day("01-15"));
    assert_eq!(code, 0, "{err}");
    assert!(paths(&v).iter().all(|(p, _)| p == "direct"), "{v}");
    assert_eq!(primary_keys(&kept), before, "no primary key was dropped");
    assert_eq!(master_schema(&kept), schema);
    assert_eq!(
        kept.sql("SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint WHERE conname = 'issue_attribute_pkey'").trim(),
        "one per issue"
    );
    for t in MASTER {
        assert_eq!(plain.dump(t), kept.dump(t), "{t}");
    }
}

/// [`load`] as another role.
fn load_as(db: &Db, role: &str, files: &[PathBuf]) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(db
        .loader()
        .env("CUSIP_DB_USER", role)
        .args(["--output", "json"])
        .args(files));
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v, err)
}

/// The lines of a sample file without its trailer, and the trailer.
fn records_and_trailer(path: &std::path::Path) -> (Vec<String>, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let trailer = lines.pop().unwrap();
    assert!(trailer.starts_with("999999"), "{trailer}");
    (lines, trailer)
}

#[test]
fn an_initial_load_copies_straight_in_unless_a_key_repeats_or_a_parent_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d15 = day("01-15");
    // The sample day is sorted without repeats: COPY goes straight into the tables.
    let direct = Db::new("init_direct");
    let (code, _, err) = run(direct.loader().args(&d15).arg("--initial-load"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.matches("copied into the empty table").count(),
        3,
        "{err}"
    );
    assert!(!err.contains("taking the staged path"), "{err}");

    // The issue file with its fifth record repeated at the end, and the same records
    // shuffled: both leave the direct path (the repeat) or the ascending shortcut (the
    // shuffle), and give exactly what the default merge gives.
    let (mut recs, trailer) = records_and_trailer(&d15[1]);
    let mut shuffled = recs.clone();
    shuffled.reverse();
    shuffled.swap(0, recs.len() / 2);
    recs.push(recs[4].clone());
    let repeated = write(
        dir.path(),
        "CED01-15E.PIP",
        (recs.join("\n") + "\n" + &trailer + "\n").as_bytes(),
    );
    let shuffled_file = dir.path().join("shuffled");
    std::fs::create_dir(&shuffled_file).unwrap();
    let shuffled = write(
        &shuffled_file,
        "CED01-15E.PIP",
        (shuffled.join("\n") + "\n" + &trailer + "\n").as_bytes(),
    );
    for (tag, file, repeats) in [
        ("init_repeat", &repeated, 1),
        ("init_shuffled", &shuffled, 0),
    ] {
        let safe = Db::new(&format!("{tag}_safe"));
        let fast = Db::new(tag);
        for db in [&safe, &fast] {
            assert_eq!(run(db.loader().arg(&d15[0])).0, 0);
        }
        let (code, vs, err) = load(&safe, &[file.clone(), "--initial-load=never".into()]);
        assert_eq!(code, 0, "{err}");
        let (code, vf, err) = load(&fast, &[file.clone(), "--initial-load".into()]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(counts(&vf, 0)[4], repeats, "{tag}");
        assert_eq!(counts(&vs, 0), counts(&vf, 0), "{tag}");
        assert_eq!(safe.dump("issue"), fast.dump("issue"), "{tag}");
        assert_eq!(initial_flags(&vf), [true], "{tag}");
        let (path, why) = &paths(&vf)[0];
        if repeats > 0 {
            assert_eq!(path, "rebuild", "{tag}");
            assert!(
                why.starts_with("issue is empty and ")
                    && why.contains(", but ")
                    && why.contains("23505"),
                "{why}"
            );
        } else {
            assert_eq!(path, "direct", "{tag}");
        }
        if repeats > 0 {
            assert!(
                err.contains("taking the staged path") && err.contains("23505"),
                "{err}"
            );
        }
    }

    // A missing parent: the direct COPY is undone, and the staged path names the line.
    let db = Db::new("init_fk");
    assert_eq!(run(db.loader().args(&d15[..2])).0, 0);
    let schema = master_schema(&db);
    let before = db.snapshot();
    let (code, _, err) = run(db
        .loader()
        .arg(testdata("bad/fkissue-A.PIP"))
        .arg("--initial-load"));
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("taking the staged path"), "{err}");
    assert!(
        err.contains("line 3") && err.contains("issuer_num+issue_num"),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);
    assert_eq!(master_schema(&db), schema);
}

#[test]
fn a_check_the_database_does_not_enforce_at_once_still_runs_before_the_merge() {
    // The staged code check is left to the foreign key only while that key is validated
    // and checked at every statement; otherwise the loader checks first, as before.
    for (tag, alter) in [
        ("fk_dropped", "ALTER TABLE issue DROP CONSTRAINT issue_issue_status_fk"),
        (
            "fk_deferred",
            "ALTER TABLE issue ALTER CONSTRAINT issue_issue_status_fk DEFERRABLE INITIALLY DEFERRED",
        ),
    ] {
        let db = Db::new(tag);
        assert_eq!(load(&db, &day("01-15")).0, 0);
        db.sql(alter);
        let before = db.snapshot();
        let (code, _, err) = run(db.loader().arg(testdata("bad/badcode-E.PIP")));
        assert_eq!(code, 65, "{tag}: {err}");
        assert!(
            err.contains("line 2") && err.contains("column issue_status") && err.contains("not a known code"),
            "{tag}: {err}"
        );
        assert_eq!(db.snapshot(), before, "{tag}");
    }
}

/// A generated day and its next day (full files: 2 % of issues changed, 1 % new), sorted by
/// key like the real files, in a temp dir the caller keeps.
fn generated_days(issues: u32) -> (tempfile::TempDir, Vec<PathBuf>, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    for extra in [
        &[][..],
        &["--next-of", "05-01", "--changed-pct", "2", "--new-pct", "1"],
    ] {
        let ok = Command::new(generator())
            .args(["--issues", &issues.to_string(), "--seed", "11"])
            .args(if extra.is_empty() {
                &["--date", "05-01"][..]
            } else {
                extra
            })
            .arg("--out")
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "the generator failed");
    }
    let files = |d: &str| {
        ["R", "E", "A"]
            .map(|t| dir.path().join(format!("CED{d}{t}.PIP")))
            .to_vec()
    };
    let (d1, d2) = (files("05-01"), files("05-02"));
    (dir, d1, d2)
}

fn compared(table: &str, staged: u64, records: u64) -> String {
    format!("compared with {table} in the loader: {staged} of {records} records new or changed")
}

#[test]
fn a_sorted_file_is_compared_in_the_loader_and_only_what_changed_is_staged() {
    let (_dir, d1, d2) = generated_days(2000);
    let db = Db::new("cmp_loader");
    let (code, _, err) = load(&db, &d1);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("in the loader"), "empty tables: {err}");

    // Unchanged: nothing staged, nothing written.
    let before = db.snapshot();
    let mut again = d1.clone();
    again.push("--force".into());
    let (code, v, err) = load(&db, &again);
    assert_eq!(code, 0, "{err}");
    for (i, table) in MASTER.iter().enumerate() {
        let [records, inserted, updated, unchanged, _] = counts(&v, i);
        assert_eq!((inserted, updated, unchanged), (0, 0, records), "{table}");
        assert!(err.contains(&compared(table, 0, records)), "{table}: {err}");
    }
    assert_eq!(db.snapshot(), before);

    // The next day: exactly the new and changed rows are staged, and the tables are the
    // files' contents, later winning.
    let (code, v, err) = load(&db, &d2);
    assert_eq!(code, 0, "{err}");
    let mut loader_counts = Vec::new();
    for (i, table) in MASTER.iter().enumerate() {
        let [records, inserted, updated, unchanged, repeated] = counts(&v, i);
        assert_eq!(repeated, 0);
        // 80 issuers give no new one at 1 %; the issue files have new rows.
        assert!(updated > 0 && unchanged > 0, "{table}: {v}");
        assert!(inserted > 0 || i == 0, "{table}: {v}");
        assert_eq!(inserted + updated + unchanged, records);
        assert!(
            err.contains(&compared(table, inserted + updated, records)),
            "{table}: {err}"
        );
        assert_table_matches(&db, table, &[d1[i].clone(), d2[i].clone()]);
        loader_counts.push(counts(&v, i));
    }

    // The same two days where the keys do not sort byte-wise (a schema from before keys
    // were declared COLLATE "C", on a database whose default is a language collation):
    // compared in the database, with the same counts and the same tables.
    let other = Db::empty("cmp_database");
    let collation = other.sql(
        "SELECT collname FROM pg_collation WHERE collname IN ('und-x-icu', 'C.utf8') \
         ORDER BY collname DESC LIMIT 1",
    );
    let collation = collation.trim();
    assert!(!collation.is_empty(), "no non-C collation to test with");
    let schema = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.sql"))
        .unwrap()
        .replace("COLLATE \"C\"", &format!("COLLATE \"{collation}\""));
    psql_stdin(&other.name, &schema, b"");
    assert_eq!(load(&other, &d1).0, 0);
    let (code, vo, err) = load(&other, &d2);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("in the loader"), "{err}");
    assert!(
        err.contains("do not use collation \"C\"; comparing in the database"),
        "{err}"
    );
    for (i, table) in MASTER.iter().enumerate() {
        assert_eq!(counts(&vo, i), loader_counts[i], "{table}");
        let sorted = |d: &Db| {
            let mut lines: Vec<String> = d.dump(table).lines().map(String::from).collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted(&db), sorted(&other), "{table}");
    }
}

#[test]
fn a_file_whose_keys_stop_ascending_is_compared_in_the_database_instead() {
    let (dir, d1, d2) = generated_days(500);
    let db = Db::new("cmp_unsorted");
    assert_eq!(load(&db, &d1[..2]).0, 0);
    // Swap the 10th and 11th records of the next day's issue file.
    let text = std::fs::read_to_string(&d2[1]).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(9, 10);
    let swapped = write(
        dir.path(),
        "CED05-02E.PIP",
        (lines.join("\n") + "\n").as_bytes(),
    );
    let (code, v, err) = load(&db, std::slice::from_ref(&swapped));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("the keys go backwards at line 11; compared in the database"),
        "{err}"
    );
    assert!(!err.contains("in the loader:"), "{err}");
    let [records, inserted, updated, unchanged, repeated] = counts(&v, 0);
    assert_eq!(repeated, 0);
    assert_eq!(inserted + updated + unchanged, records);
    assert!(inserted > 0 && updated > 0);
    assert_table_matches(&db, "issue", &[d1[1].clone(), swapped]);
}

#[test]
fn with_a_foreign_key_dropped_every_row_is_checked_not_only_the_changed_ones() {
    // Comparing in the loader stages only changed rows, so it is used only while the
    // table's foreign keys hold the unchanged rows to the same rules. Here one is dropped
    // and a parent deleted under rows the file repeats unchanged: the whole file is staged
    // and checked, and refused exactly as the first load would have been.
    let db = Db::new("cmp_fk_dropped");
    assert_eq!(load(&db, &day("01-15")[..2]).0, 0);
    db.sql("ALTER TABLE issue DROP CONSTRAINT issue_issuer_fk");
    let first = std::fs::read_to_string(&day("01-15")[1]).unwrap();
    let issuer = &first[..6];
    db.sql(&format!("DELETE FROM issuer WHERE issuer_num = '{issuer}'"));
    let before = db.snapshot();
    let (code, _, err) = run(db.loader().arg(&day("01-15")[1]).arg("--force"));
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("a check is not enforced by a foreign key; comparing in the database"),
        "{err}"
    );
    assert!(
        err.contains("line 1,") && err.contains(&format!("\"{issuer}\" has no row in issuer")),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);
}

#[test]
fn adjacent_repeats_keep_the_comparison_in_the_loader_with_the_same_counts() {
    let (dir, d1, d2) = generated_days(500);
    // The next day's issue file holding a record's amendments right after it, as a day's
    // successive transactions do: an amendment the record then undoes (line 5), a record
    // then its amendment (line 20), a record three times over unchanged (line 30).
    let (recs, trailer) = records_and_trailer(&d2[1]);
    let amend = |r: &str| {
        let mut f: Vec<&str> = r.split('|').collect();
        f[3] = "AMENDED";
        f.join("|")
    };
    let mut out: Vec<String> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        match i {
            4 => out.extend([amend(r), r.clone()]),
            19 => out.extend([r.clone(), amend(r)]),
            29 => out.extend([r.clone(), r.clone(), r.clone()]),
            _ => out.push(r.clone()),
        }
    }
    let sub = dir.path().join("repeats");
    std::fs::create_dir(&sub).unwrap();
    let file = write(
        &sub,
        "CED05-02E.PIP",
        (out.join("\n") + "\n" + &trailer + "\n").as_bytes(),
    );

    // Compared in the loader, and the same file where a dropped foreign key makes the
    // loader stage it whole and resolve the repeats in the database: same counts, same
    // examples, same table, and the oracle's.
    let loader = Db::new("rep_loader");
    let database = Db::new("rep_database");
    for db in [&loader, &database] {
        assert_eq!(load(db, &d1[..2]).0, 0);
    }
    database.sql("ALTER TABLE issue DROP CONSTRAINT issue_issue_status_fk");
    let (code, vl, err) = load(&loader, std::slice::from_ref(&file));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("go backwards"), "{err}");
    let (path, why) = &paths(&vl)[0];
    assert_eq!(path, "compared", "{vl}");
    assert!(why.ends_with(", 4 repeating the key before them"), "{why}");
    let (code, vd, err) = load(&database, std::slice::from_ref(&file));
    assert_eq!(code, 0, "{err}");
    assert_eq!(paths(&vd)[0].0, "staged", "{vd}");

    let [records, inserted, updated, unchanged, repeated] = counts(&vl, 0);
    assert_eq!(records, recs.len() as u64 + 4);
    assert_eq!(repeated, 4);
    assert_eq!(inserted + updated + unchanged, records - repeated);
    assert_eq!(counts(&vl, 0), counts(&vd, 0));
    let examples = |v: &serde_json::Value| v["files"][0]["repeated_examples"].clone();
    assert_eq!(examples(&vl), examples(&vd));
    let lines: Vec<Vec<u64>> = examples(&vl)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(lines, [vec![5, 6], vec![21, 22], vec![32, 33, 34]]);
    assert_eq!(loader.dump("issue"), database.dump("issue"));
    assert_table_matches(&loader, "issue", &[d1[1].clone(), file]);
}

#[test]
fn a_small_file_is_compared_in_the_database_by_default() {
    // The test harness compares every file in the loader (CUSIP_COMPARE_MIN_BYTES=0); the
    // default sends files under a megabyte, such as the sample delta, to the database.
    let by_default = Db::new("small_default");
    let in_loader = Db::new("small_in_loader");
    for db in [&by_default, &in_loader] {
        assert_eq!(load(db, &day("01-15")).0, 0);
    }
    let (code, out, err) = run(by_default
        .loader()
        .env_remove("CUSIP_COMPARE_MIN_BYTES")
        .args(day("01-16"))
        .args(["--output", "json"]));
    assert_eq!(code, 0, "{err}");
    let vd = summary(&out);
    for (path, why) in paths(&vd) {
        assert_eq!(path, "staged", "{vd}");
        assert!(
            why.starts_with("a small file (") && why.contains("bytes, under 1048576)"),
            "{why}"
        );
    }
    let (code, vl, err) = load(&in_loader, &day("01-16"));
    assert_eq!(code, 0, "{err}");
    assert!(paths(&vl).iter().all(|(p, _)| p == "compared"), "{vl}");
    for i in 0..3 {
        assert_eq!(counts(&vd, i), counts(&vl, i), "file {i}");
    }
    for t in MASTER {
        assert_eq!(by_default.dump(t), in_loader.dump(t), "{t}");
    }
}
