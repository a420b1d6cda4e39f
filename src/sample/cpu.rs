//! sar's CPU arithmetic over the per-CPU lines of /proc/stat.
//!
//! The aggregate `cpu` line cannot be trusted across CPU hotplug: it sums
//! the *possible* CPUs, and when one goes offline or comes back its idle
//! (and iowait) restart from 0 or from a stale value, so a plain delta of
//! the aggregate line clamps idle to 0 and reports 100 % busy. sysstat
//! therefore recomputes CPU "all" from the `cpuN` lines, and so do we, with
//! the same rules (read from sysstat's source, version 12.x):
//!
//! - `sa_common.c` `get_global_cpu_statistics()`: a CPU whose line is
//!   missing now is offline: its current values are its previous ones
//!   (frozen, so it adds nothing, and it does not "jump from zero" when it
//!   returns; the frozen values stay in the state). A CPU with no previous
//!   values (it came online after the previous sample) is left out of this
//!   interval and is only a baseline for the next one.
//! - `rd_stats.c` `get_per_cpu_interval()` (commit 01ce5f2): a CPU's
//!   interval is the difference of its eight columns (guest and guest_nice
//!   never, they are inside user and nice), plus the amount by which guest
//!   outgrew user (or guest_nice nice). When iowait went back: if idle went
//!   forward it is iowait accounting noise (previous iowait := current),
//!   otherwise the CPU came back online (previous iowait := 0). When idle
//!   went back the CPU came back online: previous idle := 0. Previous
//!   values within 0x7ffff of u64::MAX are an overflow, not a hotplug.
//! - The interval of "all" is the sum of the per-CPU intervals; each
//!   displayed column is (Σ current − Σ adjusted previous) / interval, 0
//!   when negative (`ll_sp_value`); %system is system+irq+softirq
//!   (`pr_stats.c` `print_cpu_stats()`, `sar -u`).
//!
//! Busy ticks are user + nice + (system+irq+softirq) as sar computes those
//! three columns, total ticks the interval, so `cpu_percent` =
//! %user + %nice + %system of `sar -u`.
//!
//! What sar silently absorbs we report: a CPU going offline, coming back
//! or appearing is `cpu_hotplug`, iowait noise is `cpu_iowait_backwards`
//! (both informational: the ticks are right). A column that went back in a
//! way these rules do not explain (broken steal, a user counter going back)
//! is clamped as sar clamps it and flagged `cpu_counter_backwards`, as is a
//! CPU whose interval would be negative (sar's unsigned arithmetic would
//! wrap it into a huge number; it counts 0 here): such ticks are suspect
//! and the reports leave them out.

use serde::{Deserialize, Serialize};

use super::source::{col, CpuTicks};

/// One `cpuN` line: the CPU number and its ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuLine {
    /// N of `cpuN`.
    pub id: u32,
    /// Its ten columns.
    pub ticks: CpuTicks,
}

/// The interval of "all" between two sets of per-CPU lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SarDelta {
    /// user + nice + (system + irq + softirq) ticks.
    pub busy: u64,
    /// The interval in ticks (sum of the per-CPU intervals).
    pub total: u64,
    /// A CPU went offline, came back or appeared.
    pub hotplug: bool,
    /// iowait went back while idle went forward (corrected as sar does).
    pub iowait_backwards: bool,
    /// A column went back in a way sar's rules do not explain (clamped).
    pub backwards: bool,
    /// CPUs the interval spans: those with a previous reference, offline
    /// now (frozen) or back online included.
    pub spanned: u64,
    /// CPUs online at both samples with no hotplug between them.
    pub steady: u64,
    /// The baseline for the next run: the current lines, plus the frozen
    /// previous values of CPUs that are offline now.
    pub baseline: Vec<CpuLine>,
}

/// Previous values this close to u64::MAX mean the counter overflowed
/// (rd_stats.c: `ULLONG_MAX - 0x7ffff`).
const NEAR_MAX: u64 = u64::MAX - 0x7ffff;

/// The sum of the eight interval columns (never guest/guest_nice), wide.
fn sum8(t: &CpuTicks) -> i128 {
    super::source::TOTAL_COLS
        .iter()
        .map(|&k| i128::from(t.0[k]))
        .sum()
}

