//! Parses arguments, runs (a load, `--status` or `--check`), prints the summary or the
//! mode's report and maps the outcome to an exit code.

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use clap::{CommandFactory, FromArgMatches};
use cusip_loader::cli::{Args, LogFormat, OutputFormat};
use cusip_loader::error::Exit;
use cusip_loader::plan::{Action, Given, Plan};
use cusip_loader::report::Summary;
use cusip_loader::{app, check, progress, report, status};

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
    let plan = match Plan::from_args(&args, &given, chrono::Local::now().date_naive()) {
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
        eprintln!("error: {e}");
    }
    std::process::exit(exit_code);
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
