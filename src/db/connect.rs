//! Opening a connection: TLS with libpq's `sslmode` meanings, retries while the server is
//! not there yet (a failover), and a message that says what to change when it fails.

use std::time::Duration;

use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{chain, fail, DbConfig};
use crate::error::{Error, Exit};
use crate::tls::{self, SslMode};

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
