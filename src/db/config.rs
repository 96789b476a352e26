//! Where and as whom to connect, in one place.
//!
//! Every source of settings (flags, variables, a connection URL, the Secrets Manager secret)
//! fills the same [`DbConfig`], so nothing after it needs to know where a setting came from.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::tls::SslMode;

/// Where and as whom to connect. The password is never printed (see `Debug`).
#[derive(Clone)]
pub struct DbConfig {
    /// A host name, an IP address, or a Unix socket directory (starting with `/`).
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    pub sslmode: SslMode,
    /// PEM bundle of the CAs to trust (the RDS global bundle in production).
    pub sslrootcert: Option<PathBuf>,
    /// How long to keep retrying a refused or reset connection at start.
    pub connect_retry: Duration,
    /// Session `lock_timeout`: bounds the wait for another loader's table lock.
    pub lock_timeout: Duration,
    /// Session `statement_timeout` (zero: none).
    pub statement_timeout: Duration,
    /// `--net-timeout`: how long a connection may go without progress before it is given up
    /// as dead (TCP keepalive and user timeout, the server's own keepalive, and the
    /// watchdog of [`super::watch`]).
    pub net_timeout: Duration,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .finish()
    }
}

/// Server settings for every load session, as `-c` options.
///
/// temp_buffers: the staging table is temporary, so it lives in this session's
/// local buffers (8 MB by default); every check and the merge scan it, and at
/// the default each scan goes back to the kernel. work_mem: the merge's hash
/// joins and the key sort stay in memory. Both are per-session ceilings,
/// allocated only as used (docs/performance.md). jit: the merge's 53-column
/// comparison costs enough to trigger JIT compilation with optimisation, which
/// took longer than it saved (4.4 s against 3.9 s at 1 M attribute rows).
///
/// Public so that `make bench` gives its own COPY into staging the same settings.
pub const SESSION_SETTINGS: &str = "-c temp_buffers=256MB -c work_mem=64MB -c jit=off";

impl DbConfig {
    /// `user@host:port/dbname`, for messages.
    pub fn display_target(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }

    /// The connection settings, under `application_name` (the loader's own sessions are
    /// `cusip-loader`; the watchdog's liveness check names itself apart, so that nothing
    /// counting the loader's sessions counts it).
    pub(super) fn pg_config(&self, application_name: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.dbname)
            .user(&self.user)
            .application_name(application_name)
            .connect_timeout(self.connect_timeout)
            .options(format!(
                "{SESSION_SETTINGS} -c lock_timeout={}ms -c statement_timeout={}ms",
                self.lock_timeout.as_millis(),
                self.statement_timeout.as_millis()
            ));
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }

    /// TCP keepalive from `--net-timeout` T: the first probe after T/2 of silence, then one
    /// every T/6, three of them, so that a path that answers nothing is given up after about
    /// T (on Linux `TCP_USER_TIMEOUT`, also T, has the last word). Whole seconds, at least 1:
    /// the kernel counts keepalive in seconds.
    pub(super) fn keepalive(&self) -> (Duration, Duration, u32) {
        let t = self.net_timeout.as_secs().max(1);
        (
            Duration::from_secs((t / 2).max(1)),
            Duration::from_secs((t / 6).max(1)),
            3,
        )
    }

    /// The bound on a connection that is only a side errand of a load: the watchdog's
    /// liveness check, recording a failed attempt when the load's own connection is gone.
    /// Half of `--net-timeout` (at least a second), never more than `--connect-timeout`, so
    /// that the errand still ends within twice `--net-timeout` of the path going dead.
    pub fn brief(&self) -> Duration {
        (self.net_timeout / 2)
            .max(Duration::from_secs(1))
            .min(self.connect_timeout.max(Duration::from_secs(1)))
    }

    /// The statement that starts every session of the loader: its backend's pid (what the
    /// watchdog looks for in `pg_stat_activity`), and the server's side of the same bound
    /// where the server has the setting (`tcp_user_timeout` from PostgreSQL 12,
    /// `client_connection_check_interval` from 14): the server then notices a dead client
    /// and rolls its transaction back instead of holding the load's locks. All of them may
    /// be set by any user. A setting the server lacks is skipped: `current_setting(name, true)`
    /// is null for it. (Filtering on `pg_settings` instead builds that whole view, 2 ms of
    /// every session's first statement, measured in psql.)
    pub(super) fn session_sql(&self) -> String {
        let (idle, interval, count) = self.keepalive();
        let t = self.net_timeout.as_millis().max(1000);
        format!(
            "SELECT pg_backend_pid(), count(set_config(v.name, v.setting, false)) FROM (VALUES \
             ('tcp_keepalives_idle', '{}'), ('tcp_keepalives_interval', '{}'), \
             ('tcp_keepalives_count', '{count}'), ('tcp_user_timeout', '{t}'), \
             ('client_connection_check_interval', '{}')) AS v(name, setting) \
             WHERE current_setting(v.name, true) IS NOT NULL",
            idle.as_secs(),
            interval.as_secs(),
            (t / 2).max(1000)
        )
    }
}

