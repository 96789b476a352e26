//! Input edge cases (issue 7): truncated, empty, trailer-only, oversized, unreadable and
//! changing files, and hostile text. Each bad input must give the documented exit code and a
//! message naming the file (and the line and column where there is one), change nothing in
//! the database, and leave a plain rerun with a good file able to finish the job.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A valid issuer record for issuer number `n` (below 990000, the reserved range).
fn issuer_record(n: u32) -> String {
    assert!(n < 990_000);
    format!(
        "{n:06}|{}|ISSUER NAME SEGMENT ONE {n:06}|SEGMENT TWO {n:06}|THIRD|||||SORT KEY {n:06}|C|A||A|NY|2024-01-15",
        n % 10
    )
}

/// `n` issuer records and the trailer, LF line endings.
fn issuer_file(n: u32) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&issuer_record(i));
        s.push('\n');
    }
    s.push_str(&format!("999999|TRAILER|{n}\n"));
    s.into_bytes()
}

/// Runs the loader with `args`, asserting the exit code, that stderr names `shown` and holds
/// every one of `needles`, and that no table changed. Returns stderr.
fn assert_refused<I, S>(db: &Db, args: I, code: i32, shown: &str, needles: &[&str]) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let before = db.snapshot();
    let (got, out, err) = run(db.loader().args(args));
    assert_eq!(got, code, "exit code; stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains(shown), "stderr should name {shown:?}:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr should contain {n:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "the loader panicked:\n{err}");
    assert_eq!(db.snapshot(), before, "the failed run changed the tables");
    err
}

/// Loads `file` (plus `extra` flags) and asserts success.
fn assert_loads(db: &Db, file: &Path, extra: &[&str]) {
    let (code, out, err) = run(db.loader().arg(file).args(extra));
    assert_eq!(code, 0, "the rerun should load:\n{out}\n{err}");
}

#[test]
fn a_file_truncated_mid_record_is_refused_naming_the_line() {
    let db = Db::new("trunc");
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(testdata("CED01-15R.PIP")).unwrap();
    // Cut inside issuer_name_1 of line 101: the last record has 3 of its 16 fields.
    let line_start = full
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(99)
        .map(|(i, _)| i + 1)
        .unwrap();
    let pipes: Vec<usize> = full[line_start..]
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'|')
        .map(|(i, _)| line_start + i)
        .take(3)
        .collect();
    let cut = pipes[1] + 4;
    assert!(cut < pipes[2], "issuer_name_1 of line 101 is not empty");
    let f = write(dir.path(), "CED01-15R.PIP", &full[..cut]);
    assert_refused(
        &db,
        [&f],
        65,
        "CED01-15R.PIP line 101",
        &[
            "has 3 fields; an issuer record has 16",
            "without the 999999 trailer",
        ],
    );
    // Even when a missing trailer is allowed, the cut record is not loaded half.
    assert_refused(
        &db,
        [f.as_os_str(), OsStr::new("--allow-missing-trailer")],
        65,
        "CED01-15R.PIP line 101",
        &["has 3 fields; an issuer record has 16"],
    );
    assert_eq!(db.count("issuer"), 0);
    // The complete delivery then loads.
    std::fs::write(&f, &full).unwrap();
    assert_loads(&db, &f, &[]);
    assert_table_matches(&db, "issuer", std::slice::from_ref(&f));
    score(
        "input: a file truncated mid record is refused naming the line",
        1,
        1,
        1,
        0,
    );
}

