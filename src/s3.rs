//! S3 objects as a byte stream for the same parser: listing, one-line errors, and a body
//! that resumes where it broke, pinned to the object's ETag.
//!
//! The download runs as an async task feeding a bounded channel; the parser's blocking
//! thread reads it through `S3Reader`, so an object is never held whole in memory and never
//! written to disk.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::StalledStreamProtectionConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{chain, Error, Exit};

/// How to reach S3 and how hard to try.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub force_path_style: bool,
    /// `--net-timeout` (zero: the SDK's own defaults).
    pub net_timeout: Duration,
}

/// How long the SDK measures a body's throughput before its grace period starts: a stalled
/// body is noticed after this window plus the grace period.
const STALL_WINDOW: Duration = Duration::from_secs(1);

/// Builds a client from the standard chain (env keys, `AWS_PROFILE` incl. SSO, ECS task
/// role, instance metadata); the SDK itself honours `AWS_ENDPOINT_URL(_S3)`.
///
/// `--net-timeout` T bounds each connection's silence with what the SDK offers: a response
/// must begin within T of its request (read timeout), a connection must open within T (or
/// the SDK's shorter default), and a body that stops delivering is cut after T (stalled
/// stream protection: the grace period is T less the window the SDK measures over). A cut
/// body is then resumed ([`Object::fetch`]), within a bound of its own.
pub async fn client(opts: &S3Options) -> Client {
    let shared = crate::aws::config(opts.region.clone()).await;
    let mut b = aws_sdk_s3::config::Builder::from(&shared);
    if let Some(url) = &opts.endpoint_url {
        b = b.endpoint_url(url);
    }
    if opts.force_path_style {
        b = b.force_path_style(true);
    }
    let t = opts.net_timeout;
    if !t.is_zero() {
        let connect = shared
            .timeout_config()
            .and_then(|c| c.connect_timeout())
            .map_or(t, |c| c.min(t));
        b = b
            .timeout_config(
                TimeoutConfig::builder()
                    .read_timeout(t)
                    .connect_timeout(connect)
                    .build(),
            )
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .grace_period(t.saturating_sub(STALL_WINDOW).max(STALL_WINDOW))
                    .build(),
            );
    }
    Client::from_conf(b.build())
}

