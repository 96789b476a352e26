//! What the database already holds, read from its catalog before `--init-schema` changes
//! anything: the facts [`super::plan`] decides on.
//!
//! Everything is read inside the init-schema transaction, under its lock, so the plan is made
//! on exactly what it will change.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Transaction;

use super::guard::{self, Trigger};
use super::probe;
use super::script::{Object, Statement};
use crate::db;
use crate::error::Error;
use crate::layout::FileType;
use crate::sql;

/// The role PostgREST switches to for anonymous requests.
pub const ANON_ROLE: &str = "web_anon";

/// A table or view of one of the names the schema uses.
#[derive(Debug, Clone)]
pub struct Relation {
    /// `pg_class.relkind`: `r` table, `v` view, `m` materialized view, `p` partitioned, …
    pub kind: char,
    pub owner: String,
    /// The current role may alter or drop it (it is the owner, or a member of the owner).
    pub mine: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    /// `format_type()`, e.g. `character varying(6)`, `numeric(6,3)`, `tsvector`.
    pub ty: String,
    pub not_null: bool,
    pub generated: bool,
}

#[derive(Debug, Clone)]
pub struct IndexInfo {
    pub name: String,
    pub table: String,
    pub method: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// Has a predicate or an expression column: not equivalent to a plain column index.
    pub special: bool,
}

/// One of the five views, as it is now.
#[derive(Debug, Clone, Default)]
pub struct ViewInfo {
    /// Why it does not answer as the loader's own definition does; `None` when it does.
    pub differs: Option<String>,
    /// Objects that depend on it (other views, functions), by name.
    pub dependents: Vec<String>,
    /// GRANT statements that give back its current privileges if it is re-created.
    pub grants: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub owner: String,
    pub mine: bool,
    /// `pg_get_function_result()`.
    pub result: String,
    /// Language, security, search_path, volatility and body are the loader's own.
    pub same: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The schema, quoted as an identifier.
    pub schema: String,
    /// The schema and pg_temp, as `SET search_path` was given them for this transaction.
    pub search_path: String,
    pub can_create: bool,
    pub user: String,
    pub anon: bool,
    pub relations: BTreeMap<String, Relation>,
    pub columns: BTreeMap<String, Vec<ColumnInfo>>,
    pub indexes: Vec<IndexInfo>,
    /// Enabled user triggers and rules per master table.
    pub triggers: BTreeMap<String, Vec<Trigger>>,
    /// Master tables that hold at least one row.
    pub nonempty: BTreeSet<String>,
    /// Master tables whose key columns sort byte-wise (collation "C").
    pub bytewise: BTreeMap<String, bool>,
    pub views: BTreeMap<String, ViewInfo>,
    /// `search_securities(text)`, if there is one.
    pub function: Option<FunctionInfo>,
    /// Objects `web_anon` already holds its grant on: `schema`, relation names, `function`.
    pub anon_has: BTreeSet<String>,
    /// Master tables and the journal on which `web_anon` holds some privilege.
    pub anon_extra: Vec<String>,
    /// The old service's permanent staging tables, if present.
    pub staging: Vec<String>,
}

/// The old service's staging tables: recognised, never used.
pub const OLD_STAGING: [&str; 3] = ["stg_issuer", "stg_issue", "stg_issue_attribute"];

fn fail(what: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |e| db::fail(&format!("reading the catalog ({what})"), &e)
}

