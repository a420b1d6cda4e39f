//! The resume state (`--state FILE`): where each input file was left.
//!
//! An hourly `mb-tokens --state S usage.jsonl* | mb-ingest` must read only
//! what is new, survive rotation and truncation, and never start in the
//! middle of a line. Each entry therefore keys a file by its **identity**,
//! not its name: device, inode, and its first bytes (inodes are reused after
//! a delete, the first bytes of a JSONL file almost never are). A rotated
//! file (`usage.jsonl` renamed to `usage.jsonl.1`) is found again under its
//! new name and finished from its offset, and the new `usage.jsonl` starts
//! at 0. A file smaller than its saved offset was truncated: it is read from
//! the start, with a warning. Offsets only ever point just after a newline.
//!
//! The file is JSON, written atomically (temporary file, fsync, rename,
//! fsync of the directory), and only after the output was flushed, so a
//! crash re-reads rather than loses: the ids make re-reading harmless. A
//! lock file (`FILE.lock`, flock) keeps two runs from sharing a state.
//! Entries of files not seen for 30 days are dropped.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bytes of a file's start kept as part of its identity.
pub const HEAD_LEN: usize = 64;

/// State format version.
const VERSION: u32 = 1;

/// One file's progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Last path it was read under (informational).
    pub path: String,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Hex of the first bytes (at most [`HEAD_LEN`], at most `offset`).
    pub head: String,
    /// Byte offset just after the last line consumed.
    pub offset: u64,
    /// Lines consumed (for line numbers in messages of resumed runs).
    pub line: u64,
    /// When the file was last seen (RFC 3339).
    pub last_seen: String,
}

#[derive(Debug, Serialize, Deserialize, Default)]
struct Doc {
    version: u32,
    files: Vec<Entry>,
}

/// Where to start reading a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Never seen (or replaced): from the start.
    New,
    /// Seen: from this offset, after this many lines.
    At(u64, u64),
    /// Seen, but now smaller than the saved offset: from the start.
    Truncated(u64),
}

/// The loaded state, locked for this run.
pub struct State {
    path: PathBuf,
    entries: Vec<Entry>,
    /// (dev, ino) -> index in `entries`: request-log directories put one
    /// entry per request in the state, so lookups must not be linear.
    index: HashMap<(u64, u64), usize>,
    seen: Vec<bool>,
    _lock: File,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Read up to `n` bytes from the start of `f` (positional, so the caller's
/// file position is not disturbed).
pub fn read_head(f: &File, n: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match f.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

impl State {
    /// Open (or create) the state at `path` and lock it. Another run holding
    /// the lock is a fatal error: two runs would emit the same lines twice.
    pub fn open(path: &Path) -> Result<State> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsutil::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = crate::fsutil::lock_file(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        if let Err(e) =
            rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        {
            if e == rustix::io::Errno::WOULDBLOCK {
                return Err(Error::Invalid(format!(
                    "{}: another mb-tokens is using this state file; try again when it has finished",
                    path.display()
                )));
            }
            return Err(Error::io(&lock_path, e.into()));
        }
        let doc = match File::open(path) {
            Ok(mut f) => {
                let mut s = String::new();
                f.read_to_string(&mut s).map_err(|e| Error::io(path, e))?;
                if s.trim().is_empty() {
                    Doc::default()
                } else {
                    let d: Doc = serde_json::from_str(&s).map_err(|e| {
                        Error::Invalid(format!(
                            "{}: not an mb-tokens state file ({e}); move it away to start over \
                             (the ids make re-reading harmless)",
                            path.display()
                        ))
                    })?;
                    if d.version != VERSION {
                        return Err(Error::Invalid(format!(
                            "{}: state version {} is not supported (this mb-tokens writes {VERSION})",
                            path.display(),
                            d.version
                        )));
                    }
                    d
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Doc::default(),
            Err(e) => return Err(Error::io(path, e)),
        };
        let index = doc
            .files
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.dev, e.ino), i))
            .collect();
        let seen = vec![false; doc.files.len()];
        Ok(State {
            path: path.to_path_buf(),
            entries: doc.files,
            index,
            seen,
            _lock: lock,
        })
    }

    /// Where to start reading `file`. Same device and inode but smaller than
    /// the saved offset: truncated. Same inode, big enough, but other first
    /// bytes: a different file on a reused inode (or rewritten in place).
    pub fn resume(&self, file: &File) -> std::io::Result<Resume> {
        let md = file.metadata()?;
        let Some(&i) = self.index.get(&(md.dev(), md.ino())) else {
            return Ok(Resume::New);
        };
        let e = &self.entries[i];
        if md.len() < e.offset {
            return Ok(Resume::Truncated(e.offset));
        }
        let head = read_head(file, e.head.len() / 2)?;
        Ok(if hex(&head) == e.head {
            Resume::At(e.offset, e.line)
        } else {
            Resume::New
        })
    }

    /// Record that `file` (read as `path`) was consumed up to `offset`
    /// (`line` lines).
    pub fn update(
        &mut self,
        path: &str,
        file: &File,
        offset: u64,
        line: u64,
        now: DateTime<Utc>,
    ) -> std::io::Result<()> {
        let md = file.metadata()?;
        let head = read_head(file, HEAD_LEN.min(offset as usize))?;
        let entry = Entry {
            path: path.to_string(),
            dev: md.dev(),
            ino: md.ino(),
            head: hex(&head),
            offset,
            line,
            last_seen: crate::time::format_rfc3339(&now),
        };
        // Replace any entry with the same device and inode: the file at that
        // inode is now this one.
        match self.index.get(&(entry.dev, entry.ino)) {
            Some(&i) => {
                self.entries[i] = entry;
                self.seen[i] = true;
            }
            None => {
                self.index
                    .insert((entry.dev, entry.ino), self.entries.len());
                self.entries.push(entry);
                self.seen.push(true);
            }
        }
        Ok(())
    }

    /// Write the state atomically, dropping entries unseen for 30 days.
    pub fn save(&mut self, now: DateTime<Utc>) -> Result<()> {
        let cutoff = now - Duration::days(30);
        let files: Vec<Entry> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                self.seen[*i]
                    || crate::time::parse_rfc3339(&e.last_seen).is_some_and(|t| t >= cutoff)
            })
            .map(|(_, e)| e.clone())
            .collect();
        let doc = Doc {
            version: VERSION,
            files,
        };
        let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Invalid(e.to_string()))?;
        let tmp = PathBuf::from(format!("{}.tmp", self.path.display()));
        let io = |e| Error::io(&tmp, e);
        let mut f = crate::fsutil::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}
