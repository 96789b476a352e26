//! The run summary: a table a person reads, or one JSON document a machine reads.

use std::io::{self, Write};

use serde::Serialize;

use crate::error::{Exit, Problem};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Loaded,
    Failed,
    Interrupted,
    NotAttempted,
    AlreadyLoaded,
    Missing,
    /// A date of a range with no files at all (a weekend, a holiday): skipped.
    NoFiles,
    /// Checked by --validate-only; nothing loaded.
    Valid,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Loaded => "loaded",
            Status::Failed => "FAILED",
            Status::Interrupted => "INTERRUPTED",
            Status::NotAttempted => "not attempted",
            Status::AlreadyLoaded => "already loaded",
            Status::Missing => "MISSING",
            Status::NoFiles => "no files",
            Status::Valid => "valid",
        }
    }
}

/// A key that occurred more than once, and (up to five of) its lines. The last one won.
#[derive(Debug, Clone, Serialize)]
pub struct Repeat {
    pub key: String,
    pub lines: Vec<i64>,
}

/// Which way a file's rows went into its table (docs/design.md, "The paths of a load").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// COPY straight into the empty table; its indexes rebuilt and foreign keys re-validated.
    Direct,
    /// Staged, then inserted into the empty table with its indexes rebuilt: the direct COPY
    /// met a repeated key or a missing parent, which staging resolves or names by line.
    Rebuild,
    /// Compared with the table in the loader; only the new or changed rows staged and merged.
    Compared,
    /// Staged whole, compared and merged in the database.
    Staged,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Rebuild => "rebuild",
            Path::Compared => "compared",
            Path::Staged => "staged",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: String,
    pub source: String,
    #[serde(rename = "type")]
    pub file_type: &'static str,
    /// The business day the file is for (`--date`, the range, or the name's `MM-DD`).
    #[serde(rename = "date")]
    pub business_date: Option<chrono::NaiveDate>,
    pub bytes: u64,
    pub fingerprint: Option<String>,
    /// sha256 of the content, when the whole file was read (or, locally, by its own thread).
    pub sha256: Option<String>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub records: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub repeated: u64,
    pub repeated_examples: Vec<Repeat>,
    /// Times the download resumed after breaking mid-stream (S3).
    pub resumes: u32,
    pub seconds: f64,
    pub mb_per_s: f64,
    pub phases: Vec<Phase>,
    /// The table was empty and its indexes were rebuilt (the direct or rebuild path).
    pub initial_load: bool,
    /// Which way the rows went in, and why that way.
    pub path: Option<Path>,
    pub path_reason: Option<String>,
    pub status: Status,
    pub error: Option<String>,
    /// A rejected file's problems, located (up to the 20 collected).
    pub problems: Vec<Problem>,
}

impl FileReport {
    pub fn new(file: &str, source: &str, file_type: &'static str) -> FileReport {
        FileReport {
            file: file.to_string(),
            source: source.to_string(),
            file_type,
            business_date: None,
            bytes: 0,
            fingerprint: None,
            sha256: None,
            started_at: None,
            records: 0,
            inserted: 0,
            updated: 0,
            unchanged: 0,
            repeated: 0,
            repeated_examples: Vec::new(),
            resumes: 0,
            seconds: 0.0,
            mb_per_s: 0.0,
            phases: Vec::new(),
            initial_load: false,
            path: None,
            path_reason: None,
            status: Status::NotAttempted,
            error: None,
            problems: Vec::new(),
        }
    }
}

impl FileReport {
    /// Records why the file failed: the message and, for a rejection, its located problems.
    pub fn failed(&mut self, e: &crate::error::Error) {
        self.status = Status::Failed;
        self.error = Some(e.to_string());
        if let crate::error::Error::Rejected(r) = e {
            self.problems = r.problems.clone();
        }
    }

    /// Records how long the file took, and the rate that makes over its bytes.
    pub fn timed(&mut self, seconds: f64) {
        self.seconds = seconds;
        self.mb_per_s = if seconds > 0.0 {
            self.bytes as f64 / 1e6 / seconds
        } else {
            0.0
        };
    }
}

/// Peak resident set size of this process in MB, from `/proc/self/status` (`VmHWM`).
///
/// Read here rather than from `getrusage`: `ru_maxrss` carries over the high-water mark of
/// the process image that exec'd us, so it overstates a child of a large parent.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub ok: bool,
    pub exit_code: i32,
    pub files: Vec<FileReport>,
    /// A failure that belongs to no single file (usage, connection, interruption).
    pub error: Option<String>,
    /// The process's peak resident memory (Linux `VmHWM`), for capacity planning.
    pub peak_rss_mb: Option<f64>,
}