fn percent_decode(s: &str) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| Error::Config("--database-url: bad %-escape".into()))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::Config("--database-url: %-escapes are not UTF-8".into()))
}

/// Applies a libpq-style URL, `postgresql://user:password@host:port/dbname?sslmode=…&sslrootcert=…`,
/// to `cfg`: what the URL holds wins, what it leaves out keeps its flag, env or default.
/// Parsed here (not passed through) so every setting has one meaning, whatever its source.
pub fn apply_url(cfg: &mut DbConfig, url: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Error::Config(format!(
            "--database-url: {why} (expected postgresql://user@host:port/dbname?sslmode=...)"
        ))
    };
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| bad("not a postgresql:// URL"))?;
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = userinfo {
        let (user, pw) = u.split_once(':').map_or((u, None), |(a, b)| (a, Some(b)));
        if !user.is_empty() {
            cfg.user = percent_decode(user)?;
        }
        if let Some(pw) = pw {
            cfg.password = Some(percent_decode(pw)?);
        }
    }
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, after) = h
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if !host.is_empty() {
        cfg.host = percent_decode(host)?;
    }
    if let Some(p) = port.filter(|p| !p.is_empty()) {
        cfg.port = p.parse().map_err(|_| bad("the port is not a number"))?;
    }
    if !path.is_empty() {
        cfg.dbname = percent_decode(path)?;
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        match k {
            "sslmode" => {
                cfg.sslmode =
                    SslMode::from_name(&v).ok_or_else(|| bad(&format!("unknown sslmode {v:?}")))?
            }
            "sslrootcert" => cfg.sslrootcert = Some(PathBuf::from(v)),
            "host" => cfg.host = v,
            "port" => cfg.port = v.parse().map_err(|_| bad("the port is not a number"))?,
            "dbname" => cfg.dbname = v,
            "user" => cfg.user = v,
            "password" => cfg.password = Some(v),
            "connect_timeout" => {
                cfg.connect_timeout = Duration::from_secs(
                    v.parse()
                        .map_err(|_| bad("connect_timeout is not a number"))?,
                )
            }
            "application_name" => {}
            other => return Err(bad(&format!("unsupported parameter {other:?}"))),
        }
    }
    Ok(())
}

