//! Typed errors, and the exit codes a scheduler acts on: the one place both are written.
//!
//! Every failure the loader can meet is an [`Error`] named for what it means to the person or
//! scheduler that reads it, and each maps to exactly one [`Exit`] code, so Stonebranch and ECS
//! can tell "fix the file" from "retry later" from "fix the configuration" by the code alone.
//! `--help`, the README's table and the Stonebranch wrapper are checked against [`Exit::ALL`].

use std::fmt;

/// The process exit codes (sysexits.h where one fits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Exit {
    Ok = 0,
    Usage = 64,
    DataErr = 65,
    NoInput = 66,
    Unavailable = 69,
    Software = 70,
    TempFail = 75,
    NoPerm = 77,
    Config = 78,
    Sigint = 130,
    Sigterm = 143,
}

impl Exit {
    /// Every code, in order.
    pub const ALL: [Exit; 11] = [
        Exit::Ok,
        Exit::Usage,
        Exit::DataErr,
        Exit::NoInput,
        Exit::Unavailable,
        Exit::Software,
        Exit::TempFail,
        Exit::NoPerm,
        Exit::Config,
        Exit::Sigint,
        Exit::Sigterm,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    /// What the code means (the README's "meaning" column).
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "every file loaded",
            Exit::Usage => {
                "usage: bad arguments, or a file whose type cannot be told from its name (give `--type`)"
            }
            Exit::DataErr => {
                "data rejected: a bad value, a bad record, a missing trailer, an unknown code or foreign key"
            }
            Exit::NoInput => "input not found or not a readable file",
            Exit::Unavailable => "database unavailable at start",
            Exit::Software => "internal error",
            Exit::TempFail => {
                "connection lost or timed out during the load, the database server out of disk space, \
                 S3 unreachable or throttled, an S3 object changed or deleted mid-load (nothing was \
                 committed)"
            }
            Exit::NoPerm => "permission denied (authentication or grants)",
            Exit::Config => {
                "configuration missing (e.g. the schema was never applied, the database does not exist)"
            }
            Exit::Sigint => "interrupted by SIGINT (rolled back)",
            Exit::Sigterm => "terminated by SIGTERM, e.g. ECS StopTask (rolled back)",
        }
    }

    /// What a scheduler should do (the README's last column).
    pub fn action(self) -> &'static str {
        match self {
            Exit::Ok => "—",
            Exit::Usage => "fix the job",
            Exit::DataErr => "fix or replace the file",
            Exit::NoInput => "check the path / upstream delivery",
            Exit::Unavailable => "retry later",
            Exit::Software => "report a bug",
            Exit::TempFail => "retry (after freeing space, for disk full)",
            Exit::NoPerm => "fix credentials or grants",
            Exit::Config => "fix the configuration",
            Exit::Sigint | Exit::Sigterm => "rerun",
        }
    }

    /// Whether running the same job again, unchanged, can succeed: nothing was committed and
    /// the cause may pass by itself.
    pub fn retry(self) -> bool {
        matches!(
            self,
            Exit::Unavailable | Exit::TempFail | Exit::Sigint | Exit::Sigterm
        )
    }

    /// The table `--help` ends with.
    pub fn help() -> String {
        let mut s = String::from("Exit codes:\n");
        for e in Exit::ALL {
            s.push_str(&format!("  {:<4} {}\n", e.code(), e.meaning()));
        }
        s.push_str("Nothing is ever half-loaded: each file commits whole or not at all.");
        s
    }
}

/// One rejected value or record, located in the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: Option<u64>,
    pub column: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn at(line: u64, column: Option<&str>, message: impl Into<String>) -> Problem {
        Problem {
            line: Some(line),
            column: column.map(str::to_string),
            message: message.into(),
        }
    }

    pub fn file(message: impl Into<String>) -> Problem {
        Problem {
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// Renders as `FILE line N, column C: message`.
    pub fn render(&self, file: &str) -> String {
        let mut s = file.to_string();
        if let Some(l) = self.line {
            s.push_str(&format!(" line {l}"));
        }
        if let Some(c) = &self.column {
            s.push_str(&format!(", column {c}"));
        }
        s.push_str(": ");
        s.push_str(&self.message);
        s
    }
}

/// Everything wrong with one file's data, collected before failing.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub file: String,
    pub problems: Vec<Problem>,
    /// More problems existed than were collected.
    pub more: bool,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        let more = if self.more {
            " (showing the first ones; there are more)"
        } else {
            ""
        };
        write!(
            f,
            "{}: rejected, nothing loaded: {n} problem{}{more}",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}", p.render(&self.file))?;
        }
        Ok(())
    }
}

