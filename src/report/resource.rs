//! Resource usage arithmetic: what one VM's samples say about a time window.
//!
//! This module owns the rules that turn a VM's sample stream into usage, in
//! integers, so that any way of summing the same intervals gives the same
//! bits. Both read paths use it: the raw path (every sample of the window,
//! the reference) and the rollup path (whole hours from `resource_rollup`,
//! maintained by mb-ingest with these same functions, plus raw samples at
//! the window's edges). Because every quantity is an integer sum, the two
//! paths are identical rather than merely close.
//!
//! The rules:
//!
//! - A **stream** is the samples of one (customer, VM), ordered by time,
//!   then boot id, then storage order. Each sample closes at most one
//!   **interval**, given the sample before it in the stream:
//!   - same boot and later: `[prev.ts, ts]`, the deltas of the cumulative
//!     since-boot counters (exact even when samples in between were lost);
//!     a counter that went backwards within one boot counts its new value
//!     (a reset, as mb-sample does for interfaces) and is counted as one;
//!   - otherwise a `reboot` sample: its since-boot counters over its uptime
//!     (`interval_seconds`), never reaching back before the previous sample
//!     of the stream (whose boot was still running then);
//!   - otherwise (a `first` sample, another boot without a reboot sample,
//!     two samples at one instant): no interval.
//! - An interval crossing the window's edge is split in proportion to time,
//!   in whole units: the share of `[s, e)` is `F(e) - F(s)` with
//!   `F(t) = floor(x * elapsed(t) / length)`. Shares of adjacent windows
//!   add up to the whole interval, so no byte or tick is lost or counted
//!   twice between two months.
//! - CPU is busy ticks over total ticks (a ratio of sums). Intervals whose
//!   sample is flagged `cpu_counter_backwards` or `cpu_total_mismatch`
//!   (CPU hotplug, suspend, broken steal: the sampler's ticks are known to
//!   be wrong) are left out of CPU and counted in `cpu_skipped`.
//! - Memory is weighted by covered time, in micro-percent x nanoseconds; a
//!   window with samples but no interval falls back to their plain mean.
//! - Disk is the largest `disk_used_bytes` of the VM's samples in the window.
//! - Sample statistics (count, last sample, disk, memory fallback) and the
//!   stream's events (reboots, counter resets, gaps: same-boot samples whose
//!   `seq` skipped numbers, i.e. lines that never arrived) belong to the
//!   window holding the sample's time.

use serde::Serialize;

/// One stored sample, as the arithmetic needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Event time (end of its interval), Unix ns.
    pub ts_ns: i64,
    /// Boot id.
    pub boot_id: String,
    /// Storage order (breaks ties of time and boot).
    pub rowid: i64,
    /// `first`, `ok` or `reboot`.
    pub status: Status,
    /// The sampler's sequence number.
    pub seq: i64,
    /// The sampler's interval (uptime for a reboot sample).
    pub interval_seconds: Option<f64>,
    /// Memory gauge, %.
    pub memory_percent: Option<f64>,
    /// Disk gauge, bytes.
    pub disk_used_bytes: Option<i64>,
    /// Cumulative busy ticks since boot.
    pub cpu_busy_cum: Option<i64>,
    /// Cumulative total ticks since boot.
    pub cpu_total_cum: Option<i64>,
    /// Cumulative bytes in since boot.
    pub net_in_cum: Option<i64>,
    /// Cumulative bytes out since boot.
    pub net_out_cum: Option<i64>,
    /// Flagged `cpu_counter_backwards` or `cpu_total_mismatch`.
    pub cpu_suspect: bool,
}

/// A sample's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No baseline.
    First,
    /// A normal interval.
    Ok,
    /// First sample of a new boot.
    Reboot,
}

impl Status {
    /// From the stored text (anything unknown is `first`: no interval).
    pub fn parse(s: &str) -> Status {
        match s {
            "ok" => Status::Ok,
            "reboot" => Status::Reboot,
            _ => Status::First,
        }
    }
}

