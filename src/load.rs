//! Loading one file: lock, stage, COPY, check, merge, journal, commit — one transaction.
//!
//! Nothing touches a master table until every record has been parsed and checked, every
//! key resolved and every foreign key and code found; then a single statement merges, and
//! the journal row commits with it. Any failure before the commit rolls everything back.

use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::{Client, GenericClient};

use crate::compare::{self, Comparer, Stop};
use crate::convert::Discard;
use crate::copy::{self, LineMap, ParseOptions, Produced, RowEncoder, CHANNEL_DEPTH};
use crate::db::{self, DbConfig};
use crate::error::{Error, Exit, Problem, Rejection};
use crate::layout::Layout;
use crate::merge;
use crate::progress;
use crate::report::{FileReport, Phase, Repeat, Status};
use crate::schema::LOCK_CLASS;
use crate::source::{Fingerprint, Input};

/// Examples shown per kind of foreign-key or code miss, and of repeated keys.
const EXAMPLES: u32 = 5;

#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    pub parse: ParseOptions,
    pub progress: bool,
    /// Load even when the journal says this identity was already loaded.
    pub force: bool,
    /// Use the initial-load path (see [`initial_load`]) for a table that is empty.
    pub initial_load: bool,
}

/// Loads one file. The report is filled in as far as the load got, whatever the outcome.
/// With `compare_on`, a table that has rows is read on a second connection of that config
/// and compared with the file in the loader ([`compare`]).
pub async fn load_file(
    client: &mut Client,
    compare_on: Option<&DbConfig>,
    input: &Input,
    opts: &LoadOptions,
    report: &mut FileReport,
) -> Result<(), Error> {
    let started = Utc::now();
    let t0 = Instant::now();
    // The identity known before reading: S3's ETag, or a local file's sha256 (one extra
    // read, far cheaper than a load, and it lets a changed file be caught below).
    let identity = match (input.etag(), input.local_path()) {
        (Some(etag), _) => etag.to_string(),
        (None, Some(path)) => {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || crate::source::sha256_file(&path))
                .await
                .map_err(|e| Error::Internal(format!("hashing failed: {e}")))??
        }
        (None, None) => String::new(),
    };
    report.fingerprint = Some(identity.clone());
    let result = load_in_transaction(client, compare_on, input, opts, report, started).await;
    report.seconds = t0.elapsed().as_secs_f64();
    report.mb_per_s = if report.seconds > 0.0 {
        report.bytes as f64 / 1e6 / report.seconds
    } else {
        0.0
    };
    match &result {
        Ok(()) => {
            if report.status != Status::AlreadyLoaded {
                report.status = Status::Loaded;
            }
        }
        Err(e) => {
            report.status = Status::Failed;
            report.error = Some(e.to_string());
            // The failed attempt is journalled in its own transaction; the load's own
            // transaction has rolled back (dropped). If the connection is gone, say so only.
            if let Err(je) = journal(&*client, report, started).await {
                tracing::warn!(
                    "could not record the failed attempt in load_journal: {}",
                    db::chain(&je)
                );
            }
        }
    }
    result
}

