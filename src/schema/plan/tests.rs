//! The planner's rules, on catalogs written by hand: an empty database, the old service's,
//! and each refusal.

use super::tables::type_name;
use super::*;
use crate::schema::catalog::ColumnInfo;
use crate::schema::catalog::{FunctionInfo, IndexInfo, Relation, ViewInfo};
use crate::schema::guard;
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
    // The journal is the loader's own (its later columns are added to it); the old
    // service's tables are neither altered nor dropped.
    assert!(!sql.iter().any(|q| (q.starts_with("ALTER")
        && !q.starts_with("ALTER TABLE load_journal"))
        || q.starts_with("DROP")));
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
