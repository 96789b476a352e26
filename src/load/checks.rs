//! The checks on staged rows before anything touches a master table: repeated keys resolved
//! (last record wins), and parents and codes that do not exist found with their lines.
//!
//! A check that a foreign key of the table already enforces at every statement is left to
//! the database during the merge; the merge then runs inside a savepoint, and if it breaks
//! one, [`find_misses`] runs after all to name the lines, exactly as it would have before.

use tokio_postgres::Transaction;

use super::stage::Staged;
use crate::db;
use crate::error::{Error, Problem, Rejection};
use crate::layout::Layout;
use crate::report::Repeat;
use crate::source::Input;
use crate::sql;

/// Examples shown per kind of foreign-key or code miss, and of repeated keys.
const EXAMPLES: u32 = 5;

/// Staging with fewer rows than this is not analysed. The planner then sizes it from its
/// pages, which is close enough for a few thousand rows, and every join it takes part in is
/// a handful of key lookups whatever it guesses. ANALYZE cost 7 ms of a 3 800-record date
/// (R, E, A, one file each), about 6 % of its wall time, measured in the server's statement
/// log; the merge's choice of key lookups uses the loader's own count ([`super::merge`]).
const ANALYZE_MIN_ROWS: u64 = 10_000;

/// What the checks found (the file passed them).
#[derive(Debug, Default)]
pub struct Checked {
    /// Records whose key occurred earlier in the file (dropped: the last one won).
    pub repeated: u64,
    pub repeated_examples: Vec<Repeat>,
    /// Some checks were left to the table's foreign keys: a merge that fails on integrity
    /// must call [`find_misses`] to name the lines.
    pub deferred: bool,
}

/// Resolves repeated keys and finds foreign-key and code misses in staging, except those a
/// foreign key the database enforces covers.
pub async fn check(
    tx: &Transaction<'_>,
    input: &Input,
    layout: &Layout,
    staged: &Staged,
) -> Result<Checked, Error> {
    if staged.rows >= ANALYZE_MIN_ROWS {
        tx.batch_execute(&sql::analyze_stage(layout))
            .await
            .map_err(|e| db::fail("analysing staging", &e))?;
    }
    let mut checked = Checked::default();
    // Keys seen to ascend cannot repeat: no need to group a million of them to find none.
    if !staged.ascending {
        (checked.repeated, checked.repeated_examples) = match &staged.repeats {
            // The comparison saw every record and counted the repeats; staging holds only
            // those new or changed (a run's first record may have been unchanged), so here
            // the superseded rows are only dropped.
            Some(r) => {
                group_repeats(tx, layout).await?;
                drop_superseded(tx, layout).await?;
                (r.records, r.examples.clone())
            }
            None => resolve_repeats(tx, layout).await?,
        };
    }
    let enforced = Enforced::read(tx, layout).await?;
    find_misses(tx, input, layout, Some(&enforced)).await?;
    checked.deferred = enforced.any();
    Ok(checked)
}

/// The foreign keys the database enforces on a table at every statement.
pub struct Enforced(Vec<(String, Vec<String>, Vec<String>)>);

impl Enforced {
    pub async fn read(tx: &Transaction<'_>, layout: &Layout) -> Result<Enforced, Error> {
        let rows = tx
            .query(sql::enforced_foreign_keys(layout).as_str(), &[])
            .await
            .map_err(|e| db::fail("reading the foreign keys", &e))?;
        Ok(Enforced(
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        ))
    }

    fn has(&self, parent: &str, cols: &[&str], parent_cols: &[&str]) -> bool {
        self.0
            .iter()
            .any(|(p, c, pc)| p == parent && c == cols && pc == parent_cols)
    }

    /// Whether these foreign keys cover every staged check of the layout.
    pub fn covers(&self, layout: &Layout) -> bool {
        let parent = match &layout.foreign_key {
            Some(fk) => self.has(fk.parent, fk.columns, fk.columns),
            None => true,
        };
        let codes = layout.columns.iter().all(|c| match c.code_table {
            Some(table) => self.has(table, &[c.name], &["code"]),
            None => true,
        });
        parent && codes
    }

    fn any(&self) -> bool {
        !self.0.is_empty()
    }
}

