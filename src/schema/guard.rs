//! Triggers and rules on a master table: the ones the loader knows, and a refusal for the rest.
//!
//! A load is exact because the loader decides every value that reaches a master table. A
//! trigger or rule it does not know could change a row as it is written (or write another
//! table the loader then does not account for), so a load refuses to start while one is
//! enabled, naming it; nothing is written. The one kind it knows is the old service's search
//! trigger, which only sets `search_vector` from the row's own text columns, exactly as the
//! loader's generated column would.

use tokio_postgres::GenericClient;

use crate::db;
use crate::error::Error;
use crate::layout::Layout;

/// `pg_trigger.tgtype` bits (PostgreSQL's `trigger.h`).
const ROW: i32 = 1;
const BEFORE: i32 = 2;
const INSERT: i32 = 4;
const UPDATE: i32 = 16;
/// Every timing and event bit: ROW, BEFORE, INSERT, DELETE, UPDATE, TRUNCATE, INSTEAD.
const ALL: i32 = 0x7f;

/// One enabled user trigger (or rule) on a master table, as the catalog describes it.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub name: String,
    /// `None` for a rule.
    pub function: Option<String>,
    pub language: String,
    pub source: String,
    pub tgtype: i32,
}

impl Trigger {
    /// How a message names it.
    pub fn describe(&self, table: &str) -> String {
        match &self.function {
            Some(f) => format!("trigger {} on {table} (function {f})", self.name),
            None => format!("rule {} on {table}", self.name),
        }
    }
}

/// Spaces, case, the optional `::regconfig` cast and the assignment's spelling do not change
/// what a trigger body does.
fn normalise(body: &str) -> String {
    let mut s: String = body
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase()
        .replace("::regconfig", "")
        .replace(":=", "=");
    while s.ends_with(';') {
        s.pop();
    }
    s
}

/// Whether `t` is the old service's search trigger for this table: BEFORE INSERT OR UPDATE,
/// FOR EACH ROW, in PL/pgSQL, with a body that only sets `NEW.search_vector` to the
/// expression `schema.sql`'s generated column computes.
pub fn is_search_trigger(t: &Trigger, layout: &Layout) -> bool {
    let expected = format!(
        "BEGIN NEW.search_vector := {}; RETURN NEW; END",
        layout.search_expression("NEW.")
    );
    t.function.is_some()
        && t.language == "plpgsql"
        && t.tgtype & ALL == ROW | BEFORE | INSERT | UPDATE
        && normalise(&t.source) == normalise(&expected)
}

/// The enabled triggers and rules on `table` that a user made (not the ones PostgreSQL makes
/// for foreign keys). Disabled and replica-only ones never fire during a load.
pub fn triggers_sql(table_oid: &str) -> String {
    format!(
        "SELECT t.tgname::text, p.proname::text, l.lanname::text, p.prosrc, t.tgtype::int \
           FROM pg_trigger t \
           JOIN pg_proc p ON p.oid = t.tgfoid \
           JOIN pg_language l ON l.oid = p.prolang \
          WHERE t.tgrelid = {table_oid} AND NOT t.tgisinternal AND t.tgenabled IN ('O', 'A') \
         UNION ALL \
         SELECT r.rulename::text, NULL, '', '', 0 FROM pg_rewrite r \
          WHERE r.ev_class = {table_oid} AND r.rulename <> '_RETURN' AND r.ev_enabled IN ('O', 'A')"
    )
}

/// Parses the rows of [`triggers_sql`].
pub fn from_rows(rows: &[tokio_postgres::Row]) -> Vec<Trigger> {
    rows.iter()
        .map(|r| Trigger {
            name: r.get(0),
            function: r.get(1),
            language: r.get(2),
            source: r.get(3),
            tgtype: r.get(4),
        })
        .collect()
}

/// Refuses (78) a load into a table with a trigger or rule the loader does not know.
pub async fn check(client: &impl GenericClient, layout: &Layout) -> Result<(), Error> {
    let rows = client
        .query(
            triggers_sql(&format!("'{}'::regclass", layout.table)).as_str(),
            &[],
        )
        .await
        .map_err(|e| db::fail(&format!("reading the triggers on {}", layout.table), &e))?;
    let unknown: Vec<String> = from_rows(&rows)
        .iter()
        .filter(|t| !is_search_trigger(t, layout))
        .map(|t| t.describe(layout.table))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{}: the loader does not know {}; it could change rows as they are written, so the load \
         would not be exact. Nothing was loaded: disable or drop it (e.g. ALTER TABLE {} \
         DISABLE TRIGGER name), then rerun",
        layout.table,
        unknown.join(", "),
        layout.table
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{ISSUE, ISSUER};

    fn trigger(source: &str, tgtype: i32) -> Trigger {
        Trigger {
            name: "issuer_search_trigger".into(),
            function: Some("update_issuer_search_vector".into()),
            language: "plpgsql".into(),
            source: source.into(),
            tgtype,
        }
    }

    #[test]
    fn the_old_services_search_trigger_is_recognised_however_it_is_spelled() {
        let body = "\nBEGIN\n    NEW.search_vector := to_tsvector('english',\n        \
                    COALESCE(NEW.issuer_name_1, '') || ' ' ||\n        COALESCE(NEW.issuer_name_2, '') || ' ' ||\n        \
                    COALESCE(NEW.issuer_name_3, '') || ' ' ||\n        COALESCE(NEW.issuer_sort_key, '')\n    );\n    RETURN NEW;\nEND;\n";
        assert!(is_search_trigger(&trigger(body, 23), &ISSUER));
        let cast = body.replace("'english'", "'english'::regconfig");
        assert!(is_search_trigger(&trigger(&cast, 23), &ISSUER));
        // The same body on another table covers other columns.
        assert!(!is_search_trigger(&trigger(body, 23), &ISSUE));
        // AFTER, or also on DELETE: not the search trigger.
        assert!(!is_search_trigger(&trigger(body, 21), &ISSUER));
        assert!(!is_search_trigger(&trigger(body, 31), &ISSUER));
        // A body that also changes a value.
        let more = body.replace(
            "RETURN NEW;",
            "NEW.issuer_name_1 := upper(NEW.issuer_name_1); RETURN NEW;",
        );
        assert!(!is_search_trigger(&trigger(&more, 23), &ISSUER));
        // Another column list.
        let fewer = body.replace(" || ' ' ||\n        COALESCE(NEW.issuer_sort_key, '')", "");
        assert!(!is_search_trigger(&trigger(&fewer, 23), &ISSUER));
        let rule = Trigger {
            function: None,
            ..trigger(body, 0)
        };
        assert!(!is_search_trigger(&rule, &ISSUER));
        assert_eq!(
            rule.describe("issuer"),
            "rule issuer_search_trigger on issuer"
        );
    }
}
