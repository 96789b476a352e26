//! From what the database holds to what `--init-schema` will do: a list of statements, or a
//! refusal that names the object and what differs. Pure: no I/O, so each rule has a unit test.
//!
//! The rules, for a database the loader built (any version) or one the old service built:
//! - nothing that holds data is dropped or rewritten, unless `--rewrite-tables` asks for it;
//! - what is missing is created; an index is not created again under another name;
//! - a table of the loader's names with other columns, a trigger the loader does not know, or
//!   an object that must change and belongs to another role: refused (78), nothing changed;
//! - a view that answers as the contract says is kept; one that does not is dropped and
//!   created again only when nothing depends on it, its privileges given back;
//! - `search_securities` becomes SECURITY DEFINER, so the anonymous role can call it.

mod grants;
mod tables;
mod views;

use std::collections::BTreeSet;

use super::catalog::{Catalog, ANON_ROLE};
use super::script::{Object, Statement};
use crate::error::Error;
use crate::layout::{FileType, Layout};

use tables::Search;

/// What `--init-schema` was asked to do beyond the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also make the changes that rewrite tables holding rows: key columns to collation "C",
    /// and the generated `search_vector` where a table has none.
    pub rewrite_tables: bool,
}

/// One statement to run, and how the log and an error name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub sql: String,
    pub what: String,
    /// Adds whatever rows are missing (a code table's codes): run every time, a change only
    /// when it inserts something.
    pub top_up: bool,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// What was found and kept, for the log (INFO).
    pub notes: Vec<String>,
    /// What the operator should know about (WARN).
    pub warnings: Vec<String>,
}

/// `pg_get_function_result()` of the contract's `search_securities`.
pub const SEARCH_RESULT: &str = "TABLE(cusip character varying, issuer_name text, \
    issue_description text, ticker_symbol character varying, underwriter character varying, \
    match_type text, rank real)";

/// The columns the loader writes into `load_journal`.
pub const JOURNAL_COLUMNS: [&str; 15] = [
    "file_name",
    "source",
    "file_type",
    "bytes",
    "fingerprint",
    "started_at",
    "finished_at",
    "records_read",
    "inserted",
    "updated",
    "unchanged",
    "repeated_keys",
    "status",
    "error",
    "loader_version",
];

pub(super) fn refuse(message: String) -> Error {
    Error::Config(message)
}

/// Refuses (77) a role that may not create in the schema: the schema is the owner's job.
pub fn may_create(cat: &Catalog) -> Result<(), Error> {
    if cat.can_create {
        return Ok(());
    }
    Err(Error::Denied(format!(
        "--init-schema: role {} may not create objects in schema {}; the schema is applied by \
             its owner (run --init-schema as the owner, e.g. with --user or CUSIP_DB_USER); the \
             application role only loads",
        cat.user, cat.schema
    )))
}

