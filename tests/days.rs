//! Day after day: the journal's rerun rule, business dates and their order, date ranges,
//! and the day the loader thinks it is (issue 20). S3's side of the same rules is in
//! `tests/s3.rs`.

mod common;

use std::path::Path;

use common::*;

/// A directory holding the sample files of `days` (`("01-15", "2024-01-12")`: testdata's
/// 01-15 files, named as 01-12's).
fn dir_with(days: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in days {
        let to = &to[5..];
        for (t, f) in ["R", "E", "A"].iter().zip(day(from)) {
            std::fs::copy(f, dir.path().join(format!("CED{to}{t}.PIP"))).unwrap();
        }
    }
    dir
}

fn json(cmd: &mut std::process::Command) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(cmd.args(["--output", "json"]));
    (code, summary(&out), err)
}

/// `(file, date, status)` of each row of a summary.
fn rows(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["date"].as_str().unwrap_or("-").to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn by_date(db: &Db, dir: &Path, date: &str) -> (i32, serde_json::Value, String) {
    json(db.loader().arg("--dir").arg(dir).args(["--date", date]))
}

#[test]
fn a_forced_repair_of_an_older_day_then_the_next_day_again_loads_it() {
    let db = Db::new("repair");
    let dir = dir_with(&[("01-15", "2024-01-15"), ("01-16", "2024-01-16")]);
    assert_eq!(by_date(&db, dir.path(), "2024-01-15").0, 0);
    assert_eq!(by_date(&db, dir.path(), "2024-01-16").0, 0);
    // The operator's repair: 01-15 again, forced over the newer day.
    let (code, v, err) =
        json(
            db.loader()
                .arg("--dir")
                .arg(dir.path())
                .args(["--date", "2024-01-15", "--force"]),
        );
    assert_eq!(code, 0, "{err}");
    assert!(rows(&v).iter().all(|r| r.2 == "loaded"), "{v}");
    for (i, t) in MASTER.iter().enumerate() {
        assert_table_matches(&db, t, &[day("01-16")[i].clone(), day("01-15")[i].clone()]);
    }
    // The schedule's rerun of 01-16: loaded again (it is not the newest load), not skipped.
    let (code, v, err) = by_date(&db, dir.path(), "2024-01-16");
    assert_eq!(code, 0, "{err}");
    assert!(rows(&v).iter().all(|r| r.2 == "loaded"), "{v}");
    assert_both_days(&db);
    // And once more: now it is the newest load, so skipped.
    let before = db.snapshot();
    let (code, v, _) = by_date(&db, dir.path(), "2024-01-16");
    assert_eq!(code, 0);
    assert!(rows(&v).iter().all(|r| r.2 == "already_loaded"), "{v}");
    assert_eq!(db.snapshot(), before);
}

#[test]
fn an_older_file_is_refused_naming_both_dates_and_loads_when_forced() {
    let db = Db::new("older");
    let dir = dir_with(&[("01-15", "2024-01-15"), ("01-16", "2024-01-16")]);
    assert_eq!(by_date(&db, dir.path(), "2024-01-15").0, 0);
    assert_eq!(by_date(&db, dir.path(), "2024-01-16").0, 0);
    // A re-delivered 01-15 issuer file with new content: never loaded, and older.
    let redelivered = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(&day("01-15")[0]).unwrap();
    bytes.insert(0, b'\n');
    std::fs::write(redelivered.path().join("CED01-15R.PIP"), &bytes).unwrap();
    let before = db.snapshot();
    let journal_before = db.journal().len();
    let (code, v, err) = json(db.loader().arg("--dir").arg(redelivered.path()).args([
        "--date",
        "2024-01-15",
        "--allow-missing",
    ]));
    assert_eq!(code, 65, "{v} {err}");
    let msg = v["error"].as_str().unwrap_or_default().to_string()
        + v["files"][0]["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("2024-01-15") && msg.contains("2024-01-16") && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(db.snapshot(), before, "a refused file changed the tables");
    // The refusal is journalled as a failed attempt.
    let j = db.journal();
    assert!(j.len() > journal_before);
    assert_eq!(j.last().unwrap()[1], "failed");
    // Forced, it loads (a repair).
    let (code, v, err) = json(db.loader().arg("--dir").arg(redelivered.path()).args([
        "--date",
        "2024-01-15",
        "--allow-missing",
        "--force",
    ]));
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["files"][0]["status"], "loaded");
}

#[test]
fn the_same_date_with_new_content_loads_and_the_business_date_is_journalled() {
    let db = Db::new("redeliver");
    let dir = dir_with(&[("01-15", "2024-01-15")]);
    assert_eq!(by_date(&db, dir.path(), "2024-01-15").0, 0);
    let mut bytes = std::fs::read(dir.path().join("CED01-15R.PIP")).unwrap();
    bytes.insert(0, b'\n');
    std::fs::write(dir.path().join("CED01-15R.PIP"), &bytes).unwrap();
    let (code, v, err) = by_date(&db, dir.path(), "2024-01-15");
    assert_eq!(code, 0, "{err}");
    let r = rows(&v);
    assert_eq!(r[0].2, "loaded", "{v}");
    assert_eq!(r[1].2, "already_loaded", "{v}");
    assert_eq!(
        db.sql("SELECT DISTINCT business_date FROM load_journal WHERE business_date IS NOT NULL")
            .trim(),
        "2024-01-15"
    );
    // Every successful row carries the content's sha256, the same for both loads of E.
    assert_eq!(
        db.sql("SELECT count(DISTINCT sha256) FROM load_journal WHERE file_type = 'issue'")
            .trim(),
        "1"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM load_journal WHERE sha256 !~ '^[0-9a-f]{64}$'")
            .trim(),
        "0"
    );
}

#[test]
fn a_files_date_comes_from_its_name_in_the_most_recent_year() {
    let db = Db::new("namedate");
    let (code, v, err) = json(db.loader().args(day("01-15")).env("TZ", "UTC"));
    assert_eq!(code, 0, "{err}");
    let today = chrono::Utc::now().date_naive();
    let want = (0..=1)
        .map(|back| {
            chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&today) - back, 1, 15).unwrap()
        })
        .find(|d| *d <= today)
        .unwrap()
        .to_string();
    assert!(rows(&v).iter().all(|r| r.1 == want), "{v}");
    assert!(
        err.contains("in UTC"),
        "the run logs the zone it used: {err}"
    );
    // A name without MM-DD has no business date, and loads.
    let db = Db::new("nodate");
    let plain = tempfile::tempdir().unwrap();
    let f = plain.path().join("issuers-R.PIP");
    std::fs::copy(&day("01-15")[0], &f).unwrap();
    let (code, v, err) = json(db.loader().arg(&f));
    assert_eq!(code, 0, "{err}");
    assert_eq!(rows(&v)[0].1, "-", "{v}");
}

