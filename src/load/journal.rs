//! The load journal: one row per attempt, and the rules that decide, across days, whether a
//! file loads.
//!
//! The journal decides, not the source: a file is known by its content (sha256, read from a
//! local file or computed while an S3 object streams in) and, before an S3 object is read,
//! by its ETag. A file that is its table's newest successful load is skipped; one dated
//! before the newest business date loaded into its table is refused unless forced (or
//! skipped, when that exact content loaded before: rerunning a range writes nothing). The
//! newest load is the last one made, not the latest date: after a forced repair of an older
//! day, the next day's file loads again.
//!
//! A successful load's row is written in the load's own transaction, so the data and the
//! record of it commit together; a failed or interrupted attempt is recorded afterwards in a
//! transaction of its own, because the load's has rolled back.

use chrono::{DateTime, NaiveDate, Utc};
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
    pub sha256: Option<&'a str>,
    pub business_date: Option<NaiveDate>,
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
            sha256: r.sha256.as_deref(),
            business_date: r.business_date,
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

/// What the journal says about a file, before (and, for S3, again after) reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Load,
    /// Already loaded: `superseded` names the newer business date when the content loaded
    /// before but a later day has loaded since.
    Skip {
        superseded: Option<NaiveDate>,
    },
    /// Dated before `newest`, the latest business date loaded into the table, and never
    /// loaded: refused unless forced.
    Older {
        newest: NaiveDate,
    },
}

/// A file as the journal knows it: its content hash when known, its fingerprint (ETag or
/// sha256), its business date.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub fingerprint: &'a str,
    pub sha256: Option<&'a str>,
    pub business_date: Option<NaiveDate>,
}

/// The rerun rule, read under the table's load lock so that two loaders started together
/// agree. Rows older loaders wrote (no sha256, no business date) still count: a local file's
/// fingerprint was its sha256, an S3 object's its ETag.
pub async fn verdict(
    client: &impl GenericClient,
    file_type: &str,
    id: Identity<'_>,
) -> Result<Verdict, Error> {
    let fail = |e: &tokio_postgres::Error| db::fail("reading the load journal", e);
    let same = "(fingerprint = $2 OR fingerprint = $3 OR sha256 = $2 OR sha256 = $3)";
    let sha = id.sha256.unwrap_or(id.fingerprint);
    let row = client
        .query_one(
            &format!(
                "SELECT \
                   (SELECT {same} FROM load_journal WHERE file_type = $1 AND status = 'loaded' \
                     ORDER BY id DESC LIMIT 1), \
                   (SELECT max(business_date) FROM load_journal WHERE file_type = $1 AND status = 'loaded'), \
                   EXISTS (SELECT 1 FROM load_journal WHERE file_type = $1 AND status = 'loaded' AND {same})"
            ),
            &[&file_type, &id.fingerprint, &sha],
        )
        .await
        .map_err(|e| fail(&e))?;
    let is_newest: Option<bool> = row.get(0);
    let newest_date: Option<NaiveDate> = row.get(1);
    let seen: bool = row.get(2);
    Ok(rule(
        is_newest == Some(true),
        seen,
        id.business_date,
        newest_date,
    ))
}

/// What the rerun rule needs to know of a table's past loads before a local file's content
/// hash is known: the newest successful load's identifiers, and the latest business date
/// loaded. Read under the load lock, it stays true until this load commits.
#[derive(Debug, Clone, Default)]
pub struct Newest {
    /// Fingerprint and sha256 of the newest successful load (either may be absent).
    content: Vec<String>,
    date: Option<NaiveDate>,
}

impl Newest {
    /// The verdict for a file of content `sha` dated `date`, when these facts decide it:
    /// always, except for a file dated before the newest day that is not the newest load,
    /// which is skipped or refused by whether its content ever loaded ([`verdict`] asks).
    pub fn verdict(&self, sha: &str, date: Option<NaiveDate>) -> Option<Verdict> {
        let is_newest = self.content.iter().any(|c| c == sha);
        if !is_newest && !self.decides(date) {
            return None;
        }
        Some(rule(is_newest, false, date, self.date))
    }

    /// Whether [`Newest::verdict`] will decide for a file dated `date`, whatever its content.
    pub fn decides(&self, date: Option<NaiveDate>) -> bool {
        !matches!((date, self.date), (Some(d), Some(n)) if d < n)
    }
}

