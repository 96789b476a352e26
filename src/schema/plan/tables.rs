//! Whether the tables already there are ones the loader can load: master tables by their
//! columns (whatever their constraint and index names), code tables and the journal by the
//! columns the loader uses, triggers by what they do.

use std::collections::BTreeMap;

use super::{refuse, Plan, JOURNAL_COLUMNS};
use crate::error::Error;
use crate::layout::{FileType, Kind, Layout};
use crate::schema::catalog::{Catalog, ColumnInfo};
use crate::schema::guard;
use crate::schema::script::{Object, Statement};

pub(super) fn kind_name(kind: char) -> &'static str {
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
pub(super) fn type_name(kind: Kind) -> String {
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
pub(super) enum Search {
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

/// Refuses a table the loader cannot load; notes what it found. Returns how each existing
/// master table's search vector is kept.
pub(super) fn check(
    script: &[Statement],
    cat: &Catalog,
    p: &mut Plan,
) -> Result<BTreeMap<&'static str, Search>, Error> {
    let mut search: BTreeMap<&'static str, Search> = BTreeMap::new();
    for t in FileType::ALL {
        let l = t.layout();
        let Some(rel) = cat.relations.get(l.table) else {
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
    Ok(search)
}
