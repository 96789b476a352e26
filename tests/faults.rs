//! Failures in the middle of a load: the backend killed, the loader signalled, two loaders
//! racing. In every case nothing is half-loaded and a plain rerun finishes the job.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

/// Issues in the generated set: 300 000 by default, big enough that every phase runs long
/// enough to be hit while keeping CI's debug build quick; `CUSIP_FAULTS_N=1000000 make
/// test-faults` runs the same trials on the 1 M records.
fn n() -> u64 {
    static N: OnceLock<u64> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("CUSIP_FAULTS_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300_000)
    })
}

/// A generated date (R, E, A), made once per test binary with the project's generator.
fn big_set() -> &'static [PathBuf; 3] {
    static SET: OnceLock<[PathBuf; 3]> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{}", n()));
        let files = ["R", "E", "A"].map(|t| dir.join(format!("CED03-01{t}.PIP")));
        if !files.iter().all(|f| f.exists()) {
            std::fs::create_dir_all(&dir).unwrap();
            let ok = Command::new(generator())
                .args([
                    "--issues",
                    &n().to_string(),
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

/// The big set's next day as full files (2 % of issues changed, 1 % new), made once.
fn big_next() -> &'static [PathBuf; 3] {
    static SET: OnceLock<[PathBuf; 3]> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = big_set()[0].parent().unwrap().to_path_buf();
        let files = ["R", "E", "A"].map(|t| dir.join(format!("CED03-02{t}.PIP")));
        if !files.iter().all(|f| f.exists()) {
            let ok = Command::new(generator())
                .args(["--issues", &n().to_string(), "--seed", "7"])
                .args(["--next-of", "03-01", "--changed-pct", "2", "--new-pct", "1"])
                .arg("--out")
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
    spawn_with(db, files, &[])
}

/// The staged path's statements (`cusip_stage`, the merge's `INSERT INTO issue … SELECT`)
/// run only with `--initial-load never` once the table is empty and the role owns it; the
/// direct path's are `COPY issue`, `CREATE INDEX` and `ALTER TABLE issue ADD CONSTRAINT`.
fn path_args(statement: &str) -> &'static [&'static str] {
    if statement.contains("cusip_stage") || statement == "INSERT INTO issue" {
        &["--initial-load=never"]
    } else {
        &[]
    }
}

fn spawn_with(db: &Db, files: &[PathBuf], extra: &[&str]) -> Child {
    db.loader()
        .args(files)
        .args(extra)
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

    let mut child = spawn_with(&db, std::slice::from_ref(&e), path_args("COPY cusip_stage"));
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
    assert_eq!(db.count("issue"), n());
    score("backend terminated mid-COPY", 1, 1, 1, 0);
}

/// SIGTERM (what ECS StopTask sends) at five moments over COPY, the checks and the merge:
/// exit 143 within 5 s, the snapshot as before, the attempt journalled `interrupted`, and a
/// rerun loads.
#[test]
fn sigterm_mid_load_rolls_back_and_exits_143_promptly() {
    let [r, e, _] = big_set().clone();
    // (statement the backend is seen running, extra delay ms): over COPY, the checks and
    // the merge statement.
    let plan: [(&str, u64); 8] = [
        ("COPY cusip_stage", 0),
        ("COPY cusip_stage", 300),
        ("ANALYZE cusip_stage", 0),
        ("INSERT INTO issue", 0),
        ("INSERT INTO issue", 300),
        // The direct path, the default into an empty table the role owns.
        ("COPY issue", 200),
        ("CREATE INDEX", 0),
        ("ALTER TABLE issue ADD", 0),
    ];
    let mut faults = 0;
    for (i, (statement, delay)) in plan.iter().enumerate() {
        let db = Db::new(&format!("sigterm{i}"));
        assert_eq!(run(db.loader().arg(&r)).0, 0);
        let before = db.snapshot();
        let mut child = spawn_with(&db, std::slice::from_ref(&e), path_args(statement));
        if wait_for_statement(&db, &mut child, statement).is_none() {
            // Too quick to be caught there: the load finished, and must be complete.
            let (code, _, err) = finish(child);
            assert_eq!(code, 0, "{statement}: {err}");
            assert_eq!(db.count("issue"), n());
            continue;
        }
        std::thread::sleep(Duration::from_millis(*delay));
        faults += 1;
        let t = Instant::now();
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let (code, out, err) = finish(child);
        let took = t.elapsed();
        if code == 0 {
            // The signal came after the commit: the load is whole.
            assert_eq!(db.count("issue"), n(), "{statement}+{delay}: {err}");
            continue;
        }
        assert_eq!(code, 143, "{statement}+{delay}: {err}");
        assert!(
            took < Duration::from_secs(5),
            "{statement}+{delay}: took {took:?}"
        );
        assert!(
            out.contains("INTERRUPTED"),
            "the summary is still printed: {out}"
        );
        // With the time it ran, not 0.00 s.
        let row = out.lines().find(|l| l.contains("INTERRUPTED")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        let seconds: f64 = cells[cells.len() - 3].parse().unwrap();
        assert!(seconds > 0.0, "{row}");
        assert_eq!(db.snapshot(), before, "{statement}+{delay}: half-loaded");
        let j = db.journal();
        assert_eq!(j.last().unwrap()[1], "interrupted", "{j:?}");
        // No session is left holding the table lock: a rerun goes straight through.
        let (code, _, err) = run(db.loader().arg(&e));
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.count("issue"), n());
    }
    assert!(faults >= 3, "only {faults} signals landed");
    score(
        "SIGTERM over COPY, checks and merge (exit 143 < 5 s)",
        plan.len() as u32,
        faults,
        faults,
        0,
    );
}

/// The same date loaded by 2 and by 4 processes started together, 10 trials, each on a
/// fresh database: all exit 0, each file is loaded exactly once and skipped by the others,
/// and the tables equal a single load.
#[test]
fn concurrent_loaders_take_turns_and_agree() {
    let files: Vec<PathBuf> = ["R", "E", "A"]
        .iter()
        .map(|t| testdata(&format!("CED01-15{t}.PIP")))
        .collect();
    let single = Db::new("concurrent_single");
    assert_eq!(run(single.loader().args(&files)).0, 0);
    let mut processes = 0;
    for trial in 0..10 {
        let n = if trial % 2 == 0 { 2 } else { 4 };
        processes += n;
        let db = Db::new(&format!("concurrent{trial}"));
        let children: Vec<Child> = (0..n).map(|_| spawn(&db, &files)).collect();
        for c in children {
            let (code, _, err) = finish(c);
            assert_eq!(code, 0, "trial {trial} ({n} processes): {err}");
        }
        for t in MASTER {
            assert_eq!(db.dump(t), single.dump(t), "trial {trial}: {t}");
        }
        // The first loader of each file loads it; every later one waits its turn and skips.
        let journal = db.sql("SELECT status, count(*) FROM load_journal GROUP BY 1 ORDER BY 1");
        assert_eq!(
            journal,
            format!("already loaded|{}\nloaded|3\n", 3 * (n - 1)),
            "trial {trial}"
        );
        // Exactly one of the loads inserted each file's rows.
        let inserted =
            db.sql("SELECT file_type, sum(inserted) FROM load_journal GROUP BY 1 ORDER BY 1");
        for line in inserted.lines() {
            let (t, rows) = line.split_once('|').unwrap();
            let table = match t {
                "issuer" => "issuer",
                "issue" => "issue",
                _ => "issue_attribute",
            };
            assert_eq!(rows.parse::<u64>().unwrap(), db.count(table), "{t}");
        }
    }
    score(
        "2 and 4 loaders racing (10 trials)",
        10,
        processes,
        processes,
        0,
    );
}

#[test]
fn a_large_generated_date_loads_and_reloads_unchanged() {
    let db = Db::new("large");
    let files = big_set().to_vec();
    let (code, out, err) = run(db.loader().args(&files).args(["--output", "json"]));
    assert_eq!(code, 0, "{err}");
    let v = summary(&out);
    assert_eq!(v["files"][1]["inserted"].as_u64(), Some(n()));
    assert_eq!(db.count("issue"), n());
    let (code, out, err) = run(db
        .loader()
        .arg(&files[1])
        .args(["--output", "json", "--force"]));
    assert_eq!(code, 0, "{err}");
    let v = summary(&out);
    assert_eq!(v["files"][0]["unchanged"].as_u64(), Some(n()));
    assert_eq!(v["files"][0]["updated"].as_u64(), Some(0));
}

/// A digest of a whole table, for "before or complete, never in between".
fn digest(db: &Db, table: &str) -> String {
    db.sql(&format!(
        "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, '|' ORDER BY issuer_num, issue_num)), '') FROM {table} t"
    ))
    .trim()
    .to_string()
}

/// Waits until the backend `pid` has gone (after its client died, it rolls back as soon as
/// it notices), so the tables are read only once the outcome is final.
fn wait_backend_gone(db: &Db, pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let n = db.sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        ));
        if n.trim() == "0" {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("backend {pid} never went away");
}

/// The loader killed outright (SIGKILL: no handler, no cleanup) at moments spread over
/// COPY, the checks, the merge statement and the journal write before commit; and the
/// backend terminated during the checks and mid-merge. Each time the issue table is either exactly as before or
/// exactly complete, and a plain rerun leaves it complete.
#[test]
fn killed_at_any_phase_the_table_is_before_or_complete_and_a_rerun_finishes() {
    let [r, e, _] = big_set().clone();
    // The complete state, from one undisturbed load.
    let reference = Db::new("kill_ref");
    assert_eq!(run(reference.loader().arg(&r)).0, 0);
    let (code, _, err) = run(reference.loader().arg(&e));
    assert_eq!(code, 0, "{err}");
    let complete = digest(&reference, "issue");

    // (statement the backend is seen running, extra delay ms, fault)
    let plan: [(&str, u64, &str); 19] = [
        ("COPY cusip_stage", 0, "kill"),
        ("COPY cusip_stage", 150, "kill"),
        ("COPY cusip_stage", 400, "kill"),
        // The generated keys ascend, so there is no repeated-key grouping to catch, and
        // the foreign keys are enforced by the table, so the checks run inside the INSERT.
        ("ANALYZE cusip_stage", 0, "kill"),
        ("ANALYZE cusip_stage", 0, "terminate"),
        ("INSERT INTO issue", 0, "kill"),
        ("INSERT INTO issue", 100, "kill"),
        ("INSERT INTO issue", 400, "terminate"),
        ("INSERT INTO issue", 50, "kill"),
        ("INSERT INTO issue", 200, "kill"),
        ("INSERT INTO issue", 300, "kill"),
        ("INSERT INTO issue", 600, "kill"),
        ("INSERT INTO issue", 100, "terminate"),
        // The direct path (the default into an empty table the role owns): its COPY, the
        // index rebuilds and the foreign key's re-validation.
        ("COPY issue", 0, "kill"),
        ("COPY issue", 300, "terminate"),
        ("CREATE INDEX", 0, "kill"),
        ("CREATE INDEX", 0, "terminate"),
        ("ALTER TABLE issue ADD", 0, "kill"),
        // The journal write is quick: it is caught when the timing allows.
        ("INSERT INTO load_journal", 0, "kill"),
    ];
    let (mut faults, mut survived, mut lost) = (0, 0, 0u64);
    for (i, (statement, delay, fault)) in plan.iter().enumerate() {
        let db = Db::new(&format!("kill{i}"));
        assert_eq!(run(db.loader().arg(&r)).0, 0);
        let before = digest(&db, "issue");
        let mut child = spawn_with(&db, std::slice::from_ref(&e), path_args(statement));
        let Some(pid) = wait_for_statement(&db, &mut child, statement) else {
            // Too quick to be caught in that statement: the load finished; it must be
            // complete.
            let (code, _, err) = finish(child);
            assert_eq!(code, 0, "{statement}: {err}");
            assert_eq!(digest(&db, "issue"), complete);
            continue;
        };
        std::thread::sleep(Duration::from_millis(*delay));
        faults += 1;
        let code = if *fault == "kill" {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGKILL);
            }
            finish(child).0
        } else {
            db.sql(&format!("SELECT pg_terminate_backend({pid})"));
            let (code, _, err) = finish(child);
            if code != 0 {
                assert_eq!(code, 75, "a terminated backend is worth a retry: {err}");
            }
            code
        };
        wait_backend_gone(&db, pid);
        let after = digest(&db, "issue");
        assert!(
            after == before || after == complete,
            "trial {i} ({fault} at {statement} +{delay} ms, exit {code}): the table is half-loaded"
        );
        // A plain rerun finishes the job (or skips: the killed load may have committed).
        let (code, _, err) = run(db.loader().arg(&e));
        assert_eq!(code, 0, "trial {i} rerun: {err}");
        let final_state = digest(&db, "issue");
        assert_eq!(
            final_state, complete,
            "trial {i}: the rerun left the table incomplete"
        );
        let rows: u64 = final_state
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        lost += n().saturating_sub(rows);
        survived += 1;
    }
    assert!(faults >= 10, "only {faults} faults landed");
    score(
        "killed or terminated mid-load",
        plan.len() as u32,
        faults,
        survived,
        lost,
    );
}

