//! The schema part of `--check`: what the catalog holds of what `schema.sql` makes, and
//! what differs from what this loader writes into and reads from.

use std::collections::BTreeMap;

use tokio_postgres::Transaction;

use crate::db;
use crate::error::Error;
use crate::layout::{FileType, Kind};
use crate::schema::{self, Object};

/// A relation of one of the loader's names, as the search_path resolves it (as a load's
/// unqualified names are).
#[derive(Debug, Clone)]
pub(super) struct Relation {
    pub(super) kind: char,
    /// `(name, format_type)`, in column order.
    pub(super) columns: Vec<(String, String)>,
    /// The current role owns it (or is a member of its owner).
    pub(super) mine: bool,
}

/// What the catalog holds of what `schema.sql` makes.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub(super) objects: Vec<Object>,
    pub(super) relations: BTreeMap<String, Relation>,
    pub(super) function: bool,
    pub(super) user: String,
    pub(super) superuser: bool,
    pub(super) database: String,
    /// Schemas holding objects of the loader's names that the role may not use (so that
    /// the search_path skips them).
    pub(super) hidden_in: Vec<String>,
}

impl Found {
    pub(super) fn tables(&self) -> impl Iterator<Item = &String> {
        self.objects.iter().filter_map(|o| match o {
            Object::Table(n) => Some(n),
            _ => None,
        })
    }

    pub(super) fn views(&self) -> impl Iterator<Item = &String> {
        self.objects.iter().filter_map(|o| match o {
            Object::View(n) => Some(n),
            _ => None,
        })
    }

    /// The journal's columns a load writes: the loader's list, and whatever `schema.sql`
    /// has added to the table since.
    pub(super) fn journal_columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = schema::JOURNAL_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect();
        for o in &self.objects {
            if let Object::Column { table, column } = o {
                if table == "load_journal" && !cols.contains(column) {
                    cols.push(column.clone());
                }
            }
        }
        cols
    }

    pub(super) async fn read(tx: &Transaction<'_>) -> Result<Found, Error> {
        let fail = |e: tokio_postgres::Error| db::fail("reading the catalog", &e);
        let objects = schema::objects()?;
        let mut found = Found {
            objects,
            ..Found::default()
        };
        let names: Vec<String> = found.tables().chain(found.views()).cloned().collect();
        let rows = tx
            .query(
                "SELECT x.n, c.relkind::text, pg_has_role(c.relowner, 'USAGE'), \
                        ARRAY(SELECT a.attname::text FROM pg_attribute a \
                               WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                               ORDER BY a.attnum), \
                        ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                               WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                               ORDER BY a.attnum) \
                   FROM unnest($1::text[]) AS x(n) JOIN pg_class c ON c.oid = to_regclass(x.n)",
                &[&names],
            )
            .await
            .map_err(fail)?;
        for r in rows {
            let kind: String = r.get(1);
            let (cols, types): (Vec<String>, Vec<String>) = (r.get(3), r.get(4));
            found.relations.insert(
                r.get(0),
                Relation {
                    kind: kind.chars().next().unwrap_or('?'),
                    columns: cols.into_iter().zip(types).collect(),
                    mine: r.get(2),
                },
            );
        }
        let row = tx
            .query_one(
                "SELECT to_regprocedure('search_securities(text)') IS NOT NULL, \
                        current_user::text, \
                        (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
                        current_database()::text, \
                        ARRAY(SELECT DISTINCT n.nspname::text FROM pg_class c \
                                JOIN pg_namespace n ON n.oid = c.relnamespace \
                               WHERE c.relname = ANY($1) \
                                 AND NOT has_schema_privilege(n.oid, 'USAGE') ORDER BY 1)",
                &[&names],
            )
            .await
            .map_err(fail)?;
        found.function = row.get(0);
        found.user = row.get(1);
        found.superuser = row.get::<_, Option<bool>>(2).unwrap_or(false);
        found.database = row.get(3);
        found.hidden_in = row.get(4);
        Ok(found)
    }
}

/// `format_type()` of a layout column's type.
fn type_name(kind: Kind) -> String {
    match kind {
        Kind::Varchar(n) => format!("character varying({n})"),
        other => other.sql_type(),
    }
}

/// What differs from what this loader expects, one entry per object; empty when current.
fn differences(found: &Found) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    let mut wrong: Vec<String> = Vec::new();
    let journal_columns = found.journal_columns();
    for name in found.tables() {
        let Some(rel) = found.relations.get(name) else {
            missing.push(format!("table {name}"));
            continue;
        };
        if !matches!(rel.kind, 'r' | 'p') {
            wrong.push(format!("{name} is not a table (relkind {})", rel.kind));
            continue;
        }
        let has = |c: &str| rel.columns.iter().find(|(n, _)| n == c);
        let master = FileType::ALL
            .iter()
            .map(|t| t.layout())
            .find(|l| l.table == name);
        if let Some(l) = master {
            for c in l.columns {
                let want = type_name(c.kind);
                match has(c.name) {
                    None => missing.push(format!("column {name}.{}", c.name)),
                    Some((_, ty)) if *ty != want => wrong.push(format!(
                        "{name}.{} is {ty} where the loader expects {want}",
                        c.name
                    )),
                    Some(_) => {}
                }
            }
        } else if name == "load_journal" {
            for c in &journal_columns {
                if has(c).is_none() {
                    missing.push(format!("column load_journal.{c}"));
                }
            }
        } else {
            for c in ["code", "description"] {
                if has(c).is_none() {
                    missing.push(format!("column {name}.{c}"));
                }
            }
        }
    }
    for name in found.views() {
        match found.relations.get(name) {
            None => missing.push(format!("view {name}")),
            Some(r) if r.kind != 'v' => {
                wrong.push(format!("{name} is not a view (relkind {})", r.kind))
            }
            Some(_) => {}
        }
    }
    let mut out = Vec::new();
    if found.relations.is_empty() {
        // Not one: the list would only repeat the schema.
        out.push(format!(
            "missing: all of the loader's {} tables and {} views",
            found.tables().count(),
            found.views().count()
        ));
    } else if !missing.is_empty() {
        out.push(format!("missing: {}", missing.join(", ")));
    }
    out.extend(wrong);
    out
}

