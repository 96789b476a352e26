//! `schema.sql` as a list of statements, each labelled with the object it makes.
//!
//! The file stays one plain SQL script that `psql -f` can apply to an empty database. To
//! take over a database that already holds some of these objects (the old service's, or an
//! older loader's), `--init-schema` needs to know what each statement creates, so that it can
//! check what is there first and run only what is missing. The file's statements follow a
//! few fixed shapes; anything else is a bug that the unit test below catches.

use crate::error::Error;

/// What one statement of `schema.sql` creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// `CREATE TABLE IF NOT EXISTS name (…)`.
    Table(String),
    /// `INSERT INTO table … ON CONFLICT DO NOTHING`: rows of a code table.
    Rows(String),
    /// `ALTER TABLE table ADD COLUMN IF NOT EXISTS column …`.
    Column { table: String, column: String },
    /// `CREATE INDEX IF NOT EXISTS name ON table [USING method] (columns) [WHERE …]`.
    Index {
        name: String,
        table: String,
        method: String,
        columns: Vec<String>,
        partial: bool,
    },
    /// `CREATE OR REPLACE VIEW name AS select`.
    View(String),
    /// `CREATE OR REPLACE FUNCTION name(…)`.
    Function(String),
    /// `COMMENT ON kind target IS …`; `target` is a relation, `relation.column` or a function.
    Comment { target: String },
}

/// One statement and what it creates.
#[derive(Debug, Clone)]
pub struct Statement {
    pub object: Object,
    pub sql: String,
}

impl Statement {
    /// A view's query (what follows `AS`), to be evaluated on its own.
    pub fn view_query(&self) -> Option<&str> {
        match self.object {
            Object::View(_) => {
                let at = find_word(&self.sql, "AS")?;
                Some(self.sql[at + 2..].trim())
            }
            _ => None,
        }
    }

    /// A function's body: the text between its `$$` quotes, as `pg_proc.prosrc` holds it.
    pub fn function_body(&self) -> Option<&str> {
        let start = self.sql.find("$$")? + 2;
        let len = self.sql[start..].find("$$")?;
        Some(&self.sql[start..start + len])
    }
}