/// Whether a stored `flags` list marks the sample's CPU ticks as wrong.
pub fn cpu_suspect(flags: &str) -> bool {
    flags.contains("\"cpu_counter_backwards\"") || flags.contains("\"cpu_total_mismatch\"")
}

impl Point {
    /// The stream order key.
    pub fn key(&self) -> (i64, &str, i64) {
        (self.ts_ns, &self.boot_id, self.rowid)
    }
}

/// Exact sums of one VM's usage in a window. Every field adds (the `max`
/// fields merge), so accumulators of disjoint parts combine into the whole
/// and a rollup can store signed corrections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmAcc {
    /// Samples in the window.
    pub samples: i64,
    /// Latest sample time in the window.
    pub last_ts_ns: Option<i64>,
    /// Largest disk use of those samples.
    pub max_disk: Option<i64>,
    /// Sum of their memory %, micro-percent (fallback mean).
    pub mem_sample_sum: i64,
    /// How many of them have memory.
    pub mem_samples: i64,
    /// Intervals overlapping the window.
    pub intervals: i64,
    /// Busy ticks.
    pub busy: i64,
    /// Total ticks.
    pub total: i64,
    /// Intervals counted in CPU.
    pub cpu_intervals: i64,
    /// Intervals left out of CPU (flagged).
    pub cpu_skipped: i64,
    /// Bytes in.
    pub net_in: i64,
    /// Bytes out.
    pub net_out: i64,
    /// Intervals with network counters.
    pub net_intervals: i64,
    /// Covered time, ns.
    pub covered_ns: i64,
    /// Memory % x time, micro-percent x ns.
    pub mem_w: i128,
    /// Time with memory, ns.
    pub mem_t_ns: i64,
    /// Boot changes.
    pub reboots: i64,
    /// Cumulative counters that went backwards within one boot.
    pub resets: i64,
    /// Same-boot neighbours with missing sequence numbers between them.
    pub gaps: i64,
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl VmAcc {
    /// Add `o` (the additive fields times `sign`; the maxima merge).
    pub fn add(&mut self, o: &VmAcc, sign: i64) {
        self.samples += sign * o.samples;
        self.last_ts_ns = max_opt(self.last_ts_ns, o.last_ts_ns);
        self.max_disk = max_opt(self.max_disk, o.max_disk);
        self.mem_sample_sum += sign * o.mem_sample_sum;
        self.mem_samples += sign * o.mem_samples;
        self.intervals += sign * o.intervals;
        self.busy += sign * o.busy;
        self.total += sign * o.total;
        self.cpu_intervals += sign * o.cpu_intervals;
        self.cpu_skipped += sign * o.cpu_skipped;
        self.net_in += sign * o.net_in;
        self.net_out += sign * o.net_out;
        self.net_intervals += sign * o.net_intervals;
        self.covered_ns += sign * o.covered_ns;
        self.mem_w += i128::from(sign) * o.mem_w;
        self.mem_t_ns += sign * o.mem_t_ns;
        self.reboots += sign * o.reboots;
        self.resets += sign * o.resets;
        self.gaps += sign * o.gaps;
    }

    /// Whether the VM shows up in the window at all.
    pub fn is_present(&self) -> bool {
        self.samples > 0 || self.intervals > 0
    }
}

/// A window `[start, end)` that holds everything.
pub const ALL: (i64, i64) = (i64::MIN, i64::MAX);

/// Memory % in micro-percent (the unit of exact memory sums).
fn micro(pct: f64) -> i64 {
    // Gauges are validated finite; the clamp keeps a bad stored value from
    // overflowing the products.
    (pct.clamp(-1e6, 1e6) * 1e6).round() as i64
}