/// What went wrong, by what it means; the message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line cannot be run as given.
    #[error("{0}")]
    Usage(String),
    /// The file's data was rejected by the loader's checks, with each problem located.
    #[error("{0}")]
    Rejected(Rejection),
    /// The database refused the data (a constraint the loader does not check itself).
    #[error("{0}")]
    Refused(String),
    /// An input file or object does not exist or cannot be read as one.
    #[error("{0}")]
    NoInput(String),
    /// The database could not be reached at start.
    #[error("{0}")]
    Unavailable(String),
    /// Something that should pass by itself: a lost connection, a timeout, a full disk, an
    /// object that changed while it was read. Nothing was committed.
    #[error("{0}")]
    Transient(String),
    /// Authentication or a permission was refused (database, S3, Secrets Manager).
    #[error("{0}")]
    Denied(String),
    /// The configuration or the database's schema is missing or wrong.
    #[error("{0}")]
    Config(String),
    #[error("interrupted by {}", if *.0 == Exit::Sigint { "SIGINT" } else { "SIGTERM" })]
    Interrupted(Exit),
    /// A bug, or a server error nothing else explains.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Rejected(_) | Error::Refused(_) => Exit::DataErr,
            Error::NoInput(_) => Exit::NoInput,
            Error::Unavailable(_) => Exit::Unavailable,
            Error::Transient(_) => Exit::TempFail,
            Error::Denied(_) => Exit::NoPerm,
            Error::Config(_) => Exit::Config,
            Error::Interrupted(e) => *e,
            Error::Internal(_) => Exit::Software,
        }
    }

    /// The error a failure with this exit code is (for causes classified by their code,
    /// such as a server's SQLSTATE).
    pub fn with_exit(exit: Exit, message: String) -> Error {
        match exit {
            Exit::Usage => Error::Usage(message),
            Exit::DataErr => Error::Refused(message),
            Exit::NoInput => Error::NoInput(message),
            Exit::Unavailable => Error::Unavailable(message),
            Exit::TempFail => Error::Transient(message),
            Exit::NoPerm => Error::Denied(message),
            Exit::Config => Error::Config(message),
            Exit::Sigint | Exit::Sigterm => Error::Interrupted(exit),
            Exit::Ok | Exit::Software => Error::Internal(message),
        }
    }

    /// The message of an error that carries one as text, to add to it.
    pub fn message_mut(&mut self) -> Option<&mut String> {
        match self {
            Error::Usage(m)
            | Error::Refused(m)
            | Error::NoInput(m)
            | Error::Unavailable(m)
            | Error::Transient(m)
            | Error::Denied(m)
            | Error::Config(m)
            | Error::Internal(m) => Some(m),
            Error::Rejected(_) | Error::Interrupted(_) => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line (`a: b: c`), skipping causes the message already
/// contains: readable, never a debug dump.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_render_like_the_spec() {
        let p = Problem::at(
            4711,
            Some("rate"),
            "\"5.2505\" has 4 decimals; numeric(6,3) allows 3",
        );
        assert_eq!(
            p.render("CED01-15E.PIP"),
            "CED01-15E.PIP line 4711, column rate: \"5.2505\" has 4 decimals; numeric(6,3) allows 3"
        );
    }

    #[test]
    fn every_exit_code_round_trips_through_its_error() {
        for e in Exit::ALL {
            if matches!(e, Exit::Ok | Exit::Software) {
                continue;
            }
            assert_eq!(Error::with_exit(e, String::new()).exit(), e);
        }
        assert!(Exit::help().contains("  75   connection lost"));
        assert_eq!(Exit::ALL.iter().filter(|e| e.retry()).count(), 4);
    }

    /// The rows of the README's exit-code table: code, meaning, action.
    fn readme_rows() -> Vec<(i32, String, String)> {
        include_str!("../README.md")
            .lines()
            .skip_while(|l| !l.starts_with("## Exit codes"))
            .skip(1)
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let code = cells.get(1)?.parse().ok()?;
                Some((code, cells.get(2)?.to_string(), cells.get(3)?.to_string()))
            })
            .collect()
    }

    #[test]
    fn the_readme_table_says_what_the_enum_says() {
        let want: Vec<(i32, String, String)> = Exit::ALL
            .iter()
            .map(|e| (e.code(), e.meaning().to_string(), e.action().to_string()))
            .collect();
        assert_eq!(readme_rows(), want);
    }

    #[test]
    fn the_stonebranch_wrapper_knows_every_code_and_which_are_safe_to_rerun() {
        let script = include_str!("../deploy/stonebranch-load.sh");
        for e in Exit::ALL {
            let arm = format!("    {}) echo \"", e.code());
            let line = script
                .lines()
                .find(|l| l.starts_with(&arm))
                .unwrap_or_else(|| panic!("the wrapper has no case for exit {}", e.code()));
            assert_eq!(
                line.contains("safe to rerun"),
                e.retry(),
                "exit {}: the wrapper says {line:?}",
                e.code()
            );
        }
    }

    #[test]
    fn every_error_has_its_exit_code() {
        assert_eq!(Error::Usage(String::new()).exit().code(), 64);
        let r = Rejection {
            file: "f".into(),
            problems: vec![],
            more: false,
        };
        assert_eq!(Error::Rejected(r).exit().code(), 65);
        assert_eq!(Error::NoInput(String::new()).exit().code(), 66);
        assert_eq!(Error::Config(String::new()).exit().code(), 78);
        assert_eq!(Error::Interrupted(Exit::Sigterm).exit().code(), 143);
        assert_eq!(Error::Internal(String::new()).exit().code(), 70);
    }
}
