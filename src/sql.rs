//! The SQL of a load, generated from the layout: staging, checks and the merge.
//!
//! Identifiers come only from the static layout tables, never from input, and values only
//! ever travel through COPY or bind parameters, so nothing in a file can reach SQL as text.

use crate::layout::{Column, Layout};

/// The per-transaction staging table (temporary: no WAL, private to the session, dropped
/// at commit or rollback).
pub const STAGE: &str = "cusip_stage";
/// Keys that occur more than once in the file.
pub const REPEATS: &str = "cusip_repeats";
/// The staged rows that are new or differ from the master: all the merge writes.
pub const DELTA: &str = "cusip_delta";

fn list(cols: &[&str], prefix: &str) -> String {
    cols.iter()
        .map(|c| format!("{prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn create_stage(l: &Layout) -> String {
    let cols: Vec<String> = l
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.kind.sql_type()))
        .collect();
    format!(
        "CREATE TEMP TABLE {STAGE} (line bigint NOT NULL, {}) ON COMMIT DROP",
        cols.join(", ")
    )
}

pub fn copy_in(l: &Layout) -> String {
    format!(
        "COPY {STAGE} (line, {}) FROM STDIN (FORMAT binary)",
        list(&l.column_names(), "")
    )
}

/// Statistics for the planner on the staged keys only: the row count and key statistics
/// are what the joins below need, and sampling all 53 attribute columns cost ~7× as much
/// (0.70 s against 0.09 s at 200 000 rows).
pub fn analyze_stage(l: &Layout) -> String {
    format!("ANALYZE {STAGE} ({})", list(&l.key_names(), ""))
}

/// Groups the staged keys that occur more than once. Plain aggregates only, so PostgreSQL
/// can hash-aggregate (an ordered `array_agg` forces a sort: 0.27 s against 0.16 s at
/// 200 000 rows); the lines of the few keys shown are fetched by [`repeat_examples`].
pub fn find_repeats(l: &Layout) -> String {
    let keys = list(&l.key_names(), "");
    format!(
        "CREATE TEMP TABLE {REPEATS} ON COMMIT DROP AS \
         SELECT {keys}, count(*) AS n, min(line) AS first_line, max(line) AS last_line \
         FROM {STAGE} GROUP BY {keys} HAVING count(*) > 1"
    )
}

/// Total repeated records (records beyond the first per key) and the number of keys.
pub fn count_repeats() -> String {
    format!("SELECT coalesce(sum(n - 1), 0)::bigint, count(*)::bigint FROM {REPEATS}")
}

/// The first few repeated keys, in file order, as `key` text and their first five lines.
pub fn repeat_examples(l: &Layout, limit: u32) -> String {
    let key = l
        .key_names()
        .iter()
        .map(|k| format!("r.{k}"))
        .collect::<Vec<_>>()
        .join(" || ' ' || ");
    format!(
        "SELECT {key}, (array_agg(s.line ORDER BY s.line))[1:5] \
         FROM (SELECT * FROM {REPEATS} ORDER BY first_line LIMIT {limit}) r \
         JOIN {STAGE} s ON {} \
         GROUP BY {}, r.first_line ORDER BY r.first_line",
        equal_on(&l.key_names(), "s", "r"),
        list(&l.key_names(), "r."),
    )
}

/// Keeps only the last record of each repeated key: the day's last transaction wins.
pub fn drop_superseded(l: &Layout) -> String {
    format!(
        "DELETE FROM {STAGE} s USING {REPEATS} r WHERE {} AND s.line <> r.last_line",
        equal_on(&l.key_names(), "s", "r")
    )
}

/// Staged rows whose parent row is missing: first few by line, with the total.
pub fn foreign_key_misses(l: &Layout, limit: u32) -> Option<String> {
    let fk = l.foreign_key.as_ref()?;
    let shown = fk
        .columns
        .iter()
        .map(|k| format!("s.{k}"))
        .collect::<Vec<_>>()
        .join(" || ' ' || ");
    Some(format!(
        "SELECT s.line, {shown}, count(*) OVER ()::bigint FROM {STAGE} s \
         WHERE NOT EXISTS (SELECT 1 FROM {} p WHERE {}) ORDER BY s.line LIMIT {limit}",
        fk.parent,
        equal_on(fk.columns, "p", "s")
    ))
}

