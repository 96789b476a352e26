//! Command-line arguments, as clap reads them: flags, and the `CUSIP_*` variables behind
//! them (a scheduler configures the binary by environment alone; flags always win). The
//! rules between arguments are in `plan`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::convert::Encoding;
use crate::layout::FileType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table for people.
    Table,
    /// One JSON document for machines.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    /// One JSON object per line (CloudWatch).
    Json,
}

/// When a file may take the direct path into an empty table ([`crate::load`]'s `initial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialLoad {
    /// An empty table the loading role owns (or is a member of the owner of) takes it.
    #[default]
    Auto,
    /// Every empty table takes it; a role that does not own one is refused (77).
    Always,
    /// Never: the staged path, which needs no more than INSERT, UPDATE and SELECT.
    Never,
}

impl InitialLoad {
    pub fn name(self) -> &'static str {
        match self {
            InitialLoad::Auto => "auto",
            InitialLoad::Always => "always",
            InitialLoad::Never => "never",
        }
    }
}

/// `auto`, `always`, `never`, and the old boolean spellings of `CUSIP_INITIAL_LOAD`
/// (`true`/`1`/`yes`/`on` meant always; `false`/`0`/`no`/`off` meant the staged path), so
/// a task definition written for the old flag keeps its meaning.
fn parse_initial_load(s: &str) -> Result<InitialLoad, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(InitialLoad::Auto),
        "always" | "true" | "1" | "yes" | "on" => Ok(InitialLoad::Always),
        "never" | "false" | "0" | "no" | "off" => Ok(InitialLoad::Never),
        _ => Err(format!(
            "unknown value {s:?}: expected auto, always or never"
        )),
    }
}

/// The command line with the old `--initial-load` spelling made unambiguous: the flag used
/// to take no value, so `--initial-load FILE` meant "always" and then a file. clap, now that
/// the flag takes an optional value, would read the file as the value; a bare flag whose
/// next word is not one of its values becomes `--initial-load=always`.
pub fn argv(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = args.into_iter().collect();
    let mut i = 0;
    while i < out.len() {
        if out[i] == "--" {
            break;
        }
        if out[i] == "--initial-load" {
            let value = out
                .get(i + 1)
                .and_then(|v| v.to_str())
                .is_some_and(|v| parse_initial_load(v).is_ok());
            if !value {
                out[i] = "--initial-load=always".into();
            }
        }
        i += 1;
    }
    out
}

fn parse_type(s: &str) -> Result<FileType, String> {
    FileType::from_name(s)
        .ok_or_else(|| format!("unknown type {s:?}: expected issuer, issue or issue_attr"))
}

fn parse_sslmode(s: &str) -> Result<crate::tls::SslMode, String> {
    crate::tls::SslMode::from_name(s)
        .ok_or_else(|| format!("unknown sslmode {s:?}: expected disable, allow, prefer, require, verify-ca or verify-full"))
}

fn parse_encoding(s: &str) -> Result<Encoding, String> {
    Encoding::from_name(s)
        .ok_or_else(|| format!("unknown encoding {s:?}: expected utf8, latin1 or windows-1252"))
}

#[derive(Debug, Parser)]
#[command(
    group(clap::ArgGroup::new("input").args(["files", "s3_key", "dir"]).multiple(false)),
    name = "cusip-loader",
    version,
    about = "Loads CUSIP Global Services PIP files (issuer R.PIP, issue E.PIP, issue attribute A.PIP) into PostgreSQL",
    after_help = crate::error::Exit::help()
)]
pub struct Args {
    /// PIP files to load. They load in foreign-key order (issuer, issue, issue_attr)
    /// whatever order they are given in; the type comes from the name (…R.PIP, …E.PIP, …A.PIP).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Type of every FILE, overriding the name: issuer, issue or issue_attr.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type, help_heading = "Input")]
    pub file_type: Option<FileType>,

    /// Text encoding of the files: utf8 (invalid bytes are rejected), latin1 (ISO-8859-1)
    /// or windows-1252 (both transcoded to UTF-8).
    #[arg(long, value_name = "ENCODING", default_value = "utf8", value_parser = parse_encoding, help_heading = "Input")]
    pub encoding: Encoding,

    /// Accept a file without the 999999 trailer record (normally refused as truncated).
    #[arg(long, help_heading = "Input")]
    pub allow_missing_trailer: bool,

