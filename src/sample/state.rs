//! The state file: the previous run's raw counters, and how it is kept safe.
//!
//! mb-sample is a one-shot cron job, so the previous reading lives in a small
//! JSON file, the way sysstat's sa1 and vnStat keep their last counters.
//! Three rules make it safe:
//!
//! - **Locked**: an exclusive, non-blocking `flock` on `<state>.lock` (a
//!   separate file, because the state itself is replaced by rename and a
//!   lock on a replaced inode protects nothing). A second run finds it busy
//!   and leaves without touching anything.
//! - **Replaced atomically**: written to a temp file in the same directory,
//!   fsynced, renamed over the old one, then the directory is fsynced. A
//!   crash leaves either the old or the new state, never half of one.
//! - **Never fatal**: a missing, corrupt, wrong-version or other-host state
//!   means a first run, reported on stderr, never a failed cron job.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::source::CpuTicks;

/// Version of the state file's layout.
pub const STATE_VERSION: u32 = 1;

/// Everything the next run needs from this one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Layout version ([`STATE_VERSION`]).
    pub v: u32,
    /// The VM id the state was written for.
    pub vm_id: String,
    /// `/etc/machine-id` when it was written (catches a cloned image).
    pub machine_id: Option<String>,
    /// Kernel boot id, if the kernel has one.
    pub boot_id: Option<String>,
    /// `btime` from /proc/stat (secondary reboot check).
    pub btime: Option<u64>,
    /// /proc/uptime in centiseconds.
    pub uptime_cs: u64,
    /// The millisecond part of the last event id (see
    /// [`super::compute::Interval::id_ms`]).
    pub id_ms: u64,
    /// Wall clock in Unix milliseconds (only to flag clock jumps).
    pub ts_ms: i64,
    /// Sequence number of the last emitted line.
    pub seq: u64,
    /// CPU baseline; None when /proc/stat could not be read since boot.
    pub cpu: Option<CpuState>,
    /// Network baseline; None when /proc/net/dev could not be read since boot.
    pub net: Option<NetState>,
}

/// CPU baseline and the reset-corrected cumulative counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuState {
    /// Raw ticks of the aggregate cpu line.
    pub ticks: CpuTicks,
    /// Cumulative busy ticks since boot.
    pub busy_cum: u64,
    /// Cumulative total ticks since boot.
    pub total_cum: u64,
    /// The per-CPU lines, with offline CPUs frozen at their last values
    /// (see [`super::cpu`]). Empty in a state written before they were
    /// kept: the next interval then uses the aggregate line once.
    #[serde(default)]
    pub per_cpu: Vec<super::cpu::CpuLine>,
}

/// Network baseline (every interface the kernel listed) and cumulative
/// counters of the included ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetState {
    /// Every interface of /proc/net/dev at the last run.
    pub ifaces: Vec<IfState>,
    /// Cumulative received bytes since boot (included interfaces).
    pub in_cum: u64,
    /// Cumulative sent bytes since boot (included interfaces).
    pub out_cum: u64,
}

/// One interface's raw counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IfState {
    /// Interface name.
    pub name: String,
    /// `ifindex` (changes when the interface is re-created).
    pub ifindex: Option<u64>,
    /// Whether it counted towards the totals.
    pub included: bool,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

/// The result of reading the state file.
#[derive(Debug)]
pub enum Loaded {
    /// No state file: a first run, nothing to report.
    Missing,
    /// A state file that cannot be used, and why (a first run, reported).
    Invalid(String),
    /// A usable previous state (boxed: it is much bigger than the other variants).
    Valid(Box<State>),
}

/// Why a state that parsed cannot be a real one, if so: values that would
/// make the next line one mb-ingest rejects (mb-events(5)), which no run of
/// mb-sample writes. Such a state is corrupt: a first run, with a warning.
fn implausible(st: &State) -> Option<String> {
    use crate::events::bounds::{MAX_BYTES, MAX_TICKS};
    // The next line's seq is this one + 1, and must fit SQLite's INTEGER.
    if st.seq >= i64::MAX as u64 {
        return Some(format!("seq {} is out of range", st.seq));
    }
    if let Some(b) = &st.boot_id {
        if b.is_empty() || b.len() > 64 || b.chars().any(char::is_control) {
            return Some("boot id is not 1..=64 printable characters".into());
        }
    }
    if let Some(c) = &st.cpu {
        if c.busy_cum > MAX_TICKS || c.total_cum > MAX_TICKS {
            return Some("cumulative CPU ticks beyond the contract's bound".into());
        }
    }
    if let Some(n) = &st.net {
        if n.in_cum > MAX_BYTES || n.out_cum > MAX_BYTES {
            return Some("cumulative network bytes beyond the contract's bound".into());
        }
    }
    None
}

