//! Placeholder for mb-report: replaced by the issue that builds it.

use std::io::Write;

use crate::cli::Outcome;
use crate::error::{Error, Result};

/// mb-report (not built yet).
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "mb-report (not built yet)",
    after_long_help = "EXAMPLES:\n    (none yet)"
)]
pub struct Args {}

/// Always fails: the tool is not built yet.
pub fn run(_args: Args, _out: &mut dyn Write) -> Result<Outcome> {
    Err(Error::Usage("mb-report is not built yet".into()))
}