#[test]
fn a_tz_that_cannot_be_resolved_is_refused_before_anything_happens() {
    let db = Db::new("badtz");
    let before = db.snapshot();
    let (code, out, err) = run(db.loader().args(day("01-15")).env("TZ", "America/Nowhere"));
    assert_eq!(code, 78, "{out} {err}");
    assert!(
        err.contains("TZ=America/Nowhere cannot be resolved"),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);
    assert!(db.journal().is_empty());
    // A real zone and a POSIX rule both work.
    for tz in ["America/New_York", "EST5EDT"] {
        let (code, _, err) = run(db
            .loader()
            .arg("--validate-only")
            .args(day("01-15"))
            .env("TZ", tz));
        assert_eq!(code, 0, "{tz}: {err}");
    }
}

/// A week from Friday 2024-01-12 to Tuesday 01-16: Friday holds testdata's 01-15, Monday its
/// 01-16; the weekend and Tuesday (a holiday) have no files.
fn week() -> tempfile::TempDir {
    dir_with(&[("01-15", "2024-01-12"), ("01-16", "2024-01-15")])
}

fn range(db: &Db, dir: &Path, from: &str, to: &str) -> (i32, serde_json::Value, String) {
    json(
        db.loader()
            .arg("--dir")
            .arg(dir)
            .args(["--from-date", from, "--to-date", to]),
    )
}

