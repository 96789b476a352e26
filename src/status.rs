//! `--status`: what has been loaded, per table, as the journal tells it.
//!
//! An operator deciding whether to rerun a date, or a person answering "is yesterday in?",
//! should not need SQL against `load_journal`. This reads that table and nothing else, in a
//! read-only transaction, so it needs only SELECT on it, is safe while a load runs (it sees
//! what has been committed) and cannot change anything.
//!
//! The newest load is the highest id with status `loaded`: ids are the order the loads
//! committed in. Missed days are judged by `business_date`: a day is filled by a `loaded`
//! row, or by an `already loaded` one (its file's content is what the table already holds,
//! so nothing is missing). Rows an older loader wrote have no date and fill no day.

use std::collections::BTreeSet;
use std::io::{self, Write};

use chrono::{DateTime, Datelike, Local, NaiveDate, Utc, Weekday};
use serde::Serialize;
use tokio_postgres::{Client, Transaction};

use crate::cli::OutputFormat;
use crate::db;
use crate::error::{Error, Exit};
use crate::layout::FileType;
use crate::plan::Plan;
use crate::secret;

/// How many business days back a missed day is looked for: two weeks, enough to see a
/// scheduler that stopped, short enough that the list stays readable.
pub const WINDOW: usize = 10;

/// A table's newest successful load.
#[derive(Debug, Clone, Serialize)]
pub struct Loaded {
    pub file: String,
    pub source: String,
    pub business_date: Option<NaiveDate>,
    /// When the load committed (`finished_at`).
    pub loaded_at: Option<DateTime<Utc>>,
    pub records: Option<i64>,
    pub inserted: Option<i64>,
    pub updated: Option<i64>,
    pub unchanged: Option<i64>,
}

/// The last failed or interrupted attempt on a table after its newest load.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub file: String,
    pub source: String,
    /// `failed` or `interrupted`.
    pub status: String,
    pub business_date: Option<NaiveDate>,
    /// When the attempt ended (or started, if it never recorded an end).
    pub at: DateTime<Utc>,
    /// The first line of its error: the rest (each rejected value) is in the journal.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub table: &'static str,
    /// The journal's `file_type`: issuer, issue or issue_attr.
    #[serde(rename = "type")]
    pub file_type: &'static str,
    /// `None`: never loaded.
    pub last_loaded: Option<Loaded>,
    pub failed_since: Option<Failure>,
    /// The business days of the window with no successful load of this table, oldest first.
    pub days_without_load: Vec<NaiveDate>,
}

/// What `--status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub exit_code: i32,
    /// The last day looked at: `--date`, else today in `TZ`.
    pub today: NaiveDate,
    /// The business days looked at (Monday to Friday), oldest first.
    pub business_days: Vec<NaiveDate>,
    /// issuer, issue, issue_attribute, in load order.
    pub tables: Vec<TableStatus>,
    pub error: Option<String>,
}

/// The last `n` business days (Monday to Friday) up to and including `today`, oldest first.
/// Holidays are not known here: a holiday with no files shows as a day without a load.
pub fn business_days(today: NaiveDate, n: usize) -> Vec<NaiveDate> {
    let mut days = Vec::with_capacity(n);
    let mut day = Some(today);
    while let Some(d) = day.filter(|_| days.len() < n) {
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            days.push(d);
        }
        day = d.pred_opt();
    }
    days.reverse();
    days
}

