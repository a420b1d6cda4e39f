//! CLIProxyAPI's legacy `GET /v0/management/usage` snapshot (v6.0.0 to
//! v6.9.49), and the `/usage/export` document that wraps the same data.
//!
//! The per-request records are `usage.apis[KEY].models[MODEL].details[]`.
//! They carry no request id and no provider: the API key is the map key
//! (the client's proxy key, or an endpoint such as `POST /v1/messages` when
//! the proxy ran without keys), the model is the parent key, and the vendor
//! (hence the token semantics) is inferred from the model name. Ids are a
//! hash of key, model and the detail in canonical JSON, so a pretty-printed
//! and a compact copy of the same snapshot give the same ids, and reading
//! two overlapping snapshots gives duplicates that mb-ingest skips.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::usage::{self, RawCounts, Record};

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow)]
    usage: Option<Stats<'a>>,
    #[serde(borrow)]
    apis: Option<BTreeMap<String, Api<'a>>>,
}

#[derive(Deserialize)]
struct Stats<'a> {
    #[serde(borrow)]
    apis: Option<BTreeMap<String, Api<'a>>>,
}

#[derive(Deserialize)]
struct Api<'a> {
    #[serde(borrow)]
    models: Option<BTreeMap<String, Model<'a>>>,
}

#[derive(Deserialize)]
struct Model<'a> {
    #[serde(borrow)]
    details: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct Detail<'a> {
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    tokens: Option<DTokens>,
    failed: Option<bool>,
}

#[derive(Deserialize)]
struct DTokens {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
    cached_tokens: Option<u64>,
}

/// One result of reading a snapshot: a record (with a note) or a bad detail,
/// each with its line number in the document.
pub enum Item {
    /// A usage record.
    Ok(u64, Box<Record>, Option<String>),
    /// A detail that could not be read, with the reason.
    Bad(u64, String),
}

/// The executor a snapshot's `apis` key names, if it names one: the key is
/// the client's proxy key, an endpoint, or (proxies without keys) the
/// provider itself; an endpoint of the form `/api/provider/NAME/...` names
/// the provider too.
fn executor_of_key(key: &str) -> Option<&str> {
    const EXECUTORS: &[&str] = &[
        "claude",
        "codex",
        "gemini",
        "gemini-cli",
        "vertex",
        "aistudio",
        "antigravity",
        "qwen",
        "iflow",
        "kimi",
        "xai",
    ];
    let k = key.trim();
    if let Some(e) = EXECUTORS.iter().find(|e| k.eq_ignore_ascii_case(e)) {
        return Some(e);
    }
    let rest = k.split_once("/api/provider/")?.1;
    let name = rest.split('/').next()?;
    EXECUTORS
        .iter()
        .find(|e| name.eq_ignore_ascii_case(e))
        .copied()
}

/// A parsed snapshot: its items, and how many Claude-model records had no
/// executor named (the Antigravity / Gemini CLI ambiguity, warned once).
pub struct Snapshot {
    /// Records and bad details, in document order of keys.
    pub items: Vec<Item>,
    /// Claude-model records whose executor the snapshot does not name.
    pub ambiguous: u64,
}

/// Read a whole snapshot document. `Err` when the document itself is not a
/// snapshot (then nothing in it can be trusted).
pub fn parse(text: &str) -> Result<Snapshot, String> {
    let top: Top = serde_json::from_str(text).map_err(|e| {
        format!(
            "line {} column {}: not a usage snapshot: {}",
            e.line(),
            e.column(),
            strip_pos(&e.to_string())
        )
    })?;
    let apis = top
        .usage
        .and_then(|u| u.apis)
        .or(top.apis)
        .ok_or_else(|| "not a usage snapshot: no \"usage.apis\" object".to_string())?;
    let newlines: Vec<usize> = text
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let line_of = |raw: &RawValue| -> u64 {
        let off = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
        newlines.partition_point(|&n| n < off) as u64 + 1
    };
    let mut items = Vec::new();
    let mut ambiguous = 0;
    for (key, api) in &apis {
        let executor = executor_of_key(key);
        let client =
            (executor.is_none() && !key.is_empty() && !key.contains(' ')).then(|| key.clone());
        for (model, m) in api.models.iter().flatten() {
            for raw in m.details.iter().flatten() {
                let line = line_of(raw);
                match detail(client.as_deref(), executor, key, model, raw) {
                    Ok((r, note)) => {
                        if executor.is_none() && r.provider == "anthropic" {
                            ambiguous += 1;
                        }
                        items.push(Item::Ok(line, Box::new(r), note))
                    }
                    Err(e) => items.push(Item::Bad(line, e)),
                }
            }
        }
    }
    Ok(Snapshot { items, ambiguous })
}

