//! Loading from S3 (a real S3-compatible server, moto, on 127.0.0.1) and from a directory
//! by date.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::s3::{aws_env, cut_proxy, s3};
use common::*;

/// The loader pointed at `db` and at the test S3 server (or another endpoint).
fn loader(db: &Db, endpoint: &str) -> Command {
    let mut c = db.loader();
    for (k, v) in aws_env(endpoint) {
        c.env(k, v);
    }
    c
}

/// A fresh bucket holding `files` under `prefix`, named as given (or renamed by `name`).
fn bucket_with(
    tag: &str,
    prefix: &str,
    files: &[PathBuf],
    name: impl Fn(&str) -> String,
) -> String {
    let b = s3().new_bucket(tag);
    for f in files {
        let n = f.file_name().unwrap().to_string_lossy().into_owned();
        s3().put_file(&b, &format!("{prefix}{}", name(&n)), f);
    }
    b
}

fn json(cmd: &mut Command) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(cmd.args(["--output", "json"]));
    (code, summary(&out), err)
}

#[test]
fn one_key_loads_and_is_journalled_with_its_etag() {
    let db = Db::new("s3key");
    let b = bucket_with("key", "pif/", &day("01-15")[..1], |n| n.to_string());
    let (code, v, err) = json(loader(&db, &s3().endpoint).args([
        "--s3-bucket",
        &b,
        "--s3-key",
        "pif/CED01-15R.PIP",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        v["files"][0]["source"],
        format!("s3://{b}/pif/CED01-15R.PIP")
    );
    assert_table_matches(&db, "issuer", &day("01-15")[..1]);
    let etag = s3().put_file(&b, "other/issuers.dat", &day("01-15")[0]);
    let j = db.sql("SELECT source || ' ' || fingerprint || ' ' || bytes FROM load_journal");
    let size = std::fs::metadata(&day("01-15")[0]).unwrap().len();
    assert_eq!(
        j.trim(),
        format!("s3://{b}/pif/CED01-15R.PIP {etag} {size}")
    );
    // A key whose name says nothing needs --type.
    let (code, _, err) =
        run(loader(&db, &s3().endpoint).args(["--s3-bucket", &b, "--s3-key", "other/issuers.dat"]));
    assert_eq!(code, 64, "{err}");
    let (code, _, err) = run(loader(&db, &s3().endpoint).args([
        "--s3-bucket",
        &b,
        "--s3-key",
        "other/issuers.dat",
        "--type",
        "issuer",
    ]));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_date_loads_all_three_files_in_order_with_or_without_the_slash_and_in_any_case() {
    let db = Db::new("s3date");
    let mut files = day("01-15");
    files.extend(day("01-16"));
    // 01-16 is delivered with lower-case names.
    let b = bucket_with("date", "pif/", &files, |n| {
        if n.contains("01-16") {
            n.to_lowercase()
        } else {
            n.to_string()
        }
    });
    let (code, v, err) = json(loader(&db, &s3().endpoint).args([
        "--s3-bucket",
        &b,
        "--s3-prefix",
        "pif",
        "--date",
        "2024-01-15",
    ]));
    assert_eq!(code, 0, "{err}");
    let types: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["issuer", "issue", "issue_attr"]);
    let (code, _, err) = json(loader(&db, &s3().endpoint).args([
        "--s3-bucket",
        &b,
        "--s3-prefix",
        "pif/",
        "--date",
        "2024-01-16",
    ]));
    assert_eq!(code, 0, "{err}");
    for (i, t) in MASTER.iter().enumerate() {
        assert_table_matches(&db, t, &[day("01-15")[i].clone(), day("01-16")[i].clone()]);
    }
}

#[test]
fn the_environment_alone_runs_a_load_for_today() {
    let db = Db::new("s3env");
    let today = chrono::Utc::now().date_naive();
    let md = today.format("%m-%d").to_string();
    let b = bucket_with("env", "pif/", &day("01-15"), |n| n.replace("01-15", &md));
    let (code, v, err) = json(
        loader(&db, &s3().endpoint)
            .env("CUSIP_FILE_SOURCE", "s3")
            .env("CUSIP_S3_BUCKET", &b)
            .env("CUSIP_S3_PREFIX", "pif/")
            .env("CUSIP_S3_REGION", "us-east-1")
            .env("TZ", "UTC"),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["files"].as_array().unwrap().len(), 3);
    assert_table_matches(&db, "issue", &day("01-15")[1..2]);
}

#[test]
fn a_local_directory_by_date_by_flag_and_by_environment() {
    let db = Db::new("dirdate");
    let (code, v, err) = json(
        db.loader()
            .args(["--dir"])
            .arg(testdata(""))
            .args(["--date", "2024-01-15"]),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["files"].as_array().unwrap().len(), 3);
    let (code, v, err) = json(
        db.loader()
            .env("CUSIP_FILE_SOURCE", "local")
            .env("CUSIP_FILE_DIR", testdata(""))
            .args(["--date", "2024-01-16"]),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["files"][2]["type"], "issue_attr");
    for (i, t) in MASTER.iter().enumerate() {
        assert_table_matches(&db, t, &[day("01-15")[i].clone(), day("01-16")[i].clone()]);
    }
    // A date the directory does not have.
    let (code, _, err) = run(db
        .loader()
        .args(["--dir"])
        .arg(testdata(""))
        .args(["--date", "2024-02-01"]));
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("01-15 (REA), 01-16 (REA)"), "{err}");
}

#[test]
fn listing_follows_pagination_past_a_thousand_keys() {
    let db = Db::new("s3many");
    let b = s3().new_bucket("many");
    for i in 0..1005 {
        s3().put(&b, &format!("pif/CED01-{:02}X{i:04}.TXT", i % 28 + 1), b"x");
    }
    for f in day("01-15") {
        s3().put_file(
            &b,
            &format!("pif/{}", f.file_name().unwrap().to_string_lossy()),
            &f,
        );
    }
    let (code, v, err) =
        json(loader(&db, &s3().endpoint).args(["--s3-bucket", &b, "--date", "2024-01-15"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["files"].as_array().unwrap().len(), 3);
}

#[test]
fn a_missing_type_names_what_was_looked_for_and_what_exists() {
    let db = Db::new("s3missing");
    let mut files = day("01-15")[..2].to_vec();
    files.extend(day("01-16"));
    let b = bucket_with("missing", "pif/", &files, |n| n.to_string());
    let (code, _, err) =
        run(loader(&db, &s3().endpoint).args(["--s3-bucket", &b, "--date", "2024-01-15"]));
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("no issue_attr file for 01-15"), "{err}");
    assert!(err.contains("pif/CED01-15A.PIP"), "{err}");
    assert!(
        err.contains("Present for that date: CED01-15R.PIP, CED01-15E.PIP"),
        "{err}"
    );
    assert!(err.contains("01-16 (REA)"), "{err}");
    assert_eq!(
        db.count("issuer"),
        0,
        "nothing loads when a file is missing"
    );
    let (code, v, err) = json(loader(&db, &s3().endpoint).args([
        "--s3-bucket",
        &b,
        "--date",
        "2024-01-15",
        "--allow-missing",
    ]));
    assert_eq!(code, 0, "{err}");
    let status: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["loaded", "loaded", "missing"]);
}

#[test]
fn two_objects_for_one_type_are_refused() {
    let db = Db::new("s3two");
    let b = bucket_with("two", "pif/", &day("01-15"), |n| n.to_string());
    s3().put_file(&b, "pif/ced01-15r.pip", &day("01-15")[0]);
    let (code, _, err) =
        run(loader(&db, &s3().endpoint).args(["--s3-bucket", &b, "--date", "2024-01-15"]));
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("pif/CED01-15R.PIP and pif/ced01-15r.pip"),
        "{err}"
    );
}