/// The tables, their columns (the journal's newest included), the views; and no trigger on a
/// master table that would make a load refuse.
pub(super) async fn check(tx: &Transaction<'_>, found: &Found) -> Result<String, Error> {
    let diffs = differences(found);
    if !diffs.is_empty() {
        let everything_missing = diffs.len() == 1 && diffs[0].starts_with("missing:");
        if everything_missing && !found.hidden_in.is_empty() {
            let schemas = found.hidden_in.join(", ");
            return Err(Error::Denied(format!(
                "{}; the loader's tables exist in schema {schemas}, on which {} lacks USAGE: as \
                 the owner, GRANT USAGE ON SCHEMA {schemas} TO {}",
                diffs[0], found.user, found.user
            )));
        }
        return Err(Error::Config(format!(
            "the schema is not what this loader expects: {}. Run `cusip-loader --init-schema` \
             as the schema owner: it adds what is missing and changes nothing else (and \
             refuses, naming it, what it cannot bring up to date)",
            diffs.join("; ")
        )));
    }
    for t in FileType::ALL {
        schema::guard::check(tx, t.layout()).await?;
    }
    let refs = found.tables().filter(|t| t.starts_with("ref_")).count();
    let views = found.views().count();
    let search = if found.function {
        ""
    } else {
        "; note: full-text search (search_securities) is not installed, which loads do not \
         need (`--init-schema --rewrite-tables` installs it)"
    };
    Ok(format!(
        "issuer, issue, issue_attribute, {refs} code tables, load_journal ({} columns, \
         business_date and sha256 included) and {views} views as this loader expects{search}",
        found.journal_columns().len()
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// What the catalog of a current schema holds.
    pub(in crate::check) fn found() -> Found {
        let objects = schema::objects().unwrap();
        let mut f = Found {
            objects,
            database: "cusip".into(),
            user: "cusip_app".into(),
            ..Found::default()
        };
        let names: Vec<String> = f.tables().chain(f.views()).cloned().collect();
        for n in names {
            let columns: Vec<(String, String)> = match FileType::ALL
                .iter()
                .map(|t| t.layout())
                .find(|l| l.table == n)
            {
                Some(l) => l
                    .columns
                    .iter()
                    .map(|c| (c.name.to_string(), type_name(c.kind)))
                    .collect(),
                None if n == "load_journal" => f
                    .journal_columns()
                    .into_iter()
                    .map(|c| (c, "text".to_string()))
                    .collect(),
                None => vec![
                    ("code".into(), "text".into()),
                    ("description".into(), "text".into()),
                ],
            };
            let kind = if n.starts_with("v_") { 'v' } else { 'r' };
            f.relations.insert(
                n,
                Relation {
                    kind,
                    columns,
                    mine: false,
                },
            );
        }
        f
    }

    #[test]
    fn a_current_schema_has_no_differences() {
        let f = found();
        assert_eq!(differences(&f), Vec::<String>::new());
        // The journal's columns include the ones added after the first release.
        let cols = f.journal_columns();
        assert!(cols.iter().any(|c| c == "business_date"), "{cols:?}");
        assert!(cols.iter().any(|c| c == "sha256"), "{cols:?}");
        assert_eq!(f.tables().count(), 13);
        assert_eq!(f.views().count(), 5);
    }

    #[test]
    fn differences_name_each_missing_or_different_object() {
        let mut f = found();
        f.relations.remove("ref_sale_type");
        f.relations.remove("v_security");
        if let Some(j) = f.relations.get_mut("load_journal") {
            j.columns.retain(|(n, _)| n != "business_date");
        }
        if let Some(i) = f.relations.get_mut("issue") {
            for c in i.columns.iter_mut().filter(|(n, _)| n == "rate") {
                c.1 = "numeric(7,3)".into();
            }
        }
        if let Some(v) = f.relations.get_mut("v_issue") {
            v.kind = 'r';
        }
        let d = differences(&f);
        assert_eq!(
            d[0],
            "missing: table ref_sale_type, column load_journal.business_date, view v_security"
        );
        assert!(
            d.iter()
                .any(|x| x.starts_with("issue.rate is numeric(7,3) where")),
            "{d:?}"
        );
        assert!(
            d.iter().any(|x| x == "v_issue is not a view (relkind r)"),
            "{d:?}"
        );
    }
}
