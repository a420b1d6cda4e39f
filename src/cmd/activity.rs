//! mb-activity: record commands, patterns and operations with durations.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::activity::{self, hook, spool, Record, Redactor, Section};
use crate::cli::{self, Outcome};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::time;

/// Record what users do on the VM (commands, patterns, operations) with durations.
#[derive(Debug, Parser)]
#[command(
    name = "mb-activity",
    version,
    about = "Record what users do on the VM (commands, patterns, operations) with durations",
    long_about = "Record what users do on the VM (commands, patterns, operations) with durations, \
as kind \"activity\" lines of mb-events(5).\n\n\
`record` prints one event on stdout, for `| mb-ingest`. `run` wraps a command (its stdin, stdout \
and stderr untouched, its exit status returned; a metering problem such as no customer, a bad \
mb.toml or an unwritable spool is one warning and never stops the command) and `init` prints a bash or zsh hook that records \
every interactive command; both write to the spool directory instead of stdout, as complete files \
that `mb-ingest --spool DIR` loads. `run` returns as soon as the command ends and leaves the \
durable (fsynced) spool write to a detached process; --wait writes before returning.\n\n\
Secrets are masked with *** before anything is written: PEM private keys, URL passwords, \
Authorization/Cookie/PRIVATE-TOKEN/X-...-Token headers, JSON fields such as \"password\" and \
\"private_key\", --password/--token/--secret/--api-key and -D...password= options, the password \
options of mysql (-pPW), sshpass, docker/podman/az login (-p), redis-cli (-a), curl (-u user:PW), \
ldapsearch (-w), openssl (pass:PW), kubectl --from-literal, aws/npm config set, echo PW | ... \
--password-stdin, .netrc lines, NAME=value assignments whose name contains TOKEN, SECRET, PASS, KEY, \
CREDENTIAL, SIG or an AUTH/_PWD part (PGPASSWORD, MYSQL_PWD, REDISCLI_AUTH), and the key formats \
of Stripe, OpenAI, Anthropic, AWS, GitHub, GitLab, Slack, npm, PyPI, Vault, Google and JWTs; plus \
the patterns of [activity] redact in mb.toml and --redact. Flags such as --password-stdin, git \
hashes, UUIDs and sha256 sums are kept. Command text is \
capped at 4 KiB. Lines typed with a leading space are not recorded by the hooks.\n\n\
The spool is --spool DIR, else [activity] spool in mb.toml, else STATE_DIR/spool \
(/var/lib/mb/spool for root, $XDG_STATE_HOME/mb/spool otherwise); it is created with mode 0700.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,

    /// Customer the activity belongs to [default: customer_id in mb.toml]
    #[arg(long, env = "MB_CUSTOMER_ID", value_name = "ID", global = true)]
    pub customer: Option<String>,

    /// VM id [default: vm_id in mb.toml, else the host name]
    #[arg(long, env = "MB_VM_ID", value_name = "ID", global = true)]
    pub vm: Option<String>,

    /// Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]
    #[arg(long, env = "MB_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Also mask every match of REGEX in command text with *** (repeatable)
    #[arg(long, value_name = "REGEX", global = true)]
    pub redact: Vec<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print one activity event on stdout
    Record(RecordArgs),
    /// Run a command, then append its activity event to the spool
    Run(RunArgs),
    /// Print the shell hook that records every interactive command
    Init(InitArgs),
    /// Record one command line for the shell hook (called by the code `init` prints)
    Hook(HookArgs),
}

/// `mb-activity record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Activity type: command, pattern, operation, or another lower-case word
    #[arg(long = "type", value_name = "TYPE")]
    pub activity_type: String,

    /// Name of the pattern or operation
    #[arg(long, value_name = "PATTERN")]
    pub name: Option<String>,

    /// Command text (redacted, capped at 4 KiB)
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub command: Option<String>,

    /// Wall time in seconds, like 12 or 0.25
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub duration: String,

    /// Exit status of the activity
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub exit_code: Option<i32>,

    /// When the activity started, RFC 3339 [default: now]
    #[arg(long, value_name = "TIMESTAMP")]
    pub at: Option<String>,

    /// Login name [default: $LOGNAME, $USER, or the name of the current uid]
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// `mb-activity run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Activity type
    #[arg(long = "type", value_name = "TYPE", default_value = "command")]
    pub activity_type: String,

    /// Name of the pattern or operation
    #[arg(long, value_name = "PATTERN")]
    pub name: Option<String>,

    /// Spool directory [default: [activity] spool in mb.toml, else STATE_DIR/spool]
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,

    /// Write the event before exiting, instead of in a detached background
    /// process (for a script that runs mb-ingest --spool right after)
    #[arg(long)]
    pub wait: bool,

    /// The command and its arguments (put them after --)
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// `mb-activity init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The shell to print the hook for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: hook::Shell,

    /// Spool directory the hook writes to [default: as for run]. The global --customer, --vm,
    /// --config and --redact given to init are embedded in the hook too
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
}

