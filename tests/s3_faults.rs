//! S3 faults end to end: the real loader against the test moto server behind a fault proxy
//! (`common::s3::fault_proxy`) that answers 500, 503 and `503 SlowDown` in place of the
//! server, cuts bodies, and deletes an object at an exact point of a download.
//!
//! What is promised (docs/operations.md "Loading from S3", docs/design.md "Guarantees"):
//! transient server errors and throttling are retried (the SDK's standard retry: 3 attempts
//! per request; a body that breaks is resumed, `--s3-max-resumes` times); past that budget the
//! loader exits 75 with one clear line and writes nothing; an object deleted during its load
//! is refused (75) and nothing is written; a resume refused for its credentials (a 403, an
//! expired token) is 77 with the expired-credentials hint; a plain rerun then loads.
//!
//! The SDK waits up to 1 s then 2 s (random) between attempts and has no knob for it, so
//! no request here is faulted more than the budget needs.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::s3::{aws_env, fault_proxy, s3, Kind, Rule};
use common::*;

/// The SDK's standard retry: attempts per request.
const SDK_ATTEMPTS: usize = 3;

/// The loader pointed at `db` and at an S3 endpoint (the proxy, or moto itself).
fn loader(db: &Db, endpoint: &str) -> Command {
    let mut c = db.loader();
    for (k, v) in aws_env(endpoint) {
        c.env(k, v);
    }
    c
}

/// A fresh bucket holding `files` under `pif/`, named as given.
fn bucket_with(tag: &str, files: &[PathBuf]) -> String {
    let b = s3().new_bucket(tag);
    for f in files {
        s3().put_file(&b, &key_of(f), f);
    }
    b
}

/// `pif/<file name>`.
fn key_of(f: &std::path::Path) -> String {
    format!("pif/{}", f.file_name().unwrap().to_string_lossy())
}

fn json(cmd: &mut Command) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(cmd.args(["--output", "json"]));
    (code, summary(&out), err)
}

/// The failure is told on one line of stderr holding every `must` string, with no panic and
/// no SDK debug rendering anywhere.
fn assert_clear_failure(err: &str, must: &[&str]) {
    assert!(
        err.lines().any(|l| must.iter().all(|m| l.contains(m))),
        "no stderr line holds all of {must:?}:\n{err}"
    );
    for never in [
        "panicked",
        "DispatchFailure",
        "ServiceError {",
        "Unhandled",
        "raw: Response",
    ] {
        assert!(
            !err.contains(never),
            "no panic or SDK debug dump ({never}):\n{err}"
        );
    }
}

#[test]
fn server_errors_on_list_get_and_resume_are_retried_and_the_date_loads() {
    let db = Db::new("s3f5xx");
    let files = day("01-15");
    let b = bucket_with("f5xx", &files);
    let proxy = fault_proxy(
        s3().port,
        vec![
            // The listing: one 500, then the SDK's retry goes through.
            Rule::internal_error(Kind::List, 1),
            // The first object GET (R) gets a 500, its retry a 503; the third attempt passes.
            Rule::internal_error(Kind::WholeGet, 1),
            Rule::service_unavailable(Kind::WholeGet, 1),
            // A's body breaks at 40 000 bytes; the resume (a ranged GET) gets 500 then 503.
            Rule::cut(Kind::WholeGet, 40_000, 1).key("CED01-15A.PIP"),
            Rule::internal_error(Kind::RangedGet, 1),
            Rule::service_unavailable(Kind::RangedGet, 1),
        ],
    );
    let (code, v, err) =
        json(loader(&db, &proxy.endpoint).args(["--s3-bucket", &b, "--date", "2024-01-15"]));
    assert_eq!(code, 0, "{err}\n{}", proxy.log());
    for i in 0..6 {
        assert_eq!(proxy.served(i), 1, "rule {i}:\n{}", proxy.log());
    }
    // Each fault was retried by the same request, not worked around.
    assert_eq!(proxy.seen(Kind::List, None), 2, "{}", proxy.log());
    assert_eq!(
        proxy.seen(Kind::WholeGet, Some("CED01-15R.PIP")),
        SDK_ATTEMPTS,
        "{}",
        proxy.log()
    );
    assert_eq!(
        proxy.seen(Kind::RangedGet, Some("CED01-15A.PIP")),
        SDK_ATTEMPTS,
        "{}",
        proxy.log()
    );
    let statuses: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["loaded", "loaded", "loaded"], "{v}");
    assert_eq!(v["files"][0]["resumes"], 0, "{v}");
    assert_eq!(v["files"][2]["resumes"], 1, "{v}");
    assert!(err.contains("resuming from byte 40000"), "{err}");
    for (i, t) in MASTER.iter().enumerate() {
        assert_table_matches(&db, t, &files[i..=i]);
    }
    let faults = proxy.hits() as u32;
    score(
        "S3: 500 and 503 on the listing, a GET and a resume are retried",
        1,
        faults,
        faults,
        0,
    );
}

