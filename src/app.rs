//! One run: check the inputs, connect, apply the schema if asked, load each file in
//! foreign-key order, stop at the first failure, and answer SIGINT/SIGTERM promptly.

use std::time::Duration;

use chrono::NaiveDate;

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
    let Rows {
        inputs,
        mut reports,
        stop,
    } = match inputs(&plan).await {
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
        r = work(&cfg, &plan, &inputs, &mut reports, &mut client) => r.and_then(|()| stop.map_or(Ok(()), Err)),
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

/// A run's rows in order: each either a file to load or a row that only reports (a type a
/// date lacks under --allow-missing, a date of a range with no files), up to the first date
/// of a range whose files cannot be picked, where the run will stop.
#[derive(Default)]
struct Rows {
    inputs: Vec<Option<Input>>,
    reports: Vec<FileReport>,
    /// Why the run stops after the rows above (a range's date that fails to be found).
    stop: Option<Error>,
}

impl Rows {
    fn load(&mut self, mut input: Input, date: Option<NaiveDate>) {
        input.business_date = date;
        let mut r = FileReport::new(&input.name, &input.source, input.file_type.name());
        r.business_date = date;
        self.inputs.push(Some(input));
        self.reports.push(r);
    }

    fn report(
        &mut self,
        file: &str,
        source: &str,
        file_type: &'static str,
        date: NaiveDate,
        status: Status,
    ) {
        let mut r = FileReport::new(file, source, file_type);
        r.business_date = Some(date);
        r.status = status;
        self.inputs.push(None);
        self.reports.push(r);
    }

    /// One date's files (in foreign-key order) and the types it lacks. In a range, a date
    /// with no files at all is a row of its own; one whose files cannot be picked stops the
    /// range there (a single date fails at once, before anything connects). False when the
    /// range stops at this date.
    fn date(
        &mut self,
        date: NaiveDate,
        range: bool,
        place: &str,
        pick: impl FnOnce() -> Result<(Vec<Input>, Vec<(String, FileType)>), Error>,
        has_any: impl FnOnce() -> bool,
    ) -> Result<bool, Error> {
        if range && !has_any() {
            let pattern = format!("CED{}?.PIP", date.format("%m-%d"));
            self.report(
                &pattern,
                &format!("{place}{pattern}"),
                "-",
                date,
                Status::NoFiles,
            );
            return Ok(true);
        }
        match pick() {
            Ok((mut found, missing)) => {
                found.sort_by_key(|i| i.file_type);
                for i in found {
                    self.load(i, Some(date));
                }
                for (source, t) in missing {
                    self.report(
                        s3::basename(&source),
                        &source,
                        t.name(),
                        date,
                        Status::Missing,
                    );
                }
                Ok(true)
            }
            // Earlier dates still load; the run stops here with this date's error.
            Err(e) if range && self.inputs.iter().any(Option::is_some) => {
                self.stop = Some(e);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// The dates `date` to `through` (or `date` alone).
fn days(date: NaiveDate, through: Option<NaiveDate>) -> impl Iterator<Item = NaiveDate> {
    date.iter_days()
        .take_while(move |d| *d <= through.unwrap_or(date))
}

/// Finds and checks every input before anything connects to the database, in load order,
/// with a report row for each (and for each type a date is missing, under --allow-missing).
async fn inputs(plan: &Plan) -> Result<Rows, Error> {
    let mut rows = Rows::default();
    match &plan.inputs {
        Inputs::Nothing => {}
        Inputs::Files(files) => {
            let mut found = files
                .iter()
                .map(|p| Input::local(p, plan.file_type))
                .collect::<Result<Vec<_>, _>>()?;
            // Stable: files of one type keep the order they were given in (successive days).
            found.sort_by_key(|i| i.file_type);
            for i in found {
                let date = locate::date_of_name(&i.name, plan.today);
                rows.load(i, date);
            }
        }
        Inputs::DirDate { dir, date, through } => {
            let listing = source::list_dir(dir)?;
            let place = format!("{}/", dir.display());
            for day in days(*date, through.as_ref().copied()) {
                let picked = rows.date(
                    day,
                    through.is_some(),
                    &place,
                    || {
                        let (found, miss) =
                            source::dir_date(dir, &listing, day, plan.allow_missing)?;
                        let miss = miss
                            .into_iter()
                            .map(|t| {
                                (
                                    format!(
                                        "{}",
                                        dir.join(locate::expected_name(day, t)).display()
                                    ),
                                    t,
                                )
                            })
                            .collect();
                        Ok((found, miss))
                    },
                    || locate::has_date(&listing, day),
                )?;
                if !picked {
                    break;
                }
            }
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
            let input = Input::s3(&client, bucket, &obj, file_type, plan.transfer);
            let date = locate::date_of_name(&input.name, plan.today);
            rows.load(input, date);
        }
        Inputs::S3Date {
            bucket,
            prefix,
            date,
            through,
        } => {
            let client = s3::client(&plan.s3).await;
            tracing::info!(bucket = %bucket, prefix = %prefix, date = %date, through = ?through, "listing");
            let listed = s3::list(&client, bucket, prefix)
                .await
                .map_err(|e| match e {
                    Error::NoInput(m) => Error::NoInput(format!(
                        "{m} ({}): check the name, or set --s3-bucket / CUSIP_S3_BUCKET and \
                     --s3-prefix / CUSIP_S3_PREFIX",
                        plan.s3_origin
                    )),
                    e => e,
                })?;
            let entries: Vec<(String, s3::Listed)> = listed
                .into_iter()
                .filter_map(|o| {
                    let rest = o.key.strip_prefix(prefix.as_str())?.to_string();
                    (!rest.contains('/')).then_some((rest, o))
                })
                .collect();
            let place = s3::uri(bucket, prefix);
            for day in days(*date, through.as_ref().copied()) {
                let picked = rows.date(
                    day,
                    through.is_some(),
                    &place,
                    || {
                        let picked =
                            locate::pick(&entries, day, &place, prefix, plan.allow_missing)?;
                        let miss = picked
                            .missing
                            .into_iter()
                            .map(|t| {
                                (
                                    s3::uri(
                                        bucket,
                                        &format!("{prefix}{}", locate::expected_name(day, t)),
                                    ),
                                    t,
                                )
                            })
                            .collect();
                        let found = picked
                            .found
                            .iter()
                            .map(|(t, o)| Input::s3(&client, bucket, o, *t, plan.transfer))
                            .collect();
                        Ok((found, miss))
                    },
                    || locate::has_date(&entries, day),
                )?;
                if !picked {
                    break;
                }
            }
        }
    };
    Ok(rows)
}

async fn work(
    cfg: &DbConfig,
    plan: &Plan,
    inputs: &[Option<Input>],
    reports: &mut [FileReport],
    slot: &mut Option<Client>,
) -> Result<(), Error> {
    let opts = &plan.load;
    if plan.validate_only {
        for (input, report) in inputs.iter().zip(reports.iter_mut()) {
            let Some(input) = input else { continue };
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
    if inputs.iter().any(Option::is_some) {
        schema::require(client).await?;
    }
    for (input, report) in inputs.iter().zip(reports.iter_mut()) {
        let Some(input) = input else { continue };
        tracing::info!(
            file = %input.source,
            r#type = %input.file_type,
            date = %input.business_date.map_or_else(|| "unknown".to_string(), |d| d.to_string()),
            "loading"
        );
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
        // The time it ran, not 0.
        if let Some(t) = r.started_at {
            let ran = (chrono::Utc::now() - t).to_std().unwrap_or_default();
            r.timed(ran.as_secs_f64());
        }
        let started = r.started_at.unwrap_or_else(chrono::Utc::now);
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            load::journal_interrupted(client, Some(cfg), r, started),
        )
        .await;
    }
}
