//! The soak (issue 20): the loader's life under a scheduler, one business day after another,
//! with faults injected at random, ending with the tables equal to an independent oracle.
//!
//! - **Data.** `CUSIP_SOAK_DAYS` business days (Mon–Fri from 2024-01-02) of generated R, E and
//!   A files of about `CUSIP_SOAK_ISSUES` issues, made at the start into a temp dir by the
//!   project's generator: the same base rows every day (`--next-of 01-01`), with a delta seed
//!   of each date's own, so every day has its own changed rows and new keys, and amendments of
//!   earlier keys appended in one or all of its files (`--repeat-pct`, `--repeat-types`: the
//!   other files keep ascending keys, so both ways of comparing are exercised).
//! - **Source.** Each day's files are uploaded to the test's moto server, under a prefix, as
//!   `CED{MM-DD}{R|E|A}.PIP`, just before the day's first run, and read through a
//!   `FaultProxy` (one per run, with the run's S3 fault rules, if any).
//! - **Driver.** Like a scheduler: for each day it runs the real loader `--s3-bucket B
//!   --s3-prefix P --date D` against a cluster of the test's own (`OwnCluster`: the faults
//!   restart the server); exit 0 moves on; 75, and 66 while a file may still arrive, are
//!   retried after a short pause, a bounded number of times; a run the driver itself killed or
//!   stopped (SIGKILL, SIGTERM's 143) is rerun as a scheduler reruns a job the platform
//!   killed; anything else fails the test with the run's output.
//! - **Faults.** On about a third of the runs (per-run draws from `CUSIP_SOAK_SEED`, printed;
//!   the same seed replays the same plan, though where a mid-load fault lands depends on
//!   timing): the loader SIGKILLed or SIGTERMed mid-load, its backend terminated, the server
//!   restarted mid-load (`-m fast`, or `-m immediate`: a crash), S3 answering 500/503 or
//!   cutting a body, or one of the day's files uploaded only after the first run (which gets
//!   66). After a run that did not exit 0 the driver waits until the loader's backends are gone.
//! - **At the end.** Every master table equals the oracle (`common::assert_table_matches`: the
//!   files of every day in order, last record per key winning); the journal has exactly one
//!   `loaded` row per file, and one per business day and table. It prints its scorecard line
//!   and writes it for `.ci/scorecard`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate, Weekday};

use common::forward::Forwarder;
use common::s3::{aws_env, fault_proxy, s3, Kind, Rule};
use common::*;

/// Business days by default: see `CUSIP_SOAK_DAYS`.
const DEFAULT_DAYS: usize = 30;
/// Issues per day by default: see `CUSIP_SOAK_ISSUES`.
const DEFAULT_ISSUES: u64 = 3_000;
/// The prefix the day's objects are uploaded under (not the loader's default `pif/`).
const PREFIX: &str = "incoming/pip/";
/// Runs of one day at most; faults are drawn only for the first `FAULTY_ATTEMPTS`, so a
/// day always gets clean runs to finish on.
const MAX_ATTEMPTS: u32 = 8;
const FAULTY_ATTEMPTS: u32 = 4;
/// 66 is retried this many times a day (a file may still arrive), then it fails the test.
const MAX_NOT_FOUND: u32 = 2;
/// The scheduler's pause before a retry.
const PAUSE: Duration = Duration::from_millis(200);
/// A run taking longer than this is hung: killed, and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(180);
/// The cluster's settings: the shared cluster's, but with `synchronous_commit=on`. With it
/// off, a commit the loader was told of may sit in the WAL buffers when `-m immediate` kills
/// the server, and be lost: the test's durability shortcut, not the loader's doing.
const SETTINGS: &str = "-c fsync=off -c synchronous_commit=on -c full_page_writes=off \
                        -c max_connections=100 -c shared_buffers=64MB";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

// ------------------------------------------------------------------------------ the rng

/// splitmix64: small, seedable, and the same on every machine.
struct Rng(u64);

