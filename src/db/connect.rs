//! Opening a connection: TLS with libpq's `sslmode` meanings, retries while the server is
//! not there yet (a failover), the session's first statement (its backend pid, the server's
//! side of `--net-timeout`), and a message that says what to change when it fails.
//!
//! The socket is the loader's own ([`super::socket`]), handed to tokio-postgres's
//! `connect_raw`, and a load's connection runs under the watchdog ([`super::watch`]).

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::socket::{self, Watched};
use super::{chain, fail, watch, DbConfig};
use crate::error::{Error, Exit};
use crate::tls::{self, SslMode};

/// Why an attempt to connect failed.
pub(super) enum Failure {
    /// The socket could not be opened (refused, unreachable, no such host).
    Socket(io::Error),
    /// TLS or the server said no (through tokio-postgres).
    Pg(tokio_postgres::Error),
    /// Nothing came back within the bound (`--connect-timeout`, or an errand's).
    TimedOut(Duration),
}

impl Failure {
    fn code(&self) -> Option<&SqlState> {
        match self {
            Failure::Pg(e) => e.code(),
            _ => None,
        }
    }

    /// The server itself answered (with an error): it is up and reachable.
    pub(super) fn answered(&self) -> bool {
        self.code().is_some()
    }

    pub(super) fn text(&self) -> String {
        match self {
            Failure::Socket(e) => format!("error connecting to server: {e}"),
            Failure::Pg(e) => chain(e),
            Failure::TimedOut(d) => format!(
                "error connecting to server: no answer within {} s",
                d.as_secs_f64()
            ),
        }
    }
}

/// What a session is for, which decides its name in `pg_stat_activity`, whether it runs
/// under the watchdog, and whether it gets the load's session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A load's connection (and the comparison's second one).
    Load,
    /// A short errand of a load, such as recording a failed attempt.
    Errand,
    /// The watchdog's liveness check: named apart, so nothing counting the loader's
    /// sessions counts it.
    Check,
}

impl Purpose {
    fn application_name(self) -> &'static str {
        match self {
            Purpose::Load | Purpose::Errand => "cusip-loader",
            Purpose::Check => "cusip-loader liveness check",
        }
    }
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
    mut tls: T,
    purpose: Purpose,
) -> Result<Client, Failure>
where
    T: MakeTlsConnect<Watched>,
    T::Stream: Send + 'static,
    T::Error: std::fmt::Display,
{
    let mut c = cfg.pg_config(purpose.application_name());
    c.ssl_mode(mode);
    let stream = socket::open(cfg).await.map_err(Failure::Socket)?;
    let progress = stream.progress();
    let tls = tls
        .make_tls_connect(&cfg.host)
        .map_err(|e| Failure::Socket(io::Error::other(format!("TLS: {e}"))))?;
    let (client, connection) = c.connect_raw(stream, tls).await.map_err(Failure::Pg)?;
    if purpose != Purpose::Load {
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection closed: {e}");
            }
        });
        return Ok(client);
    }
    let pid = Arc::new(AtomicI32::new(0));
    watch::spawn(connection, progress, cfg.clone(), pid.clone());
    pid.store(
        start_session(cfg, &client).await.map_err(Failure::Pg)?,
        Ordering::Relaxed,
    );
    Ok(client)
}

/// The session's first statement ([`DbConfig::session_sql`]): its backend pid, and the
/// server-side settings. A server that refuses one of them (`client_connection_check_interval`
/// on a platform without the check) still gets the pid asked alone.
async fn start_session(cfg: &DbConfig, client: &Client) -> Result<i32, tokio_postgres::Error> {
    let pid = |rows: Vec<SimpleQueryMessage>| {
        rows.iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
                _ => None,
            })
            .unwrap_or(0)
    };
    match client.simple_query(&cfg.session_sql()).await {
        Ok(rows) => Ok(pid(rows)),
        Err(e) if e.code().is_some() => {
            tracing::debug!("the server refused a session setting: {}", chain(&e));
            Ok(pid(client.simple_query("SELECT pg_backend_pid()").await?))
        }
        Err(e) => Err(e),
    }
}

/// The server turned a plain connection away because its pg_hba.conf wants TLS.
fn wants_tls(e: &Failure) -> bool {
    e.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
        && e.text().contains("no encryption")
}

/// Worth another try: the server is not there yet (refused, reset, starting up, full), as
/// during a failover. TLS and authentication failures are not.
fn transient(e: &Failure) -> bool {
    match e.code() {
        Some(c) => *c == SqlState::CANNOT_CONNECT_NOW || *c == SqlState::TOO_MANY_CONNECTIONS,
        None => {
            !e.text().contains("TLS")
                && !no_password(e)
                && !e.text().contains("invalid configuration")
        }
    }
}

