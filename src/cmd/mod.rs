//! One module per binary: its clap `Args` (with the EXAMPLES of `--help`)
//! and its `run` function. The domain logic stays in the library modules;
//! these modules only translate arguments and print.

pub mod activity;
pub mod customer;
pub mod dashboard;
pub mod ingest;
pub mod report;
pub mod sample;
pub mod tokens;