#[test]
fn a_file_truncated_inside_a_multibyte_character_is_refused_and_never_replaced() {
    let db = Db::new("truncutf8");
    let dir = tempfile::tempdir().unwrap();
    let good = "00001A|1|SOCIÉTÉ GÉNÉRALE|||||||SOCIETE|C|A||A|NY|2024-01-15\n";
    let last = "00002B|2|CAFÉ ZÜRICH|||||||CAFE|C|A||A|NY|2024-01-15\n";
    let full = format!("{good}{last}999999|TRAILER|2\n");
    // Cut after the first byte of "É" (0xC3 0x89) in issuer_name_1 of line 2.
    let at = full.find("CAFÉ").unwrap() + "CAF".len() + 1;
    assert_eq!(full.as_bytes()[at - 1], 0xC3);
    let f = write(dir.path(), "CED02-03R.PIP", &full.as_bytes()[..at]);
    let err = assert_refused(
        &db,
        [&f],
        65,
        "CED02-03R.PIP line 2",
        &["has 3 fields; an issuer record has 16", "truncated"],
    );
    assert!(!err.contains('\u{FFFD}'), "a byte was replaced:\n{err}");

    // A character cut in the middle of a field, the file going on (bytes lost in transit):
    // the broken byte is reported by line and column, shown as a byte, never replaced.
    let mut bytes = format!("{good}00003C|3|CAF").into_bytes();
    bytes.push(0xC3);
    bytes.extend_from_slice(b"|||||||X|C|A||A|NY|2024-01-15\n999999\n");
    let h = write(dir.path(), "CED02-05R.PIP", &bytes);
    let err = assert_refused(
        &db,
        [&h],
        65,
        "CED02-05R.PIP line 2, column issuer_name_1",
        &["\"CAF\\xC3\"", "byte 0xC3 at offset 3", "not valid UTF-8"],
    );
    assert!(!err.contains('\u{FFFD}'), "a byte was replaced:\n{err}");

    std::fs::write(&f, &full).unwrap();
    assert_loads(&db, &f, &[]);
    assert_eq!(
        db.sql("SELECT issuer_name_1 FROM issuer ORDER BY issuer_num"),
        "SOCIÉTÉ GÉNÉRALE\nCAFÉ ZÜRICH\n"
    );
    score(
        "input: a file truncated inside a multibyte character is refused and never replaced",
        1,
        1,
        1,
        0,
    );
}

#[test]
fn a_complete_file_without_its_trailer_needs_allow_missing_trailer() {
    let db = Db::new("notrailer");
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(testdata("CED01-15R.PIP")).unwrap();
    let trailer = full.windows(7).position(|w| w == b"\n999999").unwrap() + 1;
    let lines = full[..trailer].iter().filter(|&&b| b == b'\n').count();
    let f = write(dir.path(), "CED01-15R.PIP", &full[..trailer]);
    assert_refused(
        &db,
        [&f],
        65,
        "CED01-15R.PIP",
        &[
            &format!("ends at line {lines} without the 999999 trailer"),
            "truncated",
            "--allow-missing-trailer",
        ],
    );
    // The documented escape hatch loads exactly the records there are.
    assert_loads(&db, &f, &["--allow-missing-trailer"]);
    assert_table_matches(&db, "issuer", std::slice::from_ref(&f));
    assert_eq!(db.count("issuer"), 300);
    score(
        "input: a complete file without its trailer needs allow missing trailer",
        1,
        1,
        1,
        0,
    );
}

#[test]
fn an_empty_file_is_refused_as_truncated() {
    let db = Db::new("empty");
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "CED02-06R.PIP", b"");
    assert_refused(
        &db,
        [&f],
        65,
        "CED02-06R.PIP",
        &["ends at line 0 without the 999999 trailer", "truncated"],
    );
    // Blank lines and a final 0x1A are no more than nothing.
    let g = write(dir.path(), "CED02-07R.PIP", b"\r\n\n\x1a");
    assert_refused(
        &db,
        [&g],
        65,
        "CED02-07R.PIP",
        &["without the 999999 trailer"],
    );
    let j = db.journal();
    assert_eq!(j.len(), 2, "{j:?}");
    assert!(j.iter().all(|r| r[1] == "failed"), "{j:?}");
    // The real delivery then loads.
    std::fs::write(&f, std::fs::read(testdata("CED01-15R.PIP")).unwrap()).unwrap();
    assert_loads(&db, &f, &[]);
    assert_eq!(db.count("issuer"), 300);
    score("input: an empty file is refused as truncated", 1, 1, 1, 0);
}

