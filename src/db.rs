//! Connection settings in one place, and how server errors become exit codes.
//!
//! Later sources of settings (a connection URL, Secrets Manager, TLS) fill the same
//! `DbConfig`, so nothing else in the loader needs to know where the settings came from.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Exit};
use crate::tls::{self, SslMode};

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
/// allocated only as used (README, Performance). jit: the merge's 53-column
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

    fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.dbname)
            .user(&self.user)
            .application_name("cusip-loader")
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

fn rustls(cfg: &DbConfig) -> Result<MakeRustlsConnect, Error> {
    Ok(MakeRustlsConnect::new(tls::client_config(
        cfg.sslmode,
        cfg.sslrootcert.as_deref(),
    )?))
}

async fn connect_with<T>(
    cfg: &DbConfig,
    mode: PgSslMode,
    tls: T,
) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket> + 'static,
    T::Stream: Send + 'static,
{
    let mut c = cfg.pg_config();
    c.ssl_mode(mode);
    let (client, connection) = c.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("connection closed: {e}");
        }
    });
    Ok(client)
}

/// The server turned a plain connection away because its pg_hba.conf wants TLS.
fn wants_tls(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
        && chain(e).contains("no encryption")
}

/// Worth another try: the server is not there yet (refused, reset, starting up, full), as
/// during a failover. TLS and authentication failures are not.
fn transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(c) => *c == SqlState::CANNOT_CONNECT_NOW || *c == SqlState::TOO_MANY_CONNECTIONS,
        None => !chain(e).contains("TLS"),
    }
}

/// Opens a connection with `cfg.sslmode`'s meaning, retrying transient failures with
/// backoff for up to `cfg.connect_retry`.
pub async fn connect(cfg: &DbConfig) -> Result<Client, Error> {
    // Built once: a bad CA bundle is a configuration error, not worth a retry.
    let tls = rustls(cfg)?;
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut attempts = 1;
    loop {
        match connect_once(cfg, &tls).await {
            Err(e) if transient(&e) && start.elapsed() + delay <= cfg.connect_retry => {
                tracing::warn!(
                    attempt = attempts,
                    "cannot connect yet ({}); retrying in {:.1}s",
                    chain(&e),
                    delay.as_secs_f64()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                attempts += 1;
            }
            Err(e) => {
                let mut err = connect_error(cfg, &e);
                if let (Some(message), true) = (err.message_mut(), attempts > 1) {
                    message.push_str(&format!(
                        " (gave up after {attempts} attempts in {:.0}s)",
                        start.elapsed().as_secs_f64()
                    ));
                }
                return Err(err);
            }
            Ok(c) => return Ok(c),
        }
    }
}

async fn connect_once(
    cfg: &DbConfig,
    tls: &MakeRustlsConnect,
) -> Result<Client, tokio_postgres::Error> {
    match cfg.sslmode {
        SslMode::Disable => connect_with(cfg, PgSslMode::Disable, NoTls).await,
        SslMode::Allow => match connect_with(cfg, PgSslMode::Disable, NoTls).await {
            Err(e) if wants_tls(&e) => connect_with(cfg, PgSslMode::Require, tls.clone()).await,
            other => other,
        },
        SslMode::Prefer => connect_with(cfg, PgSslMode::Prefer, tls.clone()).await,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            connect_with(cfg, PgSslMode::Require, tls.clone()).await
        }
    }
}

/// Asks the server to cancel what `client` is running, over the same kind of connection.
pub async fn cancel(cfg: &DbConfig, client: &Client) {
    let token = client.cancel_token();
    let result = match (cfg.sslmode, rustls(cfg)) {
        (SslMode::Disable, _) | (_, Err(_)) => token.cancel_query(NoTls).await,
        (_, Ok(tls)) => token.cancel_query(tls).await,
    };
    if let Err(e) = result {
        tracing::debug!("cancel request failed: {e}");
    }
}

fn connect_error(cfg: &DbConfig, e: &tokio_postgres::Error) -> Error {
    let target = cfg.display_target();
    let text = chain(e);
    let host = &cfg.host;
    let (exit, hint) = if wants_tls(e) {
        (
            Exit::Config,
            " (the server requires TLS: its pg_hba.conf allows only hostssl; use --sslmode require, or \
             verify-full with --sslrootcert)"
                .to_string(),
        )
    } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        (
            Exit::Config,
            " (the server's certificate is not signed by a CA in --sslrootcert)".to_string(),
        )
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        (
            Exit::Config,
            format!(
                " (the server's certificate does not name the host {host:?}: connect by a name the \
                 certificate carries, or use --sslmode verify-ca)"
            ),
        )
    } else if text.contains("server does not support TLS") {
        (
            Exit::Config,
            format!(
                " (sslmode={} needs TLS, which this server does not offer)",
                cfg.sslmode
            ),
        )
    } else {
        match e.code() {
            Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                (Exit::NoPerm, " (check --user and the password: CUSIP_DB_PASSWORD)".to_string())
            }
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
                (Exit::Config, " (create the database, or set --dbname / CUSIP_DB_NAME)".to_string())
            }
            Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS || *c == SqlState::CANNOT_CONNECT_NOW => {
                (Exit::Unavailable, String::new())
            }
            Some(_) => (Exit::Software, String::new()),
            None => (
                Exit::Unavailable,
                " (is the server running and reachable? --host / CUSIP_DB_HOST, --port / CUSIP_DB_PORT)".to_string(),
            ),
        }
    };
    Error::with_exit(
        exit,
        format!(
            "cannot connect to {target} (sslmode={}): {text}{hint}",
            cfg.sslmode
        ),
    )
}

