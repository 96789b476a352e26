//! The progress bar (terminals only) and a log writer that does not tear it.

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Whether bars should be drawn: only when stderr is a terminal a person is watching.
pub fn wanted(disabled: bool) -> bool {
    !disabled && io::stderr().is_terminal()
}

/// A byte-based bar for one file, or a hidden one when bars are off. It is cleared when
/// dropped, however the file's read ends: also when the read is abandoned half-way (a rerun
/// its digest gave away, an interruption), which would otherwise leave it drawn.
pub fn bar(enabled: bool, name: &str, len: Option<u64>) -> Bar {
    if !enabled {
        return Bar(ProgressBar::hidden());
    }
    let pb = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(name.to_string());
    if let Ok(mut a) = ACTIVE.lock() {
        *a = Some(pb.clone());
    }
    Bar(pb)
}

/// One file's bar; see [`bar`].
pub struct Bar(ProgressBar);

impl std::ops::Deref for Bar {
    type Target = ProgressBar;
    fn deref(&self) -> &ProgressBar {
        &self.0
    }
}

impl Drop for Bar {
    /// Forgets the active bar so logs go straight to stderr again.
    fn drop(&mut self) {
        self.0.finish_and_clear();
        if let Ok(mut a) = ACTIVE.lock() {
            *a = None;
        }
    }
}

/// `tracing` writer: suspends the active bar while a log line is written.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = one_line(buf);
        let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
        match bar {
            Some(pb) => pb.suspend(|| io::stderr().write_all(&line))?,
            None => io::stderr().write_all(&line)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// One log event, one line: a message with line breaks (a library's dump of a response, say)
/// is joined with ` | `, so that a log reader or CloudWatch sees one event as one line.
fn one_line(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let body = event.strip_suffix(b"\n").unwrap_or(event);
    if !body.contains(&b'\n') {
        return std::borrow::Cow::Borrowed(event);
    }
    let mut out = Vec::with_capacity(event.len() + 16);
    for (i, part) in body
        .split(|&b| b == b'\n')
        .map(|p| p.strip_suffix(b"\r").unwrap_or(p))
        .filter(|p| p.iter().any(|b| !b.is_ascii_whitespace()))
        .enumerate()
    {
        if i > 0 {
            out.extend_from_slice(b" | ");
        }
        out.extend_from_slice(if i > 0 { p_trim(part) } else { part });
    }
    out.push(b'\n');
    std::borrow::Cow::Owned(out)
}

fn p_trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[start..]
}

#[cfg(test)]
mod one_line_tests {
    use super::one_line;

    #[test]
    fn a_multi_line_event_becomes_one_line() {
        assert_eq!(&*one_line(b"a b\n"), b"a b\n");
        assert_eq!(
            &*one_line(b"WARN imds: response:\n  status: 404\n\n  body: x\n"),
            b"WARN imds: response: | status: 404 | body: x\n"
        );
    }
}