#[test]
fn a_file_of_only_the_trailer_is_a_valid_empty_load() {
    // docs/design.md: the trailer marks the end of a complete file and only its absence means
    // truncation, so a file of only the trailer is complete and empty. It loads nothing and
    // succeeds (its trailer's record count is not checked: see the report).
    let db = Db::new("onlytrailer");
    assert_loads(&db, &testdata("CED01-15R.PIP"), &[]);
    let dir = tempfile::tempdir().unwrap();
    let before = db.snapshot();
    for (name, body) in [
        ("CED02-08R.PIP", &b"999999|TRAILER|0\n"[..]),
        ("CED02-09R.PIP", b"\r\n999999|TRAILER|0\r\n\x1a"),
        ("CED02-10R.PIP", b"999999"),
    ] {
        let f = write(dir.path(), name, body);
        let (code, out, err) = run(db.loader().arg(&f).args(["--output", "json"]));
        assert_eq!(code, 0, "{name}: {err}");
        let v = summary(&out);
        assert_eq!(v["files"][0]["status"], "loaded", "{name}: {v}");
        assert_eq!(v["files"][0]["records"], 0, "{name}: {v}");
        assert_eq!(db.snapshot(), before, "{name} changed the tables");
    }
    let j = db.journal();
    assert_eq!(j.len(), 4, "{j:?}");
    assert!(
        j[1..].iter().all(|r| r[1] == "loaded" && r[2] == "0"),
        "{j:?}"
    );
    // A record after the trailer is refused by line.
    let f = write(
        dir.path(),
        "CED02-11R.PIP",
        format!("999999|TRAILER|0\n{}\n", issuer_record(7)).as_bytes(),
    );
    assert_refused(
        &db,
        [&f],
        65,
        "CED02-11R.PIP line 2",
        &["follows the 999999 trailer"],
    );
    score(
        "input: a file of only the trailer is a valid empty load",
        1,
        1,
        1,
        0,
    );
}

/// (exit code, stdout, stderr, peak RSS in KiB) of a command, the RSS as wait4(2) reports it
/// (the number `/usr/bin/time -v` prints as "Maximum resident set size").
// wait4 below reaps the child (std's wait cannot report its rusage).
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command) -> (i32, String, String, u64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (
        code,
        out.join().unwrap(),
        err.join().unwrap(),
        usage.ru_maxrss as u64,
    )
}

/// A 50 MB file of one line: a plausible start, then one field with no `|` and no newline.
fn write_long_line(dir: &Path, name: &str) -> PathBuf {
    let f = dir.join(name);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&f).unwrap());
    w.write_all(b"00001A|1|").unwrap();
    let block = [b'A'; 1 << 16];
    for _ in 0..(50 << 20) / block.len() {
        w.write_all(&block).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    assert!(std::fs::metadata(&f).unwrap().len() > 50 << 20);
    f
}

// A refusal that stops reading early (a line over 1 MiB, 20 problems, a record after the
// trailer) once hashed only the part it had read, which differs from the whole file's
// sha256, so the load reported "the file changed" (75: retry) instead of the data problem
// (65: call a person). The loader now hashes the rest of the file before comparing; the
// large-file tests below pin that.

