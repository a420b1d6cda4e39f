//! Readers for the kernel files mb-sample needs, under a configurable root.
//!
//! Each reader takes the *text* (or a root directory) and returns plain
//! numbers, so the parsers are pure and unit-tested here, and the fixture
//! trees of the integration tests stand in for `/proc` and `/sys` through
//! `--proc-root` / `--sys-root`.
//!
//! The parsers are hand-written rather than taken from `procfs-core`:
//! procfs 0.18 refuses a `/proc/stat` without `ctxt`/`btime`/`processes`
//! lines and a `/proc/net/dev` line without a space after the colon
//! (research note, section 4.1), it cannot read `/sys/class/net` or
//! mountinfo from an arbitrary root for us, and it pulls rustix 1.x next to
//! the rustix 0.38 we already link. What we need is five small
//! line-oriented formats; owning them keeps every edge case (missing
//! columns, `u64::MAX`, `enp0s31f6:123`) under our tests.

use std::fs;
use std::path::{Component, Path};

/// The ten columns of the aggregate `cpu` line of `/proc/stat`, in ticks
/// (USER_HZ). Older kernels print fewer; missing columns are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CpuTicks(pub [u64; 10]);

/// Column indexes of [`CpuTicks`].
pub mod col {
    /// Normal processes in user mode (includes guest).
    pub const USER: usize = 0;
    /// Niced processes in user mode (includes guest_nice).
    pub const NICE: usize = 1;
    /// Kernel mode.
    pub const SYSTEM: usize = 2;
    /// Idle.
    pub const IDLE: usize = 3;
    /// Waiting for I/O (counts as idle; may go backwards).
    pub const IOWAIT: usize = 4;
    /// Hard interrupts.
    pub const IRQ: usize = 5;
    /// Soft interrupts.
    pub const SOFTIRQ: usize = 6;
    /// Stolen by the hypervisor (not the tenant's work, not busy).
    pub const STEAL: usize = 7;
    /// Running a guest (already inside USER).
    pub const GUEST: usize = 8;
    /// Running a niced guest (already inside NICE).
    pub const GUEST_NICE: usize = 9;
    /// The names, for messages.
    pub const NAMES: [&str; 10] = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guest_nice",
    ];
}

/// The columns that make up "busy" time: user, nice, system, irq, softirq.
/// guest/guest_nice are already inside user/nice and are never added
/// again; steal is not the tenant's work; iowait is idle time.
pub const BUSY_COLS: [usize; 5] = [col::USER, col::NICE, col::SYSTEM, col::IRQ, col::SOFTIRQ];

/// The columns of "total" time: busy plus idle, iowait and steal (never
/// guest or guest_nice, which the kernel counts twice).
pub const TOTAL_COLS: [usize; 8] = [
    col::USER,
    col::NICE,
    col::SYSTEM,
    col::IDLE,
    col::IOWAIT,
    col::IRQ,
    col::SOFTIRQ,
    col::STEAL,
];

impl CpuTicks {
    /// Busy ticks (see [`BUSY_COLS`]), saturating.
    pub fn busy(&self) -> u64 {
        BUSY_COLS
            .iter()
            .fold(0u64, |a, &i| a.saturating_add(self.0[i]))
    }

    /// Total ticks (see [`TOTAL_COLS`]), saturating.
    pub fn total(&self) -> u64 {
        TOTAL_COLS
            .iter()
            .fold(0u64, |a, &i| a.saturating_add(self.0[i]))
    }
}

/// What `/proc/stat` gives us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The aggregate `cpu` line.
    pub cpu: CpuTicks,
    /// Number of `cpuN` lines: the online CPUs.
    pub ncpu: u64,
    /// The `cpuN` lines (online CPUs), in file order.
    pub cpus: Vec<super::cpu::CpuLine>,
    /// Boot time in epoch seconds, if the `btime` line is there.
    pub btime: Option<u64>,
}

/// The ten columns after a `cpu`/`cpuN` key (missing ones are 0).
fn parse_ticks<'a>(
    it: impl Iterator<Item = &'a str>,
    line: usize,
    key: &str,
) -> Result<CpuTicks, String> {
    let mut t = [0u64; 10];
    for (k, v) in it.take(10).enumerate() {
        t[k] = v.parse().map_err(|_| {
            format!(
                "line {line}: {key} column {} ({v:?}) is not a number",
                col::NAMES[k]
            )
        })?;
    }
    Ok(CpuTicks(t))
}

/// Parse `/proc/stat` text. Errors name the line and column.
pub fn parse_stat(text: &str) -> Result<Stat, String> {
    let mut cpu = None;
    let mut cpus = Vec::new();
    let mut btime = None;
    for (i, line) in text.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let Some(key) = it.next() else { continue };
        if key == "cpu" {
            cpu = Some(parse_ticks(it, i + 1, key)?);
        } else if let Some(n) = key
            .strip_prefix("cpu")
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            if let Ok(id) = n.parse::<u32>() {
                let ticks = parse_ticks(it, i + 1, key)?;
                cpus.push(super::cpu::CpuLine { id, ticks });
            }
        } else if key == "btime" {
            let v = it.next().unwrap_or("");
            btime = Some(
                v.parse()
                    .map_err(|_| format!("line {}: btime {v:?} is not a number", i + 1))?,
            );
        }
    }
    let cpu = cpu.ok_or_else(|| "no aggregate \"cpu\" line".to_string())?;
    Ok(Stat {
        cpu,
        ncpu: cpus.len() as u64,
        cpus,
        btime,
    })
}

