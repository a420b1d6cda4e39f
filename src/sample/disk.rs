//! Disk gauges: which filesystems to measure, and how df measures them.
//!
//! The default set is the real local filesystems of the mount table
//! (`<proc-root>/self/mountinfo`, else `<proc-root>/mounts`), each device
//! once: a bind mount or a second btrfs subvolume of the same filesystem
//! would otherwise count its bytes twice. Pseudo filesystems (node_exporter's
//! exclude list), memory-backed ones (tmpfs, ramfs), image layers (overlay,
//! squashfs) and network/FUSE filesystems (whose statfs can hang on a dead
//! server) are skipped.
//!
//! Bytes follow df: used = (f_blocks - f_bfree) x f_frsize (root-reserved
//! blocks are not "used"), size = f_blocks x f_frsize. A filesystem of size
//! 0 is skipped; a statvfs error on one mount is reported and the others
//! still count.
//!
//! statvfs goes through [`Statvfs`] so tests can substitute a fixture file
//! (hidden `--statvfs-fixture`): real statvfs numbers of a test machine
//! cannot be hand-computed.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Filesystem types never measured by default.
pub const EXCLUDED_FSTYPES: &[&str] = &[
    // node_exporter's pseudo filesystems
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
    // memory-backed and layered
    "tmpfs",
    "ramfs",
    "aufs",
    // network filesystems (statfs can hang; not this VM's disk)
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "9p",
    "virtiofs",
    "afs",
];

/// Mount point prefixes never measured by default.
const EXCLUDED_PREFIXES: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run/credentials/",
    "/var/lib/docker/",
    "/var/lib/containers/storage/",
];

/// One filesystem chosen for measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted (what statvfs is called on).
    pub path: PathBuf,
    /// Its device key (`major:minor` or the source), for de-duplication.
    pub dev: String,
    /// Filesystem type.
    pub fstype: String,
}

/// Undo the octal escapes of the mount table (`\040` is a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // The kernel writes `\ooo` for a space, tab, newline or backslash.
        // Only values up to \377 are bytes; anything larger is not an escape
        // the kernel writes and is kept as text (found by the fuzzer: the
        // arithmetic must not overflow).
        let octal = |c: u8| (b'0'..=b'7').contains(&c).then(|| u16::from(c - b'0'));
        let value = if b[i] == b'\\' && i + 3 < b.len() {
            match (octal(b[i + 1]), octal(b[i + 2]), octal(b[i + 3])) {
                (Some(x), Some(y), Some(z)) => u8::try_from(x * 64 + y * 8 + z).ok(),
                _ => None,
            }
        } else {
            None
        };
        if let Some(v) = value {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn excluded(path: &str, fstype: &str) -> bool {
    if EXCLUDED_FSTYPES.contains(&fstype) || fstype == "fuse" || fstype.starts_with("fuse.") {
        return true;
    }
    EXCLUDED_PREFIXES.iter().any(|p| {
        if let Some(dir) = p.strip_suffix('/') {
            path.starts_with(p) && path.len() > dir.len()
        } else {
            path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
        }
    })
}

/// Pick the default filesystems from mountinfo text: real local ones, each
/// device once (the first mount of a device wins).
pub fn from_mountinfo(text: &str) -> Vec<Mount> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        // id parent major:minor root mountpoint options [optional...] - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.is_empty() {
            continue;
        }
        let (dev, path, fstype) = (l[2], unescape(l[4]), r[0]);
        if excluded(&path, fstype) || !seen.insert(dev.to_string()) {
            continue;
        }
        out.push(Mount {
            path: PathBuf::from(path),
            dev: dev.to_string(),
            fstype: fstype.to_string(),
        });
    }
    out
}

/// The same from `/proc/mounts` (`source mountpoint fstype opts 0 0`),
/// de-duplicated by source, for kernels or containers without mountinfo.
pub fn from_mounts(text: &str) -> Vec<Mount> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 3 {
            continue;
        }
        let (src, path, fstype) = (unescape(f[0]), unescape(f[1]), f[2]);
        if excluded(&path, fstype) || !seen.insert(src.clone()) {
            continue;
        }
        out.push(Mount {
            path: PathBuf::from(path),
            dev: src,
            fstype: fstype.to_string(),
        });
    }
    out
}

