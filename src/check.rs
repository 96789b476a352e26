//! `--check`: a pre-flight that loads nothing and writes nothing.
//!
//! A scheduler's load fails at the worst time (the load window) for reasons that were true
//! all day: a rotated password, a missing grant, a schema an upgrade did not apply, a bucket
//! renamed. The old service had health endpoints for this; this is the batch job's
//! equivalent, run as a step before the load and after every deployment. It connects exactly
//! as a load does (settings, secret, TLS, encoding), then reads only the catalog, in a
//! read-only transaction: rights are asked of `has_*_privilege`, never tried.
//!
//! Each check is one line saying what was checked and, on failure, what to do; the exit code
//! is the first failure's, with a load's meanings (69 no server, 77 rights, 78 schema or
//! configuration), so the wrapper and the alerts need nothing new.

mod rights;
mod schema;

use std::io::{self, Write};

use serde::Serialize;
use tokio_postgres::Client;

use crate::cli::OutputFormat;
use crate::db;
use crate::error::Error;
use crate::plan::{Inputs, Plan};
use crate::s3;
use crate::secret;

use schema::Found;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Failed,
    /// An earlier check it depends on failed (no connection).
    NotRun,
    /// Nothing to check (no file source configured).
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Verdict,
    /// The exit code this failure means; `None` unless it failed.
    pub exit_code: Option<i32>,
    pub message: String,
}

impl Check {
    fn ok(name: &'static str, message: String) -> Check {
        Check {
            name,
            status: Verdict::Ok,
            exit_code: None,
            message,
        }
    }

    fn failed(name: &'static str, e: &Error) -> Check {
        Check {
            name,
            status: Verdict::Failed,
            exit_code: Some(e.exit().code()),
            message: e.to_string(),
        }
    }

    fn other(name: &'static str, status: Verdict, message: &str) -> Check {
        Check {
            name,
            status,
            exit_code: None,
            message: message.to_string(),
        }
    }

    fn from(name: &'static str, r: Result<String, Error>) -> Check {
        match r {
            Ok(m) => Check::ok(name, m),
            Err(e) => Check::failed(name, &e),
        }
    }
}

/// What `--check` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    /// The first failed check's exit code, else 0.
    pub exit_code: i32,
    pub checks: Vec<Check>,
    /// The first failed check's message (main prints it on stderr, as for a load).
    pub error: Option<String>,
}

impl Report {
    fn new(checks: Vec<Check>) -> Report {
        let first = checks.iter().find(|c| c.status == Verdict::Failed);
        Report {
            ok: first.is_none(),
            exit_code: first.and_then(|c| c.exit_code).unwrap_or(0),
            error: first.map(|c| format!("--check: {}: {}", c.name, c.message)),
            checks,
        }
    }

    pub fn write(&self, format: OutputFormat, out: &mut dyn Write) -> io::Result<()> {
        match format {
            OutputFormat::Json => {
                serde_json::to_writer_pretty(&mut *out, self)?;
                writeln!(out)
            }
            OutputFormat::Table => {
                for c in &self.checks {
                    let label = match c.status {
                        Verdict::Ok => "ok",
                        Verdict::Failed => "FAIL",
                        Verdict::NotRun | Verdict::Skipped => "skip",
                    };
                    // One line each, even for a message that carries a list.
                    let message = c.message.replace('\n', "; ");
                    writeln!(out, "{label:<4} {:<9} {message}", c.name)?;
                }
                Ok(())
            }
        }
    }
}

/// Runs every check. The database's come in order (connection, schema, rights); the file
/// source does not need the database and is checked whatever happened to it.
pub async fn run(plan: &Plan, source_error: Option<&str>) -> Report {
    let mut checks = Vec::new();
    match connect(plan).await {
        Err(e) => {
            checks.push(Check::failed("database", &e));
            for name in ["schema", "rights"] {
                checks.push(Check::other(
                    name,
                    Verdict::NotRun,
                    "not run: no database connection",
                ));
            }
        }
        Ok((mut client, message)) => {
            checks.push(Check::ok("database", message));
            match client.build_transaction().read_only(true).start().await {
                Err(e) => {
                    let e = db::fail("starting a read-only transaction", &e);
                    checks.push(Check::failed("schema", &e));
                    checks.push(Check::other(
                        "rights",
                        Verdict::NotRun,
                        "not run: the connection failed",
                    ));
                }
                Ok(tx) => {
                    let found = match Found::read(&tx).await {
                        Ok(f) => f,
                        Err(e) => {
                            checks.push(Check::failed("schema", &e));
                            checks.push(Check::other(
                                "rights",
                                Verdict::NotRun,
                                "not run: the catalog could not be read",
                            ));
                            return Report::new(finish(checks, plan, source_error).await);
                        }
                    };
                    checks.push(Check::from("schema", schema::check(&tx, &found).await));
                    checks.push(if found.relations.is_empty() {
                        Check::other(
                            "rights",
                            Verdict::NotRun,
                            "not run: none of the loader's tables is there to hold rights on",
                        )
                    } else {
                        Check::from("rights", rights::check(&tx, &found, plan).await)
                    });
                    // Read-only: ending it either way changes nothing.
                    let _ = tx.rollback().await;
                }
            }
        }
    }
    Report::new(finish(checks, plan, source_error).await)
}

