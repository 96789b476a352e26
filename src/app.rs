//! One run: check the inputs, connect, apply the schema if asked, load each file in
//! foreign-key order, stop at the first failure, and answer SIGINT/SIGTERM promptly.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_postgres::Client;

use crate::db::{self, DbConfig};
use crate::error::{Error, Exit};
use crate::layout::FileType;
use crate::load;
use crate::locate;
use crate::plan::{Inputs, Plan};
use crate::report::{FileReport, Status, Summary};
use crate::s3;
use crate::schema;
use crate::secret;
use crate::source::{self, Input};

pub async fn run(plan: Plan) -> Summary {
    let (inputs, mut reports) = match inputs(&plan).await {
        Ok(i) => i,
        Err(e) => return Summary::new(Vec::new(), e.exit(), Some(e.to_string())),
    };
    let mut cfg = plan.db.clone();
    if let Some((arn, region)) = &plan.secret {
        if let Err(e) = secret::apply(&mut cfg, arn, region.clone()).await {
            return Summary::new(reports, e.exit(), Some(e.to_string()));
        }
    }

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
        r = work(&cfg, &plan, &inputs, &mut reports, &mut client) => r,
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

/// Finds and checks every input before anything connects to the database, in load order,
/// with a report row for each (and for each type a date is missing, under --allow-missing).
async fn inputs(plan: &Plan) -> Result<(Vec<Input>, Vec<FileReport>), Error> {
    let mut missing: Vec<(String, &'static str)> = Vec::new();
    let mut inputs = match &plan.inputs {
        Inputs::Nothing => Vec::new(),
        Inputs::Files(files) => files
            .iter()
            .map(|p| Input::local(p, plan.file_type))
            .collect::<Result<Vec<_>, _>>()?,
        Inputs::DirDate { dir, date } => {
            let (found, miss) = source::dir_date(dir, *date, plan.allow_missing)?;
            for t in miss {
                missing.push((
                    format!("{}", dir.join(locate::expected_name(*date, t)).display()),
                    t.name(),
                ));
            }
            found
        }
        Inputs::S3Key { bucket, key } => {
            let client = s3::client(&plan.s3).await;
            let file_type = plan
                .file_type
                .or_else(|| FileType::from_file_name(s3::basename(key)))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{}: cannot tell the file type from its name (expected R.PIP, E.PIP or A.PIP); give --type",
                        s3::uri(bucket, key)
                    ))
                })?;
            let obj = s3::head(&client, bucket, key).await?;
            vec![Input::s3(&client, bucket, &obj, file_type, plan.transfer)]
        }
        Inputs::S3Date {
            bucket,
            prefix,
            date,
        } => {
            let client = s3::client(&plan.s3).await;
            tracing::info!(bucket = %bucket, prefix = %prefix, date = %date, "listing");
            let listed = s3::list(&client, bucket, prefix).await?;
            let entries: Vec<(String, s3::Listed)> = listed
                .into_iter()
                .filter_map(|o| {
                    let rest = o.key.strip_prefix(prefix.as_str())?.to_string();
                    (!rest.contains('/')).then_some((rest, o))
                })
                .collect();
            let place = s3::uri(bucket, prefix);
            let picked = locate::pick(&entries, *date, &place, prefix, plan.allow_missing)?;
            for t in picked.missing {
                missing.push((
                    s3::uri(
                        bucket,
                        &format!("{prefix}{}", locate::expected_name(*date, t)),
                    ),
                    t.name(),
                ));
            }
            picked
                .found
                .iter()
                .map(|(t, o)| Input::s3(&client, bucket, o, *t, plan.transfer))
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
        let mut r = FileReport::new(s3::basename(&source), &source, t);
        r.status = Status::Missing;
        reports.push(r);
    }
    Ok((inputs, reports))
}

async fn work(
    cfg: &DbConfig,
    plan: &Plan,
    inputs: &[Input],
    reports: &mut [FileReport],
    slot: &mut Option<Client>,
) -> Result<(), Error> {
    let opts = &plan.load;
    if plan.validate_only {
        for (input, report) in inputs.iter().zip(reports.iter_mut()) {
            tracing::info!(file = %input.source, r#type = %input.file_type, "validating");
            load::validate_file(input, opts, report).await?;
        }
        return Ok(());
    }
    tracing::info!(target = %cfg.display_target(), "connecting");
    let client = slot.insert(db::connect(cfg).await?);
    db::check_encoding(client).await?;
    if let Some(options) = plan.init_schema {
        schema::apply(client, options).await?;
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
            load::journal_interrupted(client, Some(cfg), r, started),
        )
        .await;
    }
}
