//! The spool writer: complete files renamed into place.
//!
//! `mb-activity run` and the shell hooks cannot print their event on stdout
//! (it belongs to the user's command), so they drop it into a spool
//! directory that `mb-ingest --spool DIR` empties. Many shells write there
//! at once, and mb-ingest may be reading at the same moment, so a file must
//! appear either complete or not at all:
//!
//! 1. the line is written to a hidden temp file in the same directory
//!    (`.tmp-<pid>-<nanos>-<n>`; mb-ingest skips names starting with `.`),
//!    mode 0600 because command texts are private;
//! 2. the data is flushed to disk (`fdatasync`), so a crash cannot leave a
//!    published file with a hole where the line should be;
//! 3. the file is published under a unique `*.jsonl` name with a
//!    no-replace rename (`renameat2(RENAME_NOREPLACE)`, or `link` + `unlink`
//!    where the file system lacks it), so even a name collision can never
//!    overwrite another event; a taken name is retried with the next `n`;
//! 4. the directory is synced so the new name survives a crash.
//!
//! One event per file keeps writers independent (no locks, no appends
//! that could interleave); mb-ingest moves each file to `done/` after
//! committing it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{renameat_with, RenameFlags, CWD};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Per-process counter that keeps names unique within one process.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// How many taken names are tried before giving up (a collision needs the
/// same pid and nanosecond, so more than one retry means something odd).
const MAX_ATTEMPTS: u32 = 16;

/// Create `dir` (and its parents) with mode 0700 if it does not exist.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ),
        )),
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(dir, e)),
    }
}

/// Write `line` (one JSON object, without newline) as a new spool file in
/// `dir`, creating the directory if needed. Returns the published path.
pub fn write(dir: &Path, line: &str) -> Result<PathBuf> {
    ensure_dir(dir)?;
    let pid = std::process::id();
    let nanos = wall_nanos();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".tmp-{pid}-{nanos}-{seq}"));
    let result = write_tmp(&tmp, line).and_then(|()| publish(dir, &tmp, pid, nanos));
    if result.is_err() {
        // Best effort: a leftover hidden file is ignored by mb-ingest, but
        // there is no reason to leave it behind.
        let _ = fs::remove_file(&tmp);
    }
    let path = result?;
    sync_dir(dir)?;
    Ok(path)
}

fn write_tmp(tmp: &Path, line: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| Error::io(tmp, e))?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    f.write_all(&buf).map_err(|e| Error::io(tmp, e))?;
    f.sync_data().map_err(|e| Error::io(tmp, e))?;
    Ok(())
}

/// Give `tmp` its final name without ever replacing an existing file.
fn publish(dir: &Path, tmp: &Path, pid: u32, nanos: u128) -> Result<PathBuf> {
    for attempt in 0..MAX_ATTEMPTS {
        let name = if attempt == 0 {
            format!("activity-{nanos}-{pid}.jsonl")
        } else {
            format!("activity-{nanos}-{pid}-{attempt}.jsonl")
        };
        let dest = dir.join(name);
        match renameat_with(CWD, tmp, CWD, &dest, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(dest),
            Err(Errno::EXIST) => continue,
            // No renameat2 here (old kernel, some file systems): link is
            // no-replace too, then drop the temp name.
            Err(Errno::INVAL) | Err(Errno::NOSYS) | Err(Errno::OPNOTSUPP) => {
                match fs::hard_link(tmp, &dest) {
                    Ok(()) => {
                        fs::remove_file(tmp).map_err(|e| Error::io(tmp, e))?;
                        return Ok(dest);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(Error::io(&dest, e)),
                }
            }
            Err(e) => return Err(Error::io(&dest, e.into())),
        }
    }
    Err(Error::io(
        dir,
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("no free spool file name after {MAX_ATTEMPTS} attempts"),
        ),
    ))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Wall-clock nanoseconds since the epoch, for file names only (the event's
/// own time comes from [`crate::time::now`], which tests pin).
fn wall_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_complete_private_files_in_a_private_dir() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/spool");
        let p1 = write(&dir, "{\"x\":1}").unwrap();
        let p2 = write(&dir, "{\"x\":2}").unwrap();
        assert_ne!(p1, p2);
        assert_eq!(fs::read_to_string(&p1).unwrap(), "{\"x\":1}\n");
        assert_eq!(fs::read_to_string(&p2).unwrap(), "{\"x\":2}\n");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&p1), 0o600);
        // Nothing hidden is left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_taken_name_is_never_replaced() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let pid = std::process::id();
        fs::write(dir.join(format!("activity-7-{pid}.jsonl")), "old\n").unwrap();
        let tmp = dir.join(".tmp-x");
        fs::write(&tmp, "new\n").unwrap();
        let p = publish(dir, &tmp, pid, 7).unwrap();
        assert_eq!(p, dir.join(format!("activity-7-{pid}-1.jsonl")));
        assert_eq!(
            fs::read_to_string(dir.join(format!("activity-7-{pid}.jsonl"))).unwrap(),
            "old\n"
        );
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "").unwrap();
        assert!(write(&f, "{}").is_err());
    }
}