    /// S3 bucket holding the files (with --s3-key, or with --date for a whole date).
    #[arg(
        long,
        env = "CUSIP_S3_BUCKET",
        value_name = "BUCKET",
        help_heading = "Input"
    )]
    pub s3_bucket: Option<String>,

    /// One S3 object to load (type from its name unless --type).
    #[arg(long, value_name = "KEY", help_heading = "Input")]
    pub s3_key: Option<String>,

    /// Prefix the date's files are under, with or without the trailing slash.
    #[arg(
        long,
        env = "CUSIP_S3_PREFIX",
        value_name = "PREFIX",
        default_value = "pif/",
        help_heading = "Input"
    )]
    pub s3_prefix: String,

    /// Load the date's R, E and A files (from --s3-bucket/--s3-prefix or --dir). Default:
    /// today in the TZ time zone.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::locate::parse_date, help_heading = "Input")]
    pub date: Option<chrono::NaiveDate>,

    /// Load every date from this one to --to-date, in date order (from --s3-bucket/--s3-prefix
    /// or --dir): what is already loaded is skipped, a date with no files at all (a weekend,
    /// a holiday) is reported as `no files`, and the first failure stops the range.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::locate::parse_date,
          conflicts_with_all = ["date", "files", "s3_key"], help_heading = "Input")]
    pub from_date: Option<chrono::NaiveDate>,

    /// The last date of the range (default: today in the TZ time zone).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::locate::parse_date,
          requires = "from_date", help_heading = "Input")]
    pub to_date: Option<chrono::NaiveDate>,

    /// A local directory holding CED{MM-DD}{R|E|A}.PIP files; used with --date.
    #[arg(long, value_name = "DIR", help_heading = "Input")]
    pub dir: Option<PathBuf>,

    /// Load the files a date has even if some type is missing (reported as missing).
    #[arg(long, help_heading = "Input")]
    pub allow_missing: bool,

    /// With no input on the command line, which configured place the date's files are
    /// read from when both a bucket and a directory are set: s3 or local (local alone reads
    /// /data/pif_files unless --file-dir).
    #[arg(
        long,
        env = "CUSIP_FILE_SOURCE",
        value_name = "s3|local",
        help_heading = "Input"
    )]
    pub file_source: Option<String>,

    /// The directory a date's files are read from when no input is on the command line
    /// (what --dir is on the command line).
    #[arg(
        long,
        env = "CUSIP_FILE_DIR",
        value_name = "DIR",
        help_heading = "Input"
    )]
    pub file_dir: Option<PathBuf>,

    /// Load a file the journal would skip (its content is the table's newest load) or refuse
    /// (it is dated before the newest day loaded): a repair.
    #[arg(long, help_heading = "Load")]
    pub force: bool,

    /// A tuning knob, hidden: files smaller than this many bytes are compared with the table
    /// in the database, not in the loader (docs/performance.md, "Small files").
    #[arg(
        long,
        env = "CUSIP_COMPARE_MIN_BYTES",
        value_name = "BYTES",
        default_value_t = crate::load::COMPARE_MIN_BYTES,
        hide = true
    )]
    pub compare_min_bytes: u64,

    /// The direct path for a table that is still empty: COPY straight into it with its
    /// secondary indexes and foreign keys dropped, then rebuild and re-validate them, in the
    /// load's one transaction. auto (the default): when the loading role owns the table;
    /// always: refuse (77) an empty table the role does not own; never: always stage. The
    /// table is locked against readers until the commit. `--initial-load` alone is always.
    #[arg(
        long,
        env = "CUSIP_INITIAL_LOAD",
        value_name = "WHEN",
        num_args = 0..=1,
        default_value = "auto",
        default_missing_value = "always",
        hide_possible_values = true,
        value_parser = parse_initial_load,
        help_heading = "Load"
    )]
    pub initial_load: InitialLoad,

    /// AWS region of the bucket (else the standard AWS chain, else us-east-1).
    #[arg(
        long,
        env = "CUSIP_S3_REGION",
        value_name = "REGION",
        help_heading = "S3"
    )]
    pub s3_region: Option<String>,

    /// S3 endpoint URL (also AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL), for S3-compatible servers.
    #[arg(long, value_name = "URL", help_heading = "S3")]
    pub s3_endpoint_url: Option<String>,

    /// Path-style addressing, which local S3-compatible servers need.
    #[arg(
        long,
        env = "CUSIP_S3_FORCE_PATH_STYLE",
        value_parser = clap::builder::BoolishValueParser::new(),
        help_heading = "S3"
    )]
    pub s3_force_path_style: bool,

    /// Times one object's download may resume after breaking mid-stream.
    #[arg(long, value_name = "N", default_value_t = 5, help_heading = "S3")]
    pub s3_max_resumes: u32,

    /// Bytes per ranged GET when an object is fetched in parallel.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20, help_heading = "S3")]
    pub s3_part_size: u64,

    /// Ranged GETs in flight per object (1: one stream). Memory is capped at
    /// concurrency × part size.
    #[arg(long, value_name = "N", default_value_t = 4, help_heading = "S3")]
    pub s3_concurrency: usize,

    /// Parse and check the files (local or S3) without any database: same errors and exit
    /// codes, for a pre-flight step. Foreign keys and code-table membership are not checked.
    #[arg(long, conflicts_with = "init_schema", help_heading = "Load")]
    pub validate_only: bool,

    /// Apply the embedded schema (idempotent) before loading; alone, only that. Also takes
    /// over a database the old service built, in place (docs/database.md: taking over).
    #[arg(long, help_heading = "Load")]
    pub init_schema: bool,

    /// Instead of loading: print, per table, the newest file loaded, a failure since, and the
    /// business days (Mon-Fri) of the last 10 up to --date or today with no load. Reads only
    /// load_journal.
    #[arg(long, conflicts_with_all = ["files", "init_schema", "validate_only", "check"], help_heading = "Load")]
    pub status: bool,

    /// Instead of loading: a pre-flight that writes nothing. Connects as a load would, checks
    /// the schema, the role's rights and the file source (S3 prefix or directory); one line
    /// per check, exit 0 when all pass, else the first failure's code.
    #[arg(long, conflicts_with_all = ["files", "init_schema", "validate_only"], help_heading = "Load")]
    pub check: bool,

    /// With --init-schema: also make the changes that rewrite tables holding rows (key
    /// columns to collation "C", so that loads compare in the loader; a generated
    /// search_vector where a table has none). Locks each table until the commit.
    #[arg(long, requires = "init_schema", help_heading = "Load")]
    pub rewrite_tables: bool,

    /// Database host name, IP address, or Unix socket directory.
    #[arg(
        long,
        env = "CUSIP_DB_HOST",
        default_value = "localhost",
        help_heading = "Database"
    )]
    pub host: String,

    #[arg(
        long,
        env = "CUSIP_DB_PORT",
        default_value_t = 5432,
        help_heading = "Database"
    )]
    pub port: u16,

    #[arg(
        long,
        env = "CUSIP_DB_NAME",
        default_value = "cusip",
        help_heading = "Database"
    )]
    pub dbname: String,

    #[arg(
        long,
        env = "CUSIP_DB_USER",
        default_value = "cusip_app",
        help_heading = "Database"
    )]
    pub user: String,

    /// Prefer the CUSIP_DB_PASSWORD variable: a flag is visible to other users in `ps`.
    #[arg(
        long,
        env = "CUSIP_DB_PASSWORD",
        hide_env_values = true,
        help_heading = "Database"
    )]
    pub password: Option<String>,

    /// TLS to the database, with libpq's meanings: disable, allow, prefer, require, verify-ca,
    /// verify-full. RDS: verify-full with --sslrootcert.
    #[arg(long, env = "CUSIP_DB_SSLMODE", value_name = "MODE", default_value = "prefer", value_parser = parse_sslmode, help_heading = "Database")]
    pub sslmode: crate::tls::SslMode,

    /// PEM bundle of the CAs to trust (e.g. the RDS global bundle). Not built in: AWS rotates it.
    #[arg(
        long,
        env = "CUSIP_DB_SSLROOTCERT",
        value_name = "FILE",
        help_heading = "Database"
    )]
    pub sslrootcert: Option<PathBuf>,

    /// libpq-style URL, postgresql://user@host:port/dbname?sslmode=verify-full&sslrootcert=FILE;
    /// what it holds overrides the flags above.
    #[arg(
        long,
        env = "CUSIP_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true,
        help_heading = "Database"
    )]
    pub database_url: Option<String>,

    /// Secrets Manager secret (ARN or name) holding {host, port, dbname, username, password};
    /// what it holds overrides the settings above.
    #[arg(
        long,
        env = "CUSIP_DB_SECRET_ARN",
        value_name = "ARN",
        help_heading = "Database"
    )]
    pub db_secret_arn: Option<String>,

    /// Region of the secret (default: the ARN's region, then the AWS chain).
    #[arg(
        long,
        env = "CUSIP_DB_SECRET_REGION",
        value_name = "REGION",
        help_heading = "Database"
    )]
    pub db_secret_region: Option<String>,

    /// Seconds to keep retrying (with backoff) a connection that is refused or reset at start,
    /// e.g. during an RDS failover. 0: try once.
    #[arg(
        long,
        env = "CUSIP_DB_CONNECT_RETRY",
        value_name = "SECONDS",
        default_value_t = 60,
        help_heading = "Database"
    )]
    pub connect_retry: u64,

    /// Seconds to wait for another loader's lock on the same table (exit 75 when it runs out).
    #[arg(
        long,
        env = "CUSIP_LOCK_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 900,
        help_heading = "Database"
    )]
    pub lock_timeout: u64,

    /// Seconds any one statement may run (exit 75 when it runs out). 0: no limit.
    #[arg(
        long,
        env = "CUSIP_STATEMENT_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 3600,
        help_heading = "Database"
    )]
    pub statement_timeout: u64,

    /// Seconds to wait for the database connection.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 15,
        help_heading = "Database"
    )]
    pub connect_timeout: u64,

    /// Seconds a database or S3 connection may go without progress before it is given up as
    /// dead (exit 75, nothing committed): TCP keepalive and user timeout, the server's own
    /// keepalive, S3 read and stall timeouts, and a liveness check while a statement runs.
    #[arg(
        long,
        env = "CUSIP_NET_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        help_heading = "Database"
    )]
    pub net_timeout: u64,

    /// Summary format on stdout: with json, every outcome (usage errors included) is one JSON
    /// document there.
    #[arg(
        long,
        value_enum,
        env = "CUSIP_OUTPUT",
        default_value = "table",
        help_heading = "Output"
    )]
    pub output: OutputFormat,

    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(
        long,
        value_enum,
        env = "CUSIP_LOG_FORMAT",
        default_value = "text",
        help_heading = "Output"
    )]
    pub log_format: LogFormat,

    /// Never draw a progress bar (one is drawn only when stderr is a terminal).
    #[arg(long, help_heading = "Output")]
    pub no_progress: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `(variable, flag)` of each row of the README's configuration table that names one.
    fn readme_rows() -> Vec<(String, String)> {
        let readme = include_str!("../README.md");
        let start = readme
            .find("## Configuration")
            .expect("README has ## Configuration");
        let section = &readme[start..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
        section
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let var = cells.get(1)?.trim_matches('`');
                let flag = cells.get(2)?.trim_matches('`');
                (var.starts_with("CUSIP_") && flag.starts_with("--"))
                    .then(|| (var.to_string(), flag.to_string()))
            })
            .collect()
    }

    /// The long help's block for `flag`: its line and the indented lines under it.
    fn block(help: &str, flag: &str) -> Option<String> {
        let lines: Vec<&str> = help.lines().collect();
        let at = lines.iter().position(|l| {
            let t = l.trim_start();
            t.starts_with(&format!("{flag} "))
                || t == flag
                || t.starts_with(&format!("{flag}="))
                || t.starts_with(&format!("{flag} <"))
        })?;
        let body: Vec<&str> = lines[at + 1..]
            .iter()
            .take_while(|l| l.is_empty() || l.starts_with("          "))
            .copied()
            .collect();
        Some(body.join("\n"))
    }

    #[test]
    fn initial_load_takes_a_value_and_keeps_its_old_bare_spelling() {
        let parse = |words: &[&str]| {
            let full = argv(
                std::iter::once("cusip-loader")
                    .chain(words.iter().copied())
                    .map(std::ffi::OsString::from),
            );
            Args::try_parse_from(full).map(|a| a.initial_load)
        };
        assert_eq!(parse(&["x/CED01-15R.PIP"]).unwrap(), InitialLoad::Auto);
        assert_eq!(
            parse(&["--initial-load", "x/CED01-15R.PIP"]).unwrap(),
            InitialLoad::Always
        );
        assert_eq!(
            parse(&["x/CED01-15R.PIP", "--initial-load"]).unwrap(),
            InitialLoad::Always
        );
        assert_eq!(
            parse(&["--initial-load", "never", "x/CED01-15R.PIP"]).unwrap(),
            InitialLoad::Never
        );
        assert_eq!(
            parse(&["--initial-load=auto", "x/CED01-15R.PIP"]).unwrap(),
            InitialLoad::Auto
        );
        // The old variable's boolean values keep their meaning.
        for (v, want) in [
            ("true", InitialLoad::Always),
            ("1", InitialLoad::Always),
            ("false", InitialLoad::Never),
            ("AUTO", InitialLoad::Auto),
        ] {
            assert_eq!(parse_initial_load(v).unwrap(), want, "{v}");
        }
        assert!(parse_initial_load("sometimes").is_err());
    }

    #[test]
    fn help_shows_each_variable_under_its_flag_as_the_readme_table_does() {
        let help = Args::command().render_long_help().to_string();
        let rows = readme_rows();
        assert!(rows.len() >= 20, "{rows:?}");
        for (var, flag) in &rows {
            let b = block(&help, flag).unwrap_or_else(|| panic!("--help has no {flag}"));
            assert!(
                b.contains(&format!("[env: {var}=")) || b.contains(&format!("[env: {var}]")),
                "{flag} does not show {var}:\n{b}"
            );
        }
        // And no variable in --help that the table does not list.
        for (i, _) in help.match_indices("[env: ") {
            let var: String = help[i + 6..]
                .chars()
                .take_while(|c| *c != '=' && *c != ']')
                .collect();
            assert!(
                rows.iter().any(|(v, _)| *v == var),
                "--help shows {var}, which the README's configuration table lacks"
            );
        }
    }
}