/// Counts the repeated keys (with examples) and keeps only the last record of each.
async fn resolve_repeats(
    tx: &Transaction<'_>,
    layout: &Layout,
) -> Result<(u64, Vec<Repeat>), Error> {
    let q = |what: &'static str| move |e: tokio_postgres::Error| db::fail(what, &e);
    group_repeats(tx, layout).await?;
    let row = tx
        .query_one(sql::count_repeats().as_str(), &[])
        .await
        .map_err(q("counting repeated keys"))?;
    let repeated = row.get::<_, i64>(0) as u64;
    let mut examples = Vec::new();
    if repeated > 0 {
        for r in tx
            .query(sql::repeat_examples(layout, EXAMPLES).as_str(), &[])
            .await
            .map_err(q("listing repeated keys"))?
        {
            examples.push(Repeat {
                key: r.get(0),
                lines: r.get(1),
            });
        }
        drop_superseded(tx, layout).await?;
    }
    Ok((repeated, examples))
}

/// Groups the staged keys that occur more than once ([`sql::REPEATS`]).
async fn group_repeats(tx: &Transaction<'_>, layout: &Layout) -> Result<(), Error> {
    tx.batch_execute(&sql::find_repeats(layout))
        .await
        .map_err(|e| db::fail("finding repeated keys", &e))
}

/// Keeps only the last staged record of each repeated key.
async fn drop_superseded(tx: &Transaction<'_>, layout: &Layout) -> Result<(), Error> {
    tx.execute(sql::drop_superseded(layout).as_str(), &[])
        .await
        .map(|_| ())
        .map_err(|e| db::fail("resolving repeated keys", &e))
}

/// Staged rows whose parent row or code is missing: refused with their lines.
/// With `enforced`, a check one of those foreign keys covers is left to the database.
pub async fn find_misses(
    tx: &Transaction<'_>,
    input: &Input,
    layout: &Layout,
    enforced: Option<&Enforced>,
) -> Result<(), Error> {
    let q = |what: &'static str| move |e: tokio_postgres::Error| db::fail(what, &e);
    let covered = |parent: &str, cols: &[&str], parent_cols: &[&str]| {
        enforced.is_some_and(|en| en.has(parent, cols, parent_cols))
    };
    let mut problems = Vec::new();
    if let (Some(sql), Some(fk)) = (
        sql::foreign_key_misses(layout, EXAMPLES),
        &layout.foreign_key,
    ) {
        if covered(fk.parent, fk.columns, fk.columns) {
            tracing::debug!(
                table = layout.table,
                parent = fk.parent,
                "left to the foreign key"
            );
        } else {
            let rows = tx
                .query(sql.as_str(), &[])
                .await
                .map_err(q("checking foreign keys"))?;
            let total = rows.first().map_or(0, |r| r.get::<_, i64>(2));
            for r in &rows {
                let line: i64 = r.get(0);
                let key: String = r.get(1);
                problems.push(Problem::at(
                    line as u64,
                    Some(&fk.columns.join("+")),
                    format!(
                        "\"{key}\" has no row in {} ({total} record{} in all)",
                        fk.parent,
                        if total == 1 { "" } else { "s" }
                    ),
                ));
            }
        }
    }
    for col in layout.columns {
        let Some(sql) = sql::code_misses(col, EXAMPLES) else {
            continue;
        };
        if covered(col.code_table.unwrap_or_default(), &[col.name], &["code"]) {
            continue;
        }
        let rows = tx
            .query(sql.as_str(), &[])
            .await
            .map_err(q("checking codes"))?;
        let total = rows.first().map_or(0, |r| r.get::<_, i64>(2));
        for r in &rows {
            let line: i64 = r.get(0);
            let value: String = r.get(1);
            problems.push(Problem::at(
                line as u64,
                Some(col.name),
                format!(
                    "\"{value}\" is not a known code in {} ({total} record{} in all)",
                    col.code_table.unwrap_or("?"),
                    if total == 1 { "" } else { "s" }
                ),
            ));
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.line);
        return Err(Error::Rejected(Rejection {
            file: input.name.clone(),
            problems,
            more: false,
        }));
    }
    Ok(())
}
