//! The fuzzed entry points, shared by the cargo-fuzz targets
//! (fuzz/fuzz_targets/*.rs) and the corpus replay test
//! (tests/fuzz_corpus.rs), so `cargo test` runs every saved input through
//! exactly the code the fuzzer ran.
//!
//! Each function takes arbitrary bytes and must return without panicking;
//! a parse error is a normal result. They use only the public API of `mb`.

#![allow(dead_code)]

use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};

use mb::tokens::input::{self, Format};
use mb::tokens::{Options, Processor};

/// The clock of the fuzzers (bounds future timestamps like MB_NOW does).
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
}

/// mb-ingest's line parser and validator, then the serialiser: an event
/// that parses must serialise and parse again to the same event.
pub fn events(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ev) = mb::events::parse_line(line, now()) {
        let again = ev.to_json();
        let back = mb::events::parse_line(&again, now())
            .unwrap_or_else(|e| panic!("re-parse of {again:?} failed: {e:?}"));
        assert_eq!(back.to_json(), again, "round trip changed the event");
    }
}

fn options() -> &'static Options {
    static OPTS: OnceLock<Options> = OnceLock::new();
    OPTS.get_or_init(|| Options {
        format: None,
        table: mb::tokens::prices::PriceTable::builtin().expect("the built-in price table parses"),
        default_target: Some(("acme".into(), "vm-1".into())),
        key_map: None,
        now: now(),
        hasher: mb::tokens::client::ClientHasher::new(b"fuzz"),
    })
}

/// mb-tokens' input formats, through the same Processor the binary uses
/// (parsing, normalisation, pricing, the pre-ingest check, JSON output).
/// The first byte picks the format: 0-3 force usage-queue, usage-snapshot,
/// request-log or provider; anything else lets `input::detect` decide.
/// Every line written must pass mb-ingest's parser.
pub fn tokens(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let format = match sel {
        0 => Format::UsageQueue,
        1 => Format::UsageSnapshot,
        2 => Format::RequestLog,
        3 => Format::Provider,
        _ => match input::detect(rest) {
            Some(f) => f,
            None => return,
        },
    };
    let mut out: Vec<u8> = Vec::new();
    {
        let mut p = Processor::new(options(), &mut out);
        let name = "v1-messages-2026-08-20T140312-7e2b9d10.log";
        let r = if format.is_whole_file() {
            p.read_whole(name, &String::from_utf8_lossy(rest), format)
        } else {
            p.read_lines(name, rest, format, 0, 0, false, now())
                .map(|_| ())
        };
        // Writing into a Vec cannot fail; an error here is a bug.
        r.expect("processing into memory does not fail");
    }
    let text = String::from_utf8(out).expect("mb-tokens writes UTF-8");
    for line in text.lines() {
        if let Err(e) = mb::events::parse_line(line, now()) {
            panic!("mb-tokens wrote a line mb-ingest rejects: {e:?}\n{line}");
        }
    }
}

/// mb-sample's /proc and mountinfo parsers, each on the same text.
pub fn sample(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    use mb::sample::{disk, source};
    let _ = source::parse_stat(&text);
    let _ = source::parse_uptime_cs(&text);
    let _ = source::parse_meminfo(&text);
    let _ = source::parse_net_dev(&text);
    let _ = disk::from_mountinfo(&text);
    let _ = disk::from_mounts(&text);
}
