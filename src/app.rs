//! One run: check the inputs, connect, apply the schema if asked, load each file in
//! foreign-key order, stop at the first failure, and answer SIGINT/SIGTERM promptly.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;

use tokio::signal::unix::{signal, SignalKind};
use tokio_postgres::Client;

use crate::cli::Args;
use crate::copy::ParseOptions;
use crate::db::{self, DbConfig};
use crate::error::{Error, Exit};
use crate::layout::FileType;
use crate::load::{self, LoadOptions};
use crate::locate;
use crate::progress;
use crate::report::{FileReport, Status, Summary};
use crate::s3::{self, S3Options};
use crate::schema;
use crate::secret;
use crate::source::{self, Input};

pub async fn run(args: Args) -> Summary {
    let (inputs, mut reports) = match inputs(&args).await {
        Ok(i) => i,
        Err(e) => return Summary::new(Vec::new(), e.exit(), Some(e.to_string())),
    };
    let mut cfg = DbConfig {
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
    };
    if let Some(url) = &args.database_url {
        if let Err(e) = db::apply_url(&mut cfg, url) {
            return Summary::new(reports, e.exit(), Some(e.to_string()));
        }
    }
    if let (Some(arn), false) = (&args.db_secret_arn, args.validate_only) {
        if let Err(e) = secret::apply(&mut cfg, arn, args.db_secret_region.clone()).await {
            return Summary::new(reports, e.exit(), Some(e.to_string()));
        }
    }
    let opts = LoadOptions {
        parse: ParseOptions {
            encoding: args.encoding,
            allow_missing_trailer: args.allow_missing_trailer,
        },
        progress: progress::wanted(args.no_progress),
        force: args.force,
        initial_load: args.initial_load || truthy("CUSIP_INITIAL_LOAD"),
    };

    let (mut sigint, mut sigterm) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        _ => {
            return Summary::new(
                reports,
                Exit::Software,
                Some("cannot install signal handlers".into()),
            )
        }
    };

    let mut client: Option<Client> = None;
    let outcome = tokio::select! {
        r = work(&cfg, &args, &inputs, &opts, &mut reports, &mut client) => r,
        _ = sigint.recv() => Err(Error::Interrupted(Exit::Sigint)),
        _ = sigterm.recv() => Err(Error::Interrupted(Exit::Sigterm)),
    };
    if let Err(Error::Interrupted(_)) = &outcome {
        interrupted(&cfg, client.as_ref(), &mut reports).await;
    }
    match outcome {
        Ok(()) => Summary::new(reports, Exit::Ok, None),
        Err(e) => Summary::new(reports, e.exit(), Some(e.to_string())),
    }
}