async fn load_in_transaction(
    client: &mut Client,
    compare_on: Option<&DbConfig>,
    input: &Input,
    opts: &LoadOptions,
    report: &mut FileReport,
    started: DateTime<Utc>,
) -> Result<(), Error> {
    let layout = input.file_type.layout();
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
    let identity = report.fingerprint.clone().unwrap_or_default();
    if !opts.force && already_loaded(&tx, &input.source, &identity).await? {
        tracing::info!(file = %input.source, fingerprint = %identity, "already loaded; skipping (--force reloads)");
        report.status = Status::AlreadyLoaded;
        report.bytes = input.size.unwrap_or(0);
        journal(&tx, report, started)
            .await
            .map_err(|e| db::fail("writing the load journal", &e))?;
        tx.commit().await.map_err(|e| db::fail("committing", &e))?;
        return Ok(());
    }
    // A trigger or rule the loader does not know could change what it writes.
    crate::schema::guard::check(&tx, layout).await?;
    if opts.initial_load && direct_initial_load(&tx, input, layout, opts, report).await? {
        return commit(tx, report, started).await;
    }

    let t = Instant::now();
    // Only rows that are new or differ reach staging, so only those are checked: that is
    // the same outcome as checking every row only when the table's own foreign keys already
    // hold every unchanged row to the same rules.
    //
    // The cheaper question first: an empty table (a fresh load) has nothing to compare with,
    // and then its foreign keys are read once, by the checks, not here as well. In a new
    // session that read costs 1.5-2 ms of catalog lookups, 5 % of a 40 000-record COPY phase.
    let comparer = match compare_on {
        Some(cfg) if compare::applies(&tx, layout).await? => {
            if Enforced::read(&tx, layout).await?.covers(layout) {
                compare::open(&tx, cfg, layout).await?
            } else {
                tracing::info!(
                    table = layout.table,
                    "a check is not enforced by a foreign key; comparing in the database"
                );
                None
            }
        }
        _ => None,
    };
    let ascending = if let Some(comparer) = comparer {
        stage_compared(&tx, input, layout, opts, report, comparer).await?
    } else {
        stage(&tx, input, layout, opts, report, None)
            .await?
            .ascending
    };
    report.phases.push(Phase {
        name: "read+parse+copy",
        seconds: t.elapsed().as_secs_f64(),
    });
    tracing::info!(file = %input.name, records = report.records, seconds = t.elapsed().as_secs_f64(), "staged");

    let t = Instant::now();
    let deferred_checks = check(&tx, input, layout, report, ascending).await?;
    report.phases.push(Phase {
        name: "checks",
        seconds: t.elapsed().as_secs_f64(),
    });
    tracing::info!(file = %input.name, repeated = report.repeated, seconds = t.elapsed().as_secs_f64(), "checked");

    let t = Instant::now();
    // The checks left to the database's foreign keys happen during the merge; if one
    // fails, the savepoint undoes the merge and the staged checks name the lines.
    if deferred_checks {
        tx.batch_execute("SAVEPOINT cusip_merge")
            .await
            .map_err(|e| db::fail("starting the merge", &e))?;
    }
    if let Err(e) = merge(&tx, layout, opts, report, ascending).await {
        if deferred_checks && matches!(e, Error::Refused(_)) {
            tx.batch_execute("ROLLBACK TO SAVEPOINT cusip_merge")
                .await
                .map_err(|e| db::fail("undoing the merge", &e))?;
            find_misses(&tx, input, layout, None).await?;
        }
        return Err(e);
    }
    let distinct = report.records - report.repeated;
    if report.unchanged + report.updated + report.inserted != distinct {
        return Err(Error::Internal(format!(
            "merge counts do not add up: {} unchanged + {} updated + {} inserted != {distinct} distinct keys",
            report.unchanged, report.updated, report.inserted
        )));
    }
    report.phases.push(Phase {
        name: "merge",
        seconds: t.elapsed().as_secs_f64(),
    });
    tracing::info!(
        file = %input.name,
        inserted = report.inserted,
        updated = report.updated,
        unchanged = report.unchanged,
        seconds = t.elapsed().as_secs_f64(),
        "merged"
    );

    commit(tx, report, started).await
}

/// Creates the staging table and COPYs the file into it.
async fn stage(
    tx: &tokio_postgres::Transaction<'_>,
    input: &Input,
    layout: &'static Layout,
    opts: &LoadOptions,
    report: &mut FileReport,
    comparer: Option<Comparer>,
) -> Result<Copied, Error> {
    tx.batch_execute(&merge::create_stage(layout))
        .await
        .map_err(|e| db::fail("creating the staging table", &e))?;
    stream_copy(tx, input, layout, opts, report, Target::Stage, comparer).await
}

/// Stages only the rows the comparison with the master finds new or changed. If the file's
/// keys stop ascending, the merge join cannot go on: everything is undone back to a
/// savepoint and the file is read again and staged whole, to be compared in the database.
/// Returns whether the staged keys ascend (they do, unless it fell back).
async fn stage_compared(
    tx: &tokio_postgres::Transaction<'_>,
    input: &Input,
    layout: &'static Layout,
    opts: &LoadOptions,
    report: &mut FileReport,
    comparer: Comparer,
) -> Result<bool, Error> {
    let savepoint = |sql: &'static str| async move {
        tx.batch_execute(sql)
            .await
            .map_err(|e| db::fail("staging the file", &e))
    };
    savepoint("SAVEPOINT cusip_compare").await?;
    let copied = stage(tx, input, layout, opts, report, Some(comparer)).await?;
    let Some(line) = copied.not_ascending else {
        savepoint("RELEASE SAVEPOINT cusip_compare").await?;
        tracing::info!(
            file = %input.name,
            staged = copied.staged,
            records = report.records,
            "compared with {} in the loader: {} of {} records new or changed",
            layout.table,
            copied.staged,
            report.records
        );
        return Ok(true);
    };
    tracing::info!(
        file = %input.name,
        line,
        "the keys stop ascending at line {line}; comparing in the database instead"
    );
    savepoint("ROLLBACK TO SAVEPOINT cusip_compare; RELEASE SAVEPOINT cusip_compare").await?;
    Ok(stage(tx, input, layout, opts, report, None)
        .await?
        .ascending)
}

