//! Robustness on arbitrary input.
//!
//! - Every file of `fuzz/corpus/<target>/` (the seeds and anything a fuzzer
//!   found and we saved) goes through the same entry points as the cargo-fuzz
//!   targets (`fuzz/targets.rs`, included below), so a fixed crash stays
//!   fixed on every `cargo test`, without nightly or cargo-fuzz.
//! - A property test runs the real mb-ingest on generated inputs (random
//!   bytes, and valid lines with random bytes spliced in) and checks that it
//!   never panics, exits 0 or 1, and reconciles: read = inserted +
//!   duplicates + conflicts + rejected, and the rows stored are the
//!   insertions counted.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use crate::util::{fixture, run_cmd, stderr, Env};

#[path = "../fuzz/targets.rs"]
mod targets;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Findings of the fuzzers in modules this test does not own, reported to
/// their owners and not fixed yet: `target/file` in the corpus. They are
/// skipped (with a message) instead of failing every run until they are
/// fixed. When a bug is fixed, delete its entry: the file then stays in the
/// corpus as a regression test like any other.
/// (None open now. The first, an octal escape above \377 overflowing u8 in
/// src/sample/disk.rs `unescape`, is fixed; its input stays in the corpus
/// as `sample/crash-unescape-octal-overflow`.)
const KNOWN_OPEN: &[&str] = &[];

fn is_known_open(target: &str, p: &Path) -> bool {
    let name = format!(
        "{target}/{}",
        p.file_name().unwrap_or_default().to_string_lossy()
    );
    KNOWN_OPEN.contains(&name.as_str())
}

/// Run every corpus file of `target` through `f`; name the files that panic.
fn replay(target: &str, f: fn(&[u8])) {
    let files = corpus(target);
    assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
    let mut failed = Vec::new();
    for p in &files {
        if is_known_open(target, p) {
            eprintln!(
                "skipping known open finding {} (see KNOWN_OPEN)",
                p.display()
            );
            continue;
        }
        let data = std::fs::read(p).unwrap();
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            failed.push(p.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} corpus inputs of {target} panic (reproduce with cargo +nightly fuzz run {target} FILE):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn corpus_events() {
    replay("events", targets::events);
}

#[test]
fn corpus_tokens() {
    replay("tokens", targets::tokens);
}

#[test]
fn corpus_sample() {
    replay("sample", targets::sample);
}

/// Input lines for the property test: valid events of every kind, with
/// random bytes spliced into some, random byte lines, blank lines and
/// comment lines.
fn input() -> impl Strategy<Value = Vec<u8>> {
    let golden: Vec<String> = std::fs::read_to_string(fixture("ingest/golden.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(String::from)
        .collect();
    let n = golden.len();
    let line = prop_oneof![
        // A valid line, unchanged (duplicates across and within cases).
        (0..n).prop_map({
            let g = golden.clone();
            move |i| g[i].clone().into_bytes()
        }),
        // A valid line with bytes overwritten or inserted at some position.
        (
            0..n,
            any::<usize>(),
            prop::collection::vec(any::<u8>(), 1..6),
            any::<bool>()
        )
            .prop_map({
                let g = golden.clone();
                move |(i, at, bytes, insert)| {
                    let mut l = g[i].clone().into_bytes();
                    let at = at % l.len();
                    if insert {
                        l.splice(at..at, bytes);
                    } else {
                        for (k, b) in bytes.into_iter().enumerate() {
                            if at + k < l.len() {
                                l[at + k] = b;
                            }
                        }
                    }
                    l.retain(|&b| b != b'\n');
                    l
                }
            }),
        // Arbitrary bytes.
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|mut v| {
            v.retain(|&b| b != b'\n');
            v
        }),
        Just(b"# a comment".to_vec()),
        Just(Vec::new()),
    ];
    (prop::collection::vec(line, 0..12), any::<bool>()).prop_map(|(lines, trailing_newline)| {
        let mut out = lines.join(&b'\n');
        if trailing_newline {
            out.push(b'\n');
        }
        out
    })
}

fn count(env: &Env) -> i64 {
    let q = env.query(
        "SELECT (SELECT count(*) FROM api_usage) + (SELECT count(*) FROM resource_usage) \
         + (SELECT count(*) FROM activity_log)",
    );
    q[0].parse().unwrap()
}

#[test]
fn ingest_never_panics_and_always_reconciles() {
    // One database for all cases, so later cases also meet stored ids.
    let env = Env::new();
    let cfg = ProptestConfig {
        cases: 40,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let stored = std::cell::Cell::new(0i64);
    proptest!(cfg, |(data in input())| {
        let mut c = env.cmd("mb-ingest");
        c.args(["--summary", "json"]);
        // run_cmd takes text; write the raw bytes through a file instead.
        let f = env.path("input.bin");
        std::fs::write(&f, &data).unwrap();
        c.arg(&f);
        let o = run_cmd(&mut c, "");
        let err = stderr(&o);
        prop_assert!(matches!(o.status.code(), Some(0) | Some(1)), "exit {:?}: {}", o.status, err);
        prop_assert!(!err.contains("panicked"), "{}", err);
        let last = err.lines().last().unwrap_or_default();
        let s: serde_json::Value = serde_json::from_str(last)
            .map_err(|e| TestCaseError::fail(format!("{e}: {err}")))?;
        let g = |k: &str| s[k].as_i64().unwrap();
        prop_assert_eq!(
            g("read"),
            g("inserted") + g("duplicates") + g("conflicts") + g("rejected"),
            "{}", last
        );
        // Exit 1 exactly when something was rejected or conflicted.
        prop_assert_eq!(o.status.code() == Some(1), g("rejected") + g("conflicts") > 0, "{}", err);
        stored.set(stored.get() + g("inserted"));
        if env.db.exists() {
            prop_assert_eq!(count(&env), stored.get());
        }
    });
}
