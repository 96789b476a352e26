//! Dead network paths (issue 20, items 6 and 7): a path that stops passing bytes during the
//! COPY, during the merge and during an S3 download ends in exit 75 within twice
//! `--net-timeout`, rolled back, with a message that says the connection stopped answering,
//! and a failed journal row; a backend terminated mid-load leaves its failed journal row too.
//! During the COMMIT it ends 75 within the same bound, saying the commit may have landed.
//!
//! The dead path is a forwarder written here, in user space, between the loader and
//! PostgreSQL (or moto), that can be told to stop passing bytes while it keeps both sockets
//! open: exactly what TCP keepalive cannot see through, since the forwarder's kernel still
//! answers every probe. Where the machine allows it (root: a network namespace the test
//! makes itself), one more test drops the packets for real, with a blackhole route; where
//! it does not, that test says it was skipped and why.
//!
//! `NET_TEST_LOG=cusip_loader=debug` shows the loader's watchdog at work (each liveness
//! check, what it saw) in a failing test's output.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::forward::Forwarder;
use common::s3::{aws_env, s3};
use common::*;

/// `--net-timeout` for every test here: small, so that the file stays quick.
const NET_TIMEOUT: u64 = 3;

/// The bound the issue sets: twice `--net-timeout`, from the moment the path goes dead.
fn bound() -> Duration {
    Duration::from_secs(2 * NET_TIMEOUT)
}

// ------------------------------------------------------------------------ the forwarder

#[test]
fn the_forwarder_passes_bytes_until_frozen_and_keeps_the_sockets_open() {
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let _ = std::io::copy(&mut &c, &mut w);
            });
        }
    });
    let f = Forwarder::start(target);
    let mut c = TcpStream::connect(("127.0.0.1", f.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    c.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    f.freeze();
    c.write_all(b"lost").unwrap();
    let e = c.read(&mut b).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "frozen, the connection neither answers nor closes: {e}"
    );
    // A new connection still passes; after freeze_all one does not.
    let mut d = TcpStream::connect(("127.0.0.1", f.port)).unwrap();
    d.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    d.write_all(b"pong").unwrap();
    d.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"pong");
    f.freeze_all();
    let mut g = TcpStream::connect(("127.0.0.1", f.port)).unwrap();
    g.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    g.write_all(b"gone").unwrap();
    assert!(g.read(&mut b).is_err());
}

// ------------------------------------------------------------------------------ helpers

/// 300 000 issues (R and E), generated once per test binary.
fn big_set() -> &'static [PathBuf; 2] {
    static SET: OnceLock<[PathBuf; 2]> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("net-300000");
        let files = ["R", "E"].map(|t| dir.join(format!("CED03-01{t}.PIP")));
        if !files.iter().all(|f| f.exists()) {
            std::fs::create_dir_all(&dir).unwrap();
            let ok = Command::new(generator())
                .args([
                    "--issues", "300000", "--date", "03-01", "--seed", "7", "--out",
                ])
                .arg(&dir)
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "the generator failed");
        }
        files
    })
}

fn pg_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], cluster().port))
}

/// A database with the big set's issuers loaded (directly, not through any forwarder).
fn db_with_issuers(tag: &str) -> Db {
    let db = Db::new(tag);
    let (code, _, err) = run(db.loader().arg(&big_set()[0]));
    assert_eq!(code, 0, "{err}");
    db
}

