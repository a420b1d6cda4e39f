//! What every binary shares: the main wrapper, exit statuses, diagnostics,
//! common arguments and the list of commands (for man pages).
//!
//! A binary is three lines: it hands its clap `Args` type and its `run`
//! function to [`main_wrapper`], which parses arguments, gives `run` one
//! buffered stdout, flushes it, and turns the result into an exit status
//! (DESIGN.md section 8): 0 success, 1 finished with rejected or suspect
//! input ([`Outcome::Partial`]), 2 usage or fatal error. A closed stdout
//! (`| head`) ends the run with 0 and no message, as in ripgrep and xsv.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{CommandFactory, Parser};

use crate::config::Config;
use crate::error::Result;

/// How a run that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything went through (exit 0).
    Success,
    /// The run finished but some input was rejected or is suspect (exit 1).
    Partial,
    /// Exit with this status: a wrapper passing on its child's status
    /// (`mb-activity run`), like a shell does.
    Exit(u8),
}

impl Outcome {
    /// The exit status for this outcome.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Partial => 1,
            Outcome::Exit(c) => c,
        }
    }

    /// `Partial` if `bad`, else `Success`.
    pub fn partial_if(bad: bool) -> Outcome {
        if bad {
            Outcome::Partial
        } else {
            Outcome::Success
        }
    }
}

static TOOL: OnceLock<&'static str> = OnceLock::new();

/// The running tool's name (`mb-ingest`), for diagnostics.
pub fn tool() -> &'static str {
    TOOL.get().copied().unwrap_or("mb")
}

/// Print a diagnostic line on stderr as `TOOL: msg`. Errors writing stderr
/// are ignored: there is nowhere left to report them, and `eprintln!` would
/// panic on a closed stderr.
pub fn warn(msg: impl std::fmt::Display) {
    crate::progress::suspend(|| {
        let _ = writeln!(io::stderr().lock(), "{}: {msg}", tool());
    });
}

/// Parse `A` from the command line, run `run` with a buffered stdout, and map
/// the result to the process exit status.
pub fn main_wrapper<A: Parser>(
    name: &'static str,
    run: fn(A, &mut dyn Write) -> Result<Outcome>,
) -> ExitCode {
    let _ = TOOL.set(name);
    let args = match A::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version are "errors" to clap with exit 0; real
            // usage errors exit 2. Printing can fail on a closed pipe; that
            // is fine.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let result = run(args, &mut out).and_then(|o| {
        out.flush()?;
        Ok(o)
    });
    match result {
        Ok(o) => ExitCode::from(o.code()),
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            // Drop the buffered output without flushing twice into a
            // possibly broken pipe; report the error.
            let code = e.exit_code();
            let mut msg = e.to_string();
            if let crate::error::Error::Usage(_) = e {
                msg.push_str(&format!("\n\nFor more information, try '{name} --help'."));
            }
            warn(msg);
            ExitCode::from(code)
        }
    }
}

/// `--db` and `--config`, shared by every tool that touches the store.
///
/// Both are `global`: a tool with subcommands accepts them before or after
/// the subcommand (`mb-customer list --db X` as well as `mb-customer --db X
/// list`), and each subcommand's `--help` and man page lists them.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// SQLite database file, or a PostgreSQL connection string
    /// (postgres://HOST/DB, or libpq `host=... dbname=...`; the password
    /// from PGPASSFILE or ~/.pgpass, never here) [default:
    /// /var/lib/mb/usage.db for root, $XDG_DATA_HOME/mb/usage.db otherwise,
    /// or `db` in mb.toml]
    #[arg(long, env = "MB_DB", value_name = "PATH", global = true)]
    pub db: Option<PathBuf>,

    /// Configuration file [default: /etc/mb/mb.toml or $XDG_CONFIG_HOME/mb/mb.toml; absent means built-in defaults]
    #[arg(long, env = "MB_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

impl DbArgs {
    /// Load the config and resolve the database path.
    pub fn resolve(&self) -> Result<(Config, crate::store::DbSpec)> {
        let cfg = Config::load(self.config.as_deref())?;
        let db = cfg.db_path(self.db.as_deref());
        Ok((cfg, db))
    }
}

/// Every binary's clap command, with its name, for the man-page generator
/// and the `debug_assert` test.
pub fn commands() -> Vec<clap::Command> {
    vec![
        crate::cmd::ingest::Args::command().name("mb-ingest"),
        crate::cmd::customer::Args::command().name("mb-customer"),
        crate::cmd::sample::Args::command().name("mb-sample"),
        crate::cmd::tokens::Args::command().name("mb-tokens"),
        crate::cmd::activity::Args::command().name("mb-activity"),
        crate::cmd::report::Args::command().name("mb-report"),
        crate::cmd::dashboard::Args::command().name("mb-dashboard"),
    ]
}

/// The EXIT STATUS text shared by the man pages.
pub const EXIT_STATUS: &str = "\
0  success (also when stdout was closed early, as by `| head`)
1  finished, but some input was rejected or is suspect (counted on stderr)
2  usage error, or a fatal error (database, I/O, config); nothing of a failed batch is committed";