/// The days of `window` that are not in `loaded`.
pub fn missed(window: &[NaiveDate], loaded: &BTreeSet<NaiveDate>) -> Vec<NaiveDate> {
    window
        .iter()
        .filter(|d| !loaded.contains(d))
        .copied()
        .collect()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Reads the journal; every failure becomes the report's error and exit code.
pub async fn run(plan: &Plan, today: NaiveDate) -> Report {
    let days = business_days(today, WINDOW);
    let (tables, error) = match read(plan, &days).await {
        Ok(t) => (t, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let exit = error.as_ref().map_or(Exit::Ok, Error::exit);
    Report {
        ok: exit == Exit::Ok,
        exit_code: exit.code(),
        today,
        business_days: days,
        tables,
        error: error.map(|e| e.to_string()),
    }
}

/// Connects exactly as a load does: the settings, the secret over them, TLS, the encoding.
async fn connect(plan: &Plan) -> Result<Client, Error> {
    let mut cfg = plan.db.clone();
    if let Some((arn, region)) = &plan.secret {
        secret::apply(&mut cfg, arn, region.clone()).await?;
    }
    tracing::info!(target = %cfg.display_target(), "connecting");
    let client = db::connect(&cfg).await?;
    db::check_encoding(&client).await?;
    Ok(client)
}

/// A failure reading the journal; 77 says which grant is missing.
fn failed(e: &tokio_postgres::Error) -> Error {
    let mut err = db::fail("--status: reading load_journal", e);
    if err.exit() == Exit::NoPerm {
        if let Some(m) = err.message_mut() {
            m.push_str(
                " (--status needs SELECT on load_journal: GRANT SELECT ON load_journal TO the role)",
            );
        }
    }
    err
}

async fn read(plan: &Plan, days: &[NaiveDate]) -> Result<Vec<TableStatus>, Error> {
    let mut client = connect(plan).await?;
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(|e| failed(&e))?;
    journal_is_current(&tx).await?;
    let mut tables = Vec::new();
    for t in FileType::ALL {
        tables.push(table(&tx, t, days).await?);
    }
    // Read-only: ending it either way changes nothing.
    let _ = tx.rollback().await;
    Ok(tables)
}

/// Refuses (78) a database without the journal, or with one an older loader made (no
/// business dates): the fix is the same, `--init-schema`.
async fn journal_is_current(tx: &Transaction<'_>) -> Result<(), Error> {
    let row = tx
        .query_one(
            "SELECT to_regclass('load_journal') IS NOT NULL, \
                    EXISTS (SELECT 1 FROM pg_attribute \
                             WHERE attrelid = to_regclass('load_journal') \
                               AND attname = 'business_date' AND attnum > 0 AND NOT attisdropped)",
            &[],
        )
        .await
        .map_err(|e| failed(&e))?;
    let (journal, dated): (bool, bool) = (row.get(0), row.get(1));
    if !journal {
        return Err(Error::Config(
            "--status: this database has no load_journal (in its search_path): the schema was \
             never applied, or this is not the loader's database. Run `cusip-loader \
             --init-schema` as the schema owner, or check --dbname / CUSIP_DB_NAME"
                .into(),
        ));
    }
    if !dated {
        return Err(Error::Config(
            "--status: load_journal has no business_date column: an older cusip-loader made \
             it. Run `cusip-loader --init-schema` as the schema owner to add it (nothing else \
             changes)"
                .into(),
        ));
    }
    Ok(())
}

async fn table(
    tx: &Transaction<'_>,
    t: FileType,
    days: &[NaiveDate],
) -> Result<TableStatus, Error> {
    let file_type = t.name();
    let newest = tx
        .query_opt(
            "SELECT id, file_name, source, business_date, finished_at, records_read, inserted, \
                    updated, unchanged \
               FROM load_journal WHERE file_type = $1 AND status = 'loaded' \
              ORDER BY id DESC LIMIT 1",
            &[&file_type],
        )
        .await
        .map_err(|e| failed(&e))?;
    let since: i64 = newest.as_ref().map_or(0, |r| r.get(0));
    let last_loaded = newest.map(|r| Loaded {
        file: r.get(1),
        source: r.get(2),
        business_date: r.get(3),
        loaded_at: r.get(4),
        records: r.get(5),
        inserted: r.get(6),
        updated: r.get(7),
        unchanged: r.get(8),
    });
    let failed_since = tx
        .query_opt(
            "SELECT file_name, source, status, business_date, coalesce(finished_at, started_at), \
                    error \
               FROM load_journal \
              WHERE file_type = $1 AND status IN ('failed', 'interrupted') AND id > $2 \
              ORDER BY id DESC LIMIT 1",
            &[&file_type, &since],
        )
        .await
        .map_err(|e| failed(&e))?
        .map(|r| Failure {
            file: r.get(0),
            source: r.get(1),
            status: r.get(2),
            business_date: r.get(3),
            at: r.get(4),
            error: r.get::<_, Option<String>>(5).map(|e| first_line(&e)),
        });
    let loaded: BTreeSet<NaiveDate> = match (days.first(), days.last()) {
        (Some(from), Some(to)) => tx
            .query(
                "SELECT DISTINCT business_date FROM load_journal \
                  WHERE file_type = $1 AND status IN ('loaded', 'already loaded') \
                    AND business_date BETWEEN $2 AND $3",
                &[&file_type, from, to],
            )
            .await
            .map_err(|e| failed(&e))?
            .iter()
            .map(|r| r.get(0))
            .collect(),
        _ => BTreeSet::new(),
    };
    Ok(TableStatus {
        table: t.layout().table,
        file_type,
        last_loaded,
        failed_since,
        days_without_load: missed(days, &loaded),
    })
}

/// A time as the operator's clock shows it (`TZ`), with its offset so that it is never
/// ambiguous.
fn local(t: &DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

fn dates(d: &[NaiveDate]) -> String {
    d.iter()
        .map(NaiveDate::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report {
    pub fn write(&self, format: OutputFormat, out: &mut dyn Write) -> io::Result<()> {
        match format {
            OutputFormat::Json => {
                serde_json::to_writer_pretty(&mut *out, self)?;
                writeln!(out)
            }
            OutputFormat::Table => self.write_table(out),
        }
    }

    fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(e) = &self.error {
            return writeln!(out, "error: {}", first_line(e));
        }
        let head = [
            "TABLE",
            "NEWEST LOAD",
            "BUSINESS DATE",
            "LOADED AT",
            "RECORDS",
            "INSERTED",
            "UPDATED",
            "UNCHANGED",
        ];
        let n = |v: Option<i64>| v.map_or("-".into(), |v| v.to_string());
        let rows: Vec<Vec<String>> = self
            .tables
            .iter()
            .map(|t| match &t.last_loaded {
                None => vec![t.table.to_string(), "never loaded".into()],
                Some(l) => vec![
                    t.table.to_string(),
                    l.file.clone(),
                    l.business_date.map_or("-".into(), |d| d.to_string()),
                    l.loaded_at.as_ref().map_or("-".into(), local),
                    n(l.records),
                    n(l.inserted),
                    n(l.updated),
                    n(l.unchanged),
                ],
            })
            .collect();
        let mut width = head.map(str::len);
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(width).enumerate() {
                // Names and dates left-aligned, counts right-aligned.
                if i < 4 {
                    s.push_str(&format!("{c:<w$}  "));
                } else {
                    s.push_str(&format!("{c:>w$}  "));
                }
            }
            s.trim_end().to_string()
        };
        writeln!(out, "{}", line(&head.map(String::from)))?;
        for r in &rows {
            writeln!(out, "{}", line(r))?;
        }
        let span = match (self.business_days.first(), self.business_days.last()) {
            (Some(a), Some(b)) => format!("{a} to {b}"),
            _ => String::new(),
        };
        for t in &self.tables {
            if let Some(f) = &t.failed_since {
                let what = if f.status == "interrupted" {
                    "INTERRUPTED"
                } else {
                    "FAILED"
                };
                let date = f.business_date.map_or(String::new(), |d| format!(" ({d})"));
                let error = f
                    .error
                    .as_deref()
                    .map_or(String::new(), |e| format!(": {e}"));
                writeln!(
                    out,
                    "{}: {what} since the newest load: {}{date} at {}{error}",
                    t.table,
                    f.file,
                    local(&f.at)
                )?;
            }
        }
        for t in &self.tables {
            let missed = &t.days_without_load;
            let undated = t
                .last_loaded
                .as_ref()
                .is_some_and(|l| l.business_date.is_none());
            let note = if undated {
                " (its newest load has no business date: an older loader wrote it)"
            } else {
                ""
            };
            if missed.is_empty() {
                writeln!(
                    out,
                    "{}: loaded for each of the last {} business days ({span})",
                    t.table,
                    self.business_days.len()
                )?;
            } else {
                writeln!(
                    out,
                    "{}: no load for {} of the last {} business days ({span}): {}{note}",
                    t.table,
                    missed.len(),
                    self.business_days.len(),
                    dates(missed)
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn business_days_skip_weekends_and_end_today() {
        // Tuesday 2024-01-16: back over the weekend of the 13th and 14th and the one before.
        let days = business_days(d("2024-01-16"), 10);
        assert_eq!(days.len(), 10);
        assert_eq!(days.first(), Some(&d("2024-01-03")));
        assert_eq!(days.last(), Some(&d("2024-01-16")));
        assert!(!days.contains(&d("2024-01-13")) && !days.contains(&d("2024-01-14")));
        // A Sunday ends at the Friday before.
        assert_eq!(
            business_days(d("2024-01-14"), 2),
            vec![d("2024-01-11"), d("2024-01-12")]
        );
        assert!(business_days(d("2024-01-14"), 0).is_empty());
    }

    #[test]
    fn missed_days_are_the_window_less_the_loaded_ones() {
        let window = business_days(d("2024-01-16"), 4);
        let loaded: BTreeSet<NaiveDate> = [d("2024-01-11"), d("2024-01-16"), d("2023-12-01")]
            .into_iter()
            .collect();
        assert_eq!(
            missed(&window, &loaded),
            vec![d("2024-01-12"), d("2024-01-15")]
        );
    }

    fn report() -> Report {
        let at: DateTime<Utc> = "2024-01-16T23:00:00Z".parse().unwrap();
        let days = business_days(d("2024-01-16"), 10);
        Report {
            ok: true,
            exit_code: 0,
            today: d("2024-01-16"),
            business_days: days.clone(),
            tables: vec![
                TableStatus {
                    table: "issuer",
                    file_type: "issuer",
                    last_loaded: Some(Loaded {
                        file: "CED01-16R.PIP".into(),
                        source: "/d/CED01-16R.PIP".into(),
                        business_date: Some(d("2024-01-16")),
                        loaded_at: Some(at),
                        records: Some(300),
                        inserted: Some(12),
                        updated: Some(30),
                        unchanged: Some(258),
                    }),
                    failed_since: Some(Failure {
                        file: "CED01-17R.PIP".into(),
                        source: "/d/CED01-17R.PIP".into(),
                        status: "failed".into(),
                        business_date: Some(d("2024-01-17")),
                        at,
                        error: Some("CED01-17R.PIP: rejected".into()),
                    }),
                    days_without_load: vec![d("2024-01-15")],
                },
                TableStatus {
                    table: "issue_attribute",
                    file_type: "issue_attr",
                    last_loaded: None,
                    failed_since: None,
                    days_without_load: days,
                },
            ],
            error: None,
        }
    }

    #[test]
    fn the_table_says_what_is_loaded_what_failed_since_and_what_is_missing() {
        let mut out = Vec::new();
        report().write(OutputFormat::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("TABLE") && lines[0].ends_with("UNCHANGED"),
            "{text}"
        );
        assert!(lines[1].starts_with("issuer "), "{text}");
        assert!(lines[1].contains("CED01-16R.PIP  2024-01-16"), "{text}");
        assert!(
            lines[1].ends_with("300        12       30        258"),
            "{text}"
        );
        assert_eq!(lines[2], "issue_attribute  never loaded");
        assert!(
            text.contains("issuer: FAILED since the newest load: CED01-17R.PIP (2024-01-17) at ")
                && text.contains(": CED01-17R.PIP: rejected\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "issuer: no load for 1 of the last 10 business days (2024-01-03 to 2024-01-16): \
                 2024-01-15\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("issue_attribute: no load for 10 of the last 10 business days"),
            "{text}"
        );
    }

    #[test]
    fn the_json_document_has_every_field_and_an_error_instead_when_it_failed() {
        let mut out = Vec::new();
        report().write(OutputFormat::Json, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["today"], "2024-01-16");
        assert_eq!(v["tables"][0]["type"], "issuer");
        assert_eq!(v["tables"][0]["last_loaded"]["business_date"], "2024-01-16");
        assert_eq!(v["tables"][0]["last_loaded"]["inserted"], 12);
        assert_eq!(v["tables"][0]["failed_since"]["status"], "failed");
        assert_eq!(v["tables"][0]["days_without_load"][0], "2024-01-15");
        assert!(v["tables"][1]["last_loaded"].is_null());
        let mut r = report();
        r.tables.clear();
        r.error = Some("--status: no load_journal\nmore".into());
        let mut out = Vec::new();
        r.write(OutputFormat::Table, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "error: --status: no load_journal\n"
        );
    }
}
