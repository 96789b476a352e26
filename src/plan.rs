//! From the command line (and the variables clap reads for it) to what one run will do, in
//! one pure step that the tests call without any I/O: the `Plan`.
//!
//! Clap already parsed and validated each value; what is left here are the rules between
//! them: which input kind was asked for, what a variable means when the command line names
//! no input, and the database settings before any secret is fetched. `app` then only does
//! I/O with the plan.

use std::collections::BTreeSet;
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
    S3Date {
        bucket: String,
        prefix: String,
        date: NaiveDate,
    },
    DirDate {
        dir: PathBuf,
        date: NaiveDate,
    },
    /// Nothing to load (only `--init-schema`).
    Nothing,
}

/// The ids of the arguments given on the command line itself (not by a variable or a
/// default): a few rules depend on it.
#[derive(Debug, Clone, Default)]
pub struct Given(BTreeSet<String>);

impl Given {
    pub fn from_matches(m: &clap::ArgMatches) -> Given {
        Given(
            m.ids()
                .filter(|id| {
                    m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
                })
                .map(|id| id.to_string())
                .collect(),
        )
    }

    fn has(&self, id: &str) -> bool {
        self.0.contains(id)
    }

    #[cfg(test)]
    pub fn of(ids: &[&str]) -> Given {
        Given(ids.iter().map(|s| s.to_string()).collect())
    }
}

/// Everything one run will do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub inputs: Inputs,
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
        if let Some(url) = &args.database_url {
            db::apply_url(&mut db, url)?;
        }
        Ok(Plan {
            inputs: inputs(args, given, today)?,
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
            },
            s3: S3Options {
                region: args.s3_region.clone(),
                endpoint_url: args.s3_endpoint_url.clone(),
                force_path_style: args.s3_force_path_style,
                net_timeout: Duration::from_secs(args.net_timeout),
            },
            transfer: Transfer {
                max_resumes: args.s3_max_resumes,
                part_size: args.s3_part_size.max(1024),
                concurrency: args.s3_concurrency.max(1),
                net_timeout: Duration::from_secs(args.net_timeout),
            },
        })
    }
}

/// Which input kind: one given on the command line (clap's `input` group allows at most
/// one), else the date's files where the environment says (`CUSIP_FILE_SOURCE`), else
/// nothing, which only `--init-schema` may ask for.
fn inputs(args: &Args, given: &Given, today: NaiveDate) -> Result<Inputs, Error> {
    let date = args.date.unwrap_or(today);
    let prefix = folder(&args.s3_prefix);
    // A bucket is an input only when the command line names it; from the environment it is
    // configuration for an S3 key or `CUSIP_FILE_SOURCE=s3`.
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
        });
    }
    if let Some(bucket) = bucket_flag {
        return Ok(Inputs::S3Date {
            bucket,
            prefix,
            date,
        });
    }
    match args
        .file_source
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") if args.init_schema => Ok(Inputs::Nothing),
        None | Some("") => Err(Error::Usage(
            "nothing to do: give PIP files, --s3-key, --s3-bucket with --date, --dir with --date, \
             set CUSIP_FILE_SOURCE, or --init-schema (see --help)"
                .into(),
        )),
        Some("s3") => {
            let bucket = args.s3_bucket.clone().ok_or_else(|| {
                Error::Config("CUSIP_FILE_SOURCE=s3 but CUSIP_S3_BUCKET is not set".into())
            })?;
            Ok(Inputs::S3Date {
                bucket,
                prefix,
                date,
            })
        }
        Some("local") => Ok(Inputs::DirDate {
            dir: args
                .file_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("/data/pif_files")),
            date,
        }),
        Some(other) => Err(Error::Config(format!(
            "CUSIP_FILE_SOURCE is {other:?}; expected s3 or local"
        ))),
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
                date: NaiveDate::from_ymd_opt(2024, 1, 12).unwrap()
            }
        );
        assert_eq!(
            inputs(&["--dir", "/d"], &[]).unwrap(),
            Inputs::DirDate {
                dir: "/d".into(),
                date: today()
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
                date: today()
            }
        );
        assert_eq!(
            inputs(&["--date", "2024-01-12"], &[("CUSIP_FILE_SOURCE", "local")]).unwrap(),
            Inputs::DirDate {
                dir: "/data/pif_files".into(),
                date: NaiveDate::from_ymd_opt(2024, 1, 12).unwrap()
            }
        );
        let e = plan(&[], &[("CUSIP_FILE_SOURCE", "s3")]).unwrap_err();
        assert_eq!(e.exit().code(), 78, "{e}");
        let e = plan(&[], &[("CUSIP_FILE_SOURCE", "ftp")]).unwrap_err();
        assert_eq!(e.exit().code(), 78, "{e}");
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