/// `/proc/uptime`'s first number in centiseconds (the kernel prints two
/// decimals). Integer arithmetic keeps intervals exact: 300.00 s, not
/// 299.99999999994.
pub fn parse_uptime_cs(text: &str) -> Result<u64, String> {
    let first = text
        .split_ascii_whitespace()
        .next()
        .ok_or_else(|| "empty".to_string())?;
    let bad = || format!("{first:?} is not a number of seconds like 12345.67");
    let (int, frac) = match first.split_once('.') {
        Some((a, b)) => (a, b),
        None => (first, ""),
    };
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let secs: u64 = int.parse().map_err(|_| bad())?;
    // Two digits of fraction; more are truncated (the kernel never prints more).
    let mut cs = 0u64;
    for (k, b) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(2)
        .enumerate()
    {
        cs += u64::from(b - b'0') * if k == 0 { 10 } else { 1 };
    }
    secs.checked_mul(100)
        .and_then(|s| s.checked_add(cs))
        .ok_or_else(bad)
}

/// What `/proc/meminfo` gives us, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mem {
    /// MemTotal.
    pub total: u64,
    /// MemAvailable, or the estimate when the kernel lacks it.
    pub available: u64,
    /// True when MemAvailable was missing (kernel < 3.14) and `available`
    /// is MemFree + Buffers + Cached + SReclaimable.
    pub estimated: bool,
}

impl Mem {
    /// MemTotal - MemAvailable, clamped at 0 (LXCFS and some containers
    /// report MemAvailable > MemTotal).
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }
}

/// Parse `/proc/meminfo`. Values marked `kB` are KiB.
pub fn parse_meminfo(text: &str) -> Result<Mem, String> {
    let (mut total, mut avail, mut free, mut buffers, mut cached, mut srecl) =
        (None, None, None, None, None, None);
    for (i, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut avail,
            "MemFree" => &mut free,
            "Buffers" => &mut buffers,
            "Cached" => &mut cached,
            "SReclaimable" => &mut srecl,
            _ => continue,
        };
        let mut it = rest.split_ascii_whitespace();
        let v = it.next().unwrap_or("");
        let n: u64 = v
            .parse()
            .map_err(|_| format!("line {}: {key} {v:?} is not a number", i + 1))?;
        let mult = match it.next() {
            Some("kB") => 1024,
            None => 1,
            Some(u) => return Err(format!("line {}: {key}: unknown unit {u:?}", i + 1)),
        };
        *slot = Some(n.saturating_mul(mult));
    }
    let total = total.ok_or_else(|| "no MemTotal line".to_string())?;
    match avail {
        Some(a) => Ok(Mem {
            total,
            available: a,
            estimated: false,
        }),
        None => {
            let free = free.ok_or_else(|| "neither MemAvailable nor MemFree".to_string())?;
            let est = [buffers, cached, srecl]
                .into_iter()
                .flatten()
                .fold(free, u64::saturating_add);
            Ok(Mem {
                total,
                available: est,
                estimated: true,
            })
        }
    }
}

/// One line of `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDev {
    /// Interface name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

/// Parse `/proc/net/dev`: two header lines, then `name: 16 numbers`. The
/// name ends at the first ':' (names cannot contain one), so `eth0:123`
/// without a space and long names like `enp0s31f6:` both work.
pub fn parse_net_dev(text: &str) -> Result<Vec<NetDev>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            continue;
        }
        let mut nums = [0u64; 10];
        let mut n = 0;
        for (k, v) in rest.split_ascii_whitespace().take(10).enumerate() {
            nums[k] = v.parse().map_err(|_| {
                format!(
                    "line {}: {name}: column {} ({v:?}) is not a number",
                    i + 1,
                    k + 1
                )
            })?;
            n = k + 1;
        }
        if n < 10 {
            return Err(format!(
                "line {}: {name}: expected 16 counters, found {n}",
                i + 1
            ));
        }
        out.push(NetDev {
            name: name.to_string(),
            rx_bytes: nums[0],
            rx_packets: nums[1],
            tx_bytes: nums[8],
            tx_packets: nums[9],
        });
    }
    Ok(out)
}

/// How `/sys/class/net/<if>` describes an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfaceSys {
    /// `ifindex`, which changes when the interface is re-created.
    pub ifindex: Option<u64>,
    /// True when the link resolves under `devices/virtual` (lo, veth,
    /// bridges, tun, wireguard, ...).
    pub virtual_: bool,
}

/// Read a /proc or /sys file, which must be a regular file: it is opened
/// non-blocking and checked with fstat before reading, so a FIFO (or a
/// device) put in its place is an error, never a hang. At most 64 MiB.
pub fn read_regular(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO or a device in place of a kernel file?)",
        ));
    }
    let mut s = String::new();
    f.take(64 << 20).read_to_string(&mut s)?;
    Ok(s)
}

