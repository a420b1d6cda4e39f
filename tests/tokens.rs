//! mb-tokens: the real binary on real files, with hand-computed costs.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::util::{assert_code, fixture, golden, stderr, stdout, Env};

const ID: &[&str] = &["--customer", "acme", "--vm", "vm-1"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&'a str> = ID.to_vec();
    v.extend_from_slice(extra);
    v
}

fn fx(name: &str) -> String {
    fixture(&format!("tokens/{name}")).display().to_string()
}

/// The output lines as JSON values.
fn lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (model, cost_usd) of every line.
fn costs(out: &str) -> Vec<(String, serde_json::Value)> {
    lines(out)
        .into_iter()
        .map(|v| {
            (
                v["model"].as_str().unwrap().to_string(),
                v["cost_usd"].clone(),
            )
        })
        .collect()
}

fn c(model: &str, cost: &str) -> (String, serde_json::Value) {
    (
        model.to_string(),
        serde_json::Value::String(cost.to_string()),
    )
}

#[test]
fn usage_queue_both_shapes() {
    let env = Env::new();
    let o = env.run(
        "mb-tokens",
        &args(&[&fx("queue-v2.jsonl"), &fx("early.jsonl")]),
        "",
    );
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
    golden("tokens/queue.expected.jsonl", &stdout(&o));
    assert_eq!(
        costs(&stdout(&o)),
        vec![
            // token_breakdown complete: 1843 in * $3/M + 912 out * $15/M
            // + 48210 cache read * $0.30/M + 2051 cache write * $3.75/M
            // = 0.005529 + 0.01368 + 0.014463 + 0.00769125
            c("claude-sonnet-4-5-20250929", "0.04136325"),
            // 4599 uncached * 1.25 + 19968 cached * 0.125 + 1380 out * 10 (per M)
            // = 0.00574875 + 0.002496 + 0.0138 (reasoning 832 is inside the 1380)
            c("gpt-5-codex", "0.02204475"),
            // 2240 * 1.25 + 8192 * 0.125 + (655 + 1204 thoughts) * 10 (per M)
            // = 0.0028 + 0.001024 + 0.01859
            c("gemini-2.5-pro", "0.022414"),
            // failed, zero tokens: kept, cost exactly 0 although unpriced
            c("moonshotai/kimi-k2:free", "0"),
            // early shape, no breakdown: claude input excludes cache;
            // 3120 * 3 + 488 * 15 + 40960 cached (reads) * 0.30 (per M)
            // = 0.00936 + 0.00732 + 0.012288
            c("claude-sonnet-4-5-20250929", "0.028968"),
        ]
    );
    let v = lines(&stdout(&o));
    assert_eq!(
        v[0]["id"],
        "cpa:2026-08-20T14:03:12.118734502+08:00:3f9a1c07"
    );
    assert_eq!(v[0]["ts"], "2026-08-20T06:03:12.118734502Z");
    assert_eq!(v[3]["failed"], true);
    // The client key is never written; its hash is
    // sha256("sk-vm-team-a-7f3e")[..16 hex].
    assert!(!stdout(&o).contains("sk-vm-team"));
    assert!(!stdout(&o).contains("alice@example.com"));
    assert_eq!(v[0]["client"], v[2]["client"]);
    assert_eq!(v[0]["client"].as_str().unwrap().len(), 16);
}

