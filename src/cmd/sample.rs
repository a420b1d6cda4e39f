//! mb-sample: print one `kind: "resource"` line per run (or per --watch
//! interval) describing the VM's CPU, memory, disk and network use.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::cli::{self, Outcome};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::sample::compute::Ctx;
use crate::sample::disk::Statvfs;
use crate::sample::state::{self, LockResult};
use crate::sample::{Options, SampleConfig, Sampler};

/// Default cron interval, seconds: the base of the default long-gap threshold.
const CRON_INTERVAL_S: u64 = 300;

/// Sample the VM's CPU, memory, disk and network use since the previous run as one mb-events(5) line.
#[derive(Debug, Parser)]
#[command(
    name = "mb-sample",
    version,
    about = "Sample the VM's CPU, memory, disk and network use since the previous run as one mb-events(5) line",
    long_about = "Sample the VM's CPU, memory, disk and network use since the previous run as one \
mb-events(5) line.\n\n\
Each run prints one kind \"resource\" line: CPU busy/total tick deltas and cpu_percent (busy = \
user+nice+system+irq+softirq; total adds idle, iowait and steal; guest is never counted twice), \
computed from the per-CPU lines of /proc/stat as sar does, so a CPU going offline or coming back \
online gives sar's figure (flag cpu_hotplug), not 100 %, \
memory used = MemTotal - MemAvailable, disk used/size bytes as df computes them, and bytes \
received/sent over the physical interfaces (those not under /sys/devices/virtual), plus the \
reset-corrected since-boot counters (*_cum). The interval comes from /proc/uptime, not the wall \
clock. A network counter that goes backwards is a reset of that direction (delta = current \
value, flag counter_reset; the other direction keeps its delta), never a guessed wrap; a new boot id is a reboot (status reboot, deltas since boot); the first \
run has null deltas (status first); a long gap gives one exact delta, flagged long_gap.\n\n\
The previous counters live in the state file, locked (a concurrent run exits 0 with a warning \
and touches nothing) and replaced atomically. A missing, corrupt, wrong-version or other-host \
state file means a first run. The line is written and flushed before the state is committed: \
if stdout fails (the pipe to mb-ingest broke), the state is not advanced and the exit status is \
2, so the next run covers the interval. A pipe cannot tell whether mb-ingest then stored the \
line: a line lost there loses no CPU or network usage (the next line's cumulative counters carry \
it), only that interval's memory and disk gauges. With --spool DIR each line is one complete, \
fsynced file that mb-ingest --spool DIR takes, and the state advances only once it is durable. \
Exit 1 means the line was delivered but the state could \
not be saved (the next line overlaps it). A source that cannot be read goes into the line's \
errors and stderr; only a run that can read nothing exits 2.",
    after_long_help = EXAMPLES,
    args_override_self = true
)]
pub struct Args {
    /// Root of the proc filesystem (a fake tree for tests and containers)
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,

    /// Root of sysfs
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sys_root: PathBuf,

    /// Measure this filesystem (repeatable) instead of the default set: real local filesystems of the mount table, each device once, no tmpfs/overlay/pseudo/network filesystems
    #[arg(long = "mount", value_name = "PATH")]
    pub mounts: Vec<PathBuf>,

    /// Count interfaces whose name matches GLOB (`*`, `?`; repeatable) instead of the physical ones
    #[arg(long = "iface", value_name = "GLOB")]
    pub ifaces: Vec<String>,

    /// State file [default: <state_dir>/sample.state, i.e. /var/lib/mb/sample.state for root, $XDG_STATE_HOME/mb/sample.state otherwise]
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Customer the usage belongs to [default: customer_id in mb.toml]
    #[arg(long, env = "MB_CUSTOMER_ID", value_name = "ID")]
    pub customer: Option<String>,

    /// VM id [default: vm_id in mb.toml, else the host name]
    #[arg(long, env = "MB_VM_ID", value_name = "ID")]
    pub vm: Option<String>,

    /// Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]
    #[arg(long, env = "MB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Write each line as one complete file into DIR (temp file, fsync, rename) for `mb-ingest --spool DIR`, instead of stdout; the state is saved only once that file is durable
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,

    /// Keep running and print a line every SECONDS (for a systemd service instead of cron); SIGTERM or SIGINT ends it after the current line
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub watch: Option<u64>,