async fn finish(mut checks: Vec<Check>, plan: &Plan, source_error: Option<&str>) -> Vec<Check> {
    checks.push(source(plan, source_error).await);
    checks
}

/// Connects exactly as a load does; says where, as whom, to what and how.
async fn connect(plan: &Plan) -> Result<(Client, String), Error> {
    let mut cfg = plan.db.clone();
    let mut via = String::new();
    if let Some((arn, region)) = &plan.secret {
        secret::apply(&mut cfg, arn, region.clone()).await?;
        via = format!("; settings from secret {arn}");
    }
    tracing::info!(target = %cfg.display_target(), "connecting");
    let client = db::connect(&cfg).await?;
    db::check_encoding(&client).await?;
    let row = client
        .query_one(
            "SELECT current_user::text, current_setting('server_version'), \
                    (SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl)",
            &[],
        )
        .await
        .map_err(|e| db::fail("reading the server version", &e))?;
    let (user, version, tls): (String, String, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    let version = version.split_whitespace().next().unwrap_or_default();
    let tls = match tls {
        Some(v) => format!("TLS {v}, sslmode={}", cfg.sslmode),
        None => format!("no TLS, sslmode={}", cfg.sslmode),
    };
    Ok((
        client,
        format!(
            "connected to {}:{}/{} as {user} (PostgreSQL {version}, {tls}{via})",
            cfg.host, cfg.port, cfg.dbname
        ),
    ))
}

/// The file source a load with this configuration would read: an S3 prefix that must be
/// listable, or a directory that must be readable.
async fn source(plan: &Plan, source_error: Option<&str>) -> Check {
    if let Some(m) = source_error {
        return Check::failed("source", &Error::Config(m.to_string()));
    }
    let (bucket, prefix) =
        match &plan.inputs {
            Inputs::S3Date { bucket, prefix, .. } => (bucket, prefix.clone()),
            Inputs::S3Key { bucket, key } => (
                bucket,
                key.rsplit_once('/')
                    .map(|(dir, _)| format!("{dir}/"))
                    .unwrap_or_default(),
            ),
            Inputs::DirDate { dir, .. } => {
                return Check::from("source", directory(dir));
            }
            _ => return Check::other(
                "source",
                Verdict::Skipped,
                "no file source configured (CUSIP_FILE_SOURCE, --s3-bucket or --dir): not checked",
            ),
        };
    Check::from("source", list(plan, bucket, &prefix).await)
}

/// One ListObjectsV2 of at most one key: the right and the bucket, not the files, which
/// may not have arrived yet.
async fn list(plan: &Plan, bucket: &str, prefix: &str) -> Result<String, Error> {
    let client = s3::client(&plan.s3).await;
    let place = s3::uri(bucket, prefix);
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| match s3::failure(&e, bucket, None, "listing") {
            // To a pre-flight a bucket that does not exist is the configuration's fault,
            // not a file not delivered yet.
            Error::NoInput(m) => Error::Config(format!(
                "{m}: check --s3-bucket / CUSIP_S3_BUCKET (and the region, --s3-region)"
            )),
            other => other,
        })?;
    let held = if out.contents().is_empty() {
        "empty so far"
    } else {
        "holds objects"
    };
    Ok(format!("{place} can be listed ({held})"))
}

fn directory(dir: &std::path::Path) -> Result<String, Error> {
    let shown = dir.display();
    match std::fs::read_dir(dir) {
        Ok(_) => Ok(format!("directory {shown} can be read")),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(Error::Denied(format!(
            "directory {shown} cannot be read ({e}): give the loader's user read and execute \
             permission on it"
        ))),
        Err(e) => Err(Error::Config(format!(
            "directory {shown} cannot be read ({e}): check --dir / CUSIP_FILE_DIR"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_exits_with_the_first_failure_and_prints_one_line_per_check() {
        let r = Report::new(vec![
            Check::ok("database", "connected".into()),
            Check::failed("schema", &Error::Config("missing: view v_issue".into())),
            Check::failed("rights", &Error::Denied("app lacks UPDATE on issue".into())),
            Check::other("source", Verdict::Skipped, "no file source configured"),
        ]);
        assert!(!r.ok);
        assert_eq!(r.exit_code, 78);
        assert_eq!(
            r.error.as_deref(),
            Some("--check: schema: missing: view v_issue")
        );
        let mut out = Vec::new();
        r.write(OutputFormat::Table, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ok   database  connected\n\
             FAIL schema    missing: view v_issue\n\
             FAIL rights    app lacks UPDATE on issue\n\
             skip source    no file source configured\n"
        );
        let mut out = Vec::new();
        r.write(OutputFormat::Json, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["checks"][1]["status"], "failed");
        assert_eq!(v["checks"][1]["exit_code"], 78);
        assert_eq!(v["checks"][3]["status"], "skipped");
        assert!(Report::new(vec![Check::ok("database", String::new())]).ok);
    }
}
