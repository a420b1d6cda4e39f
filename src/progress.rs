//! mb-ingest's progress display on a terminal (indicatif).
//!
//! Kept apart from the ingest engine so the reading and writing loops only
//! report what they did: bytes as the reader consumes them (through
//! [`IngestProgress::reader`]) and lines as they are stored. When every
//! input has a known size (files, spool files, a regular file on stdin)
//! the display is a bar with a percentage, bytes done and total, the byte
//! rate and an ETA; a pipe gets a spinner with the bytes and the rate. The
//! source and its line count come last, cut to the terminal's width.
//! Lines and lines per second are whole numbers (indicatif's own
//! `{per_sec}` prints four decimals). Only shown when stderr is a
//! terminal and the summary is not `--quiet`; the caller decides.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar on screen, if any: diagnostics printed meanwhile go above it
/// ([`suspend`]) instead of being drawn over.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Run `f` (which writes to stderr) with the bar, if one is shown, taken
/// off the screen and redrawn after.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let pb = ACTIVE.lock().ok().and_then(|g| g.clone());
    match pb {
        Some(pb) => pb.suspend(f),
        None => f(),
    }
}

/// The bar of one mb-ingest run.
#[derive(Debug)]
pub struct IngestProgress {
    pb: ProgressBar,
    /// Lines so far (shared: the reader thread holds `&self` too).
    lines: AtomicU64,
}

/// The size in bytes of an input (`None` = standard input), if known: a
/// regular file's length; a pipe or terminal has none.
pub fn input_size(path: Option<&Path>) -> Option<u64> {
    let meta = match path {
        Some(p) => std::fs::metadata(p).ok()?,
        // /dev/stdin resolves to what fd 0 is (`mb-ingest < file`).
        None => std::fs::metadata("/dev/stdin").ok()?,
    };
    meta.is_file().then_some(meta.len())
}

impl IngestProgress {
    /// A bar over `total` bytes, or a spinner when the total is unknown.
    pub fn new(total: Option<u64>) -> IngestProgress {
        let (pb, template) = match total {
            Some(t) => (
                ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
                "{percent:>3}% [{bar:16}] of {binary_total_bytes}, {binary_bytes_per_sec}, \
                 ETA {eta}: {wide_msg}",
            ),
            None => (
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                "{spinner} {binary_bytes}, {binary_bytes_per_sec}: {wide_msg}",
            ),
        };
        pb.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut g) = ACTIVE.lock() {
            *g = Some(pb.clone());
        }
        IngestProgress {
            pb,
            lines: AtomicU64::new(0),
        }
    }

    /// `r`, counting the bytes read from it into the bar.
    pub fn reader<'a>(&self, r: Box<dyn Read + 'a>) -> Box<dyn Read + 'a> {
        Box::new(self.pb.wrap_read(r))
    }

    /// `n` more lines of `source` were stored (or counted, in a dry run).
    pub fn lines(&self, source: &str, n: u64) {
        let lines = self.lines.fetch_add(n, Ordering::Relaxed) + n;
        self.pb
            .set_message(message(source, lines, self.pb.elapsed()));
    }

    /// Remove the bar (the summary line follows).
    pub fn finish(self) {
        if let Ok(mut g) = ACTIVE.lock() {
            *g = None;
        }
        self.pb.finish_and_clear();
    }
}

/// `N lines (R/s) SOURCE` with whole numbers, the counts first (the end
/// is cut on a narrow terminal).
fn message(source: &str, lines: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        format!(" ({:.0}/s)", lines as f64 / secs)
    } else {
        String::new()
    };
    format!("{lines} lines{rate} {source}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_whole_numbers() {
        assert_eq!(
            message("a.jsonl", 12_345, Duration::from_millis(2_500)),
            "12345 lines (4938/s) a.jsonl"
        );
        assert_eq!(message("stdin", 0, Duration::ZERO), "0 lines stdin");
    }

    #[test]
    fn sizes_of_files_only() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x");
        std::fs::write(&f, "0123456789").unwrap();
        assert_eq!(input_size(Some(&f)), Some(10));
        assert_eq!(input_size(Some(d.path())), None);
        assert_eq!(input_size(Some(&d.path().join("missing"))), None);
    }
}
