//! Raw provider responses: Anthropic Messages, OpenAI Chat Completions and
//! Responses, Gemini `generateContent`, whole or streamed.
//!
//! Input is one JSON object per line, or SSE lines (`event:`, `data: {...}`,
//! `data: [DONE]`), as found in captures and in the response sections of
//! CLIProxyAPI request logs. A streamed response spans several lines that
//! are grouped here into one request:
//!
//! - Anthropic: `message_start` opens a group (model, input and cache counts
//!   under `message.usage`); every `message_delta` carries **cumulative**
//!   counts and overrides what it has (never summed); `message_stop` closes.
//! - OpenAI Chat: chunks with the same `id` form a group; usage only comes in
//!   the final chunk (`stream_options.include_usage`), so a stream without
//!   it is a zero-usage request, kept with cost 0.
//! - OpenAI Responses: `response.created` opens, `response.completed` /
//!   `.incomplete` / `.failed` close with `response.usage`.
//! - Gemini: chunks with the same `responseId` form a group; each carries
//!   running totals, so the last one wins. The Gemini CLI / Antigravity
//!   envelope `{"response": {...}}` is unwrapped.
//!
//! A group still open at the end of the input is closed there (the stream
//! was cut). Interleaved streams are not supported: a line of another group
//! closes the open one. Lines that belong to no provider shape are errors.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::prices::Tokens;
use super::usage::{self, Family, RawCounts};

