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

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{Catalog, ColumnInfo, ANON_ROLE};
use super::guard;
use super::script::{Object, Statement};
use crate::error::Error;
use crate::layout::{FileType, Kind, Layout};

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

fn refuse(message: String) -> Error {
    Error::Config(message)
}

fn kind_name(kind: char) -> &'static str {
    match kind {
        'r' => "table",
        'v' => "view",
        'm' => "materialized view",
        'p' => "partitioned table",
        'f' => "foreign table",
        'S' => "sequence",
        _ => "relation",
    }
}

/// `format_type()` of a layout column's type.
fn type_name(kind: Kind) -> String {
    match kind {
        Kind::Varchar(n) => format!("character varying({n})"),
        other => other.sql_type(),
    }
}

fn texty(ty: &str) -> bool {
    ty == "text" || ty.starts_with("character varying")
}

/// How a master table's search vector is kept, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    Absent,
    /// `schema.sql`'s generated column.
    Generated,
    /// A plain column, filled by the old service's trigger.
    Trigger,
}

/// Checks a master table's columns against its layout (plus an optional `search_vector`).
fn check_master<'a>(l: &Layout, cols: &'a [ColumnInfo]) -> Result<Option<&'a ColumnInfo>, String> {
    for (i, c) in l.columns.iter().enumerate() {
        let want = type_name(c.kind);
        let Some(have) = cols.get(i) else {
            return Err(format!("it has no column {} ({want})", c.name));
        };
        if have.name != c.name {
            return Err(format!(
                "its column {} is {} where the loader expects {} ({want})",
                i + 1,
                have.name,
                c.name
            ));
        }
        if have.ty != want {
            return Err(format!(
                "its column {} is {} where the loader expects {want}",
                c.name, have.ty
            ));
        }
        if c.key && !have.not_null {
            return Err(format!("its key column {} allows NULL", c.name));
        }
        if !c.key && have.not_null {
            return Err(format!(
                "its column {} is NOT NULL, but the files leave it empty at times",
                c.name
            ));
        }
    }
    let extra = &cols[l.columns.len().min(cols.len())..];
    match extra {
        [] => Ok(None),
        [v] if v.name == "search_vector" && v.ty == "tsvector" => Ok(Some(v)),
        [v, ..] => Err(format!(
            "it has a column {} ({}) that the loader does not know",
            v.name, v.ty
        )),
    }
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

    // What each master table holds now.
    let mut search: BTreeMap<&str, Search> = BTreeMap::new();
    for t in FileType::ALL {
        let l = t.layout();
        let Some(rel) = table_of(l.table) else {
            continue;
        };
        if rel.kind != 'r' {
            return Err(refuse(format!(
                "{} is a {}, not a table; the loader loads into a table of that name: rename \
                 or drop it; nothing was changed",
                l.table,
                kind_name(rel.kind)
            )));
        }
        let cols = cat.columns.get(l.table).map(Vec::as_slice).unwrap_or(&[]);
        let vector = check_master(l, cols).map_err(|why| {
            refuse(format!(
                "{} is not a table the loader can load: {why}; nothing was changed",
                l.table
            ))
        })?;
        let keys = l.key_names();
        if !cat.indexes.iter().any(|i| {
            i.table == l.table && i.unique && !i.special && i.columns.iter().eq(keys.iter())
        }) {
            return Err(refuse(format!(
                "{} has no primary key or unique index on ({}); the loader merges by that key; \
                 nothing was changed",
                l.table,
                keys.join(", ")
            )));
        }
        let triggers = cat.triggers.get(l.table).cloned().unwrap_or_default();
        let (known, unknown): (Vec<_>, Vec<_>) = triggers
            .iter()
            .partition(|t| guard::is_search_trigger(t, l));
        if let Some(t) = unknown.first() {
            return Err(refuse(format!(
                "the loader does not know {}: it could change rows as they are written, so loads \
                 would not be exact; disable or drop it, then run --init-schema again; nothing \
                 was changed",
                t.describe(l.table)
            )));
        }
        let state = match (vector, known.first()) {
            (None, _) => Search::Absent,
            (Some(v), _) if v.generated => Search::Generated,
            (Some(_), Some(t)) => {
                p.notes.push(format!(
                    "{}: search_vector is kept current by the old service's trigger {}; kept as \
                     it is",
                    l.table, t.name
                ));
                Search::Trigger
            }
            (Some(_), None) => {
                return Err(refuse(format!(
                    "{}.search_vector is a plain column that nothing fills (no generated \
                     expression, no search trigger): loads would leave it stale; drop the column \
                     or restore its trigger; nothing was changed",
                    l.table
                )))
            }
        };
        search.insert(l.table, state);
        p.notes.push(format!(
            "{}: {} columns as the loader expects{}",
            l.table,
            l.columns.len(),
            if cat.nonempty.contains(l.table) {
                "; holds rows, kept as they are"
            } else {
                ""
            }
        ));
    }
    for (table, rel) in &cat.relations {
        let is_ref = table.starts_with("ref_")
            && script
                .iter()
                .any(|s| s.object == Object::Table(table.clone()));
        if !is_ref && table != "load_journal" {
            continue;
        }
        let cols = cat.columns.get(table).map(Vec::as_slice).unwrap_or(&[]);
        let has = |name: &str| cols.iter().find(|c| c.name == name);
        let problem = if rel.kind != 'r' {
            Some(format!("it is a {}, not a table", kind_name(rel.kind)))
        } else if is_ref {
            match (has("code"), has("description")) {
                (Some(c), Some(d)) if texty(&c.ty) && texty(&d.ty) => {
                    let unique = cat.indexes.iter().any(|i| {
                        &i.table == table && i.unique && !i.special && i.columns == ["code"]
                    });
                    (!unique).then(|| "it has no primary key on code".to_string())
                }
                _ => Some("it lacks a text column code or description".to_string()),
            }
        } else {
            JOURNAL_COLUMNS
                .iter()
                .find(|c| has(c).is_none())
                .map(|c| format!("it has no column {c}"))
        };
        if let Some(why) = problem {
            return Err(refuse(format!(
                "{table} is not the table the loader expects: {why}; nothing was changed"
            )));
        }
    }
    if !cat.staging.is_empty() {
        p.notes.push(format!(
            "{}: the old service's staging tables; the loader does not use them (kept as they \
             are; drop them once the old service is retired)",
            cat.staging.join(", ")
        ));
    }

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
             database there (README: collation); --init-schema --rewrite-tables changes them",
            recollate
                .iter()
                .map(|l| l.table)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // Views: which are kept, which must be dropped first and created again.
    let views: Vec<(&str, &Statement)> = script
        .iter()
        .filter_map(|s| match &s.object {
            Object::View(n) => Some((n.as_str(), s)),
            _ => None,
        })
        .collect();
    let mut drop: BTreeMap<&str, String> = BTreeMap::new();
    for (name, _) in &views {
        let Some(rel) = table_of(name) else { continue };
        if rel.kind != 'v' {
            return Err(refuse(format!(
                "{name} is a {}, not a view; the loader's view of that name cannot be created: \
                 rename or drop it; nothing was changed",
                kind_name(rel.kind)
            )));
        }
        let info = cat.views.get(*name).cloned().unwrap_or_default();
        let why = match (&info.differs, rewrite_keys) {
            (Some(why), _) => why.clone(),
            (None, true) => "the key columns under it change collation".to_string(),
            (None, false) => {
                p.notes.push(format!(
                    "{name}: answers as the contract says; kept as it is"
                ));
                continue;
            }
        };
        if !rel.mine {
            return Err(refuse(format!(
                "{name} must change ({why}) but is owned by {}; run --init-schema as {} (or a \
                 member of it); nothing was changed",
                rel.owner, rel.owner
            )));
        }
        drop.insert(name, why);
    }
    for (name, why) in &drop {
        let info = cat.views.get(*name).cloned().unwrap_or_default();
        let others: Vec<&String> = info
            .dependents
            .iter()
            .filter(|d| !drop.contains_key(d.as_str()))
            .collect();
        if !others.is_empty() {
            return Err(refuse(format!(
                "{name} must change ({why}), but {} depend{} on it; the loader never drops with \
                 CASCADE: drop {}, run --init-schema again, then create {} again; nothing was \
                 changed",
                join(&others),
                if others.len() == 1 { "s" } else { "" },
                if others.len() == 1 { "it" } else { "them" },
                if others.len() == 1 { "it" } else { "them" },
            )));
        }
    }
    // Dependents first.
    let mut left: Vec<&str> = drop.keys().copied().collect();
    while !left.is_empty() {
        let before = left.len();
        let mut i = 0;
        while i < left.len() {
            let name = left[i];
            let blocked = left.iter().any(|other| {
                cat.views
                    .get(name)
                    .is_some_and(|v| v.dependents.iter().any(|d| d == other))
            });
            if blocked {
                i += 1;
            } else {
                p.notes.push(format!(
                    "{name}: replaced by the contract's definition ({}), its privileges kept",
                    drop[name]
                ));
                p.steps.push(Step {
                    sql: format!("DROP VIEW {name}"),
                    what: format!("dropping {name} ({})", drop[name]),
                    top_up: false,
                });
                left.remove(i);
            }
        }
        if left.len() == before {
            return Err(Error::Internal(format!(
                "views depend on each other in a cycle: {}",
                left.join(", ")
            )));
        }
    }

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
    grants(script, cat, &created, &search_skipped, &mut p);
    Ok(p)
}

