//! The load journal: one row per attempt, and the rule that skips a file already loaded.
//!
//! A successful load's row is written in the load's own transaction, so the data and the
//! record of it commit together; a failed or interrupted attempt is recorded afterwards in a
//! transaction of its own, because the load's has rolled back.

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, GenericClient};

use crate::db::{self, DbConfig};
use crate::error::Error;
use crate::report::{FileReport, Status};

/// One journal row.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub file: &'a str,
    pub source: &'a str,
    pub file_type: &'a str,
    pub bytes: u64,
    pub fingerprint: Option<&'a str>,
    pub records: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub repeated: u64,
    pub status: Status,
    pub error: Option<&'a str>,
}

impl<'a> Entry<'a> {
    /// The row for the attempt a report describes.
    pub fn of(r: &'a FileReport) -> Entry<'a> {
        Entry {
            file: &r.file,
            source: &r.source,
            file_type: r.file_type,
            bytes: r.bytes,
            fingerprint: r.fingerprint.as_deref(),
            records: r.records,
            inserted: r.inserted,
            updated: r.updated,
            unchanged: r.unchanged,
            repeated: r.repeated,
            status: r.status,
            error: r.error.as_deref(),
        }
    }
}

/// Whether this exact source and identity already loaded successfully.
pub async fn already_loaded(
    client: &impl GenericClient,
    source: &str,
    fingerprint: &str,
) -> Result<bool, Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM load_journal WHERE source = $1 AND fingerprint = $2 AND status = 'loaded')",
            &[&source, &fingerprint],
        )
        .await
        .map_err(|e| db::fail("reading the load journal", &e))?;
    Ok(row.get(0))
}

/// Writes the journal row for this attempt (inside the load's transaction on success).
pub async fn write(
    c: &impl GenericClient,
    e: &Entry<'_>,
    started: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    let status = match e.status {
        Status::Loaded => "loaded",
        Status::Interrupted => "interrupted",
        Status::AlreadyLoaded => "already loaded",
        _ => "failed",
    };
    let n = |v: u64| v as i64;
    c.execute(
        "INSERT INTO load_journal (file_name, source, file_type, bytes, fingerprint, started_at, finished_at, \
         records_read, inserted, updated, unchanged, repeated_keys, status, error, loader_version) \
         VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp(), $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &e.file,
            &e.source,
            &e.file_type,
            &n(e.bytes),
            &e.fingerprint,
            &started,
            &n(e.records),
            &n(e.inserted),
            &n(e.updated),
            &n(e.unchanged),
            &n(e.repeated),
            &status,
            &e.error,
            &env!("CARGO_PKG_VERSION"),
        ],
    )
    .await
    .map(|_| ())
}

/// Records a failed attempt: on the load's connection while it works, else on a new one of
/// `cfg`, bounded by [`DbConfig::brief`] (the load's connection may be gone exactly because
/// the path to the server is). The error says why it could not be recorded.
pub async fn failed(
    client: &Client,
    cfg: Option<&DbConfig>,
    report: &FileReport,
    started: DateTime<Utc>,
) -> Result<(), String> {
    if !client.is_closed() {
        match write(client, &Entry::of(report), started).await {
            Ok(()) => return Ok(()),
            Err(e) if !db::lost_connection(&e) => return Err(db::chain(&e)),
            Err(_) => {}
        }
    }
    elsewhere(cfg, report, started).await
}

/// Writes the attempt's row on a new connection, within [`DbConfig::brief`].
async fn elsewhere(
    cfg: Option<&DbConfig>,
    report: &FileReport,
    started: DateTime<Utc>,
) -> Result<(), String> {
    let Some(cfg) = cfg else {
        return Err("the load's connection is gone".into());
    };
    let within = cfg.brief();
    let attempt = async {
        let c = db::connect_briefly(cfg).await.map_err(|e| e.to_string())?;
        write(&c, &Entry::of(report), started)
            .await
            .map_err(|e| db::chain(&e))
    };
    match tokio::time::timeout(within, attempt).await {
        Ok(Ok(())) => {
            tracing::info!("recorded the attempt in load_journal on a new connection");
            Ok(())
        }
        Ok(Err(e)) => Err(format!(
            "the load's connection is gone, and a new one failed: {e}"
        )),
        Err(_) => Err(format!(
            "the load's connection is gone, and a new one did not answer within {} s",
            within.as_secs_f64()
        )),
    }
}

/// Records an interrupted attempt, best effort, once the load future has been dropped.
///
/// The cancel request sent just before travels on its own connection and may land on this
/// INSERT instead of the statement it was meant for; a cancelled write is simply retried.
/// When the load's connection is gone, it is recorded on a new one of `cfg`, as a failure is.
pub async fn interrupted(
    client: &Client,
    cfg: Option<&DbConfig>,
    report: &FileReport,
    started: DateTime<Utc>,
) {
    for _ in 0..5 {
        match write(client, &Entry::of(report), started).await {
            Ok(()) => return,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) if db::lost_connection(&e) => {
                if let Err(why) = elsewhere(cfg, report, started).await {
                    tracing::warn!(
                        "could not record the interrupted attempt in load_journal: {why}"
                    );
                }
                return;
            }
            Err(e) => {
                tracing::warn!(
                    "could not record the interrupted attempt in load_journal: {}",
                    db::chain(&e)
                );
                return;
            }
        }
    }
}
