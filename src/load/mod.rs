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
use crate::source::{Hashing, Input};

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
    let known = match (input.etag(), input.local_path()) {
        (Some(etag), _) => Known::Etag(etag.to_string()),
        (None, Some(path)) => Known::Local(Hashing::start(path)?),
        (None, None) => Known::Etag(String::new()),
    };
    report.business_date = input.business_date;
    let mut trace = Trace::default();
    let result = {
        let attempt = attempt(client, compare_on, input, opts, &known, started, &mut trace);
        match &known {
            Known::Etag(etag) => {
                report.fingerprint = Some(etag.clone());
                attempt.await
            }
            // Into the report as soon as it is known, so an interrupted attempt has it too.
            Known::Local(hashing) => {
                let mut attempt = std::pin::pin!(attempt);
                tokio::select! {
                    r = &mut attempt => r,
                    Ok(sha) = hashing.wait() => {
                        report.fingerprint = Some(sha.clone());
                        report.sha256 = Some(sha);
                        attempt.await
                    }
                }
            }
        }
    };
    if let (Known::Local(hashing), None) = (&known, &report.fingerprint) {
        if let Ok(sha) = hashing.wait().await {
            report.fingerprint = Some(sha.clone());
            report.sha256 = Some(sha);
        }
    }
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

/// What a file is known by before it is read: an S3 object's ETag, or a local file's
/// sha256, which its own thread computes while the load goes on ([`Hashing`]).
enum Known {
    Etag(String),
    Local(Hashing),
}

impl Known {
    fn hashing(&self) -> Option<&Hashing> {
        match self {
            Known::Local(h) => Some(h),
            Known::Etag(_) => None,
        }
    }

    /// The journal's fingerprint: the ETag, or (waiting for it) the sha256.
    async fn fingerprint(&self) -> Result<String, Error> {
        match self {
            Known::Etag(etag) => Ok(etag.clone()),
            Known::Local(h) => h.wait().await,
        }
    }
}

/// The rerun rule's answer, or, while a local file's sha256 is still being computed, the
/// journal's facts that will give it ([`journal::Newest`]).
enum Ruling {
    Decided(Verdict),
    Pending(journal::Newest),
}

