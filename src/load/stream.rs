//! The file, through the parser, into `COPY … FROM STDIN (FORMAT binary)`.
//!
//! The parser runs on a blocking thread and hands encoded chunks over a bounded channel to
//! the async COPY sink, so parsing and COPY overlap in constant memory. What was read is
//! returned whatever the outcome, so a refused file is still reported with its records.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::{CopyInSink, Transaction};

use crate::compare::{Comparer, Repeats, Stop};
use crate::convert::Discard;
use crate::copy::{self, LineMap, ParseOptions, Produced, RowEncoder, CHANNEL_DEPTH};
use crate::db;
use crate::error::{Error, Rejection};
use crate::layout::Layout;
use crate::progress;
use crate::source::{Fingerprint, Hashing, Input};
use crate::sql;

/// Where a COPY goes: the staging table (rows carry their file line) or, for an initial
/// load, the master table itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Stage,
    Master,
}

/// What reading the file came to, whatever the outcome.
#[derive(Debug, Default, Clone, Copy)]
pub struct Read {
    /// Data records (trailer and blank lines excluded).
    pub records: u64,
    pub bytes: u64,
    /// Times an S3 download resumed after breaking mid-stream.
    pub resumes: u32,
    /// sha256 of the whole content, when all of it was read: the file's identity in the
    /// journal whatever its source.
    pub sha256: Option<[u8; 32]>,
}

/// What a COPY took.
#[derive(Debug, Clone)]
pub struct Copied {
    /// Every key was greater than the one before.
    pub ascending: bool,
    /// Rows COPYed.
    pub staged: u64,
    /// The comparison stopped at this line because the keys stopped ascending; the COPY
    /// was aborted, so the transaction must roll back to before it.
    pub not_ascending: Option<u64>,
    /// The keys the comparison with the master saw repeat (with a comparer only).
    pub repeats: Option<Repeats>,
}

/// How a file is read: parse options, whether to draw a progress bar, and for a local file
/// what its identity was taken from (the file must still be that when it has been read).
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub parse: ParseOptions,
    pub progress: bool,
    pub hashing: Option<&'a Hashing>,
}

/// Streams the file into a COPY of `layout`'s table (or staging), with the comparer when
/// there is one.
pub async fn copy_in(
    tx: &Transaction<'_>,
    input: &Input,
    layout: &'static Layout,
    how: Reading<'_>,
    target: Target,
    comparer: Option<Comparer>,
) -> (Read, Result<Copied, Error>) {
    let sql = match target {
        Target::Stage => sql::copy_in(layout),
        Target::Master => sql::copy_into_master(layout),
    };
    let sink = match tx.copy_in::<_, Bytes>(sql.as_str()).await {
        Ok(s) => s,
        Err(e) => return (Read::default(), Err(db::fail("starting COPY", &e))),
    };
    let mut sink = std::pin::pin!(sink);
    let (read, produced) = stream(input, layout, how, Some(sink.as_mut()), target, comparer).await;
    let produced = match produced {
        Ok(p) => p,
        Err(e) => return (read, Err(e)),
    };
    if let Some(Stop::NotAscending { line }) = produced.stopped {
        // Dropping the sink unfinished aborts the COPY.
        return (
            read,
            Ok(Copied {
                ascending: false,
                staged: produced.staged,
                not_ascending: Some(line),
                repeats: None,
            }),
        );
    }
    let copied = match sink.as_mut().finish().await {
        Ok(n) => n,
        Err(e) => return (read, Err(copy_failure(&e, &produced.line_map, &input.name))),
    };
    if copied != produced.staged {
        return (
            read,
            Err(Error::Internal(format!(
                "COPY took {copied} rows but {} were sent",
                produced.staged
            ))),
        );
    }
    (
        read,
        Ok(Copied {
            ascending: produced.keys_ascending,
            staged: produced.staged,
            not_ascending: None,
            repeats: produced.repeats,
        }),
    )
}

/// Parses, checks and encodes the whole input, feeding COPY when there is a sink and
/// discarding the rows when there is none (`--validate-only`).
pub async fn stream(
    input: &Input,
    layout: &'static Layout,
    how: Reading<'_>,
    mut sink: Option<Pin<&mut CopyInSink<Bytes>>>,
    target: Target,
    comparer: Option<Comparer>,
) -> (Read, Result<Produced, Error>) {
    let opened = match input.open() {
        Ok(o) => o,
        Err(e) => return (Read::default(), Err(e)),
    };
    let reader = opened.reader;
    let (chunks, mut rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let pb = progress::bar(how.progress, &input.name, input.size);
    let pb2 = (*pb).clone();
    let parse = how.parse;
    // The content hash is the file's identity in the journal, local or S3 (so the same file
    // from either is one file); it runs on the parser thread as the bytes pass. An S3
    // object's ETag only identifies it before it is read. `--validate-only` loads nothing,
    // so it needs no identity.
    let hash = sink.is_some();
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
        (produced, Some(fp.digest()))
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
    let (mut produced, digest) = match producer.await {
        Ok(p) => p,
        Err(e) => {
            return (
                Read::default(),
                Err(Error::Internal(format!("the parser thread failed: {e}"))),
            )
        }
    };
    drop(pb);
    let read = Read {
        records: produced.records,
        bytes: produced.bytes,
        resumes: opened
            .resumes
            .as_ref()
            .map_or(0, |r| r.load(std::sync::atomic::Ordering::Relaxed)),
        // Only a whole read is the file's identity.
        sha256: digest.filter(|_| {
            copy_error.is_none()
                && produced.read_error.is_none()
                && produced.stopped.is_none()
                && !produced.abandoned
        }),
    };
    // What the file was identified by: its digest, from its own thread (done long before
    // this), and whether it has been written to or replaced since it was opened.
    let first = match (&digest, how.hashing) {
        (Some(_), Some(h)) => Some(h.wait().await.map(|sha| (sha, h.changed()))),
        _ => None,
    };
    let outcome = (|| {
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
                // Read only in part, so neither hashed nor checked whole: the caller reads
                // the file again.
                produced.stopped = Some(stop);
                return Ok(());
            }
            None => {}
        }
        if let (Some(digest), Some(first)) = (&digest, first) {
            let (sha, changed) = first?;
            if changed || sha != crate::source::hex(digest) {
                return Err(Error::Transient(format!(
                    "{}: the file changed while it was being loaded (it was written to or replaced \
                     since it was opened); nothing was loaded, rerun once it is complete",
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
        Ok(())
    })();
    (read, outcome.map(|()| produced))
}

/// A COPY failure, with the server's row number translated back to the file line.
pub fn copy_failure(e: &tokio_postgres::Error, map: &LineMap, file: &str) -> Error {
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