/// Staged rows holding a code their code table does not know: first few, with the total.
pub fn code_misses(c: &Column, limit: u32) -> Option<String> {
    let table = c.code_table?;
    let col = c.name;
    Some(format!(
        "SELECT s.line, s.{col}::text, count(*) OVER ()::bigint FROM {STAGE} s \
         WHERE s.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.code = s.{col}) \
         ORDER BY s.line LIMIT {limit}"
    ))
}

/// The table's foreign keys that the database enforces at every statement (validated,
/// not deferrable), as `(parent table, columns, parent columns)`. A staged check that one
/// of them covers need not run before the merge: the merge cannot break it, and if it
/// tries, the check runs then to name the lines.
pub fn enforced_foreign_keys(l: &Layout) -> String {
    let cols = |keys: &str, rel: &str| {
        format!(
            "ARRAY(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY k(n, i) \
             JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.n ORDER BY k.i)"
        )
    };
    format!(
        "SELECT confrelid::regclass::text, {}, {} FROM pg_constraint \
         WHERE conrelid = '{}'::regclass AND contype = 'f' AND convalidated AND NOT condeferrable",
        cols("conkey", "conrelid"),
        cols("confkey", "confrelid"),
        l.table
    )
}

/// `a.c = b.c AND …` over `cols`: how two row sources are joined on a key.
fn equal_on(cols: &[&str], a: &str, b: &str) -> String {
    cols.iter()
        .map(|c| format!("{a}.{c} = {b}.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn key_join(l: &Layout) -> String {
    equal_on(&l.key_names(), "t", "s")
}

/// Copies into [`DELTA`] the staged rows that are new or differ from the master, with
/// `present` telling which of them exist there. Unchanged rows are never touched (no lock,
/// no new tuple, no WAL) and never copied: an unchanged reload writes nothing but an empty
/// temporary table.
///
/// An `ON CONFLICT … DO UPDATE … WHERE <differs>` would also skip the rewrite, but it
/// row-locks every conflicting tuple first, which writes WAL for each unchanged row. A
/// `DELETE` of the unchanged rows from staging (the first version) dirtied every staging
/// page: 7.4 s against 3.9 s for this at 1 M attribute rows (psql, `jit=off`).
pub fn build_delta(l: &Layout) -> String {
    let non_keys: Vec<&str> = l.non_key_columns().map(|c| c.name).collect();
    let first_key = l.key_names()[0];
    format!(
        "CREATE TEMP TABLE {DELTA} ON COMMIT DROP AS \
         SELECT {scols}, t.{first_key} IS NOT NULL AS present \
         FROM {STAGE} s LEFT JOIN {table} t ON {join} \
         WHERE t.{first_key} IS NULL OR ({tcmp}) IS DISTINCT FROM ({scmp})",
        scols = list(&l.column_names(), "s."),
        table = l.table,
        join = key_join(l),
        tcmp = list(&non_keys, "t."),
        scmp = list(&non_keys, "s."),
    )
}

/// The planner's row count of the master table.
pub fn table_size(l: &Layout) -> String {
    format!(
        "SELECT reltuples FROM pg_class WHERE oid = '{}'::regclass",
        l.table
    )
}

/// Joins by looking each staged key up in the master's primary key, for the delta of a
/// staging table much smaller than its master (see `load::merge`), and back.
pub const KEY_LOOKUPS_ON: &str =
    "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";
pub const KEY_LOOKUPS_OFF: &str =
    "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT";

/// Rewrites the rows whose key exists and whose values differ. Its row count is the number
/// updated.
pub fn update_changed(l: &Layout) -> String {
    let set: Vec<String> = l
        .non_key_columns()
        .map(|c| format!("{0} = s.{0}", c.name))
        .collect();
    format!(
        "UPDATE {} t SET {} FROM {DELTA} s WHERE s.present AND {}",
        l.table,
        set.join(", "),
        key_join(l)
    )
}

/// Inserts the keys the master does not have, in key order. Its row count is the number
/// inserted.
pub fn insert_new(l: &Layout) -> String {
    let cols = list(&l.column_names(), "");
    format!(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM {DELTA} WHERE NOT present ORDER BY {keys}",
        table = l.table,
        keys = list(&l.key_names(), ""),
    )
}

/// Whether every key column sorts byte-wise: collation "C" or "POSIX", or the database
/// default when that is a libc "C" or "POSIX". That, and rows in the master, are the
/// conditions for comparing in the loader ([`crate::compare`]); ICU and language collations
/// order keys in ways the loader cannot repeat, so they keep the comparison in the database.
pub fn keys_sort_bytewise(l: &Layout) -> String {
    let keys = l
        .key_names()
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT bool_and(CASE WHEN a.attcollation = 100 \
              THEN d.datcollate IN ('C', 'POSIX') \
                   AND coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'c' \
              ELSE c.collname IN ('C', 'POSIX') AND c.collprovider = 'c' END) \
          FROM pg_attribute a \
          LEFT JOIN pg_collation c ON c.oid = a.attcollation \
          CROSS JOIN (SELECT * FROM pg_database WHERE datname = current_database()) d \
          WHERE a.attrelid = '{table}'::regclass AND a.attname IN ({keys})",
        table = l.table
    )
}

/// The master's rows in key order, as binary COPY: the other side of the loader's merge
/// join. Only the layout's columns, in the layout's order, so a row's bytes compare with an
/// encoded file row's.
pub fn copy_out_master(l: &Layout) -> String {
    format!(
        "COPY (SELECT {cols} FROM {table} ORDER BY {keys}) TO STDOUT (FORMAT binary)",
        cols = list(&l.column_names(), ""),
        table = l.table,
        keys = list(&l.key_names(), ""),
    )
}

/// Whether the master table has no row at all (the condition for an initial load).
pub fn is_empty(l: &Layout) -> String {
    format!("SELECT NOT EXISTS (SELECT 1 FROM {})", l.table)
}

/// Whether the table is empty, whether the session's role may rebuild it (owns it, or is a
/// member of the owner with its rights), the owner's name and the role's, and whether the
/// role may create in the table's schema (an index build needs it) and which schema that is.
pub fn emptiness_and_owner(l: &Layout) -> String {
    format!(
        "SELECT NOT EXISTS (SELECT 1 FROM {t}), pg_has_role(c.relowner, 'USAGE'), \
         c.relowner::regrole::text, current_user::text, \
         has_schema_privilege(c.relnamespace, 'CREATE'), c.relnamespace::regnamespace::text \
         FROM pg_class c WHERE c.oid = '{t}'::regclass",
        t = l.table
    )
}

/// The exclusive lock an initial load holds while the table has no indexes or foreign
/// keys: nobody may read a table whose constraints are not in force.
pub fn lock_exclusive(l: &Layout) -> String {
    format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", l.table)
}

/// What the direct path takes off the table while it copies, as `(kind, drop statement,
/// re-create statement, re-create rank)`, in the order to drop them: its foreign keys and
/// secondary indexes (those not backing a constraint), then its primary key with the
/// foreign keys of other tables that reference it. Re-created by rank: indexes, the primary
/// key, then every foreign key. Definitions come from the catalog, so an index or foreign
/// key a DBA added is dropped and rebuilt exactly as well.
///
/// Maintaining the primary key row by row during COPY cost 1.6 s of a 1 M issue file's
/// 6.4 s; building it afterwards 0.4 s (docs/performance.md). It is kept when dropping it
/// could lose something a re-create does not restore, or fail: a view that depends on it,
/// anything but a foreign key depending on its index, a comment, `CLUSTER` or `REPLICA
/// IDENTITY` on its index; and, without `with_key`, always (a referencing table the role may
/// not alter, or one in use: see [`referencing_tables`]).
pub fn detachable(l: &Layout, with_key: bool) -> String {
    let t = l.table;
    format!(
        "WITH pk AS (\
             SELECT c.oid, c.conrelid, c.conname, c.conindid FROM pg_constraint c \
             JOIN pg_index i ON i.indexrelid = c.conindid \
             WHERE c.conrelid = '{t}'::regclass AND c.contype = 'p' AND {with_key} \
               AND NOT i.indisclustered AND NOT i.indisreplident \
               AND NOT EXISTS (SELECT 1 FROM pg_description d \
                   WHERE d.objoid IN (c.oid, c.conindid)) \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d \
                   WHERE d.refclassid = 'pg_constraint'::regclass AND d.refobjid = c.oid \
                     AND d.deptype = 'n') \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d \
                   WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = c.conindid \
                     AND d.deptype = 'n' AND NOT (d.classid = 'pg_constraint'::regclass \
                     AND EXISTS (SELECT 1 FROM pg_constraint f \
                         WHERE f.oid = d.objid AND f.contype = 'f')))), \
         fk AS (\
             SELECT oid, conrelid, conname FROM pg_constraint \
             WHERE conrelid = '{t}'::regclass AND contype = 'f' \
             UNION \
             SELECT f.oid, f.conrelid, f.conname FROM pg_constraint f, pk \
             WHERE f.contype = 'f' AND f.conindid = pk.conindid) \
         SELECT kind, drop_sql, create_sql, rank FROM (\
             SELECT 1 AS step, 'foreign key' AS kind, \
                 format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname) AS drop_sql, \
                 format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, \
                     pg_get_constraintdef(oid)) AS create_sql, 3 AS rank FROM fk \
             UNION ALL \
             SELECT 2, 'index', format('DROP INDEX %s', i.indexrelid::regclass), \
                 pg_get_indexdef(i.indexrelid), 1 \
             FROM pg_index i WHERE i.indrelid = '{t}'::regclass \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
             UNION ALL \
             SELECT 3, 'primary key', \
                 format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname), \
                 format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, \
                     pg_get_constraintdef(oid)), 2 FROM pk) d \
         ORDER BY step, drop_sql"
    )
}

