//! The schema, embedded so that `--init-schema` needs nothing but the binary.

use tokio_postgres::Client;

use crate::db;
use crate::error::Error;

pub const SCHEMA_SQL: &str = include_str!("../schema.sql");

/// Advisory-lock class for everything cusip-loader serialises ("CUSP").
pub const LOCK_CLASS: i32 = 0x4355_5350;
/// Object id of the schema lock within `LOCK_CLASS`; tables use 1..=3.
const SCHEMA_LOCK: i32 = 0;

/// Applies `schema.sql` in one transaction. It is idempotent, and the lock keeps two
/// loaders started together from racing on `CREATE ... IF NOT EXISTS`.
pub async fn apply(client: &mut Client) -> Result<(), Error> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| db::fail("starting the schema transaction", &e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_CLASS, &SCHEMA_LOCK],
    )
    .await
    .map_err(|e| db::fail("waiting for the schema lock", &e))?;
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(|e| db::fail("applying the schema", &e))?;
    tx.batch_execute(SCHEMA_SQL)
        .await
        .map_err(|e| db::fail("applying the schema", &e))?;
    tx.commit()
        .await
        .map_err(|e| db::fail("committing the schema", &e))?;
    Ok(())
}
