//! From the command line (and the variables clap reads for it) to what one run will do, in
//! one pure step that the tests call without any I/O: the `Plan`.
//!
//! Clap already parsed and validated each value; what is left here are the rules between
//! them: which input kind was asked for, what a variable means when the command line names
//! no input, and the database settings before any secret is fetched. `app` then only does
//! I/O with the plan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;

use crate::cli::Args;
use crate::copy::ParseOptions;
use crate::db::{self, DbConfig};
use crate::error::Error;
use crate::layout::FileType;
use crate::load::LoadOptions;
use crate::s3::{S3Options, Transfer};
use crate::schema;

/// Where the files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    Files(Vec<PathBuf>),
    S3Key {
        bucket: String,
        key: String,
    },
    /// A date's files under a prefix; with `through`, every date from `date` to it.
    S3Date {
        bucket: String,
        prefix: String,
        date: NaiveDate,
        through: Option<NaiveDate>,
    },
    /// A date's files in a directory; with `through`, every date from `date` to it.
    DirDate {
        dir: PathBuf,
        date: NaiveDate,
        through: Option<NaiveDate>,
    },
    /// Nothing to load (only `--init-schema`).
    Nothing,
}

/// What a run does. Only a load writes; the other modes exist so that a scheduler and an
/// operator can ask before and after without risking anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Load the inputs (or only apply the schema, or only validate).
    Load,
    /// `--status`: read the journal; the business days looked at end with `today` (`--date`,
    /// else today in `TZ`).
    Status { today: NaiveDate },
    /// `--check`: a pre-flight that writes nothing. The plan's `inputs` are where a load with
    /// the same configuration would read (`Inputs::Nothing` when none is configured);
    /// `source_error` is why that configuration cannot work, reported as a failed check
    /// rather than ending the run, so that every other check still runs.
    Check { source_error: Option<String> },
}

/// The ids of the arguments given on the command line itself (not by a variable or a
/// default): a few rules depend on it.
#[derive(Debug, Clone, Default)]
pub struct Given {
    command_line: BTreeSet<String>,
    /// The ids whose value came from a variable (for messages that say where a value came
    /// from).
    environment: BTreeSet<String>,
    /// libpq's variables (`PGHOST`, …), the layer under the `CUSIP_*` ones.
    libpq: BTreeMap<String, String>,
}

/// libpq's variables the loader honours, with libpq's meanings, and the argument each one
/// stands under.
pub const LIBPQ_VARS: [(&str, &str); 8] = [
    ("PGHOST", "host"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
];

impl Given {
    pub fn from_matches(m: &clap::ArgMatches) -> Given {
        use clap::parser::ValueSource;
        let from = |source: ValueSource| {
            m.ids()
                .filter(|id| m.value_source(id.as_str()) == Some(source))
                .map(|id| id.to_string())
                .collect()
        };
        Given {
            command_line: from(ValueSource::CommandLine),
            environment: from(ValueSource::EnvVariable),
            libpq: BTreeMap::new(),
        }
    }

    /// The libpq variables among `vars` (the process environment, in `main`).
    pub fn with_libpq(mut self, vars: impl Iterator<Item = (String, String)>) -> Given {
        self.libpq = vars
            .filter(|(k, v)| {
                !v.is_empty() && (k == "PGAPPNAME" || LIBPQ_VARS.iter().any(|(n, _)| n == k))
            })
            .collect();
        self
    }

    fn has(&self, id: &str) -> bool {
        self.command_line.contains(id)
    }

    /// The libpq variable standing under `id`, when neither a flag nor a `CUSIP_*` variable
    /// gave `id`: `(variable, value)`.
    fn libpq(&self, id: &str) -> Option<(&'static str, &str)> {
        if self.command_line.contains(id) || self.environment.contains(id) {
            return None;
        }
        let (var, _) = LIBPQ_VARS.iter().find(|(_, a)| *a == id)?;
        self.libpq.get(*var).map(|v| (*var, v.as_str()))
    }

    /// Where the value of `id` came from: `flag`, `variable` or the default.
    fn origin(&self, id: &str, flag: &str, variable: &str) -> String {
        if self.command_line.contains(id) {
            flag.to_string()
        } else if self.environment.contains(id) {
            variable.to_string()
        } else {
            "the default".to_string()
        }
    }

    #[cfg(test)]
    pub fn of(ids: &[&str]) -> Given {
        Given {
            command_line: ids.iter().map(|s| s.to_string()).collect(),
            environment: BTreeSet::new(),
            libpq: BTreeMap::new(),
        }
    }
}

/// Everything one run will do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub action: Action,
    pub inputs: Inputs,
    /// Today in `TZ`: what a name's `MM-DD` is dated against.
    pub today: NaiveDate,
    /// Overrides the type a file's name gives.
    pub file_type: Option<FileType>,
    /// Load the types a date has when some are missing.
    pub allow_missing: bool,
    pub validate_only: bool,
    pub init_schema: Option<schema::Options>,
    /// The database settings from flags, variables and `--database-url`; a Secrets Manager
    /// secret, if any, is applied to them when the run starts.
    pub db: DbConfig,
    /// `(secret id, region)` to read the database settings from.
    pub secret: Option<(String, Option<String>)>,
    pub load: LoadOptions,
    pub s3: S3Options,
    pub transfer: Transfer,
    /// Where the bucket and prefix came from, for a message about a bucket that is not there.
    pub s3_origin: String,
    /// Where each database setting came from (flag, `CUSIP_*`, `PG*`, default), for the log;
    /// never the password's value.
    pub db_sources: String,
}

