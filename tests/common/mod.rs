//! Test harness: one throwaway PostgreSQL cluster per test binary, one database per test.
//!
//! The cluster lives in a temp dir, listens on a free 127.0.0.1 port, and is stopped and
//! removed when the test binary exits. How a cluster is started is in `pg.rs`, shared with
//! `examples/bench.rs`; what the tests do with one (databases, the loader, the oracles) is
//! here.
#![allow(dead_code)]
pub mod forward;
mod pg;
pub mod s3;

pub use pg::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh database of the shared cluster, with the schema applied by the loader itself.
pub struct Db {
    pub name: String,
    port: u16,
    bin: PathBuf,
}

impl Db {
    /// A new empty database (no schema).
    pub fn empty(tag: &str) -> Db {
        Db::empty_with(tag, "")
    }

    /// A new empty database created with `options` (e.g. its locale).
    pub fn empty_with(tag: &str, options: &str) -> Db {
        let c = cluster();
        let name = format!("t_{}_{}", tag, COUNTER.fetch_add(1, Ordering::SeqCst));
        let db = Db::at(c, &name);
        let out = psql_on(
            "postgres",
            &format!("CREATE DATABASE {} {options}", db.name),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }

    /// A handle on database `name` of cluster `c` (which need not be the shared one).
    pub fn at(c: &Cluster, name: &str) -> Db {
        Db {
            name: name.to_string(),
            port: c.port,
            bin: c.bin.clone(),
        }
    }

    /// A new database with the schema applied through `cusip-loader --init-schema`.
    pub fn new(tag: &str) -> Db {
        let db = Db::empty(tag);
        let out = db.loader().arg("--init-schema").output().unwrap();
        assert!(
            out.status.success(),
            "--init-schema failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }

    /// The loader, pointed at this database by environment (as a scheduler would).
    pub fn loader(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cusip-loader"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CUSIP_DB_HOST", "127.0.0.1")
            .env("CUSIP_DB_PORT", self.port.to_string())
            .env("CUSIP_DB_NAME", &self.name)
            .env("CUSIP_DB_USER", "postgres")
            .env("CUSIP_DB_CONNECT_RETRY", "0")
            // The test files are small; the comparison in the loader, which files of a
            // megabyte and more take, is what most tests are about. One test checks the
            // default (tests/load.rs, small files).
            .env("CUSIP_COMPARE_MIN_BYTES", "0")
            .env("RUST_LOG", "info")
            // A directory of its own: a developer's ./.env must not reach the tests.
            .current_dir(loader_cwd())
            .stdin(Stdio::null());
        c
    }

    /// Runs a query, returning psql's unaligned output; panics on SQL errors.
    pub fn sql(&self, q: &str) -> String {
        sql_at(&self.bin, self.port, &self.name, q)
    }

    /// Runs a multi-statement script (one psql session, stop at the first error).
    pub fn script(&self, sql: &str) {
        use std::io::Write;
        let mut child = psql_cmd(&self.bin, self.port, &self.name)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "psql script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Feeds `data` to psql's stdin running `q` (e.g. a COPY FROM STDIN) on this database, of
    /// whichever cluster it is in.
    pub fn stdin(&self, q: &str, data: &[u8]) {
        use std::io::Write;
        let mut child = psql_cmd(&self.bin, self.port, &self.name)
            .args(["-c", q])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "psql failed on {q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_dump --schema-only`: equal dumps mean the schema did not change.
    pub fn schema_dump(&self) -> String {
        self.pg_dump(&["--schema-only"])
    }

    /// `pg_dump` of this database with `args`.
    pub fn pg_dump(&self, args: &[&str]) -> String {
        let out = Command::new(self.bin.join("pg_dump"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
                &self.port.to_string(),
            ])
            .args(args)
            .args(["-d", &self.name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // pg_dump 15.x may emit a random \restrict key line; it is not content.
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn count(&self, table: &str) -> u64 {
        self.sql(&format!("SELECT count(*) FROM {table}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Every row of a table as COPY text, in key order: equal dumps mean equal contents.
    pub fn dump(&self, table: &str) -> String {
        let order = match table {
            "issuer" => "issuer_num",
            "issue" | "issue_attribute" => "issuer_num, issue_num",
            t if t.starts_with("ref_") => "code",
            _ => "1",
        };
        self.sql(&format!(
            "COPY (SELECT * FROM {table} ORDER BY {order}) TO STDOUT"
        ))
    }

    /// Master and code tables, plus each master row's xmin and ctid (its physical version):
    /// equal snapshots mean nothing was written.
    pub fn snapshot(&self) -> String {
        let mut s = String::new();
        for t in MASTER.into_iter().chain(REF_TABLES) {
            s.push_str(&format!("== {t}\n{}", self.dump(t)));
        }
        for (t, k) in [
            ("issuer", "issuer_num"),
            ("issue", "issuer_num, issue_num"),
            ("issue_attribute", "issuer_num, issue_num"),
        ] {
            s.push_str(&self.sql(&format!(
                "COPY (SELECT xmin, ctid FROM {t} ORDER BY {k}) TO STDOUT"
            )));
        }
        s
    }

    /// Row count and md5 of every row, in key order, of each master table: "exactly before
    /// or exactly complete" compared in a few bytes.
    pub fn digest(&self) -> String {
        let mut s = String::new();
        for (t, k) in [
            ("issuer", "issuer_num"),
            ("issue", "issuer_num, issue_num"),
            ("issue_attribute", "issuer_num, issue_num"),
        ] {
            s.push_str(&self.sql(&format!(
                "SELECT '{t} ' || count(*) || ' ' || \
                 coalesce(md5(string_agg(t::text, '|' ORDER BY {k})), '') FROM {t} t"
            )));
        }
        s
    }

    /// `(status, records, inserted, updated, unchanged, repeated)` of journal rows, oldest first.
    pub fn journal(&self) -> Vec<Vec<String>> {
        self.sql(
            "SELECT file_name, status, records_read, inserted, updated, unchanged, repeated_keys \
             FROM load_journal ORDER BY id",
        )
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
    }
}

/// An empty working directory for the loader (it reads ./.env when there is one).
pub fn loader_cwd() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("loader-cwd");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub const MASTER: [&str; 3] = ["issuer", "issue", "issue_attribute"];
pub const REF_TABLES: [&str; 9] = [
    "ref_issuer_type",
    "ref_issuer_status",
    "ref_issuer_transaction",
    "ref_issue_status",
    "ref_issue_transaction",
    "ref_govt_stimulus_program",
    "ref_payment_frequency",
    "ref_sale_type",
    "ref_offering_amount_code",
];

/// The grants docs/operations.md documents for the application role: no DDL, no DELETE, no
/// ownership. Used by the least-privilege tests and by `--initial-load`'s "needs the owner".
#[allow(dead_code)] // not every test binary uses it
pub fn least_privilege_grants(role: &str, db: &str) -> String {
    format!(
        "CREATE ROLE {role} LOGIN; \
         GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}; \
         GRANT USAGE ON SCHEMA public TO {role}; \
         GRANT SELECT, INSERT, UPDATE ON issuer, issue, issue_attribute TO {role}; \
         GRANT SELECT ON {} TO {role}; \
         GRANT SELECT, INSERT ON load_journal TO {role}; \
         GRANT USAGE ON SEQUENCE load_journal_id_seq TO {role};",
        REF_TABLES.join(", ")
    )
}

/// Runs `q` on database `db` of the shared cluster.
pub fn psql_on(db: &str, q: &str) -> Output {
    let c = cluster();
    psql_at(&c.bin, c.port, db, q)
}

/// Feeds `data` to psql's stdin running `q` (e.g. a COPY FROM STDIN) on database `db` of the
/// shared cluster.
pub fn psql_stdin(db: &str, q: &str, data: &[u8]) {
    Db::at(cluster(), db).stdin(q, data)
}

/// The sample R, E and A files of a date (`01-15` or `01-16`), in load order.
pub fn day(d: &str) -> Vec<PathBuf> {
    ["R", "E", "A"]
        .iter()
        .map(|t| testdata(&format!("CED{d}{t}.PIP")))
        .collect()
}

pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// Runs a command and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The loader's JSON summary from a run with `--output json`.
pub fn summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The project's generator example, built on demand in the same profile as the tests.
pub fn generator() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_cusip-loader"));
    let dir = exe.parent().unwrap();
    let gen = dir.join("examples").join("generate");
    // Built once per test binary, always: cargo makes it a no-op when it is current, and a
    // stale generator (one without a newer option) must never be run.
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut c = Command::new(env!("CARGO"));
        c.args(["build", "--quiet", "--example", "generate"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            c.arg("--release");
        }
        assert!(
            c.status().unwrap().success(),
            "building the generator failed"
        );
    });
    gen
}

/// Reference model of a file, independent of the loader: split lines on `|`, drop blank
/// lines and the trailer, keep the last record per key. Zero dates become empty (NULL).
pub fn expected_rows(path: &Path, key_fields: usize) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut rows: std::collections::HashMap<Vec<u8>, Vec<u8>> = std::collections::HashMap::new();
    for raw in bytes.split(|&b| b == b'\n') {
        let mut line = raw.to_vec();
        while matches!(line.last(), Some(b'\r') | Some(0x1a)) {
            line.pop();
        }
        if line.is_empty() || line.starts_with(b"999999") {
            continue;
        }
        let fields: Vec<&[u8]> = line.split(|&b| b == b'|').collect();
        let key = fields[..key_fields].join(&b'|');
        let cleaned: Vec<Vec<u8>> = fields
            .iter()
            .map(|f| {
                if *f == b"0000-00-00" || *f == b"00000000" {
                    Vec::new()
                } else {
                    f.to_vec()
                }
            })
            .collect();
        if !rows.contains_key(&key) {
            order.push(key.clone());
        }
        rows.insert(key, cleaned.join(&b'|'));
    }
    order
        .into_iter()
        .map(|k| rows.remove(&k).unwrap())
        .collect()
}

/// Loads the reference rows of `files` (in order, later files winning per key) into a copy
/// of `table` through PostgreSQL's own text input, and asserts the loaded table equals it
/// in every column of every row.
pub fn assert_table_matches(db: &Db, table: &str, files: &[PathBuf]) {
    let key_fields = if table == "issuer" { 1 } else { 2 };
    // In first-seen key order; `slots` finds a key's place (many files of many rows: the
    // soak's 30 days and more).
    let mut merged: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut slots: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    for f in files {
        for row in expected_rows(f, key_fields) {
            let key: Vec<u8> = row
                .split(|&b| b == b'|')
                .take(key_fields)
                .collect::<Vec<_>>()
                .join(&b'|');
            match slots.get(&key) {
                Some(&i) => merged[i].1 = row,
                None => {
                    slots.insert(key.clone(), merged.len());
                    merged.push((key, row));
                }
            }
        }
    }
    let mut data = Vec::new();
    for (_, row) in &merged {
        data.extend_from_slice(row);
        data.push(b'\n');
    }
    let exp = format!("expected_{table}");
    let layout = layout_of(table);
    let cols = layout.column_names().join(", ");
    db.sql(&format!(
        "DROP TABLE IF EXISTS {exp}; CREATE TABLE {exp} AS SELECT {cols} FROM {table} WITH NO DATA"
    ));
    db.stdin(
        &format!("COPY {exp} FROM STDIN (FORMAT csv, DELIMITER '|', QUOTE E'\\x01')"),
        &data,
    );
    let missing = db.sql(&format!(
        "SELECT count(*) FROM (TABLE {exp} EXCEPT SELECT {cols} FROM {table}) x"
    ));
    let extra = db.sql(&format!(
        "SELECT count(*) FROM (SELECT {cols} FROM {table} EXCEPT TABLE {exp}) x"
    ));
    let sample = db.sql(&format!(
        "SELECT * FROM (TABLE {exp} EXCEPT SELECT {cols} FROM {table}) x LIMIT 3"
    ));
    assert_eq!(
        (missing.trim(), extra.trim()),
        ("0", "0"),
        "{table} differs from the files; expected rows not loaded exactly, e.g.:\n{sample}"
    );
    assert_eq!(db.count(table), merged.len() as u64, "{table} row count");
    db.sql(&format!("DROP TABLE {exp}"));
    assert_search_vectors_current(db, table);
}

/// Both sample days, 01-15 then 01-16, are in every master table, complete and exact.
pub fn assert_both_days(db: &Db) {
    let (d15, d16) = (day("01-15"), day("01-16"));
    for (i, t) in MASTER.iter().enumerate() {
        assert_table_matches(db, t, &[d15[i].clone(), d16[i].clone()]);
    }
}

/// The layout of a master table, by its name.
pub fn layout_of(table: &str) -> &'static cusip_loader::layout::Layout {
    cusip_loader::layout::FileType::ALL
        .iter()
        .map(|t| t.layout())
        .find(|l| l.table == table)
        .unwrap_or_else(|| panic!("{table} is not a master table"))
}

/// Every row's `search_vector` (where the table has one) is what its text columns give now:
/// the vectors were kept current by every write.
pub fn assert_search_vectors_current(db: &Db, table: &str) {
    let has = db.sql(&format!(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = '{table}'::regclass \
         AND attname = 'search_vector' AND NOT attisdropped"
    ));
    if has.trim() == "0" {
        return;
    }
    let stale = db.sql(&format!(
        "SELECT count(*) FROM {table} WHERE search_vector IS DISTINCT FROM {}",
        layout_of(table).search_expression("")
    ));
    assert_eq!(
        stale.trim(),
        "0",
        "{table}: rows whose search_vector is stale"
    );
}

/// One line of the scorecard `make test-faults` prints: written by each scenario to
/// `target/tmp/scorecard/<scenario>.json`, gathered by `.ci/scorecard`. Called only when the scenario passed.
#[allow(dead_code)] // not every test binary reports to the scorecard
pub fn score(scenario: &str, trials: u32, faults: u32, survived: u32, rows_lost: u64) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scorecard");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{scenario}.json")),
        format!(
            "{{\"scenario\":\"{scenario}\",\"trials\":{trials},\"faults\":{faults},\
             \"survived\":{survived},\"rows_lost\":{rows_lost}}}\n"
        ),
    )
    .unwrap();
}

// ------------------------------------------------------------ a cluster of a test's own

/// The databases of an [`OwnCluster`]: here, not in `pg.rs`, because [`Db`] runs the loader
/// test binaries are given (`CARGO_BIN_EXE_*`), which the bench that shares `pg.rs` is not.
impl OwnCluster {
    /// A handle on database `name` of this cluster.
    pub fn db(&self, name: &str) -> Db {
        Db::at(&self.c, name)
    }

    /// `CREATE DATABASE name <options>`, then the schema applied by `cusip-loader --init-schema`.
    pub fn new_db(&self, name: &str, options: &str) -> Db {
        let db = self.db(name);
        self.db("postgres")
            .sql(&format!("CREATE DATABASE {name} {options}"));
        let out = db.loader().arg("--init-schema").output().unwrap();
        assert!(
            out.status.success(),
            "--init-schema failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }

    /// A copy of database `template` (nobody may be connected to it), in its tablespace.
    pub fn copy_db(&self, name: &str, template: &str) -> Db {
        self.db("postgres")
            .sql(&format!("CREATE DATABASE {name} TEMPLATE {template}"));
        self.db(name)
    }
}