#[test]
fn a_range_loads_each_date_in_order_and_a_rerun_writes_nothing() {
    let db = Db::new("range");
    let dir = week();
    let (code, v, err) = range(&db, dir.path(), "2024-01-12", "2024-01-16");
    assert_eq!(code, 0, "{err}");
    let got = rows(&v);
    let want: Vec<(String, String, String)> = [
        ("CED01-12R.PIP", "2024-01-12", "loaded"),
        ("CED01-12E.PIP", "2024-01-12", "loaded"),
        ("CED01-12A.PIP", "2024-01-12", "loaded"),
        ("CED01-13?.PIP", "2024-01-13", "no_files"),
        ("CED01-14?.PIP", "2024-01-14", "no_files"),
        ("CED01-15R.PIP", "2024-01-15", "loaded"),
        ("CED01-15E.PIP", "2024-01-15", "loaded"),
        ("CED01-15A.PIP", "2024-01-15", "loaded"),
        ("CED01-16?.PIP", "2024-01-16", "no_files"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_both_days(&db);
    // The table form shows the date of each row too.
    let (code, out, _) = run(db.loader().arg("--dir").arg(dir.path()).args([
        "--from-date",
        "2024-01-12",
        "--to-date",
        "2024-01-16",
    ]));
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().contains("DATE"), "{out}");
    assert!(
        out.contains("2024-01-13") && out.contains("no files"),
        "{out}"
    );
    // That second run, and a third, wrote no rows.
    let before = db.snapshot();
    let (code, v, err) = range(&db, dir.path(), "2024-01-12", "2024-01-16");
    assert_eq!(code, 0, "{err}");
    assert!(
        rows(&v)
            .iter()
            .all(|r| r.2 == "already_loaded" || r.2 == "no_files"),
        "{v}"
    );
    assert_eq!(db.snapshot(), before);
}

#[test]
fn a_range_stops_at_the_first_failure_and_reports_the_rest_not_attempted() {
    let db = Db::new("rangefail");
    let dir = week();
    // Monday's issue file is bad.
    std::fs::copy(
        testdata("bad/badint-E.PIP"),
        dir.path().join("CED01-15E.PIP"),
    )
    .unwrap();
    // And Wednesday has files again.
    for (t, f) in ["R", "E", "A"].iter().zip(day("01-16")) {
        std::fs::copy(f, dir.path().join(format!("CED01-17{t}.PIP"))).unwrap();
    }
    let (code, v, err) = range(&db, dir.path(), "2024-01-12", "2024-01-17");
    assert_eq!(code, 65, "{err}");
    let got = rows(&v);
    let status = |f: &str| got.iter().find(|r| r.0 == f).unwrap().2.clone();
    assert_eq!(status("CED01-12A.PIP"), "loaded");
    assert_eq!(status("CED01-15R.PIP"), "loaded");
    assert_eq!(status("CED01-15E.PIP"), "failed");
    assert_eq!(status("CED01-15A.PIP"), "not_attempted");
    assert_eq!(status("CED01-17R.PIP"), "not_attempted");
    assert_table_matches(&db, "issue", &day("01-15")[1..2]);
}

#[test]
fn a_range_date_lacking_a_type_follows_allow_missing() {
    let db = Db::new("rangemissing");
    let dir = week();
    std::fs::remove_file(dir.path().join("CED01-15A.PIP")).unwrap();
    let (code, v, err) = range(&db, dir.path(), "2024-01-12", "2024-01-16");
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("01-15"), "{err}");
    // Friday loaded; the run stopped at Monday.
    assert_eq!(
        rows(&v).iter().filter(|r| r.2 == "loaded").count(),
        3,
        "{v}"
    );
    assert_eq!(
        db.sql("SELECT max(business_date) FROM load_journal").trim(),
        "2024-01-12"
    );
    // With --allow-missing, Monday's R and E load and A is reported missing.
    let (code, v, err) = json(db.loader().arg("--dir").arg(dir.path()).args([
        "--from-date",
        "2024-01-12",
        "--to-date",
        "2024-01-16",
        "--allow-missing",
    ]));
    assert_eq!(code, 0, "{err}");
    let got = rows(&v);
    assert!(
        got.contains(&("CED01-15E.PIP".into(), "2024-01-15".into(), "loaded".into())),
        "{v}"
    );
    assert!(
        got.iter()
            .any(|r| r.0 == "CED01-15A.PIP" && r.2 == "missing"),
        "{v}"
    );
}

#[test]
fn a_backwards_range_is_a_usage_error() {
    let db = Db::new("rangeback");
    let dir = week();
    let (code, _, err) = run(db.loader().arg("--dir").arg(dir.path()).args([
        "--from-date",
        "2024-01-16",
        "--to-date",
        "2024-01-12",
    ]));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("the range is empty"), "{err}");
}