/// Fills the settings neither a flag nor a `CUSIP_*` variable gave from libpq's variables,
/// with libpq's meanings, and says where each setting came from.
fn libpq_layer(db: &mut DbConfig, given: &Given) -> Result<String, Error> {
    let bad = |var: &str, v: &str, want: &str| {
        Error::Config(format!(
            "{var}={v:?} is not {want} (libpq's variable, read under the CUSIP_* ones)"
        ))
    };
    let mut sources = Vec::new();
    for (id, flag, cusip) in [
        ("host", "--host", "CUSIP_DB_HOST"),
        ("port", "--port", "CUSIP_DB_PORT"),
        ("dbname", "--dbname", "CUSIP_DB_NAME"),
        ("user", "--user", "CUSIP_DB_USER"),
        ("password", "--password", "CUSIP_DB_PASSWORD"),
        ("sslmode", "--sslmode", "CUSIP_DB_SSLMODE"),
        ("sslrootcert", "--sslrootcert", "CUSIP_DB_SSLROOTCERT"),
        ("connect_timeout", "--connect-timeout", "-"),
    ] {
        let origin = match given.libpq(id) {
            Some((var, v)) => {
                match id {
                    "host" => db.host = v.to_string(),
                    "port" => db.port = v.parse().map_err(|_| bad(var, v, "a port number"))?,
                    "dbname" => db.dbname = v.to_string(),
                    "user" => db.user = v.to_string(),
                    "password" => db.password = Some(v.to_string()),
                    "sslmode" => {
                        db.sslmode = crate::tls::SslMode::from_name(v)
                            .ok_or_else(|| bad(var, v, "an sslmode"))?
                    }
                    "sslrootcert" => db.sslrootcert = Some(PathBuf::from(v)),
                    _ => {
                        let secs: u64 =
                            v.parse().map_err(|_| bad(var, v, "a number of seconds"))?;
                        // libpq: 0 means wait forever, and less than 2 means 2.
                        db.connect_timeout =
                            Duration::from_secs(if secs == 0 { 86_400 } else { secs.max(2) });
                    }
                }
                var.to_string()
            }
            None => given.origin(id, flag, cusip),
        };
        if id == "password" && db.password.is_none() {
            continue;
        }
        sources.push(format!("{id} from {origin}"));
    }
    if given.libpq.contains_key("PGAPPNAME") {
        // The watchdog, the tests and DBAs find the loader's sessions by this name.
        sources.push("PGAPPNAME ignored (sessions are named cusip-loader)".into());
    }
    Ok(sources.join(", "))
}

