//! CLIProxyAPI usage-queue records (one JSON object per line).
//!
//! Both shapes are read: the first queue version (v6.9.38: `timestamp`,
//! `tokens{input,output,reasoning,cached,total}`, `provider`, `model`, ...)
//! and the current one (`accounting_version` 2 with `token_breakdown`).
//! Every field except the timestamp, the model and the token counts is
//! optional, because fields were only ever added (tokens.md section 1.4).
//!
//! Token semantics: when `token_breakdown.quality` is `complete`, its
//! non-overlapping buckets are used as they are; otherwise the executor's
//! family rules ([`super::usage::normalise`]). In old Claude records without
//! `cache_read_tokens`, `cached_tokens` is reads, or writes when there were
//! no reads; it is priced as reads (the record cannot tell), a known loss of
//! the source, documented in mb-tokens(1).
//!
//! This is the hot path (hundreds of MB per run): the record is deserialised
//! into borrowed fields, and only on failure is it parsed a second time with
//! `serde_path_to_error` to name the offending field.

use std::borrow::Cow;

use serde::Deserialize;

use super::prices::Tokens;
use super::usage::{self, Family, RawCounts, Record};

#[derive(Deserialize)]
struct Queue<'a> {
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    tokens: Option<QTokens>,
    #[serde(default)]
    failed: Option<bool>,
    #[serde(borrow)]
    provider: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alias: Option<Cow<'a, str>>,
    #[serde(borrow)]
    auth_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    api_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    service_tier: Option<Cow<'a, str>>,
    #[serde(borrow)]
    response_service_tier: Option<Cow<'a, str>>,
    token_breakdown: Option<Breakdown<'a>>,
}

#[derive(Deserialize, Default)]
struct QTokens {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
    cached_tokens: Option<u64>,
    cache_read_tokens: Option<u64>,
    cache_read_tokens_present: Option<bool>,
    cache_creation_tokens: Option<u64>,
    cache_creation_1h_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Breakdown<'a> {
    #[serde(borrow)]
    quality: Option<Cow<'a, str>>,
    total_tokens: Option<u64>,
    input: Option<BInput>,
    output: Option<BOutput>,
}