/// Look `name` up under `<sys_root>/class/net`. An interface sysfs does not
/// know (a container whose /sys belongs to another network namespace) is
/// taken as physical, except `lo`: counting a real NIC's traffic matters
/// more than excluding an unknown one.
pub fn iface_sys(sys_root: &Path, name: &str) -> IfaceSys {
    let link = sys_root.join("class/net").join(name);
    let virtual_ = match fs::read_link(&link) {
        Ok(target) => {
            let comps: Vec<Component> = target.components().collect();
            comps.windows(2).any(|w| {
                w[0] == Component::Normal("devices".as_ref())
                    && w[1] == Component::Normal("virtual".as_ref())
            })
        }
        Err(_) => name == "lo",
    };
    let ifindex = read_regular(&link.join("ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    IfaceSys { ifindex, virtual_ }
}

/// The kernel's USER_HZ from the process's auxiliary vector (`AT_CLKTCK`),
/// which is what `getconf CLK_TCK` reports; 100 (every mainstream arch)
/// when it cannot be read.
pub fn clk_tck() -> u64 {
    const AT_NULL: u64 = 0;
    const AT_CLKTCK: u64 = 17;
    const W: usize = std::mem::size_of::<usize>();
    if let Ok(b) = fs::read("/proc/self/auxv") {
        let word = |c: &[u8]| -> u64 {
            let mut a = [0u8; W];
            a.copy_from_slice(c);
            usize::from_ne_bytes(a) as u64
        };
        for pair in b.chunks_exact(2 * W) {
            let (k, v) = (word(&pair[..W]), word(&pair[W..]));
            if k == AT_CLKTCK && v > 0 {
                return v;
            }
            if k == AT_NULL {
                break;
            }
        }
    }
    100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_full_and_short_lines() {
        let s = parse_stat(
            "cpu  10 2 3 40 5 6 7 8 9 1\ncpu0 5 1 1 20 2 3 3 4 4 0\ncpu1 5 1 2 20 3 3 4 4 5 1\nintr 1 2\nctxt 9\nbtime 1767000000\n",
        )
        .unwrap();
        assert_eq!(s.cpu.0, [10, 2, 3, 40, 5, 6, 7, 8, 9, 1]);
        assert_eq!(s.ncpu, 2);
        assert_eq!(s.btime, Some(1_767_000_000));
        // busy = 10+2+3+6+7 = 28; total = 28 + 40+5+8 = 81 (guest 9 and guest_nice 1 excluded)
        assert_eq!(s.cpu.busy(), 28);
        assert_eq!(s.cpu.total(), 81);
        // 2.4-era 4-column line: the rest is 0; no btime line is fine.
        let s = parse_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(s.cpu.0, [1, 2, 3, 4, 0, 0, 0, 0, 0, 0]);
        assert_eq!(s.btime, None);
        assert!(parse_stat("cpu0 1 2 3 4\n").is_err());
        assert_eq!(
            parse_stat("cpu 1 x 3 4\n").unwrap_err(),
            "line 1: cpu column nice (\"x\") is not a number"
        );
    }

    #[test]
    fn uptime_is_exact_centiseconds() {
        assert_eq!(
            parse_uptime_cs("350735.47 234388.90\n").unwrap(),
            35_073_547
        );
        assert_eq!(parse_uptime_cs("12.5 1").unwrap(), 1250);
        assert_eq!(parse_uptime_cs("7").unwrap(), 700);
        assert!(parse_uptime_cs("").is_err());
        assert!(parse_uptime_cs("-1.00 0").is_err());
    }

    #[test]
    fn meminfo_available_and_fallback() {
        let m =
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\n").unwrap();
        assert_eq!(
            (m.total, m.available, m.used(), m.estimated),
            (1_024_000, 614_400, 409_600, false)
        );
        // free 100 + buffers 50 + cached 200 + SReclaimable 25 = 375 KiB
        let m = parse_meminfo(
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\nSReclaimable: 25 kB\n",
        )
        .unwrap();
        assert_eq!((m.available, m.estimated), (384_000, true));
        // LXCFS: available > total -> used clamps to 0.
        let m = parse_meminfo("MemTotal: 10 kB\nMemAvailable: 20 kB\n").unwrap();
        assert_eq!(m.used(), 0);
    }

    #[test]
    fn net_dev_without_space_and_long_names() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\nenp0s31f6:18446744073709551615 2 0 0 0 0 0 0 30 4 0 0 0 0 0 0\n";
        let d = parse_net_dev(t).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].name, "enp0s31f6");
        assert_eq!(d[1].rx_bytes, u64::MAX);
        assert_eq!(
            (d[1].rx_packets, d[1].tx_bytes, d[1].tx_packets),
            (2, 30, 4)
        );
        assert!(parse_net_dev("eth0: 1 2 3\n").is_err());
    }

    #[test]
    fn clk_tck_is_sane() {
        let t = clk_tck();
        assert!(t > 0 && t <= 10_000, "{t}");
    }
}