impl Rng {
    /// The draws of run `attempt` of day `day`: fixed by the seed alone, whatever the runs
    /// before it did, so a seed replays the same plan.
    fn for_run(seed: u64, day: usize, attempt: u32) -> Rng {
        let mut r = Rng(seed ^ ((day as u64) << 32 | attempt as u64).wrapping_mul(0x9E37));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

// ------------------------------------------------------------------------------ the days

/// `n` business days (Monday to Friday) from 2024-01-02. The generator dates `MM-DD` in 2024,
/// so the run must stay within that year.
fn business_days(n: usize) -> Vec<NaiveDate> {
    let days: Vec<NaiveDate> = NaiveDate::from_ymd_opt(2024, 1, 2)
        .unwrap()
        .iter_days()
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .take(n)
        .collect();
    assert!(
        days.last().is_some_and(|d| d.year() == 2024),
        "CUSIP_SOAK_DAYS={n}: the generator's dates stay within 2024 (at most 251 business days)"
    );
    days
}

const TYPES: [&str; 3] = ["R", "E", "A"];

/// `CED{MM-DD}{R|E|A}.PIP`
fn file_name(day: NaiveDate, t: &str) -> String {
    format!("CED{}{t}.PIP", day.format("%m-%d"))
}

/// Which files of a day carry appended amendments: one type in turn, every fourth day all
/// three.
fn repeat_types(day: NaiveDate) -> &'static str {
    ["E", "A", "R", "REA"][day.ordinal0() as usize % 4]
}

/// Every day's R, E and A files, made with the generator into `dir`.
fn generate(dir: &Path, days: &[NaiveDate], issues: u64) {
    for d in days {
        let out = Command::new(generator())
            .args(["--issues", &issues.to_string(), "--seed", "7"])
            .args([
                "--next-of",
                "01-01",
                "--date",
                &d.format("%m-%d").to_string(),
            ])
            // Each date's own changed rows, new keys and repeats.
            .args(["--delta-seed", &d.ordinal().to_string()])
            .args(["--changed-pct", "2", "--new-pct", "1"])
            .args(["--repeat-pct", "2", "--repeat-types", repeat_types(*d)])
            .arg("--out")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the generator failed for {d}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ------------------------------------------------------------------------------ faults

/// What is done to one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The loader SIGKILLed mid-load (an OOM kill, a host lost).
    Kill,
    /// SIGTERM mid-load (ECS StopTask): it rolls back and exits 143.
    Term,
    /// The loader's backend terminated (`pg_terminate_backend`): 75.
    TerminateBackend,
    /// The server restarted mid-load: `pg_ctl stop -m fast` (or `-m immediate`, a crash),
    /// then started again: 75.
    RestartServer { immediate: bool },
    /// S3 answers errors, or cuts a body: retried by the loader, else 75.
    S3Error,
    /// One of the day's files is uploaded only after the first run, which gets 66.
    LateFile,
    /// A dead network path mid-load: the forwarder every run's database connections go
    /// through stops passing bytes but keeps its sockets open; the loader (with
    /// `--net-timeout`) must give up with 75, and the next run loads.
    DeadNetworkPath,
}

/// `--net-timeout` for every run: a dead path ends it in a few seconds.
const NET_TIMEOUT: u64 = 2;

/// The faults drawn from, each as likely (`LateFile` only for a day's first run; a restart is
/// `-m immediate` one time in three).
const KINDS: [Fault; 7] = [
    Fault::Kill,
    Fault::Term,
    Fault::TerminateBackend,
    Fault::RestartServer { immediate: false },
    Fault::S3Error,
    Fault::DeadNetworkPath,
    Fault::LateFile,
];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "SIGKILL",
            Fault::Term => "SIGTERM",
            Fault::TerminateBackend => "backend terminated",
            Fault::RestartServer { immediate: false } => "server restarted (fast)",
            Fault::RestartServer { immediate: true } => "server restarted (immediate)",
            Fault::S3Error => "S3 error",
            Fault::LateFile => "file late",
            Fault::DeadNetworkPath => "dead network path",
        }
    }

    /// Injected while the loader runs, at a point of its load.
    fn mid_load(self) -> bool {
        matches!(
            self,
            Fault::Kill
                | Fault::Term
                | Fault::TerminateBackend
                | Fault::RestartServer { .. }
                | Fault::DeadNetworkPath
        )
    }
}