fn table_name(t: &str) -> &'static str {
    FileType::ALL
        .iter()
        .map(|f| f.layout().table)
        .find(|n| *n == t)
        .unwrap_or("?")
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Exactly the contract's privileges for `web_anon`: usage on the schema, SELECT on the views
/// and the code tables, EXECUTE on the search function. Each only when it is not held yet.
fn grants(
    script: &[Statement],
    cat: &Catalog,
    created: &BTreeSet<String>,
    search_skipped: &[&str],
    p: &mut Plan,
) {
    if !cat.anon {
        p.notes.push(format!(
            "no role {ANON_ROLE}: no privileges for anonymous reads were granted (README: \
             PostgREST); create it and run --init-schema again to grant them"
        ));
        return;
    }
    let missing = |name: &str| created.contains(name) || !cat.anon_has.contains(name);
    let mut granted = Vec::new();
    if !cat.anon_has.contains("schema") {
        p.steps.push(Step {
            sql: format!("GRANT USAGE ON SCHEMA {} TO {ANON_ROLE}", cat.schema),
            what: format!("granting {ANON_ROLE} usage on the schema"),
            top_up: false,
        });
        granted.push("usage on the schema".to_string());
    }
    for s in script {
        let (sql, name) = match &s.object {
            Object::View(n) => (format!("GRANT SELECT ON {n} TO {ANON_ROLE}"), n),
            Object::Table(n) if n.starts_with("ref_") => {
                (format!("GRANT SELECT ON {n} TO {ANON_ROLE}"), n)
            }
            Object::Function(n) if search_skipped.is_empty() => {
                let held = !created.contains(n) && cat.anon_has.contains("function");
                if !held {
                    p.steps.push(Step {
                        sql: format!("GRANT EXECUTE ON FUNCTION {n}(text) TO {ANON_ROLE}"),
                        what: format!("granting {ANON_ROLE} execute on {n}"),
                        top_up: false,
                    });
                    granted.push(format!("execute on {n}"));
                }
                continue;
            }
            _ => continue,
        };
        if missing(name) {
            p.steps.push(Step {
                sql,
                what: format!("granting {ANON_ROLE} select on {name}"),
                top_up: false,
            });
            granted.push(format!("select on {name}"));
        }
    }
    if !granted.is_empty() {
        p.notes
            .push(format!("{ANON_ROLE}: granted {}", granted.join(", ")));
    }
    if !cat.anon_extra.is_empty() {
        p.warnings.push(format!(
            "{ANON_ROLE} holds privileges on {}, which the contract does not give it; left as \
             they are (REVOKE ALL ON … FROM {ANON_ROLE} removes them)",
            cat.anon_extra.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::catalog::{FunctionInfo, IndexInfo, Relation, ViewInfo};
    use crate::schema::script::statements;
    use crate::schema::SCHEMA_SQL;

    fn script() -> Vec<Statement> {
        statements(SCHEMA_SQL).unwrap()
    }

    fn empty() -> Catalog {
        Catalog {
            schema: "public".into(),
            search_path: "public, pg_temp".into(),
            can_create: true,
            user: "owner".into(),
            ..Catalog::default()
        }
    }

    fn col(name: &str, ty: &str, not_null: bool) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            ty: ty.into(),
            not_null,
            generated: false,
        }
    }

    fn rel(kind: char, mine: bool) -> Relation {
        Relation {
            kind,
            owner: if mine { "owner" } else { "someone" }.into(),
            mine,
        }
    }

    /// A database as the old service left it: every table with rows, plain search vectors
    /// kept by its triggers, its index names, the five views answering as the contract says.
    fn old_service() -> Catalog {
        let mut c = empty();
        for t in FileType::ALL {
            let l = t.layout();
            c.relations.insert(l.table.into(), rel('r', true));
            let mut cols: Vec<ColumnInfo> = l
                .columns
                .iter()
                .map(|k| col(k.name, &type_name(k.kind), k.key))
                .collect();
            cols.push(col("search_vector", "tsvector", false));
            c.columns.insert(l.table.into(), cols);
            c.indexes.push(IndexInfo {
                name: format!("pk_{}", l.table),
                table: l.table.into(),
                method: "btree".into(),
                columns: l.key_names().iter().map(|s| s.to_string()).collect(),
                unique: true,
                special: false,
            });
            c.indexes.push(IndexInfo {
                name: format!("idx_{}_search", l.table),
                table: l.table.into(),
                method: "gin".into(),
                columns: vec!["search_vector".into()],
                unique: false,
                special: false,
            });
            let body = format!(
                "BEGIN NEW.search_vector := {}; RETURN NEW; END;",
                l.search_expression("NEW.")
            );
            c.triggers.insert(
                l.table.into(),
                vec![guard::Trigger {
                    name: format!("{}_search_trigger", l.table),
                    function: Some("f".into()),
                    language: "plpgsql".into(),
                    source: body,
                    tgtype: 23,
                }],
            );
            c.nonempty.insert(l.table.into());
            c.bytewise.insert(l.table.into(), false);
        }
        for s in script() {
            match &s.object {
                Object::Table(n) if n.starts_with("ref_") => {
                    c.relations.insert(n.clone(), rel('r', true));
                    c.columns.insert(
                        n.clone(),
                        vec![
                            col("code", "character varying(1)", true),
                            col("description", "character varying(50)", true),
                        ],
                    );
                    c.indexes.push(IndexInfo {
                        name: format!("{n}_pkey"),
                        table: n.clone(),
                        method: "btree".into(),
                        columns: vec!["code".into()],
                        unique: true,
                        special: false,
                    });
                }
                Object::View(n) => {
                    c.relations.insert(n.clone(), rel('v', true));
                    c.views.insert(n.clone(), ViewInfo::default());
                }
                _ => {}
            }
        }
        c.function = Some(FunctionInfo {
            owner: "owner".into(),
            mine: true,
            result: SEARCH_RESULT.into(),
            same: false,
        });
        c.staging = vec!["stg_issuer".into()];
        c
    }

    fn sqls(p: &Plan) -> Vec<&str> {
        p.steps.iter().map(|s| s.sql.as_str()).collect()
    }

    fn refusal(r: Result<Plan, Error>) -> (i32, String) {
        match r {
            Err(e) => (e.exit().code(), e.to_string()),
            Ok(p) => panic!("not refused: {:?}", sqls(&p)),
        }
    }

    #[test]
    fn an_empty_database_gets_the_whole_script() {
        let s = script();
        let p = plan(&s, &empty(), Options::default()).unwrap();
        let comments = s
            .iter()
            .filter(|x| matches!(x.object, Object::Comment { .. }))
            .count();
        // Everything but nothing: no grants without web_anon.
        assert_eq!(p.steps.len(), s.len());
        assert!(comments > 50);
        assert!(p.notes.iter().any(|n| n.contains("no role web_anon")));
    }

    #[test]
    fn the_old_services_database_is_taken_over_without_touching_its_tables() {
        let s = script();
        let p = plan(&s, &old_service(), Options::default()).unwrap();
        let sql = sqls(&p);
        // Only the journal and its indexes are created; codes topped up; the function replaced.
        assert!(sql
            .iter()
            .any(|q| q.starts_with("CREATE TABLE IF NOT EXISTS load_journal")));
        assert!(!sql
            .iter()
            .any(|q| q.contains("CREATE TABLE IF NOT EXISTS issue ")));
        assert!(!sql
            .iter()
            .any(|q| q.starts_with("ALTER") || q.starts_with("DROP")));
        assert!(!sql.iter().any(|q| q.contains("VIEW")), "{sql:?}");
        // Its search index counts; the query-side ones it lacks in this catalog are created.
        assert!(!sql.iter().any(|q| q.contains("issue_search_idx")));
        assert!(sql.iter().any(|q| q.contains("issue_status_idx")));
        assert!(sql
            .iter()
            .any(|q| q.starts_with("CREATE OR REPLACE FUNCTION search_securities")));
        assert!(p.notes.iter().any(|n| n.contains("stg_issuer")));
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("old service's trigger issue_search_trigger")));
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("--rewrite-tables changes them")));
        // No comment on the old tables.
        assert!(!sql.iter().any(|q| q.starts_with("COMMENT ON TABLE issue ")));
    }

    #[test]
    fn an_index_of_the_same_kind_under_another_name_is_not_made_twice() {
        let mut c = old_service();
        c.indexes.push(IndexInfo {
            name: "idx_issue_status".into(),
            table: "issue".into(),
            method: "btree".into(),
            columns: vec!["issue_status".into()],
            unique: false,
            special: false,
        });
        let p = plan(&script(), &c, Options::default()).unwrap();
        assert!(!sqls(&p).iter().any(|q| q.contains("issue_status_idx")));
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("idx_issue_status on (issue_status) serves as issue_status_idx")));
    }

    #[test]
    fn a_view_that_differs_is_replaced_with_its_privileges_unless_something_depends_on_it() {
        let mut c = old_service();
        c.views.insert(
            "v_issue".into(),
            ViewInfo {
                differs: Some("its column 1 is cusip where the contract has issuer_num".into()),
                dependents: vec![],
                grants: vec!["GRANT SELECT ON v_issue TO reporting".into()],
            },
        );
        let p = plan(&script(), &c, Options::default()).unwrap();
        let sql = sqls(&p);
        let drop = sql.iter().position(|q| *q == "DROP VIEW v_issue").unwrap();
        let create = sql
            .iter()
            .position(|q| q.starts_with("CREATE OR REPLACE VIEW v_issue AS"))
            .unwrap();
        assert!(drop < create);
        assert_eq!(sql[create + 1], "GRANT SELECT ON v_issue TO reporting");
        assert!(!sql.iter().any(|q| q.contains("CASCADE")));

        c.views.get_mut("v_issue").unwrap().dependents = vec!["consumer_report".into()];
        let (code, msg) = refusal(plan(&script(), &c, Options::default()));
        assert_eq!(code, 78);
        assert!(
            msg.contains("v_issue must change (its column 1 is cusip")
                && msg.contains("consumer_report depends on it"),
            "{msg}"
        );
    }

    #[test]
    fn refusals_name_the_object_and_what_differs() {
        let mut c = old_service();
        c.columns.get_mut("issue").unwrap()[13] = col("rate", "numeric(8,2)", false);
        let (code, msg) = refusal(plan(&script(), &c, Options::default()));
        assert_eq!(code, 78);
        assert_eq!(msg, "issue is not a table the loader can load: its column rate is numeric(8,2) where the loader expects numeric(6,3); nothing was changed");

        let mut c = old_service();
        c.relations.insert("v_security".into(), rel('v', false));
        c.views.get_mut("v_security").unwrap().differs = Some("x".into());
        let (code, msg) = refusal(plan(&script(), &c, Options::default()));
        assert_eq!(code, 78);
        assert!(
            msg.contains("v_security must change (x) but is owned by someone"),
            "{msg}"
        );

        let mut c = old_service();
        c.triggers.get_mut("issuer").unwrap().push(guard::Trigger {
            name: "audit".into(),
            function: Some("audit_fn".into()),
            language: "plpgsql".into(),
            source: "BEGIN RETURN NEW; END".into(),
            tgtype: 5,
        });
        let (code, msg) = refusal(plan(&script(), &c, Options::default()));
        assert_eq!(code, 78);
        assert!(
            msg.contains("trigger audit on issuer (function audit_fn)"),
            "{msg}"
        );

        let mut c = old_service();
        c.can_create = false;
        let (code, msg) = refusal(plan(&script(), &c, Options::default()));
        assert_eq!(code, 77);
        assert!(msg.contains("applied by its owner"), "{msg}");

        let mut c = old_service();
        c.relations.insert("issuer".into(), rel('v', true));
        let (code, msg) = refusal(plan(&script(), &c, Options::default()));
        assert_eq!(
            (code, msg.starts_with("issuer is a view, not a table")),
            (78, true),
            "{msg}"
        );
    }

    #[test]
    fn tables_with_rows_get_no_search_column_and_keep_their_collation_unless_asked() {
        let mut c = old_service();
        for t in ["issuer", "issue", "issue_attribute"] {
            c.columns.get_mut(t).unwrap().pop();
            c.triggers.insert(t.into(), vec![]);
            c.indexes.retain(|i| i.method != "gin");
        }
        let p = plan(&script(), &c, Options::default()).unwrap();
        let sql = sqls(&p);
        assert!(!sql
            .iter()
            .any(|q| q.contains("search_vector") || q.contains("FUNCTION")));
        assert!(p
            .warnings
            .iter()
            .any(|w| w.contains("full-text search (search_securities) is not installed")));

        let p = plan(
            &script(),
            &c,
            Options {
                rewrite_tables: true,
            },
        )
        .unwrap();
        let sql = sqls(&p);
        assert!(sql
            .iter()
            .any(|q| q.starts_with("ALTER TABLE issuer ADD COLUMN IF NOT EXISTS search_vector")));
        assert!(sql.contains(&"ALTER TABLE issue ALTER COLUMN issuer_num TYPE varchar(6) COLLATE \"C\", ALTER COLUMN issue_num TYPE varchar(2) COLLATE \"C\""));
        // Every view over the keys goes first and comes back after.
        let drops = sql.iter().filter(|q| q.starts_with("DROP VIEW")).count();
        assert_eq!(drops, 5);
        assert!(sql.iter().any(|q| q.contains("issue_search_idx")));
    }

    #[test]
    fn grants_for_web_anon_are_exactly_the_contracts() {
        let mut c = empty();
        c.anon = true;
        let p = plan(&script(), &c, Options::default()).unwrap();
        let grants: Vec<&str> = sqls(&p)
            .into_iter()
            .filter(|q| q.starts_with("GRANT"))
            .collect();
        assert_eq!(grants.len(), 1 + 5 + 9 + 1, "{grants:?}");
        assert!(grants.contains(&"GRANT EXECUTE ON FUNCTION search_securities(text) TO web_anon"));
        assert!(!grants
            .iter()
            .any(|g| g.contains(" issue ") || g.contains("load_journal")));
        // Already held: nothing to grant.
        let mut c = old_service();
        c.anon = true;
        c.function.as_mut().unwrap().same = true;
        c.anon_has = ["schema", "function"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for s in script() {
            if let Object::View(n) | Object::Table(n) = &s.object {
                c.anon_has.insert(n.clone());
            }
        }
        let p = plan(&script(), &c, Options::default()).unwrap();
        assert!(!sqls(&p).iter().any(|q| q.starts_with("GRANT")));
    }
}
