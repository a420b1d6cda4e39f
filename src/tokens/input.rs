//! Reading inputs: line splitting with byte offsets, and format detection.
//!
//! The hot path of mb-tokens is "split a big JSONL file into lines". This
//! reader works on a `BufRead` without copying a line twice, knows the byte
//! offset after each *complete* line (what `--state` saves, so a resumed run
//! never starts in the middle of a line), and caps the length of a line so a
//! file without newlines cannot make memory grow with the input.

use std::io::{self, BufRead};

/// Longest input line kept, in bytes. Usage records are about 1.5 KiB; a
/// failed record can carry an upstream error body, so leave ample room.
pub const MAX_LINE: usize = 16 << 20;

/// One line read by [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line ending in `\n` (the newline and a `\r` before it are removed).
    Complete,
    /// The last line of the input, without a newline: a writer may still be
    /// in the middle of it.
    Partial,
    /// A complete line longer than [`MAX_LINE`]; its bytes were dropped.
    TooLong,
}

/// Splits a `BufRead` into lines, tracking line numbers and byte offsets.
pub struct LineReader<R> {
    inner: R,
    /// The current line's bytes (valid after [`LineReader::next_line`]).
    pub buf: Vec<u8>,
    /// Byte offset just after the last complete line.
    pub offset: u64,
    /// 1-based number of the line last returned.
    pub line_no: u64,
}

impl<R: BufRead> LineReader<R> {
    /// A reader whose first byte is at `offset` and first line is
    /// `line_no + 1` of the file (for resumed runs).
    pub fn new(inner: R, offset: u64, line_no: u64) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(4096),
            offset,
            line_no,
        }
    }

    /// Read the next line into `self.buf`; `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        self.buf.clear();
        let mut too_long = false;
        // Every byte consumed for this line, newline included: the offset
        // advances by exactly this much when the line is complete.
        let mut consumed: u64 = 0;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if consumed == 0 {
                    return Ok(None);
                }
                self.line_no += 1;
                return Ok(Some(if too_long {
                    Line::TooLong
                } else {
                    Line::Partial
                }));
            }
            let (used, done) = match memchr(chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let take = if done { used - 1 } else { used };
            if !too_long {
                if self.buf.len() + take > MAX_LINE {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.inner.consume(used);
            consumed += used as u64;
            if done {
                self.offset += consumed;
                self.line_no += 1;
                if too_long {
                    return Ok(Some(Line::TooLong));
                }
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                return Ok(Some(Line::Complete));
            }
        }
    }
}

/// Position of the first `\n`, eight bytes at a time (the classic SWAR
/// zero-byte test): the line scan was the largest single cost of a run with
/// a byte-by-byte search, and the standard library does not expose memchr.
fn memchr(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        let x = u64::from_le_bytes(w) ^ NL;
        if (x.wrapping_sub(LO) & !x & HI) != 0 {
            break;
        }
        i += 8;
    }
    s[i..].iter().position(|&b| b == b'\n').map(|p| p + i)
}

/// The input formats mb-tokens reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// CLIProxyAPI usage-queue records, one JSON object per line.
    UsageQueue,
    /// CLIProxyAPI's legacy /v0/management/usage snapshot (or export).
    UsageSnapshot,
    /// A CLIProxyAPI request-log file (request-log: true).
    RequestLog,
    /// Raw provider responses (Anthropic, OpenAI, Gemini), one JSON per line
    /// or SSE `data:` lines.
    Provider,
}

impl Format {
    /// The `source_format` written on output lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::UsageQueue => "usage-queue",
            Format::UsageSnapshot => "usage-snapshot",
            Format::RequestLog => "request-log",
            Format::Provider => "provider",
        }
    }

    /// True for formats read as one document (not line by line).
    pub fn is_whole_file(self) -> bool {
        matches!(self, Format::UsageSnapshot | Format::RequestLog)
    }
}