/// A finished request from a provider stream or response.
#[derive(Debug, Clone)]
pub struct Done {
    /// Token semantics (and vendor) of the response.
    pub family: Family,
    /// The model the response names.
    pub model: Option<String>,
    /// Normalised tokens.
    pub tokens: Tokens,
    /// A note on inconsistent counts.
    pub note: Option<String>,
    /// The response reported an error.
    pub failed: bool,
    /// A start time found in the response (`created`, `created_at`,
    /// `createTime`, or an envelope `timestamp`).
    pub ts: Option<DateTime<Utc>>,
    /// `service_tier` reported by the provider.
    pub service_tier: Option<String>,
    /// SHA-256 of the group's lines (the record id).
    pub digest: [u8; 32],
    /// Line where the group started.
    pub line: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum Key {
    Anthropic,
    Chat(String),
    Responses,
    Gemini(String),
}

struct Acc {
    key: Key,
    family: Family,
    model: Option<String>,
    counts: RawCounts,
    failed: bool,
    ts: Option<DateTime<Utc>>,
    service_tier: Option<String>,
    hasher: Sha256,
    line: u64,
    offset: u64,
    /// A Gemini chunk with a finishReason was seen (the stream is over).
    finished: bool,
}

/// Groups provider lines into requests.
#[derive(Default)]
pub struct Parser {
    pending: Option<Acc>,
}

/// What one line produced.
#[derive(Default)]
pub struct Fed {
    /// Requests finished by this line (at most two: a closed group and a
    /// whole response).
    pub done: Vec<Done>,
    /// Why the line was rejected, if it was.
    pub error: Option<String>,
}

fn u(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_u64()
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn unix_ts(v: &Value, k: &str) -> Option<DateTime<Utc>> {
    v.get(k)
        .and_then(Value::as_i64)
        .and_then(|n| DateTime::from_timestamp(n, 0))
}

fn rfc_ts(v: &Value, k: &str) -> Option<DateTime<Utc>> {
    v.get(k)
        .and_then(Value::as_str)
        .and_then(crate::time::parse_rfc3339)
}

/// Anthropic `usage` (message or delta): fields present override `c`.
fn anthropic_usage(c: &mut RawCounts, usage: &Value) {
    if let Some(n) = u(usage, &["input_tokens"]) {
        c.input = n;
    }
    if let Some(n) = u(usage, &["output_tokens"]) {
        c.output = n;
    }
    if let Some(n) = u(usage, &["cache_read_input_tokens"]) {
        c.cache_read = n;
    }
    if let Some(n) = u(usage, &["cache_creation_input_tokens"]) {
        c.cache_write = n;
    }
    if let Some(n) = u(usage, &["cache_creation", "ephemeral_1h_input_tokens"]) {
        c.cache_write_1h = n;
    }
    if let Some(n) = u(usage, &["output_tokens_details", "thinking_tokens"]) {
        c.reasoning = n;
    }
}

/// OpenAI usage, Chat (`prompt_tokens`) or Responses (`input_tokens`) shape.
fn openai_usage(usage: &Value) -> RawCounts {
    let chat = usage.get("prompt_tokens").is_some();
    let (i, o, id, od) = if chat {
        (
            "prompt_tokens",
            "completion_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
        )
    } else {
        (
            "input_tokens",
            "output_tokens",
            "input_tokens_details",
            "output_tokens_details",
        )
    };
    let write = u(usage, &[id, "cache_creation_tokens"])
        .or_else(|| u(usage, &[id, "cache_write_tokens"]))
        .unwrap_or(0);
    RawCounts {
        input: u(usage, &[i]).unwrap_or(0),
        output: u(usage, &[o]).unwrap_or(0),
        reasoning: u(usage, &[od, "reasoning_tokens"]).unwrap_or(0),
        cache_read: u(usage, &[id, "cached_tokens"]).unwrap_or(0),
        cache_write: write,
        cache_write_1h: 0,
    }
}

/// Gemini `usageMetadata`.
fn gemini_usage(m: &Value) -> RawCounts {
    RawCounts {
        input: u(m, &["promptTokenCount"])
            .unwrap_or(0)
            .saturating_add(u(m, &["toolUsePromptTokenCount"]).unwrap_or(0)),
        output: u(m, &["candidatesTokenCount"]).unwrap_or(0),
        reasoning: u(m, &["thoughtsTokenCount"]).unwrap_or(0),
        cache_read: u(m, &["cachedContentTokenCount"]).unwrap_or(0),
        cache_write: 0,
        cache_write_1h: 0,
    }
}

impl Acc {
    fn new(key: Key, family: Family, line: u64, offset: u64) -> Acc {
        Acc {
            key,
            family,
            model: None,
            counts: RawCounts::default(),
            failed: false,
            ts: None,
            service_tier: None,
            hasher: Sha256::new(),
            line,
            offset,
            finished: false,
        }
    }

    fn finish(self) -> Done {
        let (tokens, note) = usage::normalise(self.family, self.counts);
        Done {
            family: self.family,
            model: self.model,
            tokens,
            note,
            failed: self.failed,
            ts: self.ts,
            service_tier: self.service_tier,
            digest: self.hasher.finalize().into(),
            line: self.line,
        }
    }
}

impl Parser {
    /// A new parser with no open group.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Where the open group started (byte offset, line number before it), so
    /// a resumed run can re-read it whole.
    pub fn pending_start(&self) -> Option<(u64, u64)> {
        self.pending
            .as_ref()
            .map(|a| (a.offset, a.line.saturating_sub(1)))
    }

    /// Close the open group, if any (end of input).
    pub fn finish(&mut self) -> Option<Done> {
        self.pending.take().map(Acc::finish)
    }

    fn close(&mut self, fed: &mut Fed) {
        if let Some(a) = self.pending.take() {
            fed.done.push(a.finish());
        }
    }

    /// Feed one line (`offset` is where it starts, `line_no` its number).
    pub fn feed(&mut self, line: &[u8], line_no: u64, offset: u64) -> Fed {
        let mut fed = Fed::default();
        let text = match std::str::from_utf8(line) {
            Ok(t) => t.trim(),
            Err(_) => {
                fed.error = Some("not UTF-8".into());
                return fed;
            }
        };
        // SSE framing: keep the data, skip the rest.
        let json = if let Some(d) = text.strip_prefix("data:") {
            d.trim()
        } else if text.is_empty()
            || text.starts_with("event:")
            || text.starts_with(':')
            || text.starts_with("id:")
            || text.starts_with("retry:")
        {
            return fed;
        } else {
            text
        };
        if json == "[DONE]" || json.is_empty() {
            return fed;
        }
        let mut v: Value = match serde_json::from_str(json) {
            // A Gemini stream requested with `alt=json` is one JSON array of
            // the chunks instead of SSE: read its elements in order.
            Ok(Value::Array(items)) => {
                for item in items {
                    let text = item.to_string();
                    let f = self.feed(text.as_bytes(), line_no, offset);
                    fed.done.extend(f.done);
                    if f.error.is_some() {
                        fed.error = f.error;
                        return fed;
                    }
                }
                return fed;
            }
            Ok(v) => v,
            Err(e) => {
                let hint = if e.is_eof() {
                    " (the line looks truncated)"
                } else {
                    ""
                };
                fed.error = Some(format!("invalid JSON at column {}{hint}", e.column()));
                return fed;
            }
        };
        // Envelopes: {"timestamp": ..., "response": {...}} written by
        // capture tools, and the Gemini CLI / Antigravity wrapper.
        let env_ts = rfc_ts(&v, "timestamp");
        if v.get("response")
            .is_some_and(|r| r.get("usageMetadata").is_some() || r.get("candidates").is_some())
            || (env_ts.is_some() && v.get("response").is_some_and(Value::is_object))
        {
            v = v["response"].take();
        }
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        let object = v.get("object").and_then(Value::as_str).unwrap_or("");
        let hash = |a: &mut Acc| {
            a.hasher.update(line);
            a.hasher.update(b"\n");
        };
        let same = |p: &Option<Acc>, k: &Key| p.as_ref().is_some_and(|a| &a.key == k);
        match (ty, object) {
            ("message_start", _) => {
                self.close(&mut fed);
                let mut a = Acc::new(Key::Anthropic, Family::Anthropic, line_no, offset);
                let msg = &v["message"];
                a.model = s(msg, "model");
                anthropic_usage(&mut a.counts, &msg["usage"]);
                a.service_tier = s(&msg["usage"], "service_tier");
                a.ts = env_ts;
                hash(&mut a);
                self.pending = Some(a);
            }
            ("message_delta", _)
            | ("message_stop", _)
            | ("content_block_start", _)
            | ("content_block_delta", _)
            | ("content_block_stop", _)
            | ("ping", _)
                if same(&self.pending, &Key::Anthropic) || ty == "message_delta" =>
            {
                if !same(&self.pending, &Key::Anthropic) {
                    // A delta without its start (a cut capture): keep what
                    // it says; the model is then unknown and reported.
                    self.close(&mut fed);
                    self.pending =
                        Some(Acc::new(Key::Anthropic, Family::Anthropic, line_no, offset));
                }
                if let Some(a) = self.pending.as_mut() {
                    hash(a);
                    if ty == "message_delta" {
                        anthropic_usage(&mut a.counts, &v["usage"]);
                    }
                }
                if ty == "message_stop" {
                    self.close(&mut fed);
                }
            }
            ("error", _) if self.pending.is_some() => {
                if let Some(a) = self.pending.as_mut() {
                    hash(a);
                    a.failed = true;
                }
                self.close(&mut fed);
            }
            ("message", _) => {
                self.close(&mut fed);
                let mut a = Acc::new(Key::Anthropic, Family::Anthropic, line_no, offset);
                a.model = s(&v, "model");
                anthropic_usage(&mut a.counts, &v["usage"]);
                a.service_tier = s(&v["usage"], "service_tier");
                a.ts = env_ts;
                hash(&mut a);
                fed.done.push(a.finish());
            }
            (_, "chat.completion") | (_, "response") => {
                self.close(&mut fed);
                let mut a = Acc::new(Key::Responses, Family::OpenAi, line_no, offset);
                a.model = s(&v, "model");
                a.counts = openai_usage(&v["usage"]);
                a.failed = s(&v, "status").as_deref() == Some("failed");
                a.service_tier = s(&v, "service_tier");
                a.ts = env_ts
                    .or_else(|| unix_ts(&v, "created"))
                    .or_else(|| unix_ts(&v, "created_at"));
                hash(&mut a);
                fed.done.push(a.finish());
            }
            (_, "chat.completion.chunk") => {
                let key = Key::Chat(s(&v, "id").unwrap_or_default());
                if !same(&self.pending, &key) {
                    self.close(&mut fed);
                    let mut a = Acc::new(key, Family::OpenAi, line_no, offset);
                    a.ts = env_ts.or_else(|| unix_ts(&v, "created"));
                    self.pending = Some(a);
                }
                if let Some(a) = self.pending.as_mut() {
                    hash(a);
                    if a.model.is_none() {
                        a.model = s(&v, "model");
                    }
                    if let Some(t) = s(&v, "service_tier") {
                        a.service_tier = Some(t);
                    }
                    if v.get("usage").is_some_and(Value::is_object) {
                        a.counts = openai_usage(&v["usage"]);
                    }
                }
            }
            (t, _) if t.starts_with("response.") => {
                let r = &v["response"];
                if t == "response.created" || !same(&self.pending, &Key::Responses) {
                    self.close(&mut fed);
                    let mut a = Acc::new(Key::Responses, Family::OpenAi, line_no, offset);
                    a.ts = env_ts.or_else(|| unix_ts(r, "created_at"));
                    self.pending = Some(a);
                }
                if let Some(a) = self.pending.as_mut() {
                    hash(a);
                    if let Some(m) = s(r, "model") {
                        a.model = Some(m);
                    }
                    if let Some(st) = s(r, "service_tier") {
                        a.service_tier = Some(st);
                    }
                    if r.get("usage").is_some_and(Value::is_object) {
                        a.counts = openai_usage(&r["usage"]);
                    }
                    if t == "response.failed" || t == "error" {
                        a.failed = true;
                    }
                }
                if matches!(
                    t,
                    "response.completed"
                        | "response.incomplete"
                        | "response.failed"
                        | "response.done"
                ) {
                    self.close(&mut fed);
                }
            }
            _ if v.get("usageMetadata").is_some() || v.get("candidates").is_some() => {
                // Chunks of one stream share a responseId. Without one (raw
                // captures of some Gemini paths), consecutive chunks form one
                // stream until a chunk carries a finishReason, which ends it:
                // counting each chunk would bill the running totals again
                // and again.
                let key = Key::Gemini(s(&v, "responseId").unwrap_or_default());
                let open_anon = key == Key::Gemini(String::new())
                    && same(&self.pending, &key)
                    && self.pending.as_ref().is_some_and(|a| !a.finished);
                if !same(&self.pending, &key) || (key == Key::Gemini(String::new()) && !open_anon) {
                    self.close(&mut fed);
                    let mut a = Acc::new(key.clone(), Family::Google, line_no, offset);
                    a.ts = env_ts.or_else(|| rfc_ts(&v, "createTime"));
                    self.pending = Some(a);
                }
                if let Some(a) = self.pending.as_mut() {
                    hash(a);
                    if let Some(m) = s(&v, "modelVersion") {
                        a.model = Some(m);
                    }
                    if let Some(m) = v.get("usageMetadata").filter(|m| m.is_object()) {
                        // Running totals: the last chunk wins.
                        a.counts = gemini_usage(m);
                    }
                    let finish = v["candidates"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c.get("finishReason").is_some_and(|f| !f.is_null()))
                    });
                    if finish {
                        a.finished = true;
                    }
                }
                if key == Key::Gemini(String::new())
                    && self.pending.as_ref().is_some_and(|a| a.finished)
                {
                    self.close(&mut fed);
                }
            }
            ("error", _) => {
                fed.error = Some("an error response with no request it belongs to".into());
            }
            _ => {
                fed.error = Some(
                    "not a provider response (expected an Anthropic message or stream event, \
                     an OpenAI chat.completion/response, or a Gemini response with usageMetadata)"
                        .into(),
                );
            }
        }
        fed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> Vec<Done> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let f = p.feed(l.as_bytes(), i as u64 + 1, 0);
            assert!(f.error.is_none(), "{:?}", f.error);
            out.extend(f.done);
        }
        out.extend(p.finish());
        out
    }

    #[test]
    fn anthropic_stream_last_delta_filled_from_start() {
        let d = run(&[
            "event: message_start",
            r#"data: {"type":"message_start","message":{"id":"msg_1","model":"claude-haiku-4-5","usage":{"input_tokens":12,"cache_read_input_tokens":100,"cache_creation_input_tokens":50,"output_tokens":1}}}"#,
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#,
            r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":30}}"#,
            r#"data: {"type":"message_delta","delta":{},"usage":{"output_tokens":42}}"#,
            r#"data: {"type":"message_stop"}"#,
        ]);
        assert_eq!(d.len(), 1);
        let t = d[0].tokens;
        assert_eq!(
            (t.input, t.output, t.cache_read, t.cache_write),
            (12, 42, 100, 50)
        );
        assert_eq!(d[0].model.as_deref(), Some("claude-haiku-4-5"));
        assert_eq!(d[0].line, 2);
    }

    #[test]
    fn gemini_last_chunk_wins_and_openai_stream_without_usage() {
        let d = run(&[
            r#"{"responseId":"r1","modelVersion":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":5}}"#,
            r#"{"responseId":"r1","modelVersion":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":20,"thoughtsTokenCount":7,"cachedContentTokenCount":40}}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":1790000000,"model":"gpt-4o-mini","choices":[{"delta":{"content":"x"}}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":1790000000,"model":"gpt-4o-mini","choices":[{"delta":{},"finish_reason":"stop"}]}"#,
        ]);
        assert_eq!(d.len(), 2);
        let t = d[0].tokens;
        assert_eq!(
            (t.input, t.output, t.cache_read, t.reasoning),
            (60, 27, 40, 7)
        );
        assert!(d[1].tokens.is_zero());
        assert_eq!(d[1].ts.map(|t| t.timestamp()), Some(1_790_000_000));
    }
}