#[test]
fn server_errors_on_head_and_get_of_one_key_are_retried() {
    let db = Db::new("s3fhead");
    let files = day("01-15");
    let b = bucket_with("fhead", &files[..1]);
    let proxy = fault_proxy(
        s3().port,
        vec![
            Rule::service_unavailable(Kind::ObjectHead, 1),
            Rule::internal_error(Kind::ObjectHead, 1),
            Rule::internal_error(Kind::ObjectGet, 1),
            Rule::service_unavailable(Kind::ObjectGet, 1),
        ],
    );
    let (code, v, err) = json(loader(&db, &proxy.endpoint).args([
        "--s3-bucket",
        &b,
        "--s3-key",
        "pif/CED01-15R.PIP",
    ]));
    assert_eq!(code, 0, "{err}\n{}", proxy.log());
    assert_eq!(proxy.hits(), 4, "{}", proxy.log());
    assert_eq!(proxy.seen(Kind::ObjectHead, None), SDK_ATTEMPTS);
    assert_eq!(proxy.seen(Kind::ObjectGet, None), SDK_ATTEMPTS);
    assert_eq!(v["files"][0]["status"], "loaded", "{v}");
    assert_table_matches(&db, "issuer", &files[..1]);
    let faults = proxy.hits() as u32;
    score(
        "S3: 500 and 503 on HEAD and GET of one key are retried",
        1,
        faults,
        faults,
        0,
    );
}

#[test]
fn slow_down_throttling_is_retried_on_list_gets_and_parallel_parts() {
    let db = Db::new("s3fslow");
    let files = day("01-15");
    let b = bucket_with("fslow", &files);
    let part = 20_000u64;
    // Every object comes in 20 000-byte ranged GETs, 4 at a time. No request can be
    // throttled more than twice, so the SDK's third attempt always goes through.
    let proxy = fault_proxy(
        s3().port,
        vec![
            Rule::slow_down(Kind::List, 2),
            Rule::slow_down(Kind::ObjectGet, 2).key("CED01-15R.PIP"),
            Rule::slow_down(Kind::ObjectGet, 1).key("CED01-15E.PIP"),
            Rule::slow_down(Kind::ObjectGet, 2).key("CED01-15A.PIP"),
        ],
    );
    let (code, v, err) = json(loader(&db, &proxy.endpoint).args([
        "--s3-bucket",
        &b,
        "--date",
        "2024-01-15",
        "--s3-concurrency",
        "4",
        "--s3-part-size",
        &part.to_string(),
    ]));
    assert_eq!(code, 0, "{err}\n{}", proxy.log());
    assert_eq!(
        (0..4).map(|i| proxy.served(i)).collect::<Vec<_>>(),
        [2, 2, 1, 2],
        "{}",
        proxy.log()
    );
    assert_eq!(proxy.seen(Kind::List, None), 3, "{}", proxy.log());
    // Each throttled request was sent again: parts + throttled answers, per object.
    for (f, throttled) in files.iter().zip([2, 1, 2]) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let size = std::fs::metadata(f).unwrap().len();
        assert_eq!(
            proxy.seen(Kind::RangedGet, Some(&name)) as u64,
            size.div_ceil(part) + throttled,
            "{name}:\n{}",
            proxy.log()
        );
    }
    for (i, f) in v["files"].as_array().unwrap().iter().enumerate() {
        assert_eq!(f["status"], "loaded", "{v}");
        assert_eq!(
            f["bytes"],
            std::fs::metadata(&files[i]).unwrap().len(),
            "{v}"
        );
        assert_eq!(f["resumes"], 0, "throttling is not a broken body: {v}");
    }
    for (i, t) in MASTER.iter().enumerate() {
        assert_table_matches(&db, t, &files[i..=i]);
    }
    let faults = proxy.hits() as u32;
    score(
        "S3: 503 SlowDown throttling is retried",
        1,
        faults,
        faults,
        0,
    );
}