/// Add the sample statistics of `c` when it lies in `[ws, we)`.
pub fn add_sample(acc: &mut VmAcc, c: &Point, (ws, we): (i64, i64)) {
    if c.ts_ns < ws || c.ts_ns >= we {
        return;
    }
    acc.samples += 1;
    acc.last_ts_ns = max_opt(acc.last_ts_ns, Some(c.ts_ns));
    acc.max_disk = max_opt(acc.max_disk, c.disk_used_bytes);
    if let Some(m) = c.memory_percent {
        acc.mem_sample_sum += micro(m);
        acc.mem_samples += 1;
    }
}

/// The interval `c` closes after `p`: `(start, deltas [busy, total, in,
/// out], reset)`.
type Interval = (i64, [Option<i64>; 4], bool);

fn interval(p: Option<&Point>, c: &Point) -> Option<Interval> {
    match p {
        Some(p) if p.boot_id == c.boot_id && c.ts_ns > p.ts_ns => {
            let mut reset = false;
            let mut d = |a: Option<i64>, b: Option<i64>| match (a, b) {
                (Some(a), Some(b)) if b >= a => Some(b - a),
                (Some(_), Some(b)) => {
                    reset = true;
                    Some(b)
                }
                _ => None,
            };
            let deltas = [
                d(p.cpu_busy_cum, c.cpu_busy_cum),
                d(p.cpu_total_cum, c.cpu_total_cum),
                d(p.net_in_cum, c.net_in_cum),
                d(p.net_out_cum, c.net_out_cum),
            ];
            Some((p.ts_ns, deltas, reset))
        }
        _ if c.status == Status::Reboot => {
            let up = c.interval_seconds.filter(|s| *s > 0.0)?;
            let mut a = c.ts_ns.saturating_sub((up * 1e9) as i64);
            if let Some(p) = p {
                a = a.max(p.ts_ns);
            }
            (a < c.ts_ns).then_some((
                a,
                [c.cpu_busy_cum, c.cpu_total_cum, c.net_in_cum, c.net_out_cum],
                false,
            ))
        }
        _ => None,
    }
}

/// `x`'s share of `[ws, we)` for an interval `[a, b]` (see the module doc).
fn share(x: i64, a: i64, b: i64, ws: i64, we: i64) -> i64 {
    let (a, b, x) = (i128::from(a), i128::from(b), i128::from(x.max(0)));
    let len = b - a;
    let f = |t: i64| x * (i128::from(t) - a).clamp(0, len) / len;
    // The share never exceeds x, which fits.
    (f(we) - f(ws)) as i64
}

/// Add `sign` times what the interval `c` closes after `p` (its
/// predecessor in the stream) contributes to `[ws, we)`, and the stream
/// events `c` shows when it lies in the window.
pub fn add_pair(acc: &mut VmAcc, p: Option<&Point>, c: &Point, (ws, we): (i64, i64), sign: i64) {
    if c.ts_ns >= ws && c.ts_ns < we {
        let same_boot = p.is_some_and(|p| p.boot_id == c.boot_id);
        if c.status == Status::Reboot || p.is_some_and(|p| p.boot_id != c.boot_id) {
            acc.reboots += sign;
        }
        if let (true, Some(p)) = (same_boot, p) {
            if c.seq > p.seq.saturating_add(1) {
                acc.gaps += sign;
            }
        }
    }
    let Some((a, d, reset)) = interval(p, c) else {
        return;
    };
    let b = c.ts_ns;
    let overlap = i128::from(b.min(we)) - i128::from(a.max(ws));
    if overlap <= 0 {
        return;
    }
    let overlap = overlap as i64;
    if reset && c.ts_ns >= ws && c.ts_ns < we {
        acc.resets += sign;
    }
    acc.intervals += sign;
    acc.covered_ns += sign * overlap;
    if let (Some(busy), Some(total)) = (d[0], d[1]) {
        if c.cpu_suspect {
            acc.cpu_skipped += sign;
        } else {
            acc.busy += sign * share(busy, a, b, ws, we);
            acc.total += sign * share(total, a, b, ws, we);
            acc.cpu_intervals += sign;
        }
    }
    if d[2].is_some() || d[3].is_some() {
        acc.net_intervals += sign;
    }
    if let Some(x) = d[2] {
        acc.net_in += sign * share(x, a, b, ws, we);
    }
    if let Some(x) = d[3] {
        acc.net_out += sign * share(x, a, b, ws, we);
    }
    if let Some(m) = c.memory_percent {
        acc.mem_w += i128::from(sign) * i128::from(micro(m)) * i128::from(overlap);
        acc.mem_t_ns += sign * overlap;
    }
}