/// Read the state at `path` for this `vm_id` / `machine_id`.
pub fn load(path: &Path, vm_id: &str, machine_id: Option<&str>) -> Loaded {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return Loaded::Invalid(format!("cannot read: {e}")),
    };
    #[derive(Deserialize)]
    struct Version {
        v: Option<u32>,
    }
    match serde_json::from_slice::<Version>(&text) {
        Err(e) => return Loaded::Invalid(format!("corrupt ({e})")),
        Ok(Version {
            v: Some(STATE_VERSION),
        }) => {}
        Ok(Version { v }) => {
            return Loaded::Invalid(format!(
                "layout version {} (this mb-sample writes {STATE_VERSION})",
                v.map_or("missing".to_string(), |v| v.to_string())
            ))
        }
    }
    let st: State = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => return Loaded::Invalid(format!("corrupt ({e})")),
    };
    if st.vm_id != vm_id {
        return Loaded::Invalid(format!("written for VM {:?}, this is {vm_id:?}", st.vm_id));
    }
    if let Some(why) = implausible(&st) {
        return Loaded::Invalid(format!("corrupt ({why})"));
    }
    if let (Some(a), Some(b)) = (st.machine_id.as_deref(), machine_id) {
        if a != b {
            return Loaded::Invalid(format!(
                "written on machine-id {a}, this is {b} (a cloned image?)"
            ));
        }
    }
    Loaded::Valid(Box::new(st))
}

/// This machine's `/etc/machine-id`, if readable.
pub fn machine_id() -> Option<String> {
    fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `<state>.lock`.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut s = state.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// An exclusive lock on the state, released when dropped (the kernel drops
/// a flock with its last file descriptor, also when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// The outcome of [`lock`].
#[derive(Debug)]
pub enum LockResult {
    /// We hold the lock.
    Held(Lock),
    /// Another run holds it.
    Busy,
    /// The lock file cannot be created or opened (read-only or missing
    /// state directory): sampling goes on, but the state cannot be saved.
    Unavailable(String),
}

/// Take the non-blocking exclusive lock of `state`, creating its directory
/// and lock file when needed.
pub fn lock(state: &Path) -> LockResult {
    let lp = lock_path(state);
    if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = crate::fsutil::create_dir_all(dir) {
            return LockResult::Unavailable(format!("cannot create {}: {e}", dir.display()));
        }
    }
    let file = match crate::fsutil::lock_file(&lp) {
        Ok(f) => f,
        // A read-only directory with an existing lock file still locks.
        Err(e) => match File::open(&lp) {
            Ok(f) => f,
            Err(_) => return LockResult::Unavailable(format!("cannot open {}: {e}", lp.display())),
        },
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => LockResult::Held(Lock { _file: file }),
        Err(rustix::io::Errno::WOULDBLOCK) => LockResult::Busy,
        Err(e) => LockResult::Unavailable(format!("cannot lock {}: {e}", lp.display())),
    }
}

/// Replace the state at `path` atomically: temp file, fsync, rename, fsync
/// of the directory. Only call with the lock held (the temp name is fixed).
pub fn save(path: &Path, st: &State) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "state path has no file name",
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut body = serde_json::to_vec(st).map_err(std::io::Error::other)?;
    body.push(b'\n');
    let result = (|| {
        let mut f = crate::fsutil::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // The rename is durable once the directory entry is on disk.
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st() -> State {
        State {
            v: STATE_VERSION,
            vm_id: "vm-1".into(),
            machine_id: Some("abc".into()),
            boot_id: Some("b".into()),
            btime: Some(1),
            uptime_cs: 100,
            id_ms: 1000,
            ts_ms: 0,
            seq: 3,
            cpu: None,
            net: None,
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/s.state");
        assert!(matches!(load(&p, "vm-1", None), Loaded::Missing));
        let LockResult::Held(l) = lock(&p) else {
            panic!("lock")
        };
        assert!(matches!(lock(&p), LockResult::Busy));
        save(&p, &st()).unwrap();
        drop(l);
        assert!(matches!(load(&p, "vm-1", Some("abc")), Loaded::Valid(s) if *s == st()));
        assert!(matches!(load(&p, "vm-2", None), Loaded::Invalid(m) if m.contains("vm-2")));
        assert!(
            matches!(load(&p, "vm-1", Some("xyz")), Loaded::Invalid(m) if m.contains("cloned"))
        );
        fs::write(&p, "{\"v\":99}").unwrap();
        assert!(matches!(load(&p, "vm-1", None), Loaded::Invalid(m) if m.contains("version 99")));
        fs::write(&p, "{\"v\":1,\"vm_id\":").unwrap();
        assert!(matches!(load(&p, "vm-1", None), Loaded::Invalid(m) if m.starts_with("corrupt")));
        assert!(!d.path().join("sub/.s.state.tmp").exists());
    }
}