/// `mb-activity hook`.
#[derive(Debug, clap::Args)]
pub struct HookArgs {
    /// Start of the command, seconds since the epoch ($EPOCHREALTIME)
    #[arg(long, value_name = "EPOCH")]
    pub start: String,

    /// End of the command, seconds since the epoch
    #[arg(long, value_name = "EPOCH")]
    pub end: String,

    /// The command's exit status ($?)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub exit_code: i32,

    /// The shell's process id ($$), part of the event id
    #[arg(long, value_name = "PID")]
    pub pid: u32,

    /// Spool directory [default: as for run]
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,

    /// The command line as typed
    #[arg(value_name = "LINE", allow_hyphen_values = true)]
    pub line: String,
}

const EXAMPLES: &str = "\
EXAMPLES:
    # Record every interactive command (add to ~/.bashrc or ~/.zshrc)
    eval \"$(mb-activity init bash)\"
    eval \"$(mb-activity init zsh)\"

    # Load the spool every 5 minutes (crontab)
    */5 * * * *  mb-ingest --spool ~/.local/state/mb/spool

    # Wrap a job: its output and exit status pass through unchanged
    mb-activity run --type operation --name nightly-backup -- \\
        restic backup /srv

    # A pipeline stage stays a pipeline stage
    zcat access.log.gz | mb-activity run -- grep -c ' 500 ' > errors.txt

    # Report a pattern that ran for 95.5 s, straight into the database
    mb-activity record --type pattern --name rag-query --duration 95.5 \\
        --exit-code 0 | mb-ingest

    # Mask internal account numbers too
    mb-activity --redact 'acct-[0-9]+' run -- ./invoice.sh acct-1234";

/// Run mb-activity.
pub fn run(args: Args, out: &mut dyn Write) -> Result<Outcome> {
    match &args.command {
        Command::Record(r) => record(&args, r, out),
        Command::Run(r) => run_cmd(&args, r, out),
        Command::Init(i) => init(&args, i, out),
        Command::Hook(h) => hook_cmd(&args, h),
    }
}

/// What every recording subcommand resolves before doing anything.
struct Context {
    customer: String,
    vm: String,
    section: Section,
    cfg: Config,
    redactor: Redactor,
}

impl Context {
    fn load(args: &Args) -> Result<Context> {
        let cfg = Config::load(args.config.as_deref())?;
        let section: Section = cfg.section("activity")?;
        let customer = cfg.customer(args.customer.as_deref())?;
        let vm = cfg.vm(args.vm.as_deref())?;
        let origin = match &cfg.path {
            Some(p) => format!("{} [activity] redact", p.display()),
            None => "[activity] redact".to_string(),
        };
        let patterns = section
            .redact
            .iter()
            .map(|p| (origin.as_str(), p.as_str()))
            .chain(args.redact.iter().map(|p| ("--redact", p.as_str())));
        let redactor = Redactor::new(patterns)?;
        Ok(Context {
            customer,
            vm,
            section,
            cfg,
            redactor,
        })
    }

    fn spool_dir(&self, flag: Option<&Path>) -> PathBuf {
        spool_dir(flag, &self.section, &self.cfg)
    }
}

fn spool_dir(flag: Option<&Path>, section: &Section, cfg: &Config) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| section.spool.clone())
        .unwrap_or_else(|| cfg.spool_dir())
}

