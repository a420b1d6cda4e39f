//! The normalised usage record every input format is turned into, and the
//! per-provider token semantics.
//!
//! Providers count tokens differently (research note tokens.md sections 1.4
//! and 2.5), and getting this wrong double-bills or under-bills:
//!
//! | family    | cached vs input          | cache writes          | reasoning vs output |
//! |-----------|--------------------------|-----------------------|---------------------|
//! | anthropic | separate (add)           | separate field        | included            |
//! | openai    | subset (subtract)        | subset, if reported   | subset (included)   |
//! | google    | subset (subtract)        | none                  | separate (add)      |
//!
//! The functions here turn each family's raw counts into [`Tokens`], whose
//! buckets never overlap: `input` is uncached input only and `output` is all
//! output, reasoning included.

use chrono::{DateTime, Utc};

use super::prices::Tokens;

/// How a provider counts tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Anthropic Messages: cache buckets separate from input.
    Anthropic,
    /// OpenAI Chat/Responses and compatibles: cached and reasoning are subsets.
    OpenAi,
    /// Gemini: cached is a subset of the prompt; thoughts are extra output.
    Google,
}

/// The normalised vendor for a CLIProxyAPI provider (executor) name:
/// claude -> anthropic, codex -> openai, gemini/vertex/aistudio/antigravity
/// -> google, anything else as named (lower-cased).
pub fn normalise_provider(p: &str) -> String {
    let l = p.trim().to_ascii_lowercase();
    match l.as_str() {
        "claude" | "anthropic" => "anthropic".into(),
        "codex" | "openai" => "openai".into(),
        "gemini"
        | "gemini-cli"
        | "gemini-interactions"
        | "vertex"
        | "aistudio"
        | "antigravity"
        | "google" => "google".into(),
        _ => l,
    }
}

/// The token semantics of a CLIProxyAPI executor: they follow the upstream
/// API the executor speaks, not the model (Antigravity serving a Claude model
/// still reports Gemini-style usage).
pub fn family_of_executor(p: &str) -> Family {
    match normalise_provider(p).as_str() {
        "anthropic" => Family::Anthropic,
        "google" => Family::Google,
        _ => Family::OpenAi,
    }
}

/// The vendor of a model when the source names no provider (the legacy
/// snapshot): by the model name's family, else `unknown`.
pub fn provider_of_model(model: &str) -> &'static str {
    let m = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    if m.starts_with("claude") {
        "anthropic"
    } else if m.starts_with("gemini") || m.starts_with("gemma") {
        "google"
    } else if m.starts_with("gpt")
        || m.starts_with("o1")
        || m.starts_with("o3")
        || m.starts_with("o4")
        || m.starts_with("codex")
        || m.starts_with("chatgpt")
    {
        "openai"
    } else {
        "unknown"
    }
}

/// Family for a normalised vendor name (used when only the model is known).
pub fn family_of_vendor(v: &str) -> Family {
    match v {
        "anthropic" => Family::Anthropic,
        "google" => Family::Google,
        _ => Family::OpenAi,
    }
}

/// Raw counts as a CLIProxyAPI `tokens` object or a provider usage object
/// reports them, before the family's semantics are applied.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCounts {
    /// Input / prompt tokens as reported.
    pub input: u64,
    /// Output / completion / candidates tokens as reported.
    pub output: u64,
    /// Reasoning / thinking / thoughts tokens.
    pub reasoning: u64,
    /// Cache reads (`cache_read_tokens`, `cached_tokens`, ...).
    pub cache_read: u64,
    /// Cache writes (`cache_creation_tokens`, ...).
    pub cache_write: u64,
    /// 1-hour cache writes, when reported (Anthropic raw responses).
    pub cache_write_1h: u64,
}

/// Problems found while normalising (inconsistent counts). The record is
/// still priced with the clamped values; the caller reports the note.
pub type Note = Option<String>;

/// Apply a family's semantics to raw counts.
pub fn normalise(f: Family, c: RawCounts) -> (Tokens, Note) {
    let mut note = None;
    let t = match f {
        Family::Anthropic => Tokens {
            input: c.input,
            output: c.output,
            cache_read: c.cache_read,
            cache_write: c.cache_write,
            cache_write_1h: c.cache_write_1h.min(c.cache_write),
            reasoning: c.reasoning.min(c.output),
        },
        Family::OpenAi => {
            let cached = c.cache_read.saturating_add(c.cache_write);
            if cached > c.input {
                note = Some(format!(
                    "cached tokens ({cached}) exceed input tokens ({}), which include them; counted as all cached",
                    c.input
                ));
            }
            let cache_read = c.cache_read.min(c.input);
            let cache_write = c.cache_write.min(c.input - cache_read);
            Tokens {
                input: c.input - cache_read - cache_write,
                output: c.output,
                cache_read,
                cache_write,
                cache_write_1h: 0,
                reasoning: c.reasoning.min(c.output),
            }
        }
        Family::Google => {
            if c.cache_read > c.input {
                note = Some(format!(
                    "cached tokens ({}) exceed prompt tokens ({}), which include them; counted as all cached",
                    c.cache_read, c.input
                ));
            }
            let cache_read = c.cache_read.min(c.input);
            Tokens {
                input: c.input - cache_read,
                output: c.output.saturating_add(c.reasoning),
                cache_read,
                cache_write: 0,
                cache_write_1h: 0,
                reasoning: c.reasoning,
            }
        }
    };
    (t, note)
}

