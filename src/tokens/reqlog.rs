//! CLIProxyAPI request-log files (`request-log: true`): one plain-text file
//! per request, in `=== NAME ===` sections (tokens.md section 1.6).
//!
//! The usage is re-read from the provider-native response: the **last
//! successful** `=== API RESPONSE n ===` section (earlier attempts failed and
//! were retried). Its body is a JSON document or an SSE stream, read by the
//! [`super::provider`] parser. The provider comes from the matching
//! `API REQUEST n` (`Auth: provider=...`), the model from the response, else
//! the upstream request body, else the Gemini URL path, else the downstream
//! request body. The request id is the last `-` field of the file name
//! (`v1-chat-completions-2026-08-20T140312-3f9a1c07.log`), the time is the
//! `Timestamp:` of `REQUEST INFO` as written, so the id is the same
//! `cpa:<timestamp>:<request_id>` scheme as the queue.
//!
//! A request whose upstream attempts all failed is kept as a failed request
//! with zero tokens; a file with no response section at all is bad input.
//! Client keys are masked in these files, so `--key-map` cannot apply;
//! records carry no `client`.

use super::provider;
use super::usage::{self, Family, Record};

struct Section<'a> {
    name: &'a str,
    line: u64,
    lines: Vec<&'a str>,
}

fn sections(text: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_end();
        if let Some(name) = t.strip_prefix("=== ").and_then(|r| r.strip_suffix(" ===")) {
            out.push(Section {
                name,
                line: i as u64 + 1,
                lines: Vec::new(),
            });
        } else if let Some(s) = out.last_mut() {
            s.lines.push(l);
        }
    }
    out
}

fn field<'a>(lines: &[&'a str], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

fn model_in_json(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    v.get("model")
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}

/// `/v1beta/models/gemini-2.5-pro:streamGenerateContent` -> the model.
fn model_in_url(url: &str) -> Option<String> {
    let i = url.find("/models/")?;
    let rest = &url[i + 8..];
    let end = rest.find([':', '?', '/']).unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_string())
}

/// The body of an `API RESPONSE` / `API REQUEST` section: what follows the
/// header block (`Headers:` then lines up to a blank line), or `Body:`.
fn body<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    if let Some(i) = lines.iter().position(|l| l.trim_end() == "Body:") {
        return lines[i + 1..].to_vec();
    }
    let start = match lines.iter().position(|l| l.trim_end() == "Headers:") {
        Some(h) => lines[h + 1..]
            .iter()
            .position(|l| l.trim().is_empty())
            .map(|b| h + 1 + b + 1)
            .unwrap_or(lines.len()),
        None => lines
            .iter()
            .position(|l| l.trim().is_empty())
            .map(|b| b + 1)
            .unwrap_or(lines.len()),
    };
    lines[start..].to_vec()
}