/// The last part of a key or path: the file's name (`pif/CED01-15R.PIP` → `CED01-15R.PIP`).
pub fn basename(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// `s3://bucket/key`, as reports and the journal show an object.
pub fn uri(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// One object under a prefix.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
}

/// Every object under `prefix`, following pagination.
pub async fn list(client: &Client, bucket: &str, prefix: &str) -> Result<Vec<Listed>, Error> {
    let mut out = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| failure(&e, bucket, None, "listing"))?;
        for o in page.contents() {
            if let Some(key) = o.key() {
                out.push(Listed {
                    key: key.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Size and ETag of one object; a missing key is told apart from a missing bucket.
pub async fn head(client: &Client, bucket: &str, key: &str) -> Result<Listed, Error> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(h) => Ok(Listed {
            key: key.to_string(),
            size: h.content_length().unwrap_or(0).max(0) as u64,
            etag: h.e_tag().unwrap_or_default().trim_matches('"').to_string(),
        }),
        Err(e) if status(&e) == Some(404) => {
            // HEAD answers 404 without a body for both; ask the bucket.
            match client.head_bucket().bucket(bucket).send().await {
                Err(be) if status(&be) == Some(404) => {
                    Err(Error::NoInput(format!("S3 bucket {bucket} does not exist")))
                }
                _ => Err(Error::NoInput(format!(
                    "{}: no such key in bucket {bucket}",
                    uri(bucket, key)
                ))),
            }
        }
        Err(e) => Err(failure(&e, bucket, Some(key), "reading")),
    }
}

fn status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// What to do about expired credentials: the same words wherever the loader meets them.
fn relogin(profile: &str) -> String {
    format!("with an SSO profile run `aws sso login --profile {profile}`")
}

/// The answer refuses the credentials: a 403, or an error code that says they are expired
/// or not valid.
fn refused<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    status(e) == Some(403)
        || matches!(
            e.code(),
            Some(
                "ExpiredToken"
                    | "ExpiredTokenException"
                    | "TokenRefreshRequired"
                    | "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
            )
        )
}

/// One actionable line, and an exit code, for an S3 failure.
pub fn failure<E>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    bucket: &str,
    key: Option<&str>,
    doing: &str,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let what = match key {
        Some(k) => uri(bucket, k),
        None => format!("s3://{bucket}"),
    };
    let code = e.code().unwrap_or("");
    let st = status(e);
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "<profile>".into());
    match (code, st) {
        ("NoSuchBucket", _) => Error::NoInput(format!("S3 bucket {bucket} does not exist")),
        ("NoSuchKey", _) | (_, Some(404)) => Error::NoInput(format!("{what}: no such key")),
        ("ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired", _) => Error::Denied(format!(
                "{doing} {what}: the AWS credentials have expired ({code}); {}",
                relogin(&profile)
            )),
        ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AllAccessDisabled", _) | (_, Some(403)) => Error::Denied(format!(
                "{doing} {what}: access denied ({}). The loader needs s3:ListBucket on arn:aws:s3:::{bucket}, \
                 s3:GetObject on arn:aws:s3:::{bucket}/*, and kms:Decrypt on the key if the bucket uses \
                 SSE-KMS; a bucket in another account needs both its bucket policy and this role's \
                 policy to allow it",
                if code.is_empty() { "HTTP 403" } else { code }
            )),
        ("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException", _) | (_, Some(301)) => {
            let region = e
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .map(|r| format!(" it is in {r};"))
                .unwrap_or_default();
            Error::Config(format!(
                "{doing} {what}: the bucket is in another region;{region} set --s3-region / CUSIP_S3_REGION"
            ))
        }
        _ => match e {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                let text = chain(e);
                if text.to_ascii_lowercase().contains("credential") || text.to_ascii_lowercase().contains("token") {
                    Error::Denied(format!(
                        "{doing} {what}: no usable AWS credentials ({text}); {}",
                        crate::aws::credential_hint(&|k| std::env::var(k).ok())
                    ))
                } else {
                    Error::Transient(format!("{doing} {what}: S3 endpoint unreachable: {text}"))
                }
            }
            SdkError::ConstructionFailure(_) => Error::Config(format!("{doing} {what}: {}", chain(e))),
            _ => Error::with_exit(
                if st.is_some_and(|s| s >= 500) { Exit::TempFail } else { Exit::Software },
                format!("{doing} {what}: {}", describe(e)),
            ),
        },
    }
}

/// An SDK error on one line: `Code: message (HTTP status)` when the server answered with an
/// S3 error, else its cause chain (never the SDK's debug rendering of the error).
fn describe<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (e.code(), status(e)) {
        (Some(code), Some(s)) if !code.is_empty() => {
            format!("{code}: {} (HTTP {s})", e.message().unwrap_or(""))
        }
        // A HEAD error, or a body that is not an S3 error document: the status says it all.
        (_, Some(s)) => {
            let reason = match s {
                500 => " Internal Server Error",
                502 => " Bad Gateway",
                503 => " Service Unavailable",
                504 => " Gateway Timeout",
                _ => "",
            };
            format!("HTTP {s}{reason}")
        }
        (_, None) => chain(e),
    }
}

/// An error carried through `io::Error` from the download task to the parser, keeping its
/// exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StreamFailure {
    pub message: String,
    pub exit: Exit,
}

fn io_failure(message: String, exit: Exit) -> io::Error {
    io::Error::other(StreamFailure { message, exit })
}

/// Chunks in flight between the download task and the parser.
const DEPTH: usize = 16;

/// How an object is fetched.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Resumes allowed per object (single stream) or per part (parallel).
    pub max_resumes: u32,
    /// Bytes per ranged GET when fetching in parallel.
    pub part_size: u64,
    /// Ranged GETs in flight; 1 means one stream for the whole object.
    pub concurrency: usize,
    /// `--net-timeout`: it bounds how long a request of a download under way may wait for
    /// its answer (zero: no bound).
    pub net_timeout: Duration,
}

/// Starts streaming `bucket/key` and returns a blocking reader over it. `resumes` counts
/// mid-stream restarts for the report.
pub fn open(
    client: Client,
    bucket: String,
    key: String,
    etag: String,
    size: u64,
    transfer: Transfer,
    resumes: Arc<AtomicU32>,
) -> S3Reader {
    let (tx, rx) = mpsc::channel(DEPTH);
    let obj = Object {
        client,
        bucket,
        key,
        etag,
        size,
        max_resumes: transfer.max_resumes,
        net_timeout: transfer.net_timeout,
        resumes,
    };
    tokio::spawn(async move {
        let result = if transfer.concurrency > 1 && size > transfer.part_size {
            parallel(&obj, transfer, &tx).await
        } else {
            obj.fetch(0, size, Out::Channel(&tx)).await
        };
        if let Err(e) = result {
            let _ = tx.send(Err(e)).await;
        }
    });
    S3Reader {
        rx,
        current: Bytes::new(),
    }
}

