//! Does a view that is already there answer as the loader's own definition would?
//!
//! The old service's views and the loader's are written differently (other aliases, `TRIM`
//! against `btrim`), so their texts cannot be compared. Their answers can: both definitions
//! run on the same few probe rows, and they must return the same columns (names, order,
//! compatible types) and the same rows. The probe rows live in temporary tables that shadow
//! the real ones inside a savepoint, so the comparison costs the same on an empty database
//! and on one with ten million issues, writes nothing to the real tables, and is gone when
//! the savepoint is rolled back.
//!
//! The rows are made from the layouts: every column gets a value, with leading, trailing and
//! only spaces in text, NULLs spread over the columns, every code of each code table, an
//! unknown code, an issue without attributes, an issue whose issuer is missing and an
//! attribute row without an issue. A definition that glues, trims, joins or labels a column
//! differently from the contract shows it on these rows.

use tokio_postgres::Transaction;

use super::catalog::{regclass, Catalog, ColumnInfo};
use super::script::{Object, Statement};
use crate::db;
use crate::error::Error;
use crate::layout::{Column, FileType, Kind, Layout};

/// A code no code table holds (`~` is not a CUSIP character either).
const UNKNOWN_CODE: &str = "~";

fn value(col: &Column, r: usize, ci: usize) -> String {
    if let Some(table) = col.code_table {
        return match r % 6 {
            3 => format!("'{UNKNOWN_CODE}'"),
            4 => "NULL".into(),
            n => format!(
                "(SELECT code FROM pg_temp.{table} ORDER BY code OFFSET {} LIMIT 1)",
                n % 3
            ),
        };
    }
    if (r + ci) % 5 == 4 {
        return "NULL".into();
    }
    match col.kind {
        Kind::Varchar(n) => {
            let core = format!("{}{r}", (b'A' + (ci % 26) as u8) as char);
            let text = match r % 3 {
                0 => format!(" {core}"),
                1 => format!("{core}  "),
                _ => "  ".to_string(),
            };
            let text: String = text.chars().take(n as usize).collect();
            format!("'{text}'")
        }
        Kind::Date => format!("DATE '2001-01-01' + {}", r * 61 + ci),
        Kind::Integer => format!("{}", (r as i64 - 2) * 100 + ci as i64),
        Kind::Numeric { .. } => format!("{}.{}", (r * 7 + ci) % 90, r % 10),
    }
}

