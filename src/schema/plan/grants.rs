//! The anonymous role's privileges: exactly the contract's, each granted only when missing.

use std::collections::BTreeSet;

use super::{Plan, Step};
use crate::schema::catalog::{Catalog, ANON_ROLE};
use crate::schema::script::{Object, Statement};

/// Exactly the contract's privileges for `web_anon`: usage on the schema, SELECT on the views
/// and the code tables, EXECUTE on the search function. Each only when it is not held yet.
pub(super) fn grants(
    script: &[Statement],
    cat: &Catalog,
    created: &BTreeSet<String>,
    search_skipped: &[&str],
    p: &mut Plan,
) {
    if !cat.anon {
        p.notes.push(format!(
            "no role {ANON_ROLE}: no privileges for anonymous reads were granted (docs/database.md: \
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