/// Writes the staged rows into the master table, filling in the counts.
async fn merge(
    tx: &tokio_postgres::Transaction<'_>,
    layout: &Layout,
    opts: &LoadOptions,
    report: &mut FileReport,
    ascending: bool,
) -> Result<(), Error> {
    let merging =
        |e: tokio_postgres::Error| db::fail(&format!("merging into {}", layout.table), &e);
    // Under the load lock only a loader writes the table, so an empty table stays empty.
    let empty = tx
        .query_one(merge::is_empty(layout).as_str(), &[])
        .await
        .map_err(merging)?
        .get::<_, bool>(0);
    if empty && opts.initial_load {
        report.initial_load = true;
        report.inserted = initial_load(tx, layout, ascending).await?;
    } else if empty {
        // Nothing to compare against: every staged row is new.
        report.inserted = tx
            .execute(merge::insert_all(layout, ascending).as_str(), &[])
            .await
            .map_err(merging)?;
    } else {
        // Diff before write: the rows that are new or differ go to a small delta table,
        // then the changed ones are updated and the new ones inserted. Under the load lock
        // nothing else writes the table, so the three counts are exact.
        let differ = tx
            .execute(merge::build_delta(layout).as_str(), &[])
            .await
            .map_err(merging)?;
        report.unchanged = (report.records - report.repeated).saturating_sub(differ);
        report.updated = tx
            .execute(merge::update_changed(layout).as_str(), &[])
            .await
            .map_err(merging)?;
        report.inserted = tx
            .execute(merge::insert_new(layout).as_str(), &[])
            .await
            .map_err(merging)?;
    }
    Ok(())
}

/// Writes the journal row of a successful load and commits it with the data.
async fn commit(
    tx: tokio_postgres::Transaction<'_>,
    report: &mut FileReport,
    started: DateTime<Utc>,
) -> Result<(), Error> {
    let t = Instant::now();
    report.status = Status::Loaded;
    journal(&tx, report, started)
        .await
        .map_err(|e| db::fail("writing the load journal", &e))?;
    tx.commit().await.map_err(|e| db::fail("committing", &e))?;
    report.phases.push(Phase {
        name: "commit",
        seconds: t.elapsed().as_secs_f64(),
    });
    Ok(())
}

/// The initial-load merge into an empty table, from staging: the path taken when the
/// direct one ([`direct_initial_load`]) could not be, because the file repeats a key or
/// misses a parent. Drops the table's foreign keys and secondary indexes, inserts
/// everything in key order, rebuilds the indexes and re-adds the foreign keys.
///
/// All of it happens in the load's transaction under an ACCESS EXCLUSIVE lock, so nobody
/// ever sees the table without its constraints, and any failure — including a foreign key
/// that does not validate — rolls back to the empty table with every index and constraint
/// as it was. Measured with `make bench` (see README, Performance).
async fn initial_load(
    tx: &tokio_postgres::Transaction<'_>,
    layout: &Layout,
    sorted: bool,
) -> Result<u64, Error> {
    let what = initial_what(layout);
    let failed = |e: tokio_postgres::Error| db::fail(&what, &e);
    let Some(recreate) = detach(tx, layout).await? else {
        return Err(Error::Transient(format!(
            "{} gained rows during the initial load from another writer; nothing was \
                 loaded, rerun to merge normally",
            layout.table
        )));
    };
    let inserted = tx
        .execute(merge::insert_all(layout, sorted).as_str(), &[])
        .await
        .map_err(failed)?;
    reattach(tx, layout, &recreate)
        .await
        .map_err(|(create, e)| restore_failed(layout, &create, &e))?;
    Ok(inserted)
}