/// The plan of one run: its fault (if any) and the draws that place it.
struct Plan {
    fault: Option<Fault>,
    /// Mid-load faults: the n-th progress line of the loader's log (1-based) to wait for,
    /// then a delay in ms.
    event: usize,
    delay_ms: u64,
    /// S3 faults: the rule to serve.
    rule: Option<(String, Rule)>,
    /// `LateFile`: the type held back.
    late: usize,
    /// `TerminateBackend`: which of the loader's backends (the load's, or the comparison's
    /// second connection when there is one), modulo their number.
    victim: usize,
}

/// The loader's log messages that mark progress through a file (`INFO loading file=…`, then
/// `staged`, `checked`, `merged`): a mid-load fault waits for one of them.
const MARKS: [&str; 4] = ["loading", "staged", "checked", "merged"];

/// True if `line` of the loader's log is one of the `MARKS`.
fn is_mark(line: &str) -> bool {
    line.split_once(" INFO ")
        .is_some_and(|(_, msg)| MARKS.iter().any(|m| msg.starts_with(&format!("{m} "))))
}

/// The plan of run `attempt` of the `day_index`-th day, whose files are in `dir`.
fn plan(seed: u64, dir: &Path, day_index: usize, day: NaiveDate, attempt: u32) -> Plan {
    let mut r = Rng::for_run(seed, day_index, attempt);
    let faulty = attempt <= FAULTY_ATTEMPTS && r.below(3) == 0;
    let mut fault = faulty.then(|| r.pick(&KINDS));
    if fault == Some(Fault::LateFile) && attempt > 1 {
        // A file can only be late before it has arrived.
        fault = Some(r.pick(&KINDS[..KINDS.len() - 1]));
    }
    if fault.is_some_and(|f| matches!(f, Fault::RestartServer { .. })) {
        fault = Some(Fault::RestartServer {
            immediate: r.below(3) == 0,
        });
    }
    let event = 1 + r.below((TYPES.len() * MARKS.len()) as u64) as usize;
    let delay_ms = r.below(60);
    let late = r.below(3) as usize;
    let victim = r.below(2) as usize;
    let rule = (fault == Some(Fault::S3Error)).then(|| {
        let t = TYPES[r.below(3) as usize];
        let key = file_name(day, t);
        // One failure is retried by the SDK (the run loads); three exhaust its attempts for
        // that request (the run exits 75 and the scheduler retries).
        let times = r.pick(&[1usize, 3]);
        let (what, rule) = match r.below(4) {
            0 => (
                format!("500 on GET of {t}"),
                Rule::internal_error(Kind::ObjectGet, times).key(&key),
            ),
            1 => (
                "503 on LIST".to_string(),
                Rule::service_unavailable(Kind::List, times),
            ),
            2 => (
                format!("503 SlowDown on GET of {t}"),
                Rule::slow_down(Kind::WholeGet, times).key(&key),
            ),
            _ => {
                let size = std::fs::metadata(dir.join(&key)).unwrap().len();
                let after = 1 + r.below(size.max(2) - 1) as usize;
                (
                    format!("body of {t} cut at byte {after}"),
                    Rule::cut(Kind::ObjectGet, after, times).key(&key),
                )
            }
        };
        (format!("{what} x{times}"), rule)
    });
    Plan {
        fault,
        event,
        delay_ms,
        rule,
        late,
        victim,
    }
}

// ------------------------------------------------------------------------------ a run

/// What a run ended with.
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
    /// The fault was injected (a signal sent, a backend terminated, the server restarted, an
    /// S3 fault served).
    injected: bool,
}

impl Outcome {
    fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| -self.status.signal().unwrap_or(0))
    }
}

struct Soak {
    pg: OwnCluster,
    /// Every run's database connections pass through it (a dead path freezes them).
    fwd: Forwarder,
    db: Db,
    bucket: String,
    seed: u64,
    /// What happened so far, for failure messages.
    history: Vec<String>,
}