/// Where the files come from: flags first, then the environment (so an ECS task can run the
/// bare binary), then nothing (only `--init-schema`).
#[derive(Debug)]
enum Mode {
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
    Nothing,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn truthy(name: &str) -> bool {
    env(name)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// A prefix names a folder: `pif` and `pif/` mean the same.
fn folder(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

fn mode(args: &Args) -> Result<Mode, Error> {
    let today = || chrono::Local::now().date_naive();
    let date = args.date.unwrap_or_else(today);
    let prefix = || {
        folder(
            &args
                .s3_prefix
                .clone()
                .or_else(|| env("CUSIP_S3_PREFIX"))
                .unwrap_or_else(|| "pif/".into()),
        )
    };
    let given = [
        !args.files.is_empty(),
        args.s3_key.is_some(),
        args.dir.is_some(),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if given > 1 {
        return Err(Error::Usage(
            "give local FILEs, --s3-key, or --dir --date: one of them, not several".into(),
        ));
    }
    if !args.files.is_empty() {
        if args.date.is_some() || args.s3_bucket.is_some() {
            return Err(Error::Usage(
                "--date and --s3-bucket do not apply to local FILEs".into(),
            ));
        }
        return Ok(Mode::Files(args.files.clone()));
    }
    if let Some(key) = &args.s3_key {
        let bucket = args
            .s3_bucket
            .clone()
            .or_else(|| env("CUSIP_S3_BUCKET"))
            .ok_or_else(|| {
                Error::Usage("--s3-key needs --s3-bucket (or CUSIP_S3_BUCKET)".into())
            })?;
        return Ok(Mode::S3Key {
            bucket,
            key: key.clone(),
        });
    }
    if let Some(dir) = &args.dir {
        return Ok(Mode::DirDate {
            dir: dir.clone(),
            date,
        });
    }
    if let Some(bucket) = &args.s3_bucket {
        return Ok(Mode::S3Date {
            bucket: bucket.clone(),
            prefix: prefix(),
            date,
        });
    }
    match env("CUSIP_FILE_SOURCE")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        Some("s3") => {
            let bucket = env("CUSIP_S3_BUCKET").ok_or_else(|| {
                Error::Config("CUSIP_FILE_SOURCE=s3 but CUSIP_S3_BUCKET is not set".into())
            })?;
            Ok(Mode::S3Date {
                bucket,
                prefix: prefix(),
                date,
            })
        }
        Some("local") => {
            let dir = env("CUSIP_FILE_DIR").unwrap_or_else(|| "/data/pif_files".into());
            Ok(Mode::DirDate {
                dir: PathBuf::from(dir),
                date,
            })
        }
        Some(other) => Err(Error::Config(format!(
            "CUSIP_FILE_SOURCE is {other:?}; expected s3 or local"
        ))),
        None if args.init_schema => Ok(Mode::Nothing),
        None => Err(Error::Usage(
            "nothing to do: give PIP files, --s3-key, --s3-bucket with --date, --dir with --date, \
             set CUSIP_FILE_SOURCE, or --init-schema (see --help)"
                .into(),
        )),
    }
}

fn transfer(args: &Args) -> s3::Transfer {
    s3::Transfer {
        max_resumes: args.s3_max_resumes,
        part_size: args.s3_part_size.max(1024),
        concurrency: args.s3_concurrency.max(1),
    }
}

fn s3_options(args: &Args) -> S3Options {
    S3Options {
        region: args.s3_region.clone(),
        endpoint_url: args.s3_endpoint_url.clone(),
        force_path_style: args.s3_force_path_style || truthy("CUSIP_S3_FORCE_PATH_STYLE"),
    }
}

/// Finds and checks every input before anything connects to the database, in load order,
/// with a report row for each (and for each type a date is missing, under --allow-missing).
async fn inputs(args: &Args) -> Result<(Vec<Input>, Vec<FileReport>), Error> {
    let mut missing: Vec<(String, &'static str)> = Vec::new();
    let mut inputs = match mode(args)? {
        Mode::Nothing => Vec::new(),
        Mode::Files(files) => files
            .iter()
            .map(|p| Input::local(p, args.file_type))
            .collect::<Result<Vec<_>, _>>()?,
        Mode::DirDate { dir, date } => {
            let (found, miss) = source::dir_date(&dir, date, args.allow_missing)?;
            for t in miss {
                missing.push((
                    format!("{}", dir.join(locate::expected_name(date, t)).display()),
                    t.name(),
                ));
            }
            found
        }
        Mode::S3Key { bucket, key } => {
            let opts = s3_options(args);
            let client = s3::client(&opts).await;
            let name = key.rsplit('/').next().unwrap_or(&key).to_string();
            let file_type = args.file_type.or_else(|| FileType::from_file_name(&name)).ok_or_else(|| {
                Error::Usage(format!(
                    "{}: cannot tell the file type from its name (expected R.PIP, E.PIP or A.PIP); give --type",
                    s3::uri(&bucket, &key)
                ))
            })?;
            let obj = s3::head(&client, &bucket, &key).await?;
            vec![Input::s3(&client, &bucket, &obj, file_type, transfer(args))]
        }
        Mode::S3Date {
            bucket,
            prefix,
            date,
        } => {
            let opts = s3_options(args);
            let client = s3::client(&opts).await;
            tracing::info!(bucket = %bucket, prefix = %prefix, date = %date, "listing");
            let listed = s3::list(&client, &bucket, &prefix).await?;
            let entries: Vec<(String, s3::Listed)> = listed
                .into_iter()
                .filter_map(|o| {
                    let rest = o.key.strip_prefix(prefix.as_str())?.to_string();
                    (!rest.contains('/')).then_some((rest, o))
                })
                .collect();
            let place = s3::uri(&bucket, &prefix);
            let picked = locate::pick(&entries, date, &place, &prefix, args.allow_missing)?;
            for t in picked.missing {
                missing.push((
                    s3::uri(
                        &bucket,
                        &format!("{prefix}{}", locate::expected_name(date, t)),
                    ),
                    t.name(),
                ));
            }
            picked
                .found
                .iter()
                .map(|(t, o)| Input::s3(&client, &bucket, o, *t, transfer(args)))
                .collect()
        }
    };
    // Stable: files of one type keep the order they were given in (e.g. successive days).
    inputs.sort_by_key(|i| i.file_type);
    let mut reports: Vec<FileReport> = inputs
        .iter()
        .map(|i| FileReport::new(&i.name, &i.source, i.file_type.name()))
        .collect();
    for (source, t) in missing {
        let name = source.rsplit('/').next().unwrap_or(&source).to_string();
        let mut r = FileReport::new(&name, &source, t);
        r.status = Status::Missing;
        reports.push(r);
    }
    Ok((inputs, reports))
}

async fn work(
    cfg: &DbConfig,
    args: &Args,
    inputs: &[Input],
    opts: &LoadOptions,
    reports: &mut [FileReport],
    slot: &mut Option<Client>,
) -> Result<(), Error> {
    if args.validate_only {
        for (input, report) in inputs.iter().zip(reports.iter_mut()) {
            tracing::info!(file = %input.source, r#type = %input.file_type, "validating");
            load::validate_file(input, opts, report).await?;
        }
        return Ok(());
    }
    tracing::info!(target = %cfg.display_target(), "connecting");
    let client = slot.insert(db::connect(cfg).await?);
    db::check_encoding(client).await?;
    if args.init_schema {
        schema::apply(
            client,
            schema::Options {
                rewrite_tables: args.rewrite_tables,
            },
        )
        .await?;
        tracing::info!("schema applied");
    }
    for (input, report) in inputs.iter().zip(reports.iter_mut()) {
        tracing::info!(file = %input.source, r#type = %input.file_type, "loading");
        // Marked in progress, so an interruption knows which file it cut short.
        report.status = Status::Interrupted;
        report.started_at = Some(chrono::Utc::now());
        load::load_file(client, Some(cfg), input, opts, report).await?;
    }
    Ok(())
}

/// After a signal: cancel what the server is doing, let the rollback happen, journal the
/// attempt — each step bounded so the process exits within a few seconds.
async fn interrupted(cfg: &DbConfig, client: Option<&Client>, reports: &mut [FileReport]) {
    let Some(client) = client else { return };
    let _ = tokio::time::timeout(Duration::from_secs(2), db::cancel(cfg, client)).await;
    if let Some(r) = reports.iter_mut().find(|r| r.status == Status::Interrupted) {
        r.error = Some("interrupted; rolled back".into());
        let started = r.started_at.unwrap_or_else(chrono::Utc::now);
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            load::journal_interrupted(client, r, started),
        )
        .await;
    }
}