#[test]
fn errors_past_the_retry_budget_exit_75_write_nothing_and_a_rerun_loads() {
    let db = Db::new("s3fbudget");
    let new = day("01-16");
    // Dated 2024-01-15, the day before the bucket's (a file named 01-15 alone would be
    // the most recent 01-15, which may be after 2024-01-16, and the rerun refused as older).
    let old = day("01-15");
    let (code, _, err) = run(db
        .loader()
        .args(["--date", "2024-01-15", "--dir"])
        .arg(testdata("")));
    assert_eq!(code, 0, "{err}");
    let b = bucket_with("fbudget", &new);
    let before = db.snapshot();
    let by_date = ["--s3-bucket", b.as_str(), "--date", "2024-01-16"];
    let (mut trials, mut faults, mut survived) = (0u32, 0u32, 0u32);
    let mut trial = |name: &str, rules: Vec<Rule>, args: &[&str], must: &[&str], want: usize| {
        let proxy = fault_proxy(s3().port, rules);
        let (code, out, err) = run(loader(&db, &proxy.endpoint).args(args));
        assert_eq!(code, 75, "{name}: {out}{err}\n{}", proxy.log());
        assert_clear_failure(&err, must);
        assert_eq!(proxy.hits(), want, "{name}:\n{}", proxy.log());
        assert!(
            db.snapshot() == before,
            "{name}: the database changed after a failed load"
        );
        trials += 1;
        faults += proxy.hits() as u32;
        survived += proxy.hits() as u32;
    };
    let listing = format!("listing s3://{b}");
    trial(
        "listing answers 500 every time",
        vec![Rule::internal_error(Kind::List, usize::MAX)],
        &by_date,
        &[&listing, "InternalError", "HTTP 500"],
        SDK_ATTEMPTS,
    );
    let r_uri = format!("s3://{b}/pif/CED01-16R.PIP");
    trial(
        "HEAD answers 503 every time",
        vec![Rule::service_unavailable(Kind::ObjectHead, usize::MAX)],
        &["--s3-bucket", &b, "--s3-key", "pif/CED01-16R.PIP"],
        &[&r_uri, "HTTP 503"],
        SDK_ATTEMPTS,
    );
    trial(
        "every object GET is throttled",
        vec![Rule::slow_down(Kind::ObjectGet, usize::MAX)],
        &by_date,
        &[&r_uri, "SlowDown", "HTTP 503"],
        SDK_ATTEMPTS,
    );
    // A body that breaks, then resumes that keep failing: one resume allowed.
    let a_uri = format!("s3://{b}/pif/CED01-16A.PIP");
    trial(
        "the resume of a broken body answers 500 every time",
        vec![
            Rule::cut(Kind::WholeGet, 2_000, 1),
            Rule::internal_error(Kind::RangedGet, usize::MAX),
        ],
        &[
            "--s3-bucket",
            &b,
            "--s3-key",
            "pif/CED01-16A.PIP",
            "--s3-max-resumes",
            "1",
        ],
        &[&a_uri, "after 1 resume", "HTTP 500"],
        1 + SDK_ATTEMPTS,
    );
    // Without the faults, a plain rerun loads the date.
    let (code, v, err) = json(loader(&db, &s3().endpoint).args(by_date));
    assert_eq!(code, 0, "{err}");
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "loaded"),
        "{v}"
    );
    for (i, t) in MASTER.iter().enumerate() {
        assert_table_matches(&db, t, &[old[i].clone(), new[i].clone()]);
    }
    score(
        "S3: errors past the retry budget exit 75, nothing written, rerun loads",
        trials,
        faults,
        survived,
        0,
    );
}

