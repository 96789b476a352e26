//! The staged rows into the master table, diff before write: rows the master already holds
//! exactly are never touched (no new tuple, no WAL), and the counts come from the
//! statements' own row counts, so they are exact.

use tokio_postgres::Transaction;

use super::initial;
use super::stage::Staged;
use crate::db;
use crate::error::Error;
use crate::layout::Layout;
use crate::sql;

/// Staging holding less than 1/this of the table's rows is joined to it by key lookups.
const LOOKUP_SHARE: f32 = 10.0;

/// What the merge wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct Merged {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// The table was empty and the initial-load path rebuilt it.
    pub initial_load: bool,
}

/// Writes the staged rows (`distinct` keys, the repeats already resolved) into the master.
pub async fn merge(
    tx: &Transaction<'_>,
    layout: &Layout,
    initial_load: bool,
    distinct: u64,
    staged: &Staged,
) -> Result<Merged, Error> {
    let ascending = staged.ascending;
    let merging =
        |e: tokio_postgres::Error| db::fail(&format!("merging into {}", layout.table), &e);
    // Under the load lock only a loader writes the table, so an empty table stays empty.
    let empty = tx
        .query_one(sql::is_empty(layout).as_str(), &[])
        .await
        .map_err(merging)?
        .get::<_, bool>(0);
    if empty && initial_load {
        return Ok(Merged {
            inserted: initial::from_stage(tx, layout, ascending).await?,
            initial_load: true,
            ..Merged::default()
        });
    }
    if empty {
        // Nothing to compare against: every staged row is new.
        let inserted = tx
            .execute(sql::insert_all(layout, ascending).as_str(), &[])
            .await
            .map_err(merging)?;
        return Ok(Merged {
            inserted,
            ..Merged::default()
        });
    }
    // Diff before write: the rows that are new or differ go to a small delta table, then
    // the changed ones are updated and the new ones inserted. Under the load lock nothing
    // else writes the table, so the three counts are exact.
    //
    // When staging holds a small part of the table (what the comparison in the loader left:
    // a next day's new and changed rows), each staged key is looked up in the primary key.
    // Left to itself the planner hashes or sorts the whole table to join it (it guesses
    // five rows a key), which at 10 M rows is most of a next day's merge.
    // The table's size is the planner's (-1 before its first ANALYZE: then no hint).
    let rows: f32 = tx
        .query_one(sql::table_size(layout).as_str(), &[])
        .await
        .map_err(merging)?
        .get(0);
    let lookups = (staged.rows as f32) * LOOKUP_SHARE < rows;
    if lookups {
        tx.batch_execute(sql::KEY_LOOKUPS_ON)
            .await
            .map_err(merging)?;
    }
    let differ = tx
        .execute(sql::build_delta(layout).as_str(), &[])
        .await
        .map_err(merging)?;
    if lookups {
        tx.batch_execute(sql::KEY_LOOKUPS_OFF)
            .await
            .map_err(merging)?;
    }
    let updated = tx
        .execute(sql::update_changed(layout).as_str(), &[])
        .await
        .map_err(merging)?;
    let inserted = tx
        .execute(sql::insert_new(layout).as_str(), &[])
        .await
        .map_err(merging)?;
    Ok(Merged {
        inserted,
        updated,
        unchanged: distinct.saturating_sub(differ),
        initial_load: false,
    })
}
