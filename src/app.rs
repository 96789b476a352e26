//! One run: check the inputs, connect, apply the schema if asked, load each file in
//! foreign-key order, stop at the first failure, and answer SIGINT/SIGTERM promptly.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_postgres::{Client, NoTls};

use crate::cli::Args;
use crate::copy::ParseOptions;
use crate::db::{self, DbConfig};
use crate::error::{Error, Exit};
use crate::load::{self, LoadOptions};
use crate::progress;
use crate::report::{FileReport, Status, Summary};
use crate::schema;
use crate::source::Input;

pub async fn run(args: Args) -> Summary {
    let inputs = match inputs(&args) {
        Ok(i) => i,
        Err(e) => return Summary::new(Vec::new(), e.exit(), Some(e.to_string())),
    };
    let mut reports: Vec<FileReport> = inputs
        .iter()
        .map(|i| FileReport::new(&i.name, &i.source, i.file_type.name()))
        .collect();
    let cfg = DbConfig {
        host: args.host.clone(),
        port: args.port,
        dbname: args.dbname.clone(),
        user: args.user.clone(),
        password: args.password.clone(),
        connect_timeout: Duration::from_secs(args.connect_timeout),
    };
    let opts = LoadOptions {
        parse: ParseOptions {
            encoding: args.encoding,
            allow_missing_trailer: args.allow_missing_trailer,
        },
        progress: progress::wanted(args.no_progress),
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
        interrupted(client.as_ref(), &mut reports).await;
    }
    match outcome {
        Ok(()) => Summary::new(reports, Exit::Ok, None),
        Err(e) => {
            // A file's own failure is already in its row; repeat it as the run's error.
            Summary::new(reports, e.exit(), Some(e.to_string()))
        }
    }
}

/// Checks every input before anything connects, and orders them for the foreign keys.
fn inputs(args: &Args) -> Result<Vec<Input>, Error> {
    if args.files.is_empty() && !args.init_schema {
        return Err(Error::Usage(
            "nothing to do: give one or more PIP files, or --init-schema (see --help)".into(),
        ));
    }
    let mut inputs = args
        .files
        .iter()
        .map(|p| Input::local(p, args.file_type))
        .collect::<Result<Vec<_>, _>>()?;
    // Stable: files of one type keep the order they were given in (e.g. successive days).
    inputs.sort_by_key(|i| i.file_type);
    Ok(inputs)
}

async fn work(
    cfg: &DbConfig,
    args: &Args,
    inputs: &[Input],
    opts: &LoadOptions,
    reports: &mut [FileReport],
    slot: &mut Option<Client>,
) -> Result<(), Error> {
    tracing::info!(target = %cfg.display_target(), "connecting");
    let client = slot.insert(db::connect(cfg).await?);
    db::check_encoding(client).await?;
    if args.init_schema {
        schema::apply(client).await?;
        tracing::info!("schema applied");
    }
    for (input, report) in inputs.iter().zip(reports.iter_mut()) {
        tracing::info!(file = %input.source, r#type = %input.file_type, "loading");
        // Marked in progress, so an interruption knows which file it cut short.
        report.status = Status::Interrupted;
        report.started_at = Some(chrono::Utc::now());
        load::load_file(client, input, opts, report).await?;
    }
    Ok(())
}

/// After a signal: cancel what the server is doing, let the rollback happen, journal the
/// attempt — each step bounded so the process exits within a few seconds.
async fn interrupted(client: Option<&Client>, reports: &mut [FileReport]) {
    let Some(client) = client else { return };
    let token = client.cancel_token();
    let _ = tokio::time::timeout(Duration::from_secs(2), token.cancel_query(NoTls)).await;
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