#[test]
fn a_50_mb_line_without_a_newline_is_refused_in_bounded_memory() {
    let db = Db::new("longline");
    let dir = tempfile::tempdir().unwrap();
    let f = write_long_line(dir.path(), "CED02-12R.PIP");
    let limit_kib = 128 * 1024;
    for validate in [true, false] {
        let before = db.snapshot();
        let mut cmd = db.loader();
        cmd.arg(&f);
        if validate {
            cmd.arg("--validate-only");
        }
        let (code, out, err, peak) = run_measured(&mut cmd);
        println!("validate={validate}: exit {code}, peak RSS {peak} KiB");
        assert!(
            peak < limit_kib,
            "validate={validate}: peak RSS {peak} KiB, over 128 MB"
        );
        assert!(
            [65, 75].contains(&code),
            "validate={validate}: refused, not crashed:\n{out}\n{err}"
        );
        assert!(
            err.contains("CED02-12R.PIP") && !err.contains("panicked"),
            "{err}"
        );
        if validate {
            assert_eq!(code, 65, "a line over 1 MiB is bad data: {err}");
            assert!(
                err.contains("CED02-12R.PIP line 1: line 1 is longer than 1048576 bytes"),
                "{err}"
            );
        }
        assert_eq!(db.snapshot(), before);
    }
    // A good file at the same path then loads.
    std::fs::write(&f, issuer_file(10)).unwrap();
    assert_loads(&db, &f, &[]);
    assert_eq!(db.count("issuer"), 10);
    score(
        "input: a 50 mb line without a newline is refused in bounded memory",
        1,
        1,
        1,
        0,
    );
}

#[test]
fn a_50_mb_line_is_bad_data_when_loaded_too() {
    let db = Db::new("longline65");
    let dir = tempfile::tempdir().unwrap();
    let f = write_long_line(dir.path(), "CED02-12R.PIP");
    assert_refused(
        &db,
        [&f],
        65,
        "CED02-12R.PIP line 1",
        &["line 1 is longer than 1048576 bytes"],
    );
    score(
        "input: a 50 mb line is bad data when loaded too",
        1,
        1,
        1,
        0,
    );
}

#[test]
fn a_directory_is_not_an_input_file() {
    let db = Db::new("dirinput");
    let dir = tempfile::tempdir().unwrap();
    // Named like a PIP file, so only its being a directory is wrong.
    let d = dir.path().join("CED02-13R.PIP");
    std::fs::create_dir(&d).unwrap();
    assert_refused(&db, [&d], 66, "CED02-13R.PIP", &["is a directory"]);
    let (code, _, err) = run(db.loader().arg(&d).arg("--validate-only"));
    assert_eq!(code, 66, "{err}");
    assert_eq!(db.journal().len(), 0, "nothing was attempted");
    std::fs::remove_dir(&d).unwrap();
    std::fs::write(&d, issuer_file(3)).unwrap();
    assert_loads(&db, &d, &[]);
    score("input: a directory is not an input file", 1, 1, 1, 0);
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// The loader run as the unprivileged `postgres` user (root reads any file whatever its
/// mode), with this database's environment; None if that user cannot be used.
fn loader_as_postgres(db: &Db) -> Option<Command> {
    let probe = Command::new("runuser")
        .args(["-u", "postgres", "--", "true"])
        .status()
        .ok()?;
    if !probe.success() {
        return None;
    }
    let template = db.loader();
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"])
        .arg(template.get_program())
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    Some(c)
}

#[test]
fn a_file_that_cannot_be_read_is_no_input() {
    let db = Db::new("unreadable");
    let dir = tempfile::tempdir().unwrap();
    // The directory is open to everyone; only the file is unreadable.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = write(dir.path(), "CED02-14R.PIP", &issuer_file(5));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut loader = if is_root() {
        match loader_as_postgres(&db) {
            Some(c) => c,
            None => {
                println!(
                    "SKIPPED a_file_that_cannot_be_read_is_no_input: running as root, which \
                     reads any file, and `runuser -u postgres` is unavailable (run `make setup`)"
                );
                return;
            }
        }
    } else {
        db.loader()
    };
    // The unprivileged user really cannot read it (the premise of the test).
    if is_root() {
        let cat = Command::new("runuser")
            .args(["-u", "postgres", "--", "cat"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(!cat.status.success(), "postgres can read a mode-000 file?");
    }
    let before = db.snapshot();
    let (code, out, err) = run(loader.arg(&f));
    assert_eq!(code, 66, "{out}\n{err}");
    assert!(
        err.contains("CED02-14R.PIP") && err.to_lowercase().contains("permission denied"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(db.snapshot(), before);
    // Once the delivery makes it readable, the same command loads it.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run(&mut loader);
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.count("issuer"), 5);
    score("input: a file that cannot be read is no input", 1, 1, 1, 0);
}

/// Issuer records in the changing-file tests: ~21 MB, so COPY runs long enough to be caught.
const BIG: u32 = 200_000;

fn big_issuer_file() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| issuer_file(BIG))
}

/// The read offset of the loader's open descriptor on `path`, if it has one open.
fn read_offset(pid: u32, path: &Path) -> Option<u64> {
    let want = std::fs::canonicalize(path).unwrap();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if std::fs::read_link(e.path()).ok().as_deref() == Some(want.as_path()) {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", e.file_name().to_str()?))
                    .ok()?;
            return info
                .lines()
                .find_map(|l| l.strip_prefix("pos:"))
                .and_then(|p| p.trim().parse().ok());
        }
    }
    None
}

