//! The file into the staging table, and whether the loader compares it with the master
//! itself first (only new or changed rows then reach staging; [`crate::compare`]).

use tokio_postgres::Transaction;

use super::checks::Enforced;
use super::stream::{self, Read, Reading, Target};
use crate::compare::{self, Comparer, Repeats};
use crate::db::{self, DbConfig};
use crate::error::Error;
use crate::layout::Layout;
use crate::report::Path;
use crate::source::Input;
use crate::sql;

/// What staging came to.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The staged keys ascend (every key greater than the one before: none repeats).
    pub ascending: bool,
    /// The file's repeated keys, when the comparison in the loader counted them (it saw
    /// every record; staging holds only the new or changed ones).
    pub repeats: Option<Repeats>,
    /// Compared in the loader, or staged whole; and why.
    pub path: Path,
    pub why: String,
    /// Rows in staging (every record, or only the new and changed ones when compared).
    pub rows: u64,
}

impl Staged {
    fn whole(c: stream::Copied, why: String) -> Staged {
        Staged {
            ascending: c.ascending,
            repeats: None,
            path: Path::Staged,
            why,
            rows: c.staged,
        }
    }
}

/// Stages the file. With `compare_on`, a table that has rows is read on a second connection
/// of that config and compared with the file in the loader, when that is sound and the file
/// is at least that many bytes.
pub async fn stage(
    tx: &Transaction<'_>,
    compare_on: Option<(&DbConfig, u64)>,
    input: &Input,
    layout: &'static Layout,
    how: Reading<'_>,
) -> (Read, Result<Staged, Error>) {
    let comparer = match comparer(tx, compare_on, input, layout).await {
        Ok(c) => c,
        Err(e) => return (Read::default(), Err(e)),
    };
    match comparer {
        Ok(c) => staged_compared(tx, input, layout, how, c).await,
        Err(why) => {
            let (read, copied) = copy_to_stage(tx, input, layout, how, None).await;
            (read, copied.map(|c| Staged::whole(c, why)))
        }
    }
}

/// Whether to compare in the loader, and the comparer if so.
///
/// Only rows that are new or differ reach staging, so only those are checked: that is the
/// same outcome as checking every row only when the table's own foreign keys already hold
/// every unchanged row to the same rules. The cheaper question first: an empty table (a
/// fresh load) has nothing to compare with, and then its foreign keys are read once, by the
/// checks, not here as well. In a new session that read costs 1.5-2 ms of catalog lookups,
/// 5 % of a 40 000-record COPY phase.
///
/// `Ok(Err(why))`: compare in the database, for that reason.
async fn comparer(
    tx: &Transaction<'_>,
    compare_on: Option<(&DbConfig, u64)>,
    input: &Input,
    layout: &'static Layout,
) -> Result<Result<Comparer, String>, Error> {
    let Some((cfg, min_bytes)) = compare_on else {
        return Ok(Err("compared in the database".into()));
    };
    if let Some(size) = input.size.filter(|&s| s < min_bytes) {
        return Ok(Err(format!(
            "a small file ({size} bytes, under {min_bytes}) is compared in the database, \
             which costs less than a second connection"
        )));
    }
    if let Err(why) = compare::applies(tx, layout).await? {
        return Ok(Err(why));
    }
    if !Enforced::read(tx, layout).await?.covers(layout) {
        let why = "a check is not enforced by a foreign key; comparing in the database";
        tracing::info!(table = layout.table, "{why}");
        return Ok(Err(why.into()));
    }
    compare::open(tx, cfg, layout).await
}

async fn copy_to_stage(
    tx: &Transaction<'_>,
    input: &Input,
    layout: &'static Layout,
    how: Reading<'_>,
    comparer: Option<Comparer>,
) -> (Read, Result<stream::Copied, Error>) {
    if let Err(e) = tx.batch_execute(&sql::create_stage(layout)).await {
        return (
            Read::default(),
            Err(db::fail("creating the staging table", &e)),
        );
    }
    stream::copy_in(tx, input, layout, how, Target::Stage, comparer).await
}

/// Stages only the rows the comparison with the master finds new or changed. If the file's
/// keys stop ascending, the merge join cannot go on: everything is undone back to a
/// savepoint and the file is read again and staged whole, to be compared in the database.
async fn staged_compared(
    tx: &Transaction<'_>,
    input: &Input,
    layout: &'static Layout,
    how: Reading<'_>,
    comparer: Comparer,
) -> (Read, Result<Staged, Error>) {
    let savepoint = |sql: &'static str| async move {
        tx.batch_execute(sql)
            .await
            .map_err(|e| db::fail("staging the file", &e))
    };
    if let Err(e) = savepoint("SAVEPOINT cusip_compare").await {
        return (Read::default(), Err(e));
    }
    let (read, copied) = copy_to_stage(tx, input, layout, how, Some(comparer)).await;
    let copied = match copied {
        Ok(c) => c,
        Err(e) => return (read, Err(e)),
    };
    let Some(line) = copied.not_ascending else {
        if let Err(e) = savepoint("RELEASE SAVEPOINT cusip_compare").await {
            return (read, Err(e));
        }
        let repeats = copied.repeats.unwrap_or_default();
        let why = format!(
            "compared with {} in the loader: {} of {} records new or changed{}",
            layout.table,
            copied.staged,
            read.records,
            match repeats.records {
                0 => String::new(),
                n => format!(", {n} repeating the key before them"),
            }
        );
        tracing::info!(file = %input.name, staged = copied.staged, records = read.records, "{why}");
        let staged = Staged {
            ascending: repeats.records == 0,
            repeats: Some(repeats),
            path: Path::Compared,
            why,
            rows: copied.staged,
        };
        return (read, Ok(staged));
    };
    let why = format!("the keys go backwards at line {line}; compared in the database");
    tracing::info!(file = %input.name, line, "{why}");
    if let Err(e) =
        savepoint("ROLLBACK TO SAVEPOINT cusip_compare; RELEASE SAVEPOINT cusip_compare").await
    {
        return (read, Err(e));
    }
    let (read, copied) = copy_to_stage(tx, input, layout, how, None).await;
    (read, copied.map(|c| Staged::whole(c, why)))
}