#[test]
fn provider_responses() {
    let env = Env::new();
    let o = env.run("mb-tokens", &args(&[&fx("provider.jsonl")]), "");
    assert_code(&o, 1);
    golden("tokens/provider.expected.jsonl", &stdout(&o));
    let f = fx("provider.jsonl");
    assert_eq!(
        stderr(&o),
        format!(
            "mb-tokens: {f}:11: no price for model \"claude-opus-4-8\" (provider anthropic); its lines \
             are written with priced false and cost_usd null: add it with --prices FILE\n\
             mb-tokens: {f}:12: invalid JSON at column 110 (the line looks truncated)\n\
             mb-tokens: 8 lines written, 1 bad records skipped, unpriced models: claude-opus-4-8 (2)\n"
        )
    );
    let null = serde_json::Value::Null;
    assert_eq!(
        costs(&stdout(&o)),
        vec![
            // Anthropic: cache separate from input. 100 * 3 + 1000 write * 3.75
            // + 5000 read * 0.30 + 200 * 15 (per M) = 0.0003+0.00375+0.0015+0.003
            c("claude-sonnet-4-5-20250929", "0.00855"),
            // OpenAI chat: 1500 cached of 2000 prompt. 500 * 2.5 + 1500 * 1.25
            // + 300 * 10 (per M) = 0.00125 + 0.001875 + 0.003
            c("gpt-4o", "0.006125"),
            // Responses stream, dated model -> o1: 2000 * 15 + 8000 * 7.5
            // + 2000 * 60 (per M) = 0.03 + 0.06 + 0.12
            c("o1-2024-12-17", "0.21"),
            // Gemini stream, last chunk: prompt 1000 incl. 400 cached, 100
            // candidates + 300 thoughts: 600 * 0.30 + 400 * 0.03 + 400 * 2.50
            // (per M) = 0.00018 + 0.000012 + 0.001
            c("gemini-2.5-flash", "0.001192"),
            // >200k prompt (250000): whole request at the tier. 200000 * 2.50
            // + 50000 cached * 0.25 + 1500 * 15 (per M) = 0.5 + 0.0125 + 0.0225
            c("gemini-2.5-pro", "0.535"),
            // Stream without include_usage: a zero-usage request, kept at 0.
            c("gpt-4o-mini", "0"),
            ("claude-opus-4-8".into(), null.clone()),
            ("claude-opus-4-8".into(), null),
        ]
    );
    let v = lines(&stdout(&o));
    assert_eq!(v[2]["price_key"], "o1");
    assert_eq!(v[2]["reasoning_tokens"], 1500);
    assert_eq!(v[4]["tokens_in"], 200000);
    assert_eq!(v[6]["priced"], false);
    assert_eq!(v[6]["price_key"], serde_json::Value::Null);
}

#[test]
fn snapshot_and_request_logs() {
    let env = Env::new();
    let mut a = args(&[]);
    let snap = fx("snapshot.json");
    let r1 = fx("reqlog/v1-chat-completions-2026-08-20T140320-b81e44d2.log");
    let r2 = fx("reqlog/v1-messages-2026-08-20T140312-7e2b9d10.log");
    let r3 = fx("reqlog/v1-messages-2026-08-20T150000-0000beef.log");
    a.extend([snap.as_str(), r1.as_str(), r2.as_str(), r3.as_str()]);
    let o = env.run("mb-tokens", &a, "");
    assert_code(&o, 1);
    golden("tokens/snapshot-reqlog.expected.jsonl", &stdout(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "mb-tokens: {snap}:7: field \"tokens.input_tokens\": invalid type: string \"many\", \
             expected a non-negative integer\n\
             mb-tokens: {r3}:1: no \"=== API RESPONSE n ===\" section: no upstream response to read usage from\n\
             mb-tokens: 4 lines written, 2 bad records skipped\n"
        )
    );
    assert_eq!(
        costs(&stdout(&o)),
        vec![
            // Snapshot, no provider: gemini inferred from the model. 2950
            // prompt incl. 2048 cached; 210 + 448 thoughts out:
            // 902 * 0.30 + 2048 * 0.03 + 658 * 2.50 (per M)
            // = 0.0002706 + 0.00006144 + 0.001645
            c("gemini-2.5-flash", "0.00197704"),
            // 610 * 0.15 + 92 * 0.60 (per M) = 0.0000915 + 0.0000552
            c("gpt-4o-mini", "0.0001467"),
            // Request log, dated response model -> gpt-4o-mini:
            // 9 * 0.15 + 2 * 0.60 (per M) = 0.00000135 + 0.0000012
            c("gpt-4o-mini-2024-07-18", "0.00000255"),
            // Second (successful) attempt's SSE stream: input 1200, 1-hour
            // cache write 4000, read 20000, final output 350:
            // 1200 * 1 + 4000 * 2.00 (1h) + 20000 * 0.10 + 350 * 5 (per M)
            // = 0.0012 + 0.008 + 0.002 + 0.00175
            c("claude-haiku-4-5-20251001", "0.01295"),
        ]
    );
    let v = lines(&stdout(&o));
    assert_eq!(v[2]["id"], "cpa:2026-08-20T14:03:20.004512+08:00:b81e44d2");
    assert_eq!(v[3]["auth_type"], "oauth");
    assert_eq!(v[3]["provider"], "anthropic");
    // Pretty-printed and compact snapshots give the same ids.
    let compact: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&snap).unwrap()).unwrap();
    let o2 = env.run("mb-tokens", ID, &compact.to_string());
    assert_code(&o2, 1);
    let v2 = lines(&stdout(&o2));
    assert_eq!(v2[0]["id"], v[0]["id"]);
    assert_eq!(v2[1]["id"], v[1]["id"]);
}