/// What `points` (consecutive samples of one stream, in stream order, the
/// first one following `before`) contribute to `window`: their sample
/// statistics where they lie in it and the intervals they close.
pub fn stream_usage(before: Option<&Point>, points: &[Point], window: (i64, i64)) -> VmAcc {
    let mut acc = VmAcc::default();
    let mut prev: Option<&Point> = before;
    for c in points {
        add_sample(&mut acc, c, window);
        add_pair(&mut acc, prev, c, window, 1);
        prev = Some(c);
    }
    acc
}

/// The usage of one VM in a period, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmUsage {
    /// VM.
    pub vm_id: String,
    /// Whether the registry lists this VM for the customer.
    pub registered: bool,
    /// Samples in the period.
    pub samples: u64,
    /// Latest sample in the period, Unix ns.
    pub last_sample_ns: Option<i64>,
    /// Busy ticks / total ticks x 100.
    pub avg_cpu_percent: Option<f64>,
    /// Time-weighted memory %.
    pub avg_memory_percent: Option<f64>,
    /// Largest disk use seen, bytes.
    pub max_disk_bytes: Option<i64>,
    /// Bytes received (None: no network counters).
    pub net_in_bytes: Option<i64>,
    /// Bytes sent.
    pub net_out_bytes: Option<i64>,
    /// Share of the period covered by its intervals, 0..=1.
    pub coverage: Option<f64>,
    /// Busy ticks.
    pub busy_ticks: i64,
    /// Total ticks.
    pub total_ticks: i64,
    /// Intervals left out of CPU because the sampler flagged their ticks.
    pub cpu_skipped_intervals: u64,
    /// Boot changes seen.
    pub reboots: u64,
    /// Counter resets within a boot.
    pub counter_resets: u64,
    /// Gaps (lost lines) between same-boot samples.
    pub gaps: u64,
}

/// CPU %, memory % from exact sums.
pub fn cpu_percent(a: &VmAcc) -> Option<f64> {
    (a.total > 0).then(|| a.busy as f64 / a.total as f64 * 100.0)
}

