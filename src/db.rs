//! Connection settings in one place, and how server errors become exit codes.
//!
//! Later sources of settings (a connection URL, Secrets Manager, TLS) fill the same
//! `DbConfig`, so nothing else in the loader needs to know where the settings came from.

use std::fmt;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::error::{Error, Exit};

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
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

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
            .connect_timeout(self.connect_timeout);
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }
}

/// Opens a connection and drives it on the runtime.
pub async fn connect(cfg: &DbConfig) -> Result<Client, Error> {
    let (client, connection) = cfg.pg_config().connect(NoTls).await.map_err(|e| {
        let target = cfg.display_target();
        let (exit, hint) = match e.code() {
            Some(c) if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                (Exit::NoPerm, " (check --user and the password: CUSIP_DB_PASSWORD)")
            }
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
                (Exit::Config, " (create the database, or set --dbname / CUSIP_DB_NAME)")
            }
            Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS || *c == SqlState::CANNOT_CONNECT_NOW => {
                (Exit::Unavailable, "")
            }
            Some(_) => (Exit::Software, ""),
            None => (Exit::Unavailable, " (is the server running and reachable? --host / CUSIP_DB_HOST, --port / CUSIP_DB_PORT)"),
        };
        Error::Db { message: format!("cannot connect to {target}: {}{hint}", chain(&e)), exit }
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("connection closed: {e}");
        }
    });
    Ok(client)
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

/// The exit code a server-side failure deserves.
pub fn classify(e: &tokio_postgres::Error) -> Exit {
    if e.is_closed() {
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
    } else if exit == Exit::TempFail && e.code().is_none() {
        message.push_str(
            " (the connection to the database was lost; nothing was committed, rerun the load)",
        );
    }
    Error::Db { message, exit }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let c = DbConfig {
            host: "h".into(),
            port: 5432,
            dbname: "d".into(),
            user: "u".into(),
            password: Some("s3cret-pw".into()),
            connect_timeout: Duration::from_secs(1),
        };
        let shown = format!("{c:?} {}", c.display_target());
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }
}