impl Summary {
    pub fn new(files: Vec<FileReport>, exit: Exit, error: Option<String>) -> Summary {
        Summary {
            ok: exit == Exit::Ok,
            exit_code: exit.code(),
            files,
            error,
            peak_rss_mb: None,
        }
    }

    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }

    pub fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.files.is_empty() {
            // `--init-schema` alone, or a failure before any file: the error says it all.
            return match &self.error {
                Some(e) => writeln!(out, "error: {e}"),
                None => writeln!(out, "schema applied; no files given"),
            };
        }
        let head = [
            "FILE",
            "TYPE",
            "DATE",
            "RECORDS",
            "INSERTED",
            "UPDATED",
            "UNCHANGED",
            "REPEATED",
            "SECONDS",
            "MB/S",
            "STATUS",
        ];
        let rows: Vec<[String; 11]> = self
            .files
            .iter()
            .map(|f| {
                // Counts a person can trust: a load's writes only when it committed, what was
                // read whenever the file was read.
                let read = matches!(
                    f.status,
                    Status::Loaded | Status::Failed | Status::Interrupted | Status::Valid
                );
                let wrote = f.status == Status::Loaded;
                let n = |v: u64, shown: bool| if shown { v.to_string() } else { "-".into() };
                [
                    f.file.clone(),
                    f.file_type.to_string(),
                    f.business_date.map_or("-".into(), |d| d.to_string()),
                    n(f.records, read),
                    n(f.inserted, wrote),
                    n(f.updated, wrote),
                    n(f.unchanged, wrote),
                    n(f.repeated, wrote),
                    if read {
                        format!("{:.2}", f.seconds)
                    } else {
                        "-".into()
                    },
                    if read {
                        format!("{:.1}", f.mb_per_s)
                    } else {
                        "-".into()
                    },
                    f.status.label().to_string(),
                ]
            })
            .collect();
        let mut width = head.map(str::len);
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(width).enumerate() {
                // Text columns left-aligned, numbers right-aligned.
                if i < 3 || i == 10 {
                    s.push_str(&format!("{c:<w$}"));
                } else {
                    s.push_str(&format!("{c:>w$}"));
                }
                if i < 10 {
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string()
        };
        writeln!(out, "{}", line(&head.map(String::from)))?;
        for r in &rows {
            writeln!(out, "{}", line(r))?;
        }
        for f in &self.files {
            if !f.repeated_examples.is_empty() {
                let shown: Vec<String> = f
                    .repeated_examples
                    .iter()
                    .map(|r| {
                        let lines: Vec<String> = r.lines.iter().map(i64::to_string).collect();
                        format!("{} (lines {})", r.key, lines.join(", "))
                    })
                    .collect();
                writeln!(
                    out,
                    "{}: {} repeated record{} (last one wins), e.g. {}",
                    f.file,
                    f.repeated,
                    if f.repeated == 1 { "" } else { "s" },
                    shown.join("; ")
                )?;
            }
        }
        for f in &self.files {
            if f.resumes > 0 {
                writeln!(
                    out,
                    "{}: the download broke and resumed {} time{}",
                    f.file,
                    f.resumes,
                    if f.resumes == 1 { "" } else { "s" }
                )?;
            }
        }
        // Each failed file's reason, with every located problem, once; then the run's error
        // when it is not one of those.
        for f in &self.files {
            let Some(e) = &f.error else { continue };
            let e = e.strip_prefix(&format!("{}: ", f.file)).unwrap_or(e);
            let mut lines = e.lines();
            writeln!(out, "{}: {}", f.file, lines.next().unwrap_or(""))?;
            if f.problems.is_empty() {
                for l in lines {
                    writeln!(out, "  {}", l.trim_start())?;
                }
            }
            for p in &f.problems {
                writeln!(out, "  {}", p.render(&f.file))?;
            }
        }
        if let Some(e) = &self.error {
            if !self.files.iter().any(|f| f.error.as_ref() == Some(e)) {
                writeln!(out, "error: {e}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        let mut a = FileReport::new("CED01-15R.PIP", "/d/CED01-15R.PIP", "issuer");
        a.records = 300;
        a.inserted = 299;
        a.repeated = 1;
        a.repeated_examples = vec![Repeat {
            key: "00123A".into(),
            lines: vec![4, 9],
        }];
        a.status = Status::Loaded;
        let b = FileReport::new("CED01-15E.PIP", "/d/CED01-15E.PIP", "issue");
        Summary::new(vec![a, b], Exit::DataErr, Some("boom".into()))
    }

    #[test]
    fn table_lists_every_file_and_the_repeats() {
        let mut out = Vec::new();
        sample().write_table(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().next().unwrap().starts_with("FILE"));
        assert!(text.contains("CED01-15R.PIP  issuer"), "{text}");
        assert!(text.contains("not attempted"), "{text}");
        assert!(text.contains("00123A (lines 4, 9)"), "{text}");
    }

    #[test]
    fn json_is_one_document() {
        let mut out = Vec::new();
        sample().write_json(&mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["exit_code"], 65);
        assert_eq!(v["files"][0]["type"], "issuer");
        assert_eq!(v["files"][1]["status"], "not_attempted");
    }

    #[test]
    fn peak_rss_is_read_from_proc() {
        // A test binary on Linux has touched at least a megabyte and far less than 100 GB.
        let mb = peak_rss_mb().expect("/proc/self/status has VmHWM on Linux");
        assert!(mb > 1.0 && mb < 100_000.0, "{mb}");
    }
}