fn record(args: &Args, r: &RecordArgs, out: &mut dyn Write) -> Result<Outcome> {
    // Every argument is checked before anything is resolved or written.
    activity::check_type(&r.activity_type)?;
    if let Some(n) = &r.name {
        activity::check_pattern_name(n)?;
    }
    let duration = activity::parse_duration(&r.duration)?;
    let now = time::now();
    let ts = match &r.at {
        Some(s) => activity::parse_at(s, now)?,
        None => now,
    };
    let user = match &r.user {
        Some(u) => {
            let n = u.chars().count();
            if n == 0 || n > activity::MAX_USER_CHARS || u.chars().any(char::is_control) {
                return Err(Error::Usage(format!(
                    "--user {u:?}: must be 1..={} characters without control characters",
                    activity::MAX_USER_CHARS
                )));
            }
            u.clone()
        }
        None => activity::login_name(),
    };
    let ctx = Context::load(args)?;
    let rec = Record {
        customer_id: ctx.customer,
        vm_id: ctx.vm,
        user: Some(user),
        ts,
        pid: None,
        activity_type: r.activity_type.clone(),
        pattern_name: r.name.clone(),
        command: r.command.as_deref().map(|c| ctx.redactor.redact(c)),
        duration_seconds: duration,
        exit_code: r.exit_code.map(i64::from),
    };
    let mut line = rec.to_event().to_json();
    line.push('\n');
    out.write_all(line.as_bytes())?;
    Ok(Outcome::Success)
}

fn run_cmd(args: &Args, r: &RunArgs, out: &mut dyn Write) -> Result<Outcome> {
    // Metering never stops the user's work: whatever keeps the event from
    // being recorded (no customer, a typo in mb.toml, a bad --redact or
    // --type) is one warning, and the command runs all the same, its
    // status ours. A wrapped nightly backup must not be skipped because of
    // a config mistake. Everything is checked before the command runs; the
    // event is built after it, by the detached writer (see `finish`).
    let ctx = run_context(args, r);
    if let Err(e) = &ctx {
        cli::warn(format!(
            "not recording this command: {}",
            e.to_string().trim_end()
        ));
    }
    // Our stdout is the command's: nothing of ours may be pending in it.
    let _ = out.flush();
    let ts = time::now();
    let fin = activity::run::run(&r.command).map_err(Error::Stream)?;
    if let Some(msg) = &fin.spawn_error {
        cli::warn(msg);
    }
    match ctx {
        Ok(ctx) => finish(&ctx, r, ts, &fin, r.wait),
        Err(_) => Ok(Outcome::Exit(exit_status(&fin))),
    }
}

/// Everything `run` needs to record the command, or why it cannot.
fn run_context(args: &Args, r: &RunArgs) -> Result<Context> {
    activity::check_type(&r.activity_type)?;
    if let Some(n) = &r.name {
        activity::check_pattern_name(n)?;
    }
    Context::load(args)
}

/// The command's own status is ours (like a shell's).
fn exit_status(fin: &activity::run::Finished) -> u8 {
    fin.status.clamp(0, 255) as u8
}

/// The event line of a finished `run`.
fn line(ctx: &Context, r: &RunArgs, ts: DateTime<Utc>, fin: &activity::run::Finished) -> String {
    let rec = Record {
        customer_id: ctx.customer.clone(),
        vm_id: ctx.vm.clone(),
        user: Some(activity::login_name()),
        ts,
        // A command that never started has no pid of its own; ours is as
        // unique at this instant.
        pid: Some(fin.pid.unwrap_or_else(std::process::id)),
        activity_type: r.activity_type.clone(),
        pattern_name: r.name.clone(),
        command: Some(ctx.redactor.redact(&activity::shell_join(&r.command))),
        duration_seconds: activity::seconds_from_nanos(fin.elapsed_nanos),
        exit_code: Some(i64::from(fin.status)),
    };
    rec.to_event().to_json()
}

/// Record a `run` whose command has ended: here (`wait`), or in a
/// detached writer (see activity::run::detach) when fork works. The
/// writer also builds the event (login name, redaction, the SHA-256 id),
/// so the caller waits for nothing but a fork after the command ends.
fn finish(
    ctx: &Context,
    r: &RunArgs,
    ts: DateTime<Utc>,
    fin: &activity::run::Finished,
    wait: bool,
) -> Result<Outcome> {
    let status = exit_status(fin);
    if !wait {
        match activity::run::detach() {
            Ok(activity::run::Side::Parent) => return Ok(Outcome::Exit(status)),
            Ok(activity::run::Side::Writer) => {
                write_event(&ctx.spool_dir(r.spool.as_deref()), &line(ctx, r, ts, fin));
                return Ok(Outcome::Success);
            }
            Err(_) => {}
        }
    }
    write_event(&ctx.spool_dir(r.spool.as_deref()), &line(ctx, r, ts, fin));
    Ok(Outcome::Exit(status))
}