/// Starts the loader on `file`, waits until it streams the file into COPY (so the first
/// sha256 has been taken), and freezes it with SIGSTOP. Returns the child and how far it had
/// read (None: not opened yet for streaming), or None if the load got past COPY first.
fn start_and_freeze_in_copy(db: &Db, file: &Path) -> Option<(Child, Option<u64>)> {
    let mut child = db
        .loader()
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = db.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'cusip-loader' AND state = 'active' \
             AND query LIKE 'COPY %'",
        );
        if n.trim() == "1" {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the loader ended before COPY was seen"
        );
        assert!(Instant::now() < deadline, "COPY was never seen running");
        std::thread::sleep(Duration::from_millis(2));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGSTOP);
    }
    let pos = read_offset(child.id(), file);
    let size = std::fs::metadata(file).unwrap().len();
    if pos.is_some_and(|p| p >= size) {
        // Too late to be sure the reader will see a change: let this attempt finish.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGCONT);
        }
        let _ = child.wait_with_output();
        return None;
    }
    Some((child, pos))
}

fn resume_and_finish(child: Child) -> (i32, String, String) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGCONT);
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `change` on the file while the loader is frozen mid-stream, in a fresh database
/// per attempt (an attempt that reached the end of the file first is not a trial).
fn load_while_changing(
    tag: &str,
    initial: &[u8],
    change: impl Fn(&Path),
) -> (Db, tempfile::TempDir, PathBuf) {
    for attempt in 0..3 {
        let db = Db::new(tag);
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "CED02-15R.PIP", initial);
        let before = db.snapshot();
        let Some((child, pos)) = start_and_freeze_in_copy(&db, &f) else {
            println!("attempt {attempt}: the loader had read the whole file already; again");
            continue;
        };
        println!(
            "attempt {attempt}: frozen at byte {pos:?} of {}",
            std::fs::metadata(&f).unwrap().len()
        );
        change(&f);
        let (code, out, err) = resume_and_finish(child);
        assert_eq!(
            code, 75,
            "a file changed mid-load is refused as transient (frozen at {pos:?}):\n{out}\n{err}"
        );
        assert!(
            err.contains("CED02-15R.PIP")
                && err.contains("the file changed while it was being loaded"),
            "{err}"
        );
        assert_eq!(db.snapshot(), before, "nothing may be loaded");
        let j = db.journal();
        assert_eq!(j.len(), 1, "{j:?}");
        assert_eq!(j[0][1], "failed", "{j:?}");
        return (db, dir, f);
    }
    panic!("in 3 attempts the loader never was caught before the end of the file");
}