/// The loader's comparison reads the master table on a second connection. That read cut
/// off (its backend terminated) or the loader killed while it runs: exit 75 (or a kill),
/// the table exactly as before, and a rerun completes the load.
#[test]
fn the_master_read_cut_mid_comparison_leaves_nothing_and_a_rerun_succeeds() {
    let [r, e, _] = big_set().clone();
    let [next_r, next, _] = big_next().clone();
    let reference = Db::new("cmp_ref");
    for f in [&r, &e, &next_r, &next] {
        let (code, _, err) = run(reference.loader().arg(f));
        assert_eq!(code, 0, "{err}");
    }
    let complete = digest(&reference, "issue");

    let (mut faults, mut survived) = (0, 0);
    let plan = ["terminate", "kill", "terminate"];
    for (i, fault) in plan.iter().enumerate() {
        let db = Db::new(&format!("cmp_cut{i}"));
        assert_eq!(run(db.loader().arg(&r)).0, 0);
        assert_eq!(run(db.loader().arg(&e)).0, 0);
        // The next day's issuers (new issues need them), compared in the loader too.
        assert_eq!(run(db.loader().arg(&next_r)).0, 0);
        let before = digest(&db, "issue");
        assert_ne!(before, complete);
        let mut child = spawn(&db, std::slice::from_ref(&next));
        let Some(pid) = wait_for_statement(&db, &mut child, "COPY (SELECT") else {
            let (code, _, err) = finish(child);
            assert_eq!(code, 0, "{err}");
            assert_eq!(digest(&db, "issue"), complete);
            continue;
        };
        std::thread::sleep(Duration::from_millis(20 * i as u64));
        faults += 1;
        if *fault == "kill" {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGKILL);
            }
            finish(child);
        } else {
            db.sql(&format!("SELECT pg_terminate_backend({pid})"));
            let (code, _, err) = finish(child);
            assert_eq!(code, 75, "a lost read is worth a retry: {err}");
            assert!(
                err.contains("reading issue to compare with the file"),
                "{err}"
            );
        }
        // Every backend of the loader gone: the load's transaction has rolled back.
        let deadline = Instant::now() + Duration::from_secs(60);
        while db
            .sql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cusip-loader' \
                 AND datname = current_database()",
            )
            .trim()
            != "0"
        {
            assert!(Instant::now() < deadline, "the loader's backends stayed");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            digest(&db, "issue"),
            before,
            "trial {i} ({fault}): half-loaded"
        );
        let (code, _, err) = run(db.loader().arg(&next));
        assert_eq!(code, 0, "trial {i} rerun: {err}");
        assert_eq!(
            digest(&db, "issue"),
            complete,
            "trial {i}: rerun incomplete"
        );
        survived += 1;
    }
    assert!(faults >= 2, "only {faults} faults landed");
    score(
        "master read cut mid-comparison",
        plan.len() as u32,
        faults,
        survived,
        0,
    );
}
