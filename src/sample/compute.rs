//! From two readings to one interval: classification, deltas, flags.
//!
//! Pure functions over a [`Reading`] and the previous [`State`], so every
//! edge case of the research note is a unit test here and an end-to-end
//! test over fixture trees in `tests/sample.rs`. The rules (research note
//! section 5.3):
//!
//! - **Classification**: no usable state is a `first` run (deltas null). A
//!   different boot id is a `reboot` (previous counters are taken as 0 and
//!   the interval is the uptime); without boot ids, btime moving more than
//!   15 s or uptime going back means a reboot, so NTP jitter of btime alone
//!   never does. Otherwise the interval is the uptime difference, immune to
//!   wall-clock steps; a wall clock that disagrees by more than 60 s is
//!   flagged `clock_jump`. Uptime going back within one boot id cannot
//!   happen on a sane kernel: it is flagged `uptime_backwards`, deltas are
//!   null and the baseline restarts.
//! - **CPU**: sar's arithmetic over the per-CPU lines ([`super::cpu`]:
//!   offline CPUs frozen, re-onlined ones counted from 0); busy =
//!   user+nice+system+irq+softirq, total = the sum of the per-CPU
//!   intervals, guest never added twice. Without per-CPU lines on both
//!   sides (a state from an older mb-sample), per-column deltas of the
//!   aggregate line clamped at 0 (`cpu_counter_backwards`). cpu_percent is
//!   null when total is 0. A total outside what the CPUs online throughout
//!   and all the CPUs spanned give over the interval is flagged
//!   `cpu_total_mismatch` (suspend, broken steal), not "fixed".
//! - **Network**: interfaces are matched by name, or by ifindex when
//!   renamed. A direction whose bytes or packets went back is reset: its
//!   delta is its current value (`counter_reset`), never a guessed 2^32
//!   wrap, so no phantom 4 GiB; the other direction keeps its plain delta.
//!   A changed ifindex resets both. An interface absent from the previous state
//!   (which lists every interface the kernel had) was created since: its
//!   delta is its current counters (`iface_new`). A vanished one is flagged
//!   `iface_vanished`; its unsampled tail is lost.
//! - **Cumulative counters** (`*_cum`): previous cumulative + delta within a
//!   boot, the raw since-boot counters on a first run or after a reboot. The
//!   reporter can recover a lost line's usage from its neighbours' `*_cum`.
//! - A source that could not be read this time keeps its previous baseline
//!   in the new state (within the same boot), so the next run's delta covers
//!   both intervals exactly instead of losing one.

use super::cpu;
use super::disk::DiskTotals;
use super::source::{CpuTicks, IfaceSys, Mem, NetDev, Stat};
use super::state::{CpuState, IfState, NetState, State, STATE_VERSION};
use crate::events::{Resource, SampleStatus};

/// Wall clock and uptime may disagree by this much before `clock_jump`.
pub const CLOCK_JUMP_MS: u64 = 60_000;

/// btime may move this much (NTP steps) without meaning a reboot.
pub const BTIME_TOLERANCE_S: u64 = 15;

/// One interface as read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfReading {
    /// Counters from /proc/net/dev.
    pub dev: NetDev,
    /// ifindex and virtual-ness from /sys/class/net.
    pub sys: IfaceSys,
    /// Whether it counts towards net_in/out (physical, or matched by --iface).
    pub included: bool,
}

/// Everything read in one run; a source that failed is None and its error
/// is in `errors`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    /// Wall clock, Unix milliseconds.
    pub wall_ms: i64,
    /// /proc/uptime in centiseconds.
    pub uptime_cs: u64,
    /// Kernel boot id.
    pub boot_id: Option<String>,
    /// /proc/stat.
    pub stat: Option<Stat>,
    /// USER_HZ.
    pub clk_tck: u64,
    /// /proc/meminfo.
    pub mem: Option<Mem>,
    /// /proc/net/dev joined with /sys/class/net.
    pub net: Option<Vec<IfReading>>,
    /// statvfs of the chosen filesystems.
    pub disk: Option<DiskTotals>,
    /// What could not be read.
    pub errors: Vec<String>,
}

/// Identity and tuning the computation needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The VM id (stored in the state, checked on load).
    pub vm_id: String,
    /// `/etc/machine-id`, stored in the state.
    pub machine_id: Option<String>,
    /// Intervals longer than this (centiseconds) are flagged `long_gap`.
    pub long_gap_cs: u64,
}