/// Decides every step. `Err` is a refusal: nothing has been changed.
pub fn plan(script: &[Statement], cat: &Catalog, opts: Options) -> Result<Plan, Error> {
    let mut p = Plan::default();
    may_create(cat)?;
    let table_of = |name: &str| cat.relations.get(name);
    let owned = |name: &str, why: &str| -> Result<(), Error> {
        match table_of(name) {
            Some(r) if !r.mine => Err(refuse(format!(
                "{name} must change ({why}) but is owned by {}; run --init-schema as {} (or a \
                 member of it); nothing was changed",
                r.owner, r.owner
            ))),
            _ => Ok(()),
        }
    };
    let search = tables::check(script, cat, &mut p)?;

    // Key columns that do not sort byte-wise: the loader compares in the database there.
    let recollate: Vec<&Layout> = FileType::ALL
        .iter()
        .map(|t| t.layout())
        .filter(|l| {
            table_of(l.table).is_some() && !cat.bytewise.get(l.table).copied().unwrap_or(true)
        })
        .collect();
    let rewrite_keys = opts.rewrite_tables && !recollate.is_empty();
    if !recollate.is_empty() && !opts.rewrite_tables {
        p.notes.push(format!(
            "key columns of {} use the database's collation, not \"C\": loads compare in the \
             database there (docs/database.md: key collation); --init-schema --rewrite-tables changes them",
            recollate
                .iter()
                .map(|l| l.table)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // Views: which are kept, which must be dropped first and created again.
    let drop = views::replaced(script, cat, rewrite_keys, &mut p)?;

    // The script, in order.
    let mut created: BTreeSet<String> = BTreeSet::new();
    let mut search_skipped: Vec<&str> = Vec::new();
    let mut keys_done = false;
    for s in script {
        match &s.object {
            Object::Table(name) => {
                if table_of(name).is_none() {
                    p.steps.push(Step {
                        sql: s.sql.clone(),
                        what: format!("creating table {name}"),
                        top_up: false,
                    });
                    created.insert(name.clone());
                }
            }
            Object::Rows(table) => p.steps.push(Step {
                sql: s.sql.clone(),
                what: format!("adding the codes {table} lacks"),
                top_up: true,
            }),
            Object::Column { table, column } => {
                let new_table = created.contains(table);
                let exists = cat
                    .columns
                    .get(table)
                    .is_some_and(|cols| cols.iter().any(|c| &c.name == column));
                if new_table || (!exists && column != "search_vector") {
                    p.steps.push(Step {
                        sql: s.sql.clone(),
                        what: format!("adding {table}.{column}"),
                        top_up: false,
                    });
                    created.insert(format!("{table}.{column}"));
                    continue;
                }
                if exists || search.get(table.as_str()) != Some(&Search::Absent) {
                    continue;
                }
                if cat.nonempty.contains(table) && !opts.rewrite_tables {
                    search_skipped.push(table_name(table));
                    continue;
                }
                owned(table, "it gains a search_vector column")?;
                if cat.nonempty.contains(table) {
                    p.warnings.push(format!(
                        "{table}: adding the generated search_vector rewrites the table \
                         (--rewrite-tables); it is locked until the commit"
                    ));
                }
                p.steps.push(Step {
                    sql: s.sql.clone(),
                    what: format!("adding {table}.{column}"),
                    top_up: false,
                });
                created.insert(format!("{table}.{column}"));
            }
            Object::Index {
                name,
                table,
                method,
                columns,
                partial,
            } => {
                if columns.iter().any(|c| c == "search_vector")
                    && search_skipped.contains(&table.as_str())
                {
                    continue;
                }
                if cat.indexes.iter().any(|i| &i.name == name) {
                    continue;
                }
                let twin = (!partial)
                    .then(|| {
                        cat.indexes.iter().find(|i| {
                            &i.table == table
                                && &i.method == method
                                && !i.special
                                && &i.columns == columns
                        })
                    })
                    .flatten();
                if let Some(twin) = twin {
                    p.notes.push(format!(
                        "{table}: index {} on ({}) serves as {name}; kept as it is",
                        twin.name,
                        columns.join(", ")
                    ));
                    continue;
                }
                if !created.contains(table) {
                    owned(table, &format!("it gains the index {name}"))?;
                }
                p.steps.push(Step {
                    sql: s.sql.clone(),
                    what: format!("creating index {name} on {table}"),
                    top_up: false,
                });
            }
            Object::View(name) => {
                if !keys_done {
                    keys_done = true;
                    if rewrite_keys {
                        for l in &recollate {
                            owned(l.table, "its key columns change collation")?;
                            let alters: Vec<String> = l
                                .key_columns()
                                .map(|c| {
                                    format!(
                                        "ALTER COLUMN {} TYPE {} COLLATE \"C\"",
                                        c.name,
                                        c.kind.sql_type()
                                    )
                                })
                                .collect();
                            p.warnings.push(format!(
                                "{}: key columns to collation \"C\" (--rewrite-tables): its \
                                 indexes are rebuilt and foreign keys re-checked; it is locked \
                                 until the commit",
                                l.table
                            ));
                            p.steps.push(Step {
                                sql: format!("ALTER TABLE {} {}", l.table, alters.join(", ")),
                                what: format!("changing the key collation of {}", l.table),
                                top_up: false,
                            });
                        }
                    }
                }
                if table_of(name).is_some() && !drop.contains_key(name.as_str()) {
                    continue;
                }
                p.steps.push(Step {
                    sql: s.sql.clone(),
                    what: format!("creating view {name}"),
                    top_up: false,
                });
                if let Some(info) = cat
                    .views
                    .get(name)
                    .filter(|_| drop.contains_key(name.as_str()))
                {
                    for g in &info.grants {
                        p.steps.push(Step {
                            sql: g.clone(),
                            what: format!("giving back a privilege on {name}"),
                            top_up: false,
                        });
                    }
                }
                created.insert(name.clone());
            }
            Object::Function(name) => {
                if !search_skipped.is_empty() {
                    continue;
                }
                match &cat.function {
                    None => {}
                    Some(f) if f.result != SEARCH_RESULT => {
                        return Err(refuse(format!(
                        "{name}(text) exists and returns {}, not the contract's {SEARCH_RESULT}; \
                             rename or drop it; nothing was changed",
                        f.result
                    )))
                    }
                    Some(f) if f.same => {
                        p.notes
                            .push(format!("{name}: as the loader defines it; kept as it is"));
                        continue;
                    }
                    Some(f) if !f.mine => {
                        return Err(refuse(format!(
                            "{name}(text) must change (to run as its owner, so that {ANON_ROLE} \
                             can call it) but is owned by {}; run --init-schema as {}; nothing \
                             was changed",
                            f.owner, f.owner
                        )))
                    }
                    Some(_) => p.notes.push(format!(
                        "{name}: replaced by the loader's definition (the same answers, found \
                         through the GIN indexes; it runs as its owner so {ANON_ROLE} can call it)"
                    )),
                }
                p.steps.push(Step {
                    sql: s.sql.clone(),
                    what: format!("creating function {name}"),
                    top_up: false,
                });
                created.insert(name.clone());
            }
            Object::Comment { target } => {
                let table = target.split('.').next().unwrap_or_default();
                if created.contains(target) || created.contains(table) {
                    p.steps.push(Step {
                        sql: s.sql.clone(),
                        what: format!("commenting on {target}"),
                        top_up: false,
                    });
                }
            }
        }
    }
    if !search_skipped.is_empty() {
        p.warnings.push(format!(
            "{} hold{} rows and no search_vector: full-text search (search_securities) is not \
             installed, because adding the column rewrites the table; run --init-schema \
             --rewrite-tables when the tables may be locked for that long",
            search_skipped.join(", "),
            if search_skipped.len() == 1 { "s" } else { "" }
        ));
    }
    grants::grants(script, cat, &created, &search_skipped, &mut p);
    Ok(p)
}

fn table_name(t: &str) -> &'static str {
    FileType::ALL
        .iter()
        .map(|f| f.layout().table)
        .find(|n| *n == t)
        .unwrap_or("?")
}

pub(super) fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