async fn attempt(
    client: &mut Client,
    compare_on: Option<&DbConfig>,
    input: &Input,
    opts: &LoadOptions,
    known: &Known,
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
    // journal row and skips: a rerun of a scheduler job is safe and quick. A local file whose
    // sha256 is still being computed goes on meanwhile when the newest load alone decides;
    // what it does then is undone if the digest says the file was loaded already.
    let file_type = input.file_type.name();
    let hashing = known.hashing();
    let ruling = match hashing {
        _ if opts.force => Ruling::Decided(Verdict::Load),
        Some(h) => {
            let newest = journal::newest(&tx, file_type).await?;
            if newest.decides(input.business_date) {
                Ruling::Pending(newest)
            } else {
                let sha = h.wait().await?;
                let known = Identity {
                    fingerprint: &sha,
                    sha256: Some(&sha),
                    business_date: input.business_date,
                };
                Ruling::Decided(journal::verdict(&tx, file_type, known).await?)
            }
        }
        None => {
            let known = Identity {
                fingerprint: &known.fingerprint().await?,
                sha256: None,
                business_date: input.business_date,
            };
            Ruling::Decided(journal::verdict(&tx, file_type, known).await?)
        }
    };
    match ruling {
        Ruling::Decided(Verdict::Skip { superseded }) => {
            let fingerprint = known.fingerprint().await?;
            skipped(input, &fingerprint, superseded);
            let local_sha = hashing.map(|_| fingerprint.as_str());
            let e = skipped_entry(input, &fingerprint, local_sha);
            journal::write(&tx, &e, started)
                .await
                .map_err(|e| db::fail("writing the load journal", &e))?;
            tx.commit().await.map_err(|e| db::fail_commit(&e))?;
            return Ok(Outcome::AlreadyLoaded);
        }
        // An S3 object is known only by its ETag until it is read: its content may be one
        // loaded before from elsewhere, so the verdict waits for the sha256 (below).
        Ruling::Decided(Verdict::Older { newest }) if hashing.is_some() => {
            return Err(older(input, newest))
        }
        Ruling::Decided(_) | Ruling::Pending(_) => {}
    }
    let how = Reading {
        parse: opts.parse,
        progress: opts.progress,
        hashing,
    };
    let work = Box::pin(load_rows(&tx, compare_on, input, opts, how, trace));
    let (checked, merged, route) = match (ruling, hashing) {
        (Ruling::Pending(newest), Some(h)) => {
            let mut work = work;
            let (sha, finished) = tokio::select! {
                sha = h.wait() => (sha, None),
                done = &mut work => (h.wait().await, Some(done)),
            };
            let sha = sha?;
            match newest.verdict(&sha, input.business_date) {
                Some(Verdict::Load) => match finished {
                    Some(done) => done?,
                    None => work.await?,
                },
                Some(Verdict::Skip { superseded }) => {
                    // What went ahead is undone; the rerun is recorded as if it had waited.
                    drop(work);
                    *trace = Trace::default();
                    tx.rollback()
                        .await
                        .map_err(|e| db::fail("rolling back", &e))?;
                    skipped(input, &sha, superseded);
                    let e = skipped_entry(input, &sha, Some(&sha));
                    journal::write(&*client, &e, started)
                        .await
                        .map_err(|e| db::fail("writing the load journal", &e))?;
                    return Ok(Outcome::AlreadyLoaded);
                }
                Some(Verdict::Older { newest }) => return Err(older(input, newest)),
                None => {
                    return Err(Error::Internal(
                        "the newest load did not decide the rerun rule".into(),
                    ))
                }
            }
        }
        _ => work.await?,
    };

    let fingerprint = known.fingerprint().await?;
    let local_sha = hashing.map(|_| fingerprint.as_str());
    let sha = trace.read.sha256.map(|d| crate::source::hex(&d));
    let sha = sha.as_deref().or(local_sha);
    let entry = |status, checked: Option<&Checked>, merged: Option<&Merged>| Entry {
        file: &input.name,
        source: &input.source,
        file_type,
        bytes: trace.read.bytes,
        fingerprint: Some(&fingerprint),
        sha256: sha,
        business_date: input.business_date,
        records: trace.read.records,
        inserted: merged.map_or(0, |m| m.inserted),
        updated: merged.map_or(0, |m| m.updated),
        unchanged: merged.map_or(0, |m| m.unchanged),
        repeated: checked.map_or(0, |c| c.repeated),
        status,
        error: None,
    };
    // An S3 object, now that its content is known: the rule again, by content.
    if !opts.force && hashing.is_none() {
        let known = Identity {
            fingerprint: &fingerprint,
            sha256: sha,
            business_date: input.business_date,
        };
        match journal::verdict(&tx, file_type, known).await? {
            Verdict::Load => {}
            Verdict::Older { newest } => return Err(older(input, newest)),
            Verdict::Skip { superseded } => {
                tx.rollback()
                    .await
                    .map_err(|e| db::fail("rolling back", &e))?;
                skipped(input, &fingerprint, superseded);
                let e = entry(Status::AlreadyLoaded, None, None);
                journal::write(&*client, &e, started)
                    .await
                    .map_err(|e| db::fail("writing the load journal", &e))?;
                return Ok(Outcome::AlreadyLoaded);
            }
        }
    }

    let t = Instant::now();
    let e = entry(Status::Loaded, Some(&checked), Some(&merged));
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

/// The journal row of a file skipped before it was read.
fn skipped_entry<'a>(input: &'a Input, fingerprint: &'a str, sha256: Option<&'a str>) -> Entry<'a> {
    Entry {
        file: &input.name,
        source: &input.source,
        file_type: input.file_type.name(),
        bytes: input.size.unwrap_or(0),
        fingerprint: Some(fingerprint),
        sha256,
        business_date: input.business_date,
        records: 0,
        inserted: 0,
        updated: 0,
        unchanged: 0,
        repeated: 0,
        status: Status::AlreadyLoaded,
        error: None,
    }
}

/// The file's rows into its table, by the path the table's state and the options choose;
/// the journal and the commit are the caller's.
async fn load_rows(
    tx: &tokio_postgres::Transaction<'_>,
    compare_on: Option<&DbConfig>,
    input: &Input,
    opts: &LoadOptions,
    how: Reading<'_>,
    trace: &mut Trace,
) -> Result<(Checked, Merged, Route), Error> {
    let layout: &'static Layout = input.file_type.layout();
    // A trigger or rule the loader does not know could change what it writes.
    crate::schema::guard::check(tx, layout).await?;

    let choice = initial::choose(tx, layout, opts.initial_load).await?;
    let compare = compare_on.map(|cfg| (cfg, opts.compare_min_bytes));
    let (checked, merged, route) = if choice.direct {
        let (read, direct) = initial::direct(tx, input, layout, how).await;
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
                    staged_and_merged(tx, compare, input, layout, how, true, trace).await?;
                if route.path == Path::Rebuild {
                    route.why = format!("{}, but {declined}", choice.why);
                }
                (checked, merged, route)
            }
        }
    } else {
        let (checked, merged, mut route) =
            staged_and_merged(tx, compare, input, layout, how, false, trace).await?;
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
    Ok((checked, merged, route))
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
        hashing: None,
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