/// The other tables whose foreign keys refer to the table's primary key, and whether the
/// role owns each: dropping those keys locks them, so the direct path first tries to lock
/// them without waiting.
pub fn referencing_tables(l: &Layout) -> String {
    format!(
        "SELECT DISTINCT f.conrelid::regclass::text, pg_has_role(r.relowner, 'USAGE') \
         FROM pg_constraint f JOIN pg_class r ON r.oid = f.conrelid \
         JOIN pg_constraint p ON p.conindid = f.conindid \
         WHERE p.conrelid = '{t}'::regclass AND p.contype = 'p' AND f.contype = 'f' \
           AND f.conrelid <> '{t}'::regclass ORDER BY 1",
        t = l.table
    )
}

/// Every staged row into the empty master. In key order, so the primary key index is built
/// by appending; a file whose keys were seen to ascend is already in that order, and a
/// temporary table's scan returns rows in the order they were written.
pub fn insert_all(l: &Layout, sorted: bool) -> String {
    let cols = list(&l.column_names(), "");
    let order = if sorted {
        String::new()
    } else {
        format!(" ORDER BY {}", list(&l.key_names(), ""))
    };
    format!(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM {STAGE}{order}",
        table = l.table,
    )
}

/// COPY straight into the master table (the initial load's fast path: no staging, and
/// COPY inserts in batches, which plain `INSERT … SELECT` does not).
pub fn copy_into_master(l: &Layout) -> String {
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        l.table,
        list(&l.column_names(), "")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{FileType, ISSUE, ISSUER};

    #[test]
    fn statements_come_from_the_layout() {
        let s = create_stage(&ISSUE);
        assert!(s.starts_with("CREATE TEMP TABLE cusip_stage (line bigint NOT NULL, issuer_num varchar(6), issue_num varchar(2)"));
        assert!(s.contains("rate numeric(6,3)") && s.ends_with("ON COMMIT DROP"));
        assert!(copy_in(&ISSUER).contains("(line, issuer_num, issuer_check,"));
        assert!(
            update_changed(&ISSUE).starts_with("UPDATE issue t SET issue_check = s.issue_check")
        );
        assert!(build_delta(&ISSUE)
            .contains("t.issuer_num = s.issuer_num AND t.issue_num = s.issue_num"));
        assert!(build_delta(&ISSUE).contains("WHERE t.issuer_num IS NULL OR (t.issue_check,"));
        assert!(insert_new(&ISSUER).ends_with("WHERE NOT present ORDER BY issuer_num"));
        assert!(
            insert_all(&ISSUE, false).ends_with("FROM cusip_stage ORDER BY issuer_num, issue_num")
        );
        assert!(insert_all(&ISSUE, true).ends_with("FROM cusip_stage"));
        assert!(copy_into_master(&ISSUER).starts_with("COPY issuer (issuer_num, issuer_check,"));
        assert!(foreign_key_misses(&ISSUER, 5).is_none());
        assert!(foreign_key_misses(&ISSUE, 5)
            .unwrap()
            .contains("FROM issuer p WHERE p.issuer_num = s.issuer_num"));
    }

    #[test]
    fn every_code_column_gets_a_check() {
        for t in FileType::ALL {
            let n = t
                .layout()
                .columns
                .iter()
                .filter_map(|c| code_misses(c, 5))
                .count();
            let expected = match t {
                FileType::Issuer => 3,
                FileType::Issue => 3,
                FileType::IssueAttr => 3,
            };
            assert_eq!(n, expected, "{t}");
        }
    }
}
