//! `--status`: what the journal says is loaded, per table, in both formats; never loaded,
//! a failure after the newest load, days without a load; a database without the schema; the
//! one grant it needs.
//!
//! The journal rows of real loads are given their business dates here in SQL (the MM-DD of
//! the name, in 2024), so that these tests do not depend on which loader version fills them.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use chrono::{Datelike, NaiveDate, Utc, Weekday};
use common::*;

/// The loader in `--status` mode, with the clock of a known zone.
fn status(db: &Db, args: &[&str]) -> Command {
    let mut c = db.loader();
    c.env("TZ", "UTC").arg("--status").args(args);
    c
}

fn json(cmd: &mut Command) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(cmd.args(["--output", "json"]));
    (code, summary(&out), err)
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Gives every journal row whose name has a date that date in 2024.
fn date_the_journal(db: &Db) {
    db.sql(
        "UPDATE load_journal SET business_date = \
           make_date(2024, substr(file_name, 4, 2)::int, substr(file_name, 7, 2)::int) \
         WHERE file_name ~ '^CED[0-9]{2}-[0-9]{2}'",
    );
}

fn load(db: &Db, files: &[std::path::PathBuf]) {
    let (code, _, err) = run(db.loader().args(files));
    assert_eq!(code, 0, "{err}");
}

/// The last `n` business days up to `today`, oldest first: the test's own count.
fn weekdays_up_to(today: NaiveDate, n: usize) -> Vec<NaiveDate> {
    let mut days = Vec::new();
    let mut day = today;
    while days.len() < n {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            days.push(day);
        }
        day = day.pred_opt().unwrap();
    }
    days.reverse();
    days
}

fn dates(v: &serde_json::Value) -> Vec<NaiveDate> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| d(x.as_str().unwrap()))
        .collect()
}

