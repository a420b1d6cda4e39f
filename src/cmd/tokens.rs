//! Placeholder for mb-tokens: replaced by the issue that builds it.

use std::io::Write;

use crate::cli::Outcome;
use crate::error::{Error, Result};

/// mb-tokens (not built yet).
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "mb-tokens (not built yet)",
    after_long_help = "EXAMPLES:\n    (none yet)"
)]
pub struct Args {}

/// Always fails: the tool is not built yet.
pub fn run(_args: Args, _out: &mut dyn Write) -> Result<Outcome> {
    Err(Error::Usage("mb-tokens is not built yet".into()))
}
