//! The first load into an empty table (`--initial-load`): drop the table's foreign keys and
//! secondary indexes, put the rows in, rebuild and re-validate, all inside the load's one
//! transaction under an ACCESS EXCLUSIVE lock.
//!
//! Nobody ever sees the table without its constraints, and any failure (including a foreign
//! key that does not validate) rolls back to the empty table with every index and constraint
//! as it was. Measured with `make bench` (docs/performance.md).

use std::time::Instant;

use tokio_postgres::Transaction;

use super::stream::{self, Read, Reading, Target};
use crate::db;
use crate::error::{Error, Exit};
use crate::layout::Layout;
use crate::source::Input;
use crate::sql;

/// What the direct path did.
#[derive(Debug, Clone, Copy)]
pub struct Direct {
    pub copy_seconds: f64,
    pub rebuild_seconds: f64,
}

fn what(layout: &Layout) -> String {
    format!(
        "the initial load of {} (it needs the role to own the table; without --initial-load \
         the normal merge needs only INSERT/UPDATE/SELECT)",
        layout.table
    )
}

/// The fast path: COPY the file straight into the empty master, with its foreign keys and
/// secondary indexes dropped, then rebuild and re-validate them. No staging table and no
/// `INSERT … SELECT`: COPY writes the heap in batches.
///
/// `Ok(None)`, having changed nothing, when the table is not empty, or when the data breaks
/// an integrity rule the staged path deals with exactly (a repeated key, which it resolves,
/// or a missing parent or code, which it reports with line numbers). Everything in between
/// is undone by rolling back to a savepoint; the file is then read again.
pub async fn direct(
    tx: &Transaction<'_>,
    input: &Input,
    layout: &'static Layout,
    how: Reading<'_>,
) -> (Read, Result<Option<Direct>, Error>) {
    let failed = |e: tokio_postgres::Error| db::fail(&what(layout), &e);
    let undo = |why: String| async move {
        tracing::info!(
            table = layout.table,
            "initial load: {why}; taking the staged path"
        );
        // Released too: a snapshot cannot be exported from inside a subtransaction.
        tx.batch_execute("ROLLBACK TO SAVEPOINT cusip_initial; RELEASE SAVEPOINT cusip_initial")
            .await
            .map_err(|e| db::fail(&what(layout), &e))
    };
    if let Err(e) = tx.batch_execute("SAVEPOINT cusip_initial").await {
        return (Read::default(), Err(failed(e)));
    }
    let recreate = match detach(tx, layout).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            let undone = undo(format!("{} is not empty", layout.table)).await;
            return (Read::default(), undone.map(|()| None));
        }
        Err(e) => return (Read::default(), Err(e)),
    };

    let t = Instant::now();
    let (read, copied) = stream::copy_in(tx, input, layout, how, Target::Master, None).await;
    match copied {
        Ok(_) => {}
        Err(Error::Refused(message)) => return (read, undo(message).await.map(|()| None)),
        Err(e) => return (read, Err(e)),
    }
    let copy_seconds = t.elapsed().as_secs_f64();
    tracing::info!(file = %input.name, records = read.records, seconds = copy_seconds, "copied into the empty table");

    let t = Instant::now();
    if let Err((create, e)) = reattach(tx, layout, &recreate).await {
        if db::classify(&e) != Exit::DataErr {
            return (read, Err(restore_failed(layout, &create, &e)));
        }
        return (read, undo(db::chain(&e)).await.map(|()| None));
    }
    if let Err(e) = tx.batch_execute("RELEASE SAVEPOINT cusip_initial").await {
        return (read, Err(failed(e)));
    }
    let rebuild_seconds = t.elapsed().as_secs_f64();
    tracing::info!(file = %input.name, inserted = read.records, seconds = rebuild_seconds, "indexes rebuilt and foreign keys re-validated");
    (
        read,
        Ok(Some(Direct {
            copy_seconds,
            rebuild_seconds,
        })),
    )
}

/// The initial-load merge from staging: the path taken when the direct one could not be,
/// because the file repeats a key or misses a parent. Inserts everything in key order
/// between dropping and re-creating the foreign keys and secondary indexes. Returns the rows
/// inserted.
pub async fn from_stage(tx: &Transaction<'_>, layout: &Layout, sorted: bool) -> Result<u64, Error> {
    let failed = |e: tokio_postgres::Error| db::fail(&what(layout), &e);
    let Some(recreate) = detach(tx, layout).await? else {
        return Err(Error::Transient(format!(
            "{} gained rows during the initial load from another writer; nothing was \
             loaded, rerun to merge normally",
            layout.table
        )));
    };
    let inserted = tx
        .execute(sql::insert_all(layout, sorted).as_str(), &[])
        .await
        .map_err(failed)?;
    reattach(tx, layout, &recreate)
        .await
        .map_err(|(create, e)| restore_failed(layout, &create, &e))?;
    Ok(inserted)
}

/// Locks the table exclusively and, if it is empty, drops its foreign keys and secondary
/// indexes, returning the statements that re-create them; `None` if it has rows.
async fn detach(tx: &Transaction<'_>, layout: &Layout) -> Result<Option<Vec<String>>, Error> {
    let failed = |e: tokio_postgres::Error| db::fail(&what(layout), &e);
    tx.batch_execute(&sql::lock_exclusive(layout))
        .await
        .map_err(failed)?;
    // Checked (again) under the exclusive lock: a writer outside the loader may have added
    // rows since any earlier look.
    let empty: bool = tx
        .query_one(sql::is_empty(layout).as_str(), &[])
        .await
        .map_err(failed)?
        .get(0);
    if !empty {
        return Ok(None);
    }
    let detached = tx
        .query(sql::detachable(layout).as_str(), &[])
        .await
        .map_err(failed)?;
    let mut recreate = Vec::with_capacity(detached.len());
    for row in &detached {
        let (kind, drop, create): (&str, &str, &str) = (row.get(0), row.get(1), row.get(2));
        tracing::debug!(
            table = layout.table,
            kind,
            statement = drop,
            "initial load: detaching"
        );
        tx.batch_execute(drop).await.map_err(failed)?;
        recreate.push(create.to_string());
    }
    // Index builds sort in memory up to this much, for this transaction only.
    tx.batch_execute("SET LOCAL maintenance_work_mem = '256MB'")
        .await
        .map_err(failed)?;
    Ok(Some(recreate))
}

/// Rebuilds the indexes, then re-adds the foreign keys (each re-validated by one set-based
/// join instead of a trigger call per row, and able to use the rebuilt indexes). On failure,
/// the statement that failed and why.
async fn reattach(
    tx: &Transaction<'_>,
    layout: &Layout,
    recreate: &[String],
) -> Result<(), (String, tokio_postgres::Error)> {
    let mut ordered: Vec<&String> = recreate.iter().collect();
    ordered.sort_by_key(|s| s.starts_with("ALTER"));
    for create in ordered {
        tx.batch_execute(create)
            .await
            .map_err(|e| (create.clone(), e))?;
    }
    tracing::info!(
        table = layout.table,
        rebuilt = recreate.len(),
        "initial load: indexes rebuilt and foreign keys re-validated"
    );
    Ok(())
}

fn restore_failed(layout: &Layout, create: &str, e: &tokio_postgres::Error) -> Error {
    db::fail(
        &format!(
            "restoring {} after the initial load: {create}",
            layout.table
        ),
        e,
    )
}