/// Refuses databases that are not UTF-8: under SQL_ASCII the server counts `varchar(n)` in
/// bytes and stores anything, so multibyte names at full width would fail or mean nothing.
pub async fn check_encoding(client: &Client) -> Result<(), Error> {
    let row = client
        .query_one("SHOW server_encoding", &[])
        .await
        .map_err(|e| fail("reading server_encoding", &e))?;
    let enc: String = row.get(0);
    if enc != "UTF8" {
        return Err(Error::Config(format!(
            "the database's encoding is {enc}; cusip-loader needs a UTF8 database \
             (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)"
        )));
    }
    Ok(())
}

/// The server could not write a file for want of space: a full disk (ENOSPC, or a short
/// write, is `53100 disk_full`), or a file-size limit on the server process (EFBIG: PostgreSQL
/// maps every errno but a few to `XX000 internal_error`, e.g. `could not extend file "…": File
/// too large`). It gives both its hint "Check free disk space." (md.c), which is what tells
/// this `XX000` from a real internal error. Under a translated `lc_messages` the hint is
/// translated too, and such an EFBIG stays a 70; `53100` is recognised by its code alone.
fn out_of_space(e: &tokio_postgres::Error) -> bool {
    let Some(db) = e.as_db_error() else {
        return false;
    };
    *db.code() == SqlState::DISK_FULL
        || (*db.code() == SqlState::INTERNAL_ERROR && db.hint() == Some("Check free disk space."))
}

/// The exit code a server-side failure deserves.
pub fn classify(e: &tokio_postgres::Error) -> Exit {
    if e.is_closed() {
        return Exit::TempFail;
    }
    // Out of space on the database server: the environment, not the data or a bug. The
    // transaction rolled back (nothing committed) and a rerun works once space is freed, like
    // the other class-53 resource shortages below; without this an EFBIG `XX000` exited 70.
    if out_of_space(e) {
        return Exit::TempFail;
    }
    let Some(code) = e.code() else {
        // No SQLSTATE: the socket broke or the protocol failed; the load did not happen.
        return Exit::TempFail;
    };
    let class = &code.code()[..2];
    match class {
        "08" | "53" | "57" | "40" => Exit::TempFail,
        "55" if *code == SqlState::LOCK_NOT_AVAILABLE => Exit::TempFail,
        "28" => Exit::NoPerm,
        "42" if *code == SqlState::INSUFFICIENT_PRIVILEGE => Exit::NoPerm,
        "42" if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN => {
            Exit::Config
        }
        "3D" | "3F" => Exit::Config,
        "22" | "23" => Exit::DataErr,
        _ => Exit::Software,
    }
}

/// Renders an error with its whole cause chain: SQLSTATE, message, detail, hint and context
/// for server errors, each underlying cause for client-side ones.
pub fn chain(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!("; detail: {d}"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        if let Some(w) = db.where_() {
            s.push_str(&format!("; context: {w}"));
        }
        if let Some(t) = db.table() {
            s.push_str(&format!("; table: {t}"));
        }
        if let Some(c) = db.constraint() {
            s.push_str(&format!("; constraint: {c}"));
        }
        return s;
    }
    crate::error::chain(e)
}

/// Wraps a server error that happened while doing `what`.
pub fn fail(what: &str, e: &tokio_postgres::Error) -> Error {
    let exit = classify(e);
    let mut message = format!("{what}: {}", chain(e));
    if exit == Exit::Config {
        message.push_str(
            " (has the schema been applied? run `cusip-loader --init-schema` as the owner)",
        );
    } else if out_of_space(e) {
        message.push_str(
            " (the database server is out of disk space or over a file-size limit; nothing was \
             committed: free space on the server, then rerun the load)",
        );
    } else if exit == Exit::TempFail && e.code().is_none() {
        message.push_str(
            " (the connection to the database was lost; nothing was committed, rerun the load)",
        );
    }
    Error::with_exit(exit, message)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        let shown = format!("{c:?} {}", c.display_target());
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }
}