/// A session of the test's holding `issue` in SHARE mode: reads pass, the merge's INSERT
/// waits. Released by ending that session server-side ([`release`]).
fn hold_issue_against_writes(db: &Db) -> Child {
    let c = cluster();
    let holder = psql_cmd(&c.bin, c.port, &db.name)
        .args([
            "-c",
            "BEGIN",
            "-c",
            "LOCK TABLE issue IN SHARE MODE",
            "-c",
            "SELECT pg_sleep(120)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.sql(HELD).trim() == "0" {
        assert!(Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    holder
}

/// The test's SHARE lock on `issue`, granted, in this database.
const HELD: &str = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
     WHERE l.relation = 'issue'::regclass AND l.mode = 'ShareLock' AND l.granted \
     AND a.datname = current_database()";

fn release(db: &Db, mut holder: Child) {
    db.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_locks l WHERE l.relation = 'issue'::regclass \
         AND l.mode = 'ShareLock' AND l.granted AND l.pid IN (SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database())",
    );
    let _ = holder.wait();
}

/// A running loader whose stderr is collected line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .arg(format!("--net-timeout={NET_TIMEOUT}"))
            // The paths are frozen in the staged path's statements (COPY cusip_stage, the
            // merge), which an empty table the role owns would skip by default.
            .env("CUSIP_INITIAL_LOAD", "never")
            .env(
                "RUST_LOG",
                std::env::var("NET_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let all = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Running {
            child,
            lines,
            stderr,
        }
    }

    /// Waits for a log line containing `text` (false if the loader ended first).
    fn wait_for_log(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(text) {
                return true;
            }
        }
        false
    }

    /// Waits until the loader's backend runs a statement starting with `prefix`.
    fn wait_for_statement(&mut self, db: &Db, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let n = db.sql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'cusip-loader' AND state = 'active' \
                 AND query LIKE '{prefix}%'"
            ));
            if n.trim() != "0" {
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the loader ended before {prefix}: {}",
                self.stderr()
            );
            assert!(Instant::now() < deadline, "{prefix} never seen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit code, and how long after `since` the loader ended (killed at three times
    /// the bound, so that a hang fails the test instead of stalling it).
    fn finish(mut self, since: Instant) -> (i32, Duration, String) {
        let code = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.code().unwrap_or(-1);
            }
            if since.elapsed() > 3 * bound() {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "still running {:?} after the path went dead:\n{}",
                    since.elapsed(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = since.elapsed();
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(50));
        (code, took, self.stderr())
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// The journal's rows for `file`: (status, error).
fn journal_of(db: &Db, file: &str) -> Vec<(String, String)> {
    db.sql(&format!(
        "SELECT status, coalesce(error, '') FROM load_journal WHERE file_name = '{file}' ORDER BY id"
    ))
    .lines()
    .map(|l| {
        let (s, e) = l.split_once('|').unwrap_or((l, ""));
        (s.to_string(), e.to_string())
    })
    .collect()
}

/// Waits until no session of the loader is left on `db` (its transaction has rolled back).
fn wait_sessions_gone(db: &Db, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let n = db.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'cusip-loader'",
        );
        if n.trim() == "0" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The loader's first ERROR log line, its message only (empty if none).
fn error_line(err: &str) -> &str {
    err.lines()
        .find_map(|l| l.split_once(" ERROR ").map(|(_, m)| m))
        .unwrap_or("")
}

/// The error line names the place, what was being done, that the connection stopped
/// answering, that nothing was committed and that a rerun is safe.
fn assert_stopped_answering(err: &str, place: &str, doing: &str) {
    let line = Some(error_line(err))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    for must in [
        place,
        doing,
        "stopped answering",
        "nothing was",
        "rerun is safe",
    ] {
        assert!(line.contains(must), "{must:?} missing from: {line}\n{err}");
    }
}

/// The attempt was journalled as failed, with the error the loader printed.
fn assert_failed_row(db: &Db, file: &str, must: &str) {
    let rows = journal_of(db, file);
    assert!(
        rows.iter().all(|(s, _)| s != "loaded"),
        "nothing may be loaded: {rows:?}"
    );
    let (status, error) = rows
        .last()
        .unwrap_or_else(|| panic!("no journal row for {file}"));
    assert_eq!(status, "failed", "{rows:?}");
    assert!(
        error.contains(must),
        "{must:?} missing from the journal: {error}"
    );
}

// -------------------------------------------------------------------------------- tests

/// The path dies mid-COPY: the loader's bytes stop being taken, the window shuts, and the
/// kernel (`TCP_USER_TIMEOUT`) or the watchdog gives the connection up.
#[test]
fn a_dead_path_mid_copy_ends_75_within_twice_the_timeout() {
    let db = db_with_issuers("net_copy");
    let before = db.snapshot();
    let fwd = Forwarder::start(pg_addr());
    let e = &big_set()[1];
    let mut loader = Running::spawn(
        db.loader()
            .env("CUSIP_DB_PORT", fwd.port.to_string())
            .arg(e),
    );
    loader.wait_for_statement(&db, "COPY cusip_stage");
    std::thread::sleep(Duration::from_millis(300));
    fwd.freeze();
    let frozen = Instant::now();
    let (code, took, err) = loader.finish(frozen);
    eprintln!(
        "dead path mid-COPY: exit {code} after {took:?} (--net-timeout {NET_TIMEOUT})\n{}",
        error_line(&err)
    );
    assert_eq!(code, 75, "{err}");
    assert!(took < bound(), "took {took:?}:\n{err}");
    assert_stopped_answering(
        &err,
        &format!("127.0.0.1:{}", fwd.port),
        "COPY into staging",
    );
    assert_failed_row(&db, "CED03-01E.PIP", "stopped answering");
    assert_eq!(db.snapshot(), before, "nothing may be half-loaded");
    drop(fwd);
    assert!(wait_sessions_gone(&db, Duration::from_secs(30)));
    assert_eq!(db.snapshot(), before);
    score("dead network path mid-COPY", 1, 1, 1, 0);
}

/// The path dies while the server runs the merge: nothing is sent either way, so TCP sees
/// nothing wrong (the forwarder answers keepalive). The merge is made long by a lock the
/// test holds, past `--net-timeout`: the watchdog's liveness check finds the session still
/// working and waits; once the lock goes, the merge ends at once and its answer is lost in
/// the forwarder, and the next check finds the session idle with the answer never
/// delivered.
#[test]
fn a_dead_path_mid_merge_ends_75_within_twice_the_timeout() {
    let db = Db::new("net_merge");
    let [r, e, _] = day("01-15").try_into().unwrap();
    let (code, _, err) = run(db.loader().arg(&r));
    assert_eq!(code, 0, "{err}");
    let before = db.snapshot();
    let holder = hold_issue_against_writes(&db);
    let fwd = Forwarder::start(pg_addr());
    let mut loader = Running::spawn(
        db.loader()
            .env("CUSIP_DB_PORT", fwd.port.to_string())
            .arg(&e),
    );
    assert!(loader.wait_for_log("checked"), "{}", loader.stderr());
    loader.wait_for_statement(&db, "INSERT INTO issue");
    fwd.freeze();
    let frozen = Instant::now();
    // The server works on (waits for the lock) past --net-timeout: that is not a dead path.
    std::thread::sleep(Duration::from_secs(NET_TIMEOUT) + Duration::from_millis(500));
    assert!(
        loader.child.try_wait().unwrap().is_none(),
        "given up while the server was still working:\n{}",
        loader.stderr()
    );
    release(&db, holder);
    let (code, took, err) = loader.finish(frozen);
    eprintln!(
        "dead path mid-merge: exit {code} after {took:?} (--net-timeout {NET_TIMEOUT})\n{}",
        error_line(&err)
    );
    assert_eq!(code, 75, "{err}");
    assert!(took < bound(), "took {took:?}:\n{err}");
    assert_stopped_answering(
        &err,
        &format!("127.0.0.1:{}", fwd.port),
        "merging into issue",
    );
    assert!(err.contains("idle in transaction"), "{err}");
    assert_failed_row(&db, "CED01-15E.PIP", "stopped answering");
    // The loader ended its old session itself: rolled back now, with the forwarder still
    // holding both sockets open.
    assert!(
        wait_sessions_gone(&db, Duration::from_secs(5)),
        "the old session is still there: {}\n{err}",
        db.sql(
            "SELECT pid, state, wait_event, backend_start, query FROM pg_stat_activity \
             WHERE datname = current_database()"
        )
    );
    assert_eq!(db.snapshot(), before, "nothing may be half-loaded");
    assert_eq!(db.count("issue"), 0);
    score("dead network path mid-merge", 1, 1, 1, 0);
}

/// The path dies while the server runs the COMMIT. tokio-postgres sends a dropped
/// statement's `Close` and `Sync` in the same write as the `COMMIT`, and their answer comes
/// back at once: the loader has heard last while the COMMIT's answer is still owed. Counting
/// by who spoke last, the watchdog then took the idle session for a loader busy elsewhere and
/// waited for ever (the soak hung so in CI, seed 271441065); counting the protocol's requests
/// and answers, it sees the answer owed. The COMMIT is made long by a deferred trigger the
/// test adds to the journal, so that the freeze lands inside it; the commit lands, its
/// answer is lost, and the message says the commit may have landed. The rerun skips the file.
#[test]
fn a_dead_path_while_the_commit_runs_ends_75_within_twice_the_timeout() {
    let db = Db::new("net_commit");
    let [r, e, _] = day("01-15").try_into().unwrap();
    let (code, _, err) = run(db.loader().arg(&r));
    assert_eq!(code, 0, "{err}");
    db.script(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF NEW.status = 'loaded' THEN PERFORM pg_sleep(1.5); END IF; RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON load_journal \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
    );
    let fwd = Forwarder::start(pg_addr());
    let mut loader = Running::spawn(
        db.loader()
            .env("CUSIP_DB_PORT", fwd.port.to_string())
            .arg(&e),
    );
    loader.wait_for_statement(&db, "COMMIT");
    fwd.freeze();
    let frozen = Instant::now();
    let (code, took, err) = loader.finish(frozen);
    eprintln!(
        "dead path mid-COMMIT: exit {code} after {took:?} (--net-timeout {NET_TIMEOUT})\n{}",
        error_line(&err)
    );
    assert_eq!(code, 75, "{err}");
    assert!(took < bound(), "took {took:?}:\n{err}");
    let line = error_line(&err);
    let place = format!("127.0.0.1:{}", fwd.port);
    for must in [
        place.as_str(),
        "committing",
        "stopped answering",
        "is idle",
        "may have landed",
        "rerun is safe",
    ] {
        assert!(line.contains(must), "{must:?} missing from: {line}\n{err}");
    }
    // The commit landed before its answer was lost: the file is loaded, once.
    let rows = journal_of(&db, "CED01-15E.PIP");
    assert_eq!(
        rows.iter().filter(|(s, _)| s == "loaded").count(),
        1,
        "{rows:?}"
    );
    drop(fwd);
    assert!(wait_sessions_gone(&db, Duration::from_secs(30)));
    let loaded = db.snapshot();
    let (code, _, err) = run(db.loader().arg(&e));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("already loaded"), "{err}");
    assert_eq!(db.snapshot(), loaded, "the rerun changes nothing");
    score("dead network path mid-COMMIT", 1, 1, 1, 0);
}

/// The path to S3 dies mid-download (new connections too), in both ways an object is
/// fetched: in parallel ranged parts, where a part asked for after the freeze hears nothing,
/// and as one stream, where the SDK's stalled-stream protection cuts the body and the resume
/// hears nothing. Either way the load ends 75.
#[test]
fn a_dead_path_mid_s3_download_ends_75_within_twice_the_timeout() {
    let e = &big_set()[1];
    let bucket = s3().new_bucket("netdead");
    let key = "pif/CED03-01E.PIP";
    s3().put_file(&bucket, key, e);
    let ways: [(&str, &[&str]); 2] = [
        ("parallel parts", &["--s3-part-size", "1048576"]),
        ("one stream", &["--s3-concurrency", "1"]),
    ];
    for (i, (way, args)) in ways.into_iter().enumerate() {
        let db = db_with_issuers(&format!("net_s3_{i}"));
        let before = db.snapshot();
        let fwd = Forwarder::start(SocketAddr::from(([127, 0, 0, 1], s3().port)));
        let mut cmd = db.loader();
        for (k, v) in aws_env(&format!("http://127.0.0.1:{}", fwd.port)) {
            cmd.env(k, v);
        }
        let mut loader = Running::spawn(
            cmd.args(["--s3-bucket", &bucket, "--s3-key", key])
                .args(args),
        );
        loader.wait_for_statement(&db, "COPY cusip_stage");
        std::thread::sleep(Duration::from_millis(300));
        fwd.freeze_all();
        let frozen = Instant::now();
        let (code, took, err) = loader.finish(frozen);
        eprintln!(
            "dead path mid-download ({way}): exit {code} after {took:?} (--net-timeout \
             {NET_TIMEOUT})\n{}",
            error_line(&err)
        );
        assert_eq!(code, 75, "{way}: {err}");
        assert!(took < bound(), "{way}: took {took:?}:\n{err}");
        assert_stopped_answering(&err, &format!("s3://{bucket}/{key}"), "download");
        assert_failed_row(&db, "CED03-01E.PIP", "stopped answering");
        assert_eq!(db.snapshot(), before, "{way}: nothing may be half-loaded");
    }
    score("dead network path mid-S3-download", 2, 2, 2, 0);
}

/// The backend terminated mid-load: the load's connection is gone, so the failed attempt is
/// recorded on a new one, with its error.
#[test]
fn a_terminated_backend_leaves_a_failed_journal_row_with_its_error() {
    let db = db_with_issuers("net_term");
    let before = db.snapshot();
    let e = &big_set()[1];
    let mut loader = Running::spawn(db.loader().arg(e));
    loader.wait_for_statement(&db, "COPY cusip_stage");
    let killed = db.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'cusip-loader' AND query LIKE 'COPY cusip_stage%'",
    );
    assert_eq!(killed.trim(), "t");
    let (code, _, err) = loader.finish(Instant::now());
    assert_eq!(code, 75, "{err}");
    assert!(!err.contains("could not be recorded"), "{err}");
    // The row holds the error the loader printed.
    let printed = err
        .lines()
        .find_map(|l| l.split_once(" ERROR ").map(|(_, m)| m))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    assert_failed_row(&db, "CED03-01E.PIP", printed);
    assert_eq!(db.snapshot(), before);
    score("backend terminated: the attempt journalled", 1, 1, 1, 0);
}