#[test]
fn every_line_passes_mb_ingest() {
    let env = Env::new();
    let mut all = String::new();
    for f in [
        "queue-v2.jsonl",
        "early.jsonl",
        "provider.jsonl",
        "snapshot.json",
    ] {
        let o = env.run("mb-tokens", &args(&[&fx(f)]), "");
        all.push_str(&stdout(&o));
    }
    let o = env.run(
        "mb-tokens",
        &args(&[&fx("reqlog/v1-messages-2026-08-20T140312-7e2b9d10.log")]),
        "",
    );
    all.push_str(&stdout(&o));
    let n = all.lines().count();
    assert_eq!(n, 5 + 8 + 2 + 1);
    let i = env.run("mb-ingest", &["--summary", "json"], &all);
    assert_code(&i, 0);
    assert!(
        stderr(&i).contains(&format!("\"inserted\":{n}")),
        "{}",
        stderr(&i)
    );
    // Re-reading the same inputs only gives duplicates.
    let i = env.run("mb-ingest", &["--summary", "json"], &all);
    assert_code(&i, 0);
    assert!(
        stderr(&i).contains(&format!("\"duplicates\":{n}")),
        "{}",
        stderr(&i)
    );
    // The store holds the exact nano-dollar costs.
    let rows = env.query(
        "SELECT cost_nusd FROM api_usage WHERE id = 'cpa:2026-08-20T14:03:12.118734502+08:00:3f9a1c07'",
    );
    assert_eq!(rows, vec!["41363250".to_string()]);
}

fn read_state(env: &Env, file: &str) -> (String, i32) {
    let o = env.run(
        "mb-tokens",
        &args(&["--state", "st/tokens.state", file]),
        "",
    );
    (stdout(&o), o.status.code().unwrap_or(-1))
}

