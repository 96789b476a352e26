//! The first load into an empty table (the direct path, `--initial-load auto|always`): drop
//! the table's foreign keys, secondary indexes and (when nothing else needs it) primary key,
//! put the rows in, rebuild and re-validate, all inside the load's one transaction under an
//! ACCESS EXCLUSIVE lock.
//!
//! `auto` takes it when the loading role may: dropping an index or a constraint needs the
//! table's owner (or a member of the owning role), and a role without that right would only
//! fail. Readers of the table wait for the commit instead of seeing it empty, which is what
//! a first load wants anyway.
//!
//! Nobody ever sees the table without its constraints, and any failure (including a foreign
//! key that does not validate) rolls back to the empty table with every index and constraint
//! as it was. Measured with `make bench` (docs/performance.md).

use std::time::Instant;

use tokio_postgres::Transaction;

use super::stream::{self, Read, Reading, Target};
use crate::cli::InitialLoad;
use crate::db;
use crate::error::{Error, Exit};
use crate::layout::Layout;
use crate::source::Input;
use crate::sql;

/// What the direct path did.
#[derive(Debug, Clone)]
pub enum Went {
    /// The file is in, the indexes rebuilt and the foreign keys re-validated.
    Copied {
        copy_seconds: f64,
        rebuild_seconds: f64,
    },
    /// Nothing changed; the staged path must load the file, for this reason.
    Declined(String),
}

/// Whether a file takes the direct path.
#[derive(Debug)]
pub struct Choice {
    pub direct: bool,
    /// The table had no row when asked (under the load lock).
    pub empty: bool,
    /// For the log and the summary.
    pub why: String,
}

/// Decides the path for `layout`'s table under `when`: the direct path for an empty table
/// the loading role owns (or is a member of the owner of). `always` refuses (77) an empty
/// table the role cannot rebuild, instead of loading it the slow way unasked.
pub async fn choose(
    tx: &Transaction<'_>,
    layout: &Layout,
    when: InitialLoad,
) -> Result<Choice, Error> {
    let failed = |e: tokio_postgres::Error| db::fail(&format!("looking at {}", layout.table), &e);
    let row = tx
        .query_one(sql::emptiness_and_owner(layout).as_str(), &[])
        .await
        .map_err(failed)?;
    let (empty, owned, owner, user): (bool, bool, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    // Rebuilding an index also needs CREATE on the table's schema, which PostgreSQL 15 no
    // longer grants on `public` to every role.
    let (create, schema): (bool, String) = (row.get(4), row.get(5));
    let table = layout.table;
    let choice = |direct, why: String| Ok(Choice { direct, empty, why });
    if !empty {
        return choice(false, format!("{table} has rows"));
    }
    match (when, owned) {
        (InitialLoad::Never, _) => choice(
            false,
            format!("{table} is empty, and --initial-load is never"),
        ),
        (InitialLoad::Auto, true) if !create => choice(
            false,
            format!(
                "{table} is empty, but {user} may not create in its schema {schema} (the \
                 direct path rebuilds its indexes there)"
            ),
        ),
        (InitialLoad::Always, true) if !create => Err(Error::Denied(format!(
            "--initial-load always: {table} is empty, and the direct path rebuilds its \
             indexes, which needs CREATE on its schema {schema}; {user} does not have it. \
             Nothing was loaded: GRANT CREATE ON SCHEMA {schema} TO {user}, or use \
             --initial-load auto (the staged path)"
        ))),
        (_, true) => {
            let by = if owner == user {
                format!("{user} owns it")
            } else {
                format!("{user} is a member of its owner {owner}")
            };
            choice(true, format!("{table} is empty and {by}"))
        }
        (InitialLoad::Auto, false) => choice(
            false,
            format!(
                "{table} is empty but owned by {owner}, and {user} is not a member of that \
                 role (the direct path rebuilds its indexes, which needs the owner)"
            ),
        ),
        (InitialLoad::Always, false) => Err(Error::Denied(format!(
            "--initial-load always: {table} is empty, and the direct path rebuilds its \
             indexes, which needs its owner {owner}; {user} is not a member of that role. \
             Nothing was loaded: load as {owner}, or use --initial-load auto (the staged \
             path, as {user} may)"
        ))),
    }
}

fn what(layout: &Layout) -> String {
    format!(
        "the initial load of {} (it needs the role to own the table; with --initial-load \
         never the staged path needs only INSERT/UPDATE/SELECT)",
        layout.table
    )
}

/// The fast path: COPY the file straight into the empty master, with its foreign keys and
/// secondary indexes dropped, then rebuild and re-validate them. No staging table and no
/// `INSERT … SELECT`: COPY writes the heap in batches.
///
/// [`Went::Declined`], having changed nothing, when the table is not empty, or when the data
/// breaks an integrity rule the staged path deals with exactly (a repeated key, which it
/// resolves, or a missing parent or code, which it reports with line numbers). Everything
/// in between is undone by rolling back to a savepoint; the file is then read again.
pub async fn direct(
    tx: &Transaction<'_>,
    input: &Input,
    layout: &'static Layout,
    how: Reading<'_>,
) -> (Read, Result<Went, Error>) {
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
            .map(|()| Went::Declined(why))
    };
    if let Err(e) = tx.batch_execute("SAVEPOINT cusip_initial").await {
        return (Read::default(), Err(failed(e)));
    }
    let recreate = match detach(tx, layout).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return (
                Read::default(),
                undo(format!("{} is not empty", layout.table)).await,
            );
        }
        Err(e) => return (Read::default(), Err(e)),
    };

    let t = Instant::now();
    let (read, copied) = stream::copy_in(tx, input, layout, how, Target::Master, None).await;
    match copied {
        Ok(_) => {}
        Err(Error::Refused(message)) => return (read, undo(message).await),
        Err(e) => return (read, Err(e)),
    }
    let copy_seconds = t.elapsed().as_secs_f64();
    tracing::info!(file = %input.name, records = read.records, seconds = copy_seconds, "copied into the empty table");

    let t = Instant::now();
    if let Err((create, e)) = reattach(tx, layout, &recreate).await {
        if db::classify(&e) != Exit::DataErr {
            return (read, Err(restore_failed(layout, &create, &e)));
        }
        return (read, undo(db::chain(&e)).await);
    }
    if let Err(e) = tx.batch_execute("RELEASE SAVEPOINT cusip_initial").await {
        return (read, Err(failed(e)));
    }
    let rebuild_seconds = t.elapsed().as_secs_f64();
    tracing::info!(file = %input.name, inserted = read.records, seconds = rebuild_seconds, "indexes rebuilt and foreign keys re-validated");
    (
        read,
        Ok(Went::Copied {
            copy_seconds,
            rebuild_seconds,
        }),
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

/// Locks the table exclusively and, if it is empty, drops what [`sql::detachable`] lists
/// (foreign keys, secondary indexes, the primary key with the foreign keys that refer to
/// it), returning the statements that re-create them; `None` if it has rows. A key that a
/// file repeats then fails the primary key's build instead of the COPY, and the file takes
/// the staged path as before.
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
    let with_key = lock_referencing(tx, layout).await?;
    let detached = tx
        .query(sql::detachable(layout, with_key).as_str(), &[])
        .await
        .map_err(failed)?;
    let mut recreate = Vec::with_capacity(detached.len());
    for row in &detached {
        let (kind, drop, create, rank): (&str, &str, &str, i32) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        tracing::debug!(
            table = layout.table,
            kind,
            statement = drop,
            "initial load: detaching"
        );
        tx.batch_execute(drop).await.map_err(failed)?;
        recreate.push((rank, create.to_string()));
    }
    // Indexes, then the primary key, then the foreign keys that need it.
    recreate.sort_by_key(|(rank, _)| *rank);
    let recreate = recreate.into_iter().map(|(_, create)| create).collect();
    // Index builds sort in memory up to this much, for this transaction only.
    tx.batch_execute("SET LOCAL maintenance_work_mem = '256MB'")
        .await
        .map_err(failed)?;
    Ok(Some(recreate))
}

