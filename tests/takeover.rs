//! Taking over a database the old Python service built, in place, and answering its
//! consumers unchanged: views, full-text search and the anonymous PostgREST role, on such a
//! database and on one the loader builds itself (shared/old-service-contract.md).
//!
//! The old database comes from `tests/fixtures/old_service/`, written for these tests from the
//! contract's facts. It is created with an ICU default collation, as a server's would be, so
//! its keys do not sort byte-wise.

mod common;

use std::sync::OnceLock;

use common::*;

const OLD_TABLES: &str = include_str!("fixtures/old_service/01-tables.sql");
const OLD_VIEWS: &str = include_str!("fixtures/old_service/02-views.sql");
const OLD_SEARCH: &str = include_str!("fixtures/old_service/03-search.sql");
const OLD_GRANTS: &str = include_str!("fixtures/old_service/04-grants.sql");
/// The views as the loader defined them before it followed the contract (19-column
/// v_security, cusip first in v_issue, NULL for empty glued text).
const LOADER_0_1_VIEWS: &str = include_str!("fixtures/loader-0.1-views.sql");

const VIEWS: [&str; 5] = [
    "v_issuer",
    "v_issue",
    "v_issue_attribute",
    "v_security",
    "v_security_summary",
];

/// Words that hit issuers, issues and attributes of the sample files.
const TERMS: [&str; 5] = ["jersey", "health", "goldman", "treas", "no such words"];

/// A database created as a server's usually is: a language collation by default. Its ctype
/// stays the cluster's ("C"), because `to_tsvector` lowercases by the ctype and the tests
/// compare vectors with a database the loader builds on the same cluster.
const ICU: &str = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'";