#[test]
fn missing_bucket_key_and_endpoint_are_one_line_each() {
    let db = Db::new("s3errors");
    let b = bucket_with("errs", "pif/", &[], |n| n.to_string());
    let (code, _, err) = run(loader(&db, &s3().endpoint).args([
        "--s3-bucket",
        "no-such-bucket-x",
        "--date",
        "2024-01-15",
    ]));
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("no-such-bucket-x does not exist"), "{err}");
    // The next step: where bucket and prefix came from.
    assert!(
        err.contains("bucket from --s3-bucket, prefix pif/ from the default"),
        "{err}"
    );
    let (code, _, err) = run(loader(&db, &s3().endpoint)
        .env("CUSIP_S3_BUCKET", "no-such-bucket-x")
        .env("CUSIP_S3_PREFIX", "in/")
        .args(["--date", "2024-01-15"]));
    assert_eq!(code, 66, "{err}");
    assert!(
        err.contains("bucket from CUSIP_S3_BUCKET, prefix in/ from CUSIP_S3_PREFIX"),
        "{err}"
    );
    let (code, _, err) =
        run(loader(&db, &s3().endpoint).args(["--s3-bucket", &b, "--s3-key", "pif/CED01-15R.PIP"]));
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("no such key"), "{err}");
    let (code, _, err) = run(loader(&db, &s3().endpoint).args([
        "--s3-bucket",
        "no-such-bucket-x",
        "--s3-key",
        "pif/CED01-15R.PIP",
    ]));
    assert_eq!(code, 66, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    let port = free_port();
    let (code, _, err) = run(loader(&db, &format!("http://127.0.0.1:{port}")).args([
        "--s3-bucket",
        &b,
        "--date",
        "2024-01-15",
    ]));
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("unreachable"), "{err}");
    assert!(
        !err.contains("DispatchFailure") && !err.contains("panicked"),
        "no SDK debug dump: {err}"
    );
}