/// Every relation name the script creates, plus the old staging tables.
fn names(script: &[Statement]) -> Vec<String> {
    let mut names: Vec<String> = script
        .iter()
        .filter_map(|s| match &s.object {
            Object::Table(n) | Object::View(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    names.extend(OLD_STAGING.iter().map(|s| s.to_string()));
    names
}

impl Catalog {
    /// Reads the catalog. `SET LOCAL search_path` to the schema (then pg_temp) is done here
    /// first, so that views and the function are created, and compared, in that schema.
    pub async fn read(tx: &Transaction<'_>, script: &[Statement]) -> Result<Catalog, Error> {
        let row = tx
            .query_one(
                "SELECT quote_ident(current_schema()), current_user::text, \
                        EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
                &[&ANON_ROLE],
            )
            .await
            .map_err(fail("schema"))?;
        let schema: Option<String> = row.get(0);
        let Some(schema) = schema else {
            return Err(Error::Config(
                "no schema to create the tables in: the search_path names none that exists \
                 (SHOW search_path; CREATE SCHEMA, or ALTER ROLE … SET search_path)"
                    .into(),
            ));
        };
        let mut cat = Catalog {
            user: row.get(1),
            anon: row.get(2),
            ..Catalog::default()
        };
        tx.batch_execute(&format!("SET LOCAL search_path = {schema}, pg_temp"))
            .await
            .map_err(fail("search_path"))?;
        let row = tx
            .query_one(
                "SELECT current_setting('search_path'), \
                        has_schema_privilege(current_schema(), 'CREATE')",
                &[],
            )
            .await
            .map_err(fail("search_path"))?;
        cat.search_path = row.get(0);
        cat.can_create = row.get(1);
        cat.schema = schema;
        // Before reading tables it may have no right to read.
        super::plan::may_create(&cat)?;

        let names = names(script);
        let ns = "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())";
        for r in tx
            .query(
                &format!(
                    "SELECT c.relname::text, c.relkind::text, pg_get_userbyid(c.relowner)::text, \
                            pg_has_role(c.relowner, 'USAGE') \
                       FROM pg_class c WHERE c.relnamespace = {ns} AND c.relname = ANY($1)"
                ),
                &[&names],
            )
            .await
            .map_err(fail("relations"))?
        {
            let kind: String = r.get(1);
            cat.relations.insert(
                r.get(0),
                Relation {
                    kind: kind.chars().next().unwrap_or('?'),
                    owner: r.get(2),
                    mine: r.get(3),
                },
            );
        }
        cat.staging = OLD_STAGING
            .iter()
            .filter(|n| cat.relations.contains_key(**n))
            .map(|s| s.to_string())
            .collect();

        for r in tx
            .query(
                &format!(
                    "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                            a.attnotnull, a.attgenerated <> '' \
                       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                      WHERE c.relnamespace = {ns} AND c.relname = ANY($1) \
                        AND a.attnum > 0 AND NOT a.attisdropped \
                      ORDER BY c.relname, a.attnum"
                ),
                &[&names],
            )
            .await
            .map_err(fail("columns"))?
        {
            cat.columns.entry(r.get(0)).or_default().push(ColumnInfo {
                name: r.get(1),
                ty: r.get(2),
                not_null: r.get(3),
                generated: r.get(4),
            });
        }

        for r in tx
            .query(
                &format!(
                    "SELECT t.relname::text, i.relname::text, am.amname::text, x.indisunique, \
                            x.indpred IS NOT NULL OR x.indexprs IS NOT NULL, \
                            ARRAY(SELECT a.attname::text \
                                    FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, o) \
                                    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n \
                                   ORDER BY k.o) \
                       FROM pg_index x \
                       JOIN pg_class i ON i.oid = x.indexrelid \
                       JOIN pg_class t ON t.oid = x.indrelid \
                       JOIN pg_am am ON am.oid = i.relam \
                      WHERE t.relnamespace = {ns} AND t.relname = ANY($1)"
                ),
                &[&names],
            )
            .await
            .map_err(fail("indexes"))?
        {
            cat.indexes.push(IndexInfo {
                table: r.get(0),
                name: r.get(1),
                method: r.get(2),
                unique: r.get(3),
                special: r.get(4),
                columns: r.get(5),
            });
        }

        for t in FileType::ALL {
            let l = t.layout();
            if cat.relations.get(l.table).map(|r| r.kind) != Some('r') {
                continue;
            }
            let oid = regclass(l.table);
            let rows = tx
                .query(guard::triggers_sql(&oid).as_str(), &[])
                .await
                .map_err(fail("triggers"))?;
            cat.triggers
                .insert(l.table.to_string(), guard::from_rows(&rows));
            let empty: bool = tx
                .query_one(sql::is_empty(l).as_str(), &[])
                .await
                .map_err(fail("rows"))?
                .get(0);
            if !empty {
                cat.nonempty.insert(l.table.to_string());
            }
            let bytewise: Option<bool> = tx
                .query_one(sql::keys_sort_bytewise(l).as_str(), &[])
                .await
                .map_err(fail("collations"))?
                .get(0);
            cat.bytewise
                .insert(l.table.to_string(), bytewise.unwrap_or(false));
        }

        cat.read_function(tx, script).await?;
        cat.read_anon(tx, &names).await?;
        cat.read_views(tx, script).await?;
        Ok(cat)
    }

    async fn read_function(
        &mut self,
        tx: &Transaction<'_>,
        script: &[Statement],
    ) -> Result<(), Error> {
        let Some(ours) = script
            .iter()
            .find(|s| matches!(s.object, Object::Function(_)))
        else {
            return Ok(());
        };
        let body = ours.function_body().unwrap_or_default();
        let config = format!("search_path={}", self.search_path);
        let row = tx
            .query_opt(
                "SELECT pg_get_userbyid(p.proowner)::text, pg_has_role(p.proowner, 'USAGE'), \
                        pg_get_function_result(p.oid), \
                        l.lanname = 'sql' AND p.prosecdef AND p.provolatile = 's' \
                          AND coalesce(p.proconfig, '{}') = ARRAY[$1] AND p.prosrc = $2 \
                   FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang \
                  WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
                    AND p.proname = 'search_securities' \
                    AND pg_get_function_identity_arguments(p.oid) = 'search_query text'",
                &[&config, &body],
            )
            .await
            .map_err(fail("search_securities"))?;
        self.function = row.map(|r| FunctionInfo {
            owner: r.get(0),
            mine: r.get(1),
            result: r.get(2),
            same: r.get(3),
        });
        Ok(())
    }

    /// Which of the grants the contract gives `web_anon` it holds explicitly already, and
    /// what it holds that the contract does not give it.
    async fn read_anon(&mut self, tx: &Transaction<'_>, names: &[String]) -> Result<(), Error> {
        if !self.anon {
            return Ok(());
        }
        let anon = "(SELECT oid FROM pg_roles WHERE rolname = 'web_anon')";
        let ns = "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())";
        let rows = tx
            .query(
                &format!(
                    "SELECT 'schema' FROM pg_namespace n, aclexplode(n.nspacl) a \
                      WHERE n.oid = {ns} AND a.grantee = {anon} AND a.privilege_type = 'USAGE' \
                     UNION \
                     SELECT c.relname::text FROM pg_class c, aclexplode(c.relacl) a \
                      WHERE c.relnamespace = {ns} AND c.relname = ANY($1) \
                        AND a.grantee = {anon} AND a.privilege_type = 'SELECT' \
                     UNION \
                     SELECT 'function' FROM pg_proc p, aclexplode(p.proacl) a \
                      WHERE p.pronamespace = {ns} AND p.proname = 'search_securities' \
                        AND a.grantee = {anon} AND a.privilege_type = 'EXECUTE'"
                ),
                &[&names],
            )
            .await
            .map_err(fail("web_anon's privileges"))?;
        self.anon_has = rows.iter().map(|r| r.get(0)).collect();
        let masters: Vec<String> = FileType::ALL
            .iter()
            .map(|t| t.layout().table.to_string())
            .chain(["load_journal".to_string()])
            .collect();
        let rows = tx
            .query(
                &format!(
                    "SELECT DISTINCT c.relname::text FROM pg_class c, aclexplode(c.relacl) a \
                      WHERE c.relnamespace = {ns} AND c.relname = ANY($1) AND a.grantee = {anon} \
                      ORDER BY 1"
                ),
                &[&masters],
            )
            .await
            .map_err(fail("web_anon's privileges"))?;
        self.anon_extra = rows.iter().map(|r| r.get(0)).collect();
        Ok(())
    }

    async fn read_views(
        &mut self,
        tx: &Transaction<'_>,
        script: &[Statement],
    ) -> Result<(), Error> {
        let existing: Vec<&Statement> = script
            .iter()
            .filter(|s| match &s.object {
                Object::View(n) => self.relations.get(n).is_some_and(|r| r.kind == 'v'),
                _ => false,
            })
            .collect();
        for s in &existing {
            let Object::View(name) = &s.object else {
                continue;
            };
            let oid = regclass(name);
            let dependents = tx
                .query(
                    &format!(
                        "SELECT DISTINCT coalesce(dv.oid::regclass::text, \
                                                  pg_describe_object(d.classid, d.objid, d.objsubid)) \
                           FROM pg_depend d \
                           LEFT JOIN pg_rewrite rw ON d.classid = 'pg_rewrite'::regclass AND rw.oid = d.objid \
                           LEFT JOIN pg_class dv ON dv.oid = rw.ev_class \
                          WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = {oid} \
                            AND d.deptype = 'n' AND (rw.oid IS NULL OR rw.ev_class <> {oid}) \
                          ORDER BY 1"
                    ),
                    &[],
                )
                .await
                .map_err(fail("view dependencies"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let grants = tx
                .query(
                    &format!(
                        "SELECT a.privilege_type, \
                                CASE a.grantee WHEN 0 THEN 'PUBLIC' \
                                     ELSE quote_ident(pg_get_userbyid(a.grantee)) END, \
                                a.is_grantable \
                           FROM pg_class c, aclexplode(c.relacl) a \
                          WHERE c.oid = {oid} AND a.grantee <> c.relowner \
                          ORDER BY 2, 1"
                    ),
                    &[],
                )
                .await
                .map_err(fail("view privileges"))?
                .iter()
                .map(|r| {
                    let (privilege, grantee, option): (String, String, bool) =
                        (r.get(0), r.get(1), r.get(2));
                    format!(
                        "GRANT {privilege} ON {name} TO {grantee}{}",
                        if option { " WITH GRANT OPTION" } else { "" }
                    )
                })
                .collect();
            self.views.insert(
                name.clone(),
                ViewInfo {
                    differs: None,
                    dependents,
                    grants,
                },
            );
        }
        if existing.is_empty() {
            return Ok(());
        }
        let verdicts = probe::compare_views(tx, self, &existing).await?;
        for (name, differs) in verdicts {
            if let Some(v) = self.views.get_mut(&name) {
                v.differs = differs;
            }
        }
        Ok(())
    }
}

/// SQL for the oid of relation `name` (a static name of the schema) in the current schema.
pub fn regclass(name: &str) -> String {
    format!("(quote_ident(current_schema()) || '.{name}')::regclass")
}
