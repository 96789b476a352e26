//! Typed errors and the exit codes a scheduler acts on.
//!
//! Every failure the loader can meet is one variant here, and each variant maps to exactly
//! one exit code, so Stonebranch and ECS can tell "fix the file" from "retry later" from
//! "fix the configuration" by the code alone.

use std::fmt;

/// The process exit codes (sysexits.h where one fits), documented in the README and `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Exit {
    /// Everything asked for was loaded (or validated).
    Ok = 0,
    /// Bad command line or arguments.
    Usage = 64,
    /// The data was rejected: a value, a record, a missing trailer, a foreign key.
    DataErr = 65,
    /// An input file or object was not found or is not readable as a file.
    NoInput = 66,
    /// The database could not be reached at start. Worth a retry.
    Unavailable = 69,
    /// A bug or an unexpected server error.
    Software = 70,
    /// The connection was lost or a timeout hit mid-load. Worth a retry.
    TempFail = 75,
    /// Authentication or permission denied.
    NoPerm = 77,
    /// Configuration missing or wrong (e.g. the schema was never applied).
    Config = 78,
    /// Interrupted by SIGINT.
    Sigint = 130,
    /// Interrupted by SIGTERM (ECS StopTask).
    Sigterm = 143,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NoInput(String),
    #[error("{0}")]
    Rejected(Rejection),
    /// A database failure, already rendered with SQLSTATE, detail and context.
    #[error("{message}")]
    Db { message: String, exit: Exit },
    #[error("{0}")]
    Config(String),
    #[error("interrupted by {}", if *.0 == Exit::Sigint { "SIGINT" } else { "SIGTERM" })]
    Interrupted(Exit),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::NoInput(_) => Exit::NoInput,
            Error::Rejected(_) => Exit::DataErr,
            Error::Db { exit, .. } => *exit,
            Error::Config(_) => Exit::Config,
            Error::Interrupted(e) => *e,
            Error::Internal(_) => Exit::Software,
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