/// Read the default mount list under `proc_root`.
pub fn default_mounts(proc_root: &Path) -> Result<Vec<Mount>, String> {
    let mi = proc_root.join("self/mountinfo");
    match super::source::read_regular(&mi) {
        Ok(t) => Ok(from_mountinfo(&t)),
        Err(e1) => {
            let m = proc_root.join("mounts");
            super::source::read_regular(&m)
                .map(|t| from_mounts(&t))
                .map_err(|e2| {
                    format!(
                        "cannot read the mount table ({}: {e1}; {}: {e2}); use --mount PATH",
                        mi.display(),
                        m.display()
                    )
                })
        }
    }
}

/// The statvfs numbers df needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fs {
    /// Fragment size, the unit of the block counts.
    pub frsize: u64,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks, root-reserved included.
    pub bfree: u64,
    /// Blocks available to unprivileged users.
    pub bavail: u64,
    /// Filesystem id, to de-duplicate explicit `--mount` paths.
    pub fsid: u64,
}

impl Fs {
    /// df's Used: (blocks - bfree) x frsize.
    pub fn used_bytes(&self) -> u64 {
        self.blocks
            .saturating_sub(self.bfree)
            .saturating_mul(self.frsize)
    }

    /// df's Size: blocks x frsize.
    pub fn size_bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.frsize)
    }
}

/// Where statvfs numbers come from.
pub enum Statvfs {
    /// The real system call.
    Real,
    /// A fixture: path -> numbers or an error message.
    Fake(HashMap<PathBuf, Result<Fs, String>>),
}

impl Statvfs {
    /// Load a fixture file: tab-separated lines `PATH FRSIZE BLOCKS BFREE
    /// BAVAIL [FSID]` or `PATH error MESSAGE`; `#` lines are comments.
    pub fn load_fixture(path: &Path) -> Result<Statvfs, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut map = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split('\t').collect();
            let bad = || {
                format!("{}:{}: expected PATH<TAB>FRSIZE<TAB>BLOCKS<TAB>BFREE<TAB>BAVAIL[<TAB>FSID] or PATH<TAB>error<TAB>MESSAGE", path.display(), i + 1)
            };
            if f.len() >= 3 && f[1] == "error" {
                map.insert(PathBuf::from(f[0]), Err(f[2].to_string()));
                continue;
            }
            if f.len() < 5 {
                return Err(bad());
            }
            let n = |s: &str| s.parse::<u64>().map_err(|_| bad());
            let fsid = match f.get(5) {
                Some(s) => n(s)?,
                None => i as u64 + 1,
            };
            map.insert(
                PathBuf::from(f[0]),
                Ok(Fs {
                    frsize: n(f[1])?,
                    blocks: n(f[2])?,
                    bfree: n(f[3])?,
                    bavail: n(f[4])?,
                    fsid,
                }),
            );
        }
        Ok(Statvfs::Fake(map))
    }

    /// statvfs of `path`.
    pub fn stat(&self, path: &Path) -> Result<Fs, String> {
        match self {
            Statvfs::Real => rustix::fs::statvfs(path)
                .map(|s| Fs {
                    frsize: s.f_frsize,
                    blocks: s.f_blocks,
                    bfree: s.f_bfree,
                    bavail: s.f_bavail,
                    fsid: s.f_fsid,
                })
                .map_err(|e| std::io::Error::from(e).to_string()),
            Statvfs::Fake(m) => m
                .get(path)
                .cloned()
                .unwrap_or_else(|| Err("not in the statvfs fixture".to_string())),
        }
    }
}

/// Summed disk gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskTotals {
    /// Σ used bytes.
    pub used: u64,
    /// Σ size bytes.
    pub size: u64,
    /// How many filesystems were measured.
    pub measured: usize,
}