#[test]
fn a_file_that_grows_while_it_is_read_is_refused_and_the_rerun_loads() {
    let full = big_issuer_file();
    // The delivery is still being written: the first 60% of the records, no trailer yet.
    let cut = full[..full.len() * 6 / 10]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let (db, _dir, f) = load_while_changing("grow", &full[..cut], |f| {
        let mut w = std::fs::OpenOptions::new().append(true).open(f).unwrap();
        w.write_all(&full[cut..]).unwrap();
    });
    assert_eq!(std::fs::read(&f).unwrap(), full);
    // The delivery is complete now: the same command loads all of it.
    assert_loads(&db, &f, &[]);
    assert_eq!(db.count("issuer"), BIG as u64);
    score(
        "input: a file that grows while it is read is refused and the rerun loads",
        1,
        1,
        1,
        0,
    );
}

#[test]
fn a_file_that_shrinks_while_it_is_read_is_refused_and_the_rerun_loads() {
    let full = big_issuer_file();
    let (db, _dir, f) = load_while_changing("shrink", full, |f| {
        // Cut mid-record, as a truncating re-delivery would.
        let len = std::fs::metadata(f).unwrap().len();
        let w = std::fs::OpenOptions::new().write(true).open(f).unwrap();
        w.set_len(len / 2 + 7).unwrap();
    });
    // The truncated file on its own is refused as bad data.
    assert_refused(&db, [&f], 65, "CED02-15R.PIP", &["truncated"]);
    std::fs::write(&f, full).unwrap();
    assert_loads(&db, &f, &[]);
    assert_eq!(db.count("issuer"), BIG as u64);
    score(
        "input: a file that shrinks while it is read is refused and the rerun loads",
        1,
        1,
        1,
        0,
    );
}

/// Rewritten in place where both reads had passed already, at the same size: the digests
/// agree, but the file is not the one that was opened (its times moved), so it is refused too.
#[test]
fn a_file_rewritten_in_place_while_it_is_read_is_refused_and_the_rerun_loads() {
    use std::io::{Seek, SeekFrom};
    let full = big_issuer_file();
    let at = full.windows(3).position(|w| w == b"ONE").unwrap() as u64;
    let (db, _dir, f) = load_while_changing("rewrite", full, |f| {
        let mut w = std::fs::OpenOptions::new().write(true).open(f).unwrap();
        w.seek(SeekFrom::Start(at)).unwrap();
        w.write_all(b"UNO").unwrap();
    });
    assert_eq!(std::fs::metadata(&f).unwrap().len(), full.len() as u64);
    // The rewritten delivery loads as it now is.
    assert_loads(&db, &f, &[]);
    assert_eq!(db.count("issuer"), BIG as u64);
    score(
        "input: a file rewritten in place while it is read is refused and the rerun loads",
        1,
        1,
        1,
        0,
    );
}

/// Hex of a column's bytes per row, in key order (NULL as `NULL`): byte-exact, whatever the
/// text holds.
fn hex_column(db: &Db, table: &str, col: &str, order: &str) -> Vec<String> {
    db.sql(&format!(
        "SELECT coalesce(encode(convert_to({col}, 'UTF8'), 'hex'), 'NULL') FROM {table} ORDER BY {order} COLLATE \"C\""
    ))
    .lines()
    .map(str::to_string)
    .collect()
}