impl Soak {
    /// The loader, as the scheduler runs it, reading S3 through `endpoint`.
    fn loader(&self, endpoint: &str, day: NaiveDate) -> Command {
        let mut c = self.db.loader();
        c.env("CUSIP_DB_PORT", self.fwd.port.to_string())
            .args(["--net-timeout", &NET_TIMEOUT.to_string()]);
        for (k, v) in aws_env(endpoint) {
            c.env(k, v);
        }
        c.args(["--s3-bucket", &self.bucket, "--s3-prefix", PREFIX])
            .args(["--date", &day.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn upload(&self, dir: &Path, day: NaiveDate, t: &str) {
        let name = file_name(day, t);
        s3().put_file(&self.bucket, &format!("{PREFIX}{name}"), &dir.join(&name));
    }

    /// The pids of the loader's backends in its database.
    fn loader_backends(&self) -> Vec<i32> {
        self.db
            .sql(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'cusip-loader' \
                 AND datname = current_database()",
            )
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Waits until the loader's backends are gone: after its client died a backend rolls
    /// back as soon as it notices, and only then is its table lock free and the outcome final.
    fn wait_backends_gone(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.loader_backends().is_empty() {
            assert!(
                Instant::now() < deadline,
                "{}the loader's backends stayed after it exited",
                self.context()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn context(&self) -> String {
        format!(
            "soak seed {} (replay: CUSIP_SOAK_SEED={}); runs so far:\n{}\n",
            self.seed,
            self.seed,
            self.history.join("\n")
        )
    }

    /// One run of the loader for `day`, with `plan`'s fault.
    fn run(&self, day: NaiveDate, plan: &Plan) -> Outcome {
        let rules = plan.rule.iter().map(|(_, r)| r.clone()).collect();
        let proxy = fault_proxy(s3().port, rules);
        let t = Instant::now();
        let mut child = self.loader(&proxy.endpoint, day).spawn().unwrap();
        let stdout = {
            let mut out = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = out.read_to_string(&mut s);
                s
            })
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        let (marks, progress) = channel();
        let reader = {
            let err = BufReader::new(child.stderr.take().unwrap());
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                for line in err.lines().map_while(Result::ok) {
                    if is_mark(&line) {
                        let _ = marks.send(());
                    }
                    let mut s = stderr.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            })
        };
        let mut injected = false;
        if let Some(fault) = plan.fault.filter(|f| f.mid_load()) {
            if wait_for_mark(&progress, plan.event) {
                std::thread::sleep(Duration::from_millis(plan.delay_ms));
                injected = self.inject(fault, plan.victim, &mut child);
            }
        }
        let status = wait_within(&mut child, RUN_LIMIT).unwrap_or_else(|| {
            panic!(
                "{}a run for {day} did not exit within {RUN_LIMIT:?}:\n{}",
                self.context(),
                stderr.lock().unwrap()
            )
        });
        // Both readers end at EOF, which comes with the exit.
        let stdout = stdout.join().unwrap();
        reader.join().unwrap();
        let stderr = stderr.lock().unwrap().clone();
        if plan.rule.is_some() {
            injected = proxy.hits() > 0;
        }
        Outcome {
            status,
            stdout,
            stderr,
            took: t.elapsed(),
            injected,
        }
    }

    /// Injects a mid-load fault; false if there was nothing left to hit (the loader had exited).
    fn inject(&self, fault: Fault, victim: usize, child: &mut Child) -> bool {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        match fault {
            Fault::Kill | Fault::Term => {
                let sig = if fault == Fault::Kill {
                    libc::SIGKILL
                } else {
                    libc::SIGTERM
                };
                unsafe {
                    libc::kill(child.id() as i32, sig);
                }
                true
            }
            Fault::TerminateBackend => {
                // The load's connection, or the comparison's second one (the master read).
                let pids = self.loader_backends();
                let Some(&pid) = pids.get(victim % pids.len().max(1)) else {
                    return false;
                };
                self.db
                    .sql(&format!("SELECT pg_terminate_backend({pid})"))
                    .trim()
                    == "t"
            }
            Fault::RestartServer { immediate } => {
                self.pg
                    .stop_server(if immediate { "immediate" } else { "fast" });
                self.pg.start_server(None);
                true
            }
            Fault::S3Error | Fault::LateFile => unreachable!("not a mid-load fault"),
            Fault::DeadNetworkPath => {
                self.fwd.freeze();
                true
            }
        }
    }
}

/// Waits for the `n`-th progress mark; false if the loader's stderr closed first.
fn wait_for_mark(progress: &Receiver<()>, n: usize) -> bool {
    let deadline = Instant::now() + RUN_LIMIT;
    let mut seen = 0;
    while seen < n {
        match progress.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(()) => seen += 1,
            Err(RecvTimeoutError::Disconnected) | Err(RecvTimeoutError::Timeout) => return false,
        }
    }
    true
}

/// The child's exit status, or None (after killing it) if it runs past `limit`.
fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ------------------------------------------------------------------------------ the soak

#[derive(Default)]
struct Tally {
    runs: u32,
    retries: u32,
    /// Faults that landed, by name.
    faults: std::collections::BTreeMap<&'static str, u32>,
    /// Faults drawn that found nothing to hit (the run had finished).
    missed: u32,
}

#[test]
fn thirty_business_days_under_a_scheduler_with_faults_end_equal_to_the_oracle() {
    let started = Instant::now();
    let n_days = env_or("CUSIP_SOAK_DAYS", DEFAULT_DAYS);
    let issues = env_or("CUSIP_SOAK_ISSUES", DEFAULT_ISSUES);
    let seed = env_or(
        "CUSIP_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            % 1_000_000_007,
    );
    println!(
        "soak: {n_days} business days of ~{issues} issues, seed {seed} \
         (replay with CUSIP_SOAK_SEED={seed})"
    );
    let days = business_days(n_days);
    let files = tempfile::tempdir().unwrap();
    generate(files.path(), &days, issues);
    let generated = started.elapsed();

    let pg = OwnCluster::start_in(Cluster::new_dir("soak"), SETTINGS);
    let db = pg.new_db("soak", "");
    let fwd = Forwarder::start(([127, 0, 0, 1], pg.c.port).into());
    let mut soak = Soak {
        db,
        fwd,
        pg,
        bucket: s3().new_bucket("soak"),
        seed,
        history: Vec::new(),
    };
    let mut tally = Tally::default();

    for (i, &day) in days.iter().enumerate() {
        // The first run's plan is drawn before the upload: it may hold a file back.
        let mut first = Some(plan(seed, files.path(), i, day, 1));
        let late = first
            .as_ref()
            .filter(|p| p.fault == Some(Fault::LateFile))
            .map(|p| p.late);
        for (k, t) in TYPES.iter().enumerate() {
            if late != Some(k) {
                soak.upload(files.path(), day, t);
            }
        }
        let (mut attempt, mut not_found) = (1, 0);
        loop {
            let p = first
                .take()
                .unwrap_or_else(|| plan(seed, files.path(), i, day, attempt));
            let out = soak.run(day, &p);
            tally.runs += 1;
            let code = out.code();
            let landed = match p.fault {
                None => false,
                Some(Fault::LateFile) => code == 66,
                Some(_) => out.injected && (code != 0 || p.fault == Some(Fault::S3Error)),
            };
            let what = match (p.fault, &p.rule) {
                (Some(_), Some((rule, _))) => format!(" [{rule}]"),
                (Some(Fault::LateFile), _) => format!(" [{} late]", TYPES[p.late]),
                (Some(f), _) if f.mid_load() => {
                    format!(" [{} at mark {} +{} ms]", f.name(), p.event, p.delay_ms)
                }
                _ => String::new(),
            };
            let line = format!(
                "{day} run {attempt}: {}{what} -> exit {code} in {:.2} s",
                p.fault.map_or("no fault", |f| f.name()),
                out.took.as_secs_f64()
            );
            println!("soak: {line}");
            soak.history.push(line);
            if std::env::var_os("CUSIP_SOAK_VERBOSE").is_some() {
                println!("{}", out.stderr);
            }
            match p.fault {
                Some(f) if landed => *tally.faults.entry(f.name()).or_default() += 1,
                Some(_) => tally.missed += 1,
                None => {}
            }
            if code != 0 {
                soak.wait_backends_gone();
            }
            let sent = |f: Fault| p.fault == Some(f) && out.injected;
            let retry = match code {
                0 => false,
                75 => true,
                66 if not_found < MAX_NOT_FOUND => {
                    not_found += 1;
                    true
                }
                143 if sent(Fault::Term) => true,
                -9 if sent(Fault::Kill) => true,
                _ => panic!(
                    "{}{day}: the loader exited {code}, which a scheduler does not retry\n\
                     --- stdout\n{}\n--- stderr\n{}",
                    soak.context(),
                    out.stdout,
                    out.stderr
                ),
            };
            if !retry {
                break;
            }
            assert!(
                attempt < MAX_ATTEMPTS,
                "{}{day}: still failing after {MAX_ATTEMPTS} runs; the last:\n{}",
                soak.context(),
                out.stderr
            );
            // The late file arrives while the scheduler waits.
            if let Some(k) = late.filter(|_| attempt == 1) {
                soak.upload(files.path(), day, TYPES[k]);
            }
            std::thread::sleep(PAUSE);
            attempt += 1;
            tally.retries += 1;
        }
        // The day is done: each of its files has a successful load, dated that day.
        let loaded = soak.db.sql(&format!(
            "SELECT string_agg(DISTINCT file_type, ',' ORDER BY file_type) FROM load_journal \
             WHERE status = 'loaded' AND business_date = '{day}'"
        ));
        assert_eq!(
            loaded.trim(),
            "issue,issue_attr,issuer",
            "{}{day} exited 0 without a loaded journal row for each type",
            soak.context()
        );
    }
    let driven = started.elapsed();

    // The tables equal the oracle: every day's files in order, the last record of a key
    // winning (within a file and across days).
    for (k, table) in MASTER.iter().enumerate() {
        let ordered: Vec<PathBuf> = days
            .iter()
            .map(|d| files.path().join(file_name(*d, TYPES[k])))
            .collect();
        assert_table_matches(&soak.db, table, &ordered);
    }
    // Exactly one successful load per file...
    let per_file = soak.db.sql(
        "SELECT file_name, count(*) FROM load_journal WHERE status = 'loaded' GROUP BY 1 \
         ORDER BY 1",
    );
    let names: Vec<&str> = per_file.lines().collect();
    assert_eq!(
        names.len(),
        3 * days.len(),
        "{}one loaded row per file:\n{per_file}",
        soak.context()
    );
    assert!(
        names.iter().all(|l| l.ends_with("|1")),
        "{}a file loaded more than once:\n{per_file}",
        soak.context()
    );
    // ... and per business day and table: no day missing.
    let per_day = soak.db.sql(
        "SELECT business_date, file_type, count(*) FROM load_journal WHERE status = 'loaded' \
         GROUP BY 1, 2 ORDER BY 1, 2",
    );
    let expected: String = days
        .iter()
        .flat_map(|d| ["issue", "issue_attr", "issuer"].map(|t| format!("{d}|{t}|1\n")))
        .collect();
    assert_eq!(per_day, expected, "{}", soak.context());
    // And `--status`, read as an operator would, shows no gap in the last ten business days
    // and each table's newest load as the last day's file.
    let last = *days.last().expect("at least one day");
    let out = soak
        .db
        .loader()
        .args(["--status", "--output", "json", "--date", &last.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = summary(&String::from_utf8_lossy(&out.stdout));
    for t in status["tables"].as_array().unwrap() {
        assert_eq!(
            t["days_without_load"].as_array().map(Vec::len),
            Some(0),
            "{}--status shows gaps: {status}",
            soak.context()
        );
        assert_eq!(
            t["last_loaded"]["business_date"],
            last.to_string(),
            "{status}"
        );
    }
    let journal = soak
        .db
        .sql("SELECT status || ' ' || count(*) FROM load_journal GROUP BY status ORDER BY status");

    let landed: u32 = tally.faults.values().sum();
    let kinds: Vec<String> = tally
        .faults
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "soak: {} days, runs {}, faults {landed} ({}; {} more drawn found the run finished), \
         retries {}, rows lost: 0; journal: {}; seed {seed}; generated in {:.1} s, driven in \
         {:.1} s, checked in {:.1} s",
        days.len(),
        tally.runs,
        kinds.join(", "),
        tally.missed,
        tally.retries,
        journal.trim().replace('\n', ", "),
        generated.as_secs_f64(),
        (driven - generated).as_secs_f64(),
        (started.elapsed() - driven).as_secs_f64(),
    );
    score(
        &format!("soak, {} business days under a scheduler", days.len()),
        tally.runs,
        landed,
        landed,
        0,
    );
}