/// With no password given any other way, libpq's password file (`PGPASSFILE`, else
/// `~/.pgpass`), as libpq would read it. Said once in the log (the file, never the value);
/// a file that is not private is ignored with a warning, as libpq ignores it.
fn password_from_file(cfg: &DbConfig) -> Option<String> {
    if cfg.password.is_some() {
        return None;
    }
    let file = std::env::var_os("PGPASSFILE")
        .filter(|f| !f.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    static SAID: std::sync::Once = std::sync::Once::new();
    match super::config::pgpass(cfg, &file) {
        Ok(Some(pw)) => {
            SAID.call_once(|| tracing::info!("password from {}", file.display()));
            Some(pw)
        }
        Ok(None) => None,
        Err(why) => {
            SAID.call_once(|| tracing::warn!("password file not used: {why}"));
            None
        }
    }
}

/// The server asked for a password and none was given: no retry can supply one.
fn no_password(e: &Failure) -> bool {
    e.text().contains("password missing")
}

/// Opens a connection with `cfg.sslmode`'s meaning, retrying transient failures with
/// backoff for up to `cfg.connect_retry`. Each attempt, from the socket to the session's
/// first statement, is bounded by `--connect-timeout`.
pub async fn connect(cfg: &DbConfig) -> Result<Client, Error> {
    let with_file;
    let cfg = match password_from_file(cfg) {
        Some(pw) => {
            with_file = DbConfig {
                password: Some(pw),
                ..cfg.clone()
            };
            &with_file
        }
        None => cfg,
    };
    // Built once: a bad CA bundle is a configuration error, not worth a retry.
    let tls = rustls(cfg)?;
    let start = std::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut attempts = 1;
    loop {
        match connect_once(cfg, &tls, Purpose::Load, cfg.connect_timeout).await {
            Err(e) if transient(&e) && start.elapsed() + delay <= cfg.connect_retry => {
                tracing::warn!(
                    attempt = attempts,
                    "cannot connect yet ({}); retrying in {:.1}s",
                    e.text(),
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

/// A load's second connection (the comparison's): watched like the first, but one attempt
/// within [`DbConfig::brief`], never the retries of `--connect-retry`, because the load's
/// transaction sits idle meanwhile, and an idle transaction is what the watchdog reads as a
/// lost answer. Refused, the comparison happens in the database instead.
pub async fn connect_second(cfg: &DbConfig) -> Result<Client, Error> {
    let tls = rustls(cfg)?;
    connect_once(cfg, &tls, Purpose::Load, cfg.brief())
        .await
        .map_err(|e| connect_error(cfg, &e))
}

/// One attempt, no retry, bounded by [`DbConfig::brief`]: for an errand of a load whose own
/// connection is gone (recording the failed attempt), which must not outlast the load.
pub async fn connect_briefly(cfg: &DbConfig) -> Result<Client, Error> {
    let tls = rustls(cfg)?;
    connect_once(cfg, &tls, Purpose::Errand, cfg.brief())
        .await
        .map_err(|e| connect_error(cfg, &e))
}

/// The watchdog's fresh connection, bounded by [`DbConfig::brief`].
pub(super) async fn connect_check(cfg: &DbConfig) -> Result<Client, Failure> {
    let tls = rustls(cfg).map_err(|e| Failure::Socket(io::Error::other(e.to_string())))?;
    connect_once(cfg, &tls, Purpose::Check, cfg.brief()).await
}

/// The TLS connector, with the protocol counted above TLS ([`socket::Counting`]). `NoTls`
/// needs no such wrapper (the socket counts), and must not get one: it tells tokio-postgres
/// it cannot do TLS, which the wrapper could not pass on.
fn counting(tls: &MakeRustlsConnect) -> socket::Counting<MakeRustlsConnect> {
    socket::Counting(tls.clone())
}

async fn connect_once(
    cfg: &DbConfig,
    tls: &MakeRustlsConnect,
    purpose: Purpose,
    within: Duration,
) -> Result<Client, Failure> {
    let attempt = async {
        match cfg.sslmode {
            SslMode::Disable => connect_with(cfg, PgSslMode::Disable, NoTls, purpose).await,
            SslMode::Allow => match connect_with(cfg, PgSslMode::Disable, NoTls, purpose).await {
                Err(e) if wants_tls(&e) => {
                    connect_with(cfg, PgSslMode::Require, counting(tls), purpose).await
                }
                other => other,
            },
            SslMode::Prefer => connect_with(cfg, PgSslMode::Prefer, counting(tls), purpose).await,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                connect_with(cfg, PgSslMode::Require, counting(tls), purpose).await
            }
        }
    };
    if within.is_zero() {
        return attempt.await;
    }
    tokio::time::timeout(within, attempt)
        .await
        .unwrap_or(Err(Failure::TimedOut(within)))
}

/// Asks the server to cancel what `client` is running, over a socket of the same kind.
pub async fn cancel(cfg: &DbConfig, client: &Client) {
    let token = client.cancel_token();
    let socket = match socket::open(cfg).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("cancel request failed: {e}");
            return;
        }
    };
    let result = match (cfg.sslmode, rustls(cfg)) {
        (SslMode::Disable, _) | (_, Err(_)) => token.cancel_query_raw(socket, NoTls).await,
        (_, Ok(mut tls)) => {
            match MakeTlsConnect::<Watched>::make_tls_connect(&mut tls, &cfg.host) {
                Ok(t) => token.cancel_query_raw(socket, t).await,
                Err(never) => match never {},
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!("cancel request failed: {e}");
    }
}

fn connect_error(cfg: &DbConfig, e: &Failure) -> Error {
    let target = cfg.display_target();
    let text = e.text();
    let host = &cfg.host;
    let (exit, hint) = if no_password(e) {
        (
            Exit::NoPerm,
            format!(
                " (the server asks {} for a password and none was given: set CUSIP_DB_PASSWORD, \
                 give --db-secret-arn (Secrets Manager), put it in --database-url, or in a \
                 password file (~/.pgpass or PGPASSFILE, mode 0600))",
                cfg.user
            ),
        )
    } else if wants_tls(e) {
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
