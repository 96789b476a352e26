//! Which of the five views stay as they are, and which are dropped and created again (in
//! an order that drops a dependent before what it depends on). A view that must change but
//! has other dependents, or belongs to another role, is refused: never CASCADE.

use std::collections::BTreeMap;

use super::tables::kind_name;
use super::{join, refuse, Plan, Step};
use crate::error::Error;
use crate::schema::catalog::Catalog;
use crate::schema::script::{Object, Statement};

/// The views to drop and create again, each with why; their DROP steps are added to `p`.
pub(super) fn replaced<'s>(
    script: &'s [Statement],
    cat: &Catalog,
    rewrite_keys: bool,
    p: &mut Plan,
) -> Result<BTreeMap<&'s str, String>, Error> {
    let views: Vec<(&str, &Statement)> = script
        .iter()
        .filter_map(|s| match &s.object {
            Object::View(n) => Some((n.as_str(), s)),
            _ => None,
        })
        .collect();
    let mut drop: BTreeMap<&str, String> = BTreeMap::new();
    for (name, _) in &views {
        let Some(rel) = cat.relations.get(*name) else {
            continue;
        };
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
    Ok(drop)
}