    /// Test knob: take statvfs numbers from FILE (PATH<TAB>FRSIZE<TAB>BLOCKS<TAB>BFREE<TAB>BAVAIL lines)
    #[arg(long, value_name = "FILE", hide = true)]
    pub statvfs_fixture: Option<PathBuf>,
}

const EXAMPLES: &str = "\
EXAMPLES:
    # The cron job of every VM (crontab -e): sample every 5 minutes and
    # load. A line lost in the pipe (mb-ingest failing) loses no CPU or
    # network usage, which the next line's cumulative counters carry, only
    # that interval's memory and disk gauges
    */5 * * * *  mb-sample --customer acme | mb-ingest

    # Durable instead: one complete file per run in the spool, loaded by
    # mb-ingest --spool (SP=/var/lib/mb/spool is a line of the same crontab)
    */5 * * * *  mb-sample --customer acme --spool $SP; mb-ingest --spool $SP

    # Look at one sample without touching the real state
    mb-sample --customer acme --state /tmp/try.state | jq .

    # Only the root filesystem and the eth* interfaces
    mb-sample --customer acme --mount / --iface 'eth*' | mb-ingest

    # As a systemd service instead of cron: one spool file every 300 s
    mb-sample --customer acme --watch 300 --spool /var/lib/mb/spool";

/// Run mb-sample.
pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    let cfg = Config::load(args.config.as_deref())?;
    let sc: SampleConfig = cfg.section("sample")?;
    let customer_id = cfg.customer(args.customer.as_deref())?;
    let vm_id = cfg.vm(args.vm.as_deref())?;
    let state_path = args
        .state
        .clone()
        .or(sc.state.clone())
        .unwrap_or_else(|| cfg.state_dir().join("sample.state"));
    let statvfs = match &args.statvfs_fixture {
        Some(p) => Statvfs::load_fixture(p).map_err(Error::Usage)?,
        None => Statvfs::Real,
    };
    let mounts = if !args.mounts.is_empty() {
        Some(args.mounts.clone())
    } else {
        sc.mounts.clone()
    };
    let ifaces = if !args.ifaces.is_empty() {
        args.ifaces.clone()
    } else {
        sc.ifaces.clone().unwrap_or_default()
    };
    let expected = args.watch.unwrap_or(CRON_INTERVAL_S);
    let long_gap_s = sc.long_gap_seconds.unwrap_or(expected + expected / 2);

    // Hold the lock for the whole process: a --watch service and a cron
    // run must not interleave either.
    let (_lock, cannot_save) = match state::lock(&state_path) {
        LockResult::Held(l) => (Some(l), None),
        LockResult::Busy => {
            cli::warn(format!(
                "another mb-sample holds {}; skipping this run (nothing printed, state untouched)",
                state::lock_path(&state_path).display()
            ));
            return Ok(Outcome::Success);
        }
        LockResult::Unavailable(why) => (None, Some(why)),
    };
    let sampler = Sampler {
        opts: Options {
            proc_root: args.proc_root.clone(),
            sys_root: args.sys_root.clone(),
            mounts,
            ifaces,
            statvfs,
        },
        ctx: Ctx {
            vm_id,
            machine_id: state::machine_id(),
            long_gap_cs: long_gap_s.saturating_mul(100),
        },
        customer_id,
        state_path,
        cannot_save,
        spool: args.spool.clone(),
    };
    match args.watch {
        None => sampler.cycle(out),
        Some(secs) => watch(&sampler, Duration::from_secs(secs), out),
    }
}

/// Repeat the cycle every `every` until SIGTERM/SIGINT.
///
/// The signal handlers (signal-hook's self-pipe, async-signal-safe) only
/// write a byte into a socket pair; the loop waits for the next tick by
/// reading that socket with a timeout. A signal arriving during a cycle is
/// therefore seen right after the line and its state commit, never in the
/// middle of them: "ends it cleanly after the current line".
fn watch(sampler: &Sampler, every: Duration, out: &mut dyn Write) -> Result<Outcome> {
    let (mut wake, notify) = UnixStream::pair()?;
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(sig, notify.try_clone()?)?;
    }
    let mut outcome = Outcome::Success;
    let mut buf = [0u8; 16];
    loop {
        let start = Instant::now();
        if sampler.cycle(out)? == Outcome::Partial {
            outcome = Outcome::Partial;
        }
        let deadline = start + every;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            wake.set_read_timeout(Some(deadline - now))?;
            match wake.read(&mut buf) {
                Ok(_) => return Ok(outcome),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn args_are_well_formed() {
        Args::command().debug_assert();
    }
}
