//! The one integration-test crate (one link step for all binaries).

mod pg;
mod util;

mod activity;
mod customer;
mod dashboard;
mod dashboard_pool;
mod e2e;
mod fuzz_corpus;
mod ingest;
mod man;
mod ops;
mod pg_ingest;
mod pg_store;
mod pipeline;
mod postgres;
mod report;
mod sample;
mod security;
mod stripe;
mod tokens;
