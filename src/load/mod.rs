//! Loading one file: lock, stage, check, merge, journal, commit — one transaction.
//!
//! Nothing touches a master table until every record has been parsed and checked, every
//! key resolved and every foreign key and code found; then the merge writes, and the journal
//! row commits with it. Any failure before the commit rolls everything back.
//!
//! Each stage is a module that returns what it produced ([`stream::Read`],
//! [`stage::Staged`], [`checks::Checked`], [`merge::Merged`]); only [`load_file`] turns them
//! into the report.

mod checks;
mod initial;
mod journal;
mod merge;
mod stage;
mod stream;

use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::cli::InitialLoad;
use crate::copy::ParseOptions;
use crate::db::{self, DbConfig};
use crate::error::Error;
use crate::layout::Layout;
use crate::report::{FileReport, Path, Phase, Status};
use crate::schema::LOCK_CLASS;
use crate::source::Input;

pub use journal::interrupted as journal_interrupted;

use checks::Checked;
use journal::{Entry, Identity, Verdict};
use merge::Merged;
use stream::{Read, Reading, Target};

#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    pub parse: ParseOptions,
    pub progress: bool,
    /// Load even when the journal says this identity was already loaded.
    pub force: bool,
    /// When an empty table takes the direct path ([`initial`]).
    pub initial_load: InitialLoad,
    /// Files smaller than this are compared with the table in the database ([`stage`]).
    pub compare_min_bytes: u64,
}

/// Below this size a file is compared with its table in the database: the second connection
/// and snapshot that comparing in the loader needs cost more than staging the whole file.
/// Measured (docs/performance.md, "Small files"): a date of 3 800 records (R 8 KB, E 170 KB,
/// A 560 KB) in 107 ms against 131 ms; one of 40 000 records (E 1.8 MB, A 6.1 MB) in 321 ms
/// against 253 ms the other way round.
pub const COMPARE_MIN_BYTES: u64 = 1 << 20;

/// How an attempt that did not fail ended.
enum Outcome {
    AlreadyLoaded,
    Loaded {
        checked: Checked,
        merged: Merged,
        route: Route,
    },
}

/// The path a file took, and why.
struct Route {
    path: Path,
    why: String,
}

/// What an attempt got as far as, kept even when it fails: the report shows what was read
/// and how long each stage took.
#[derive(Default)]
struct Trace {
    read: Read,
    phases: Vec<Phase>,
}

impl Trace {
    fn phase(&mut self, name: &'static str, since: Instant) {
        self.phases.push(Phase {
            name,
            seconds: since.elapsed().as_secs_f64(),
        });
    }
}

/// Loads one file. The report is filled in as far as the load got, whatever the outcome.
/// With `compare_on`, a table that has rows is read on a second connection of that config
/// and compared with the file in the loader ([`crate::compare`]); a failed attempt whose
/// connection is gone is recorded on a new connection of it ([`journal::failed`]).
pub async fn load_file(
    client: &mut Client,
    compare_on: Option<&DbConfig>,
    input: &Input,
    opts: &LoadOptions,
    report: &mut FileReport,
) -> Result<(), Error> {
    let started = Utc::now();
    let t0 = Instant::now();
    let identity = identity(input).await?;
    report.fingerprint = Some(identity.clone());
    report.business_date = input.business_date;
    if input.local_path().is_some() {
        report.sha256 = Some(identity.clone());
    }
    let mut trace = Trace::default();
    let result = attempt(
        client, compare_on, input, opts, &identity, started, &mut trace,
    )
    .await;
    report.records = trace.read.records;
    report.bytes = trace.read.bytes;
    report.resumes = trace.read.resumes;
    if let Some(sha) = trace.read.sha256 {
        report.sha256 = Some(crate::source::hex(&sha));
    }
    report.phases = trace.phases;
    report.timed(t0.elapsed().as_secs_f64());
    match &result {
        Ok(Outcome::AlreadyLoaded) => {
            report.status = Status::AlreadyLoaded;
            report.bytes = input.size.unwrap_or(0);
        }
        Ok(Outcome::Loaded {
            checked,
            merged,
            route,
        }) => {
            report.path = Some(route.path);
            report.path_reason = Some(route.why.clone());
            report.status = Status::Loaded;
            report.repeated = checked.repeated;
            report.repeated_examples = checked.repeated_examples.clone();
            report.inserted = merged.inserted;
            report.updated = merged.updated;
            report.unchanged = merged.unchanged;
            report.initial_load = matches!(route.path, Path::Direct | Path::Rebuild);
        }
        Err(e) => {
            report.failed(e);
        }
    }
    let mut result = result;
    if let Err(e) = &mut result {
        // The failed attempt is journalled in its own transaction (the load's has rolled
        // back), on a new connection if the load's is gone; if even that fails, the error
        // says so (a rejection's message is its list of problems: there, the report and
        // the log do).
        if let Err(why) = journal::failed(client, compare_on, report, started).await {
            let note = format!("; the attempt could not be recorded in load_journal: {why}");
            tracing::warn!("could not record the failed attempt in load_journal: {why}");
            if let Some(m) = e.message_mut() {
                m.push_str(&note);
            }
            if let Some(r) = &mut report.error {
                r.push_str(&note);
            }
        }
    }
    result.map(|_| ())
}

