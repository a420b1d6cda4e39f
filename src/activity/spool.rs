//! mb-activity's use of the shared spool writer ([`crate::spool`]): one
//! event per file, named `activity-*.jsonl`.

use std::path::{Path, PathBuf};

use crate::error::Result;

pub use crate::spool::ensure_dir;

/// Write `line` (one JSON object, without newline) as a new spool file in
/// `dir`, creating the directory if needed. Returns the published path.
pub fn write(dir: &Path, line: &str) -> Result<PathBuf> {
    crate::spool::write_line(dir, "activity", line)
}
