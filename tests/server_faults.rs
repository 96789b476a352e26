//! Faults of the database server itself. Each test runs a PostgreSQL cluster of its own
//! (`common::OwnCluster`: initdb'd, started, stopped and restarted here, and stopped and
//! removed when the test ends, pass or fail), never the binary's shared `common::cluster()`.
//! The data is a generated date of 70 000 issues and the next day's full files (30% of the
//! rows changed, 0.5% new), made with the project's generator.
//!
//! - **Server stopped mid-load and restarted.** While the loader merges the next day's issue
//!   file, `pg_ctl stop -m immediate` (every backend killed at once, no shutdown checkpoint:
//!   what a crash, an OOM kill or a failover looks like to the client), at moments spread over
//!   COPY and the merge statements, then `pg_ctl start` (crash recovery). The loader must exit
//!   75 saying the connection was lost, the master tables must be exactly as before or exactly
//!   complete (row count and md5 of every row), and a plain rerun must complete them.
//! - **Database disk full.** The next day's attribute file is loaded while the server is short
//!   of space: once so that the staging table fills it (mid-COPY), once so that the staging
//!   table fits and the merge's new row versions do not (mid-merge). Two ways, both real
//!   server-side write failures mid-transaction, never a mock:
//!   - where the test may mount (root, outside most containers), the databases live in a
//!     tablespace on a small tmpfs, resized to leave only so much free: a real full disk
//!     (`53100 could not extend file …`: no space left, or a short write). WAL stays on the
//!     ordinary disk: a full WAL volume makes the server PANIC and restart, which the first
//!     test covers;
//!   - elsewhere (e.g. CI's containers), or with `CUSIP_TEST_DISK_FULL=fsize`, the server is
//!     restarted under an RLIMIT_FSIZE (set between fork and exec of `pg_ctl`, as `prlimit
//!     --fsize` would). PostgreSQL ignores SIGXFSZ, so a relation file that would grow past the
//!     limit is not extended: EFBIG (`XX000 could not extend file …: File too large`) when the
//!     limit is a whole number of 8 kB blocks (the mid-COPY trial), a short write (`53100 …
//!     wrote only 4096 of 8192 bytes`, what a nearly full disk gives) when it cuts a block (the
//!     mid-merge trial). The limits stay above the 16 MB WAL segment, so WAL writes never fail.
//!
//!   The loader must exit 75 (worth a retry once space is freed) naming the problem, the
//!   tables must be exactly as before (rows, xmin and ctid), the failed attempt journalled, and
//!   once space is back (the tmpfs enlarged, or the server restarted without the limit) a plain
//!   rerun must load the file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{generator, run, score, summary, Db, OwnCluster};

/// Issues in the generated set: enough that COPY and each merge statement last long enough to
/// be hit, and that the attribute staging table (~22 MB) outgrows a file-size limit above the
/// 16 MB WAL segment; few enough for a debug build (the binary runs in about a minute).
const N: u64 = 70_000;

/// Generous bound on one load here (they take seconds): a hung loader fails the test.
const LOAD_LIMIT: Duration = Duration::from_secs(120);

struct Set {
    day1: [PathBuf; 3],
    day2: [PathBuf; 3],
}

/// Day 1 (03-01) and day 2 (03-02, the full next-day files) as R, E, A; generated once.
fn set() -> &'static Set {
    static SET: OnceLock<Set> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("server-faults-{N}"));
        let files = |d: &str| ["R", "E", "A"].map(|t| dir.join(format!("CED{d}{t}.PIP")));
        let set = Set {
            day1: files("03-01"),
            day2: files("03-02"),
        };
        if !set.day1.iter().chain(&set.day2).all(|f| f.exists()) {
            // Made aside and renamed into place: an interrupted run leaves no half set.
            let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).unwrap();
            for day in [
                &["--date", "03-01"][..],
                &["--next-of", "03-01", "--changed-pct", "30"][..],
            ] {
                let ok = Command::new(generator())
                    .args(["--issues", &N.to_string(), "--seed", "7", "--out"])
                    .arg(&tmp)
                    .args(day)
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "the generator failed");
            }
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&tmp, &dir).unwrap();
        }
        set
    })
}