/// The initial load's fast path: COPY the file straight into the empty master, with its
/// foreign keys and secondary indexes dropped, then rebuild and re-validate them. No
/// staging table and no `INSERT … SELECT`: COPY writes the heap in batches.
///
/// Returns false, having changed nothing, when the table is not empty, or when the data
/// breaks an integrity rule the staged path deals with exactly (a repeated key, which it
/// resolves, or a missing parent or code, which it reports with line numbers). Everything
/// in between is undone by rolling back to a savepoint; the file is then read again.
async fn direct_initial_load(
    tx: &tokio_postgres::Transaction<'_>,
    input: &Input,
    layout: &'static Layout,
    opts: &LoadOptions,
    report: &mut FileReport,
) -> Result<bool, Error> {
    let what = initial_what(layout);
    let failed = |e: tokio_postgres::Error| db::fail(&what, &e);
    tx.batch_execute("SAVEPOINT cusip_initial")
        .await
        .map_err(failed)?;
    let phases = report.phases.len();
    let undo = |why: String| async move {
        tracing::info!(
            table = layout.table,
            "initial load: {why}; taking the staged path"
        );
        // Released too: a snapshot cannot be exported from inside a subtransaction.
        tx.batch_execute("ROLLBACK TO SAVEPOINT cusip_initial; RELEASE SAVEPOINT cusip_initial")
            .await
            .map_err(|e| db::fail(&initial_what(layout), &e))
    };
    let Some(recreate) = detach(tx, layout).await? else {
        undo(format!("{} is not empty", layout.table)).await?;
        return Ok(false);
    };

    let t = Instant::now();
    match stream_copy(tx, input, layout, opts, report, Target::Master, None).await {
        Ok(_) => {}
        Err(Error::Refused(message)) => {
            undo(message).await?;
            report.phases.truncate(phases);
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    report.phases.push(Phase {
        name: "read+parse+copy",
        seconds: t.elapsed().as_secs_f64(),
    });
    tracing::info!(file = %input.name, records = report.records, seconds = t.elapsed().as_secs_f64(), "copied into the empty table");

    let t = Instant::now();
    if let Err((create, e)) = reattach(tx, layout, &recreate).await {
        if db::classify(&e) != Exit::DataErr {
            return Err(restore_failed(layout, &create, &e));
        }
        undo(db::chain(&e)).await?;
        report.phases.truncate(phases);
        return Ok(false);
    }
    tx.batch_execute("RELEASE SAVEPOINT cusip_initial")
        .await
        .map_err(failed)?;
    report.phases.push(Phase {
        name: "checks",
        seconds: t.elapsed().as_secs_f64(),
    });
    report.initial_load = true;
    report.inserted = report.records;
    tracing::info!(file = %input.name, inserted = report.inserted, seconds = t.elapsed().as_secs_f64(), "indexes rebuilt and foreign keys re-validated");
    Ok(true)
}

fn initial_what(layout: &Layout) -> String {
    format!(
        "the initial load of {} (it needs the role to own the table; without --initial-load \
         the normal merge needs only INSERT/UPDATE/SELECT)",
        layout.table
    )
}

/// Locks the table exclusively and, if it is empty, drops its foreign keys and secondary
/// indexes, returning the statements that re-create them; `None` if it has rows.
async fn detach(
    tx: &tokio_postgres::Transaction<'_>,
    layout: &Layout,
) -> Result<Option<Vec<String>>, Error> {
    let what = initial_what(layout);
    let failed = |e: tokio_postgres::Error| db::fail(&what, &e);
    tx.batch_execute(&merge::lock_exclusive(layout))
        .await
        .map_err(failed)?;
    // Checked (again) under the exclusive lock: a writer outside the loader may have added
    // rows since any earlier look.
    let empty: bool = tx
        .query_one(merge::is_empty(layout).as_str(), &[])
        .await
        .map_err(failed)?
        .get(0);
    if !empty {
        return Ok(None);
    }
    let detached = tx
        .query(merge::detachable(layout).as_str(), &[])
        .await
        .map_err(failed)?;
    let mut recreate = Vec::with_capacity(detached.len());
    for row in &detached {
        let (kind, drop, create): (&str, &str, &str) = (row.get(0), row.get(1), row.get(2));
        tracing::debug!(
            table = layout.table,
            kind,
            statement = drop,
            "initial load: detaching"
        );
        tx.batch_execute(drop).await.map_err(failed)?;
        recreate.push(create.to_string());
    }
    // Index builds sort in memory up to this much, for this transaction only.
    tx.batch_execute("SET LOCAL maintenance_work_mem = '256MB'")
        .await
        .map_err(failed)?;
    Ok(Some(recreate))
}

/// Rebuilds the indexes, then re-adds the foreign keys (each re-validated by one set-based
/// join instead of a trigger call per row, and able to use the rebuilt indexes). On failure,
/// the statement that failed and why.
async fn reattach(
    tx: &tokio_postgres::Transaction<'_>,
    layout: &Layout,
    recreate: &[String],
) -> Result<(), (String, tokio_postgres::Error)> {
    let mut ordered: Vec<&String> = recreate.iter().collect();
    ordered.sort_by_key(|s| s.starts_with("ALTER"));
    for create in ordered {
        tx.batch_execute(create)
            .await
            .map_err(|e| (create.clone(), e))?;
    }
    tracing::info!(
        table = layout.table,
        rebuilt = recreate.len(),
        "initial load: indexes rebuilt and foreign keys re-validated"
    );
    Ok(())
}

fn restore_failed(layout: &Layout, create: &str, e: &tokio_postgres::Error) -> Error {
    db::fail(
        &format!(
            "restoring {} after the initial load: {create}",
            layout.table
        ),
        e,
    )
}

/// Where a COPY goes: the staging table (rows carry their file line) or, for an initial
/// load, the master table itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Stage,
    Master,
}

/// What a COPY into staging did.
struct Copied {
    /// Every key was greater than the one before.
    ascending: bool,
    /// Rows COPYed.
    staged: u64,
    /// The comparison stopped at this line because the keys stopped ascending; the COPY
    /// was aborted, so the transaction must roll back to before it.
    not_ascending: Option<u64>,
}

/// Streams the file through the parser into `COPY ... FROM STDIN (FORMAT binary)`.
async fn stream_copy(
    tx: &tokio_postgres::Transaction<'_>,
    input: &Input,
    layout: &'static Layout,
    opts: &LoadOptions,
    report: &mut FileReport,
    target: Target,
    comparer: Option<Comparer>,
) -> Result<Copied, Error> {
    let sql = match target {
        Target::Stage => merge::copy_in(layout),
        Target::Master => merge::copy_into_master(layout),
    };
    let sink = tx
        .copy_in::<_, Bytes>(sql.as_str())
        .await
        .map_err(|e| db::fail("starting COPY", &e))?;
    let mut sink = std::pin::pin!(sink);
    let produced = stream(
        input,
        layout,
        opts,
        report,
        Some(sink.as_mut()),
        target,
        comparer,
    )
    .await?;
    if let Some(Stop::NotAscending { line }) = produced.stopped {
        // Dropping the sink unfinished aborts the COPY.
        return Ok(Copied {
            ascending: false,
            staged: produced.staged,
            not_ascending: Some(line),
        });
    }
    let copied = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| copy_failure(&e, &produced.line_map, &input.name))?;
    if copied != produced.staged {
        return Err(Error::Internal(format!(
            "COPY took {copied} rows but {} were sent",
            produced.staged
        )));
    }
    Ok(Copied {
        ascending: produced.keys_ascending,
        staged: produced.staged,
        not_ascending: None,
    })
}