/// The identity known before reading: S3's ETag, or a local file's sha256 (one extra read,
/// far cheaper than a load, and it lets a changed file be caught as it is read).
async fn identity(input: &Input) -> Result<String, Error> {
    Ok(match (input.etag(), input.local_path()) {
        (Some(etag), _) => etag.to_string(),
        (None, Some(path)) => {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || crate::source::sha256_file(&path))
                .await
                .map_err(|e| Error::Internal(format!("hashing failed: {e}")))??
        }
        (None, None) => String::new(),
    })
}

async fn attempt(
    client: &mut Client,
    compare_on: Option<&DbConfig>,
    input: &Input,
    opts: &LoadOptions,
    identity: &str,
    started: DateTime<Utc>,
    trace: &mut Trace,
) -> Result<Outcome, Error> {
    let layout: &'static Layout = input.file_type.layout();
    let tx = client
        .transaction()
        .await
        .map_err(|e| db::fail("starting the transaction", &e))?;

    // One loader per table at a time; a second one waits here for the first to commit.
    let lock_id = input.file_type as i32 + 1;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_CLASS, &lock_id],
    )
    .await
    .map_err(|e| db::fail(&format!("waiting for the {} load lock", layout.table), &e))?;

    // Checked under the lock, so of two loaders started together the second sees the first's
    // journal row and skips: a rerun of a scheduler job is safe and quick.
    let local_sha = input.local_path().map(|_| identity);
    let entry = |status, read: Read, checked: Option<&Checked>, merged: Option<&Merged>| Entry {
        file: &input.name,
        source: &input.source,
        file_type: input.file_type.name(),
        bytes: read.bytes,
        fingerprint: Some(identity),
        sha256: None,
        business_date: input.business_date,
        records: read.records,
        inserted: merged.map_or(0, |m| m.inserted),
        updated: merged.map_or(0, |m| m.updated),
        unchanged: merged.map_or(0, |m| m.unchanged),
        repeated: checked.map_or(0, |c| c.repeated),
        status,
        error: None,
    };
    let known = Identity {
        fingerprint: identity,
        sha256: local_sha,
        business_date: input.business_date,
    };
    let verdict = if opts.force {
        Verdict::Load
    } else {
        journal::verdict(&tx, input.file_type.name(), known).await?
    };
    match verdict {
        Verdict::Load => {}
        Verdict::Skip { superseded } => {
            skipped(input, identity, superseded);
            let read = Read {
                bytes: input.size.unwrap_or(0),
                ..Read::default()
            };
            let mut e = entry(Status::AlreadyLoaded, read, None, None);
            e.sha256 = local_sha;
            journal::write(&tx, &e, started)
                .await
                .map_err(|e| db::fail("writing the load journal", &e))?;
            tx.commit().await.map_err(|e| db::fail_commit(&e))?;
            return Ok(Outcome::AlreadyLoaded);
        }
        // An S3 object is known only by its ETag until it is read: its content may be one
        // loaded before from elsewhere, so the verdict waits for the sha256 (below).
        Verdict::Older { .. } if local_sha.is_none() => {}
        Verdict::Older { newest } => return Err(older(input, newest)),
    }
    // A trigger or rule the loader does not know could change what it writes.
    crate::schema::guard::check(&tx, layout).await?;
    let how = Reading {
        parse: opts.parse,
        progress: opts.progress,
        expect_sha256: input.local_path().map(|_| identity),
    };

    let choice = initial::choose(&tx, layout, opts.initial_load).await?;
    let compare = compare_on.map(|cfg| (cfg, opts.compare_min_bytes));
    let (checked, merged, route) = if choice.direct {
        let (read, direct) = initial::direct(&tx, input, layout, how).await;
        trace.read = read;
        match direct? {
            initial::Went::Copied {
                copy_seconds,
                rebuild_seconds,
            } => {
                trace.phases.push(Phase {
                    name: "read+parse+copy",
                    seconds: copy_seconds,
                });
                trace.phases.push(Phase {
                    name: "checks",
                    seconds: rebuild_seconds,
                });
                let merged = Merged {
                    inserted: read.records,
                    ..Merged::default()
                };
                let route = Route {
                    path: Path::Direct,
                    why: choice.why,
                };
                (Checked::default(), merged, route)
            }
            initial::Went::Declined(declined) => {
                let (checked, merged, mut route) =
                    staged_and_merged(&tx, compare, input, layout, how, true, trace).await?;
                if route.path == Path::Rebuild {
                    route.why = format!("{}, but {declined}", choice.why);
                }
                (checked, merged, route)
            }
        }
    } else {
        let (checked, merged, mut route) =
            staged_and_merged(&tx, compare, input, layout, how, false, trace).await?;
        if choice.empty {
            route.why = choice.why;
        }
        (checked, merged, route)
    };
    tracing::info!(
        file = %input.name,
        table = layout.table,
        path = route.path.name(),
        "{} path: {}",
        route.path.name(),
        route.why
    );

    let sha = trace.read.sha256.map(|d| crate::source::hex(&d));
    let sha = sha.as_deref().or(local_sha);
    // An S3 object, now that its content is known: the rule again, by content.
    if !opts.force && local_sha.is_none() {
        let known = Identity {
            sha256: sha,
            ..known
        };
        match journal::verdict(&tx, input.file_type.name(), known).await? {
            Verdict::Load => {}
            Verdict::Older { newest } => return Err(older(input, newest)),
            Verdict::Skip { superseded } => {
                tx.rollback()
                    .await
                    .map_err(|e| db::fail("rolling back", &e))?;
                skipped(input, identity, superseded);
                let mut e = entry(Status::AlreadyLoaded, trace.read, None, None);
                e.sha256 = sha;
                journal::write(&*client, &e, started)
                    .await
                    .map_err(|e| db::fail("writing the load journal", &e))?;
                return Ok(Outcome::AlreadyLoaded);
            }
        }
    }

    let t = Instant::now();
    let mut e = entry(Status::Loaded, trace.read, Some(&checked), Some(&merged));
    e.sha256 = sha;
    journal::write(&tx, &e, started)
        .await
        .map_err(|e| db::fail("writing the load journal", &e))?;
    tx.commit().await.map_err(|e| db::fail_commit(&e))?;
    trace.phase("commit", t);
    Ok(Outcome::Loaded {
        checked,
        merged,
        route,
    })
}