/// One probe row per key; the row at `all_null` has NULL in every column but the key.
fn insert(layout: &Layout, keys: &[&[&str]], all_null: usize) -> String {
    let rows: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(r, key)| {
            let values: Vec<String> = layout
                .columns
                .iter()
                .enumerate()
                .map(|(ci, c)| match (c.key, key.get(ci)) {
                    (true, Some(k)) => format!("'{k}'"),
                    _ if r == all_null => "NULL".into(),
                    _ => value(c, r, ci),
                })
                .collect();
            format!("({})", values.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO pg_temp.{} ({}) VALUES {}",
        layout.table,
        layout.column_names().join(", "),
        rows.join(", ")
    )
}

/// The probe tables: copies of the code tables, and master tables holding only probe rows.
fn setup(cat: &Catalog) -> String {
    let mut sql = Vec::new();
    for t in FileType::ALL {
        let l = t.layout();
        sql.push(format!(
            "CREATE TEMP TABLE {0} (LIKE {1}.{0})",
            l.table, cat.schema
        ));
        for table in l.columns.iter().filter_map(|c| c.code_table) {
            sql.push(format!(
                "CREATE TEMP TABLE {table} AS TABLE {}.{table}",
                cat.schema
            ));
        }
    }
    let issuers: Vec<[&str; 1]> = (0..6)
        .map(|r| [["P00000", "P00001", "P00002", "P00003", "P00004", "P00005"][r]])
        .collect();
    let issuers: Vec<&[&str]> = issuers.iter().map(|k| k.as_slice()).collect();
    let issues: [&[&str]; 6] = [
        &["P00000", "00"],
        &["P00000", "01"],
        &["P00001", "00"],
        &["P00002", "00"],
        &["P00003", "00"],
        &["P00009", "00"], // its issuer is missing
    ];
    let attributes: [&[&str]; 5] = [
        &["P00000", "00"],
        &["P00000", "01"],
        &["P00001", "00"],
        &["P00002", "00"],
        &["P00008", "00"], // its issue is missing; P00003 00 has no attributes
    ];
    sql.push(insert(FileType::Issuer.layout(), &issuers, 5));
    sql.push(insert(FileType::Issue.layout(), &issues, 5));
    sql.push(insert(FileType::IssueAttr.layout(), &attributes, 4));
    sql.push(format!("SET LOCAL search_path = pg_temp, {}", cat.schema));
    sql.join(";\n")
}

/// Text types compare alike: the old service's descriptions are varchar(50), the loader's text.
fn compatible(a: &str, b: &str) -> bool {
    let texty = |t: &str| t == "text" || t.starts_with("character varying");
    a == b || (texty(a) && texty(b))
}

fn columns_differ(have: &[ColumnInfo], want: &[ColumnInfo]) -> Option<String> {
    if have.len() != want.len() {
        return Some(format!(
            "it has {} columns where the contract has {}",
            have.len(),
            want.len()
        ));
    }
    have.iter().zip(want).enumerate().find_map(|(i, (h, w))| {
        if h.name != w.name {
            Some(format!(
                "its column {} is {} where the contract has {}",
                i + 1,
                h.name,
                w.name
            ))
        } else if !compatible(&h.ty, &w.ty) {
            Some(format!(
                "its column {} is {} where the contract has {}",
                h.name, h.ty, w.ty
            ))
        } else {
            None
        }
    })
}

/// For each existing view of the script: `None` when it answers as the loader's definition
/// does, or why it does not.
pub async fn compare_views(
    tx: &Transaction<'_>,
    cat: &Catalog,
    views: &[&Statement],
) -> Result<Vec<(String, Option<String>)>, Error> {
    let failed = |e: tokio_postgres::Error| db::fail("comparing the views with the contract", &e);
    let mut defs = Vec::new();
    for s in views {
        let Object::View(name) = &s.object else {
            continue;
        };
        let def: String = tx
            .query_one(&format!("SELECT pg_get_viewdef({})", regclass(name)), &[])
            .await
            .map_err(failed)?
            .get(0);
        let def = def.trim().trim_end_matches(';').to_string();
        defs.push((name.clone(), def, s.view_query().unwrap_or_default()));
    }

    tx.batch_execute("SAVEPOINT cusip_probe")
        .await
        .map_err(failed)?;
    let mut verdicts = Vec::new();
    if let Err(e) = tx.batch_execute(&setup(cat)).await {
        // Without its tables no definition can be compared: each is re-created if it may be.
        let why = format!("it could not be compared ({})", db::chain(&e));
        verdicts = defs
            .iter()
            .map(|(name, _, _)| (name.clone(), Some(why.clone())))
            .collect();
    } else {
        for (name, old, new) in &defs {
            let have = cat.columns.get(name).cloned().unwrap_or_default();
            let verdict = compare_one(tx, name, old, new, &have).await?;
            verdicts.push((name.clone(), verdict));
        }
    }
    tx.batch_execute("ROLLBACK TO SAVEPOINT cusip_probe; RELEASE SAVEPOINT cusip_probe")
        .await
        .map_err(failed)?;
    Ok(verdicts)
}

async fn compare_one(
    tx: &Transaction<'_>,
    name: &str,
    old: &str,
    new: &str,
    have: &[ColumnInfo],
) -> Result<Option<String>, Error> {
    let failed = |e: tokio_postgres::Error| db::fail("comparing the views with the contract", &e);
    tx.batch_execute("SAVEPOINT cusip_probe_view")
        .await
        .map_err(failed)?;
    let probe = format!("cusip_probe_{name}");
    let outcome: Result<Option<String>, tokio_postgres::Error> = async {
        tx.batch_execute(&format!("CREATE TEMP VIEW {probe} AS {new}"))
            .await?;
        let want: Vec<ColumnInfo> = tx
            .query(
                &format!(
                    "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                      WHERE attrelid = 'pg_temp.{probe}'::regclass AND attnum > 0 ORDER BY attnum"
                ),
                &[],
            )
            .await?
            .iter()
            .map(|r| ColumnInfo {
                name: r.get(0),
                ty: r.get(1),
                not_null: false,
                generated: false,
            })
            .collect();
        if let Some(why) = columns_differ(have, &want) {
            return Ok(Some(why));
        }
        let n: i64 = tx
            .query_one(
                &format!(
                    "SELECT count(*) FROM ( \
                       (SELECT * FROM ({old}) o EXCEPT ALL SELECT * FROM {probe}) \
                       UNION ALL \
                       (SELECT * FROM {probe} EXCEPT ALL SELECT * FROM ({old}) o)) d"
                ),
                &[],
            )
            .await?
            .get(0);
        Ok((n > 0).then(|| {
            format!("it answers differently from the contract ({n} of the probe rows differ)")
        }))
    }
    .await;
    let verdict = match outcome {
        Ok(v) => v,
        Err(e) => Some(format!("it could not be compared ({})", db::chain(&e))),
    };
    tx.batch_execute("ROLLBACK TO SAVEPOINT cusip_probe_view; RELEASE SAVEPOINT cusip_probe_view")
        .await
        .map_err(failed)?;
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::ISSUE_ATTR;

    #[test]
    fn probe_rows_cover_every_column_and_code() {
        let sql = insert(&ISSUE_ATTR, &[&["P00000", "00"], &["P00001", "00"]], 1);
        assert!(sql.starts_with("INSERT INTO pg_temp.issue_attribute (issuer_num, issue_num,"));
        // Row 0: a value in every non-code column but the scattered NULLs, codes from the tables.
        assert!(sql.contains(
            "(SELECT code FROM pg_temp.ref_offering_amount_code ORDER BY code OFFSET 0 LIMIT 1)"
        ));
        assert!(sql.contains("' A0'") || sql.contains("' C0'"), "{sql}");
        // Row 1 is all NULL but its key.
        assert!(
            sql.ends_with(&format!(
                "('P00001', '00', {})",
                vec!["NULL"; 51].join(", ")
            )),
            "{sql}"
        );
        let codes: Vec<String> = (0..6)
            .map(|r| value(&ISSUE_ATTR.columns[52], r, 52))
            .collect();
        assert!(codes.contains(&"'~'".to_string()) && codes.contains(&"NULL".to_string()));
        assert_eq!(codes.iter().filter(|c| c.contains("OFFSET")).count(), 4);
    }

    #[test]
    fn text_types_are_compatible_others_must_match() {
        assert!(compatible("text", "character varying(50)"));
        assert!(compatible("numeric(6,3)", "numeric(6,3)"));
        assert!(!compatible("numeric", "text"));
        let col = |n: &str, t: &str| ColumnInfo {
            name: n.into(),
            ty: t.into(),
            not_null: false,
            generated: false,
        };
        assert_eq!(
            columns_differ(&[col("cusip", "text")], &[col("issuer_num", "text")]),
            Some("its column 1 is cusip where the contract has issuer_num".into())
        );
        assert!(columns_differ(&[col("a", "text")], &[col("a", "character varying(9)")]).is_none());
    }
}