#[test]
fn a_fresh_schema_was_never_loaded() {
    let db = Db::new("fresh");
    let (code, out, err) = run(&mut status(&db, &[]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("TABLE "), "{out}");
    assert_eq!(lines[1], "issuer           never loaded", "{out}");
    assert_eq!(lines[2], "issue            never loaded", "{out}");
    assert_eq!(lines[3], "issue_attribute  never loaded", "{out}");
    assert!(
        out.contains("issuer: no load for 10 of the last 10 business days"),
        "{out}"
    );

    let (code, v, err) = json(&mut status(&db, &[]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["exit_code"], 0);
    assert!(v["error"].is_null());
    let today = Utc::now().date_naive();
    assert_eq!(dates(&v["business_days"]), weekdays_up_to(today, 10));
    let tables: Vec<&str> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["issuer", "issue", "issue_attribute"]);
    for t in v["tables"].as_array().unwrap() {
        assert!(t["last_loaded"].is_null(), "{t}");
        assert!(t["failed_since"].is_null(), "{t}");
        assert_eq!(t["days_without_load"].as_array().unwrap().len(), 10, "{t}");
    }
}

#[test]
fn the_newest_load_of_each_table_with_its_date_and_counts() {
    let db = Db::new("twodays");
    load(&db, &day("01-15"));
    load(&db, &day("01-16"));
    date_the_journal(&db);
    let before = (db.snapshot(), db.journal());

    let (code, v, err) = json(&mut status(&db, &["--date", "2024-01-16"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["today"], "2024-01-16");
    let journal = db.sql(
        "SELECT file_type, file_name, records_read, inserted, updated, unchanged, \
                to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') \
           FROM load_journal WHERE file_name LIKE 'CED01-16%' ORDER BY id",
    );
    let rows: Vec<Vec<&str>> = journal.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 3, "{journal}");
    for (t, row) in v["tables"].as_array().unwrap().iter().zip(&rows) {
        assert_eq!(t["type"], row[0]);
        let l = &t["last_loaded"];
        assert_eq!(l["file"], row[1], "{t}");
        assert_eq!(l["business_date"], "2024-01-16", "{t}");
        for (field, want) in [
            ("records", row[2]),
            ("inserted", row[3]),
            ("updated", row[4]),
            ("unchanged", row[5]),
        ] {
            assert_eq!(l[field].to_string(), want, "{field} of {t}");
        }
        assert!(
            l["loaded_at"].as_str().unwrap().starts_with(row[6]),
            "{t} against {}",
            row[6]
        );
        assert!(l["source"].as_str().unwrap().ends_with(row[1]), "{t}");
        assert!(t["failed_since"].is_null(), "{t}");
        // 2024-01-03 … 2024-01-16, less the two loaded days.
        let missed = dates(&t["days_without_load"]);
        assert_eq!(missed.len(), 8, "{t}");
        assert!(!missed.contains(&d("2024-01-15")) && !missed.contains(&d("2024-01-16")));
        assert_eq!(missed.first(), Some(&d("2024-01-03")));
    }

    let (code, out, err) = run(&mut status(&db, &["--date", "2024-01-16"]));
    assert_eq!(code, 0, "{err}");
    let issuer = out.lines().find(|l| l.starts_with("issuer ")).unwrap();
    let cells: Vec<&str> = issuer.split_whitespace().collect();
    assert_eq!(&cells[1..3], ["CED01-16R.PIP", "2024-01-16"], "{out}");
    assert_eq!(&cells[cells.len() - 4..], &rows[0][2..6], "{out}");
    assert!(
        out.contains(
            "issue_attribute: no load for 8 of the last 10 business days (2024-01-03 to \
             2024-01-16): 2024-01-03, 2024-01-04"
        ),
        "{out}"
    );
    // It read; it wrote nothing.
    assert_eq!((db.snapshot(), db.journal()), before);
}

#[test]
fn a_failure_after_the_newest_load_is_shown_until_a_load_succeeds() {
    let db = Db::new("failed");
    load(&db, &day("01-15"));
    // A file of the issue table is rejected (the journal records the failed attempt), and an
    // issuer load was interrupted.
    let (code, _, err) = run(db.loader().arg(testdata("bad/baddate-E.PIP")));
    assert_eq!(code, 65, "{err}");
    db.sql(
        "INSERT INTO load_journal (file_name, source, file_type, started_at, finished_at, status, \
                                   error, business_date) \
         VALUES ('CED01-16R.PIP', '/d/CED01-16R.PIP', 'issuer', now(), now(), 'interrupted', \
                 E'interrupted; rolled back\\nsecond line', '2024-01-16')",
    );
    date_the_journal(&db);
    let (code, v, err) = json(&mut status(&db, &["--date", "2024-01-16"]));
    assert_eq!(code, 0, "{err}");
    let (issuer, issue, attr) = (&v["tables"][0], &v["tables"][1], &v["tables"][2]);
    assert_eq!(issuer["last_loaded"]["file"], "CED01-15R.PIP");
    assert_eq!(issuer["failed_since"]["status"], "interrupted");
    assert_eq!(issuer["failed_since"]["file"], "CED01-16R.PIP");
    assert_eq!(issuer["failed_since"]["business_date"], "2024-01-16");
    // The first line only.
    assert_eq!(issuer["failed_since"]["error"], "interrupted; rolled back");
    assert_eq!(issue["failed_since"]["status"], "failed");
    assert_eq!(issue["failed_since"]["file"], "baddate-E.PIP");
    assert!(issue["failed_since"]["business_date"].is_null());
    let error = issue["failed_since"]["error"].as_str().unwrap();
    assert!(
        error.starts_with("baddate-E.PIP: rejected") && !error.contains('\n'),
        "{error}"
    );
    assert!(attr["failed_since"].is_null());
    let (code, out, err) = run(&mut status(&db, &["--date", "2024-01-16"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("issue: FAILED since the newest load: baddate-E.PIP at "),
        "{out}"
    );
    assert!(
        out.contains("issuer: INTERRUPTED since the newest load: CED01-16R.PIP (2024-01-16) at "),
        "{out}"
    );
    // A failed attempt does not fill its day.
    assert!(
        out.contains("issuer: no load for 9 of the last 10 business days"),
        "{out}"
    );

    // The next successful load puts the failures behind it.
    load(&db, &day("01-16")[..2]);
    date_the_journal(&db);
    let (code, v, err) = json(&mut status(&db, &["--date", "2024-01-16"]));
    assert_eq!(code, 0, "{err}");
    assert!(v["tables"][0]["failed_since"].is_null(), "{v}");
    assert!(v["tables"][1]["failed_since"].is_null(), "{v}");
    assert_eq!(v["tables"][1]["last_loaded"]["file"], "CED01-16E.PIP");
    assert_eq!(v["tables"][2]["last_loaded"]["file"], "CED01-15A.PIP");
}

#[test]
fn days_without_a_load_are_the_business_days_of_the_last_ten_with_none() {
    let db = Db::new("gaps");
    let today = Utc::now().date_naive();
    let window = weekdays_up_to(today, 10);
    // Loaded on every business day but two; one of those two only failed, the other was
    // never tried. A Saturday load and one from before the window fill nothing.
    let (failed_day, untried) = (window[3], window[7]);
    let saturday = window
        .iter()
        .find_map(|d| d.succ_opt().filter(|s| s.weekday() == Weekday::Sat))
        .unwrap();
    let mut values = Vec::new();
    for (i, day) in window
        .iter()
        .chain([&saturday, &(window[0] - chrono::Duration::days(7))])
        .enumerate()
    {
        let status = if *day == failed_day {
            "failed"
        } else if *day == untried {
            continue;
        } else {
            "loaded"
        };
        values.push(format!(
            "('CED{:02}-{:02}R.PIP', 's3://b/pif/x{i}', 'issuer', now(), now(), '{status}', \
              0, 0, 0, 0, DATE '{day}')",
            day.month(),
            day.day()
        ));
    }
    // A date whose file was skipped because the table already holds its content is loaded.
    db.sql(&format!(
        "INSERT INTO load_journal (file_name, source, file_type, started_at, finished_at, status, \
                                   records_read, inserted, updated, unchanged, business_date) \
         VALUES {}; \
         UPDATE load_journal SET status = 'already loaded' WHERE business_date = DATE '{}'",
        values.join(", "),
        window[9]
    ));
    let (code, v, err) = json(&mut status(&db, &[]));
    assert_eq!(code, 0, "{err}");
    if Utc::now().date_naive() != today {
        eprintln!("the day changed while the test ran; not comparing");
        return;
    }
    assert_eq!(dates(&v["business_days"]), window);
    let issuer = &v["tables"][0];
    assert_eq!(
        dates(&issuer["days_without_load"]),
        vec![failed_day, untried]
    );
    let missed: BTreeSet<NaiveDate> = dates(&v["tables"][1]["days_without_load"])
        .into_iter()
        .collect();
    assert_eq!(missed.len(), 10, "no issue file was ever loaded");
    let (code, out, err) = run(&mut status(&db, &[]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "issuer: no load for 2 of the last 10 business days ({} to {}): \
             {failed_day}, {untried}\n",
            window[0], window[9]
        )),
        "{out}"
    );
    // Every day loaded: said so.
    db.sql(&format!(
        "UPDATE load_journal SET status = 'loaded' WHERE business_date = DATE '{failed_day}'; \
         INSERT INTO load_journal (file_name, source, file_type, started_at, status, business_date) \
         VALUES ('x', 'x', 'issuer', now(), 'loaded', DATE '{untried}')"
    ));
    let (code, out, err) = run(&mut status(&db, &[]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("issuer: loaded for each of the last 10 business days"),
        "{out}"
    );
}

#[test]
fn without_the_schema_it_exits_78_and_says_to_apply_it() {
    let db = Db::empty("noschema");
    let (code, out, err) = run(&mut status(&db, &[]));
    assert_eq!(code, 78, "{err}");
    assert!(
        out.starts_with("error: --status: this database has no load_journal"),
        "{out}"
    );
    assert!(err.contains("--init-schema"), "{err}");
    let (code, v, _) = json(&mut status(&db, &[]));
    assert_eq!(code, 78);
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], 78);
    assert!(
        v["error"].as_str().unwrap().contains("--init-schema"),
        "{v}"
    );
    assert!(v["tables"].as_array().unwrap().is_empty());

    // A journal an older loader made, without business dates.
    let db = Db::new("olderjournal");
    db.sql("ALTER TABLE load_journal DROP COLUMN business_date");
    let (code, _, err) = run(&mut status(&db, &[]));
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("load_journal has no business_date column") && err.contains("--init-schema"),
        "{err}"
    );
}

#[test]
fn it_needs_only_select_on_the_journal() {
    let db = Db::new("reader");
    load(&db, &day("01-15"));
    date_the_journal(&db);
    let role = format!("reader_{}", db.name);
    db.sql(&format!(
        "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA public TO {role}; \
         GRANT SELECT ON load_journal TO {role}"
    ));
    let (code, v, err) = json(status(&db, &["--date", "2024-01-15"]).env("CUSIP_DB_USER", &role));
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["tables"][2]["last_loaded"]["file"], "CED01-15A.PIP");
    db.sql(&format!("REVOKE SELECT ON load_journal FROM {role}"));
    let (code, _, err) = run(status(&db, &[]).env("CUSIP_DB_USER", &role));
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("GRANT SELECT ON load_journal"), "{err}");
}

#[test]
fn it_is_a_mode_of_its_own() {
    let db = Db::new("usage");
    for extra in [&["--init-schema"][..], &["--validate-only"], &["--check"]] {
        let (code, _, err) = run(&mut status(&db, extra));
        assert_eq!(code, 64, "{extra:?}: {err}");
    }
    let (code, _, err) = run(status(&db, &[]).arg(testdata("CED01-15R.PIP")));
    assert_eq!(code, 64, "{err}");
    assert_eq!(db.count("issuer"), 0);
}
