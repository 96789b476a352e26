//! The rights part of `--check`: every privilege a load uses, asked of the catalog
//! (`has_*_privilege`) rather than tried, so that nothing is written.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Transaction;

use super::schema::Found;
use crate::db;
use crate::error::Error;
use crate::layout::FileType;
use crate::plan::Plan;
use crate::sql;

/// One privilege a load needs: `(kind, object, privilege)`.
type Need = (&'static str, String, &'static str);

fn needs(found: &Found, sequence: Option<String>) -> Vec<Need> {
    let mut n: Vec<Need> = vec![("database", found.database.clone(), "TEMPORARY")];
    for t in FileType::ALL {
        for p in ["SELECT", "INSERT", "UPDATE"] {
            n.push(("table", t.layout().table.to_string(), p));
        }
    }
    for t in found.tables().filter(|t| t.starts_with("ref_")) {
        n.push(("table", t.clone(), "SELECT"));
    }
    for p in ["SELECT", "INSERT"] {
        n.push(("table", "load_journal".to_string(), p));
    }
    if let Some(s) = sequence {
        n.push(("sequence", s, "USAGE"));
    }
    n
}

/// `GRANT p, q ON [kind] object TO role`, one per object, in the order first needed.
fn grants(lacking: &[Need], role: &str) -> Vec<String> {
    let mut order: Vec<(&str, &str)> = Vec::new();
    let mut privileges: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for (kind, object, p) in lacking {
        let key = (*kind, object.as_str());
        if !order.contains(&key) {
            order.push(key);
        }
        privileges.entry(key).or_default().push(p);
    }
    order
        .iter()
        .map(|key @ (kind, object)| {
            let on = match *kind {
                "table" => object.to_string(),
                other => format!("{} {object}", other.to_uppercase()),
            };
            let ps = privileges
                .get(key)
                .map(|v| v.join(", "))
                .unwrap_or_default();
            format!("GRANT {ps} ON {on} TO {role}")
        })
        .collect()
}

/// The rights a load needs (docs/operations.md lists the grants), asked of the catalog.
pub(super) async fn check(
    tx: &Transaction<'_>,
    found: &Found,
    plan: &Plan,
) -> Result<String, Error> {
    let fail = |e: tokio_postgres::Error| db::fail("reading privileges from the catalog", &e);
    let journal_has_id = found
        .relations
        .get("load_journal")
        .is_some_and(|r| r.columns.iter().any(|(n, _)| n == "id"));
    let sequence: Option<String> = if journal_has_id {
        tx.query_one("SELECT pg_get_serial_sequence('load_journal', 'id')", &[])
            .await
            .map_err(fail)?
            .get(0)
    } else {
        None
    };
    let needs = needs(found, sequence);
    let (kinds, (objects, privileges)): (Vec<&str>, (Vec<String>, Vec<&str>)) =
        needs.iter().map(|(k, o, p)| (*k, (o.clone(), *p))).unzip();
    // NULL: the object is missing, which the schema check reports.
    let rows = tx
        .query(
            "SELECT CASE x.k \
                      WHEN 'database' THEN has_database_privilege(x.o, x.p) \
                      WHEN 'table' THEN has_table_privilege(to_regclass(x.o), x.p) \
                      WHEN 'sequence' THEN has_sequence_privilege(to_regclass(x.o), x.p) \
                           OR has_sequence_privilege(to_regclass(x.o), 'UPDATE') \
                    END \
               FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS x(k, o, p, i) \
              ORDER BY x.i",
            &[&kinds, &objects, &privileges],
        )
        .await
        .map_err(fail)?;
    let mut lacking: Vec<Need> = Vec::new();
    let mut unchecked: BTreeSet<&str> = BTreeSet::new();
    for (need, row) in needs.iter().zip(&rows) {
        match row.get::<_, Option<bool>>(0) {
            Some(true) => {}
            Some(false) => lacking.push(need.clone()),
            None => {
                unchecked.insert(need.1.as_str());
            }
        }
    }
    let role = &found.user;
    let mut problems: Vec<String> = Vec::new();
    if !lacking.is_empty() {
        let what: Vec<String> = lacking
            .iter()
            .map(|(kind, object, p)| match *kind {
                "table" => format!("{p} on {object}"),
                k => format!("{p} on {k} {object}"),
            })
            .collect();
        problems.push(format!(
            "{role} lacks {}: as the owner, {}",
            what.join(", "),
            grants(&lacking, role).join("; ")
        ));
    }
    if plan.load.initial_load == crate::cli::InitialLoad::Always {
        for t in FileType::ALL {
            let table = t.layout().table;
            // A table it owns, or one that is missing (the schema check says so), is fine
            // here; one it may not read is reported above already.
            let unreadable = lacking
                .iter()
                .any(|(k, o, p)| *k == "table" && o == table && *p == "SELECT");
            let Some(relation) = found.relations.get(table) else {
                continue;
            };
            if unreadable {
                continue;
            }
            let row = tx
                .query_one(sql::emptiness_and_owner(t.layout()).as_str(), &[])
                .await
                .map_err(fail)?;
            let (empty, create, schema): (bool, bool, String) =
                (row.get(0), row.get(4), row.get(5));
            if empty && relation.mine && !create {
                problems.push(format!(
                    "--initial-load always (CUSIP_INITIAL_LOAD) is set and {table} is empty, so \
                     a load would take the direct path, which rebuilds its indexes and needs \
                     CREATE on its schema {schema}; {role} does not have it: GRANT CREATE ON \
                     SCHEMA {schema} TO {role}, or use auto (the default: the staged path then)"
                ));
            }
            if empty && !relation.mine {
                problems.push(format!(
                    "--initial-load always (CUSIP_INITIAL_LOAD) is set and {table} is empty, so \
                     a load would take the direct path, which needs the table's owner; {role} \
                     does not own it: load as the owner, or use auto (the default: the staged \
                     path for a table the role does not own)"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::Denied(format!(
            "{} (docs/operations.md lists the grants a load needs)",
            problems.join("; ")
        )));
    }
    let unchecked = if unchecked.is_empty() {
        String::new()
    } else {
        format!(
            "; not checked on what the schema lacks: {}",
            unchecked.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    let who = if found.superuser {
        format!("{role} is a superuser: it")
    } else {
        role.to_string()
    };
    Ok(format!(
        "{who} may SELECT, INSERT, UPDATE the three master tables, SELECT the code tables, \
         SELECT and INSERT load_journal (and use its id sequence) and create temporary tables \
         in {}{unchecked}",
        found.database
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::schema::tests::found;

    #[test]
    fn grants_are_grouped_by_object_in_the_order_needed() {
        let lacking: Vec<Need> = vec![
            ("table", "issue".into(), "INSERT"),
            ("database", "cusip".into(), "TEMPORARY"),
            ("table", "issue".into(), "UPDATE"),
            ("sequence", "public.load_journal_id_seq".into(), "USAGE"),
        ];
        assert_eq!(
            grants(&lacking, "app"),
            vec![
                "GRANT INSERT, UPDATE ON issue TO app",
                "GRANT TEMPORARY ON DATABASE cusip TO app",
                "GRANT USAGE ON SEQUENCE public.load_journal_id_seq TO app",
            ]
        );
        let n = needs(&found(), Some("s".into()));
        // TEMPORARY, 3 × 3 on the masters, 9 code tables, 2 on the journal, the sequence.
        assert_eq!(n.len(), 1 + 9 + 9 + 2 + 1);
    }
}