/// Byte offset of `word` as a whole word (case-insensitive) in `s`.
fn find_word(s: &str, word: &str) -> Option<usize> {
    let upper = s.to_ascii_uppercase();
    let mut from = 0;
    while let Some(i) = upper[from..].find(word) {
        let at = from + i;
        let before = at.checked_sub(1).map(|b| upper.as_bytes()[b]);
        let after = upper.as_bytes().get(at + word.len()).copied();
        let boundary =
            |c: Option<u8>| c.map_or(true, |c| !(c.is_ascii_alphanumeric() || c == b'_'));
        if boundary(before) && boundary(after) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Splits a script into statements at top-level `;`, skipping `--` comments and keeping
/// quoted strings and `$$` bodies whole.
fn split(script: &str) -> Vec<String> {
    let b = script.as_bytes();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'\'' || (c == b'$' && b.get(i + 1) == Some(&b'$')) {
            let close = if c == b'\'' { "'" } else { "$$" };
            let open = close.len();
            let end = script[i + open..]
                .find(close)
                .map_or(b.len(), |n| i + open + n + open);
            cur.push_str(&script[i..end]);
            i = end;
            continue;
        }
        if c == b';' {
            let s = cur.trim();
            if !s.is_empty() {
                out.push(s.to_string());
            }
            cur.clear();
        } else {
            // Multi-byte characters only occur inside strings and comments in schema.sql,
            // but copy whole characters anyway.
            let ch = script[i..].chars().next().unwrap_or(' ');
            cur.push(ch);
            i += ch.len_utf8();
            continue;
        }
        i += 1;
    }
    let s = cur.trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
    out
}

/// The words of a statement's head, upper-cased, punctuation split off.
fn words(sql: &str) -> Vec<String> {
    sql.replace('(', " ( ")
        .replace(')', " ) ")
        .replace(',', " , ")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn classify(sql: &str) -> Option<Object> {
    let w = words(sql);
    let up: Vec<String> = w.iter().map(|s| s.to_ascii_uppercase()).collect();
    let head = |n: usize| up.iter().take(n).map(String::as_str).collect::<Vec<_>>();
    let name = |i: usize| w.get(i).map(|s| s.to_ascii_lowercase());
    match head(6).as_slice() {
        ["CREATE", "TABLE", "IF", "NOT", "EXISTS", ..] => name(5).map(Object::Table),
        ["INSERT", "INTO", ..] => name(2).map(Object::Rows),
        ["ALTER", "TABLE", _, "ADD", "COLUMN", "IF"] => Some(Object::Column {
            table: name(2)?,
            column: name(8)?,
        }),
        ["CREATE", "INDEX", "IF", "NOT", "EXISTS", _] => {
            let (idx, table) = (name(5)?, name(7)?);
            let mut at = 8;
            let method = if up.get(at).map(String::as_str) == Some("USING") {
                at += 2;
                name(at - 1)?
            } else {
                "btree".to_string()
            };
            if up.get(at).map(String::as_str) != Some("(") {
                return None;
            }
            let close = at + w[at..].iter().position(|s| s == ")")?;
            let columns = w[at + 1..close]
                .iter()
                .filter(|s| *s != ",")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            Some(Object::Index {
                name: idx,
                table,
                method,
                columns,
                partial: up.get(close + 1).map(String::as_str) == Some("WHERE"),
            })
        }
        ["CREATE", "OR", "REPLACE", "VIEW", ..] => name(4).map(Object::View),
        ["CREATE", "OR", "REPLACE", "FUNCTION", ..] => name(4).map(Object::Function),
        ["COMMENT", "ON", ..] => Some(Object::Comment { target: name(3)? }),
        _ => None,
    }
}

/// The statements of a schema script, each with what it creates.
pub fn statements(script: &str) -> Result<Vec<Statement>, Error> {
    split(script)
        .into_iter()
        .map(|sql| match classify(&sql) {
            Some(object) => Ok(Statement { object, sql }),
            None => Err(Error::Internal(format!(
                "schema.sql holds a statement --init-schema does not know how to apply: {}",
                sql.lines().next().unwrap_or_default()
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SCHEMA_SQL;

    #[test]
    fn every_statement_of_schema_sql_is_known() {
        let all = statements(SCHEMA_SQL).expect("schema.sql classifies");
        let count = |f: &dyn Fn(&Object) -> bool| all.iter().filter(|s| f(&s.object)).count();
        assert_eq!(count(&|o| matches!(o, Object::Table(_))), 13);
        assert_eq!(count(&|o| matches!(o, Object::Rows(_))), 9);
        assert_eq!(count(&|o| matches!(o, Object::View(_))), 5);
        assert_eq!(count(&|o| matches!(o, Object::Function(_))), 1);
        assert_eq!(
            count(&|o| matches!(o, Object::Column { column, .. } if column == "search_vector")),
            3
        );
        let gin = all.iter().find_map(|s| match &s.object {
            Object::Index {
                name,
                method,
                columns,
                ..
            } if name == "issue_search_idx" => Some((method.clone(), columns.clone())),
            _ => None,
        });
        assert_eq!(gin, Some(("gin".into(), vec!["search_vector".into()])));
        let journal = all.iter().find_map(|s| match &s.object {
            Object::Index { name, partial, .. } if name == "load_journal_identity_idx" => {
                Some(*partial)
            }
            _ => None,
        });
        assert_eq!(journal, Some(true));
        let f = all
            .iter()
            .find(|s| matches!(s.object, Object::Function(_)))
            .unwrap();
        let body = f.function_body().unwrap();
        assert!(
            body.contains("plainto_tsquery('english', search_query)"),
            "{body}"
        );
        let v = all
            .iter()
            .find(|s| s.object == Object::View("v_issue".into()))
            .unwrap();
        assert!(v.view_query().unwrap().starts_with("SELECT"));
    }

    #[test]
    fn splitting_keeps_strings_bodies_and_drops_comments() {
        let s = split(
            "-- a; comment\nSELECT 'a;b'; CREATE FUNCTION f() AS $$ SELECT 1; $$;\n\nSELECT 2",
        );
        assert_eq!(
            s,
            vec![
                "SELECT 'a;b'",
                "CREATE FUNCTION f() AS $$ SELECT 1; $$",
                "SELECT 2"
            ]
        );
    }

    #[test]
    fn statements_are_classified_by_their_head() {
        assert_eq!(
            classify("CREATE INDEX IF NOT EXISTS x ON t USING gin (v)"),
            Some(Object::Index {
                name: "x".into(),
                table: "t".into(),
                method: "gin".into(),
                columns: vec!["v".into()],
                partial: false
            })
        );
        assert_eq!(
            classify("ALTER TABLE issue ADD COLUMN IF NOT EXISTS search_vector tsvector"),
            Some(Object::Column {
                table: "issue".into(),
                column: "search_vector".into()
            })
        );
        assert_eq!(
            classify("COMMENT ON COLUMN issuer.issuer_num IS 'x'"),
            Some(Object::Comment {
                target: "issuer.issuer_num".into()
            })
        );
        assert_eq!(classify("DROP TABLE issuer"), None);
    }
}