/// One request's usage, normalised, before pricing and customer mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The event id (deterministic from the source).
    pub id: String,
    /// When the request started.
    pub ts: DateTime<Utc>,
    /// The proxy's request id.
    pub request_id: Option<String>,
    /// Normalised vendor.
    pub provider: String,
    /// The model as the upstream reported it.
    pub model: String,
    /// Normalised token counts.
    pub tokens: Tokens,
    /// The request failed upstream.
    pub failed: bool,
    /// apikey, oauth or unknown.
    pub auth_type: &'static str,
    /// The proxy client key in clear (hashed before output), if known.
    pub client_key: Option<String>,
    /// Service tier reported by the upstream (or requested, if not default).
    pub service_tier: Option<String>,
    /// The input format (`source_format` on output).
    pub source_format: &'static str,
    /// The reported total, when upstream could not classify the tokens into
    /// buckets: the line is then written unpriced and `reprice` skips it.
    pub unclassified: Option<u64>,
}

/// `source_format` of a queue record whose tokens upstream could not
/// classify (quality `unclassified` or `inconsistent` and legacy counts
/// that do not add up): its `tokens_in` holds the unclassified part, so no
/// price table can price it. `mb-tokens reprice` skips these rows.
pub const UNCLASSIFIED_QUEUE: &str = "usage-queue-unclassified";

/// Map CLIProxyAPI's `auth_type` (and request-log `type=`) to the contract's
/// values.
pub fn auth_type(s: &str) -> &'static str {
    match s {
        "apikey" | "api_key" | "api-key" => "apikey",
        "oauth" => "oauth",
        _ => "unknown",
    }
}

/// An id from a record's bytes, for sources without a request id:
/// `PREFIX:sha256:<32 hex>` (128 bits; collisions are not a concern).
pub fn hash_id(prefix: &str, bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hash_id_from(prefix, &Sha256::digest(bytes))
}

/// [`hash_id`] for a digest computed incrementally.
pub fn hash_id_from(prefix: &str, digest: &[u8]) -> String {
    let mut s = String::with_capacity(prefix.len() + 8 + 32);
    s.push_str(prefix);
    s.push_str(":sha256:");
    for b in &digest[..16] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The id of an additional record of one request (the Codex image tool's
/// usage): the main record's id, `:`, and the model, so the main record
/// keeps exactly the id it always had and logs already ingested stay
/// duplicates. A hash of the record when that would be too long.
pub fn additional_id(main: &str, model: &str, bytes: &[u8]) -> String {
    if main.len() + 1 + model.len() <= crate::events::MAX_ID_CHARS
        && !model.chars().any(char::is_control)
    {
        format!("{main}:{model}")
    } else {
        hash_id("cpa", bytes)
    }
}

/// The CLIProxyAPI id: `cpa:<timestamp as written>:<request_id>`, or a hash
/// of `bytes` when there is no usable request id (none, or one that would
/// make the id too long or contain control characters).
///
/// The timestamp comes first so that ids follow time: mb-ingest's unique
/// index then grows at its end instead of at random places, which makes a
/// large ingest almost twice as fast (README, Benchmarks). DESIGN.md gives
/// `cpa:<request_id>:<timestamp>` only as an example; the parts are the same.
pub fn cpa_id(request_id: Option<&str>, ts_raw: &str, bytes: &[u8]) -> String {
    match request_id {
        Some(r)
            if !r.is_empty()
                && r.len() + ts_raw.len() + 5 <= crate::events::MAX_ID_CHARS
                && !r.chars().chain(ts_raw.chars()).any(char::is_control) =>
        {
            let mut s = String::with_capacity(5 + r.len() + ts_raw.len());
            s.push_str("cpa:");
            s.push_str(ts_raw);
            s.push(':');
            s.push_str(r);
            s
        }
        _ => hash_id("cpa", bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        let c = RawCounts {
            input: 10432,
            output: 655,
            reasoning: 1204,
            cache_read: 8192,
            ..RawCounts::default()
        };
        let (t, n) = normalise(Family::Google, c);
        assert_eq!(
            (t.input, t.output, t.cache_read, t.reasoning),
            (2240, 1859, 8192, 1204)
        );
        assert!(n.is_none());
        let c = RawCounts {
            input: 24567,
            output: 1380,
            reasoning: 832,
            cache_read: 19968,
            ..RawCounts::default()
        };
        let (t, _) = normalise(Family::OpenAi, c);
        assert_eq!(
            (t.input, t.output, t.cache_read, t.reasoning),
            (4599, 1380, 19968, 832)
        );
        let (t, n) = normalise(
            Family::OpenAi,
            RawCounts {
                input: 5,
                cache_read: 9,
                ..RawCounts::default()
            },
        );
        assert_eq!((t.input, t.cache_read), (0, 5));
        assert!(n.is_some());
        assert_eq!(normalise_provider("Claude"), "anthropic");
        assert_eq!(normalise_provider("antigravity"), "google");
        assert_eq!(normalise_provider("openrouter"), "openrouter");
        assert_eq!(provider_of_model("gpt-4o-mini"), "openai");
        assert_eq!(provider_of_model("models/gemini-2.5-flash"), "google");
    }

    #[test]
    fn ids() {
        assert_eq!(
            cpa_id(Some("3f9a1c07"), "2026-08-20T14:03:12+08:00", b"x"),
            "cpa:2026-08-20T14:03:12+08:00:3f9a1c07"
        );
        let h = cpa_id(None, "t", b"abc");
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223...
        assert_eq!(h, "cpa:sha256:ba7816bf8f01cfea414140de5dae2223");
        assert_eq!(cpa_id(Some("a\nb"), "t", b"abc"), h);
    }
}
