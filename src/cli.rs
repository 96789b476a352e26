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

    /// A local directory holding CED{MM-DD}{R|E|A}.PIP files; used with --date.
    #[arg(long, value_name = "DIR", help_heading = "Input")]
    pub dir: Option<PathBuf>,

    /// Load the files a date has even if some type is missing (reported as missing).
    #[arg(long, help_heading = "Input")]
    pub allow_missing: bool,

    /// With no input on the command line: where the date's files are, `s3` (the bucket and
    /// prefix) or `local` (the directory).
    #[arg(long, env = "CUSIP_FILE_SOURCE", hide = true, help_heading = "Input")]
    pub file_source: Option<String>,

    /// The directory for CUSIP_FILE_SOURCE=local (default /data/pif_files).
    #[arg(long, env = "CUSIP_FILE_DIR", hide = true, help_heading = "Input")]
    pub file_dir: Option<PathBuf>,

    /// Load even if the journal says this exact file (path + sha256, or S3 URI + ETag) was
    /// already loaded successfully.
    #[arg(long, help_heading = "Load")]
    pub force: bool,

    /// For a table that is still empty: drop its secondary indexes and foreign keys, insert
    /// the rows, rebuild the indexes and re-add (re-validate) the foreign keys, all in the
    /// load's one transaction. About 3x faster for a first load, but it locks the table
    /// against readers until commit and needs the role to own the tables (exit 77
    /// otherwise). A table that already has rows is merged as usual.
    #[arg(long, env = "CUSIP_INITIAL_LOAD", value_parser = clap::builder::BoolishValueParser::new(), help_heading = "Load")]
    pub initial_load: bool,

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

    /// Summary format on stdout.
    #[arg(long, value_enum, default_value = "table", help_heading = "Output")]
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
