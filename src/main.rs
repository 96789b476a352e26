//! Parses arguments, runs, prints the summary and maps the outcome to an exit code.

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use clap::{CommandFactory, FromArgMatches};
use cusip_loader::cli::{Args, LogFormat, OutputFormat};
use cusip_loader::error::Exit;
use cusip_loader::plan::{Given, Plan};
use cusip_loader::report::Summary;
use cusip_loader::{app, clock, progress, report};

fn main() {
    let parsed = Args::command()
        .try_get_matches()
        .and_then(|m| Ok((Args::from_arg_matches(&m)?, Given::from_matches(&m))));
    let (args, given) = match parsed {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            let exit = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            std::process::exit(exit.code());
        }
    };
    init_logging(args.log_format);
    let output = args.output;
    let today = match clock::today() {
        Ok((today, zone)) => {
            tracing::info!(
                "today is {today} in {zone}: the day file names and --date are read against"
            );
            today
        }
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

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(Exit::Software.code());
        }
    };
    finish(output, runtime.block_on(app::run(plan)))
}

/// Prints the summary and the error, and exits with the summary's code.
fn finish(output: OutputFormat, mut summary: Summary) -> ! {
    summary.peak_rss_mb = report::peak_rss_mb();
    let mut out = io::stdout().lock();
    let written = match output {
        OutputFormat::Json => summary.write_json(&mut out),
        OutputFormat::Table => summary.write_table(&mut out),
    };
    let _ = written.and_then(|_| out.flush());
    if let Some(e) = &summary.error {
        eprintln!("error: {e}");
        if summary.exit_code == Exit::Usage.code() {
            eprintln!("\n{}", Exit::help());
        }
    }
    // Exit without waiting for the runtime: after a signal a parser thread may still be
    // blocked on a read, and nothing it holds needs cleaning up.
    std::process::exit(summary.exit_code);
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(|| progress::LogWriter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}