#[test]
fn a_body_cut_mid_stream_resumes_and_loads_the_same_rows() {
    let db = Db::new("s3resume");
    let files = day("01-15");
    assert_eq!(run(db.loader().args(&files[..2])).0, 0);
    let b = bucket_with("resume", "pif/", &files[2..], |n| n.to_string());
    let size = std::fs::metadata(&files[2]).unwrap().len();
    assert!(
        size > 4 * 40_000,
        "the attribute sample must outlast three cuts"
    );
    // Cut at 40 000 bytes three times: the loader resumes from 40 000, 80 000 and 120 000.
    let proxy = cut_proxy(s3().port, 40_000, 3);
    let (code, v, err) = json(loader(&db, &proxy.endpoint).args([
        "--s3-bucket",
        &b,
        "--s3-key",
        "pif/CED01-15A.PIP",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(proxy.hits(), 3);
    assert_eq!(v["files"][0]["resumes"], 3, "{v}");
    assert_eq!(v["files"][0]["bytes"], size, "{v}");
    for offset in ["40000", "80000", "120000"] {
        assert!(
            err.contains(&format!("resuming from byte {offset}")),
            "the resume is logged: {err}"
        );
    }
    assert_table_matches(&db, "issue_attribute", &files[2..]);

    // Past the allowed number of resumes the load fails, worth a retry, and nothing is loaded.
    let db2 = Db::new("s3resume2");
    assert_eq!(run(db2.loader().args(&files[..2])).0, 0);
    let proxy = cut_proxy(s3().port, 40_000, 10);
    let (code, _, err) = run(loader(&db2, &proxy.endpoint)
        .args(["--s3-bucket", &b, "--s3-key", "pif/CED01-15A.PIP"])
        .args(["--s3-max-resumes", "2"]));
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("after 2 resumes"), "{err}");
    assert_eq!(db2.count("issue_attribute"), 0);
}

#[test]
fn an_object_replaced_mid_load_is_refused() {
    let db = Db::new("s3replaced");
    let b = bucket_with("replaced", "pif/", &day("01-15")[..1], |n| n.to_string());
    let proxy = cut_proxy(s3().port, 20_000, 1);
    let child = loader(&db, &proxy.endpoint)
        .args(["--s3-bucket", &b, "--s3-key", "pif/CED01-15R.PIP"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The loader waits 200 ms before resuming: replace the object in that window.
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.hits() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    s3().put_file(&b, "pif/CED01-15R.PIP", &day("01-16")[0]);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("changed during the load"), "{err}");
    assert_eq!(db.count("issuer"), 0);
}

#[test]
fn a_rerun_is_skipped_force_reloads_and_a_new_object_loads() {
    let db = Db::new("s3rerun");
    let b = bucket_with("rerun", "pif/", &day("01-15"), |n| n.to_string());
    let args = ["--s3-bucket", b.as_str(), "--date", "2024-01-15"];
    assert_eq!(json(loader(&db, &s3().endpoint).args(args)).0, 0);
    let (code, v, _) = json(loader(&db, &s3().endpoint).args(args));
    assert_eq!(code, 0);
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "already_loaded"),
        "{v}"
    );
    let (code, v, _) = json(loader(&db, &s3().endpoint).args(args).arg("--force"));
    assert_eq!(code, 0);
    assert_eq!(v["files"][0]["status"], "loaded");
    assert_eq!(v["files"][0]["unchanged"], 300);
    // A new object under the same key (new ETag) is a new file.
    let mut bytes = std::fs::read(&day("01-15")[0]).unwrap();
    bytes.insert(0, b'\n');
    s3().put(&b, "pif/CED01-15R.PIP", &bytes);
    let (code, v, _) = json(loader(&db, &s3().endpoint).args(args));
    assert_eq!(code, 0);
    assert_eq!(v["files"][0]["status"], "loaded");
    assert_eq!(v["files"][1]["status"], "already_loaded");
}

#[test]
fn parallel_ranged_download_equals_the_single_stream() {
    let files = day("01-15");
    let b = bucket_with("parallel", "pif/", &files[2..], |n| n.to_string());
    let size = std::fs::metadata(&files[2]).unwrap().len();
    let part = 20_000u64;
    assert!(size > 5 * part, "the object must span several parts");
    let load_a = |tag: &str, endpoint: &str, extra: &[&str]| {
        let db = Db::new(tag);
        assert_eq!(run(db.loader().args(&files[..2])).0, 0);
        let (code, v, err) = json(
            loader(&db, endpoint)
                .args(["--s3-bucket", &b, "--s3-key", "pif/CED01-15A.PIP"])
                .args(extra),
        );
        assert_eq!(code, 0, "{tag}: {err}");
        (db, v)
    };
    let (single, _) = load_a("s3single", &s3().endpoint, &["--s3-concurrency", "1"]);
    let part_arg = part.to_string();
    let (par, v) = load_a(
        "s3parallel",
        &s3().endpoint,
        &["--s3-concurrency", "4", "--s3-part-size", &part_arg],
    );
    assert_eq!(v["files"][0]["bytes"], size);
    assert_eq!(par.dump("issue_attribute"), single.dump("issue_attribute"));
    assert_table_matches(&par, "issue_attribute", &files[2..]);
    // Parts that break mid-body resume within their own range.
    let proxy = cut_proxy(s3().port, 5_000, 3);
    let (cut, v) = load_a(
        "s3parallelcut",
        &proxy.endpoint,
        &["--s3-concurrency", "4", "--s3-part-size", &part_arg],
    );
    assert_eq!(v["files"][0]["resumes"], 3, "{v}");
    assert_eq!(cut.dump("issue_attribute"), single.dump("issue_attribute"));
}

#[test]
fn the_same_file_from_s3_and_from_a_directory_is_one_file() {
    let db = Db::new("s3anddir");
    let mut files = day("01-15");
    files.extend(day("01-16"));
    let b = bucket_with("samefile", "pif/", &files, |n| n.to_string());
    for date in ["2024-01-15", "2024-01-16"] {
        let (code, _, err) =
            json(loader(&db, &s3().endpoint).args(["--s3-bucket", &b, "--date", date]));
        assert_eq!(code, 0, "{err}");
    }
    // Each S3 load journalled the content's sha256, the same a local file has.
    let want = cusip_loader::source::sha256_file(&day("01-16")[1]).unwrap();
    assert_eq!(
        db.sql("SELECT sha256 FROM load_journal WHERE file_name = 'CED01-16E.PIP'")
            .trim(),
        want
    );
    // The older day again, from a directory: the same content, already loaded (superseded),
    // so skipped; it does not put 01-15's values back over 01-16's.
    let before = db.snapshot();
    for date in ["2024-01-15", "2024-01-16"] {
        let (code, v, err) = json(
            db.loader()
                .arg("--dir")
                .arg(testdata(""))
                .args(["--date", date]),
        );
        assert_eq!(code, 0, "{err}");
        let statuses: Vec<&str> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["already_loaded"; 3], "{date}: {v}");
    }
    assert_eq!(db.snapshot(), before);
    assert_both_days(&db);

    // The other way round: a directory first, then the older day from S3 under new ETags
    // (re-uploaded with a different part size would do the same): read, found to be the same
    // content, skipped, and nothing written.
    let db = Db::new("dirands3");
    for date in ["2024-01-15", "2024-01-16"] {
        let (code, _, err) = run(db
            .loader()
            .arg("--dir")
            .arg(testdata(""))
            .args(["--date", date]));
        assert_eq!(code, 0, "{err}");
    }
    let before = db.snapshot();
    let (code, v, err) =
        json(loader(&db, &s3().endpoint).args(["--s3-bucket", &b, "--date", "2024-01-15"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "already_loaded"),
        "{v}"
    );
    assert_eq!(db.snapshot(), before);
}

#[test]
fn aws_logs_name_the_credential_source_and_never_credential_material() {
    let db = Db::new("awslogs");
    let b = bucket_with("awslogs", "pif/", &day("01-15")[..1], |n| n.to_string());
    // A profile with static keys, as a laptop's ~/.aws would hold.
    let aws = tempfile::tempdir().unwrap();
    let creds = aws.path().join("credentials");
    std::fs::write(
        &creds,
        "[cusip-dev]\naws_access_key_id = AKIAPROFILEKEYID1234\naws_secret_access_key = profilesecretvalue\n\
         aws_session_token = profilesessiontoken\n",
    )
    .unwrap();
    for level in ["info", "debug", "trace"] {
        let mut c = loader(&db, &s3().endpoint);
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_PROFILE", "cusip-dev")
            .env("RUST_LOG", level)
            .args([
                "--s3-bucket",
                &b,
                "--s3-key",
                "pif/CED01-15R.PIP",
                "--force",
            ]);
        let (code, out, err) = run(&mut c);
        assert_eq!(code, 0, "{level}: {out}{err}");
        for secret in [
            "AKIAPROFILEKEYID1234",
            "profilesecretvalue",
            "profilesessiontoken",
        ] {
            assert!(
                !err.contains(secret) && !out.contains(secret),
                "{level}: {secret} logged:\n{err}"
            );
        }
        assert!(
            err.contains("AWS credentials: profile cusip-dev"),
            "{level}: {err}"
        );
        // One event, one line.
        assert!(err.lines().all(|l| l.starts_with("20")), "{level}: {err}");
    }
    // No credentials at all: exit 77, one line each, and the hint does not ask for the
    // profile that is already set.
    let mut c = loader(&db, &s3().endpoint);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_PROFILE", "nosuchprofile")
        .args([
            "--s3-bucket",
            &b,
            "--s3-key",
            "pif/CED01-15R.PIP",
            "--force",
        ]);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 77, "{out}{err}");
    assert!(err.lines().all(|l| l.starts_with("20")), "{err}");
    assert!(!err.contains("set AWS_PROFILE"), "{err}");
}