#[test]
fn state_resumes_and_survives_rotation_and_truncation() {
    let env = Env::new();
    let q = std::fs::read_to_string(fixture("tokens/queue-v2.jsonl")).unwrap();
    let ql: Vec<&str> = q.lines().collect();
    let log = env.path("usage.jsonl").display().to_string();
    // Two lines and a half-written third.
    let half = &ql[2][..100];
    env.write("usage.jsonl", &format!("{}\n{}\n{half}", ql[0], ql[1]));
    let (out, code) = read_state(&env, &log);
    assert_eq!((out.lines().count(), code), (2, 0));
    // Nothing new: nothing emitted; the half line waits for its end.
    let (out, code) = read_state(&env, &log);
    assert_eq!((out.as_str(), code), ("", 0));
    // The writer finishes the line and adds another.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    write!(f, "{}\n{}\n", &ql[2][100..], ql[3]).unwrap();
    drop(f);
    let (out, _) = read_state(&env, &log);
    let v = lines(&out);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["request_id"], "0ab3f6d9");
    // Rotation: usage.jsonl -> usage.jsonl.1, which still gets a late line;
    // a new usage.jsonl starts. Both are read, each from where it is.
    let early = std::fs::read_to_string(fixture("tokens/early.jsonl")).unwrap();
    std::fs::rename(&log, env.path("usage.jsonl.1")).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(env.path("usage.jsonl.1"))
        .unwrap();
    f.write_all(early.as_bytes()).unwrap();
    drop(f);
    env.write(
        "usage.jsonl",
        &format!("{}\n", ql[0].replace("3f9a1c07", "aaaa0001")),
    );
    let old = env.path("usage.jsonl.1").display().to_string();
    let o = env.run(
        "mb-tokens",
        &args(&["--state", "st/tokens.state", &old, &log]),
        "",
    );
    assert_code(&o, 0);
    let ids: Vec<String> = lines(&stdout(&o))
        .iter()
        .map(|v| v["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["5d0e9a11", "aaaa0001"]);
    // Truncation: the file is cut and rewritten shorter; read from 0.
    env.write("usage.jsonl", "\n");
    let o = env.run(
        "mb-tokens",
        &args(&["--state", "st/tokens.state", &log]),
        "",
    );
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("truncated; reading it from the start"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&log, format!("\n{}\n", ql[1])).unwrap();
    let (out, _) = read_state(&env, &log);
    assert_eq!(lines(&out)[0]["request_id"], "c07d5e21");
}

#[test]
fn state_with_whole_files_skips_unchanged() {
    let env = Env::new();
    let snap = fx("snapshot.json");
    let (out, code) = read_state(&env, &snap);
    assert_eq!((out.lines().count(), code), (2, 1));
    let (out, code) = read_state(&env, &snap);
    assert_eq!((out.as_str(), code), ("", 0));
}

#[test]
fn litellm_price_file_overrides_and_adds() {
    let env = Env::new();
    // LiteLLM's own format, numbers in scientific notation, plus entries
    // that are not chat models (skipped).
    env.write(
        "litellm.json",
        r#"{"sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0},
  "claude-sonnet-4-5": {"input_cost_per_token": 3.3e-06, "output_cost_per_token": 1.65e-05,
     "cache_read_input_token_cost": 3.3e-07, "cache_creation_input_token_cost": 4.125e-06,
     "litellm_provider": "anthropic", "mode": "chat"},
  "claude-opus-4-8": {"input_cost_per_token": 5e-06, "output_cost_per_token": 2.5e-05, "mode": "chat"},
  "dall-e-3": {"output_cost_per_image": 0.04, "mode": "image_generation"}}"#,
    );
    let o = env.run(
        "mb-tokens",
        &args(&[
            "--prices",
            "litellm.json",
            &fx("early.jsonl"),
            &fx("provider.jsonl"),
        ]),
        "",
    );
    assert_code(&o, 1); // the truncated line remains
    let out = stdout(&o);
    let v = lines(&out);
    // Dated claude-sonnet-4-5-20250929 keeps its exact built-in key: the
    // override of the undated key does not reach it. 3120*3 + 488*15 +
    // 40960*0.3 (per M) = 0.028968 as before.
    assert_eq!(v[0]["cost_usd"], "0.028968");
    // The added model prices: 10 * 5 + 5 * 25 (per M) = 0.000175, and
    // 20 * 5 + 5 * 25 = 0.000225.
    let opus: Vec<&serde_json::Value> = v
        .iter()
        .filter(|l| l["model"] == "claude-opus-4-8")
        .collect();
    assert_eq!(opus[0]["cost_usd"], "0.000175");
    assert_eq!(opus[1]["cost_usd"], "0.000225");
    let table = opus[0]["price_table"].as_str().unwrap();
    assert!(table.starts_with("litellm.json@"), "{table}");
    assert!(!stderr(&o).contains("no price"));
    // An undated model name takes the override: 1000 * 3.3 + 100 * 16.5 (per M).
    let line = r#"{"timestamp":"2026-11-01T00:00:00Z","tokens":{"input_tokens":1000,"output_tokens":100},"provider":"claude","model":"claude-sonnet-4-5","request_id":"0000000a"}"#;
    let o = env.run("mb-tokens", &args(&["--prices", "litellm.json"]), line);
    assert_code(&o, 0);
    assert_eq!(lines(&stdout(&o))[0]["cost_usd"], "0.00495");
    // `prices` lists the effective table; its JSON reads back as --prices.
    let p = env.run("mb-tokens", &["prices", "--prices", "litellm.json"], "");
    assert_code(&p, 0);
    let t = stdout(&p);
    assert!(
        t.lines()
            .any(|l| l.starts_with("claude-opus-4-8 ") && l.contains(" 5 ") && l.contains(" 25 ")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with("gemini-2.5-pro ") && l.contains(">200k: 2.5/15")),
        "{t}"
    );
    let j = env.run("mb-tokens", &["prices", "--json"], "");
    assert_code(&j, 0);
    env.write("exported.json", &stdout(&j));
    let o = env.run(
        "mb-tokens",
        &args(&["--prices", "exported.json", &fx("queue-v2.jsonl")]),
        "",
    );
    assert_code(&o, 0);
    assert_eq!(
        costs(&stdout(&o))[0],
        c("claude-sonnet-4-5-20250929", "0.04136325")
    );
}

