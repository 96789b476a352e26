//! `make bench`: the loader against the textbook reference, in one run, as ratios.
//!
//! Generates `BENCH_N` issues (default 1 000 000) with the project's generator, starts a
//! throwaway PostgreSQL cluster, and for each scenario runs the loader on one database and
//! the reference (psql: text `\copy` into a temp table, then one `INSERT … ON CONFLICT … DO
//! UPDATE SET every column`, one transaction) on an identical second one. It measures wall
//! time, rows/s, MB/s, the loader's peak RSS, WAL bytes and tuples written, prints one
//! Markdown table and writes the same as JSON under target/bench/. It never fails on speed.
//!
//! Two variants measure what one thing costs the loader, each against the loader itself on
//! the same files: the fresh date without the search vectors (`nosearch`), and the fresh date
//! then the next day with keys in a language collation, as in a database the old service built
//! (`langkeys`: compared in the database instead of in the loader). Both sides of every
//! scenario have the search vectors of `schema.sql`.
//!
//! Then it times the COPY phase on its own, in interleaved rounds (at least 5, more for
//! short phases; `BENCH_COPY_ROUNDS=N` fixes N): the loader's read+parse+copy, psql's
//! `\copy` of the same rows already in binary COPY format, and the server's binary COPY of
//! them from a file, and compares the fastest of each; and `--validate-only` against `cat`,
//! fastest of five.
//!
//! Run: `make bench` (or `BENCH_N=10000000 make bench`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use cusip_loader::layout::FileType;
use cusip_loader::sql;

/// The variants that measure what one thing costs the loader.
const NO_SEARCH: &str = "fresh, no search vectors";
const LANG_FRESH: &str = "fresh, keys in a language collation";
const LANG_NEXT: &str = "next day, keys in a language collation";

const TABLES: [(&str, &str, &str); 3] = [
    ("R", "issuer", "issuer_num"),
    ("E", "issue", "issuer_num, issue_num"),
    ("A", "issue_attribute", "issuer_num, issue_num"),
];

/// COPY-phase rounds per file: at least this many...
const COPY_MIN_ROUNDS: usize = 5;
/// ...then more while the loader's rounds add up to less than this many seconds...
const COPY_BUDGET_S: f64 = 30.0;
/// ...up to this many.
const COPY_MAX_ROUNDS: usize = 25;

struct Pg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
}

impl Pg {
    fn cmd(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        match self.run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn psql(&self, db: &str) -> Command {
        let mut c = Command::new(self.bin.join("psql"));
        c.args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &self.port.to_string(), "-d", db]);
        c
    }

    fn sql(&self, db: &str, q: &str) -> String {
        let out = self.psql(db).args(["-c", q]).output().expect("psql");
        assert!(
            out.status.success(),
            "{q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = self
            .cmd("pg_ctl")
            .args(["-D", &data, "-m", "fast", "stop"])
            .stdout(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }
}

fn pg_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PG_BIN") {
        return p.into();
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.pop()
        .expect("PostgreSQL binaries not found: run `make setup` or set PG_BIN")
}

fn start_cluster(dir: &Path) -> Pg {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run_as = (unsafe { libc::geteuid() } == 0).then_some("postgres");
    let _ = std::fs::remove_dir_all(dir.join("data"));
    std::fs::create_dir_all(dir).unwrap();
    if let Some(u) = run_as {
        Command::new("chown")
            .args(["-R", u])
            .arg(dir)
            .status()
            .unwrap();
    }
    let pg = Pg {
        bin: pg_bin(),
        dir: dir.to_path_buf(),
        port,
        run_as,
    };
    let data = dir.join("data").display().to_string();
    let ok = pg
        .cmd("initdb")
        .args([
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "initdb failed");
    let opts = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -k {} -c shared_buffers=256MB -c max_wal_size=8GB \
         -c checkpoint_timeout=30min",
        dir.display()
    );
    let log = dir.join("server.log").display().to_string();
    let ok = pg
        .cmd("pg_ctl")
        .args(["-D", &data, "-l", &log, "-o", &opts, "-w", "start"])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "pg_ctl start failed; see {log}");
    pg
}