/// The password for `cfg` from a libpq password file (`PGPASSFILE`, else `~/.pgpass`), as
/// libpq reads it: the first line whose host, port, database and user match (`*` matches
/// anything; a Unix-socket host matches `localhost`), and only from a file private to its
/// owner. `Ok(None)`: no file, or no line for this connection; `Err`: a file that is not
/// used, and why (for the log).
pub fn pgpass(cfg: &DbConfig, file: &std::path::Path) -> Result<Option<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    if !meta.is_file() {
        return Err(format!("{} is not a plain file", file.display()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is readable by others (chmod 0600 it, as libpq requires)",
            file.display()
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(pgpass_lookup(&text, cfg))
}

/// The matching line's password in a password file's text.
pub fn pgpass_lookup(text: &str, cfg: &DbConfig) -> Option<String> {
    let host = if cfg.host.starts_with('/') {
        "localhost"
    } else {
        cfg.host.as_str()
    };
    let port = cfg.port.to_string();
    let want = [host, port.as_str(), cfg.dbname.as_str(), cfg.user.as_str()];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split_pgpass(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(want)
                .all(|(f, w)| f == "*" || f == w);
            matches.then(|| fields[4].clone())
        })
}

/// Splits a password-file line at unescaped `:`; `\:` and `\\` stand for `:` and `\`.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.last_mut().expect("never empty").push(n);
                }
            }
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::SslMode;

    fn base() -> DbConfig {
        DbConfig {
            host: "localhost".into(),
            port: 5432,
            dbname: "cusip".into(),
            user: "cusip_app".into(),
            password: None,
            connect_timeout: Duration::from_secs(15),
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            connect_retry: Duration::ZERO,
            lock_timeout: Duration::ZERO,
            statement_timeout: Duration::ZERO,
            net_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn database_urls() {
        let mut c = base();
        apply_url(
            &mut c,
            "postgresql://loader:p%40ss@db.example.com:6432/sec_master?sslmode=verify-full&sslrootcert=/etc/rds.pem",
        )
        .unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.as_deref()),
            ("loader", Some("p@ss"))
        );
        assert_eq!(
            (c.host.as_str(), c.port, c.dbname.as_str()),
            ("db.example.com", 6432, "sec_master")
        );
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(
            c.sslrootcert.as_deref(),
            Some(std::path::Path::new("/etc/rds.pem"))
        );
        // What the URL leaves out keeps its value.
        let mut c = base();
        apply_url(&mut c, "postgres://db2").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.dbname.as_str(), c.user.as_str()),
            ("db2", 5432, "cusip", "cusip_app")
        );
        let mut c = base();
        apply_url(&mut c, "postgresql://[::1]:5433/x?host=/var/run/postgresql").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("/var/run/postgresql", 5433));
        for bad in [
            "mysql://x",
            "postgresql://h:port/x",
            "postgresql://h/x?sslmode=maybe",
            "postgresql://h/x?bogus=1",
        ] {
            assert!(apply_url(&mut base(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn net_timeout_sets_keepalive_the_errand_bound_and_the_server_side() {
        let mut c = base();
        // 60 s: probes from 30 s, every 10 s, three of them: about 60 s.
        assert_eq!(
            c.keepalive(),
            (Duration::from_secs(30), Duration::from_secs(10), 3)
        );
        // An errand gets half of it, within --connect-timeout (15 s here).
        assert_eq!(c.brief(), Duration::from_secs(15));
        let sql = c.session_sql();
        for (name, value) in [
            ("tcp_keepalives_idle", "30"),
            ("tcp_keepalives_interval", "10"),
            ("tcp_keepalives_count", "3"),
            ("tcp_user_timeout", "60000"),
            ("client_connection_check_interval", "30000"),
        ] {
            assert!(sql.contains(&format!("('{name}', '{value}')")), "{sql}");
        }
        // The kernel counts keepalive in whole seconds, at least one.
        c.net_timeout = Duration::from_secs(3);
        assert_eq!(
            c.keepalive(),
            (Duration::from_secs(1), Duration::from_secs(1), 3)
        );
        assert_eq!(c.brief(), Duration::from_millis(1500));
        c.net_timeout = Duration::from_secs(1);
        assert_eq!(c.brief(), Duration::from_secs(1));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = DbConfig {
            host: "h".into(),
            port: 5432,
            dbname: "d".into(),
            user: "u".into(),
            password: Some("s3cret-pw".into()),
            connect_timeout: Duration::from_secs(1),
            sslmode: SslMode::Prefer,
            sslrootcert: None,
            connect_retry: Duration::ZERO,
            lock_timeout: Duration::ZERO,
            statement_timeout: Duration::ZERO,
            net_timeout: Duration::from_secs(60),
        };
        let shown = format!("{c:?} {}", c.display_target());
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let mut c = base();
        c.host = "db.example".into();
        c.port = 5433;
        c.dbname = "cusip".into();
        c.user = "cusip_app".into();
        let text = "# comment\n\
                    other:5433:cusip:cusip_app:nope\n\
                    db.example:5433:cusip:someone:nope\n\
                    db.example:*:cusip:cusip_app:pa\\:ss\\\\word\n\
                    *:*:*:*:fallback\n";
        assert_eq!(pgpass_lookup(text, &c).as_deref(), Some("pa:ss\\word"));
        c.user = "x".into();
        assert_eq!(pgpass_lookup(text, &c).as_deref(), Some("fallback"));
        c.host = "/run/postgresql".into();
        assert_eq!(
            pgpass_lookup("localhost:5433:cusip:x:sock\n", &c).as_deref(),
            Some("sock")
        );
        assert_eq!(pgpass_lookup("a:b\n", &c), None);
    }

    #[test]
    fn a_password_file_others_can_read_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pgpass");
        std::fs::write(&f, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = pgpass(&base(), &f).unwrap_err();
        assert!(e.contains("chmod 0600") && !e.contains("secret"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(pgpass(&base(), &f).unwrap().as_deref(), Some("secret"));
        assert_eq!(pgpass(&base(), &d.path().join("none")).unwrap(), None);
    }
}