fn strip_pos(s: &str) -> String {
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn detail(
    client: Option<&str>,
    executor: Option<&str>,
    key: &str,
    model: &str,
    raw: &RawValue,
) -> Result<(Record, Option<String>), String> {
    let d: Detail = {
        let mut de = serde_json::Deserializer::from_str(raw.get());
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let msg = strip_pos(&e.into_inner().to_string())
                .replace("expected u64", "expected a non-negative integer");
            format!("field \"{path}\": {msg}")
        })?
    };
    let ts_raw = d
        .timestamp
        .as_deref()
        .ok_or("field \"timestamp\": missing")?;
    let ts = crate::time::parse_rfc3339(ts_raw)
        .ok_or_else(|| format!("field \"timestamp\": {ts_raw:?} is not RFC 3339"))?;
    if model.is_empty() {
        return Err("empty model name".into());
    }
    let t = d.tokens.ok_or("field \"tokens\": missing")?;
    // The token rules follow the executor (Antigravity serving a Claude
    // model reports Gemini-style usage); only when the snapshot does not
    // name it is the model's vendor the guess.
    let (vendor, family) = match executor {
        Some(e) => (usage::normalise_provider(e), usage::family_of_executor(e)),
        None => {
            let v = usage::provider_of_model(model);
            (v.to_string(), usage::family_of_vendor(v))
        }
    };
    let (tokens, note) = usage::normalise(
        family,
        RawCounts {
            input: t.input_tokens.unwrap_or(0),
            output: t.output_tokens.unwrap_or(0),
            reasoning: t.reasoning_tokens.unwrap_or(0),
            cache_read: t.cached_tokens.unwrap_or(0),
            cache_write: 0,
            cache_write_1h: 0,
        },
    );
    // Canonical bytes: parse and re-serialise (compact, stable key order).
    let canon = serde_json::from_str::<serde_json::Value>(raw.get())
        .map(|v| v.to_string())
        .unwrap_or_else(|_| raw.get().to_string());
    let mut bytes = Vec::with_capacity(key.len() + model.len() + canon.len() + 2);
    bytes.extend_from_slice(key.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(model.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(canon.as_bytes());
    Ok((
        Record {
            id: usage::hash_id("snapshot", &bytes),
            ts,
            request_id: None,
            provider: vendor,
            model: model.to_string(),
            tokens,
            failed: d.failed.unwrap_or(false),
            auth_type: "unknown",
            client_key: client.map(str::to_string),
            service_tier: None,
            source_format: "usage-snapshot",
            unclassified: None,
        },
        note,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_and_locates() {
        let doc = "{\"usage\":{\"apis\":{\"k1\":{\"models\":{\"gpt-4o-mini\":{\"details\":[\n{\"timestamp\":\"2026-02-11T10:20:31.5+08:00\",\"tokens\":{\"input_tokens\":610,\"output_tokens\":92,\"cached_tokens\":0},\"failed\":false},\n{\"timestamp\":\"bad\",\"tokens\":{}}]}}}}}}";
        let items = parse(doc).unwrap().items;
        assert_eq!(items.len(), 2);
        match &items[0] {
            Item::Ok(line, r, _) => {
                assert_eq!(*line, 2);
                assert_eq!(r.provider, "openai");
                assert_eq!(r.client_key.as_deref(), Some("k1"));
                assert_eq!((r.tokens.input, r.tokens.output), (610, 92));
            }
            Item::Bad(..) => panic!("first detail is good"),
        }
        assert!(matches!(&items[1], Item::Bad(3, e) if e.contains("not RFC 3339")));
        assert!(parse("[1]").is_err());
        assert!(parse("{\"usage\":{}}").is_err());
    }
}
