//! Test harness: one throwaway PostgreSQL cluster per test binary, one database per test.
//!
//! The cluster lives in a temp dir, listens on a free 127.0.0.1 port, and is stopped and
//! removed when the test binary exits. `initdb` refuses to run as root, so when the tests
//! run as root (CI) the server runs as the `postgres` user.
#![allow(dead_code)]
pub mod s3;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    pub bin: PathBuf,
    run_as: Option<String>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static TLS: OnceLock<()> = OnceLock::new();

/// Makes this test binary's cluster TLS-only (call before anything touches the cluster):
/// `ssl=on` with a server certificate for `localhost` signed by a test CA (`ca.crt` in the
/// cluster dir; `wrong-ca.crt` is an unrelated CA), and a pg_hba.conf of `hostssl` only.
pub fn use_tls() {
    let _ = TLS.set(());
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl: run `make setup`");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certs(dir: &Path) {
    let days = ["-days", "2"];
    for ca in ["ca", "wrong-ca"] {
        let (key, crt, subj) = (
            format!("{ca}.key"),
            format!("{ca}.crt"),
            format!("/CN=cusip-test-{ca}"),
        );
        let mut a = vec![
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt,
            "-subj", &subj,
        ];
        a.extend(days);
        openssl(dir, &a);
    }
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The PostgreSQL binaries: `$PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else
/// wherever `initdb` is on the PATH.
fn pg_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PG_BIN") {
        return PathBuf::from(p);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    if let Some(p) = versions.pop() {
        return p;
    }
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "PostgreSQL server binaries not found: run `make setup` (or set PG_BIN)"
    );
    std::fs::canonicalize(&path)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A port nothing listens on (yet): bound, read, released.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

extern "C" fn stop_cluster() {
    if let Some(c) = CLUSTER.get() {
        let _ = c
            .pg_cmd("pg_ctl")
            .args(["-D", &c.data(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&c.dir);
    }
}

impl Cluster {
    pub fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// A command for a server-side binary, run as the cluster's owner.
    pub fn pg_cmd(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    /// A new directory under the temp dir for a cluster's data, socket and log, owned by the
    /// user the server will run as. Not yet initialised.
    fn new_dir(tag: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "cusip-test-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let run_as = is_root().then(|| "postgres".to_string());
        if let Some(u) = &run_as {
            let ok = Command::new("chown")
                .args(["-R", u])
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(
                ok,
                "cannot chown the test cluster dir to {u}: run `make setup`"
            );
        }
        Cluster {
            dir,
            port: free_port(),
            bin: pg_bin(),
            run_as,
        }
    }

    fn initdb(&self) {
        let out = self
            .pg_cmd("initdb")
            .args(["-D", &self.data(), "-U", "postgres", "--auth=trust"])
            .args(["-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server settings every test cluster runs with: durability off (a test's data is
    /// thrown away), its own port and socket directory.
    fn server_opts(&self) -> String {
        format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=100 -c shared_buffers=64MB",
            self.port,
            self.dir.display()
        )
    }

    /// `pg_ctl start -w`; with `max_file_size`, under that RLIMIT_FSIZE in bytes, which the
    /// postmaster and every backend inherit. PostgreSQL ignores SIGXFSZ, so a file that would
    /// grow past the limit is not extended: EFBIG, or a short write when the limit cuts a block.
    fn pg_start(&self, opts: &str, log: &Path, max_file_size: Option<u64>) {
        let mut cmd = self.pg_cmd("pg_ctl");
        cmd.args(["-D", &self.data(), "-l"])
            .arg(log)
            .args(["-o", opts, "-w", "start"]);
        if let Some(n) = max_file_size {
            // Set in the child between fork and exec, so only runuser, pg_ctl and the server
            // they start have it (runuser's pam_limits keeps what it has no rule for).
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }

    fn start() -> Cluster {
        let c = Cluster::new_dir("pg");
        c.initdb();
        let mut opts = c.server_opts();
        if TLS.get().is_some() {
            make_certs(&c.dir);
            let data = c.dir.join("data");
            for f in ["server.crt", "server.key"] {
                std::fs::copy(c.dir.join(f), data.join(f)).unwrap();
            }
            std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n").unwrap();
            if let Some(u) = &c.run_as {
                Command::new("chown")
                    .args(["-R", u])
                    .arg(&data)
                    .status()
                    .unwrap();
            }
            let key = data.join("server.key");
            Command::new("chmod").arg("600").arg(&key).status().unwrap();
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        c.pg_start(&opts, &c.dir.join("server.log"), None);
        c
    }
}

pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let c = Cluster::start();
        unsafe {
            libc::atexit(stop_cluster);
        }
        c
    })
}

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
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        c
    }

    /// Runs a query, returning psql's unaligned output; panics on SQL errors.
    pub fn sql(&self, q: &str) -> String {
        let out = psql_at(&self.bin, self.port, &self.name, q);
        assert!(
            out.status.success(),
            "psql failed on {q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
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

/// psql as the tests run it: no psqlrc, quiet, unaligned, stop at the first error.
pub fn psql_cmd(bin: &Path, port: u16, db: &str) -> Command {
    let mut c = Command::new(bin.join("psql"));
    c.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
        .arg(port.to_string())
        .args(["-d", db]);
    c
}

fn psql_at(bin: &Path, port: u16, db: &str, q: &str) -> Output {
    psql_cmd(bin, port, db).args(["-c", q]).output().unwrap()
}

/// Runs `q` on database `db` of the shared cluster.
pub fn psql_on(db: &str, q: &str) -> Output {
    let c = cluster();
    psql_at(&c.bin, c.port, db, q)
}

/// Feeds `data` to psql's stdin running `q` (e.g. a COPY FROM STDIN).
pub fn psql_stdin(db: &str, q: &str, data: &[u8]) {
    use std::io::Write;
    let c = cluster();
    let mut child = psql_cmd(&c.bin, c.port, db)
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
    if !gen.exists() {
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
    }
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
    let mut merged: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for f in files {
        for row in expected_rows(f, key_fields) {
            let key: Vec<u8> = row
                .split(|&b| b == b'|')
                .take(key_fields)
                .collect::<Vec<_>>()
                .join(&b'|');
            match merged.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = row,
                None => merged.push((key, row)),
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
    psql_stdin(
        &db.name,
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

use std::sync::Mutex;

/// A PostgreSQL cluster of one test's own, for tests that stop, restart or starve the server
/// (the binary's shared [`cluster()`] must stay up for its other tests). Same server settings
/// as the shared one, without TLS. Dropping it stops the server (`-m immediate`), unmounts the
/// tmpfs it may have mounted and removes its directory, also when the test panics (only a
/// SIGKILLed test binary leaves it behind).
pub struct OwnCluster {
    pub c: Cluster,
    opts: String,
    log: PathBuf,
    tmpfs: Mutex<Option<PathBuf>>,
}

impl OwnCluster {
    /// `initdb` into a new temp dir, then the server started without limits.
    pub fn start() -> OwnCluster {
        let c = Cluster::new_dir("own-pg");
        // Built before initdb, so that whatever fails below, dropping it cleans up.
        let own = OwnCluster {
            log: c.dir.join("server.log"),
            opts: c.server_opts(),
            c,
            tmpfs: Mutex::new(None),
        };
        own.c.initdb();
        own.start_server(None);
        own
    }

    /// Starts the server; with `max_file_size`, under that file-size limit (see
    /// [`Cluster::pg_start`]).
    pub fn start_server(&self, max_file_size: Option<u64>) {
        self.c.pg_start(&self.opts, &self.log, max_file_size);
    }

    /// `pg_ctl stop -m <mode> -w`: `immediate` kills every backend with no shutdown
    /// checkpoint (the next start runs crash recovery), `fast` rolls back and checkpoints.
    pub fn stop_server(&self, mode: &str) {
        let out = self
            .c
            .pg_cmd("pg_ctl")
            .args(["-D", &self.c.data(), "-m", mode, "-w", "stop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop -m {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server's log so far (for failure messages).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

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

    /// Mounts a tmpfs of `bytes` at `<cluster dir>/tmpfs`, owned by the server's user: a small
    /// disk that really fills up (ENOSPC), e.g. for a tablespace. Only as root where mounting
    /// is allowed (not in most containers): `None` otherwise. Unmounted on drop.
    pub fn mount_tmpfs(&self, bytes: u64) -> Option<PathBuf> {
        if !is_root() {
            return None;
        }
        let dir = self.c.dir.join("tmpfs");
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes},mode=0700"))
            .arg("tmpfs")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        *self.tmpfs.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.clone());
        if let Some(u) = &self.c.run_as {
            let ok = Command::new("chown")
                .arg(u)
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot chown the tmpfs to {u}");
        }
        Some(dir)
    }

    /// Gives the tmpfs a new size (the kernel refuses less than it holds).
    pub fn resize_tmpfs(&self, bytes: u64) {
        let dir = self.c.dir.join("tmpfs");
        let out = Command::new("mount")
            .arg("-o")
            .arg(format!("remount,size={bytes}"))
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "resizing the tmpfs to {bytes} bytes: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Bytes in use on the tmpfs.
    pub fn tmpfs_used(&self) -> u64 {
        use std::os::unix::ffi::OsStrExt;
        let dir = self.c.dir.join("tmpfs");
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        assert_eq!(rc, 0, "statvfs {}", dir.display());
        (st.f_blocks - st.f_bfree) as u64 * st.f_frsize as u64
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self
            .c
            .pg_cmd("pg_ctl")
            .args(["-D", &self.c.data(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let tmpfs = self.tmpfs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(dir) = tmpfs {
            let umounted = Command::new("umount")
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            if !umounted {
                // Still busy: detach it, so removing the directory cannot descend into it.
                let _ = Command::new("umount").arg("-l").arg(&dir).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.c.dir);
    }
}
