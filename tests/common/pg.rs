//! A throwaway PostgreSQL cluster: `initdb` into a directory of its own, a free port, `pg_ctl`
//! start and stop, the directory removed afterwards.
//!
//! One implementation for the integration tests (through `tests/common/mod.rs`) and for
//! `examples/bench.rs` (which includes this file with `#[path]`), so that both start their
//! servers the same way. It depends on nothing of the test harness but libc, for the same
//! reason: the bench is not a test binary.
//!
//! `initdb` refuses to run as root, so as root (CI) the server runs as the `postgres` user
//! (`make setup` creates it) through `runuser`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

/// The settings of every test cluster: durability off (a test's data is thrown away).
pub const TEST_SETTINGS: &str = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                                 -c max_connections=100 -c shared_buffers=64MB";

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

    /// psql on database `db` of this cluster, as the tests run it (see [`psql_cmd`]).
    pub fn psql(&self, db: &str) -> Command {
        psql_cmd(&self.bin, self.port, db)
    }

    /// Runs `q` on database `db`, returning psql's unaligned output; panics on SQL errors.
    pub fn sql(&self, db: &str, q: &str) -> String {
        sql_at(&self.bin, self.port, db, q)
    }

    /// A new directory under the temp dir for a cluster's data, socket and log (see
    /// [`Cluster::in_dir`]).
    pub fn new_dir(tag: &str) -> Cluster {
        Cluster::in_dir(&std::env::temp_dir().join(format!(
            "cusip-test-{tag}-{}-{}",
            std::process::id(),
            free_port()
        )))
    }

    /// `dir`, emptied, for a cluster's data, socket and log, owned by the user the server
    /// will run as. Not yet initialised. A server a killed run left running there is
    /// stopped first: removing its directory would leave it running, unreachable.
    pub fn in_dir(dir: &Path) -> Cluster {
        let run_as = is_root().then(|| "postgres".to_string());
        let c = Cluster {
            dir: dir.to_path_buf(),
            port: free_port(),
            bin: pg_bin(),
            run_as,
        };
        if dir.join("data/postmaster.pid").exists() {
            let _ = c
                .pg_cmd("pg_ctl")
                .args(["-D", &c.data(), "-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        if let Some(u) = &c.run_as {
            let ok = Command::new("chown")
                .args(["-R", u])
                .arg(dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "cannot chown the cluster dir to {u}: run `make setup`");
        }
        c
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

    /// The server's own port and socket directory, then `settings` (`-c name=value …`).
    fn server_opts(&self, settings: &str) -> String {
        format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} {settings}",
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
        let mut opts = c.server_opts(TEST_SETTINGS);
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

/// The test binary's shared cluster, started on first use and stopped and removed at exit.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let c = Cluster::start();
        unsafe {
            libc::atexit(stop_cluster);
        }
        c
    })
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

pub fn psql_at(bin: &Path, port: u16, db: &str, q: &str) -> Output {
    psql_cmd(bin, port, db).args(["-c", q]).output().unwrap()
}

/// Runs `q`, returning psql's unaligned output; panics on SQL errors.
pub fn sql_at(bin: &Path, port: u16, db: &str, q: &str) -> String {
    let out = psql_at(bin, port, db, q);
    assert!(
        out.status.success(),
        "psql failed on {q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// ------------------------------------------------------------ a cluster of one's own

/// A PostgreSQL cluster of one test's own, for tests that stop, restart or starve the server
/// (the binary's shared [`cluster()`] must stay up for its other tests), and the bench's.
/// Dropping it stops the server (`-m immediate`), unmounts the tmpfs it may have mounted and
/// removes its directory, also when the test panics (only a SIGKILLed process leaves it
/// behind).
pub struct OwnCluster {
    pub c: Cluster,
    opts: String,
    log: PathBuf,
    tmpfs: Mutex<Option<PathBuf>>,
}

impl OwnCluster {
    /// `initdb` into a new temp dir, then the server started without limits, with the shared
    /// cluster's settings but without TLS.
    pub fn start() -> OwnCluster {
        OwnCluster::start_in(Cluster::new_dir("own-pg"), TEST_SETTINGS)
    }

    /// `initdb` into `c`'s directory, then the server started with `settings` (`-c name=value
    /// …`) and no limits.
    pub fn start_in(c: Cluster, settings: &str) -> OwnCluster {
        // Built before initdb, so that whatever fails below, dropping it cleans up.
        let own = OwnCluster {
            log: c.dir.join("server.log"),
            opts: c.server_opts(settings),
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
