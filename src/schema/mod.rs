//! `--init-schema`: the schema, embedded so that it needs nothing but the binary, applied to
//! an empty database, to one an older loader built, or to one the old Python service built.
//!
//! One transaction, under an advisory lock: read what is there ([`catalog`]), decide
//! ([`plan`]), run the few statements that are needed, commit. A second run finds nothing to
//! do. A database the loader cannot recognise is refused before anything changes.

mod catalog;
pub mod guard;
mod plan;
mod probe;
mod script;

use tokio_postgres::Client;

use crate::db;
use crate::error::{Error, Exit};

pub use plan::{Options, JOURNAL_COLUMNS};
pub use script::Object;

pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");

/// Advisory-lock class for everything cusip-loader serialises ("CUSP").
pub const LOCK_CLASS: i32 = 0x4355_5350;
/// Object id of the schema lock within `LOCK_CLASS`; tables use 1..=3.
const SCHEMA_LOCK: i32 = 0;

/// An error while changing the schema: never 70. Permission is 77 (with who may run it),
/// a lost connection 75, anything else a schema the loader cannot work with (78).
fn failed(what: &str, e: &tokio_postgres::Error) -> Error {
    let exit = match db::classify(e) {
        Exit::NoPerm => Exit::NoPerm,
        Exit::TempFail => Exit::TempFail,
        _ => Exit::Config,
    };
    let hint = match exit {
        Exit::NoPerm => {
            " (the schema is applied by the owner of the schema and its tables: run \
             --init-schema as that role; the application role only loads)"
        }
        Exit::Config => " (nothing was changed)",
        _ => " (nothing was changed; rerun)",
    };
    Error::with_exit(
        exit,
        format!("--init-schema: {what}: {}{hint}", db::chain(e)),
    )
}

/// Before a load: the schema must be there and current, said once and plainly, rather than
/// discovered by the first statement that needs it (and again by the journal write after it).
pub async fn require(client: &Client) -> Result<(), Error> {
    let row = client
        .query_one(
            "SELECT to_regclass('load_journal') IS NOT NULL, \
             EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('load_journal') \
                     AND attname = 'business_date' AND NOT attisdropped), \
             current_database()",
            &[],
        )
        .await
        .map_err(|e| db::fail("reading the catalog", &e))?;
    let (journal, current, dbname): (bool, bool, String) = (row.get(0), row.get(1), row.get(2));
    if !journal {
        return Err(Error::Config(format!(
            "database {dbname} has no cusip-loader schema (no load_journal): apply it first with \
             `cusip-loader --init-schema`, as the owner of the schema; nothing was loaded"
        )));
    }
    if !current {
        return Err(Error::Config(format!(
            "database {dbname}'s schema is older than this loader (load_journal has no \
             business_date): run `cusip-loader --init-schema` as its owner to bring it up to date; \
             nothing was loaded"
        )));
    }
    Ok(())
}

/// What `schema.sql` creates, statement by statement: `--check` looks for each of these
/// objects without changing anything.
pub fn objects() -> Result<Vec<Object>, Error> {
    Ok(script::statements(SCHEMA_SQL)?
        .into_iter()
        .map(|s| s.object)
        .collect())
}

/// Applies the schema in one transaction; idempotent. The lock keeps two loaders started
/// together from racing.
pub async fn apply(client: &mut Client, opts: Options) -> Result<(), Error> {
    let statements = script::statements(SCHEMA_SQL)?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| failed("starting the transaction", &e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_CLASS, &SCHEMA_LOCK],
    )
    .await
    .map_err(|e| failed("waiting for the schema lock", &e))?;
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(|e| failed("starting", &e))?;
    let cat = catalog::Catalog::read(&tx, &statements).await?;
    let plan = plan::plan(&statements, &cat, opts)?;
    for note in &plan.notes {
        tracing::info!("schema: {note}");
    }
    for w in &plan.warnings {
        tracing::warn!("schema: {w}");
    }
    let mut changes = 0;
    for step in &plan.steps {
        tracing::debug!(statement = %step.sql, "schema: {}", step.what);
        if step.top_up {
            let added = tx
                .execute(step.sql.as_str(), &[])
                .await
                .map_err(|e| failed(&step.what, &e))?;
            if added > 0 {
                tracing::info!("schema: {}: {added} added", step.what);
                changes += 1;
            }
        } else {
            tx.batch_execute(&step.sql)
                .await
                .map_err(|e| failed(&step.what, &e))?;
            changes += 1;
        }
    }
    tx.commit().await.map_err(|e| failed("committing", &e))?;
    if changes == 0 {
        tracing::info!("schema: already in place; nothing changed");
    } else {
        tracing::info!("schema: applied ({changes} statements)");
    }
    Ok(())
}
