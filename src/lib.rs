//! mb: usage metering and billing for rented VMs and the LLM API tokens
//! their users spend.
//!
//! The binaries in `src/bin` are thin; everything lives here, one module per
//! domain (DESIGN.md section 2):
//!
//! - [`events`]: the JSON-lines contract shared by producers and mb-ingest;
//! - [`store`]: the SQLite store (schema, migrations, all SQL);
//! - [`ingest`]: validating, deduplicating, batched loading;
//! - [`config`], [`time`], [`money`], [`error`], [`cli`]: shared plumbing;
//! - [`sample`], [`tokens`], [`activity`]: the producers' domain logic;
//! - [`progress`]: mb-ingest's progress bar on a terminal;
//! - [`spool`]: the durable spool files producers hand to `mb-ingest --spool`;
//! - [`cmd`]: one module per binary with its clap `Args` and `run`.

pub mod activity;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod fsutil;
pub mod ingest;
pub mod money;
pub mod output;
pub mod progress;
pub mod report;
pub mod sample;
pub mod spool;
pub mod store;
pub mod time;
pub mod tokens;

pub use error::{Error, Result};
