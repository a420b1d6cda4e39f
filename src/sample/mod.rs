//! mb-sample: exact VM resource metering from /proc and /sys.
//!
//! This module owns one sampling *cycle*: read the kernel's counters, compare
//! them with the previous run's state, print one `kind: "resource"` line
//! (mb-events(5)) and then commit the new state. Cron runs it every five
//! minutes, so it is a one-shot process with a small state file, like
//! sysstat's sa1 and vnStat; `--watch` repeats the cycle in one process.
//!
//! Submodules:
//! - [`source`]: parsers for /proc/stat, /proc/meminfo, /proc/net/dev,
//!   /proc/uptime and the /sys/class/net lookups;
//! - [`disk`]: the default filesystem set and df-style statvfs sums;
//! - [`state`]: the locked, atomically replaced state file;
//! - [`compute`]: the pure interval arithmetic (reboots, resets, flags);
//! - [`cpu`]: sar's per-CPU arithmetic (offline and re-onlined CPUs).
//!
//! The ordering rule that makes the tool safe: the line is delivered (a
//! durable spool file with `--spool`, else written and stdout flushed)
//! *before* the state is committed. If stdout fails (the
//! pipe to mb-ingest broke), the state is not advanced, so the next run
//! covers the undelivered interval too; if the state cannot be saved after a
//! delivered line, the next line overlaps it, which the `*_cum` counters
//! let the reporter resolve exactly.
//!
//! The correctness spec is `shared/research/sampling.md` (section 5); the
//! choices it leaves open are documented where they are made.

pub mod compute;
pub mod cpu;
pub mod disk;
pub mod source;
pub mod state;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{self, Outcome};
use crate::error::{Error, Result};
use crate::events::{Body, Event, Header};
use crate::time;

use compute::{Ctx, IfReading, Reading};
use disk::Statvfs;
use state::Loaded;

/// The `[sample]` section of mb.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Filesystems to measure instead of the default set (like `--mount`).
    pub mounts: Option<Vec<PathBuf>>,
    /// Interface globs to count instead of the physical ones (like `--iface`).
    pub ifaces: Option<Vec<String>>,
    /// Intervals longer than this many seconds are flagged `long_gap`
    /// [default: 1.5 x the expected interval (300 s, or --watch)].
    pub long_gap_seconds: Option<u64>,
    /// The state file (like `--state`).
    pub state: Option<PathBuf>,
}

/// Where to read from and what to include.
pub struct Options {
    /// Root of the proc filesystem (`/proc`).
    pub proc_root: PathBuf,
    /// Root of sysfs (`/sys`).
    pub sys_root: PathBuf,
    /// Explicit filesystems; None means the default set from the mount table.
    pub mounts: Option<Vec<PathBuf>>,
    /// Interface globs; empty means the physical interfaces.
    pub ifaces: Vec<String>,
    /// statvfs, real or from a fixture.
    pub statvfs: Statvfs,
}