// ------------------------------------------------------------- a real drop, where possible

/// A network namespace of this test's own, entered by the processes started in it.
struct NetNs {
    fd: std::os::fd::OwnedFd,
}

impl NetNs {
    /// Makes a namespace with its loopback up and a listener in it, on a thread of its own
    /// (a thread's namespace is its own; sockets keep the one they were made in). Needs
    /// CAP_SYS_ADMIN (root, as in CI).
    fn new() -> Result<(NetNs, TcpListener), String> {
        std::thread::spawn(|| {
            use std::os::fd::FromRawFd;
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "unshare(CLONE_NEWNET): {} (needs root or CAP_SYS_ADMIN)",
                    std::io::Error::last_os_error()
                ));
            }
            let path = c"/proc/thread-self/ns/net";
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(format!(
                    "open /proc/thread-self/ns/net: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let ns = NetNs {
                fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            };
            // Started from this thread, `ip` runs in the new namespace.
            let up = Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if !up.status.success() {
                return Err(format!(
                    "ip link set lo up: {}",
                    String::from_utf8_lossy(&up.stderr)
                ));
            }
            let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            Ok((ns, l))
        })
        .join()
        .unwrap_or_else(|_| Err("the namespace thread panicked".into()))
    }

    /// `cmd`, to be started inside the namespace.
    fn enter<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self.fd.as_raw_fd();
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        }
    }

    /// Drops every packet to and from 127.0.0.1 inside the namespace, silently.
    fn blackhole(&self) {
        let out = self
            .enter(Command::new("ip").args([
                "route",
                "replace",
                "blackhole",
                "127.0.0.1/32",
                "table",
                "local",
            ]))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "blackhole: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The loader in a network namespace of its own, reaching PostgreSQL through a forwarder
/// listening inside it; while the merge waits (on a lock the test holds), a blackhole route
/// drops every packet. No box answers anything now: TCP keepalive and the user timeout (or
/// the watchdog) give the connection up, and even recording the attempt fails, which the
/// message says.
#[test]
fn a_real_packet_drop_mid_merge_ends_75_within_twice_the_timeout() {
    let (ns, listener) = match NetNs::new() {
        Ok(n) => n,
        Err(why) => {
            println!(
                "SKIPPED a_real_packet_drop_mid_merge_ends_75_within_twice_the_timeout: cannot \
                 make a network namespace here ({why}); the user-space dead paths above still ran"
            );
            eprintln!("SKIPPED a_real_packet_drop_mid_merge: {why}");
            return;
        }
    };
    let db = Db::new("net_drop");
    let [r, e, _] = day("01-15").try_into().unwrap();
    let (code, _, err) = run(db.loader().arg(&r));
    assert_eq!(code, 0, "{err}");
    let before = db.snapshot();
    let holder = hold_issue_against_writes(&db);
    let fwd = Forwarder::on(listener, pg_addr());
    let mut cmd = db.loader();
    cmd.env("CUSIP_DB_PORT", fwd.port.to_string()).arg(&e);
    let mut loader = Running::spawn(ns.enter(&mut cmd));
    assert!(loader.wait_for_log("checked"), "{}", loader.stderr());
    loader.wait_for_statement(&db, "INSERT INTO issue");
    ns.blackhole();
    let dropped = Instant::now();
    let (code, took, err) = loader.finish(dropped);
    eprintln!(
        "real packet drop mid-merge: exit {code} after {took:?} (--net-timeout {NET_TIMEOUT})\n{}",
        error_line(&err)
    );
    release(&db, holder);
    assert_eq!(code, 75, "{err}");
    assert!(took < bound(), "took {took:?}:\n{err}");
    assert_stopped_answering(
        &err,
        &format!("127.0.0.1:{}", fwd.port),
        "merging into issue",
    );
    assert!(
        err.contains("could not be recorded in load_journal"),
        "the path is dead for a new connection too: {err}"
    );
    drop(fwd);
    assert!(wait_sessions_gone(&db, Duration::from_secs(30)));
    assert_eq!(db.snapshot(), before, "nothing may be half-loaded");
    assert_eq!(db.count("issue"), 0);
    score("real packet drop mid-merge", 1, 1, 1, 0);
}