struct Object {
    client: Client,
    bucket: String,
    key: String,
    etag: String,
    size: u64,
    max_resumes: u32,
    net_timeout: Duration,
    resumes: Arc<AtomicU32>,
}

/// Where fetched bytes go: straight to the parser, or into a part's buffer.
enum Out<'a> {
    Channel(&'a mpsc::Sender<io::Result<Bytes>>),
    Buffer(&'a mut Vec<Bytes>),
}

/// The consumer went away: the load was abandoned, stop quietly.
fn abandoned() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the load was abandoned")
}

impl Object {
    /// Fetches bytes `start..end`, resuming from the last byte received when the body breaks,
    /// every request pinned to the ETag so a replaced object is never mixed in.
    async fn fetch(&self, start: u64, end: u64, mut out: Out<'_>) -> io::Result<()> {
        let what = uri(&self.bucket, &self.key);
        let mut offset = start;
        let mut tries = 0u32;
        // Why the download last broke, for the message if a resume then hears nothing.
        let mut last_break = String::new();
        loop {
            let mut req = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .if_match(format!("\"{}\"", self.etag));
            if offset == 0 && end == self.size {
                // Whole-object checksum validation where the server stored one.
                req = req.checksum_mode(ChecksumMode::Enabled);
            } else {
                req = req.range(format!("bytes={offset}-{}", end - 1));
            }
            let sent = match self.answer_within(start, tries) {
                // Once the download has begun, every request must be answered within its
                // bound: the path may have died, and the SDK's read timeout times its
                // retries would outlast twice --net-timeout. No answer at all: give up, a
                // further resume would meet the same silence.
                Some(within) => match tokio::time::timeout(within, req.send()).await {
                    Ok(r) => r,
                    Err(_) => {
                        let why = match tries {
                            0 => format!("the request for the part from byte {start}"),
                            _ => format!("{last_break}; a resume"),
                        };
                        return Err(io_failure(
                            format!(
                                "{what}: the download stopped answering at byte {offset} of {} \
                                 ({why} had no answer within {} s); nothing was loaded, and a \
                                 rerun is safe",
                                self.size,
                                within.as_secs_f64()
                            ),
                            Exit::TempFail,
                        ));
                    }
                },
                None => req.send().await,
            };
            let broke = match sent {
                Ok(resp) => {
                    let mut body = resp.body;
                    loop {
                        match body.next().await {
                            Some(Ok(b)) => {
                                offset += b.len() as u64;
                                match &mut out {
                                    Out::Channel(tx) => {
                                        tx.send(Ok(b)).await.map_err(|_| abandoned())?
                                    }
                                    Out::Buffer(v) => v.push(b),
                                }
                            }
                            Some(Err(e)) => break chain(&e),
                            None if offset < end => {
                                break format!("body ended at byte {offset} of {end}")
                            }
                            None => return Ok(()),
                        }
                    }
                }
                Err(e) if status(&e) == Some(412) => {
                    return Err(io_failure(
                        format!(
                            "{what} changed during the load (its ETag is no longer {}); nothing was loaded, \
                             rerun to load the new object",
                            self.etag
                        ),
                        Exit::TempFail,
                    ));
                }
                // The object was found (listed or HEADed, with this ETag) before its download
                // began, so a 404 now means it was deleted since. Refuse at once, as for a
                // replaced object: resuming would only meet the same 404 `max_resumes` times.
                // 75, not 66: a re-delivery (delete, then put) loads on a rerun, and an object
                // that stays gone is reported by the rerun's listing or HEAD (66).
                Err(e) if status(&e) == Some(404) => {
                    return Err(io_failure(
                        format!(
                            "{what} was deleted during the load, at byte {offset} of {}: {}; \
                             nothing was loaded, rerun once the object is back",
                            self.size,
                            describe(&e)
                        ),
                        Exit::TempFail,
                    ));
                }
                // The first request was let in, so a refusal now means the credentials
                // expired (or were revoked) during the download: retrying with them cannot
                // help. 77, as for expired credentials at the start.
                Err(e) if (tries > 0 || start > 0) && refused(&e) => {
                    let profile =
                        std::env::var("AWS_PROFILE").unwrap_or_else(|_| "<profile>".into());
                    let doing = if tries > 0 { "resuming" } else { "continuing" };
                    return Err(io_failure(
                        format!(
                            "{doing} {what} at byte {offset} of {}: access denied ({}) after the \
                             download had begun: the AWS credentials have most likely expired; {}, \
                             then rerun (nothing was loaded)",
                            self.size,
                            describe(&e),
                            relogin(&profile)
                        ),
                        Exit::NoPerm,
                    ));
                }
                Err(e) if offset == start && tries == 0 => {
                    let err = failure(&e, &self.bucket, Some(&self.key), "reading");
                    return Err(io_failure(err.to_string(), err.exit()));
                }
                // A resume that failed even after the SDK's own retries (5xx, throttling):
                // counts as one more break.
                Err(e) => describe(&e),
            };
            if offset >= end {
                return Ok(()); // every byte arrived before the connection broke
            }
            let stall = stalled(&broke);
            let broke = match stall {
                true => format!("no data for {} s ({broke})", self.net_timeout.as_secs()),
                false => broke,
            };
            last_break.clone_from(&broke);
            tries += 1;
            if tries > self.max_resumes {
                let (failed, rerun) = match stall {
                    true => (
                        "stopped answering",
                        "nothing was loaded, and a rerun is safe",
                    ),
                    false => ("failed", "nothing was loaded"),
                };
                return Err(io_failure(
                    format!(
                        "{what}: the download {failed} at byte {offset} after {} resume{}: \
                         {broke}; {rerun}",
                        self.max_resumes,
                        if self.max_resumes == 1 { "" } else { "s" }
                    ),
                    Exit::TempFail,
                ));
            }
            self.resumes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(object = %what, offset, attempt = tries, "download broke ({broke}); resuming from byte {offset}");
            // A pause before asking again spares a server that failed; a stalled stream is
            // a connection that went quiet, and its resume is better asked for at once.
            if !stall {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
            }
        }
    }