/// Shell-style glob match with `*` and `?` (interface names are short, so
/// the simple backtracking matcher is plenty).
pub fn glob_match(pat: &str, s: &str) -> bool {
    let (p, s) = (pat.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

fn read_text(path: &Path, errors: &mut Vec<String>) -> Option<String> {
    match source::read_regular(path) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

fn parsed<T>(
    path: &Path,
    text: Option<String>,
    parse: impl Fn(&str) -> Result<T, String>,
    errors: &mut Vec<String>,
) -> Option<T> {
    match parse(&text?) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

/// Read every source once, as close together as possible. A source that
/// fails is None with its error recorded; only a run that can read nothing
/// (or has no time base at all) is an error.
pub fn read(opts: &Options, wall_ms: i64) -> Result<Reading> {
    let mut errors = Vec::new();
    let p = &opts.proc_root;
    let up_path = p.join("uptime");
    let up_text = read_text(&up_path, &mut errors);
    let uptime = parsed(&up_path, up_text, source::parse_uptime_cs, &mut errors);
    let boot_path = p.join("sys/kernel/random/boot_id");
    let boot_id = read_text(&boot_path, &mut errors)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= 64 && !s.chars().any(char::is_control));
    let stat_path = p.join("stat");
    let stat_text = read_text(&stat_path, &mut errors);
    let stat = parsed(&stat_path, stat_text, source::parse_stat, &mut errors);
    let mem_path = p.join("meminfo");
    let mem_text = read_text(&mem_path, &mut errors);
    let mem = parsed(&mem_path, mem_text, source::parse_meminfo, &mut errors);
    let net_path = p.join("net/dev");
    let net_text = read_text(&net_path, &mut errors);
    let net = parsed(&net_path, net_text, source::parse_net_dev, &mut errors).map(|devs| {
        devs.into_iter()
            .map(|dev| {
                let sys = source::iface_sys(&opts.sys_root, &dev.name);
                let included = if opts.ifaces.is_empty() {
                    !sys.virtual_
                } else {
                    opts.ifaces.iter().any(|g| glob_match(g, &dev.name))
                };
                IfReading { dev, sys, included }
            })
            .collect::<Vec<_>>()
    });
    let paths = match &opts.mounts {
        Some(m) => Some(m.clone()),
        None => match disk::default_mounts(p) {
            Ok(m) => Some(m.into_iter().map(|m| m.path).collect()),
            Err(e) => {
                errors.push(format!("disk: {e}"));
                None
            }
        },
    };
    let disk = paths.and_then(|paths| {
        let (t, errs) = disk::measure(&paths, &opts.statvfs);
        let any = t.measured > 0 || errs.is_empty();
        errors.extend(errs);
        any.then_some(t)
    });

    // The time base: /proc/uptime, else wall clock minus btime (coarser,
    // but keeps the sample and its id).
    let btime = stat.as_ref().and_then(|s| s.btime);
    let uptime_cs = match (uptime, btime) {
        (Some(u), _) => u,
        (None, Some(bt)) => {
            u64::try_from(wall_ms / 10 - i64::try_from(bt).unwrap_or(i64::MAX).saturating_mul(100))
                .unwrap_or(0)
        }
        (None, None) => {
            return Err(Error::Invalid(format!(
                "no time base: {} and the btime line of {} are both unreadable ({})",
                up_path.display(),
                stat_path.display(),
                errors.join("; ")
            )))
        }
    };
    if stat.is_none() && mem.is_none() && net.is_none() && disk.is_none() {
        return Err(Error::Invalid(format!(
            "nothing could be sampled: {}",
            errors.join("; ")
        )));
    }
    Ok(Reading {
        wall_ms,
        uptime_cs,
        boot_id,
        stat,
        clk_tck: source::clk_tck(),
        mem,
        net,
        disk,
        errors,
    })
}

/// A configured sampler: options, identity and the state file.
pub struct Sampler {
    /// What to read.
    pub opts: Options,
    /// Identity and thresholds.
    pub ctx: Ctx,
    /// The customer the usage belongs to.
    pub customer_id: String,
    /// The state file.
    pub state_path: PathBuf,
    /// Why the state cannot be saved (lock unavailable), if so.
    pub cannot_save: Option<String>,
    /// Write each line as a spool file in this directory instead of `out`.
    pub spool: Option<PathBuf>,
}

/// The message of the error returned when stdout fails: the line was not
/// delivered, so this is not the usual silent broken pipe (exit 0) but a
/// failure (exit 2), and the state was left as it was.
pub const NOT_DELIVERED: &str = "stdout closed: the sample was not delivered; state not advanced";

impl Sampler {
    /// One cycle: load state, read, compute, write the line, flush, then
    /// commit the state. `Partial` when the state could not be saved (the
    /// next line will overlap this one).
    pub fn cycle(&self, out: &mut dyn Write) -> Result<Outcome> {
        let mut notes = Vec::new();
        let prev = match state::load(
            &self.state_path,
            &self.ctx.vm_id,
            self.ctx.machine_id.as_deref(),
        ) {
            Loaded::Missing => None,
            Loaded::Valid(s) => Some(*s),
            Loaded::Invalid(why) => {
                notes.push(format!(
                    "state {}: {why}; treated as a first run",
                    self.state_path.display()
                ));
                None
            }
        };
        let now = time::now();
        let wall_ms = now.timestamp_millis();
        let reading = read(&self.opts, wall_ms)?;
        let mut iv = compute::compute(&reading, prev.as_ref(), &self.ctx);
        iv.body.errors.extend(notes);
        let clamped = clamp_to_bounds(&mut iv.body);
        iv.body.errors.extend(clamped);
        if let Some(why) = &self.cannot_save {
            iv.body.errors.push(format!("state not saved: {why}"));
        }
        for e in &iv.body.errors {
            cli::warn(e);
        }
        let ts = chrono::DateTime::from_timestamp_millis(wall_ms).unwrap_or(now);
        let ev = Event {
            header: Header {
                id: format!("{}:{}:{}", self.ctx.vm_id, iv.body.boot_id, iv.id_ms),
                ts,
                customer_id: self.customer_id.clone(),
                vm_id: self.ctx.vm_id.clone(),
            },
            body: Body::Resource(iv.body),
        };
        // The same validation as mb-ingest: never emit a line it would
        // reject (exit 2 with the state untouched instead).
        ev.check(now).map_err(|e| {
            Error::Invalid(format!(
                "the sample would be rejected by mb-ingest ({e}); nothing written, state not advanced"
            ))
        })?;
        let mut line = ev.to_json();
        match &self.spool {
            // Durable before the state moves: a failed write is exit 2 with
            // the state untouched, so the next run covers this interval.
            Some(dir) => {
                crate::spool::write_line(dir, "sample", &line).map_err(|e| {
                    Error::Invalid(format!(
                        "spool: the sample was not written ({e}); state not advanced"
                    ))
                })?;
            }
            None => {
                line.push('\n');
                out.write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| Error::Invalid(format!("{NOT_DELIVERED} ({e})")))?;
            }
        }
        if self.cannot_save.is_some() {
            return Ok(Outcome::Partial);
        }
        if let Err(e) = state::save(&self.state_path, &iv.state) {
            cli::warn(format!(
                "state {}: cannot save ({e}); the next sample will overlap this one",
                self.state_path.display()
            ));
            return Ok(Outcome::Partial);
        }
        Ok(Outcome::Success)
    }
}

/// Null every value beyond the bounds of mb-events(5) (a corrupt or
/// hostile counter), with a note for the line's errors, so the line stays
/// one mb-ingest accepts and the other values are kept.
fn clamp_to_bounds(r: &mut crate::events::Resource) -> Vec<String> {
    use crate::events::bounds::{MAX_BYTES, MAX_SECONDS, MAX_SIZE_BYTES, MAX_SMALL, MAX_TICKS};
    let mut notes = Vec::new();
    let mut cap = |v: &mut Option<u64>, name: &str, max: u64| {
        if let Some(n) = *v {
            if n > max {
                notes.push(format!(
                    "{name} {n} is beyond the bound {max} of mb-events(5); written as null"
                ));
                *v = None;
            }
        }
    };
    cap(&mut r.cpu_busy_ticks, "cpu_busy_ticks", MAX_TICKS);
    cap(&mut r.cpu_total_ticks, "cpu_total_ticks", MAX_TICKS);
    cap(&mut r.cpu_busy_ticks_cum, "cpu_busy_ticks_cum", MAX_TICKS);
    cap(&mut r.cpu_total_ticks_cum, "cpu_total_ticks_cum", MAX_TICKS);
    cap(&mut r.ncpu, "ncpu", MAX_SMALL);
    cap(&mut r.clk_tck, "clk_tck", MAX_SMALL);
    cap(
        &mut r.memory_used_bytes,
        "memory_used_bytes",
        MAX_SIZE_BYTES,
    );
    cap(
        &mut r.memory_total_bytes,
        "memory_total_bytes",
        MAX_SIZE_BYTES,
    );
    cap(&mut r.disk_used_bytes, "disk_used_bytes", MAX_SIZE_BYTES);
    cap(&mut r.disk_total_bytes, "disk_total_bytes", MAX_SIZE_BYTES);
    cap(&mut r.net_in_bytes, "net_in_bytes", MAX_BYTES);
    cap(&mut r.net_out_bytes, "net_out_bytes", MAX_BYTES);
    cap(&mut r.net_in_bytes_cum, "net_in_bytes_cum", MAX_BYTES);
    cap(&mut r.net_out_bytes_cum, "net_out_bytes_cum", MAX_BYTES);
    if r.cpu_busy_ticks.is_none() || r.cpu_total_ticks.is_none() {
        r.cpu_percent = None;
    }
    if r.interval_seconds.is_some_and(|x| x > MAX_SECONDS) {
        notes.push(format!(
            "interval_seconds beyond the bound {MAX_SECONDS} of mb-events(5); written as null"
        ));
        r.interval_seconds = None;
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("eth*", "eth0"));
        assert!(glob_match("*", "lo"));
        assert!(glob_match("veth?", "veth1"));
        assert!(!glob_match("veth?", "veth12"));
        assert!(glob_match("*0*", "br0x"));
        assert!(!glob_match("eth*", "ens3"));
        assert!(glob_match("e*s*3", "enps3"));
    }
}