/// How this reading relates to the previous state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No usable previous state.
    First,
    /// The machine rebooted since.
    Reboot,
    /// Same boot, this many centiseconds later.
    Same(u64),
    /// Same boot id but uptime went back: no interval.
    UptimeBackwards,
}

/// Classify `r` against `prev`.
pub fn classify(prev: Option<&State>, r: &Reading) -> Class {
    let Some(p) = prev else { return Class::First };
    let cur_btime = r.stat.as_ref().and_then(|s| s.btime);
    let same_boot = match (p.boot_id.as_deref(), r.boot_id.as_deref()) {
        (Some(a), Some(b)) => a == b,
        _ => {
            let btime_ok = match (p.btime, cur_btime) {
                (Some(a), Some(b)) => a.abs_diff(b) <= BTIME_TOLERANCE_S,
                _ => true,
            };
            btime_ok && r.uptime_cs >= p.uptime_cs
        }
    };
    if !same_boot {
        Class::Reboot
    } else if r.uptime_cs < p.uptime_cs {
        Class::UptimeBackwards
    } else {
        Class::Same(r.uptime_cs - p.uptime_cs)
    }
}

/// `100 * num / den` rounded half-up to 2 decimals in integer arithmetic
/// (so hand-computed expectations are exact); None when `den` is 0.
pub fn pct2(num: u64, den: u64) -> Option<f64> {
    if den == 0 {
        return None;
    }
    let num = u128::from(num.min(den));
    let den = u128::from(den);
    let hundredths = (num * 20_000 + den) / (2 * den);
    Some(hundredths as f64 / 100.0)
}

/// Flags in detection order, each once.
#[derive(Debug, Default)]
struct Flags(Vec<String>);

impl Flags {
    fn add(&mut self, f: &str) {
        if !self.0.iter().any(|x| x == f) {
            self.0.push(f.to_string());
        }
    }
}

/// The computed interval: the event body and the state to commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// The `resource` event body.
    pub body: Resource,
    /// The state for the next run.
    pub state: State,
    /// The millisecond part of the event id `<vm>:<boot>:<ms>`: the uptime
    /// in milliseconds, except that within one boot it always grows. /proc/uptime
    /// ticks every 10 ms, so two runs in the same tick (a retry right after
    /// a failed delivery) would otherwise share an id with different content,
    /// which mb-ingest rightly calls a conflict; those get the previous
    /// id's value + 1 ms.
    pub id_ms: u64,
}