/// Scenario, table, the loader's phases (name, seconds).
type PhaseRow = (String, String, Vec<(String, f64)>);

/// One table's COPY phase, seconds of each round: the loader's read+parse+copy, psql's
/// `\copy` of the same rows already in binary COPY format (a client with nothing to parse:
/// the protocol's own cost), and the server's binary COPY of them from a file.
struct CopyRound {
    table: &'static str,
    rows: u64,
    loader: Vec<f64>,
    client: Vec<f64>,
    server: Vec<f64>,
}

fn fastest(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MAX, f64::min)
}

/// One measurement of one side of a scenario.
#[derive(Default, Clone)]
struct M {
    seconds: f64,
    rows: u64,
    bytes: u64,
    rss_mb: Option<f64>,
    wal: u64,
    written: u64,
}

/// Runs `cmd` to success, returning wall seconds and its stdout.
fn timed(cmd: &mut Command) -> (f64, String) {
    let t = Instant::now();
    let out = cmd.stderr(Stdio::inherit()).output().expect("spawn");
    let secs = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{cmd:?} failed: {}", out.status);
    (secs, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the loader's JSON summary says of its one file.
struct Summary {
    /// Peak RSS: the loader reads its own `VmHWM`; a parent's `wait4` would report the
    /// parent's size at fork.
    rss_mb: Option<f64>,
    /// Phases, name and seconds.
    phases: Vec<(String, f64)>,
    records: Option<u64>,
}

fn loader_summary(stdout: &str) -> Summary {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap_or_default();
    let phases = v["files"][0]["phases"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap_or("?").to_string(),
                        p["seconds"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Summary {
        rss_mb: v["peak_rss_mb"].as_f64(),
        phases,
        records: v["files"][0]["records"].as_u64(),
    }
}

fn lsn(pg: &Pg, db: &str) -> String {
    pg.sql(db, "SELECT pg_current_wal_lsn()")
}

fn wal_since(pg: &Pg, db: &str, start: &str) -> u64 {
    pg.sql(
        db,
        &format!("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{start}')::bigint"),
    )
    .parse()
    .unwrap_or(0)
}

/// Tuples written (inserted or rewritten) by transactions after `xid`.
fn written_since(pg: &Pg, db: &str, table: &str, xid: &str) -> u64 {
    pg.sql(
        db,
        &format!("SELECT count(*) FROM {table} WHERE xmin::text::bigint >= {xid}"),
    )
    .parse()
    .unwrap_or(0)
}

/// The reference's input: the file without its trailer and with zero dates emptied, made
/// outside the timing (PostgreSQL's text input refuses both).
fn reference_input(src: &Path, out: &Path) {
    let text = std::fs::read(src).unwrap();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line.starts_with(b"999999") || line == b"\x1a" {
            continue;
        }
        let fields: Vec<&[u8]> = line
            .split(|&b| b == b'|')
            .map(|f| {
                if f == b"0000-00-00" || f == b"00000000" {
                    &b""[..]
                } else {
                    f
                }
            })
            .collect();
        w.write_all(&fields.join(&b'|')).unwrap();
        w.write_all(b"\n").unwrap();
    }
}

fn reference_sql(table: &str, keys: &str, cols: &[&str], file: &Path) -> String {
    let set: Vec<String> = cols
        .iter()
        .filter(|c| !keys.contains(**c))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    // The file's columns only: the table's search_vector is computed by the server.
    let list = cols.join(", ");
    format!(
        "BEGIN;\nCREATE TEMP TABLE s ON COMMIT DROP AS SELECT {list} FROM {table} WITH NO DATA;\n\
         \\copy s FROM '{}' WITH (FORMAT csv, DELIMITER '|', QUOTE E'\\x01')\n\
         INSERT INTO {table} ({list}) SELECT {list} FROM s ON CONFLICT ({keys}) DO UPDATE SET {};\nCOMMIT;\n",
        file.display(),
        set.join(", ")
    )
}

fn main() {
    let n: u64 = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let data = root.join(format!("data-{n}"));
    let exe_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let loader = exe_dir.join("cusip-loader");
    let generator = exe_dir.join("examples/generate");
    assert!(
        loader.exists() && generator.exists(),
        "build first: cargo build --release --bins --examples"
    );

    if !data.join("CED04-02A.PIP").exists() {
        std::fs::create_dir_all(&data).unwrap();
        eprintln!("generating {n} issues under {}", data.display());
        let gen = |extra: &[&str]| {
            let ok = Command::new(&generator)
                .args(["--issues", &n.to_string(), "--seed", "42", "--out"])
                .arg(&data)
                .args(extra)
                .status()
                .unwrap()
                .success();
            assert!(ok, "generator failed");
        };
        gen(&["--date", "04-01"]);
        gen(&["--next-of", "04-01", "--date", "04-02"]);
        for d in ["04-01", "04-02"] {
            for (t, _, _) in TABLES {
                let f = data.join(format!("CED{d}{t}.PIP"));
                reference_input(&f, &data.join(format!("ref-{d}{t}.txt")));
            }
        }
    }
    let pg = start_cluster(&root.join("pg"));
    // loader: every scenario on the default (safe) path; initial: the fresh load again with
    // --initial-load; reference: the textbook psql upsert; nosearch: the default path without
    // the search vectors (what they cost); langkeys: keys in a language collation, as in a
    // database the old service built (what comparing in the database costs).
    for db in ["loader", "initial", "reference", "nosearch"] {
        pg.sql("postgres", &format!("CREATE DATABASE {db}"));
    }
    pg.sql(
        "postgres",
        "CREATE DATABASE langkeys TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
    );
    let env_loader = |c: &mut Command, db: &str| {
        c.env("CUSIP_DB_HOST", "127.0.0.1")
            .env("CUSIP_DB_PORT", pg.port.to_string())
            .env("CUSIP_DB_USER", "postgres")
            .env("CUSIP_DB_NAME", db)
            .env("RUST_LOG", "warn")
            .args(["--output", "json", "--no-progress"]);
    };
    for db in ["loader", "initial", "nosearch"] {
        let mut init = Command::new(&loader);
        env_loader(&mut init, db);
        timed(init.arg("--init-schema"));
    }
    pg.sql(
        "nosearch",
        "ALTER TABLE issuer DROP COLUMN search_vector; ALTER TABLE issue DROP COLUMN search_vector; \
         ALTER TABLE issue_attribute DROP COLUMN search_vector",
    );
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.sql");
    let schema_text = std::fs::read_to_string(&schema).unwrap();
    for (db, text) in [
        ("reference", schema_text.clone()),
        ("langkeys", schema_text.replace(" COLLATE \"C\"", "")),
    ] {
        let script = root.join(format!("schema-{db}.sql"));
        std::fs::write(
            &script,
            format!("SET search_path = public, pg_temp;\n{text}"),
        )
        .unwrap();
        assert!(pg
            .psql(db)
            .arg("-f")
            .arg(&script)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success());
    }

    let mut rows: Vec<(String, String, M, M)> = Vec::new();
    let mut phase_rows: Vec<PhaseRow> = Vec::new();
    // Scenario, date, flag, database, and the scenario whose reference run it is compared
    // with (None: run the reference for it).
    for (scenario, day, flag, db, same_reference) in [
        ("fresh", "04-01", None, "loader", None),
        (
            "fresh --initial-load",
            "04-01",
            Some("--initial-load"),
            "initial",
            Some("fresh"),
        ),
        ("unchanged", "04-01", Some("--force"), "loader", None),
        ("next day", "04-02", None, "loader", None),
        (NO_SEARCH, "04-01", None, "nosearch", Some("fresh")),
        (LANG_FRESH, "04-01", None, "langkeys", Some("fresh")),
        (LANG_NEXT, "04-02", None, "langkeys", Some("next day")),
    ] {
        for (t, table, keys) in TABLES {
            let file = data.join(format!("CED{day}{t}.PIP"));
            let bytes = std::fs::metadata(&file).unwrap().len();
            let records = count_records(&file);
            let cols = FileType::from_file_name(&file.display().to_string())
                .expect("a PIP file name")
                .layout()
                .column_names();
            // loader
            let (start, xid) = (lsn(&pg, db), pg.sql(db, "SELECT txid_current()"));
            let mut c = Command::new(&loader);
            env_loader(&mut c, db);
            c.arg(&file).args(flag);
            let (secs, out) = timed(&mut c);
            let Summary {
                rss_mb: rss,
                phases,
                ..
            } = loader_summary(&out);
            let l = M {
                seconds: secs,
                rows: records,
                bytes,
                rss_mb: rss,
                wal: wal_since(&pg, db, &start),
                written: written_since(&pg, db, table, &xid),
            };
            phase_rows.push((scenario.to_string(), table.to_string(), phases));
            if scenario == "fresh --initial-load" {
                // Both paths must have produced the same table, row for row. A sum of
                // per-row hashes, not one md5 over all rows: that string passes PostgreSQL's
                // 1 GB limit at 10 M attribute rows.
                let q = format!(
                    "SELECT count(*) || ' ' || sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric) \
                     FROM {table} t"
                );
                let same = pg.sql("loader", &q) == pg.sql("initial", &q);
                eprintln!(
                    "{table}: the default path and --initial-load give identical rows: {same}"
                );
            }
            // reference (a variant of a scenario is compared with that scenario's reference run)
            let r = if let Some(base) = same_reference {
                rows.iter()
                    .find(|(s, tb, _, _)| s == base && tb == table)
                    .map(|(_, _, _, r)| r.clone())
                    .unwrap_or_default()
            } else {
                let (start, xid) = (
                    lsn(&pg, "reference"),
                    pg.sql("reference", "SELECT txid_current()"),
                );
                let script = root.join("ref.sql");
                std::fs::write(
                    &script,
                    reference_sql(table, keys, &cols, &data.join(format!("ref-{day}{t}.txt"))),
                )
                .unwrap();
                let (secs, _) = timed(pg.psql("reference").arg("-f").arg(&script));
                M {
                    seconds: secs,
                    rows: records,
                    bytes,
                    rss_mb: None,
                    wal: wal_since(&pg, "reference", &start),
                    written: written_since(&pg, "reference", table, &xid),
                }
            };
            eprintln!(
                "{scenario} {table}: loader {:.2}s, reference {:.2}s",
                l.seconds, r.seconds
            );
            rows.push((scenario.to_string(), table.to_string(), l, r));
        }
    }
    // The whole date, fresh: the sum over the three files, each way.
    for scenario in ["fresh", "fresh --initial-load"] {
        let mut l = M::default();
        let mut r = M::default();
        for (s, _, lm, rm) in &rows {
            if s == scenario {
                l.seconds += lm.seconds;
                l.rows += lm.rows;
                l.bytes += lm.bytes;
                l.wal += lm.wal;
                l.written += lm.written;
                l.rss_mb = match (l.rss_mb, lm.rss_mb) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                r.seconds += rm.seconds;
                r.wal += rm.wal;
                r.written += rm.written;
            }
        }
        rows.push((scenario.to_string(), "whole date".to_string(), l, r));
    }
    // The COPY phase against the server's own binary COPY of the same rows into the same
    // staging table. Each is timed once only in the scenarios above, minutes apart, while the
    // server may be checkpointing the previous merge, and single runs on this shared 2-core
    // machine differed by up to 50 %. So they are run again here, interleaved, each after a
    // CHECKPOINT, with the loader's session settings, and the fastest round of each is
    // compared. psql's `\copy` of the same binary rows is timed too: it sends what the
    // server reads, with no parsing or encoding, so it is the floor for any client and
    // separates the cost of the client-server protocol from the loader's own.
    //
    // The loader's rounds run on a scratch database whose tables are empty (so, as in a
    // fresh load, the whole file is staged) and whose issue and attribute tables lack the
    // foreign key to their parent: with no parents loaded, the loader's own set-based check
    // then rejects the file right after staging it, and the merge (minutes at 10 M rows, and
    // not part of this phase) never runs. The issuer file has no parent; it loads, and the
    // tables are emptied before each round.
    //
    // How many rounds: the fastest of a few is a poor estimate for a phase of a second or
    // less, which one wake-up of a neighbour can stretch by a third (five rounds of the 10 M
    // issuer file ranged 0.48–0.67 s), while one round of a large file takes half a minute.
    // So each file gets at least `COPY_MIN_ROUNDS`, then more until the loader's rounds add
    // up to `COPY_BUDGET_S`, up to `COPY_MAX_ROUNDS`. `BENCH_COPY_ROUNDS=N` fixes N instead.
    let fixed_rounds: Option<usize> = std::env::var("BENCH_COPY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(|n: usize| n.max(1));
    let more_rounds = |done: &[f64]| match fixed_rounds {
        Some(n) => done.len() < n,
        None => {
            done.len() < COPY_MIN_ROUNDS
                || (done.len() < COPY_MAX_ROUNDS && done.iter().sum::<f64>() < COPY_BUDGET_S)
        }
    };
    pg.sql("postgres", "CREATE DATABASE copyphase");
    let mut init = Command::new(&loader);
    env_loader(&mut init, "copyphase");
    timed(init.arg("--init-schema"));
    pg.sql(
        "copyphase",
        "ALTER TABLE issue DROP CONSTRAINT issue_issuer_fk; \
         ALTER TABLE issue_attribute DROP CONSTRAINT issue_attribute_issue_fk",
    );
    let mut copy_rounds: Vec<CopyRound> = Vec::new();
    // Seconds per round, for stderr and the JSON.
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    for (t, table, _) in TABLES {
        let file = data.join(format!("CED04-01{t}.PIP"));
        let layout = FileType::from_file_name(&file.display().to_string())
            .expect("a PIP file name")
            .layout();
        // The rows the fresh load staged, as the server's binary COPY format, from the
        // database the --initial-load scenario filled with the same file.
        let bin = root.join("pg").join(format!("stage-{t}.bin"));
        pg.sql(
            "initial",
            &format!(
                "COPY (SELECT 0::bigint, {} FROM {table} ORDER BY {}) TO '{}' (FORMAT binary)",
                layout.column_names().join(", "),
                layout.key_names().join(", "),
                bin.display()
            ),
        );
        let mut r = CopyRound {
            table,
            rows: pg
                .sql("initial", &format!("SELECT count(*) FROM {table}"))
                .parse()
                .unwrap_or(0),
            loader: Vec::new(),
            client: Vec::new(),
            server: Vec::new(),
        };
        while more_rounds(&r.loader) {
            pg.sql("copyphase", "TRUNCATE issuer, issue, issue_attribute");
            pg.sql("copyphase", "CHECKPOINT");
            let mut c = Command::new(&loader);
            env_loader(&mut c, "copyphase");
            // --force: the issuer file loads, and the journal would skip it next round.
            let out = c.arg(&file).arg("--force").output().unwrap();
            let summary = loader_summary(&String::from_utf8_lossy(&out.stdout));
            let staged = summary
                .phases
                .iter()
                .find(|(n, _)| n == "read+parse+copy")
                .map(|(_, v)| *v);
            let Some(staged) = staged else {
                panic!(
                    "the loader's COPY phase round on {} gave no read+parse+copy phase: {}",
                    file.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            assert_eq!(
                summary.records,
                Some(r.rows),
                "the loader's COPY phase round on {} did not stage every record",
                file.display()
            );
            r.loader.push(staged);
            pg.sql("copyphase", "CHECKPOINT");
            r.client
                .push(binary_copy(&pg, "copyphase", layout, &bin, Via::Client));
            pg.sql("copyphase", "CHECKPOINT");
            r.server
                .push(binary_copy(&pg, "copyphase", layout, &bin, Via::Server));
        }
        let _ = std::fs::remove_file(&bin);
        eprintln!(
            "COPY phase {table}, seconds per round: loader [{}], psql \\copy [{}], server [{}]",
            list(&r.loader),
            list(&r.client),
            list(&r.server)
        );
        copy_rounds.push(r);
    }

    // validate-only against cat on the same page-cached files: the fastest of five runs of
    // each, interleaved, because one core's speed is the question and the machine is shared
    // (the server may still be checkpointing what the scenarios above wrote).
    for (t, table, _) in TABLES {
        let file = data.join(format!("CED04-01{t}.PIP"));
        let bytes = std::fs::metadata(&file).unwrap().len();
        let _ = Command::new("cat")
            .arg(&file)
            .stdout(Stdio::null())
            .status();
        let (mut secs, mut cat_secs, mut rss) = (f64::MAX, f64::MAX, None::<f64>);
        for _ in 0..5 {
            let mut c = Command::new(&loader);
            env_loader(&mut c, "loader");
            let (s, out) = timed(c.arg("--validate-only").arg(&file));
            let (cs, _) = timed(Command::new("cat").arg(&file).stdout(Stdio::null()));
            secs = secs.min(s);
            cat_secs = cat_secs.min(cs);
            // The largest peak of the runs: memory is a ceiling, not a best case.
            rss = match (rss, loader_summary(&out).rss_mb) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        let l = M {
            seconds: secs,
            rows: count_records(&file),
            bytes,
            rss_mb: rss,
            ..Default::default()
        };
        let r = M {
            seconds: cat_secs,
            rows: 0,
            bytes,
            ..Default::default()
        };
        rows.push(("validate-only vs cat".into(), table.to_string(), l, r));
    }

    let mut md = String::from(
        "| scenario | table | loader s | reference s | ratio | loader rows/s | loader MB/s | loader peak RSS MB | loader WAL MB | reference WAL MB | loader tuples written | reference tuples written |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    for (s, t, l, r) in &rows {
        let ratio = l.seconds / r.seconds.max(1e-9);
        md.push_str(&format!(
            "| {s} | {t} | {:.2} | {:.2} | {ratio:.2} | {:.0} | {:.1} | {:.0} | {:.1} | {:.1} | {} | {} |\n",
            l.seconds,
            r.seconds,
            l.rows as f64 / l.seconds,
            l.bytes as f64 / 1e6 / l.seconds,
            l.rss_mb.unwrap_or(0.0),
            l.wal as f64 / 1e6,
            r.wal as f64 / 1e6,
            l.written,
            r.written
        ));
        json.push(format!(
            "{{\"scenario\":\"{s}\",\"table\":\"{t}\",\"loader_seconds\":{:.3},\"reference_seconds\":{:.3},\"ratio\":{ratio:.3},\"rows\":{},\"bytes\":{},\"loader_peak_rss_mb\":{:.1},\"loader_wal_bytes\":{},\"reference_wal_bytes\":{},\"loader_tuples_written\":{},\"reference_tuples_written\":{}}}",
            l.seconds, r.seconds, l.rows, l.bytes, l.rss_mb.unwrap_or(0.0), l.wal, r.wal, l.written, r.written
        ));
    }
    md.push_str(
        "\n| scenario | table | read+parse+copy s | checks s | merge s | commit s |\n|---|---|---:|---:|---:|---:|\n",
    );
    for (s, t, phases) in &phase_rows {
        let get = |name: &str| {
            phases
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, v)| *v)
        };
        md.push_str(&format!(
            "| {s} | {t} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            get("read+parse+copy"),
            get("checks"),
            get("merge"),
            get("commit"),
        ));
        json.push(format!(
            "{{\"scenario\":\"{s}\",\"table\":\"{t}\",\"phases\":{{{}}}}}",
            phases
                .iter()
                .map(|(n, v)| format!("\"{n}\":{v:.3}"))
                .collect::<Vec<_>>()
                .join(","),
        ));
    }
    // What one thing costs the loader: the same files with it and without it.
    md.push_str(
        "\n| what it costs the loader | table | with s | without s | with / without |\n|---|---|---:|---:|---:|\n",
    );
    for (what, with, without) in [
        ("search vectors (fresh, default path)", "fresh", NO_SEARCH),
        (
            "keys in a language collation (next day)",
            LANG_NEXT,
            "next day",
        ),
    ] {
        for (_, table, _) in TABLES {
            let secs = |scenario: &str| {
                rows.iter()
                    .find(|(s, t, _, _)| s == scenario && t == table)
                    .map_or(0.0, |(_, _, l, _)| l.seconds)
            };
            let (a, b) = (secs(with), secs(without));
            md.push_str(&format!(
                "| {what} | {table} | {a:.2} | {b:.2} | {:.2} |\n",
                a / b.max(1e-9)
            ));
            json.push(format!(
                "{{\"cost_of\":\"{what}\",\"table\":\"{table}\",\"with_seconds\":{a:.3},\"without_seconds\":{b:.3}}}"
            ));
        }
    }
    md.push_str(
        "\n| COPY phase, fastest of interleaved rounds | rows | rounds | loader read+parse+copy s | psql \\copy of the binary rows s | server binary COPY s | loader / server | psql \\copy / server | loader / psql \\copy |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &copy_rounds {
        let (l, c, s) = (fastest(&r.loader), fastest(&r.client), fastest(&r.server));
        let ratio = |a: f64, b: f64| a / b.max(1e-9);
        md.push_str(&format!(
            "| {} | {} | {} | {l:.2} | {c:.2} | {s:.2} | {:.2} | {:.2} | {:.2} |\n",
            r.table,
            r.rows,
            r.loader.len(),
            ratio(l, s),
            ratio(c, s),
            ratio(l, c),
        ));
        json.push(format!(
            "{{\"copy_phase\":\"{}\",\"rows\":{},\"loader_seconds\":[{}],\"psql_copy_seconds\":[{}],\"server_binary_copy_seconds\":[{}],\"loader_over_server\":{:.3},\"psql_copy_over_server\":{:.3},\"loader_over_psql_copy\":{:.3}}}",
            r.table,
            r.rows,
            list(&r.loader),
            list(&r.client),
            list(&r.server),
            ratio(l, s),
            ratio(c, s),
            ratio(l, c),
        ));
    }
    println!(
        "BENCH_N = {n}; machine: {} cores\n\n{md}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    std::fs::write(
        root.join(format!("results-{n}.json")),
        format!("[\n{}\n]\n", json.join(",\n")),
    )
    .unwrap();
    std::fs::write(root.join(format!("results-{n}.md")), &md).unwrap();
    eprintln!("wrote {}", root.join(format!("results-{n}.json")).display());
}

/// Data records in a PIP file (lines other than the trailer), counted in bounded memory.
fn count_records(file: &Path) -> u64 {
    use std::io::BufRead;
    let r = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(file).unwrap());
    r.split(b'\n')
        .map_while(Result::ok)
        .filter(|l| !l.is_empty() && !l.starts_with(b"999999"))
        .count() as u64
}

/// Who reads the binary rows for [`binary_copy`].
#[derive(Clone, Copy)]
enum Via {
    /// psql reads the file and sends it over the connection (`\copy … FROM`).
    Client,
    /// The server reads the file itself (`COPY … FROM 'file'`).
    Server,
}

/// Seconds to create the loader's staging table and binary-COPY `bin` into it, in one
/// transaction of a session with the loader's settings: psql's own `\timing` of those two
/// statements, so that psql's start and connection are not counted (the loader's phase
/// does not count its own either).
fn binary_copy(
    pg: &Pg,
    db: &str,
    layout: &cusip_loader::layout::Layout,
    bin: &Path,
    via: Via,
) -> f64 {
    let copy = format!(
        "{} {} (line, {}) FROM '{}' (FORMAT binary)",
        match via {
            Via::Client => "\\copy",
            Via::Server => "COPY",
        },
        sql::STAGE,
        layout.column_names().join(", "),
        bin.display()
    );
    let out = pg
        .psql(db)
        .env("PGOPTIONS", cusip_loader::db::SESSION_SETTINGS)
        .args(["-c", "\\timing on", "-c", "BEGIN"])
        .args(["-c", &sql::create_stage(layout)])
        .args(["-c", &copy, "-c", "COMMIT"])
        .output()
        .expect("psql");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{copy}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "Time: 12.345 ms" per statement: BEGIN, CREATE, COPY, COMMIT.
    let times: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Time: "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(times.len(), 4, "psql timing lines: {text}");
    (times[1] + times[2]) / 1000.0
}