/// A prefix names a folder: `pif` and `pif/` mean the same.
fn folder(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

impl Plan {
    /// The plan for `args`; `today` is the date `--date` defaults to (today in `TZ`).
    pub fn from_args(args: &Args, given: &Given, today: NaiveDate) -> Result<Plan, Error> {
        let mut db = DbConfig {
            host: args.host.clone(),
            port: args.port,
            dbname: args.dbname.clone(),
            user: args.user.clone(),
            password: args.password.clone(),
            connect_timeout: Duration::from_secs(args.connect_timeout),
            sslmode: args.sslmode,
            sslrootcert: args.sslrootcert.clone(),
            connect_retry: Duration::from_secs(args.connect_retry),
            lock_timeout: Duration::from_secs(args.lock_timeout),
            statement_timeout: Duration::from_secs(args.statement_timeout),
            net_timeout: Duration::from_secs(args.net_timeout),
        };
        let db_sources = libpq_layer(&mut db, given)?;
        if let Some(url) = &args.database_url {
            db::apply_url(&mut db, url)?;
        }
        let (action, inputs) = action(args, given, today)?;
        Ok(Plan {
            action,
            inputs,
            today,
            db_sources,
            file_type: args.file_type,
            allow_missing: args.allow_missing,
            validate_only: args.validate_only,
            init_schema: args.init_schema.then_some(schema::Options {
                rewrite_tables: args.rewrite_tables,
            }),
            db,
            secret: args
                .db_secret_arn
                .clone()
                .filter(|_| !args.validate_only)
                .map(|arn| (arn, args.db_secret_region.clone())),
            load: LoadOptions {
                parse: ParseOptions {
                    encoding: args.encoding,
                    allow_missing_trailer: args.allow_missing_trailer,
                },
                progress: crate::progress::wanted(args.no_progress),
                force: args.force,
                initial_load: args.initial_load,
                compare_min_bytes: args.compare_min_bytes,
            },
            s3: S3Options {
                region: args.s3_region.clone(),
                endpoint_url: args.s3_endpoint_url.clone(),
                force_path_style: args.s3_force_path_style,
                net_timeout: Duration::from_secs(args.net_timeout),
            },
            s3_origin: format!(
                "bucket from {}, prefix {} from {}",
                given.origin("s3_bucket", "--s3-bucket", "CUSIP_S3_BUCKET"),
                folder(&args.s3_prefix),
                given.origin("s3_prefix", "--s3-prefix", "CUSIP_S3_PREFIX"),
            ),
            transfer: Transfer {
                max_resumes: args.s3_max_resumes,
                part_size: args.s3_part_size.max(1024),
                concurrency: args.s3_concurrency.max(1),
                net_timeout: Duration::from_secs(args.net_timeout),
            },
        })
    }
}

/// The action, and the inputs it reads. `--status` reads no files; `--check` looks at the
/// source a load would read, and reports a source the environment misconfigures as a check.
fn action(args: &Args, given: &Given, today: NaiveDate) -> Result<(Action, Inputs), Error> {
    if args.status {
        let today = args.date.unwrap_or(today);
        return Ok((Action::Status { today }, Inputs::Nothing));
    }
    if args.check {
        return match inputs(args, given, today) {
            Ok(i) => Ok((Action::Check { source_error: None }, i)),
            Err(Error::Config(m)) => Ok((
                Action::Check {
                    source_error: Some(m),
                },
                Inputs::Nothing,
            )),
            Err(e) => Err(e),
        };
    }
    Ok((Action::Load, inputs(args, given, today)?))
}

/// Which input kind: one given on the command line (clap's `input` group allows at most
/// one), else the date's files where the environment says (`CUSIP_FILE_SOURCE`), else
/// nothing, which only `--init-schema` and `--check` may ask for.
fn inputs(args: &Args, given: &Given, today: NaiveDate) -> Result<Inputs, Error> {
    let date = args.from_date.or(args.date).unwrap_or(today);
    let through = match args.from_date {
        None => None,
        Some(from) => {
            let to = args.to_date.unwrap_or(today);
            if from > to {
                return Err(Error::Usage(format!(
                    "--from-date {from} is after {}{to}: the range is empty",
                    if args.to_date.is_some() {
                        "--to-date "
                    } else {
                        "today, "
                    }
                )));
            }
            Some(to)
        }
    };
    let prefix = folder(&args.s3_prefix);
    // Input kinds on the command line come first; a bucket there is one of them. A bucket or
    // a directory from the environment is a configured place, used when none is given.
    let bucket_flag = args.s3_bucket.clone().filter(|_| given.has("s3_bucket"));
    if !args.files.is_empty() {
        if args.date.is_some() || bucket_flag.is_some() {
            return Err(Error::Usage(
                "--date and --s3-bucket do not apply to local FILEs".into(),
            ));
        }
        return Ok(Inputs::Files(args.files.clone()));
    }
    if let Some(key) = &args.s3_key {
        let bucket = args.s3_bucket.clone().ok_or_else(|| {
            Error::Usage("--s3-key needs --s3-bucket (or CUSIP_S3_BUCKET)".into())
        })?;
        return Ok(Inputs::S3Key {
            bucket,
            key: key.clone(),
        });
    }
    if let Some(dir) = &args.dir {
        return Ok(Inputs::DirDate {
            dir: dir.clone(),
            date,
            through,
        });
    }
    if let Some(bucket) = bucket_flag {
        return Ok(Inputs::S3Date {
            bucket,
            prefix,
            date,
            through,
        });
    }
    // No input on the command line: the configured places, each meaning what its flag does
    // (a bucket: the date's files under the prefix; a directory: the date's files in it).
    // CUSIP_FILE_SOURCE only chooses when both are configured.
    let source = args
        .file_source
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty());
    let s3 = |bucket: String| Inputs::S3Date {
        bucket,
        prefix: prefix.clone(),
        date,
        through,
    };
    let local = |dir: PathBuf| Inputs::DirDate { dir, date, through };
    match (
        source.as_deref(),
        args.s3_bucket.clone(),
        args.file_dir.clone(),
    ) {
        (Some("s3"), Some(bucket), _) => Ok(s3(bucket)),
        (Some("s3"), None, _) => Err(Error::Config(
            "CUSIP_FILE_SOURCE=s3 but no bucket is set: set CUSIP_S3_BUCKET (or give --s3-bucket)"
                .into(),
        )),
        (Some("local"), _, dir) => Ok(local(
            dir.unwrap_or_else(|| PathBuf::from("/data/pif_files")),
        )),
        (Some(other), _, _) => Err(Error::Config(format!(
            "CUSIP_FILE_SOURCE is {other:?}; expected s3 or local"
        ))),
        (None, Some(bucket), Some(dir)) => Err(Error::Config(format!(
            "both a bucket ({bucket}) and a directory ({}) are configured (CUSIP_S3_BUCKET and \
             CUSIP_FILE_DIR): set CUSIP_FILE_SOURCE=s3 or local to say where the files are",
            dir.display()
        ))),
        (None, Some(bucket), None) => Ok(s3(bucket)),
        (None, None, Some(dir)) => Ok(local(dir)),
        (None, None, None) if args.init_schema || args.check => Ok(Inputs::Nothing),
        (None, None, None) => Err(Error::Usage(
            "nothing to do: give PIP files, --s3-key, --s3-bucket or --dir (with --date, or \
             --from-date), set CUSIP_S3_BUCKET or CUSIP_FILE_DIR, or run --init-schema"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, 15).unwrap()
    }

    /// Parses `argv` as the binary would, with `env` as the only variables set.
    fn plan(argv: &[&str], env: &[(&str, &str)]) -> Result<Plan, Error> {
        let cmd = <Args as clap::CommandFactory>::command();
        // clap reads variables from the process environment; these tests set none of the
        // loader's, so they pass `env` as the flags clap would have filled from them.
        let mut full: Vec<String> = vec!["cusip-loader".into()];
        full.extend(argv.iter().map(|s| s.to_string()));
        let m = cmd
            .try_get_matches_from(&full)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let mut args = Args::from_arg_matches(&m).map_err(|e| Error::Usage(e.to_string()))?;
        for (k, v) in env {
            match *k {
                "CUSIP_S3_BUCKET" => args.s3_bucket = Some(v.to_string()),
                "CUSIP_FILE_SOURCE" => args.file_source = Some(v.to_string()),
                "CUSIP_FILE_DIR" => args.file_dir = Some(v.into()),
                "CUSIP_S3_PREFIX" => args.s3_prefix = v.to_string(),
                other => panic!("not a variable this test knows: {other}"),
            }
        }
        Plan::from_args(&args, &Given::from_matches(&m), today())
    }

    fn inputs(argv: &[&str], env: &[(&str, &str)]) -> Result<Inputs, Error> {
        plan(argv, env).map(|p| p.inputs)
    }

    #[test]
    fn each_input_kind_from_the_command_line() {
        assert_eq!(
            inputs(&["a/CED01-15R.PIP"], &[]).unwrap(),
            Inputs::Files(vec!["a/CED01-15R.PIP".into()])
        );
        assert_eq!(
            inputs(&["--s3-bucket", "b", "--s3-key", "pif/x.PIP"], &[]).unwrap(),
            Inputs::S3Key {
                bucket: "b".into(),
                key: "pif/x.PIP".into()
            }
        );
        assert_eq!(
            inputs(
                &[
                    "--s3-bucket",
                    "b",
                    "--s3-prefix",
                    "pif",
                    "--date",
                    "2024-01-12"
                ],
                &[]
            )
            .unwrap(),
            Inputs::S3Date {
                bucket: "b".into(),
                prefix: "pif/".into(),
                date: NaiveDate::from_ymd_opt(2024, 1, 12).unwrap(),
                through: None
            }
        );
        assert_eq!(
            inputs(&["--dir", "/d"], &[]).unwrap(),
            Inputs::DirDate {
                dir: "/d".into(),
                date: today(),
                through: None
            }
        );
        assert_eq!(inputs(&["--init-schema"], &[]).unwrap(), Inputs::Nothing);
    }

    #[test]
    fn one_input_kind_at_a_time() {
        for argv in [
            &["f.PIP", "--dir", "/d"][..],
            &["f.PIP", "--s3-key", "k"],
            &["--dir", "/d", "--s3-key", "k"],
        ] {
            let e = plan(argv, &[]).unwrap_err();
            assert_eq!(e.exit().code(), 64, "{argv:?}: {e}");
        }
        let e = plan(&["f.PIP", "--s3-bucket", "b"], &[]).unwrap_err();
        assert!(e.to_string().contains("do not apply to local FILEs"), "{e}");
        let e = plan(&[], &[]).unwrap_err();
        assert!(e.to_string().starts_with("nothing to do"), "{e}");
    }

    #[test]
    fn variables_configure_what_the_command_line_leaves_open() {
        // A bucket from the environment does not turn local files into an S3 load...
        assert!(matches!(
            inputs(&["f.PIP"], &[("CUSIP_S3_BUCKET", "b")]).unwrap(),
            Inputs::Files(_)
        ));
        // ...but serves an S3 key, and CUSIP_FILE_SOURCE's date loads.
        assert_eq!(
            inputs(&["--s3-key", "k"], &[("CUSIP_S3_BUCKET", "b")]).unwrap(),
            Inputs::S3Key {
                bucket: "b".into(),
                key: "k".into()
            }
        );
        assert_eq!(
            inputs(
                &[],
                &[
                    ("CUSIP_FILE_SOURCE", "S3"),
                    ("CUSIP_S3_BUCKET", "b"),
                    ("CUSIP_S3_PREFIX", "x")
                ]
            )
            .unwrap(),
            Inputs::S3Date {
                bucket: "b".into(),
                prefix: "x/".into(),
                date: today(),
                through: None
            }
        );
        assert_eq!(
            inputs(&["--date", "2024-01-12"], &[("CUSIP_FILE_SOURCE", "local")]).unwrap(),
            Inputs::DirDate {
                dir: "/data/pif_files".into(),
                date: NaiveDate::from_ymd_opt(2024, 1, 12).unwrap(),
                through: None
            }
        );
        let e = plan(&[], &[("CUSIP_FILE_SOURCE", "s3")]).unwrap_err();
        assert_eq!(e.exit().code(), 78, "{e}");
        let e = plan(&[], &[("CUSIP_FILE_SOURCE", "ftp")]).unwrap_err();
        assert_eq!(e.exit().code(), 78, "{e}");
    }

    #[test]
    fn status_and_check_are_modes_that_load_nothing() {
        let p = plan(&["--status"], &[("CUSIP_FILE_SOURCE", "ftp")]).unwrap();
        assert_eq!(p.action, Action::Status { today: today() });
        assert_eq!(p.inputs, Inputs::Nothing);
        // --date moves the end of the business days looked at.
        let p = plan(&["--status", "--date", "2024-01-12"], &[]).unwrap();
        assert_eq!(
            p.action,
            Action::Status {
                today: NaiveDate::from_ymd_opt(2024, 1, 12).unwrap()
            }
        );
        // --check with no source configured checks the database alone.
        let p = plan(&["--check"], &[]).unwrap();
        assert_eq!(p.action, Action::Check { source_error: None });
        assert_eq!(p.inputs, Inputs::Nothing);
        // The source a load would read, from the environment or the command line.
        let p = plan(
            &["--check"],
            &[("CUSIP_FILE_SOURCE", "s3"), ("CUSIP_S3_BUCKET", "b")],
        )
        .unwrap();
        assert_eq!(
            p.inputs,
            Inputs::S3Date {
                bucket: "b".into(),
                prefix: "pif/".into(),
                date: today(),
                through: None
            }
        );
        assert!(matches!(
            inputs(&["--check", "--s3-bucket", "b"], &[]).unwrap(),
            Inputs::S3Date { .. }
        ));
        assert!(matches!(
            inputs(&["--check", "--dir", "/d"], &[]).unwrap(),
            Inputs::DirDate { .. }
        ));
        // A source the environment misconfigures is a failed check, not the end of the run.
        let p = plan(&["--check"], &[("CUSIP_FILE_SOURCE", "s3")]).unwrap();
        assert!(
            matches!(&p.action, Action::Check { source_error: Some(m) } if m.contains("CUSIP_S3_BUCKET")),
            "{:?}",
            p.action
        );
        assert_eq!(p.inputs, Inputs::Nothing);
        // A load is still a load.
        assert_eq!(plan(&["f.PIP"], &[]).unwrap().action, Action::Load);
    }

    #[test]
    fn status_and_check_refuse_what_would_load_or_change_something() {
        for argv in [
            &["--status", "f.PIP"][..],
            &["--check", "f.PIP"],
            &["--status", "--init-schema"],
            &["--check", "--init-schema"],
            &["--status", "--validate-only"],
            &["--check", "--validate-only"],
            &["--status", "--check"],
        ] {
            let e = plan(argv, &[]).unwrap_err();
            assert_eq!(e.exit().code(), 64, "{argv:?}: {e}");
            assert!(
                e.to_string().contains("cannot be used with"),
                "{argv:?}: {e}"
            );
        }
    }

    #[test]
    fn database_settings_and_options_are_assembled_before_any_io() {
        let p = plan(
            &[
                "--init-schema",
                "--rewrite-tables",
                "--database-url",
                "postgresql://u@h:6432/d?sslmode=require",
                "--db-secret-arn",
                "arn:aws:secretsmanager:eu-west-1:1:secret:x",
                "--s3-part-size",
                "10",
                "--s3-concurrency",
                "0",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            (
                p.db.user.as_str(),
                p.db.host.as_str(),
                p.db.port,
                p.db.dbname.as_str()
            ),
            ("u", "h", 6432, "d")
        );
        assert!(p.init_schema.is_some_and(|o| o.rewrite_tables));
        assert!(p.secret.is_some());
        assert_eq!((p.transfer.part_size, p.transfer.concurrency), (1024, 1));
        // --validate-only never reads the secret: it needs no database.
        let p = plan(&["--validate-only", "f.PIP", "--db-secret-arn", "x"], &[]).unwrap();
        assert!(p.secret.is_none());
        let e = plan(&["f.PIP", "--database-url", "mysql://x"], &[]).unwrap_err();
        assert_eq!(e.exit().code(), 78);
    }

    #[test]
    fn a_range_runs_from_its_first_date_to_its_last_or_today() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            inputs(
                &[
                    "--dir",
                    "/d",
                    "--from-date",
                    "2024-01-08",
                    "--to-date",
                    "2024-01-12"
                ],
                &[]
            )
            .unwrap(),
            Inputs::DirDate {
                dir: "/d".into(),
                date: d("2024-01-08"),
                through: Some(d("2024-01-12"))
            }
        );
        assert_eq!(
            inputs(&["--s3-bucket", "b", "--from-date", "2024-01-10"], &[]).unwrap(),
            Inputs::S3Date {
                bucket: "b".into(),
                prefix: "pif/".into(),
                date: d("2024-01-10"),
                through: Some(today())
            }
        );
        assert_eq!(
            inputs(
                &["--from-date", "2024-01-10"],
                &[("CUSIP_FILE_SOURCE", "local")]
            )
            .unwrap(),
            Inputs::DirDate {
                dir: "/data/pif_files".into(),
                date: d("2024-01-10"),
                through: Some(today())
            }
        );
    }

    #[test]
    fn a_range_backwards_or_mixed_with_other_inputs_is_a_usage_error() {
        let e = inputs(
            &[
                "--dir",
                "/d",
                "--from-date",
                "2024-01-12",
                "--to-date",
                "2024-01-08",
            ],
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("the range is empty"), "{e}");
        assert_eq!(e.exit(), crate::error::Exit::Usage);
        let e = inputs(&["--dir", "/d", "--from-date", "2024-02-01"], &[]).unwrap_err();
        assert!(e.to_string().contains("after today"), "{e}");
        for argv in [
            &[
                "--dir",
                "/d",
                "--from-date",
                "2024-01-08",
                "--date",
                "2024-01-09",
            ][..],
            &["--from-date", "2024-01-08", "x/CED01-15R.PIP"],
            &["--dir", "/d", "--to-date", "2024-01-09"],
        ] {
            assert!(inputs(argv, &[]).is_err(), "{argv:?}");
        }
    }

    #[test]
    fn a_variable_means_what_its_flag_means_and_the_source_picks_between_two() {
        let d = NaiveDate::from_ymd_opt(2024, 1, 12).unwrap();
        assert_eq!(
            inputs(&["--date", "2024-01-12"], &[("CUSIP_S3_BUCKET", "b")]).unwrap(),
            Inputs::S3Date {
                bucket: "b".into(),
                prefix: "pif/".into(),
                date: d,
                through: None
            }
        );
        assert_eq!(
            inputs(&["--date", "2024-01-12"], &[("CUSIP_FILE_DIR", "/in")]).unwrap(),
            Inputs::DirDate {
                dir: "/in".into(),
                date: d,
                through: None
            }
        );
        let both = [("CUSIP_S3_BUCKET", "b"), ("CUSIP_FILE_DIR", "/in")];
        let e = inputs(&["--date", "2024-01-12"], &both).unwrap_err();
        assert_eq!(e.exit(), crate::error::Exit::Config, "{e}");
        assert!(e.to_string().contains("CUSIP_FILE_SOURCE"), "{e}");
        let with = |src| [both[0], both[1], ("CUSIP_FILE_SOURCE", src)];
        assert!(matches!(
            inputs(&[], &with("s3")).unwrap(),
            Inputs::S3Date { .. }
        ));
        assert!(matches!(
            inputs(&[], &with("local")).unwrap(),
            Inputs::DirDate { ref dir, .. } if dir == std::path::Path::new("/in")
        ));
        // The command line's own input wins over a configured place.
        assert!(matches!(
            inputs(&["--dir", "/x"], &both).unwrap(),
            Inputs::DirDate { ref dir, .. } if dir == std::path::Path::new("/x")
        ));
        assert!(matches!(
            inputs(&["a/CED01-15R.PIP"], &[("CUSIP_S3_BUCKET", "b")]).unwrap(),
            Inputs::Files(_)
        ));
    }

    #[test]
    fn net_timeout_reaches_the_database_and_s3_alike() {
        let p = plan(&["f.PIP", "--net-timeout", "7"], &[]).unwrap();
        let t = Duration::from_secs(7);
        assert_eq!(
            (p.db.net_timeout, p.s3.net_timeout, p.transfer.net_timeout),
            (t, t, t)
        );
        let p = plan(&["f.PIP"], &[]).unwrap();
        assert_eq!(p.db.net_timeout, Duration::from_secs(60));
        assert_eq!(
            plan(&["f.PIP", "--net-timeout", "0"], &[])
                .unwrap_err()
                .exit()
                .code(),
            64
        );
    }
}
