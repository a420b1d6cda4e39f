//! Rendering of the report structs, apart from computing them (as ripgrep
//! keeps its printer apart from its searcher): one module per format, one
//! function per view in each. `cmd/report.rs` only turns arguments into a
//! query and picks the renderer; the computations in [`crate::report`] know
//! nothing about text, CSV or JSON.
//!
//! - [`text`]: aligned tables for people (local, rounded, thousands
//!   separators);
//! - [`csv`]: the spreadsheet layouts (text cells neutralised against
//!   formula injection, numbers exact);
//! - [`json`]: one object per run for programs.

pub mod csv;
pub mod json;
pub mod text;

use crate::error::Error;
use crate::money::format_nanos_places;
use crate::output::fixed;

/// Output format of a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for people.
    Text,
    /// CSV for spreadsheets and scripts.
    Csv,
    /// JSON for programs.
    Json,
}

/// A percentage to one decimal, empty when missing.
pub(crate) fn pct(v: Option<f64>) -> String {
    v.map(|x| fixed(x, 1)).unwrap_or_default()
}

/// USD from nano-USD, to 4 decimals (half away from zero).
pub(crate) fn money4(n: i64) -> String {
    format_nanos_places(n, 4)
}

/// A CSV writer error as the stream error it is.
pub(crate) fn csv_err(e: ::csv::Error) -> Error {
    Error::Stream(e.into())
}

/// Whether `r` has network figures: some sample interval (with counter
/// deltas) fell in the period. One lone sample gives none, which is
/// "missing", not 0 bytes. Coverage is exactly 0 only without intervals.
pub(crate) fn has_network(r: &crate::report::ResourceUsage) -> bool {
    r.coverage.is_some_and(|v| v > 0.0) || r.net_in_bytes != 0.0 || r.net_out_bytes != 0.0
}
