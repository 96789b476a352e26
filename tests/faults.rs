//! Failures in the middle of a load: the backend killed, the loader signalled, two loaders
//! racing. In every case nothing is half-loaded and a plain rerun finishes the job.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

/// Issues in the generated mid-size set: big enough that COPY runs long enough to be hit.
const N: u64 = 300_000;

/// A generated date (R, E, A), made once per test binary with the project's generator.
fn big_set() -> &'static [PathBuf; 3] {
    static SET: OnceLock<[PathBuf; 3]> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{N}"));
        let files = ["R", "E", "A"].map(|t| dir.join(format!("CED03-01{t}.PIP")));
        if !files.iter().all(|f| f.exists()) {
            std::fs::create_dir_all(&dir).unwrap();
            let ok = Command::new(generator())
                .args([
                    "--issues",
                    &N.to_string(),
                    "--date",
                    "03-01",
                    "--seed",
                    "7",
                    "--out",
                ])
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "the generator failed");
        }
        files
    })
}

fn spawn(db: &Db, files: &[PathBuf]) -> Child {
    db.loader()
        .args(files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the loader's backend runs a statement starting with `prefix`; its pid.
fn wait_for_statement(db: &Db, child: &mut Child, prefix: &str) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let pid = db.sql(&format!(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'cusip-loader' AND state = 'active' AND query LIKE '{prefix}%'"
        ));
        if let Some(p) = pid.lines().next().and_then(|l| l.trim().parse().ok()) {
            return Some(p);
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn backend_killed_mid_copy_leaves_nothing_and_a_rerun_succeeds() {
    let db = Db::new("killcopy");
    let [r, e, _] = big_set().clone();
    let (code, _, err) = run(db.loader().arg(&r));
    assert_eq!(code, 0, "{err}");
    let before = db.snapshot();

    let mut child = spawn(&db, std::slice::from_ref(&e));
    let pid = wait_for_statement(&db, &mut child, "COPY cusip_stage")
        .expect("COPY was never seen running");
    assert_eq!(
        db.sql(&format!("SELECT pg_terminate_backend({pid})"))
            .trim(),
        "t"
    );
    let (code, _, err) = finish(child);
    assert_eq!(code, 75, "a lost connection is worth a retry: {err}");
    assert!(
        err.contains("terminat") || err.contains("connection"),
        "{err}"
    );
    assert_eq!(db.snapshot(), before, "nothing may be half-loaded");

    let (code, _, err) = run(db.loader().arg(&e));
    assert_eq!(code, 0, "the rerun: {err}");
    assert_eq!(db.count("issue"), N);
}

#[test]
fn sigterm_mid_load_rolls_back_and_exits_143_promptly() {
    let db = Db::new("sigterm");
    let [r, e, _] = big_set().clone();
    assert_eq!(run(db.loader().arg(&r)).0, 0);
    let before = db.snapshot();

    let mut child = spawn(&db, std::slice::from_ref(&e));
    wait_for_statement(&db, &mut child, "COPY cusip_stage").expect("COPY was never seen running");
    let t = Instant::now();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let (code, out, err) = finish(child);
    let took = t.elapsed();
    assert_eq!(code, 143, "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        out.contains("INTERRUPTED"),
        "the summary is still printed: {out}"
    );
    assert_eq!(db.snapshot(), before, "nothing may be half-loaded");
    let j = db.journal();
    assert_eq!(j.last().unwrap()[1], "interrupted", "{j:?}");
    // No session is left holding the table lock: a rerun goes straight through.
    let (code, _, err) = run(db.loader().arg(&e));
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("issue"), N);
}

#[test]
fn concurrent_loaders_take_turns_and_agree() {
    let db = Db::new("concurrent");
    let files: Vec<PathBuf> = ["R", "E", "A"]
        .iter()
        .map(|t| testdata(&format!("CED01-15{t}.PIP")))
        .collect();
    for trial in 0..3 {
        let children: Vec<Child> = (0..4).map(|_| spawn(&db, &files)).collect();
        for c in children {
            let (code, _, err) = finish(c);
            assert_eq!(code, 0, "trial {trial}: {err}");
        }
    }
    for (table, f) in MASTER.iter().zip(&files) {
        assert_table_matches(&db, table, std::slice::from_ref(f));
    }
    // The first loader of each file loads it; every later one waits its turn and skips it.
    let loaded = db.sql("SELECT status, count(*) FROM load_journal GROUP BY 1 ORDER BY 1");
    assert_eq!(loaded, "already loaded|33\nloaded|3\n");
    // Exactly one of all those loads inserted each file's rows.
    let inserted =
        db.sql("SELECT file_type, sum(inserted) FROM load_journal GROUP BY 1 ORDER BY 1");
    for line in inserted.lines() {
        let (t, n) = line.split_once('|').unwrap();
        let table = match t {
            "issuer" => "issuer",
            "issue" => "issue",
            _ => "issue_attribute",
        };
        assert_eq!(n.parse::<u64>().unwrap(), db.count(table), "{t}");
    }
}

#[test]
fn a_large_generated_date_loads_and_reloads_unchanged() {
    let db = Db::new("large");
    let files = big_set().to_vec();
    let (code, out, err) = run(db.loader().args(&files).args(["--output", "json"]));
    assert_eq!(code, 0, "{err}");
    let v = summary(&out);
    assert_eq!(v["files"][1]["inserted"].as_u64(), Some(N));
    assert_eq!(db.count("issue"), N);
    let (code, out, err) = run(db
        .loader()
        .arg(&files[1])
        .args(["--output", "json", "--force"]));
    assert_eq!(code, 0, "{err}");
    let v = summary(&out);
    assert_eq!(v["files"][0]["unchanged"].as_u64(), Some(N));
    assert_eq!(v["files"][0]["updated"].as_u64(), Some(0));
}