/// The record count a file's trailer declares (`999999|TRAILER|<records>`).
fn records(file: &Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    let tail = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(64)..]).into_owned();
    tail.lines()
        .last()
        .and_then(|l| l.rsplit('|').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no trailer in {}", file.display()))
}

fn load(db: &Db, files: &[&PathBuf]) {
    let (code, _, err) = run(db.loader().args(files));
    assert_eq!(code, 0, "loading {files:?}: {err}");
}

fn spawn(db: &Db, file: &Path) -> Child {
    db.loader()
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the loader to exit, reading its output meanwhile; kills it and fails past `limit`.
fn finish_within(child: Child, limit: Duration) -> (i32, String, String) {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => {
            let out = out.unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Err(_) => {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            panic!("the loader did not exit within {limit:?}");
        }
    }
}

/// The end of the server's log, for failure messages.
fn log_tail(pg: &OwnCluster) -> String {
    let log = pg.server_log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Waits until the loader's backend runs a statement starting with one of `prefixes`. False
/// if the loader exited first (the load was too quick to be caught there).
fn wait_for_statement(db: &Db, child: &mut Child, prefixes: &[&str]) -> bool {
    let like: Vec<String> = prefixes
        .iter()
        .map(|p| format!("query LIKE '{p}%'"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let seen = db.sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'cusip-loader' AND state = 'active' AND ({})",
            like.join(" OR ")
        ));
        if seen.trim() != "0" {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn server_stopped_mid_load_and_restarted_leaves_before_or_complete_and_a_rerun_finishes() {
    let set = set();
    let [r1, e1, _] = &set.day1;
    let [r2, e2, _] = &set.day2;
    let pg = OwnCluster::start();
    // What every trial starts from (copied per trial): day 1's issuers and issues, day 2's
    // issuers. Each trial loads day 2's issues: 70% unchanged, 30% updated, 0.5% new.
    let base = pg.new_db("base", "");
    load(&base, &[r1, e1, r2]);
    let before = base.digest();
    // The complete state, from one undisturbed load.
    let reference = pg.copy_db("reference", "base");
    load(&reference, &[e2]);
    let complete = reference.digest();
    let expected = records(e2);
    assert_eq!(reference.count("issue"), expected);
    assert_ne!(before, complete);

    // (statement the loader's backend is seen running, then a further delay in ms). The
    // merge's first statement: the delta of new and changed rows (or, in the earlier merge,
    // the removal of the unchanged rows from staging).
    let merge_start = &[
        "CREATE TEMP TABLE cusip_delta",
        "DELETE FROM cusip_stage s USING issue t",
    ][..];
    let plan: [(&[&str], u64); 4] = [
        (&["COPY cusip_stage"], 50),
        (&["COPY cusip_stage"], 500),
        (merge_start, 0),
        (&["UPDATE issue t"], 20),
    ];
    let (mut faults, mut survived, mut lost) = (0u32, 0u32, 0u64);
    for (i, (statements, delay)) in plan.iter().enumerate() {
        let statement = statements.join(" or ");
        let db = pg.copy_db(&format!("trial{i}"), "base");
        let mut child = spawn(&db, e2);
        if !wait_for_statement(&db, &mut child, statements) {
            // Too quick to be caught in that statement: it ran to the end undisturbed.
            let (code, _, err) = finish_within(child, LOAD_LIMIT);
            assert_eq!(code, 0, "trial {i} ({statement} never seen): {err}");
            assert_eq!(db.digest(), complete, "trial {i}");
            survived += 1;
            continue;
        }
        std::thread::sleep(Duration::from_millis(*delay));
        pg.stop_server("immediate");
        pg.start_server(None);
        let (code, _, err) = finish_within(child, LOAD_LIMIT);
        let what = format!("trial {i} (server stopped at {statement} +{delay} ms, exit {code})");
        let after = db.digest();
        if code == 0 {
            // The stop came after the commit: the load is whole, and no fault landed.
            assert_eq!(after, complete, "{what}");
        } else {
            faults += 1;
            assert_eq!(
                code, 75,
                "{what}: a lost connection is worth a retry: {err}"
            );
            assert!(
                err.contains("connection") && err.contains("rerun"),
                "{what}: stderr should say the connection was lost and to rerun: {err}"
            );
            assert!(
                after == before || after == complete,
                "{what}: half-loaded:\nbefore:   {before}\nafter:    {after}\ncomplete: {complete}"
            );
        }
        let (code, _, err) = run(db.loader().arg(e2));
        assert_eq!(code, 0, "{what}: the rerun: {err}");
        assert_eq!(
            db.digest(),
            complete,
            "{what}: the rerun left it incomplete"
        );
        lost += expected.saturating_sub(db.count("issue"));
        survived += 1;
    }
    assert!(
        faults >= 3,
        "only {faults} of {} stops landed mid-load",
        plan.len()
    );
    score(
        "server stopped mid-load and restarted",
        plan.len() as u32,
        faults,
        survived,
        lost,
    );
}

/// How the server is made short of space (see the module comment).
enum Squeeze {
    /// The databases live in a tablespace on a tmpfs: resized to leave little free.
    Tmpfs,
    /// The server restarted under RLIMIT_FSIZE.
    FileSize,
}

/// The tmpfs's size when space is plentiful (a ceiling: tmpfs takes memory only as filled).
const ROOMY: u64 = 2 << 30;

impl Squeeze {
    /// Leaves the server short of space for the next load: so that the staging table cannot
    /// be filled (`merge` false), or so that it can but the merge's writes cannot. `heap` is
    /// the size of the attribute table's heap file before the load. The mid-COPY trial loads
    /// an unsorted copy of day 2, which is staged whole: ~1.04 × `heap` (the same columns
    /// plus a line number, 0.6% more rows). The mid-merge trial loads the sorted file, which
    /// is compared in the loader: only its ~30 % changed rows are staged (~0.3 × `heap`), and
    /// the merge writes at least ~0.3 × `heap` twice more (a temporary table of the changed
    /// rows, then a new version of each updated row, which the full pages cannot take in
    /// place).
    /// - mid-COPY: 8 MiB left free on the tmpfs; or a limit of 18 MiB, a whole number of
    ///   blocks (EFBIG), above the 16 MiB WAL segment and below the ~22 MB staging table.
    /// - mid-merge: 0.45 × `heap` left free on the tmpfs (staging fits, staging plus the
    ///   merge's writes do not); or a per-file limit of 1.17 × `heap` plus half a block (a
    ///   short write), which the staging file stays under and the growing heap file crosses.
    ///
    /// Returns what it did, for messages.
    fn apply(&self, pg: &OwnCluster, merge: bool, heap: u64) -> String {
        match self {
            Squeeze::Tmpfs => {
                let free = if merge { heap * 45 / 100 } else { 8 << 20 };
                // A copied database's files are sparse until the server writes its dirty
                // buffers out: flushed first, or they would take the free space meanwhile.
                pg.db("postgres").sql("CHECKPOINT");
                pg.resize_tmpfs(pg.tmpfs_used() + free);
                format!("tablespace on a tmpfs with {} MiB free", free >> 20)
            }
            Squeeze::FileSize => {
                let limit = if merge {
                    heap * 117 / 100 / 8192 * 8192 + 4096
                } else {
                    18 << 20
                };
                assert!(limit > 16 << 20, "the limit must leave WAL segments alone");
                pg.stop_server("fast");
                pg.start_server(Some(limit));
                format!("server under RLIMIT_FSIZE = {limit} bytes")
            }
        }
    }

    /// Space is back: the tmpfs enlarged, or the server restarted without the limit.
    fn release(&self, pg: &OwnCluster) {
        match self {
            Squeeze::Tmpfs => pg.resize_tmpfs(ROOMY),
            Squeeze::FileSize => {
                pg.stop_server("fast");
                pg.start_server(None);
            }
        }
    }
}

#[test]
fn database_disk_full_mid_load_leaves_the_tables_untouched_and_a_rerun_loads() {
    let set = set();
    let [r1, e1, a1] = &set.day1;
    let [r2, e2, a2] = &set.day2;
    let pg = OwnCluster::start();
    let forced = std::env::var("CUSIP_TEST_DISK_FULL").is_ok_and(|v| v == "fsize");
    let tmpfs = if forced { None } else { pg.mount_tmpfs(ROOMY) };
    let (squeeze, options) = match &tmpfs {
        Some(dir) => {
            pg.db("postgres").sql(&format!(
                "CREATE TABLESPACE small LOCATION '{}'",
                dir.display()
            ));
            (Squeeze::Tmpfs, "TABLESPACE small")
        }
        None => (Squeeze::FileSize, ""),
    };
    // What every trial starts from (copied per trial): all of day 1, day 2's issuers and
    // issues. Each trial loads day 2's attributes.
    let base = pg.new_db("base", options);
    load(&base, &[r1, e1, a1, r2, e2]);
    let heap: u64 = base
        .sql("SELECT pg_relation_size('issue_attribute')")
        .trim()
        .parse()
        .unwrap();
    let expected = records(a2);

    // A sorted file is compared with the table in the loader and stages only its changed
    // rows, a few MB, which fit. With its first two records swapped, the comparison stops at
    // line 2 and the whole file is staged (~22 MB): that COPY is what runs out.
    let dir = tempfile::tempdir().unwrap();
    let unsorted = dir.path().join("CED03-02A.PIP");
    let text = std::fs::read_to_string(a2).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(0, 1);
    std::fs::write(&unsorted, lines.join("\n") + "\n").unwrap();

    // (moment, what the loader was doing according to its message, the file)
    let trials = [
        ("mid-COPY", "COPY into staging", &unsorted),
        ("mid-merge", "merging into issue_attribute", a2),
    ];
    let (mut survived, mut lost, mut finals) = (0u32, 0u64, Vec::new());
    for (i, (moment, stage, a2)) in trials.iter().enumerate() {
        let db = pg.copy_db(&format!("full{i}"), "base");
        let before = db.snapshot();
        let how = squeeze.apply(&pg, i == 1, heap);
        let what = format!("disk full {moment} ({how})");
        let (code, _, err) = run(db.loader().arg(a2));
        squeeze.release(&pg);
        assert_eq!(
            code,
            75,
            "{what}: out of space is worth a retry once space is freed: {err}\nserver log:\n{}",
            log_tail(&pg)
        );
        assert!(
            err.contains(stage) && err.contains("could not extend file"),
            "{what}: expected the server's write failure in {stage:?}: {err}"
        );
        assert!(
            err.contains("out of disk space"),
            "{what}: stderr should say what to do: {err}"
        );
        assert!(
            db.snapshot() == before,
            "{what}: the tables changed although the load failed"
        );
        let journal = db.sql("SELECT status, error FROM load_journal ORDER BY id DESC LIMIT 1");
        assert!(
            journal.starts_with("failed|") && journal.contains("could not extend file"),
            "{what}: the failed attempt is journalled: {journal}"
        );

        // Space is back: a plain rerun loads the file.
        let (code, out, err) = run(db.loader().arg(a2).args(["--output", "json"]));
        assert_eq!(code, 0, "{what}: the rerun: {err}");
        let v = summary(&out);
        let f = &v["files"][0];
        let n = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{k} in {f}"));
        assert_eq!(n("records"), expected, "{what}: {f}");
        assert_eq!(
            n("inserted") + n("updated") + n("unchanged"),
            expected,
            "{what}: {f}"
        );
        assert!(n("updated") > 0 && n("inserted") > 0, "{what}: {f}");
        let rows = db.count("issue_attribute");
        assert_eq!(rows, expected, "{what}: after the rerun");
        lost += expected.saturating_sub(rows);
        finals.push(db.digest());
        survived += 1;
    }
    // Both started from the same state and loaded the same file in the end: nothing of the
    // failed attempts may show.
    assert_eq!(finals[0], finals[1], "the two reruns disagree");
    score(
        "database disk full",
        trials.len() as u32,
        trials.len() as u32,
        survived,
        lost,
    );
}
