//! mb-ingest: load mb-events(5) lines into the store, idempotently.

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;

use crate::cli::{self, DbArgs, Outcome};
use crate::error::{Error, Result};
use crate::ingest::{self, Options, Source};
use crate::store::{Mode, Store};

/// Load usage event lines (mb-events(5)) into the SQLite store, idempotently.
#[derive(Debug, Parser)]
#[command(
    name = "mb-ingest",
    version,
    about = "Load usage event lines (mb-events(5)) into the SQLite store, idempotently",
    long_about = "Load usage event lines (mb-events(5)) into the SQLite store, idempotently.\n\n\
Every line is validated; an event whose (kind, id) is already stored with the same content is \
counted as a duplicate, and one with different content as a conflict (recorded, never \
overwriting). Rejected lines are reported as SOURCE:LINE: reason (the first 20, then a count) \
and kept verbatim in the rejects table. Lines are written in transactions of --batch lines; a \
killed run can simply be re-run. Blank lines and lines starting with # are skipped.",
    after_long_help = EXAMPLES
)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArgs,

    /// Input files; `-` or none means standard input
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Ingest every complete *.jsonl file in DIR, then move it to DIR/done/
    #[arg(long, value_name = "DIR", conflicts_with = "files")]
    pub spool: Option<PathBuf>,

    /// With --spool: delete ingested files instead of moving them to done/
    #[arg(long, requires = "spool", conflicts_with = "dry_run")]
    pub delete: bool,

    /// Also append rejected lines to FILE (each after a `# SOURCE:LINE: reason` comment), to fix and re-ingest
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,

    /// Validate and count without writing to the database or the spool (--rejects still collects the rejected lines)
    #[arg(long)]
    pub dry_run: bool,

    /// Do not print the summary line (nor the progress bar)
    #[arg(short, long, conflicts_with = "summary")]
    pub quiet: bool,

    /// Summary format on stderr
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub summary: SummaryFormat,

    /// Lines per transaction
    #[arg(long, default_value_t = ingest::DEFAULT_BATCH_LINES, value_name = "N", hide_short_help = true, conflicts_with = "dry_run")]
    pub batch: usize,
}

/// `--summary` formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SummaryFormat {
    /// `read N, inserted N, duplicates N, conflicts N, rejected N`
    Text,
    /// One JSON object with the same counts
    Json,
}

const EXAMPLES: &str = "\
EXAMPLES:
    # The cron job of every VM: sample and load
    mb-sample | mb-ingest

    # Load files into a chosen database, keeping rejected lines to fix later
    mb-ingest --db usage.db --rejects rejected.jsonl api-*.jsonl

    # Fix the rejected lines in an editor, then load them again
    mb-ingest --db usage.db rejected.jsonl

    # Load the spool (complete *.jsonl files of mb-tokens, mb-sample and
    # mb-activity), moving each to done/ once its lines are committed
    mb-ingest --spool ~/.local/state/mb/spool

    # Check a file without writing, counts as JSON
    mb-ingest --dry-run --summary json events.jsonl

    # Pull events from a VM into a central database
    ssh vm1 mb-report events --since 2026-11-01 | mb-ingest --db central.db";

/// Run mb-ingest.
pub fn run(args: Args, _out: &mut dyn Write) -> Result<Outcome> {
    let (cfg, db_path) = args.db.resolve()?;
    let _ = cfg;
    if args.batch == 0 {
        return Err(Error::Usage("--batch must be at least 1".into()));
    }
    // Keep the lock for the whole run.
    let mut _lock = None;
    let sources: Vec<Source> = if let Some(dir) = &args.spool {
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--spool {}: not a directory",
                dir.display()
            )));
        }
        match ingest::lock_spool(dir)? {
            Some(l) => _lock = Some(l),
            None => {
                cli::warn(format!(
                    "another mb-ingest is working on {}; nothing to do",
                    dir.display()
                ));
                return Ok(Outcome::Success);
            }
        }
        ingest::spool_files(dir)?
            .into_iter()
            .map(|path| Source::Spool {
                path,
                delete: args.delete,
            })
            .collect()
    } else if args.files.is_empty() {
        vec![Source::Stdin]
    } else {
        args.files
            .iter()
            .map(|f| {
                if f.as_os_str() == "-" {
                    Source::Stdin
                } else {
                    Source::File(f.clone())
                }
            })
            .collect()
    };
    let opts = Options {
        batch_lines: args.batch,
        dry_run: args.dry_run,
        rejects_file: args.rejects.clone(),
        progress: !args.quiet && ingest::stderr_is_terminal(),
        now: crate::time::now(),
    };
    let mut store = if args.dry_run {
        if db_path.exists() {
            Some(Store::open(&db_path, Mode::ReadOnly)?)
        } else {
            None
        }
    } else {
        Some(Store::open(&db_path, Mode::ReadWrite)?)
    };
    let counts = if sources.is_empty() {
        Default::default()
    } else {
        ingest::run(store.as_mut(), &sources, &opts)?
    };
    if !args.quiet {
        let dry = match (args.dry_run, &args.rejects) {
            (true, Some(r)) => format!(
                " (dry run: nothing written but the rejected lines, to {})",
                r.display()
            ),
            (true, None) => " (dry run, nothing written)".to_string(),
            (false, _) => String::new(),
        };
        match args.summary {
            SummaryFormat::Text => cli::warn(format!(
                "read {}, inserted {}, duplicates {}, conflicts {}, rejected {}{dry}",
                counts.read, counts.inserted, counts.duplicates, counts.conflicts, counts.rejected
            )),
            SummaryFormat::Json => {
                let mut v = serde_json::to_value(counts).unwrap_or_default();
                v["dry_run"] = serde_json::Value::Bool(args.dry_run);
                v["files"] = serde_json::Value::from(sources.len());
                let _ = writeln!(std::io::stderr().lock(), "{v}");
            }
        }
    }
    Ok(Outcome::partial_if(counts.rejected + counts.conflicts > 0))
}