#[test]
fn an_object_deleted_mid_load_is_refused_and_loads_once_uploaded_again() {
    let files = day("01-15");
    let a_key = key_of(&files[2]);
    let (mut trials, mut faults, mut survived) = (0u32, 0u32, 0u32);
    // Each trial: a database holding R and E, the A object deleted at the proxy's fault
    // (the hook runs before the loader can see the fault), then uploaded again.
    let mut trial = |tag: &str, rule: Rule, extra: &[&str]| {
        let db = Db::new(tag);
        assert_eq!(run(db.loader().args(&files[..2])).0, 0);
        let b = bucket_with(tag, &files[2..]);
        let before = db.snapshot();
        let (bk, key) = (b.clone(), a_key.clone());
        let proxy = fault_proxy(s3().port, vec![rule.then(move || s3().delete(&bk, &key))]);
        let (code, out, err) = run(loader(&db, &proxy.endpoint)
            .args(["--s3-bucket", &b, "--s3-key", &a_key])
            .args(extra));
        let uri = format!("s3://{b}/{a_key}");
        assert_eq!(code, 75, "{tag}: {out}{err}\n{}", proxy.log());
        assert_clear_failure(
            &err,
            &[&uri, "deleted during the load", "nothing was loaded"],
        );
        assert_eq!(proxy.hits(), 1, "{tag}:\n{}", proxy.log());
        // Refused at the first 404: no further resume is spent on an object that is gone.
        assert!(err.matches("resuming from").count() <= 1, "{tag}: {err}");
        assert!(
            db.snapshot() == before,
            "{tag}: the database changed after a refused load"
        );
        // While it is missing, a rerun says so (66); uploaded again, a plain rerun loads it.
        let (code, _, err) =
            run(loader(&db, &s3().endpoint).args(["--s3-bucket", &b, "--s3-key", &a_key]));
        assert_eq!(code, 66, "{tag}: {err}");
        s3().put_file(&b, &a_key, &files[2]);
        let (code, v, err) =
            json(loader(&db, &s3().endpoint).args(["--s3-bucket", &b, "--s3-key", &a_key]));
        assert_eq!(code, 0, "{tag}: {err}");
        assert_eq!(v["files"][0]["status"], "loaded", "{v}");
        assert_table_matches(&db, "issue_attribute", &files[2..]);
        trials += 1;
        faults += proxy.hits() as u32;
        survived += proxy.hits() as u32;
    };
    // The body breaks at 40 000 bytes and the object is gone before the resume.
    trial("s3fdelstream", Rule::cut(Kind::WholeGet, 40_000, 1), &[]);
    // Parallel parts: one part breaks and the object is gone for its resume and the rest.
    trial(
        "s3fdelparts",
        Rule::cut(Kind::RangedGet, 5_000, 1),
        &["--s3-concurrency", "4", "--s3-part-size", "20000"],
    );
    // Deleted after the HEAD, while the SDK waits to retry a throttled first GET.
    trial("s3fdelretry", Rule::slow_down(Kind::WholeGet, 1), &[]);
    score(
        "S3: an object deleted mid-load is refused (75), nothing written, reload loads",
        trials,
        faults,
        survived,
        0,
    );
}

/// Credentials that expire during a download: the resume is refused (a 403, or an
/// `ExpiredToken` error). Retrying with the same credentials cannot help, so it is 77 with
/// the expired-credentials hint, not 75; nothing is written, the attempt is journalled, and
/// with the credentials good again a plain rerun loads.
#[test]
fn a_resume_refused_for_its_credentials_is_77_with_the_hint() {
    let files = day("01-15");
    let a_key = key_of(&files[2]);
    let (mut trials, mut faults, mut survived) = (0u32, 0u32, 0u32);
    let mut trial = |tag: &str, status: u16, code: &str| {
        let db = Db::new(tag);
        assert_eq!(run(db.loader().args(&files[..2])).0, 0);
        let b = bucket_with(tag, &files[2..]);
        let before = db.snapshot();
        let proxy = fault_proxy(
            s3().port,
            vec![
                Rule::cut(Kind::WholeGet, 40_000, 1),
                Rule::status(
                    Kind::RangedGet,
                    status,
                    common::s3::s3_error_body(code, "The credentials are no longer valid"),
                    usize::MAX,
                ),
            ],
        );
        let (exit, out, err) =
            run(loader(&db, &proxy.endpoint).args(["--s3-bucket", &b, "--s3-key", &a_key]));
        let uri = format!("s3://{b}/{a_key}");
        assert_eq!(exit, 77, "{tag}: {out}{err}\n{}", proxy.log());
        assert_clear_failure(
            &err,
            &[
                &format!("resuming {uri} at byte 40000"),
                code,
                "expired",
                "aws sso login --profile",
                "nothing was loaded",
            ],
        );
        // Refused once, never tried again: not by the SDK, not by another resume.
        assert_eq!(
            proxy.seen(Kind::RangedGet, None),
            1,
            "{tag}:\n{}",
            proxy.log()
        );
        assert_eq!(proxy.hits(), 2, "{tag}:\n{}", proxy.log());
        assert!(db.snapshot() == before, "{tag}: the database changed");
        let journal = db.sql(
            "SELECT status || ' ' || coalesce(error, '') FROM load_journal \
             WHERE file_name = 'CED01-15A.PIP' ORDER BY id",
        );
        assert!(
            journal.trim().starts_with("failed") && journal.contains("expired"),
            "{tag}: {journal}"
        );
        let (exit, _, err) =
            run(loader(&db, &s3().endpoint).args(["--s3-bucket", &b, "--s3-key", &a_key]));
        assert_eq!(exit, 0, "{tag}: {err}");
        assert_table_matches(&db, "issue_attribute", &files[2..]);
        trials += 1;
        faults += proxy.hits() as u32;
        survived += proxy.hits() as u32;
    };
    trial("s3f403resume", 403, "AccessDenied");
    trial("s3fexpiredresume", 400, "ExpiredToken");
    score(
        "S3: a resume refused for its credentials is 77, nothing written",
        trials,
        faults,
        survived,
        0,
    );
}