#[test]
fn key_map_routes_clients_to_customers() {
    let env = Env::new();
    // Keys in clear or as the 16-hex client hash; a header row.
    let hash = {
        let o = env.run("mb-tokens", &args(&[&fx("queue-v2.jsonl")]), "");
        lines(&stdout(&o))[1]["client"]
            .as_str()
            .unwrap()
            .to_string()
    };
    env.write(
        "keys.csv",
        &format!("client,customer_id,vm_id\nsk-vm-team-a-7f3e,acme,vm-a\n{hash},beta,vm-b\n"),
    );
    let o = env.run(
        "mb-tokens",
        &["--key-map", "keys.csv", &fx("queue-v2.jsonl")],
        "",
    );
    assert_code(&o, 1);
    let v = lines(&stdout(&o));
    let who: Vec<(String, String)> = v
        .iter()
        .map(|l| {
            (
                l["customer_id"].as_str().unwrap().into(),
                l["vm_id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        who,
        vec![
            ("acme".into(), "vm-a".into()),
            ("beta".into(), "vm-b".into()),
            ("acme".into(), "vm-a".into())
        ]
    );
    assert!(
        stderr(&o)
            .contains(":4: client bda61f86bbeca15a is not in --key-map, and no --customer is set"),
        "{}",
        stderr(&o)
    );
    // With a fallback customer nothing is skipped.
    let o = env.run(
        "mb-tokens",
        &[
            "--key-map",
            "keys.csv",
            "--customer",
            "other",
            "--vm",
            "v",
            &fx("queue-v2.jsonl"),
        ],
        "",
    );
    assert_code(&o, 0);
    assert_eq!(lines(&stdout(&o))[3]["customer_id"], "other");
    // A bad map is a usage error.
    env.write("bad.csv", "k,acme\n");
    let o = env.run(
        "mb-tokens",
        &["--key-map", "bad.csv", &fx("queue-v2.jsonl")],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("bad.csv:1: expected 3 fields"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_errors_help_and_broken_pipe() {
    let env = Env::new();
    let o = env.run("mb-tokens", &[&fx("early.jsonl")], "");
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("no customer configured"),
        "{}",
        stderr(&o)
    );
    let o = env.run(
        "mb-tokens",
        &args(&["--prices", "nope.json", &fx("early.jsonl")]),
        "",
    );
    assert_code(&o, 2);
    let o = env.run("mb-tokens", &["--help"], "");
    assert_code(&o, 0);
    assert!(stdout(&o).contains("EXAMPLES"));
    let o = env.run(
        "mb-tokens",
        &args(&["--format", "usage-queue", &fx("provider.jsonl")]),
        "",
    );
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("provider.jsonl:1: field \"timestamp\": \"2026-11-02T09:00:00Z\"")
            || stderr(&o).contains("provider.jsonl:1:"),
        "{}",
        stderr(&o)
    );
    // A closed stdout is not an error: write many lines into `head -1`.
    let q = std::fs::read_to_string(fixture("tokens/queue-v2.jsonl")).unwrap();
    let first = q.lines().next().unwrap();
    let mut big = String::new();
    for i in 0..20000 {
        big.push_str(&first.replace("3f9a1c07", &format!("{i:08x}")));
        big.push('\n');
    }
    env.write("big.jsonl", &big);
    let mut child = env
        .cmd("mb-tokens")
        .args(args(&["big.jsonl"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut so = child.stdout.take().unwrap();
    let mut buf = [0u8; 10];
    so.read_exact(&mut buf).unwrap();
    drop(so);
    let out = child.wait_with_output().unwrap();
    assert_code(&out, 0);
    assert_eq!(stderr(&out), "");
}

/// What the fake CLIProxyAPI does with one connection.
#[derive(Clone, Copy)]
enum Conn {
    /// Read the request, close without answering (nothing popped).
    Drop,
    /// Pop `count`, send the body only up to `upto` of it, then close.
    Cut(fn(&str) -> usize),
    /// Pop `count` and answer normally (chunked, like Go's net/http).
    Ok,
}

fn serve(listener: TcpListener, queue: Arc<Mutex<VecDeque<String>>>, script: Vec<Conn>) {
    let mut script: VecDeque<Conn> = script.into();
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { return };
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&b[..n]),
            }
        }
        let req = String::from_utf8_lossy(&req).to_string();
        if !req.contains("Authorization: Bearer s3cret\r\n") {
            let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        let count: usize = req
            .split("count=")
            .nth(1)
            .and_then(|r| r.split([' ', '&']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let how = script.pop_front().unwrap_or(Conn::Ok);
        if let Conn::Drop = how {
            continue;
        }
        let popped: Vec<String> = {
            let mut q = queue.lock().unwrap();
            (0..count).filter_map(|_| q.pop_front()).collect()
        };
        let body = format!("[{}]", popped.join(","));
        match how {
            Conn::Cut(upto) => {
                let n = upto(&body);
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
                let _ = s.write_all(&body.as_bytes()[..n]);
            }
            _ => {
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
                for part in body.as_bytes().chunks(700) {
                    let _ = write!(s, "{:x}\r\n", part.len());
                    let _ = s.write_all(part);
                    let _ = s.write_all(b"\r\n");
                }
                let _ = s.write_all(b"0\r\n\r\n");
            }
        }
    }
}

#[test]
fn pull_survives_dropped_connections() {
    let env = Env::new();
    let q = std::fs::read_to_string(fixture("tokens/queue-v2.jsonl")).unwrap();
    let base = q.lines().next().unwrap().to_string();
    let recs: Vec<String> = (1..=6)
        .map(|i| base.replace("3f9a1c07", &format!("0000000{i}")))
        .collect();
    let queue = Arc::new(Mutex::new(recs.iter().cloned().collect::<VecDeque<_>>()));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = vec![
        // 1: dropped before answering: nothing popped, retried.
        Conn::Drop,
        // 2: records 1 and 2 arrive whole, the closing `]` never does.
        Conn::Cut(|b| b.len() - 1),
        // 3: record 3 arrives, record 4 is cut halfway: 4 is lost at the
        //    server (reported), 3 is saved.
        Conn::Cut(|b| b.find("},{").unwrap() + 1 + 700),
        // 4: records 5 and 6 (a full page: pull again at once); 5: [].
        Conn::Ok,
    ];
    let qc = queue.clone();
    let server = std::thread::spawn(move || serve(listener, qc, script));
    env.write("key", "s3cret\n");
    std::fs::set_permissions(
        env.path("key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // A previous run died mid-write: the fragment gets its own line.
    env.write("out/usage.jsonl", "{\"timestamp\":\"2026-");
    let url = format!("http://127.0.0.1:{port}");
    let o = env.run(
        "mb-tokens",
        &[
            "pull",
            "--url",
            &url,
            "--key-file",
            "key",
            "--out",
            "out/usage.jsonl",
            "--count",
            "2",
            "--interval",
            "0",
            "--once",
        ],
        "",
    );
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("the last line has no newline"), "{err}");
    assert!(err.contains("nothing was popped, retrying"), "{err}");
    assert!(err.contains("2 complete records saved"), "{err}");
    assert!(
        err.contains("1 complete records saved, 699 bytes of a cut record lost"),
        "{err}"
    );
    let saved = std::fs::read_to_string(env.path("out/usage.jsonl")).unwrap();
    let want = format!(
        "{{\"timestamp\":\"2026-\n{}\n{}\n{}\n{}\n{}\n",
        recs[0], recs[1], recs[2], recs[4], recs[5]
    );
    assert_eq!(saved, want);
    assert!(queue.lock().unwrap().is_empty());
    // The saved file prices; the fragment is one reported bad line.
    let o = env.run("mb-tokens", &args(&["out/usage.jsonl"]), "");
    assert_code(&o, 1);
    assert_eq!(stdout(&o).lines().count(), 5);
    assert!(
        stderr(&o).contains("out/usage.jsonl:1: invalid JSON"),
        "{}",
        stderr(&o)
    );
    // A wrong key is fatal, not retried forever.
    let bad = env.write("bad-key", "nope\n");
    // A key file others can read is refused (as ssh refuses a key).
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let o = env.run(
        "mb-tokens",
        &[
            "pull",
            "--url",
            &url,
            "--key-file",
            "bad-key",
            "--out",
            "out/usage.jsonl",
            "--once",
        ],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("management key was refused"),
        "{}",
        stderr(&o)
    );
    drop(server);
}