/// The cluster-wide roles: PostgREST's two, and two more for ownership tests.
fn roles() {
    static ROLES: OnceLock<()> = OnceLock::new();
    ROLES.get_or_init(|| {
        let out = psql_on(
            "postgres",
            "CREATE ROLE web_anon NOLOGIN; \
             CREATE ROLE authenticator LOGIN NOINHERIT; GRANT web_anon TO authenticator; \
             CREATE ROLE other_owner NOLOGIN; CREATE ROLE schema_owner LOGIN; \
             CREATE ROLE cusip_app LOGIN",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// The part of a script from `from` (inclusive) to `to` (exclusive, or the end).
fn part<'a>(script: &'a str, from: &str, to: Option<&str>) -> &'a str {
    let start = script
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in script"));
    let end = to.map_or(script.len(), |t| start + script[start..].find(t).unwrap());
    &script[start..end]
}

fn schema_sql() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.sql")).unwrap()
}

/// A database as the old service left it, with 01-15's rows (`rows`) put in the way it did:
/// COPY into its staging tables, then INSERT into the masters (its triggers fill the vectors).
fn old_db(tag: &str, rows: bool) -> Db {
    old_db_of(tag, rows, None)
}

/// [`old_db`], its schema and objects owned by `owner` instead of the superuser.
fn old_db_of(tag: &str, rows: bool, owner: Option<&str>) -> Db {
    roles();
    let db = Db::empty_with(tag, ICU);
    let as_owner = owner.map_or(String::new(), |o| {
        format!("ALTER SCHEMA public OWNER TO {o}; SET ROLE {o};")
    });
    db.script(&[&as_owner, OLD_TABLES, OLD_VIEWS, OLD_SEARCH, OLD_GRANTS].join("\n"));
    if rows {
        for (i, (table, file)) in MASTER.iter().zip(day("01-15")).enumerate() {
            let mut data = Vec::new();
            for row in expected_rows(&file, if i == 0 { 1 } else { 2 }) {
                data.extend_from_slice(&row);
                data.push(b'\n');
            }
            psql_stdin(
                &db.name,
                &format!("COPY stg_{table} FROM STDIN (FORMAT csv, DELIMITER '|', QUOTE E'\\x01')"),
                &data,
            );
            let cols = layout_of(table).column_names().join(", ");
            db.sql(&format!(
                "INSERT INTO {table} ({cols}) SELECT {cols} FROM stg_{table}"
            ));
        }
    }
    db
}

/// The contract's views and search function as this project's schema.sql defines them,
/// created in schema `into` over the database's own tables.
fn loader_query_plane(db: &Db, into: &str) {
    let sql = schema_sql();
    let views = part(
        &sql,
        "CREATE OR REPLACE VIEW v_issuer",
        Some("COMMENT ON VIEW"),
    );
    let search = part(&sql, "CREATE OR REPLACE FUNCTION search_securities", None);
    db.script(&format!(
        "CREATE SCHEMA {into}; SET search_path = {into}, public;\n{views}\n{search}"
    ));
}

/// The old service's views and search function, created in schema `into`.
fn old_query_plane(db: &Db, into: &str) {
    let search = part(OLD_SEARCH, "CREATE FUNCTION search_securities", None);
    db.script(&format!(
        "CREATE SCHEMA {into}; SET search_path = {into}, public;\n{OLD_VIEWS}\n{search}"
    ));
}

fn run_ok(cmd: &mut std::process::Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    err
}

/// The five views of schemas `a` and `b`: the same columns (names, order, types) and the
/// same rows, and not empty.
fn assert_views_answer_alike(db: &Db, a: &str, b: &str) {
    for v in VIEWS {
        let cols = |s: &str| {
            db.sql(&format!(
                "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
                   FROM pg_attribute WHERE attrelid = '{s}.{v}'::regclass AND attnum > 0"
            ))
        };
        assert_eq!(cols(a), cols(b), "{v}: columns");
        let differ = db.sql(&format!(
            "SELECT count(*) FROM ((SELECT * FROM {a}.{v} EXCEPT ALL SELECT * FROM {b}.{v}) \
             UNION ALL (SELECT * FROM {b}.{v} EXCEPT ALL SELECT * FROM {a}.{v})) d"
        ));
        assert_eq!(differ.trim(), "0", "{v}: rows differ between {a} and {b}");
        assert!(db.count(&format!("{a}.{v}")) > 0, "{v} is empty");
    }
}

/// `search_securities` of schema `a` gives what the old one (schema `old`) gives, in rank
/// order; together the terms hit all three match types.
fn assert_search_alike(db: &Db, a: &str, old: &str) {
    let mut types = String::new();
    for term in TERMS {
        let ours = db.sql(&format!("SELECT * FROM {a}.search_securities('{term}')"));
        let theirs = db.sql(&format!(
            "SELECT * FROM {old}.search_securities('{term}') ORDER BY rank DESC, cusip"
        ));
        assert_eq!(ours, theirs, "search {term:?}");
        types.push_str(&ours);
        if term != "no such words" {
            assert!(!ours.is_empty(), "search {term:?} found nothing");
        }
    }
    for t in ["|issuer|", "|issue|", "|attribute|"] {
        assert!(types.contains(t), "no {t} match among {TERMS:?}");
    }
}

/// What PostgREST's anonymous role can and cannot do, as its consumers ask.
fn assert_web_anon_reads_and_searches(db: &Db) {
    let anon = |q: &str| psql_on(&db.name, &format!("SET ROLE web_anon; {q}"));
    for q in [
        "SELECT * FROM v_issuer WHERE issuer_name ILIKE '%JERSEY%'",
        "SELECT * FROM v_issue WHERE cusip = '00516BF98'",
        "SELECT * FROM v_issuer ORDER BY issuer_name LIMIT 100 OFFSET 200",
        "SELECT * FROM v_issue_attribute LIMIT 5",
        "SELECT * FROM v_security LIMIT 5",
        "SELECT * FROM v_security_summary LIMIT 5",
        "SELECT * FROM ref_issue_status",
        "SELECT * FROM search_securities('KEURIG')",
        "SELECT * FROM search_securities('jersey')",
    ] {
        let out = anon(q);
        assert!(
            out.status.success(),
            "web_anon: {q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = anon("SELECT count(*) FROM v_issue WHERE cusip = '00516BF98'");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    let out = anon("SELECT count(*) FROM search_securities('jersey')");
    assert_ne!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    for table in ["issuer", "issue", "issue_attribute", "load_journal"] {
        let out = anon(&format!("SELECT 1 FROM {table} LIMIT 1"));
        assert!(!out.status.success(), "web_anon may read {table}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
    }
}

/// A few values the contract states, checked by hand against the sample files.
fn assert_contract_values(db: &Db) {
    // Quotes kept (the old service lost them); glued and trimmed; '' where all is empty.
    let r = db.sql(
        "SELECT issuer_name, issuer_additional_info, issuer_type_desc FROM v_issuer \
          WHERE issuer_num = '009669'",
    );
    assert_eq!(
        r.trim(),
        "\"THE\" QUOTED HOLDINGS \"INC\"|\"|Corporate Issuer"
    );
    let r = db.sql(
        "SELECT issuer_name, issuer_additional_info = '' FROM v_issuer WHERE issuer_num = '006023'",
    );
    assert_eq!(r.trim(), "NEW JERSEY DEV FIN AUTH REV|t");
    let r = db.sql(
        "SELECT count(*) FROM v_issuer WHERE issuer_name IS NULL OR issuer_additional_info IS NULL",
    );
    assert_eq!(r.trim(), "0");
    // cusip third in v_issue, with the check digit; the status's description.
    let r = db.sql("SELECT issuer_num, issue_num, cusip, issue_status_desc FROM v_issue WHERE cusip = '00516BF98'");
    assert_eq!(r.trim(), "00516B|F9|00516BF98|Issue Matured");
    // cusip_base and the full offering amount for M and K.
    let r = db.sql(
        "SELECT cusip_base, offering_amount_full FROM v_issue_attribute \
          WHERE cusip_base IN ('00516BF9', '006023EZ') ORDER BY 1",
    );
    assert_eq!(r.trim(), "00516BF9|250000000.0\n006023EZ|995500.0");
    // Descriptions under the old names in the summary.
    let r = db
        .sql("SELECT issuer_type, issue_status FROM v_security_summary WHERE cusip = '00516BF98'");
    assert_eq!(r.trim(), "Municipal Issuer|Issue Matured");
    let r = db.sql(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'v_security'::regclass AND attnum > 0",
    );
    assert_eq!(r.trim(), "47");
}

#[test]
fn an_old_service_database_is_taken_over_in_place_and_answers_unchanged() {
    let db = old_db("takeover", true);
    // A consumer's own view on one of the old views: it must survive the takeover.
    db.sql("CREATE VIEW consumer_watchlist AS SELECT cusip, issuer_name FROM v_security WHERE rate > 5");
    // The old service's search fails for the anonymous role.
    let out = psql_on(
        &db.name,
        "SET ROLE web_anon; SELECT * FROM search_securities('jersey')",
    );
    assert!(!out.status.success(), "the old search worked for web_anon");
    // Without --init-schema a load cannot start (no journal).
    let (code, _, err) = run(db.loader().args(day("01-16")));
    assert_eq!(code, 78, "{err}");
    let rows_before = db.snapshot();

    let err = run_ok(db.loader().arg("--init-schema"));
    for said in [
        "stg_issuer, stg_issue, stg_issue_attribute: the old service's staging tables",
        "issuer: search_vector is kept current by the old service's trigger issuer_search_trigger",
        "issue: index idx_issue_status on (issue_status) serves as issue_status_idx",
        "v_security: answers as the contract says; kept as it is",
        "search_securities: replaced",
        "--rewrite-tables changes them",
    ] {
        assert!(err.contains(said), "missing {said:?} in:\n{err}");
    }
    // Not one row rewritten (same xmin and ctid), and the consumer's view is still there.
    assert_eq!(db.snapshot(), rows_before);
    assert_eq!(
        db.count("consumer_watchlist"),
        db.count("v_security WHERE rate > 5")
    );

    // A second run changes nothing.
    let schema = db.schema_dump();
    let err = run_ok(db.loader().arg("--init-schema"));
    assert!(
        err.contains("schema: already in place; nothing changed"),
        "{err}"
    );
    assert_eq!(db.schema_dump(), schema);

    // The next date loads (compared in the database: the keys are not "C"), exactly.
    let err = run_ok(db.loader().args(day("01-16")));
    assert!(err.contains("comparing in the database"), "{err}");
    assert_both_days(&db);
    // The old views answer as the loader's own definitions do; search as the old one does.
    loader_query_plane(&db, "loader");
    assert_views_answer_alike(&db, "public", "loader");
    assert_contract_values(&db);
    old_query_plane(&db, "oldsvc");
    assert_search_alike(&db, "public", "oldsvc");
    assert_web_anon_reads_and_searches(&db);
}

#[test]
fn a_database_the_loader_builds_answers_consumers_as_the_old_one_does() {
    roles();
    let db = Db::new("own");
    for d in ["01-15", "01-16"] {
        run_ok(db.loader().args(day(d)));
    }
    assert_both_days(&db);
    old_query_plane(&db, "oldsvc");
    assert_views_answer_alike(&db, "public", "oldsvc");
    assert_contract_values(&db);
    assert_search_alike(&db, "public", "oldsvc");
    assert_web_anon_reads_and_searches(&db);
    // web_anon holds exactly the contract's privileges.
    let held = db.sql(
        "SELECT string_agg(c.relname || ':' || a.privilege_type, ',' ORDER BY c.relname) \
           FROM pg_class c, aclexplode(c.relacl) a \
          WHERE a.grantee = 'web_anon'::regrole AND c.relnamespace = 'public'::regnamespace",
    );
    let mut want: Vec<String> = VIEWS
        .iter()
        .chain(REF_TABLES.iter())
        .map(|n| format!("{n}:SELECT"))
        .collect();
    want.sort();
    assert_eq!(held.trim(), want.join(","));
    let f = db.sql(
        "SELECT has_function_privilege('web_anon', 'search_securities(text)', 'EXECUTE'), \
                p.prosecdef, p.proconfig::text FROM pg_proc p \
          WHERE proname = 'search_securities' AND pronamespace = 'public'::regnamespace",
    );
    assert_eq!(f.trim(), "t|t|{\"search_path=public, pg_temp\"}");
}

#[test]
fn every_load_path_gives_the_same_tables_and_vectors_in_both_kinds_of_database() {
    // Fresh 01-15 then the 01-16 delta, by the default path and by --initial-load, into an
    // empty taken-over database and into one the loader built.
    let mut digests = Vec::new();
    for (kind, initial) in [("old", false), ("old", true), ("own", false), ("own", true)] {
        let db = if kind == "old" {
            let db = old_db(&format!("paths_{kind}"), false);
            run_ok(db.loader().arg("--init-schema"));
            db
        } else {
            roles();
            Db::new(&format!("paths_{kind}"))
        };
        for d in ["01-15", "01-16"] {
            let mut cmd = db.loader();
            cmd.args(day(d)).args(["--output", "json"]);
            if initial {
                cmd.arg("--initial-load");
            }
            let (code, out, err) = run(&mut cmd);
            assert_eq!(code, 0, "{kind} {d}: {err}");
            if initial && d == "01-15" {
                let v = summary(&out);
                assert!(
                    v["files"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|f| f["initial_load"] == true),
                    "{v}"
                );
            }
        }
        assert_both_days(&db);
        // Sorted: the old database's keys sort by its language collation.
        let mut d: Vec<String> = MASTER
            .iter()
            .flat_map(|t| {
                db.dump(t)
                    .lines()
                    .map(|l| format!("{t} {l}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        d.sort();
        digests.push((kind, initial, d));
    }
    for (kind, initial, d) in &digests[1..] {
        let first = d.iter().zip(&digests[0].2).find(|(a, b)| a != b);
        assert!(
            d == &digests[0].2,
            "{kind} initial_load={initial}: tables or vectors differ from the old database's \
             default path, e.g. {first:?}"
        );
    }
}

#[test]
fn rewrite_tables_moves_the_keys_to_c_so_loads_compare_in_the_loader() {
    let db = old_db("rewrite", true);
    db.sql("CREATE VIEW consumer_watchlist AS SELECT cusip FROM v_security");
    run_ok(db.loader().arg("--init-schema"));
    // The views sit on the keys: a consumer's view on one of them blocks the rewrite, named.
    let schema = db.schema_dump();
    let (code, _, err) = run(db.loader().args(["--init-schema", "--rewrite-tables"]));
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("consumer_watchlist depends on it")
            && err.contains("never drops with CASCADE"),
        "{err}"
    );
    assert_eq!(db.schema_dump(), schema);
    db.sql("DROP VIEW consumer_watchlist");
    db.sql("GRANT SELECT ON v_issue TO cusip_app");

    let before = db.digest();
    let err = run_ok(db.loader().args(["--init-schema", "--rewrite-tables"]));
    assert!(
        err.contains("issue: key columns to collation \"C\""),
        "{err}"
    );
    assert_eq!(db.digest(), before, "the rewrite changed data");
    let coll = db.sql(
        "SELECT string_agg(DISTINCT c.collname, ',') FROM pg_attribute a JOIN pg_collation c \
           ON c.oid = a.attcollation WHERE a.attrelid IN ('issuer'::regclass, 'issue'::regclass, \
           'issue_attribute'::regclass) AND a.attname IN ('issuer_num', 'issue_num')",
    );
    assert_eq!(coll.trim(), "C");
    // The views came back, with the privileges they had.
    let grants = db.sql("SELECT has_table_privilege('cusip_app', 'v_issue', 'SELECT'), has_table_privilege('web_anon', 'v_security', 'SELECT')");
    assert_eq!(grants.trim(), "t|t");
    // Keys in "C": a reload is compared in the loader (the 01-16 delta repeats keys, so it
    // is compared in the database either way).
    let err = run_ok(db.loader().args(day("01-15")).arg("--force"));
    assert!(
        err.contains("compared with issue in the loader: 0 of 630 records new or changed"),
        "{err}"
    );
    assert!(!err.contains("do not use collation"), "{err}");
    run_ok(db.loader().args(day("01-16")));
    assert_both_days(&db);
    loader_query_plane(&db, "loader");
    assert_views_answer_alike(&db, "public", "loader");
    // Nothing left to rewrite.
    let schema = db.schema_dump();
    let err = run_ok(db.loader().args(["--init-schema", "--rewrite-tables"]));
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(db.schema_dump(), schema);
}

#[test]
fn a_database_the_loader_cannot_recognise_is_refused_and_left_as_it_was() {
    roles();
    let refused = |db: &Db, cmd: &mut std::process::Command, code: i32, said: &[&str]| {
        let before = db.schema_dump();
        let (c, out, err) = run(cmd);
        assert_eq!(c, code, "{out}\n{err}");
        for s in said {
            assert!(err.contains(s), "missing {s:?} in:\n{err}");
        }
        assert!(!err.contains("internal error"), "{err}");
        assert_eq!(db.schema_dump(), before, "the refusal changed the schema");
    };

    // A table of a master table's name with other columns.
    let db = Db::empty("alien_table");
    db.sql("CREATE TABLE issue (issuer_num varchar(6) NOT NULL, issue_num varchar(2) NOT NULL, rate numeric(8,2))");
    refused(&db, db.loader().arg("--init-schema"), 78, &[
        "issue is not a table the loader can load: its column 3 is rate where the loader expects issue_check",
    ]);

    // The loader's own views from before the contract, with a consumer's view on one of them.
    let old_loader = |tag: &str, owner: Option<&str>| {
        let db = old_db_of(tag, true, owner);
        let role = owner.map_or(String::new(), |o| format!("SET ROLE {o};"));
        db.script(&format!(
            "{role} DROP VIEW {};\n{LOADER_0_1_VIEWS}",
            VIEWS.join(", ")
        ));
        db
    };
    let db = old_loader("dependent", None);
    db.sql("CREATE VIEW consumer_report AS SELECT cusip, ticker_symbol FROM v_security");
    refused(
        &db,
        db.loader().arg("--init-schema"),
        78,
        &[
            "v_security must change (it has 19 columns where the contract has 47)",
            "consumer_report depends on it",
        ],
    );
    // Without it, the same database is brought to the contract, grants kept.
    db.sql("DROP VIEW consumer_report; GRANT SELECT ON v_issue TO cusip_app");
    let err = run_ok(db.loader().arg("--init-schema"));
    for said in [
        // Same columns, but NULL where the contract glues to '': told by the probe rows.
        "v_issuer: replaced by the contract's definition (it answers differently from the contract",
        "v_issue: replaced by the contract's definition (its column 1 is cusip where the contract has issuer_num)",
    ] {
        assert!(err.contains(said), "missing {said:?} in:\n{err}");
    }
    loader_query_plane(&db, "loader");
    assert_views_answer_alike(&db, "public", "loader");
    let g = db.sql("SELECT has_table_privilege('cusip_app', 'v_issue', 'SELECT')");
    assert_eq!(g.trim(), "t");

    // A view that must change and belongs to another role, taken over by a non-superuser.
    let db = old_loader("foreign_view", Some("schema_owner"));
    db.sql("ALTER VIEW v_issue OWNER TO other_owner");
    refused(&db, db.loader().env("CUSIP_DB_USER", "schema_owner").arg("--init-schema"), 78, &[
        "v_issue must change (its column 1 is cusip where the contract has issuer_num) but is owned by other_owner",
    ]);

    // A role that may not create in the schema: 77, with who may.
    let db = old_db("not_owner", false);
    db.sql(&format!(
        "GRANT CONNECT ON DATABASE {} TO cusip_app",
        db.name
    ));
    refused(&db, db.loader().env("CUSIP_DB_USER", "cusip_app").arg("--init-schema"), 77, &[
        "role cusip_app may not create objects in schema public; the schema is applied by its owner",
    ]);

    // A trigger the loader does not know: --init-schema refuses, and so does a load.
    let db = old_db("trigger", true);
    run_ok(db.loader().arg("--init-schema"));
    db.sql(
        "CREATE TABLE audit (n int); \
         CREATE FUNCTION audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit VALUES (1); RETURN NEW; END $$; \
         CREATE TRIGGER issue_audit AFTER INSERT OR UPDATE ON issue FOR EACH ROW EXECUTE FUNCTION audit_fn()",
    );
    refused(
        &db,
        db.loader().arg("--init-schema"),
        78,
        &["the loader does not know trigger issue_audit on issue (function audit_fn)"],
    );
    let before = db.snapshot();
    let (code, _, err) = run(db.loader().arg(&day("01-16")[1]));
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(
            "issue: the loader does not know trigger issue_audit on issue (function audit_fn)"
        ),
        "{err}"
    );
    assert!(
        db.snapshot() == before,
        "the refused load changed the tables"
    );
    // Disabled, it never fires: the load goes ahead.
    db.sql("ALTER TABLE issue DISABLE TRIGGER issue_audit");
    run_ok(db.loader().args(day("01-16")));
    assert_eq!(db.count("audit"), 0);
}

#[test]
fn a_foreign_key_the_loader_did_not_expect_refuses_the_file_by_name() {
    let db = old_db("extra_fk", true);
    run_ok(db.loader().arg("--init-schema"));
    db.sql(
        "CREATE TABLE currency (code varchar(3) PRIMARY KEY); \
         INSERT INTO currency SELECT DISTINCT currency_code FROM issue_attribute WHERE currency_code IS NOT NULL; \
         ALTER TABLE issue_attribute ADD CONSTRAINT fk_currency FOREIGN KEY (currency_code) REFERENCES currency (code)",
    );
    // The 01-16 attribute delta with every record in a currency that table lacks: refused by
    // that constraint, by name, nothing written.
    let file = tempfile::tempdir().unwrap();
    let a = file.path().join("CED01-16A.PIP");
    let text = std::fs::read_to_string(&day("01-16")[2]).unwrap();
    let changed: String = text
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split('|').collect();
            if f.len() == 53 {
                f[9] = "ZZZ";
            }
            f.join("|") + "\n"
        })
        .collect();
    std::fs::write(&a, changed).unwrap();
    run_ok(db.loader().args(&day("01-16")[..2]));
    let before = db.snapshot();
    let (code, _, err) = run(db.loader().arg(&a));
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("fk_currency"), "{err}");
    assert_eq!(db.snapshot(), before);
}

#[test]
fn schema_sql_declares_every_master_column_as_the_layouts_do() {
    use cusip_loader::layout::{FileType, Kind};
    let db = Db::new("layout");
    for t in FileType::ALL {
        let l = t.layout();
        let have = db.sql(&format!(
            "SELECT attname || ' ' || format_type(atttypid, atttypmod) || \
                    CASE WHEN attnotnull THEN ' not null' ELSE '' END \
               FROM pg_attribute WHERE attrelid = '{}'::regclass AND attnum > 0 \
                AND NOT attisdropped ORDER BY attnum",
            l.table
        ));
        let mut want: Vec<String> = l
            .columns
            .iter()
            .map(|c| {
                let ty = match c.kind {
                    Kind::Varchar(n) => format!("character varying({n})"),
                    Kind::Date => "date".into(),
                    Kind::Integer => "integer".into(),
                    Kind::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
                };
                format!("{} {ty}{}", c.name, if c.key { " not null" } else { "" })
            })
            .collect();
        want.push("search_vector tsvector".into());
        assert_eq!(have.lines().collect::<Vec<_>>(), want, "{}", l.table);
    }
}