/// Compute the interval between `prev` and `r`.
pub fn compute(r: &Reading, prev: Option<&State>, ctx: &Ctx) -> Interval {
    let class = classify(prev, r);
    let mut flags = Flags::default();
    let mut errors = r.errors.clone();
    let same_boot = matches!(class, Class::Same(_) | Class::UptimeBackwards);

    let (status, interval_cs) = match class {
        Class::First => (SampleStatus::First, None),
        Class::Reboot => (SampleStatus::Reboot, Some(r.uptime_cs)),
        Class::Same(iv) => (SampleStatus::Ok, Some(iv)),
        Class::UptimeBackwards => {
            flags.add("uptime_backwards");
            (SampleStatus::Ok, None)
        }
    };
    if let (Class::Same(iv), Some(p)) = (class, prev) {
        let wall = r.wall_ms.saturating_sub(p.ts_ms);
        let up_ms = i64::try_from(iv.saturating_mul(10)).unwrap_or(i64::MAX);
        if wall.abs_diff(up_ms) > CLOCK_JUMP_MS {
            flags.add("clock_jump");
        }
        if iv > ctx.long_gap_cs {
            flags.add("long_gap");
        }
    }

    // CPU.
    let prev_cpu = prev.and_then(|p| p.cpu.as_ref()).filter(|_| same_boot);
    let mut cpu_delta: Option<(u64, u64)> = None;
    let mut cpu_cum: Option<(u64, u64)> = None;
    // For the sanity check: how many CPUs the interval spans at least
    // (online throughout) and at most (offline or back online since
    // included); the online CPUs when sar's rules are not used.
    let online = r.stat.as_ref().map_or(0, |s| s.ncpu);
    let mut span = (online, online);
    let new_cpu = match &r.stat {
        None => prev_cpu.cloned(),
        Some(s) => {
            let mut per_cpu = s.cpus.clone();
            let raw = (s.cpu.busy(), s.cpu.total());
            match (class, prev_cpu) {
                (Class::Reboot, _) => {
                    cpu_delta = Some(raw);
                    cpu_cum = Some(raw);
                }
                (Class::Same(_), Some(pc)) => {
                    let d = if pc.per_cpu.is_empty() || s.cpus.is_empty() {
                        // No per-CPU lines on one side (a state from an
                        // older mb-sample): the aggregate line, clamped.
                        let (d, backwards) = cpu_deltas(&pc.ticks, &s.cpu);
                        if backwards {
                            flags.add("cpu_counter_backwards");
                        }
                        per_cpu = s.cpus.clone();
                        (d.busy(), d.total())
                    } else {
                        let sd = cpu::sar_delta(&pc.per_cpu, &s.cpus);
                        if sd.hotplug {
                            flags.add("cpu_hotplug");
                        }
                        if sd.iowait_backwards {
                            flags.add("cpu_iowait_backwards");
                        }
                        if sd.backwards {
                            flags.add("cpu_counter_backwards");
                        }
                        span = (sd.steady, sd.spanned);
                        per_cpu = sd.baseline;
                        (sd.busy, sd.total)
                    };
                    cpu_delta = Some(d);
                    cpu_cum = Some((
                        pc.busy_cum.saturating_add(d.0),
                        pc.total_cum.saturating_add(d.1),
                    ));
                }
                // Uptime went back: keep the cumulative where it was.
                (Class::UptimeBackwards, Some(pc)) => cpu_cum = Some((pc.busy_cum, pc.total_cum)),
                // First run, or no CPU baseline in this boot: since-boot raw.
                _ => cpu_cum = Some(raw),
            }
            cpu_cum.map(|(b, t)| CpuState {
                ticks: s.cpu,
                busy_cum: b,
                total_cum: t,
                per_cpu,
            })
        }
    };
    if let (Some((_, total)), Some(iv)) = (cpu_delta, interval_cs) {
        // Sanity: total ≈ ncpu x clk_tck x interval, within 2 s of every
        // CPU plus 5 % (research note 5.3.3); across a hotplug, between
        // the CPUs online throughout and all the CPUs the interval spans.
        let (lo, hi) = span;
        if hi > 0 {
            let per_cpu = r.clk_tck as f64 * iv as f64 / 100.0;
            let tol = |n: u64| n as f64 * r.clk_tck as f64 * 2.0 + n as f64 * per_cpu * 0.05;
            let (min, max) = (lo as f64 * per_cpu - tol(lo), hi as f64 * per_cpu + tol(hi));
            if (total as f64) < min || (total as f64) > max {
                flags.add("cpu_total_mismatch");
            }
        }
    }

    // Network.
    let prev_net = prev.and_then(|p| p.net.as_ref()).filter(|_| same_boot);
    let mut net_delta: Option<(u64, u64)> = None;
    let mut net_cum: Option<(u64, u64)> = None;
    let new_net = match &r.net {
        None => prev_net.cloned(),
        Some(cur) => {
            let raw = cur
                .iter()
                .filter(|i| i.included)
                .fold((0u64, 0u64), |a, i| {
                    (
                        a.0.saturating_add(i.dev.rx_bytes),
                        a.1.saturating_add(i.dev.tx_bytes),
                    )
                });
            match (class, prev_net) {
                (Class::Reboot, _) => {
                    net_delta = Some(raw);
                    net_cum = Some(raw);
                }
                (Class::Same(_), Some(pn)) => {
                    let d = net_deltas(cur, pn, &mut flags);
                    net_delta = Some(d);
                    net_cum = Some((
                        pn.in_cum.saturating_add(d.0),
                        pn.out_cum.saturating_add(d.1),
                    ));
                }
                (Class::UptimeBackwards, Some(pn)) => net_cum = Some((pn.in_cum, pn.out_cum)),
                _ => net_cum = Some(raw),
            }
            net_cum.map(|(i, o)| NetState {
                ifaces: cur
                    .iter()
                    .map(|i| IfState {
                        name: i.dev.name.clone(),
                        ifindex: i.sys.ifindex,
                        included: i.included,
                        rx_bytes: i.dev.rx_bytes,
                        tx_bytes: i.dev.tx_bytes,
                        rx_packets: i.dev.rx_packets,
                        tx_packets: i.dev.tx_packets,
                    })
                    .collect(),
                in_cum: i,
                out_cum: o,
            })
        }
    };

    if r.mem.is_some_and(|m| m.estimated) {
        flags.add("mem_available_estimated");
    }

    // Everything on the wire must fit SQLite's signed INTEGER; a bigger
    // value (a bogus counter near u64::MAX) is written as null and named
    // in errors rather than clamped into a wrong number.
    let mut fit = |v: Option<u64>, name: &str| -> Option<u64> {
        match v {
            Some(n) if n > i64::MAX as u64 => {
                errors.push(format!(
                    "{name}: {n} is beyond the event contract's range (2^63-1); written as null"
                ));
                None
            }
            other => other,
        }
    };
    let seq = prev.map_or(1, |p| p.seq.saturating_add(1));
    let uptime_ms = r.uptime_cs.saturating_mul(10);
    let id_ms = match prev {
        Some(p) if same_boot && p.id_ms >= uptime_ms => p.id_ms.saturating_add(1),
        _ => uptime_ms,
    };
    let body = Resource {
        interval_seconds: interval_cs.map(|cs| cs as f64 / 100.0),
        status,
        flags: Vec::new(),
        boot_id: boot_label(r),
        seq,
        cpu_percent: cpu_delta.and_then(|(b, t)| pct2(b, t)),
        cpu_busy_ticks: fit(cpu_delta.map(|d| d.0), "cpu_busy_ticks"),
        cpu_total_ticks: fit(cpu_delta.map(|d| d.1), "cpu_total_ticks"),
        ncpu: r.stat.as_ref().map(|s| s.ncpu),
        clk_tck: Some(r.clk_tck),
        memory_percent: r.mem.and_then(|m| pct2(m.used(), m.total)),
        memory_used_bytes: fit(r.mem.map(|m| m.used()), "memory_used_bytes"),
        memory_total_bytes: fit(r.mem.map(|m| m.total), "memory_total_bytes"),
        disk_used_bytes: fit(r.disk.map(|d| d.used), "disk_used_bytes"),
        disk_total_bytes: fit(r.disk.map(|d| d.size), "disk_total_bytes"),
        net_in_bytes: fit(net_delta.map(|d| d.0), "net_in_bytes"),
        net_out_bytes: fit(net_delta.map(|d| d.1), "net_out_bytes"),
        cpu_busy_ticks_cum: fit(cpu_cum.map(|c| c.0), "cpu_busy_ticks_cum"),
        cpu_total_ticks_cum: fit(cpu_cum.map(|c| c.1), "cpu_total_ticks_cum"),
        net_in_bytes_cum: fit(net_cum.map(|c| c.0), "net_in_bytes_cum"),
        net_out_bytes_cum: fit(net_cum.map(|c| c.1), "net_out_bytes_cum"),
        errors: Vec::new(),
    };
    let body = Resource {
        flags: flags.0,
        errors,
        ..body
    };
    let state = State {
        v: STATE_VERSION,
        vm_id: ctx.vm_id.clone(),
        machine_id: ctx.machine_id.clone(),
        boot_id: r.boot_id.clone(),
        btime: r.stat.as_ref().and_then(|s| s.btime),
        uptime_cs: r.uptime_cs,
        id_ms,
        ts_ms: r.wall_ms,
        seq,
        cpu: new_cpu,
        net: new_net,
    };
    Interval { body, state, id_ms }
}