/// Locks the tables whose foreign keys refer to the primary key, without waiting: true if
/// they are all locked (the key may be dropped with those foreign keys). A session using one
/// of them (a consumer's query, a loader of that file) keeps the key in place instead: waiting
/// would queue every reader of that table behind the load, and a loader of the referencing
/// table waiting in turn for this one's table would be a deadlock.
async fn lock_referencing(tx: &Transaction<'_>, layout: &Layout) -> Result<bool, Error> {
    let failed = |e: tokio_postgres::Error| db::fail(&what(layout), &e);
    let rows = tx
        .query(sql::referencing_tables(layout).as_str(), &[])
        .await
        .map_err(failed)?;
    if rows.is_empty() {
        return Ok(true);
    }
    // One the role does not own keeps the key anyway (`sql::detachable`), and it may not
    // even lock it.
    if rows.iter().any(|r| !r.get::<_, bool>(1)) {
        return Ok(false);
    }
    let tables: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    tx.batch_execute("SAVEPOINT cusip_referencing")
        .await
        .map_err(failed)?;
    let lock = format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT",
        tables.join(", ")
    );
    match tx.batch_execute(&lock).await {
        Ok(()) => {
            tx.batch_execute("RELEASE SAVEPOINT cusip_referencing")
                .await
                .map_err(failed)?;
            Ok(true)
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            tracing::info!(
                table = layout.table,
                referencing = %tables.join(", "),
                "initial load: a referencing table is in use; the primary key stays in place"
            );
            tx.batch_execute(
                "ROLLBACK TO SAVEPOINT cusip_referencing; RELEASE SAVEPOINT cusip_referencing",
            )
            .await
            .map_err(failed)?;
            Ok(false)
        }
        Err(e) => Err(failed(e)),
    }
}

/// Rebuilds the indexes and the primary key, then re-adds the foreign keys (each re-validated
/// by one set-based join instead of a trigger call per row, and able to use the rebuilt
/// indexes). On failure, the statement that failed and why.
async fn reattach(
    tx: &Transaction<'_>,
    layout: &Layout,
    recreate: &[String],
) -> Result<(), (String, tokio_postgres::Error)> {
    for create in recreate {
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