/// Parses, checks and encodes the whole input, feeding COPY when there is a sink and
/// discarding the rows when there is none (`--validate-only`).
async fn stream(
    input: &Input,
    layout: &'static Layout,
    opts: &LoadOptions,
    report: &mut FileReport,
    mut sink: Option<std::pin::Pin<&mut tokio_postgres::CopyInSink<Bytes>>>,
    target: Target,
    comparer: Option<Comparer>,
) -> Result<Produced, Error> {
    let opened = input.open()?;
    let reader = opened.reader;
    let (chunks, mut rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let pb = progress::bar(opts.progress, &input.name, input.size);
    let pb2 = pb.clone();
    let parse = opts.parse;
    // Only a local file's identity is its content hash; an S3 object's is its ETag, so
    // hashing its bytes would be work on the hot path for nothing. `--validate-only` loads
    // nothing, so it needs no identity either.
    let hash = sink.is_some() && input.local_path().is_some();
    let validate_only = sink.is_none();
    let producer = tokio::task::spawn_blocking(move || {
        let progress = |bytes, records| {
            pb2.set_position(bytes);
            pb2.set_message(format!("{records} records"));
        };
        let enc = match target {
            Target::Stage => RowEncoder::new(layout, parse.encoding),
            Target::Master => RowEncoder::new(layout, parse.encoding).without_line(),
        };
        if validate_only {
            return (
                copy::produce_rows(reader, enc, Discard, None, parse, chunks, &progress),
                None,
            );
        }
        let rows = |src: &mut dyn std::io::Read| {
            let out = copy::chunk_buffer();
            copy::produce_rows(src, enc, out, comparer, parse, chunks, &progress)
        };
        if !hash {
            let mut reader = reader;
            return (rows(&mut reader), None);
        }
        let mut fp = Fingerprint::new(reader);
        let produced = rows(&mut fp);
        // The parser stops early on bad data (20 problems, an over-long line, a record
        // after the trailer). Hash the rest too, so the digest still covers the whole
        // file: then a changed file is told from a bad one, and bad data is reported as
        // such (65) rather than as a change (75).
        if !produced.problems.is_empty() && !produced.abandoned && produced.read_error.is_none() {
            let _ = std::io::copy(&mut fp, &mut std::io::sink());
        }
        (produced, Some(fp.hex()))
    });

    let mut copy_error = None;
    while let Some(chunk) = rx.recv().await {
        if let Some(s) = sink.as_mut() {
            if let Err(e) = s.send(chunk).await {
                copy_error = Some(e);
                break;
            }
        }
    }
    drop(rx);
    let (mut produced, digest) = producer
        .await
        .map_err(|e| Error::Internal(format!("the parser thread failed: {e}")))?;
    progress::done(&pb);
    report.records = produced.records;
    report.bytes = produced.bytes;
    if let Some(r) = &opened.resumes {
        report.resumes = r.load(std::sync::atomic::Ordering::Relaxed);
    }

    if let Some(e) = copy_error {
        return Err(copy_failure(&e, &produced.line_map, &input.name));
    }
    if let Some(e) = &produced.read_error {
        return Err(
            match e
                .get_ref()
                .and_then(|i| i.downcast_ref::<crate::s3::StreamFailure>())
            {
                Some(f) => Error::with_exit(f.exit, f.message.clone()),
                None => Error::NoInput(format!(
                    "{}: read failed after {} bytes: {e}",
                    input.source, produced.bytes
                )),
            },
        );
    }
    match produced.stopped.take() {
        Some(Stop::Master(e)) => return Err(e),
        Some(stop @ Stop::NotAscending { .. }) => {
            // Read only in part, so neither hashed nor checked whole: the caller reads the
            // file again.
            produced.stopped = Some(stop);
            return Ok(produced);
        }
        None => {}
    }
    if let Some(digest) = digest {
        let first_read = report.fingerprint.get_or_insert_with(|| digest.clone());
        if *first_read != digest {
            return Err(Error::Transient(format!(
                    "{}: the file changed while it was being loaded (its sha256 differs from the one read first); \
                     nothing was loaded, rerun once it is complete",
                    input.source
                )));
        }
    }
    if !produced.problems.is_empty() {
        return Err(Error::Rejected(Rejection {
            file: input.name.clone(),
            problems: produced.problems.clone(),
            more: produced.more_problems,
        }));
    }
    Ok(produced)
}

/// Parses and checks one file without any database: the same problems and exit codes as a
/// load, except foreign keys and code-table membership, which only the database knows.
pub async fn validate_file(
    input: &Input,
    opts: &LoadOptions,
    report: &mut FileReport,
) -> Result<(), Error> {
    let t0 = Instant::now();
    let result = stream(
        input,
        input.file_type.layout(),
        opts,
        report,
        None,
        Target::Stage,
        None,
    )
    .await
    .map(|_| ());
    report.seconds = t0.elapsed().as_secs_f64();
    report.mb_per_s = if report.seconds > 0.0 {
        report.bytes as f64 / 1e6 / report.seconds
    } else {
        0.0
    };
    report.status = if result.is_ok() {
        Status::Valid
    } else {
        Status::Failed
    };
    if let Err(e) = &result {
        report.error = Some(e.to_string());
    }
    result
}

/// A COPY failure, with the server's row number translated back to the file line.
fn copy_failure(e: &tokio_postgres::Error, map: &LineMap, file: &str) -> Error {
    let mut err = db::fail("COPY into staging", e);
    if let (Some(message), Some(row)) = (err.message_mut(), copy_row(e)) {
        if let Some(line) = map.line_of(row) {
            message.push_str(&format!(" (COPY row {row} is {file} line {line})"));
        }
    }
    err
}

/// The row number in a server context like `COPY cusip_stage, line 12, column rate`.
fn copy_row(e: &tokio_postgres::Error) -> Option<u64> {
    let w = e.as_db_error()?.where_()?;
    let rest = &w[w.find(", line ")? + 7..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Resolves repeated keys (last wins) and finds foreign-key and code misses, all in staging,
/// except those a foreign key the database enforces covers. Returns whether it skipped any:
/// then a merge that fails on integrity must call [`find_misses`] to name the lines.
async fn check(
    tx: &tokio_postgres::Transaction<'_>,
    input: &Input,
    layout: &Layout,
    report: &mut FileReport,
    ascending: bool,
) -> Result<bool, Error> {
    let q = |what: &'static str| move |e: tokio_postgres::Error| db::fail(what, &e);
    tx.batch_execute(&merge::analyze_stage(layout))
        .await
        .map_err(q("analysing staging"))?;
    // Keys seen to ascend cannot repeat: no need to group a million of them to find none.
    if !ascending {
        resolve_repeats(tx, layout, report).await?;
    }
    let enforced = Enforced::read(tx, layout).await?;
    find_misses(tx, input, layout, Some(&enforced)).await?;
    Ok(enforced.any())
}

/// The foreign keys the database enforces on a table at every statement.
struct Enforced(Vec<(String, Vec<String>, Vec<String>)>);

impl Enforced {
    async fn read(
        tx: &tokio_postgres::Transaction<'_>,
        layout: &Layout,
    ) -> Result<Enforced, Error> {
        let rows = tx
            .query(merge::enforced_foreign_keys(layout).as_str(), &[])
            .await
            .map_err(|e| db::fail("reading the foreign keys", &e))?;
        Ok(Enforced(
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        ))
    }

    fn has(&self, parent: &str, cols: &[&str], parent_cols: &[&str]) -> bool {
        self.0
            .iter()
            .any(|(p, c, pc)| p == parent && c == cols && pc == parent_cols)
    }

    /// Whether these foreign keys cover every staged check of the layout.
    fn covers(&self, layout: &Layout) -> bool {
        let parent = match &layout.foreign_key {
            Some(fk) => self.has(fk.parent, fk.columns, fk.columns),
            None => true,
        };
        let codes = layout.columns.iter().all(|c| match c.code_table {
            Some(table) => self.has(table, &[c.name], &["code"]),
            None => true,
        });
        parent && codes
    }

    fn any(&self) -> bool {
        !self.0.is_empty()
    }
}

/// Counts the repeated keys (with examples) and keeps only the last record of each.
async fn resolve_repeats(
    tx: &tokio_postgres::Transaction<'_>,
    layout: &Layout,
    report: &mut FileReport,
) -> Result<(), Error> {
    let q = |what: &'static str| move |e: tokio_postgres::Error| db::fail(what, &e);
    tx.batch_execute(&merge::find_repeats(layout))
        .await
        .map_err(q("finding repeated keys"))?;
    let row = tx
        .query_one(merge::count_repeats().as_str(), &[])
        .await
        .map_err(q("counting repeated keys"))?;
    report.repeated = row.get::<_, i64>(0) as u64;
    if report.repeated > 0 {
        for r in tx
            .query(merge::repeat_examples(layout, EXAMPLES).as_str(), &[])
            .await
            .map_err(q("listing repeated keys"))?
        {
            report.repeated_examples.push(Repeat {
                key: r.get(0),
                lines: r.get(1),
            });
        }
        tx.execute(merge::drop_superseded(layout).as_str(), &[])
            .await
            .map_err(q("resolving repeated keys"))?;
    }
    Ok(())
}

/// Staged rows whose parent row or code is missing: refused with their lines.
/// With `enforced`, a check one of those foreign keys covers is left to the database.
async fn find_misses(
    tx: &tokio_postgres::Transaction<'_>,
    input: &Input,
    layout: &Layout,
    enforced: Option<&Enforced>,
) -> Result<(), Error> {
    let q = |what: &'static str| move |e: tokio_postgres::Error| db::fail(what, &e);
    let covered = |parent: &str, cols: &[&str], parent_cols: &[&str]| {
        enforced.is_some_and(|en| en.has(parent, cols, parent_cols))
    };
    let mut problems = Vec::new();
    if let (Some(sql), Some(fk)) = (
        merge::foreign_key_misses(layout, EXAMPLES),
        &layout.foreign_key,
    ) {
        if covered(fk.parent, fk.columns, fk.columns) {
            tracing::debug!(
                table = layout.table,
                parent = fk.parent,
                "left to the foreign key"
            );
        } else {
            let rows = tx
                .query(sql.as_str(), &[])
                .await
                .map_err(q("checking foreign keys"))?;
            let total = rows.first().map_or(0, |r| r.get::<_, i64>(2));
            for r in &rows {
                let line: i64 = r.get(0);
                let key: String = r.get(1);
                problems.push(Problem::at(
                    line as u64,
                    Some(&fk.columns.join("+")),
                    format!(
                        "\"{key}\" has no row in {} ({total} record{} in all)",
                        fk.parent,
                        if total == 1 { "" } else { "s" }
                    ),
                ));
            }
        }
    }
    for col in layout.columns {
        let Some(sql) = merge::code_misses(col, EXAMPLES) else {
            continue;
        };
        if covered(col.code_table.unwrap_or_default(), &[col.name], &["code"]) {
            continue;
        }
        let rows = tx
            .query(sql.as_str(), &[])
            .await
            .map_err(q("checking codes"))?;
        let total = rows.first().map_or(0, |r| r.get::<_, i64>(2));
        for r in &rows {
            let line: i64 = r.get(0);
            let value: String = r.get(1);
            problems.push(Problem::at(
                line as u64,
                Some(col.name),
                format!(
                    "\"{value}\" is not a known code in {} ({total} record{} in all)",
                    col.code_table.unwrap_or("?"),
                    if total == 1 { "" } else { "s" }
                ),
            ));
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.line);
        return Err(Error::Rejected(Rejection {
            file: input.name.clone(),
            problems,
            more: false,
        }));
    }
    Ok(())
}

/// Whether this exact source and identity already loaded successfully.
async fn already_loaded(
    client: &impl GenericClient,
    source: &str,
    fingerprint: &str,
) -> Result<bool, Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM load_journal WHERE source = $1 AND fingerprint = $2 AND status = 'loaded')",
            &[&source, &fingerprint],
        )
        .await
        .map_err(|e| db::fail("reading the load journal", &e))?;
    Ok(row.get(0))
}