/// Time-weighted memory %, or the plain mean of the samples without time.
pub fn memory_percent(a: &VmAcc) -> Option<f64> {
    if a.mem_t_ns > 0 {
        Some(a.mem_w as f64 / a.mem_t_ns as f64 / 1e6)
    } else if a.mem_samples > 0 {
        Some(a.mem_sample_sum as f64 / a.mem_samples as f64 / 1e6)
    } else {
        None
    }
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl VmUsage {
    /// The report line of one VM over a period of `period_ns`.
    pub fn from_acc(vm_id: &str, registered: bool, a: &VmAcc, period_ns: i64) -> VmUsage {
        VmUsage {
            vm_id: vm_id.to_string(),
            registered,
            samples: nonneg(a.samples),
            last_sample_ns: a.last_ts_ns,
            avg_cpu_percent: cpu_percent(a),
            avg_memory_percent: memory_percent(a),
            max_disk_bytes: a.max_disk,
            net_in_bytes: (a.net_intervals > 0).then_some(a.net_in),
            net_out_bytes: (a.net_intervals > 0).then_some(a.net_out),
            coverage: (period_ns > 0).then(|| (a.covered_ns as f64 / period_ns as f64).min(1.0)),
            busy_ticks: a.busy,
            total_ticks: a.total,
            cpu_skipped_intervals: nonneg(a.cpu_skipped),
            reboots: nonneg(a.reboots),
            counter_resets: nonneg(a.resets),
            gaps: nonneg(a.gaps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ts_s: i64, boot: &str, status: Status, seq: i64, busy: i64, net: i64) -> Point {
        Point {
            ts_ns: ts_s * 1_000_000_000,
            boot_id: boot.into(),
            rowid: ts_s,
            status,
            seq,
            interval_seconds: Some(300.0),
            memory_percent: Some(50.0),
            disk_used_bytes: Some(1000),
            cpu_busy_cum: Some(busy),
            cpu_total_cum: Some(busy * 6),
            net_in_cum: Some(net),
            net_out_cum: Some(0),
            cpu_suspect: false,
        }
    }

    #[test]
    fn a_lost_sample_loses_no_usage_and_edges_split_by_time() {
        // Samples every 300 s; the one at 600 (seq 3) is lost. Window [0, 1200).
        let v = [
            p(-300, "b", Status::Ok, 1, 0, 0),
            p(300, "b", Status::Ok, 2, 100, 6_000),
            p(900, "b", Status::Ok, 4, 400, 18_000),
            p(1500, "b", Status::Ok, 5, 500, 24_000),
        ];
        let a = stream_usage(Some(&v[0]), &v[1..], (0, 1_200_000_000_000));
        // [-300,300] crosses 0: half of 6,000; [300,900] whole 12,000;
        // [900,1500] crosses 1200: half of 6,000.
        assert_eq!(a.net_in, 3_000 + 12_000 + 3_000);
        assert_eq!(a.busy, 50 + 300 + 50);
        assert_eq!(a.total, 300 + 1_800 + 300);
        assert_eq!(a.covered_ns, 1_200_000_000_000);
        assert_eq!((a.samples, a.gaps, a.intervals), (2, 1, 3));
    }

    #[test]
    fn shares_of_adjacent_windows_add_up_to_the_interval() {
        // 1,000 bytes over 3 s split at 1 s and 2 s: 333 + 333 + 334.
        let v = vec![
            p(0, "b", Status::Ok, 1, 0, 0),
            p(3, "b", Status::Ok, 2, 7, 1_000),
        ];
        let s = 1_000_000_000;
        let parts: Vec<i64> = [(0, s), (s, 2 * s), (2 * s, 3 * s)]
            .iter()
            .map(|w| stream_usage(None, &v, *w).net_in)
            .collect();
        assert_eq!(parts, [333, 333, 334]);
    }

    #[test]
    fn reboot_counts_since_boot_and_never_before_the_previous_sample() {
        let mut r = p(1000, "b2", Status::Reboot, 9, 5, 500);
        r.interval_seconds = Some(200.0);
        let v = vec![p(100, "b1", Status::Ok, 8, 10, 1_000), r.clone()];
        let a = stream_usage(None, &v, (0, 2_000_000_000_000));
        assert_eq!(
            (a.net_in, a.covered_ns, a.reboots),
            (500, 200_000_000_000, 1)
        );
        // Uptime reaching back before the previous sample is clipped to it.
        r.interval_seconds = Some(5000.0);
        let a = stream_usage(Some(&v[0]), &[r], (0, 2_000_000_000_000));
        assert_eq!(a.covered_ns, 900_000_000_000);
    }

    #[test]
    fn flagged_cpu_is_skipped_and_counted_and_resets_are_counted() {
        let mut c = p(300, "b", Status::Ok, 2, 100, 10);
        c.cpu_suspect = true;
        let d = p(600, "b", Status::Ok, 3, 150, 4); // net went back: reset
        let v = vec![p(0, "b", Status::Ok, 1, 0, 0), c, d];
        let a = stream_usage(None, &v, ALL);
        assert_eq!((a.busy, a.cpu_skipped, a.cpu_intervals), (50, 1, 1));
        assert_eq!((a.net_in, a.resets), (10 + 4, 1));
        assert!(cpu_suspect(r#"["iface_new","cpu_total_mismatch"]"#));
        assert!(!cpu_suspect(r#"["counter_reset"]"#));
    }
}
