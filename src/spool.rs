//! The spool writer: complete files renamed into place.
//!
//! A producer that writes into a pipe (`mb-tokens | mb-ingest`) cannot know
//! whether its lines were stored: when mb-ingest fails (disk full, database
//! locked, killed), the producer has already advanced its state and the
//! usage is gone. A spool directory decouples the two: the producer writes a
//! *complete, durable* file, commits its own state only after that, and
//! `mb-ingest --spool DIR` takes the file and moves it to `done/` only after
//! its lines are committed. Nothing is lost at any step; a repeated step only
//! gives duplicates, which mb-ingest recognises by id.
//!
//! Users: `mb-activity run` and the shell hooks (one event per file),
//! `mb-tokens --spool DIR` (one file per run), `mb-sample --spool DIR` (one
//! file per run or `--watch` interval). Many writers and a reader may work
//! on one directory at once, so a file appears either complete or not at
//! all:
//!
//! 1. the lines are written to a hidden temp file in the same directory
//!    (`.tmp-<pid>-<nanos>-<n>`; mb-ingest skips names starting with `.`),
//!    mode 0600 because commands and usage are private;
//! 2. the data is flushed to disk (`fdatasync`), so a crash cannot leave a
//!    published file with a hole where the lines should be;
//! 3. the file is published under a unique `<prefix>-<nanos>-<pid>.jsonl`
//!    name with a no-replace rename (`renameat2(RENAME_NOREPLACE)`, or
//!    `link` + `unlink` where the file system lacks it), so even a name
//!    collision can never overwrite another file; a taken name is retried
//!    with a numeric suffix;
//! 4. the directory is synced so the new name survives a crash.
//!
//! A published file is never written again (no appends that a spool run
//! could take half-way); a temp file that is never published (a failed
//! write, a kill) is hidden and ignored, and removed when it can be.

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

/// A spool file being written: a hidden temp file until [`SpoolFile::commit`]
/// publishes it. Dropped without a commit, the temp file is removed.
pub struct SpoolFile {
    dir: PathBuf,
    prefix: String,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<File>>,
    bytes: u64,
}

impl SpoolFile {
    /// Start a new spool file in `dir` (created with mode 0700 if needed);
    /// its published name will start with `prefix` (`tokens`, `sample`).
    pub fn create(dir: &Path, prefix: &str) -> Result<SpoolFile> {
        ensure_dir(dir)?;
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".tmp-{}-{}-{seq}",
            std::process::id(),
            wall_nanos()
        ));
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        Ok(SpoolFile {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            tmp,
            file: Some(std::io::BufWriter::with_capacity(64 * 1024, f)),
            bytes: 0,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Make the file durable and publish it; returns its path, or None when
    /// nothing was written (an empty file is not published). Only after this
    /// returns may the producer commit its own state.
    pub fn commit(mut self) -> Result<Option<PathBuf>> {
        let Some(mut w) = self.file.take() else {
            return Ok(None);
        };
        if self.bytes == 0 {
            drop(w);
            let _ = fs::remove_file(&self.tmp);
            return Ok(None);
        }
        let tmp = self.tmp.clone();
        let res = w
            .flush()
            .and_then(|()| w.get_ref().sync_data())
            .map_err(|e| Error::io(&tmp, e))
            .and_then(|()| {
                drop(w);
                publish(
                    &self.dir,
                    &tmp,
                    &self.prefix,
                    std::process::id(),
                    wall_nanos(),
                )
            });
        let path = match res {
            Ok(p) => p,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        sync_dir(&self.dir)?;
        Ok(Some(path))
    }
}

impl Write for SpoolFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let w = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("spool file already committed"))?;
        let n = w.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Flushing into the temp file publishes nothing; only commit does.
        match self.file.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Not committed: the hidden file would be ignored by mb-ingest,
            // but there is no reason to leave it behind.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Write `line` (one JSON object, without newline) as a new spool file in
/// `dir` named `<prefix>-*.jsonl`, creating the directory if needed.
/// Returns the published path.
pub fn write_line(dir: &Path, prefix: &str, line: &str) -> Result<PathBuf> {
    let mut f = SpoolFile::create(dir, prefix)?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    f.write_all(&buf).map_err(|e| Error::io(&f.tmp, e))?;
    f.commit()?
        .ok_or_else(|| Error::Invalid("spool: nothing to write".into()))
}

/// Give `tmp` its final name without ever replacing an existing file.
fn publish(dir: &Path, tmp: &Path, prefix: &str, pid: u32, nanos: u128) -> Result<PathBuf> {
    for attempt in 0..MAX_ATTEMPTS {
        let name = if attempt == 0 {
            format!("{prefix}-{nanos}-{pid}.jsonl")
        } else {
            format!("{prefix}-{nanos}-{pid}-{attempt}.jsonl")
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
