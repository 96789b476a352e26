//! How a server's failure becomes an exit code and a message: by SQLSTATE class, so that a
//! scheduler can tell the data (65) from the environment (75) from the configuration (78).

use tokio_postgres::error::SqlState;

use crate::error::{Error, Exit};

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
        match super::watch::lost() {
            // Given up as dead: say so, and where, instead of a bare "connection closed".
            Some(why) => {
                message = format!("{what}: {why}; nothing was committed, and a rerun is safe")
            }
            None => message.push_str(
                " (the connection to the database was lost; nothing was committed, rerun the load)",
            ),
        }
    }
    Error::with_exit(exit, message)
}

/// Wraps a failure of the load's `COMMIT`. When the connection was lost on it (a path that
/// died mid-commit), nobody can say from here whether the server committed before its answer
/// was lost: the message says so, instead of "nothing was committed". The rerun is safe
/// either way, since a file that loaded is skipped.
pub fn fail_commit(e: &tokio_postgres::Error) -> Error {
    if classify(e) != Exit::TempFail || e.code().is_some() || out_of_space(e) {
        return fail("committing", e);
    }
    let why = super::watch::lost()
        .unwrap_or_else(|| format!("{} (the connection to the database was lost)", chain(e)));
    Error::with_exit(
        Exit::TempFail,
        format!(
            "committing: {why}; the commit may have landed before its answer was lost \
             (load_journal shows whether it did), and a rerun is safe: a file that loaded is \
             skipped"
        ),
    )
}

/// The error means the connection itself is gone (closed, broken, or ended by the server),
/// as opposed to a statement the server refused on a connection that still works.
pub fn lost_connection(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || e.code().is_none()
        || e.code().is_some_and(|c| {
            matches!(&c.code()[..2], "08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
        })
}
