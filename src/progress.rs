//! The progress bar (terminals only) and a log writer that does not tear it.

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Whether bars should be drawn: only when stderr is a terminal a person is watching.
pub fn wanted(disabled: bool) -> bool {
    !disabled && io::stderr().is_terminal()
}

/// A byte-based bar for one file, or a hidden one when bars are off.
pub fn bar(enabled: bool, name: &str, len: Option<u64>) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
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
    pb
}

/// Forgets the active bar so logs go straight to stderr again.
pub fn done(pb: &ProgressBar) {
    pb.finish_and_clear();
    if let Ok(mut a) = ACTIVE.lock() {
        *a = None;
    }
}

/// `tracing` writer: suspends the active bar while a log line is written.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
        match bar {
            Some(pb) => pb.suspend(|| io::stderr().write_all(buf))?,
            None => io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