fn hex(s: &str) -> String {
    if s.is_empty() {
        return "NULL".into();
    }
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn hostile_text_is_only_ever_data() {
    let db = Db::new("hostile");
    for f in day("01-15") {
        assert_loads(&db, &f, &[]);
    }
    let tables = "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'";
    let tables_before = db.sql(tables);
    let issues_before = db.count("issue");
    let attrs_before = db.count("issue_attribute");

    // Every text field of every record is hostile, each within its column's width.
    let names: [(&str, [&str; 8]); 4] = [
        (
            "';--x'",
            [
                "'); DROP TABLE issuer; --",
                "Robert'); DELETE FROM issue;--",
                "\"quoted\" 'single' `tick`",
                "back\\slash \\N \\. \\\\ \\x00",
                "%s %d %n %x %%s {0} {}",
                "$1 $$ $tag$ :name ?",
                "1; TRUNCATE issuer CASCADE",
                "E'\\047' U&'\\0041' ;COMMIT;",
            ],
        ),
        (
            "\\N",
            [
                "\\N",
                "\\.",
                "NULL",
                "null",
                " ",
                "'",
                "\"",
                "*/ SELECT pg_sleep(10); /*",
            ],
        ),
        (
            "%s%n",
            [
                "${jndi:ldap://x/a}",
                "<script>alert(1)</script>",
                "'+(SELECT version())+'",
                "\\\\server\\share",
                "a\tb",
                "$$;DROP SCHEMA public CASCADE;",
                "--",
                "/*",
            ],
        ),
        (
            "\"x\"",
            [
                "O'Brien & Sons \"Ltd\"",
                "é'; DROP TABLE issue; --ü",
                "\\';",
                "\\\"",
                "'' OR ''=''",
                "1' OR '1'='1",
                "; ; ;",
                ")",
            ],
        ),
    ];
    let mut body = String::new();
    for (num, t) in &names {
        for s in t.iter() {
            assert!(s.chars().count() <= 30, "{s:?} is too wide for the test");
        }
        body.push_str(&format!(
            "{num}|'|{}|{}|{}|{}|{}|{}|{}|{}|M|A||A|\\N|2024-02-16\n",
            t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]
        ));
    }
    body.push_str("999999|TRAILER|4\n");
    let dir = tempfile::tempdir().unwrap();
    // The file name is hostile too (it is journalled), so the type comes from --type.
    let fname = "x'); DROP TABLE load_journal; --.PIP";
    let f = write(dir.path(), fname, body.as_bytes());
    let (code, out, err) = run(db.loader().arg(&f).args(["--type", "issuer"]));
    assert_eq!(code, 0, "{out}\n{err}");

    // Issues of the hostile issuers, with hostile descriptions and keys.
    let issues = [
        ("';--x'", "'\"", "'); DROP TABLE issue_attribute"),
        ("\\N", "\\N", "\\N"),
        ("%s%n", "%s", "' UNION SELECT * FROM issuer--"),
    ];
    let mut ebody = String::new();
    for (issuer, issue, desc) in &issues {
        assert!(
            desc.chars().count() <= 30,
            "{desc:?} is too wide for the test"
        );
        ebody.push_str(&format!(
            "{issuer}|{issue}|;|{desc}|{desc}|||||A|2024-01-01|2030-01-01|1|1.5|N|A|2024-02-16\n"
        ));
    }
    ebody.push_str("999999|TRAILER|3\n");
    let e = write(dir.path(), "CED02-16E.PIP", ebody.as_bytes());
    let (code, out, err) = run(db.loader().arg(&e));
    assert_eq!(code, 0, "{out}\n{err}");

    assert_eq!(db.sql(tables), tables_before, "a table went missing");
    assert_eq!(db.count("issue"), issues_before + issues.len() as u64);
    assert_eq!(db.count("issue_attribute"), attrs_before);
    assert_eq!(db.count("issuer"), 300 + names.len() as u64);

    // Byte-exact, column by column, for the hostile rows (C order of the keys).
    let where_hostile = format!(
        "issuer_num IN ({})",
        names
            .iter()
            .map(|(n, _)| format!("'{}'", n.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut sorted: Vec<&(&str, [&str; 8])> = names.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let cols = [
        "issuer_num",
        "issuer_check",
        "issuer_name_1",
        "issuer_name_2",
        "issuer_name_3",
        "issuer_adl_1",
        "issuer_adl_2",
        "issuer_adl_3",
        "issuer_adl_4",
        "issuer_sort_key",
        "issuer_state_code",
    ];
    let view = format!("(SELECT * FROM issuer WHERE {where_hostile}) h");
    for (i, col) in cols.iter().enumerate() {
        let want: Vec<String> = sorted
            .iter()
            .map(|(num, t)| match i {
                0 => hex(num),
                1 => hex("'"),
                10 => hex("\\N"),
                k => hex(t[k - 2]),
            })
            .collect();
        assert_eq!(
            hex_column(&db, &view, col, "issuer_num"),
            want,
            "issuer.{col}"
        );
    }
    let mut isorted = issues.to_vec();
    isorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let iview = format!("(SELECT * FROM issue WHERE {where_hostile}) h");
    for (col, pick) in [
        ("issuer_num", 0usize),
        ("issue_num", 1),
        ("issue_desc_1", 2),
        ("issue_desc_2", 2),
    ] {
        let want: Vec<String> = isorted.iter().map(|r| hex([r.0, r.1, r.2][pick])).collect();
        assert_eq!(
            hex_column(&db, &iview, col, "issuer_num"),
            want,
            "issue.{col}"
        );
    }
    // Independently of the above: every column of every row equals the files.
    assert_table_matches(&db, "issuer", &[testdata("CED01-15R.PIP"), f.clone()]);
    // The journal holds the hostile file name byte-exact.
    let j = db.sql("SELECT encode(convert_to(file_name, 'UTF8'), 'hex') FROM load_journal WHERE file_type = 'issuer' ORDER BY id DESC LIMIT 1");
    assert_eq!(j.trim(), hex(fname));
    score("input: hostile text is only ever data", 1, 1, 1, 0);
}

/// An issuer file of `n` records (~3 MB for 30 000), `bad` deciding which get an impossible
/// date, with the trailer after record `trailer_after` (or at the end).
fn large_file_with(n: u32, bad: impl Fn(u32) -> bool, trailer_after: Option<u32>) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        let mut r = issuer_record(i);
        if bad(i) {
            r = r.replace("2024-01-15", "2024-02-30");
        }
        s.push_str(&r);
        s.push('\n');
        if trailer_after == Some(i) {
            s.push_str("999999|TRAILER\n");
        }
    }
    if trailer_after.is_none() {
        s.push_str(&format!("999999|TRAILER|{n}\n"));
    }
    s.into_bytes()
}

#[test]
fn a_bad_value_at_the_end_of_a_large_file_is_bad_data() {
    let db = Db::new("badlarge");
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "CED03-03R.PIP",
        &large_file_with(30_000, |i| i == 29_999, None),
    );
    assert_refused(
        &db,
        [&f],
        65,
        "CED03-03R.PIP line 30000, column issuer_update_date",
        &["\"2024-02-30\" is not a valid calendar date"],
    );
    score(
        "input: a bad value at the end of a large file is bad data",
        1,
        1,
        1,
        0,
    );
}

#[test]
fn more_than_twenty_bad_records_in_a_large_file_are_bad_data_not_a_changed_file() {
    let db = Db::new("manybad");
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "CED03-01R.PIP",
        &large_file_with(30_000, |i| i < 25, None),
    );
    // Validation alone says what a load must say.
    let (code, _, err) = run(db.loader().arg(&f).arg("--validate-only"));
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("there are more"), "{err}");
    assert_refused(
        &db,
        [&f],
        65,
        "CED03-01R.PIP line 1, column issuer_update_date",
        &["there are more"],
    );
    score(
        "input: more than twenty bad records in a large file are bad data not a changed file",
        1,
        1,
        1,
        0,
    );
}

#[test]
fn a_record_after_the_trailer_of_a_large_file_is_bad_data_not_a_changed_file() {
    let db = Db::new("aftertrailer");
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "CED03-02R.PIP",
        &large_file_with(30_000, |_| false, Some(10)),
    );
    assert_refused(
        &db,
        [&f],
        65,
        "CED03-02R.PIP line 13",
        &["follows the 999999 trailer"],
    );
    score(
        "input: a record after the trailer of a large file is bad data not a changed file",
        1,
        1,
        1,
        0,
    );
}