    /// How long a request of a download already under way may wait for its answer, SDK
    /// retries included: a resume a quarter of `--net-timeout` (at least a second), a further
    /// part `--net-timeout`. With the SDK cutting a stalled body after `--net-timeout`, a dead
    /// path ends the download within about 1.25 times it, and a part asked for just before
    /// the path died within about once; a live S3 answers in milliseconds. The object's
    /// first request is left to the SDK (its read timeout is `--net-timeout` too).
    fn answer_within(&self, start: u64, tries: u32) -> Option<Duration> {
        let t = self.net_timeout;
        match (t.is_zero(), tries, start) {
            (true, _, _) | (false, 0, 0) => None,
            (false, 0, _) => Some(t),
            (false, _, _) => Some((t / 4).max(Duration::from_secs(1))),
        }
    }
}

/// The SDK's stalled stream protection cut the body (its message: "minimum throughput was
/// specified at 1 B/s, but throughput of 0 B/s was observed"): the words for the message.
fn stalled(broke: &str) -> bool {
    broke.contains("throughput")
}

/// Fetches parts concurrently and hands them to the parser in order. At most `concurrency`
/// parts are in flight or waiting, so memory stays under `concurrency × part_size`.
async fn parallel(
    obj: &Object,
    t: Transfer,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    use futures_util::stream::{FuturesOrdered, StreamExt};
    let part = t.part_size.max(1);
    let mut ranges =
        (0..obj.size.div_ceil(part)).map(|i| (i * part, ((i + 1) * part).min(obj.size)));
    let fetch_part = |(s, e): (u64, u64)| async move {
        let mut buf = Vec::new();
        obj.fetch(s, e, Out::Buffer(&mut buf)).await.map(|_| buf)
    };
    let mut inflight = FuturesOrdered::new();
    for r in ranges.by_ref().take(t.concurrency) {
        inflight.push_back(fetch_part(r));
    }
    while let Some(done) = inflight.next().await {
        for b in done? {
            tx.send(Ok(b)).await.map_err(|_| abandoned())?;
        }
        if let Some(r) = ranges.next() {
            inflight.push_back(fetch_part(r));
        }
    }
    Ok(())
}

/// The parser's side of a download.
pub struct S3Reader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
