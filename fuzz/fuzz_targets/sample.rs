//! cargo-fuzz target: see fuzz/targets.rs (`sample`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../targets.rs"]
mod targets;

fuzz_target!(|data: &[u8]| targets::sample(data));