#[derive(Deserialize)]
struct BInput {
    uncached_tokens: Option<u64>,
    cache_read_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct BOutput {
    total_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
}

/// A parsed queue line: the record, plus a note on inconsistent counts.
pub type Parsed = (Record, Option<String>);

/// Parse one usage-queue line. `Err` is the reason, naming the field.
pub fn parse(line: &[u8]) -> Result<Parsed, String> {
    // One UTF-8 check of the whole line is much cheaper than serde_json's
    // check of every string it borrows.
    let text = std::str::from_utf8(line)
        .map_err(|e| format!("not UTF-8 (invalid byte at column {})", e.valid_up_to() + 1))?;
    let q: Queue = match serde_json::from_str(text) {
        Ok(q) => q,
        Err(e) => return Err(explain(line, e)),
    };
    let ts_raw = q
        .timestamp
        .as_deref()
        .ok_or_else(|| "field \"timestamp\": missing".to_string())?;
    let ts = crate::time::parse_rfc3339(ts_raw)
        .ok_or_else(|| format!("field \"timestamp\": {ts_raw:?} is not RFC 3339"))?;
    let model = match (q.model.as_deref(), q.alias.as_deref()) {
        (Some(m), _) if !m.is_empty() => m,
        (_, Some(a)) if !a.is_empty() => a,
        _ => return Err("field \"model\": missing or empty".into()),
    };
    let raw_tokens = q
        .tokens
        .ok_or_else(|| "field \"tokens\": missing".to_string())?;
    let provider_raw = q.provider.as_deref().unwrap_or("");
    let (provider, family) = if provider_raw.is_empty() {
        let v = usage::provider_of_model(model);
        (v.to_string(), usage::family_of_vendor(v))
    } else {
        (
            usage::normalise_provider(provider_raw),
            usage::family_of_executor(provider_raw),
        )
    };
    let legacy = legacy_tokens(family, &raw_tokens);
    let (tokens, note, unclassified) = match &q.token_breakdown {
        Some(b) if b.quality.as_deref() == Some("complete") => {
            let mut t = breakdown_tokens(b);
            t.cache_write_1h = raw_tokens
                .cache_creation_1h_tokens
                .unwrap_or(0)
                .min(t.cache_write);
            (t, None, None)
        }
        Some(b) => {
            // "unclassified" or "inconsistent": upstream could not split
            // the total into buckets (sdk/cliproxy/usage/accounting.go).
            // The legacy `tokens` fields are used when they add up to the
            // reported total; otherwise nothing can be priced honestly.
            let total = b.total_tokens.unwrap_or(0);
            let (lt, lnote) = legacy.clone();
            let quality = b.quality.as_deref().unwrap_or("");
            if total == 0 || legacy_total(family, &raw_tokens) == total {
                (lt, lnote, None)
            } else {
                let mut t = breakdown_tokens(b);
                let classified = t.prompt().saturating_add(t.output);
                // The part upstream could not classify goes to tokens_in,
                // so the line's total is the reported one; the line is
                // unpriced, and `reprice` leaves it alone.
                t.input = t.input.saturating_add(total.saturating_sub(classified));
                let unclassified = total.saturating_sub(classified);
                (
                    t,
                    Some(format!(
                        "token_breakdown quality {quality:?}: {unclassified} of {total} tokens are \
                         unclassified and the legacy counts do not add up to the total; written \
                         unpriced with the total (unclassified tokens in tokens_in)"
                    )),
                    Some(total),
                )
            }
        }
        None => (legacy.0, legacy.1, None),
    };
    let tier = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
    let service_tier = tier(q.response_service_tier.as_deref())
        .or_else(|| tier(q.service_tier.as_deref()).filter(|s| s != "default" && s != "auto"));
    let request_id = q.request_id.as_deref().filter(|r| !r.is_empty());
    let mut id = usage::cpa_id(request_id, ts_raw, line);
    if request_id.is_some() && is_additional(model, q.alias.as_deref()) {
        id = usage::additional_id(&id, model, line);
    }
    let rec = Record {
        id,
        ts,
        request_id: request_id.map(str::to_string),
        provider,
        model: model.to_string(),
        tokens,
        failed: q.failed.unwrap_or(false),
        auth_type: usage::auth_type(q.auth_type.as_deref().unwrap_or("")),
        client_key: q
            .api_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(str::to_string),
        service_tier,
        source_format: if unclassified.is_some() {
            usage::UNCLASSIFIED_QUEUE
        } else {
            "usage-queue"
        },
        unclassified,
    };
    Ok((rec, note))
}

/// The non-overlapping buckets of a v2 breakdown.
fn breakdown_tokens(b: &Breakdown) -> Tokens {
    let i = b.input.as_ref();
    let o = b.output.as_ref();
    let out = o.and_then(|o| o.total_tokens).unwrap_or(0);
    Tokens {
        input: i.and_then(|i| i.uncached_tokens).unwrap_or(0),
        output: out,
        cache_read: i.and_then(|i| i.cache_read_tokens).unwrap_or(0),
        cache_write: i.and_then(|i| i.cache_write_tokens).unwrap_or(0),
        cache_write_1h: 0,
        reasoning: o.and_then(|o| o.reasoning_tokens).unwrap_or(0).min(out),
    }
}

/// The cache reads of a `tokens` object, by queue shape (docs/mb-tokens.md,
/// "Upstream shapes"):
///
/// - v6.9.38 to v7.0.2 have only `cached_tokens` (for Claude: reads, or
///   writes when there were no reads; the record cannot tell);
/// - v7.0.3 to v7.2.66 always marshal `cache_read_tokens`, but only the
///   Claude parser fills it: for the other providers the count is in
///   `cached_tokens` and `cache_read_tokens` is 0;
/// - v7.2.67 fills it for every provider, v7.2.74 adds
///   `cache_read_tokens_present: true`.
///
/// So: Claude takes `cache_read_tokens` whenever the field exists (its
/// `cached_tokens` may be writes); the others take it when upstream flags
/// it present, else the larger of the two fields (equal from v7.2.67 on,
/// `cached_tokens` before).
fn cache_reads(family: Family, t: &QTokens) -> u64 {
    let cached = t.cached_tokens.unwrap_or(0);
    match (family, t.cache_read_tokens) {
        (_, None) => cached,
        (Family::Anthropic, Some(r)) => r,
        (_, Some(r)) if t.cache_read_tokens_present == Some(true) => r,
        (_, Some(r)) => r.max(cached),
    }
}

/// The record's legacy `tokens` object under its executor's rules.
fn legacy_tokens(family: Family, t: &QTokens) -> (Tokens, Option<String>) {
    let (mut tokens, note) = usage::normalise(
        family,
        RawCounts {
            input: t.input_tokens.unwrap_or(0),
            output: t.output_tokens.unwrap_or(0),
            reasoning: t.reasoning_tokens.unwrap_or(0),
            cache_read: cache_reads(family, t),
            cache_write: t.cache_creation_tokens.unwrap_or(0),
            cache_write_1h: 0,
        },
    );
    tokens.cache_write_1h = t
        .cache_creation_1h_tokens
        .unwrap_or(0)
        .min(tokens.cache_write);
    (tokens, note)
}

/// The total the legacy fields imply, as upstream computes `total_tokens`
/// from v7.2.97 on: Claude input + output + cache reads + cache writes
/// (all separate), OpenAI-style input + output (cache and reasoning are
/// subsets), Gemini input + output + thoughts (thoughts are separate).
fn legacy_total(family: Family, t: &QTokens) -> u64 {
    let (i, o, r) = (
        t.input_tokens.unwrap_or(0),
        t.output_tokens.unwrap_or(0),
        t.reasoning_tokens.unwrap_or(0),
    );
    match family {
        Family::Anthropic => i
            .saturating_add(o)
            .saturating_add(t.cache_read_tokens.unwrap_or(0))
            .saturating_add(t.cache_creation_tokens.unwrap_or(0)),
        Family::OpenAi => i.saturating_add(o),
        Family::Google => i.saturating_add(o).saturating_add(r),
    }
}

/// An additional record of one request (`PublishAdditionalModel` in
/// upstream's internal/runtime/executor/helps/usage_helpers.go): the Codex
/// image tool's usage, published with the same timestamp and request id as
/// the text record, under the image model (`gpt-image-*`) while `alias`
/// stays what the client asked for. A client asking for an image model
/// itself has an image alias, so its record is a main one.
fn is_additional(model: &str, alias: Option<&str>) -> bool {
    let image = |m: &str| {
        let m = m.rsplit('/').next().unwrap_or(m).to_ascii_lowercase();
        m.starts_with("gpt-image") || m.starts_with("chatgpt-image") || m.starts_with("dall-e")
    };
    image(model) && alias.is_some_and(|a| !a.is_empty() && !image(a))
}

/// A reason for a line serde rejected: the field path for type errors, the
/// column for syntax errors, and a hint for truncated lines.
fn explain(line: &[u8], e: serde_json::Error) -> String {
    if e.is_syntax() || e.is_eof() {
        let hint = if e.is_eof() {
            " (the line looks truncated)"
        } else {
            ""
        };
        return format!("invalid JSON at column {}{hint}", e.column());
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    match serde_path_to_error::deserialize::<_, Queue>(&mut de) {
        Err(pe) => {
            let path = pe.path().to_string();
            let mut msg = pe.into_inner().to_string();
            if let Some(i) = msg.find(" at line ") {
                msg.truncate(i);
            }
            let msg = msg
                .replace("expected u64", "expected a non-negative integer")
                .replace("invalid type: map", "invalid type: object");
            if path.is_empty() || path == "." {
                msg
            } else {
                format!("field \"{path}\": {msg}")
            }
        }
        Ok(_) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_claude_record() {
        let l = br#"{"timestamp":"2026-04-28T09:15:02.30418+08:00","latency_ms":5032,"tokens":{"input_tokens":3120,"output_tokens":488,"reasoning_tokens":0,"cached_tokens":40960,"total_tokens":3608},"failed":false,"provider":"claude","model":"claude-sonnet-4-5-20250929","auth_type":"oauth","api_key":"k","request_id":"5d0e9a11"}"#;
        let (r, n) = parse(l).unwrap();
        assert!(n.is_none());
        assert_eq!(r.id, "cpa:2026-04-28T09:15:02.30418+08:00:5d0e9a11");
        assert_eq!(
            crate::time::format_rfc3339(&r.ts),
            "2026-04-28T01:15:02.304180Z"
        );
        assert_eq!(
            (r.tokens.input, r.tokens.output, r.tokens.cache_read),
            (3120, 488, 40960)
        );
        assert_eq!(r.provider, "anthropic");
        assert_eq!(r.auth_type, "oauth");
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(
            br#"{"timestamp":"2026-04-28T09:15:02Z","model":"m","tokens":{"input_tokens":-1}}"#,
        )
        .unwrap_err();
        assert_eq!(e, "field \"tokens.input_tokens\": invalid value: integer `-1`, expected a non-negative integer");
        let e = parse(br#"{"timestamp":"2026-04-28T09:15:02Z","model":"m","tok"#).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        let e = parse(br#"{"model":"m","tokens":{}}"#).unwrap_err();
        assert_eq!(e, "field \"timestamp\": missing");
        let e = parse(br#"{"timestamp":"x","model":"m","tokens":{}}"#).unwrap_err();
        assert_eq!(e, "field \"timestamp\": \"x\" is not RFC 3339");
    }
}