/// Measure `paths`, skipping size-0 filesystems and filesystems already
/// counted (same fsid, for explicit paths given twice). Errors are returned
/// per path, the rest still counts.
pub fn measure(paths: &[PathBuf], sv: &Statvfs) -> (DiskTotals, Vec<String>) {
    let mut t = DiskTotals::default();
    let mut errors = Vec::new();
    let mut fsids = HashSet::new();
    for p in paths {
        match sv.stat(p) {
            Err(e) => errors.push(format!("disk {}: {e}", p.display())),
            Ok(fs) => {
                if fs.blocks == 0 || !fsids.insert(fs.fsid) {
                    continue;
                }
                t.used = t.used.saturating_add(fs.used_bytes());
                t.size = t.size.saturating_add(fs.size_bytes());
                t.measured += 1;
            }
        }
    }
    (t, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape(r"/mnt/my\040disk"), "/mnt/my disk");
        assert_eq!(unescape(r"/mnt/a\134b"), r"/mnt/a\b");
        // Above \377 is no byte: kept as text (a fuzzer found the overflow).
        assert_eq!(unescape(r"/mnt/\777"), r"/mnt/\777");
        assert_eq!(unescape(r"/mnt/\04"), r"/mnt/\04");
    }

    #[test]
    fn mountinfo_selection() {
        let t = "\
22 27 0:21 / /proc rw - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
25 24 0:23 / /dev/shm rw - tmpfs tmpfs rw
28 27 254:0 /srv /mnt/bind rw shared:1 - ext4 /dev/vda rw
29 27 0:40 /@data /data rw - btrfs /dev/vdb rw,subvol=/@data
30 27 0:40 /@home /home rw - btrfs /dev/vdb rw,subvol=/@home
31 27 0:50 / /var/lib/docker/overlay2/x/merged rw - overlay overlay rw
32 27 7:0 / /snap/core/1 ro - squashfs /dev/loop0 ro
33 27 0:60 / /mnt/nfs rw - nfs4 srv:/x rw
34 27 0:61 / /mnt/fuse rw - fuse.sshfs u@h: rw
35 27 253:4 / /mnt/my\\040disk rw - xfs /dev/vde rw
36 27 253:5 / /devices rw - ext4 /dev/vdf rw
";
        let m = from_mountinfo(t);
        let paths: Vec<_> = m
            .iter()
            .map(|m| m.path.to_string_lossy().into_owned())
            .collect();
        assert_eq!(paths, ["/", "/data", "/mnt/my disk", "/devices"]);
        assert_eq!(m[1].dev, "0:40");
    }

    #[test]
    fn mounts_fallback() {
        let t = "/dev/vda / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/vda /srv ext4 rw 0 0\n";
        let m = from_mounts(t);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].path, PathBuf::from("/"));
    }

    #[test]
    fn df_semantics() {
        // f_bfree 62.9M vs f_bavail 20.7M: reserved blocks are not used.
        let fs = Fs {
            frsize: 4096,
            blocks: 100,
            bfree: 40,
            bavail: 30,
            fsid: 1,
        };
        assert_eq!(fs.used_bytes(), 60 * 4096);
        assert_eq!(fs.size_bytes(), 100 * 4096);
    }

    #[test]
    fn measure_skips_zero_dupes_and_reports_errors() {
        let mut m = HashMap::new();
        m.insert(
            PathBuf::from("/a"),
            Ok(Fs {
                frsize: 10,
                blocks: 10,
                bfree: 4,
                bavail: 2,
                fsid: 7,
            }),
        );
        m.insert(
            PathBuf::from("/b"),
            Ok(Fs {
                frsize: 10,
                blocks: 10,
                bfree: 4,
                bavail: 2,
                fsid: 7,
            }),
        );
        m.insert(
            PathBuf::from("/z"),
            Ok(Fs {
                frsize: 10,
                blocks: 0,
                bfree: 0,
                bavail: 0,
                fsid: 8,
            }),
        );
        m.insert(PathBuf::from("/e"), Err("Stale file handle".into()));
        let sv = Statvfs::Fake(m);
        let paths: Vec<PathBuf> = ["/a", "/b", "/z", "/e"].iter().map(PathBuf::from).collect();
        let (t, errs) = measure(&paths, &sv);
        assert_eq!(
            t,
            DiskTotals {
                used: 60,
                size: 100,
                measured: 1
            }
        );
        assert_eq!(errs, ["disk /e: Stale file handle"]);
    }
}