/// The boot id for the line: the kernel's, else one derived from btime,
/// else "unknown" (the contract requires a non-empty value).
fn boot_label(r: &Reading) -> String {
    match (&r.boot_id, r.stat.as_ref().and_then(|s| s.btime)) {
        (Some(b), _) => b.clone(),
        (None, Some(bt)) => format!("btime-{bt}"),
        (None, None) => "unknown".to_string(),
    }
}

/// Per-column deltas, clamped at 0; true when any column went back.
/// guest/guest_nice deltas are computed too but never enter busy/total.
fn cpu_deltas(prev: &CpuTicks, cur: &CpuTicks) -> (CpuTicks, bool) {
    let mut d = [0u64; 10];
    let mut backwards = false;
    for (k, slot) in d.iter_mut().enumerate() {
        match cur.0[k].checked_sub(prev.0[k]) {
            Some(v) => *slot = v,
            None => backwards = true,
        }
    }
    (CpuTicks(d), backwards)
}

/// Network deltas over the included interfaces, same boot.
fn net_deltas(cur: &[IfReading], prev: &NetState, flags: &mut Flags) -> (u64, u64) {
    let mut matched = vec![false; prev.ifaces.len()];
    let mut total = (0u64, 0u64);
    for i in cur {
        // By name first; else a renamed interface keeps its ifindex.
        let by_name = prev.ifaces.iter().position(|p| p.name == i.dev.name);
        let pos = by_name.or_else(|| {
            let idx = i.sys.ifindex?;
            prev.ifaces
                .iter()
                .position(|p| p.ifindex == Some(idx) && !cur.iter().any(|c| c.dev.name == p.name))
        });
        if let Some(k) = pos {
            matched[k] = true;
        }
        if !i.included {
            continue;
        }
        let d = match pos.map(|k| &prev.ifaces[k]) {
            None => {
                flags.add("iface_new");
                (i.dev.rx_bytes, i.dev.tx_bytes)
            }
            Some(p) => {
                // A re-created interface restarts both directions. Otherwise
                // each direction is judged on its own: a 32-bit driver
                // wrapping rx (or a reset of one counter) must not also
                // bill tx's whole since-boot counter again.
                let recreated = matches!((p.ifindex, i.sys.ifindex), (Some(a), Some(b)) if a != b);
                let rx_back =
                    recreated || i.dev.rx_bytes < p.rx_bytes || i.dev.rx_packets < p.rx_packets;
                let tx_back =
                    recreated || i.dev.tx_bytes < p.tx_bytes || i.dev.tx_packets < p.tx_packets;
                if rx_back || tx_back {
                    flags.add("counter_reset");
                }
                let dir = |back: bool, cur: u64, prev: u64| if back { cur } else { cur - prev };
                (
                    dir(rx_back, i.dev.rx_bytes, p.rx_bytes),
                    dir(tx_back, i.dev.tx_bytes, p.tx_bytes),
                )
            }
        };
        total = (total.0.saturating_add(d.0), total.1.saturating_add(d.1));
    }
    if prev
        .ifaces
        .iter()
        .zip(&matched)
        .any(|(p, m)| p.included && !m)
    {
        flags.add("iface_vanished");
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx {
            vm_id: "vm-1".into(),
            machine_id: None,
            long_gap_cs: 45_000,
        }
    }

    fn iface(name: &str, idx: u64, rx: u64, tx: u64) -> IfReading {
        IfReading {
            dev: NetDev {
                name: name.into(),
                rx_bytes: rx,
                rx_packets: rx / 100,
                tx_bytes: tx,
                tx_packets: tx / 100,
            },
            sys: IfaceSys {
                ifindex: Some(idx),
                virtual_: false,
            },
            included: true,
        }
    }

    fn reading(uptime_cs: u64, cpu: [u64; 10], net: Vec<IfReading>) -> Reading {
        Reading {
            wall_ms: 1_000_000 + uptime_cs as i64 * 10,
            uptime_cs,
            boot_id: Some("boot-a".into()),
            stat: Some(Stat {
                cpu: CpuTicks(cpu),
                ncpu: 2,
                cpus: vec![],
                btime: Some(1_767_000_000),
            }),
            clk_tck: 100,
            mem: Some(Mem {
                total: 1000,
                available: 250,
                estimated: false,
            }),
            net: Some(net),
            disk: None,
            errors: vec![],
        }
    }

    #[test]
    fn pct_rounding() {
        assert_eq!(pct2(1, 3), Some(33.33));
        assert_eq!(pct2(2, 3), Some(66.67));
        assert_eq!(pct2(1, 8), Some(12.5));
        assert_eq!(pct2(0, 0), None);
        assert_eq!(pct2(5, 5), Some(100.0));
    }

    #[test]
    fn first_then_normal_interval() {
        let a = reading(
            100_000,
            [1000, 0, 500, 8000, 100, 0, 0, 0, 0, 0],
            vec![iface("eth0", 2, 5000, 700)],
        );
        let i1 = compute(&a, None, &ctx());
        assert_eq!(i1.body.status, SampleStatus::First);
        assert_eq!(i1.body.cpu_percent, None);
        assert_eq!(i1.body.net_in_bytes, None);
        assert_eq!(i1.body.cpu_busy_ticks_cum, Some(1500));
        assert_eq!(i1.body.memory_percent, Some(75.0));
        // 300 s later on 2 CPUs at 100 Hz: 60000 ticks; busy 900+300 = 1200.
        let b = reading(
            130_000,
            [1900, 0, 800, 66_800, 100, 0, 0, 0, 0, 0],
            vec![iface("eth0", 2, 9000, 1700)],
        );
        let i2 = compute(&b, Some(&i1.state), &ctx());
        assert_eq!(i2.body.status, SampleStatus::Ok);
        assert_eq!(i2.body.interval_seconds, Some(300.0));
        assert_eq!(i2.body.cpu_busy_ticks, Some(1200));
        assert_eq!(i2.body.cpu_total_ticks, Some(60_000));
        assert_eq!(i2.body.cpu_percent, Some(2.0));
        assert_eq!(
            (i2.body.net_in_bytes, i2.body.net_out_bytes),
            (Some(4000), Some(1000))
        );
        assert_eq!(i2.body.net_in_bytes_cum, Some(9000));
        assert_eq!(i2.body.seq, 2);
        assert!(i2.body.flags.is_empty(), "{:?}", i2.body.flags);
    }

    #[test]
    fn renamed_interface_keeps_counting() {
        let a = reading(100_000, [0; 10], vec![iface("eth0", 2, 5000, 700)]);
        let i1 = compute(&a, None, &ctx());
        let b = reading(130_000, [0; 10], vec![iface("ens3", 2, 6000, 800)]);
        let i2 = compute(&b, Some(&i1.state), &ctx());
        assert_eq!(i2.body.net_in_bytes, Some(1000));
        assert_eq!(i2.body.net_out_bytes, Some(100));
        assert!(!i2.body.flags.iter().any(|f| f.starts_with("iface")));
    }

    #[test]
    fn btime_without_boot_id() {
        let mut a = reading(100_000, [0; 10], vec![]);
        a.boot_id = None;
        let i1 = compute(&a, None, &ctx());
        let mut b = reading(130_000, [0; 10], vec![]);
        b.boot_id = None;
        b.stat.as_mut().unwrap().btime = Some(1_767_000_010);
        assert_eq!(classify(Some(&i1.state), &b), Class::Same(30_000));
        b.stat.as_mut().unwrap().btime = Some(1_767_000_100);
        assert_eq!(classify(Some(&i1.state), &b), Class::Reboot);
        let mut c = reading(50, [0; 10], vec![]);
        c.boot_id = None;
        assert_eq!(classify(Some(&i1.state), &c), Class::Reboot);
        assert_eq!(
            compute(&c, Some(&i1.state), &ctx()).body.boot_id,
            "btime-1767000000"
        );
    }

    #[test]
    fn uptime_backwards_in_one_boot_is_an_anomaly() {
        let a = reading(
            100_000,
            [1000, 0, 0, 1000, 0, 0, 0, 0, 0, 0],
            vec![iface("eth0", 2, 10, 10)],
        );
        let i1 = compute(&a, None, &ctx());
        let b = reading(
            90_000,
            [2000, 0, 0, 2000, 0, 0, 0, 0, 0, 0],
            vec![iface("eth0", 2, 20, 20)],
        );
        let i2 = compute(&b, Some(&i1.state), &ctx());
        assert_eq!(i2.body.status, SampleStatus::Ok);
        assert_eq!(i2.body.flags, ["uptime_backwards"]);
        assert_eq!(
            (
                i2.body.interval_seconds,
                i2.body.cpu_busy_ticks,
                i2.body.net_in_bytes
            ),
            (None, None, None)
        );
        // The cumulative counters stay put and the baseline restarts here.
        assert_eq!(i2.body.cpu_busy_ticks_cum, Some(1000));
        assert_eq!(i2.state.cpu.as_ref().map(|c| c.ticks.0[0]), Some(2000));
        // The id still grows within the boot.
        assert_eq!(i2.id_ms, 1_000_001);
    }

    #[test]
    fn huge_values_become_null_with_error() {
        let a = reading(100, [0; 10], vec![iface("eth0", 2, u64::MAX, 1)]);
        let i = compute(&a, None, &ctx());
        assert_eq!(i.body.net_in_bytes_cum, None);
        assert_eq!(i.body.net_out_bytes_cum, Some(1));
        assert!(
            i.body.errors[0].starts_with("net_in_bytes_cum: 18446744073709551615"),
            "{:?}",
            i.body.errors
        );
    }
}