/// Reads [`Newest`] for a table's file type.
pub async fn newest(client: &impl GenericClient, file_type: &str) -> Result<Newest, Error> {
    let row = client
        .query_one(
            "SELECT \
               (SELECT ARRAY[fingerprint, sha256] FROM load_journal \
                 WHERE file_type = $1 AND status = 'loaded' ORDER BY id DESC LIMIT 1), \
               (SELECT max(business_date) FROM load_journal WHERE file_type = $1 AND status = 'loaded')",
            &[&file_type],
        )
        .await
        .map_err(|e| db::fail("reading the load journal", &e))?;
    let content: Option<Vec<Option<String>>> = row.get(0);
    Ok(Newest {
        content: content.into_iter().flatten().flatten().collect(),
        date: row.get(1),
    })
}

/// The rule itself, apart from the query.
fn rule(
    is_newest: bool,
    seen: bool,
    date: Option<NaiveDate>,
    newest: Option<NaiveDate>,
) -> Verdict {
    if is_newest {
        return Verdict::Skip { superseded: None };
    }
    match (date, newest) {
        (Some(d), Some(n)) if d < n && seen => Verdict::Skip {
            superseded: Some(n),
        },
        (Some(d), Some(n)) if d < n => Verdict::Older { newest: n },
        _ => Verdict::Load,
    }
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
         records_read, inserted, updated, unchanged, repeated_keys, status, error, loader_version, \
         business_date, sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp(), $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
            &e.business_date,
            &e.sha256,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
    }

    /// [`Newest::verdict`] gives what [`rule`] gives for every case it decides, and leaves
    /// to the full query exactly the case that needs to know whether the content ever loaded.
    #[test]
    fn the_newest_load_alone_decides_all_but_an_older_file() {
        let dates = [None, d("2024-01-15"), d("2024-01-16"), d("2024-01-17")];
        for newest_date in dates {
            for content in [
                vec![],
                vec!["aa".to_string()],
                vec!["x".into(), "aa".into()],
            ] {
                let n = Newest {
                    content,
                    date: newest_date,
                };
                for date in dates {
                    for sha in ["aa", "bb"] {
                        let is_newest = n.content.iter().any(|c| c == sha);
                        let older = matches!((date, newest_date), (Some(a), Some(b)) if a < b);
                        assert_eq!(n.decides(date), !older);
                        match n.verdict(sha, date) {
                            None => assert!(older && !is_newest, "{n:?} {sha} {date:?}"),
                            Some(v) => {
                                for seen in [false, true] {
                                    if seen || !is_newest {
                                        assert_eq!(
                                            v,
                                            rule(is_newest, seen, date, newest_date),
                                            "{n:?} {sha} {date:?} seen {seen}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_newest_load_is_skipped_whatever_its_date() {
        assert_eq!(
            rule(true, true, d("2024-01-15"), d("2024-01-16")),
            Verdict::Skip { superseded: None }
        );
        assert_eq!(
            rule(true, true, None, None),
            Verdict::Skip { superseded: None }
        );
    }

    #[test]
    fn an_older_date_is_refused_unless_that_content_loaded_before() {
        assert_eq!(
            rule(false, false, d("2024-01-15"), d("2024-01-16")),
            Verdict::Older {
                newest: d("2024-01-16").unwrap()
            }
        );
        assert_eq!(
            rule(false, true, d("2024-01-15"), d("2024-01-16")),
            Verdict::Skip {
                superseded: d("2024-01-16")
            }
        );
    }

    #[test]
    fn the_same_or_a_later_date_loads_unless_it_is_the_newest_load() {
        // After a forced repair of 01-15, 01-16 (loaded before) loads again.
        assert_eq!(
            rule(false, true, d("2024-01-16"), d("2024-01-16")),
            Verdict::Load
        );
        // A re-delivery of the newest date with new content.
        assert_eq!(
            rule(false, false, d("2024-01-16"), d("2024-01-16")),
            Verdict::Load
        );
        assert_eq!(
            rule(false, false, d("2024-01-17"), d("2024-01-16")),
            Verdict::Load
        );
        // No date known on either side: only the newest-load rule applies.
        assert_eq!(rule(false, true, None, d("2024-01-16")), Verdict::Load);
        assert_eq!(rule(false, false, d("2024-01-15"), None), Verdict::Load);
    }
}