/// Logs why a file is skipped.
fn skipped(input: &Input, identity: &str, superseded: Option<chrono::NaiveDate>) {
    match superseded {
        None => tracing::info!(
            file = %input.source, fingerprint = %identity,
            "already loaded: the newest load of {}; skipping (--force reloads)",
            input.file_type.layout().table
        ),
        Some(newest) => tracing::info!(
            file = %input.source, fingerprint = %identity,
            "already loaded, and {} has loaded {newest} since; skipping (--force reloads it over the newer day)",
            input.file_type.layout().table
        ),
    }
}

/// The refusal of a file older than what its table holds.
fn older(input: &Input, newest: chrono::NaiveDate) -> Error {
    let date = input
        .business_date
        .map_or_else(|| "?".to_string(), |d| d.to_string());
    Error::with_exit(
        crate::error::Exit::DataErr,
        format!(
            "{}: refused: it is for {date}, but {} already holds {newest}, a later business day; \
             loading it would put older values over newer ones. Nothing was changed. To load it \
             anyway (a repair), rerun with --force, then reload the later days",
            input.name,
            input.file_type.layout().table
        ),
    )
}

/// The staged path: stage (compared in the loader when it can be: `compare_on` gives the
/// connection and the smallest file worth it), check, merge. With `rebuild`, an empty table
/// is filled with its indexes dropped and rebuilt.
async fn staged_and_merged(
    tx: &tokio_postgres::Transaction<'_>,
    compare_on: Option<(&DbConfig, u64)>,
    input: &Input,
    layout: &'static Layout,
    how: Reading<'_>,
    rebuild: bool,
    trace: &mut Trace,
) -> Result<(Checked, Merged, Route), Error> {
    let t = Instant::now();
    let (read, staged) = stage::stage(tx, compare_on, input, layout, how).await;
    trace.read = read;
    let staged = staged?;
    trace.phase("read+parse+copy", t);
    tracing::info!(file = %input.name, records = read.records, seconds = t.elapsed().as_secs_f64(), "staged");

    let t = Instant::now();
    let checked = checks::check(tx, input, layout, &staged).await?;
    trace.phase("checks", t);
    tracing::info!(file = %input.name, repeated = checked.repeated, seconds = t.elapsed().as_secs_f64(), "checked");

    let t = Instant::now();
    // The checks left to the database's foreign keys happen during the merge; if one
    // fails, the savepoint undoes the merge and the staged checks name the lines.
    if checked.deferred {
        tx.batch_execute("SAVEPOINT cusip_merge")
            .await
            .map_err(|e| db::fail("starting the merge", &e))?;
    }
    let distinct = read.records - checked.repeated;
    let merged = match merge::merge(tx, layout, rebuild, distinct, &staged).await {
        Ok(m) => m,
        Err(e) => {
            if checked.deferred && matches!(e, Error::Refused(_)) {
                tx.batch_execute("ROLLBACK TO SAVEPOINT cusip_merge")
                    .await
                    .map_err(|e| db::fail("undoing the merge", &e))?;
                checks::find_misses(tx, input, layout, None).await?;
            }
            return Err(e);
        }
    };
    if merged.unchanged + merged.updated + merged.inserted != distinct {
        return Err(Error::Internal(format!(
            "merge counts do not add up: {} unchanged + {} updated + {} inserted != {distinct} distinct keys",
            merged.unchanged, merged.updated, merged.inserted
        )));
    }
    trace.phase("merge", t);
    tracing::info!(
        file = %input.name,
        inserted = merged.inserted,
        updated = merged.updated,
        unchanged = merged.unchanged,
        seconds = t.elapsed().as_secs_f64(),
        "merged"
    );
    let route = if merged.initial_load {
        Route {
            path: Path::Rebuild,
            why: String::new(),
        }
    } else {
        Route {
            path: staged.path,
            why: staged.why,
        }
    };
    Ok((checked, merged, route))
}

/// Parses and checks one file without any database: the same problems and exit codes as a
/// load, except foreign keys and code-table membership, which only the database knows.
pub async fn validate_file(
    input: &Input,
    opts: &LoadOptions,
    report: &mut FileReport,
) -> Result<(), Error> {
    let t0 = Instant::now();
    let how = Reading {
        parse: opts.parse,
        progress: opts.progress,
        expect_sha256: None,
    };
    let (read, result) = stream::stream(
        input,
        input.file_type.layout(),
        how,
        None,
        Target::Stage,
        None,
    )
    .await;
    report.records = read.records;
    report.bytes = read.bytes;
    report.resumes = read.resumes;
    report.timed(t0.elapsed().as_secs_f64());
    match &result {
        Ok(_) => report.status = Status::Valid,
        Err(e) => report.failed(e),
    }
    result.map(|_| ())
}