/// sar's interval and busy ticks from `prev` to `cur` (see the module doc).
pub fn sar_delta(prev: &[CpuLine], cur: &[CpuLine]) -> SarDelta {
    let mut ids: Vec<u32> = prev.iter().chain(cur).map(|c| c.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let find = |set: &[CpuLine], id| set.iter().find(|c| c.id == id).map(|c| c.ticks);
    let mut out = SarDelta::default();
    let mut deltot: i128 = 0;
    let (mut sum_c, mut sum_p) = ([0i128; 10], [0i128; 10]);
    for id in ids {
        let scp = find(prev, id).filter(|t| sum8(t) > 0);
        // Offline now (line missing, or all zero): frozen at its previous values.
        let mut steady = true;
        let scc = match find(cur, id).filter(|t| sum8(t) > 0) {
            Some(c) => c,
            None => match scp {
                Some(p) => {
                    out.hotplug = true;
                    steady = false;
                    p
                }
                None => continue,
            },
        };
        out.baseline.push(CpuLine { id, ticks: scc });
        // Online now without a reference: a baseline only.
        let Some(mut p) = scp else {
            out.hotplug = true;
            continue;
        };
        out.spanned += 1;
        let c = scc;
        let v = |t: &CpuTicks, k: usize| i128::from(t.0[k]);
        let mut ishift: i128 = 0;
        let (cu, pu) = (
            v(&c, col::USER) - v(&c, col::GUEST),
            v(&p, col::USER) - v(&p, col::GUEST),
        );
        if cu < pu {
            ishift += pu - cu;
        }
        let (cn, pn) = (
            v(&c, col::NICE) - v(&c, col::GUEST_NICE),
            v(&p, col::NICE) - v(&p, col::GUEST_NICE),
        );
        if cn < pn {
            ishift += pn - cn;
        }
        if c.0[col::IOWAIT] < p.0[col::IOWAIT] && p.0[col::IOWAIT] < NEAR_MAX {
            if c.0[col::IDLE] > p.0[col::IDLE] || p.0[col::IDLE] >= NEAR_MAX {
                out.iowait_backwards = true;
                p.0[col::IOWAIT] = c.0[col::IOWAIT];
            } else {
                out.hotplug = true;
                steady = false;
                p.0[col::IOWAIT] = 0;
            }
        }
        if c.0[col::IDLE] < p.0[col::IDLE] && p.0[col::IDLE] < NEAR_MAX {
            out.hotplug = true;
            steady = false;
            p.0[col::IDLE] = 0;
        }
        out.steady += u64::from(steady);
        let itv = sum8(&c) - sum8(&p) + ishift;
        if itv < 0 {
            out.backwards = true;
        } else {
            deltot += itv;
        }
        for k in 0..10 {
            sum_c[k] += v(&c, k);
            sum_p[k] += v(&p, k);
        }
    }
    // ll_sp_value: a column that went back shows 0.
    let mut delta = |cols: &[usize]| -> u64 {
        let d: i128 = cols.iter().map(|&k| sum_c[k] - sum_p[k]).sum();
        if d < 0 {
            out.backwards = true;
        }
        u64::try_from(d.max(0)).unwrap_or(u64::MAX)
    };
    let busy = delta(&[col::USER])
        .saturating_add(delta(&[col::NICE]))
        .saturating_add(delta(&[col::SYSTEM, col::IRQ, col::SOFTIRQ]));
    // Only to flag a column going back; they are inside the interval.
    for k in [col::IDLE, col::IOWAIT, col::STEAL] {
        delta(&[k]);
    }
    out.total = u64::try_from(deltot).unwrap_or(u64::MAX);
    // Only a suspect interval (a CPU counted as 0) can have more busy
    // ticks than ticks; keep busy <= total for every consumer.
    out.busy = busy.min(out.total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: u32, t: [u64; 10]) -> CpuLine {
        CpuLine {
            id,
            ticks: CpuTicks(t),
        }
    }

    #[test]
    fn plain_interval_is_the_column_sum() {
        let p = [line(0, [100, 0, 50, 1000, 10, 0, 0, 0, 0, 0])];
        let c = [line(0, [200, 0, 70, 1870, 10, 0, 0, 10, 0, 0])];
        let d = sar_delta(&p, &c);
        assert_eq!((d.busy, d.total), (120, 1000));
        assert!(!d.hotplug && !d.backwards && !d.iowait_backwards);
        assert_eq!(d.baseline, c);
    }

    #[test]
    fn offline_cpu_is_frozen_and_adds_nothing() {
        let p = [
            line(0, [100, 0, 0, 900, 0, 0, 0, 0, 0, 0]),
            line(1, [100, 0, 0, 900, 0, 0, 0, 0, 0, 0]),
        ];
        let c = [line(0, [150, 0, 0, 1850, 0, 0, 0, 0, 0, 0])];
        let d = sar_delta(&p, &c);
        assert_eq!((d.busy, d.total), (50, 1000));
        assert!(d.hotplug && !d.backwards);
        assert_eq!(d.baseline, [c[0], p[1]]);
    }

    #[test]
    fn idle_going_back_is_a_cpu_back_online() {
        // idle 900 -> 40: previous idle := 0, so idle counts 40;
        // iowait 5 -> 0 with idle not forward: previous iowait := 0.
        let p = [line(0, [100, 0, 0, 900, 5, 0, 0, 0, 0, 0])];
        let c = [line(0, [110, 0, 0, 40, 0, 0, 0, 0, 0, 0])];
        let d = sar_delta(&p, &c);
        // interval = (110+40) - (100+0+0) = 50; busy 10.
        assert_eq!((d.busy, d.total), (10, 50));
        assert!(d.hotplug && !d.backwards);
    }

    #[test]
    fn iowait_noise_is_corrected_not_suspect() {
        let p = [line(0, [100, 0, 0, 900, 50, 0, 0, 0, 0, 0])];
        let c = [line(0, [110, 0, 0, 1000, 40, 0, 0, 0, 0, 0])];
        let d = sar_delta(&p, &c);
        // previous iowait := 40: interval = 10 + 100 = 110.
        assert_eq!((d.busy, d.total), (10, 110));
        assert!(d.iowait_backwards && !d.hotplug && !d.backwards);
    }

    #[test]
    fn new_cpu_without_reference_is_only_a_baseline() {
        let p = [line(0, [100, 0, 0, 900, 0, 0, 0, 0, 0, 0])];
        let c = [
            line(0, [200, 0, 0, 1800, 0, 0, 0, 0, 0, 0]),
            line(1, [7, 0, 0, 3, 0, 0, 0, 0, 0, 0]),
        ];
        let d = sar_delta(&p, &c);
        assert_eq!((d.busy, d.total), (100, 1000));
        assert!(d.hotplug);
        assert_eq!(d.baseline, c);
    }

    #[test]
    fn guest_outgrowing_user_shifts_the_interval() {
        // user +10, guest +15: ishift = 5 (rd_stats.c).
        let p = [line(0, [100, 0, 0, 900, 0, 0, 0, 0, 50, 0])];
        let c = [line(0, [110, 0, 0, 990, 0, 0, 0, 0, 65, 0])];
        let d = sar_delta(&p, &c);
        assert_eq!((d.busy, d.total), (10, 105));
    }

    #[test]
    fn broken_steal_is_clamped_and_suspect() {
        let p = [line(0, [100, 0, 0, 900, 0, 0, 0, 500, 0, 0])];
        let c = [line(0, [110, 0, 0, 990, 0, 0, 0, 0, 0, 0])];
        let d = sar_delta(&p, &c);
        // interval 10 + 90 - 500 < 0: counted as 0, not wrapped; busy
        // (10) is capped at the total.
        assert_eq!((d.busy, d.total), (0, 0));
        assert!(d.backwards);
    }

    #[test]
    fn overflow_near_max_is_not_a_hotplug() {
        let p = [line(0, [100, 0, 0, u64::MAX - 10, 0, 0, 0, 0, 0, 0])];
        let c = [line(0, [110, 0, 0, 5, 0, 0, 0, 0, 0, 0])];
        let d = sar_delta(&p, &c);
        assert!(!d.hotplug && d.backwards);
    }
}
