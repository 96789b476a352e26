//! Parses arguments, runs (a load, `--status` or `--check`), prints the summary or the
//! mode's report and maps the outcome to an exit code.

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use tracing_subscriber::EnvFilter;

use clap::{CommandFactory, FromArgMatches};
use cusip_loader::cli::{Args, LogFormat, OutputFormat};
use cusip_loader::error::Exit;
use cusip_loader::plan::{Action, Given, Plan};
use cusip_loader::report::Summary;
use cusip_loader::{app, check, clock, progress, report, status};

fn main() {
    // Laptop settings kept in ./.env (the working directory's only, as the old service read
    // it), under the real environment, which wins, and the flags, which win over both.
    let dotenv = Path::new(".env")
        .is_file()
        .then(|| dotenvy::from_path(".env"));
    let parsed = Args::command()
        .try_get_matches_from(cusip_loader::cli::argv(std::env::args_os()))
        .and_then(|m| {
            Ok((
                Args::from_arg_matches(&m)?,
                Given::from_matches(&m).with_libpq(
                    std::env::vars_os()
                        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
                ),
            ))
        });
    let (args, given) = match parsed {
        Ok(a) => a,
        Err(e) => {
            // --help and --version are not errors.
            if !e.use_stderr() {
                let _ = e.print();
                std::process::exit(Exit::Ok.code());
            }
            if json_wanted() {
                // One JSON document on stdout, whatever went wrong; clap's message on stderr.
                let rendered = e.render().to_string();
                let message = rendered.lines().next().unwrap_or_default();
                let message = message.strip_prefix("error: ").unwrap_or(message);
                let summary = Summary::new(Vec::new(), Exit::Usage, Some(message.to_string()));
                let _ = summary.write_json(&mut io::stdout().lock());
            }
            let _ = e.print();
            std::process::exit(Exit::Usage.code());
        }
    };
    init_logging(args.log_format);
    match dotenv {
        Some(Ok(())) => {
            tracing::info!("read settings from ./.env (the environment and flags win over it)")
        }
        // Never the error's text otherwise: a parse error quotes the line, which may hold a
        // password.
        Some(Err(dotenvy::Error::Io(e))) => {
            tracing::warn!("could not read ./.env: {e}; going on without it")
        }
        Some(Err(_)) => tracing::warn!(
            "could not read ./.env: a line is not NAME=value; going on without the lines after it"
        ),
        None => {}
    }
    let output = args.output;
    let (today, zone) = match clock::today() {
        Ok(t) => t,
        Err(e) => finish(
            output,
            Summary::new(Vec::new(), e.exit(), Some(e.to_string())),
        ),
    };
    let plan = match Plan::from_args(&args, &given, today) {
        Ok(p) => p,
        Err(e) => finish(
            output,
            Summary::new(Vec::new(), e.exit(), Some(e.to_string())),
        ),
    };
    tracing::info!("today is {today} in {zone}: the day file names and --date are read against");
    if !plan.validate_only {
        tracing::info!("database settings: {}", plan.db_sources);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => finish(
            output,
            Summary::new(
                Vec::new(),
                Exit::Software,
                Some(format!("cannot start the async runtime: {e}")),
            ),
        ),
    };
    match plan.action.clone() {
        Action::Load => finish(output, runtime.block_on(app::run(plan))),
        Action::Status { today } => {
            let r = runtime.block_on(status::run(&plan, today));
            finish_mode(|out| r.write(output, out), r.exit_code, r.error.as_deref())
        }
        Action::Check { source_error } => {
            let r = runtime.block_on(check::run(&plan, source_error.as_deref()));
            finish_mode(|out| r.write(output, out), r.exit_code, r.error.as_deref())
        }
    }
}

/// Ends `--status` and `--check`: their report on stdout (not the load summary), the error
/// on stderr as after a load, and their exit code.
fn finish_mode(
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    exit_code: i32,
    error: Option<&str>,
) -> ! {
    let mut out = io::stdout().lock();
    let _ = write(&mut out).and_then(|_| out.flush());
    if let Some(e) = error {
        for line in e.lines().map(str::trim).filter(|l| !l.is_empty()) {
            tracing::error!("{line}");
        }
    }
    std::process::exit(exit_code);
}

/// Whether JSON output was asked for, read from the raw arguments and the environment when
/// clap could not parse them.
fn json_wanted() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let flag = args.iter().enumerate().rev().find_map(|(i, a)| {
        if a == "--output" {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix("--output=").map(str::to_string)
        }
    });
    flag.or_else(|| std::env::var("CUSIP_OUTPUT").ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("json"))
}

/// Prints the summary on stdout and the error once on stderr, and exits with the summary's
/// code. A usage error in table mode is for the person typing: stderr only, short, with a
/// pointer to --help (which holds the exit-code table).
fn finish(output: OutputFormat, mut summary: Summary) -> ! {
    summary.peak_rss_mb = report::peak_rss_mb();
    let usage = summary.exit_code == Exit::Usage.code();
    let mut out = io::stdout().lock();
    let written = match output {
        OutputFormat::Json => summary.write_json(&mut out),
        OutputFormat::Table if usage && summary.files.is_empty() => Ok(()),
        OutputFormat::Table => summary.write_table(&mut out),
    };
    let _ = written.and_then(|_| out.flush());
    if let Some(e) = &summary.error {
        if usage {
            eprintln!("error: {e}\n\nFor the options and exit codes, try '--help'.");
        } else {
            // The log's last lines: what ended the run, one event per line of the message
            // (each located problem its own), in the log's format. The summary on stdout has
            // the same, for a reader who keeps only stdout.
            for line in e.lines().map(str::trim).filter(|l| !l.is_empty()) {
                tracing::error!("{line}");
            }
        }
    }
    // Exit without waiting for the runtime: after a signal a parser thread may still be
    // blocked on a read, and nothing it holds needs cleaning up.
    std::process::exit(summary.exit_code);
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(io::stderr().is_terminal())
        .with_writer(|| progress::LogWriter);
    let layer = match format {
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
        LogFormat::Text => layer.with_target(false).boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(quiet_sdk()))
        .init();
}

/// The AWS SDK and the HTTP and TLS stacks under it speak only at WARN and above, whatever
/// RUST_LOG says (their INFO and DEBUG lines name credential providers with key ids and dump
/// responses); the crates that handle credentials only at ERROR. The loader says in its own
/// words which credential source it used.
fn quiet_sdk() -> tracing_subscriber::filter::FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    tracing_subscriber::filter::filter_fn(|m| {
        let t = m.target();
        let level = *m.level();
        if t.starts_with("aws_config")
            || t.starts_with("aws_credential_types")
            || t.starts_with("aws_sdk_sso")
            || t.starts_with("aws_sdk_sts")
        {
            level <= tracing::Level::ERROR
        } else if t.starts_with("aws_")
            || t.starts_with("hyper")
            || t.starts_with("h2")
            || t.starts_with("rustls")
            || t.starts_with("tower")
        {
            level <= tracing::Level::WARN
        } else {
            true
        }
    })
}