/// Spool one event for `run`. The command's status is the caller's
/// business and wins over ours: a spool that cannot be written is
/// reported, not turned into a failure of a command that succeeded.
fn write_event(dir: &Path, line: &str) {
    if let Err(e) = spool::write(dir, line) {
        cli::warn(format!("event not recorded: {e}"));
    }
}

fn init(args: &Args, i: &InitArgs, out: &mut dyn Write) -> Result<Outcome> {
    let bin = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
    // The options given to `init` are the hook's: every `mb-activity hook`
    // call gets them. Paths are made absolute, so the hook works from any
    // directory.
    let absolute = |p: &Path| -> Result<String> {
        let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
        Ok(abs.to_string_lossy().into_owned())
    };
    let mut extra = Vec::new();
    if let Some(c) = &args.customer {
        extra.extend(["--customer".to_string(), c.clone()]);
    }
    if let Some(v) = &args.vm {
        extra.extend(["--vm".to_string(), v.clone()]);
    }
    if let Some(c) = &args.config {
        extra.extend(["--config".to_string(), absolute(c)?]);
    }
    for p in &args.redact {
        extra.extend(["--redact".to_string(), p.clone()]);
    }
    if let Some(dir) = &i.spool {
        extra.extend(["--spool".to_string(), absolute(dir)?]);
    }
    // The hook runs in the background with its output discarded, so a hook
    // that cannot record (no customer, a bad mb.toml) would be silent for
    // ever. Check now, as the hook would, and have the hook say it once
    // when the shell loads it.
    let warning = Context::load(args)
        .err()
        .map(|e| format!("mb-activity: the shell hook records nothing: {e}"));
    out.write_all(hook::script(i.shell, &bin, &extra, warning.as_deref()).as_bytes())?;
    Ok(Outcome::Success)
}

fn hook_cmd(args: &Args, h: &HookArgs) -> Result<Outcome> {
    let bad = |flag: &str, v: &str| {
        Error::Usage(format!(
            "--{flag} {v:?}: not seconds since the epoch like 1795900988.687230"
        ))
    };
    let start = activity::parse_epoch(&h.start).ok_or_else(|| bad("start", &h.start))?;
    let end = activity::parse_epoch(&h.end).ok_or_else(|| bad("end", &h.end))?;
    // The hook's own rule, checked again here: a space-prefixed line is
    // private, and a blank one is nothing.
    if h.line.starts_with(' ') || h.line.trim().is_empty() {
        return Ok(Outcome::Success);
    }
    let ctx = Context::load(args)?;
    let dir = ctx.spool_dir(h.spool.as_deref());
    // The shell clock is the wall clock; a step backwards during the
    // command would give a negative duration, recorded as 0.
    let elapsed = u128::try_from(end - start).unwrap_or(0);
    let rec = Record {
        customer_id: ctx.customer,
        vm_id: ctx.vm,
        user: Some(activity::login_name()),
        ts: time::from_unix_nanos(start),
        pid: Some(h.pid),
        activity_type: "command".into(),
        pattern_name: None,
        command: Some(ctx.redactor.redact(&h.line)),
        duration_seconds: activity::seconds_from_nanos(elapsed),
        exit_code: Some(i64::from(h.exit_code)),
    };
    spool::write(&dir, &rec.to_event().to_json())?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn args_are_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn run_takes_everything_after_the_separator() {
        let a = Args::try_parse_from(["mb-activity", "run", "--", "ls", "--color", "-l"]).unwrap();
        match a.command {
            Command::Run(r) => assert_eq!(r.command, ["ls", "--color", "-l"]),
            other => panic!("{other:?}"),
        }
        let a = Args::try_parse_from(["mb-activity", "run", "--name", "x", "make", "-j4"]).unwrap();
        match a.command {
            Command::Run(r) => assert_eq!(r.command, ["make", "-j4"]),
            other => panic!("{other:?}"),
        }
    }
}