/// Guess the format from the first bytes of an input. `None` when nothing
/// fits (the caller asks for `--format`); an empty input detects as
/// usage-queue (nothing to read either way).
pub fn detect(head: &[u8]) -> Option<Format> {
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.is_empty() {
        return Some(Format::UsageQueue);
    }
    if t.starts_with("=== ") || text.contains("\n=== API RESPONSE") {
        return Some(Format::RequestLog);
    }
    if t.starts_with("data:") || t.starts_with("event:") {
        return Some(Format::Provider);
    }
    if !t.starts_with('{') {
        return None;
    }
    let first = t.lines().next().unwrap_or("");
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(first) {
        Ok(obj) => Some(classify(&obj)),
        // A pretty-printed or huge first object: only the snapshot is a
        // single multi-line document.
        Err(_) if t.contains("\"apis\"") || t.contains("\"usage\"") => Some(Format::UsageSnapshot),
        Err(_) if t.contains("\"timestamp\"") && t.contains("\"tokens\"") => {
            Some(Format::UsageQueue)
        }
        Err(_) => None,
    }
}

fn classify(obj: &serde_json::Map<String, serde_json::Value>) -> Format {
    if obj.contains_key("tokens") && obj.contains_key("timestamp") {
        return Format::UsageQueue;
    }
    let snapshot = |v: Option<&serde_json::Value>| v.is_some_and(|u| u.get("apis").is_some());
    if obj.contains_key("apis") || snapshot(obj.get("usage")) {
        return Format::UsageSnapshot;
    }
    Format::Provider
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize) -> Vec<(Option<Line>, String, u64)> {
        let mut r = LineReader::new(io::BufReader::with_capacity(cap, input), 0, 0);
        let mut v = Vec::new();
        loop {
            let l = r.next_line().unwrap();
            let done = l.is_none();
            v.push((l, String::from_utf8_lossy(&r.buf).into_owned(), r.offset));
            if done {
                return v;
            }
        }
    }

    #[test]
    fn offsets_count_complete_lines_only() {
        for cap in [1, 3, 64] {
            let v = lines(b"ab\r\ncd\n\nef", cap);
            assert_eq!(v[0], (Some(Line::Complete), "ab".into(), 4));
            assert_eq!(v[1], (Some(Line::Complete), "cd".into(), 7));
            assert_eq!(v[2], (Some(Line::Complete), "".into(), 8));
            assert_eq!(v[3], (Some(Line::Partial), "ef".into(), 8));
            assert_eq!(v[4].0, None);
        }
    }

    #[test]
    fn newline_search() {
        for n in 0..40 {
            let mut v = vec![b'a'; n];
            assert_eq!(memchr(&v), None);
            v.push(b'\n');
            v.extend_from_slice(b"xx\n");
            assert_eq!(memchr(&v), Some(n));
        }
        assert_eq!(memchr(b"\x8a\x0b\n"), Some(2));
    }

    #[test]
    fn detection() {
        let q = br#"{"timestamp":"2026-08-20T14:03:12Z","tokens":{"input_tokens":1}}"#;
        assert_eq!(detect(q), Some(Format::UsageQueue));
        assert_eq!(
            detect(b"{\n  \"usage\": {\n \"apis\": {}}}"),
            Some(Format::UsageSnapshot)
        );
        assert_eq!(
            detect(br#"{"usage":{"apis":{}},"failed_requests":0}"#),
            Some(Format::UsageSnapshot)
        );
        assert_eq!(
            detect(b"=== REQUEST INFO ===\nURL: /v1\n"),
            Some(Format::RequestLog)
        );
        assert_eq!(
            detect(br#"{"type":"message","usage":{}}"#),
            Some(Format::Provider)
        );
        assert_eq!(
            detect(b"event: message_start\ndata: {}"),
            Some(Format::Provider)
        );
        assert_eq!(detect(b"hello"), None);
        assert_eq!(detect(b""), Some(Format::UsageQueue));
    }
}