/// The request id from a file name, if its last `-` field is 8 hex digits
/// (CLIProxyAPI uses a process-local sequence number otherwise).
pub fn request_id_of(name: &str) -> Option<String> {
    let stem = name.rsplit('/').next()?.strip_suffix(".log")?;
    let id = stem.rsplit('-').next()?;
    (id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// What one request-log file holds.
#[derive(Debug)]
pub enum Parsed {
    /// Usage records (one; several for a websocket session), each with the
    /// line it comes from and a note on inconsistent counts.
    Records(Vec<(u64, Record, Option<String>)>),
    /// A request with no billable usage, skipped (its kind, for the summary).
    Skip(&'static str),
    /// A file with the request but no upstream section at all: what
    /// CLIProxyAPI writes with `commercial-mode: true`.
    NoUpstream(u64),
}

/// True for a token-counting request (`/v1/messages/count_tokens`, Gemini
/// `:countTokens`): it returns a count and bills nothing.
fn is_count_tokens(url: &str) -> bool {
    let path = url.split('?').next().unwrap_or(url);
    path.ends_with("/count_tokens") || path.ends_with(":countTokens")
}

/// Parse one request-log file. `Err((line, reason))` for bad input.
pub fn parse(text: &str, file_name: &str) -> Result<Parsed, (u64, String)> {
    let secs = sections(text);
    let info = secs.iter().find(|s| s.name == "REQUEST INFO").ok_or((
        1,
        "no \"=== REQUEST INFO ===\" section; not a request log".to_string(),
    ))?;
    if field(&info.lines, "URL").is_some_and(is_count_tokens) {
        return Ok(Parsed::Skip("count_tokens requests"));
    }
    let ts_raw = field(&info.lines, "Timestamp")
        .ok_or((info.line, "REQUEST INFO has no Timestamp".to_string()))?;
    let ts = crate::time::parse_rfc3339(ts_raw)
        .ok_or((info.line, format!("Timestamp {ts_raw:?} is not RFC 3339")))?;
    let responses: Vec<&Section> = secs
        .iter()
        .filter(|s| s.name.starts_with("API RESPONSE"))
        .collect();
    if responses.is_empty() {
        if let Some(ws) = secs.iter().find(|s| s.name == "API WEBSOCKET TIMELINE") {
            return websocket(&secs, info, ws, ts_raw, ts, file_name, text);
        }
        // A request answered 2xx without any upstream section cannot have
        // been served: its upstream part was not logged (commercial mode).
        // A failed one may simply never have reached an upstream.
        let upstream = secs
            .iter()
            .any(|s| s.name.starts_with("API ") || s.name == "WEBSOCKET TIMELINE");
        let served = secs
            .iter()
            .find(|s| s.name == "RESPONSE")
            .and_then(|s| field(&s.lines, "Status"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u16>().ok())
            .is_some_and(|c| (200..300).contains(&c));
        if !upstream && served {
            return Ok(Parsed::NoUpstream(info.line));
        }
        let why = if secs.iter().any(|s| s.name == "API ERROR RESPONSE") {
            "only an API ERROR RESPONSE"
        } else {
            "no \"=== API RESPONSE n ===\" section"
        };
        return Err((
            info.line,
            format!("{why}: no upstream response to read usage from"),
        ));
    }
    let status = |s: &Section| -> Option<u16> {
        field(&s.lines, "Status")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let ok = responses
        .iter()
        .rev()
        .find(|s| status(s).is_some_and(|c| (200..300).contains(&c)));
    let attempt_of = |s: &Section| s.name.trim_start_matches("API RESPONSE").trim().to_string();
    let last = *responses.last().unwrap_or(&responses[0]);
    let chosen = ok.copied().unwrap_or(last);
    let n = attempt_of(chosen);
    let request = secs.iter().find(|s| {
        s.name.starts_with("API REQUEST") && s.name.trim_start_matches("API REQUEST").trim() == n
    });
    let auth = request.and_then(|r| field(&r.lines, "Auth")).unwrap_or("");
    let auth_kv = |k: &str| {
        auth.split([',', ' '])
            .find_map(|p| p.trim().strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .map(str::to_string)
    };
    let provider_raw = auth_kv("provider");
    let auth_type = usage::auth_type(auth_kv("type").as_deref().unwrap_or(""));
    let req_model = request
        .and_then(|r| model_in_json(&body(&r.lines).join("\n")))
        .or_else(|| {
            request
                .and_then(|r| field(&r.lines, "Upstream URL"))
                .and_then(model_in_url)
        })
        .or_else(|| {
            secs.iter()
                .find(|s| s.name == "REQUEST BODY")
                .and_then(|s| model_in_json(&s.lines.join("\n")))
        })
        .or_else(|| field(&info.lines, "URL").and_then(model_in_url));

    let mut done: Option<provider::Done> = None;
    if ok.is_some() {
        let lines = body(&chosen.lines);
        let whole = lines.join("\n");
        let mut p = provider::Parser::new();
        let mut fed_any = false;
        // A pretty-printed JSON body is one document; otherwise lines/SSE.
        if serde_json::from_str::<serde_json::Value>(whole.trim()).is_ok() {
            let compact = serde_json::from_str::<serde_json::Value>(whole.trim())
                .map(|v| v.to_string())
                .unwrap_or_default();
            let f = p.feed(compact.as_bytes(), chosen.line, 0);
            fed_any = true;
            if let Some(e) = f.error {
                return Err((chosen.line, format!("API RESPONSE {n}: {e}")));
            }
            done = f.done.into_iter().last();
        } else {
            for (i, l) in lines.iter().enumerate() {
                if l.trim().is_empty() {
                    continue;
                }
                fed_any = true;
                let f = p.feed(l.as_bytes(), chosen.line + i as u64, 0);
                if let Some(d) = f.done.into_iter().last() {
                    done = Some(d);
                }
            }
        }
        if let Some(d) = p.finish() {
            done = Some(d);
        }
        if !fed_any || done.is_none() {
            return Err((
                chosen.line,
                format!("API RESPONSE {n}: no usage in the response body"),
            ));
        }
    }
    let family = done.as_ref().map(|d| d.family);
    let provider = match (&provider_raw, family) {
        (Some(p), _) if !p.is_empty() => usage::normalise_provider(p),
        (_, Some(Family::Anthropic)) => "anthropic".into(),
        (_, Some(Family::Google)) => "google".into(),
        (_, Some(Family::OpenAi)) => "openai".into(),
        _ => req_model
            .as_deref()
            .map(usage::provider_of_model)
            .unwrap_or("unknown")
            .to_string(),
    };
    let model = done
        .as_ref()
        .and_then(|d| d.model.clone())
        .or(req_model)
        .ok_or((
            info.line,
            "no model in the response, the request body or the URL".to_string(),
        ))?;
    let request_id = request_id_of(file_name);
    let rec = Record {
        id: usage::cpa_id(request_id.as_deref(), ts_raw, text.as_bytes()),
        ts,
        request_id,
        provider,
        model,
        tokens: done.as_ref().map(|d| d.tokens).unwrap_or_default(),
        failed: done.as_ref().map(|d| d.failed).unwrap_or(true),
        auth_type,
        client_key: None,
        service_tier: done.as_ref().and_then(|d| d.service_tier.clone()),
        source_format: "request-log",
        unclassified: None,
    };
    Ok(Parsed::Records(vec![(1, rec, done.and_then(|d| d.note))]))
}

/// A websocket session (Codex over websockets): the upstream frames are
/// logged only in `=== API WEBSOCKET TIMELINE ===`, each as `Timestamp:`,
/// `Event: api.websocket.response` (or `.request`, ...) and the frame
/// (`AppendAPIWebsocketResponse` in upstream's
/// internal/runtime/executor/helps/logging_helpers.go). Every response
/// frame goes through the provider parser; each `response.completed` is one
/// request of the session. The first keeps the file's id, later ones get
/// `:2`, `:3`, ...
fn websocket(
    secs: &[Section],
    info: &Section,
    ws: &Section,
    ts_raw: &str,
    ts: chrono::DateTime<chrono::Utc>,
    file_name: &str,
    text: &str,
) -> Result<Parsed, (u64, String)> {
    let request_id = request_id_of(file_name);
    let base = usage::cpa_id(request_id.as_deref(), ts_raw, text.as_bytes());
    let req_model = secs
        .iter()
        .find(|s| s.name == "REQUEST BODY")
        .and_then(|s| model_in_json(&s.lines.join("\n")));
    let mut p = provider::Parser::new();
    let mut done = Vec::new();
    let mut in_response = false;
    for (i, l) in ws.lines.iter().enumerate() {
        let t = l.trim();
        if let Some(ev) = t.strip_prefix("Event:") {
            in_response = ev.trim() == "api.websocket.response";
            continue;
        }
        if t.is_empty() || t.starts_with("Timestamp:") || !in_response {
            continue;
        }
        let f = p.feed(t.as_bytes(), ws.line + 1 + i as u64, 0);
        done.extend(f.done.into_iter().map(|d| (ws.line + 1 + i as u64, d)));
    }
    done.extend(p.finish().map(|d| (ws.line, d)));
    // Frames that are not usage (deltas, rate-limit notices) make groups
    // without counts only when a stream was cut; keep those with a model.
    let mut out = Vec::new();
    for (n, (line, d)) in done.into_iter().enumerate() {
        let Some(model) = d.model.clone().or_else(|| req_model.clone()) else {
            continue;
        };
        let id = if n == 0 {
            base.clone()
        } else {
            format!("{base}:{}", n + 1)
        };
        out.push((
            line,
            Record {
                id,
                ts,
                request_id: request_id.clone(),
                provider: match d.family {
                    Family::Anthropic => "anthropic",
                    Family::Google => "google",
                    Family::OpenAi => "openai",
                }
                .into(),
                model,
                tokens: d.tokens,
                failed: d.failed,
                auth_type: "unknown",
                client_key: None,
                service_tier: d.service_tier.clone(),
                source_format: "request-log",
                unclassified: None,
            },
            d.note,
        ));
    }
    if out.is_empty() {
        return Err((
            info.line,
            "API WEBSOCKET TIMELINE: no response.completed frame with usage".into(),
        ));
    }
    Ok(Parsed::Records(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert_eq!(
            request_id_of("/x/v1-chat-completions-2026-08-20T140312-3f9a1c07.log").as_deref(),
            Some("3f9a1c07")
        );
        assert_eq!(request_id_of("v1-messages-2026-08-20T140312-17.log"), None);
        assert_eq!(
            model_in_url("https://x/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
                .as_deref(),
            Some("gemini-2.5-pro")
        );
    }
}