/// Writes the journal row for this attempt (inside the load's transaction on success).
async fn journal(
    c: &impl GenericClient,
    r: &FileReport,
    started: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    let status = match r.status {
        Status::Loaded => "loaded",
        Status::Interrupted => "interrupted",
        Status::AlreadyLoaded => "already loaded",
        _ => "failed",
    };
    let n = |v: u64| v as i64;
    c.execute(
        "INSERT INTO load_journal (file_name, source, file_type, bytes, fingerprint, started_at, finished_at, \
         records_read, inserted, updated, unchanged, repeated_keys, status, error, loader_version) \
         VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp(), $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &r.file,
            &r.source,
            &r.file_type,
            &n(r.bytes),
            &r.fingerprint,
            &started,
            &n(r.records),
            &n(r.inserted),
            &n(r.updated),
            &n(r.unchanged),
            &n(r.repeated),
            &status,
            &r.error,
            &env!("CARGO_PKG_VERSION"),
        ],
    )
    .await
    .map(|_| ())
}

/// Records an interrupted attempt, best effort, once the load future has been dropped.
///
/// The cancel request sent just before travels on its own connection and may land on this
/// INSERT instead of the statement it was meant for; a cancelled write is simply retried.
pub async fn journal_interrupted(client: &Client, report: &FileReport, started: DateTime<Utc>) {
    for _ in 0..5 {
        match journal(client, report, started).await {
            Ok(()) => return,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => {
                tracing::warn!(
                    "could not record the interrupted attempt in load_journal: {}",
                    db::chain(&e)
                );
                return;
            }
        }
    }
}
