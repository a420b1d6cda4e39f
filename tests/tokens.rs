//! mb-tokens: the real binary on real files, with hand-computed costs.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::util::{assert_code, fixture, golden, run_cmd, stderr, stdout, Env};

const ID: &[&str] = &["--customer", "acme", "--vm", "vm-1"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&'a str> = ID.to_vec();
    v.extend_from_slice(extra);
    v
}

/// The client-key secret of the tests (64 hex digits), so `client` values
/// in golden files are stable.
const SECRET: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// An environment with [`SECRET`] in `MB_CLIENT_KEY` (the test's
/// `client.key`), mode 0600.
fn env() -> Env {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    let p = e.write("client.key", &format!("{SECRET}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    e
}

/// The keyed `client` value of `key` under [`SECRET`].
fn keyed(key: &str) -> String {
    let secret: Vec<u8> = (0..32u8).collect();
    mb::tokens::client::ClientHasher::new(&secret).hash(key)
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
    let env = env();
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
    // The client key is never written; `client` is its keyed hash:
    // HMAC-SHA256(secret, "sk-vm-team-a-7f3e")[..32 hex].
    assert!(!stdout(&o).contains("sk-vm-team"));
    assert!(!stdout(&o).contains("alice@example.com"));
    assert_eq!(v[0]["client"], v[2]["client"]);
    assert_eq!(v[0]["client"], keyed("sk-vm-team-a-7f3e").as_str());
    assert_eq!(v[0]["client"].as_str().unwrap().len(), 32);
}

#[test]
fn provider_responses() {
    let env = env();
    let o = env.run("mb-tokens", &args(&[&fx("provider.jsonl")]), "");
    assert_code(&o, 1);
    golden("tokens/provider.expected.jsonl", &stdout(&o));
    let f = fx("provider.jsonl");
    assert_eq!(
        stderr(&o),
        format!(
            "mb-tokens: {f}:11: no price for model \"claude-opus-4-8\" (provider anthropic); its lines \
             are written with priced false and cost_usd null: add it with --prices FILE (and \
             `mb-tokens reprice` what is already stored)\n\
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
    let env = env();
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
    let env = env();
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
    let env = env();
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
    let env = env();
    let snap = fx("snapshot.json");
    let (out, code) = read_state(&env, &snap);
    assert_eq!((out.lines().count(), code), (2, 1));
    let (out, code) = read_state(&env, &snap);
    assert_eq!((out.as_str(), code), ("", 0));
}

#[test]
fn litellm_price_file_overrides_and_adds() {
    let env = env();
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
    let env = env();
    // Keys in clear or as the keyed client hash; a header row.
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
        stderr(&o).contains(&format!(
            ":4: client {} is not in --key-map, and no --customer is set",
            keyed("sk-vm-team-c-44aa")
        )),
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
    let env = env();
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

/// A fake CLIProxyAPI management API on `listener`: the usage queue, popped
/// as `script` says, and `usage-statistics-enabled` answering `stats`.
fn serve(
    listener: TcpListener,
    queue: Arc<Mutex<VecDeque<String>>>,
    script: Vec<Conn>,
    stats: bool,
) {
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
        // The toggle's read endpoint (GET/PUT/PATCH
        // /v0/management/usage-statistics-enabled, internal/api/handlers/
        // management): answered without touching the queue or the script.
        if req.starts_with("GET /v0/management/usage-statistics-enabled ") {
            let body = format!("{{\"usage-statistics-enabled\":{}}}", stats);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
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
    let env = env();
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
    let server = std::thread::spawn(move || serve(listener, qc, script, true));
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

/// The `--summary json` counts of one mb-ingest run.
fn ingest(env: &Env, lines: &str) -> serde_json::Value {
    let i = env.run("mb-ingest", &["--summary", "json"], lines);
    assert!(
        matches!(i.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&i)
    );
    let s = stderr(&i);
    let start = s
        .find('{')
        .unwrap_or_else(|| panic!("no JSON summary: {s}"));
    let end = s.rfind('}').unwrap();
    serde_json::from_str(&s[start..=end]).unwrap()
}

/// The fields that carry a line's meaning, for compact expectations:
/// (id, price_key, tokens_in, tokens_out, cache_read, cost_usd, service_tier).
fn brief(v: &serde_json::Value) -> (String, String, u64, u64, u64, String, String) {
    let s = |k: &str| match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    (
        s("id"),
        s("price_key"),
        v["tokens_in"].as_u64().unwrap(),
        v["tokens_out"].as_u64().unwrap(),
        v["cache_read_tokens"].as_u64().unwrap(),
        s("cost_usd"),
        s("service_tier"),
    )
}

fn b(
    id: &str,
    key: &str,
    tin: u64,
    tout: u64,
    cr: u64,
    cost: &str,
    tier: &str,
) -> (String, String, u64, u64, u64, String, String) {
    (
        id.into(),
        key.into(),
        tin,
        tout,
        cr,
        cost.into(),
        tier.into(),
    )
}

/// Issue 13.1: the three queue shapes, read per record. Each line of
/// queue-shapes.jsonl is written as upstream's `queuedUsageDetail` marshals
/// it (internal/redisqueue/plugin.go; field set of the version named per
/// line, see tests/fixtures/tokens/README.md).
#[test]
fn queue_shapes_are_read_per_record() {
    let env = env();
    let o = env.run("mb-tokens", &args(&[&fx("queue-shapes.jsonl")]), "");
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
    let got: Vec<_> = lines(&stdout(&o)).iter().map(brief).collect();
    assert_eq!(
        got,
        vec![
            // v7.0.3..v7.2.66, Codex: cache_read_tokens 0, the reads are in
            // cached_tokens. 24567 input includes 19968 cached:
            // 4599 * 1.25/M + 19968 * 0.125/M + 1380 * 10/M
            // = 0.00574875 + 0.002496 + 0.0138 = 0.02204475
            // (the 0 would bill 24567 * 1.25/M + 0.0138 = 0.04450875).
            b(
                "cpa:2026-06-20T10:00:01.5+08:00:a1000001",
                "gpt-5-codex",
                4599,
                1380,
                19968,
                "0.02204475",
                "-"
            ),
            // v7.0.3..v7.2.66, Gemini: 10432 prompt includes 8192 cached;
            // thoughts 1204 are extra output:
            // 2240 * 1.25/M + 8192 * 0.125/M + (655 + 1204) * 10/M
            // = 0.0028 + 0.001024 + 0.01859 = 0.022414 (not 0.03163).
            b(
                "cpa:2026-06-20T10:00:02.25+08:00:a1000002",
                "gemini-2.5-pro",
                2240,
                1859,
                8192,
                "0.022414",
                "-"
            ),
            // v7.0.3..v7.2.66, Claude: cache_read_tokens is filled (0 here)
            // and cached_tokens fell back to the 2051 writes, so it is not
            // read as cache reads: 1000 * 3/M + 100 * 15/M + 2051 * 3.75/M
            // = 0.003 + 0.0015 + 0.00769125 = 0.01219125.
            b(
                "cpa:2026-06-20T10:00:03+08:00:a1000003",
                "claude-sonnet-4-5-20250929",
                1000,
                100,
                0,
                "0.01219125",
                "-"
            ),
            // v7.2.67..v7.2.73: cache_read_tokens filled for every provider
            // (no present flag yet); same request, same 0.02204475. The
            // response tier "default" is what upstream reports as applied.
            b(
                "cpa:2026-07-12T09:30:00.000000001+08:00:a1000004",
                "gpt-5-codex",
                4599,
                1380,
                19968,
                "0.02204475",
                "default"
            ),
            // v7.2.74..v7.2.96: cache_read_tokens_present true; 0.022414.
            b(
                "cpa:2026-07-20T09:30:00.75+08:00:a1000005",
                "gemini-2.5-pro",
                2240,
                1859,
                8192,
                "0.022414",
                "-"
            ),
        ]
    );
}

/// Issue 13.2 to 13.5 on the accounting-v2 shape of v7.2.140
/// (queuedUsageDetail, internal/redisqueue/plugin.go; token_breakdown,
/// sdk/cliproxy/usage/accounting.go).
#[test]
fn image_tool_tiers_long_context_and_unclassified() {
    let env = env();
    let o = env.run("mb-tokens", &args(&[&fx("queue-v7.2.140.jsonl")]), "");
    assert_code(&o, 1);
    let f = fx("queue-v7.2.140.jsonl");
    assert_eq!(
        stderr(&o),
        format!(
            "mb-tokens: {f}:7: token_breakdown quality \"unclassified\": 500 of 500 tokens are \
             unclassified and the legacy counts do not add up to the total; written unpriced with \
             the total (unclassified tokens in tokens_in)\n\
             mb-tokens: {f}:8: token_breakdown quality \"unclassified\": 500 of 1500 tokens are \
             unclassified and the legacy counts do not add up to the total; written unpriced with \
             the total (unclassified tokens in tokens_in)\n\
             mb-tokens: 9 lines written, 2 with inconsistent counts, 2 unpriced with unclassified \
             tokens\n"
        )
    );
    let v = lines(&stdout(&o));
    let got: Vec<_> = v.iter().map(brief).collect();
    let ts = "cpa:2026-11-20T14:00:00.123456789+08:00:b2000001";
    assert_eq!(
        got,
        vec![
            // 13.2: the text record keeps its id: 2000 * 2.5/M + 500 * 15/M
            // = 0.005 + 0.0075 = 0.0125.
            b(ts, "gpt-5.4", 2000, 500, 0, "0.0125", "default"),
            // ... and the image tool's record (PublishAdditionalModel) gets
            // its own, priced at LiteLLM's image-token rates: 50 text input
            // * 5/M + 3125 image output * 40/M = 0.00025 + 0.125 = 0.12525.
            b(
                &format!("{ts}:gpt-image-1"),
                "gpt-image-1",
                50,
                3125,
                0,
                "0.12525",
                "-"
            ),
            // 13.4: 300000 prompt tokens > 272k: every rate of the request is
            // the long-context one, cache reads included:
            // 50000 * 5/M + 250000 * 0.5/M + 5000 * 22.5/M
            // = 0.25 + 0.125 + 0.1125 = 0.4875 (not 0.425).
            b(
                "cpa:2026-11-20T14:05:00+08:00:b2000002",
                "gpt-5.4",
                50000,
                5000,
                250000,
                "0.4875",
                "default"
            ),
            // Sonnet 4.5 above 200k (Anthropic's long-context price): prompt
            // 10000 + 195000 = 205000: 10000 * 6/M + 195000 * 0.6/M
            // + 1000 * 22.5/M = 0.06 + 0.117 + 0.0225 = 0.1995.
            b(
                "cpa:2026-11-20T14:06:00+08:00:b2000003",
                "claude-sonnet-4-5-20250929",
                10000,
                1000,
                195000,
                "0.1995",
                "-"
            ),
            // 13.5: priority reported as applied: 2000 * 5/M + 500 * 30/M
            // = 0.01 + 0.015 = 0.025, and the key says which tier's rate.
            b(
                "cpa:2026-11-20T14:07:00+08:00:b2000004",
                "gpt-5.4#priority",
                2000,
                500,
                0,
                "0.025",
                "priority"
            ),
            // flex requested, gpt-5.4 has no flex rate: the default 0.0125.
            b(
                "cpa:2026-11-20T14:08:00+08:00:b2000005",
                "gpt-5.4",
                2000,
                500,
                0,
                "0.0125",
                "flex"
            ),
            // 13.3: wholly unclassified, legacy counts all 0: unpriced with
            // the reported 500 (never billed as 0).
            b(
                "cpa:2026-11-20T14:09:00+08:00:b2000006",
                "-",
                500,
                0,
                0,
                "-",
                "-"
            ),
            // 1000 classified input + 500 unclassified: unpriced, 1500.
            b(
                "cpa:2026-11-20T14:10:00+08:00:b2000007",
                "-",
                1500,
                0,
                0,
                "-",
                "-"
            ),
            // Unclassified, but the legacy counts add up to the total (800 +
            // 200 = 1000): priced from them, 800 * 0.15/M + 200 * 0.6/M
            // = 0.00012 + 0.00012 = 0.00024.
            b(
                "cpa:2026-11-20T14:11:00+08:00:b2000008",
                "gpt-4o-mini",
                800,
                200,
                0,
                "0.00024",
                "-"
            ),
        ]
    );
    for i in [6, 7] {
        assert_eq!(v[i]["priced"], false);
        assert_eq!(v[i]["source_format"], "usage-queue-unclassified");
    }
}

/// Every fixture read twice, each time freshly by mb-tokens, stores only
/// duplicates the second time (Done means of issue 13).
#[test]
fn second_pass_of_every_fixture_is_only_duplicates() {
    let env = env();
    let inputs: Vec<String> = [
        "queue-v2.jsonl",
        "early.jsonl",
        "queue-shapes.jsonl",
        "queue-v7.2.140.jsonl",
        "provider.jsonl",
        "snapshot.json",
        "reqlog/v1-messages-2026-08-20T140312-7e2b9d10.log",
        "reqlog/v1-chat-completions-2026-08-20T140320-b81e44d2.log",
        "reqlog-more/v1-responses-2026-11-20T140000-d4000001.log",
        "reqlog-more/v1beta-models-gemini-2.5-flash-streamGenerateContent-2026-11-20T141000-d4000002.log",
        "reprice.jsonl",
    ]
    .iter()
    .map(|f| fx(f))
    .collect();
    let run = || {
        let mut a: Vec<&str> = ID.to_vec();
        a.extend(inputs.iter().map(String::as_str));
        stdout(&env.run("mb-tokens", &a, ""))
    };
    let first = run();
    let n = first.lines().count() as u64;
    assert!(n >= 30, "{n}");
    let s = ingest(&env, &first);
    assert_eq!(
        (s["inserted"].as_u64(), s["conflicts"].as_u64()),
        (Some(n), Some(0))
    );
    let s = ingest(&env, &run());
    assert_eq!(
        (
            s["inserted"].as_u64(),
            s["duplicates"].as_u64(),
            s["conflicts"].as_u64()
        ),
        (Some(0), Some(n), Some(0)),
        "{s}"
    );
}

/// Issue 17.2: a line written before the keyed hash (`client` the 16-hex
/// plain SHA-256 prefix, exactly as mb-tokens wrote it then) is stored;
/// re-reading the same usage now writes the keyed hash, and mb-ingest sees
/// the same event: a duplicate, no conflict, no new row.
#[test]
fn old_client_hash_lines_stay_duplicates() {
    let env = env();
    let old = std::fs::read_to_string(fixture("tokens/old-client.jsonl")).unwrap();
    // printf %s sk-vm-team-a-7f3e | sha256sum | cut -c1-16
    assert!(old.contains("\"client\":\"91681bb9abe3226e\""));
    let s = ingest(&env, &old);
    assert_eq!(s["inserted"].as_u64(), Some(1), "{s}");
    let o = env.run("mb-tokens", &args(&[&fx("queue-v2.jsonl")]), "");
    let new = stdout(&o);
    assert!(new.contains(&keyed("sk-vm-team-a-7f3e")));
    let s = ingest(&env, &new);
    assert_eq!(
        (
            s["inserted"].as_u64(),
            s["duplicates"].as_u64(),
            s["conflicts"].as_u64()
        ),
        (Some(3), Some(1), Some(0)),
        "{s}"
    );
    // The stored row keeps the value it was stored with.
    assert_eq!(
        env.query(
            "SELECT client FROM api_usage WHERE id = 'cpa:2026-08-20T14:03:12.118734502+08:00:3f9a1c07'"
        ),
        ["91681bb9abe3226e"]
    );
    // A real difference is still a conflict.
    let changed = old.replace("\"tokens_out\":912", "\"tokens_out\":913");
    let s = ingest(&env, &changed);
    assert_eq!(s["conflicts"].as_u64(), Some(1), "{s}");
    // Key maps written with the legacy hash still route.
    env.write("keys.csv", "91681bb9abe3226e,beta,vm-b\n");
    let o = env.run(
        "mb-tokens",
        &[
            "--key-map",
            "keys.csv",
            "--customer",
            "x",
            "--vm",
            "y",
            &fx("queue-v2.jsonl"),
        ],
        "",
    );
    assert_eq!(lines(&stdout(&o))[0]["customer_id"], "beta");
    // `client-hash` prints the keyed value for a key map.
    let o = env.run("mb-tokens", &["client-hash"], "sk-vm-team-a-7f3e\n");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), format!("{}\n", keyed("sk-vm-team-a-7f3e")));
}

/// The secret is created on first use, 0600 in a 0700 directory, and a
/// secret readable by others is refused with the chmod to run.
#[test]
fn client_key_secret_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let key = env.path("keys/mb/client.key");
    let o = run_cmd(
        env.cmd("mb-tokens")
            .env("MB_CLIENT_KEY", &key)
            .args(args(&[&fx("early.jsonl")])),
        "",
    );
    assert_code(&o, 0);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(key.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(text.trim().len(), 64);
    // The same secret gives the same client next time.
    let again = run_cmd(
        env.cmd("mb-tokens")
            .env("MB_CLIENT_KEY", &key)
            .args(args(&[&fx("early.jsonl")])),
        "",
    );
    assert_eq!(again.stdout, o.stdout);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run_cmd(
        env.cmd("mb-tokens")
            .env("MB_CLIENT_KEY", &key)
            .args(args(&[&fx("early.jsonl")])),
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains(&format!("run: chmod 600 {}", key.display())),
        "{}",
        stderr(&o)
    );
}

/// Issue 12.5, the whole path: an unknown model is stored unpriced, the
/// invoice refuses it and names `mb-tokens reprice`; a price is added;
/// reprice (dry run, then for real, then again: nothing) prices exactly the
/// unpriced row, with api_rollup and the audit tables; the invoice is then
/// exact, and re-reading the old log gives duplicates.
#[test]
fn reprice_walkthrough() {
    let env = Env::at("2026-12-02T12:00:00Z");
    let c = env.run(
        "mb-customer",
        &[
            "add",
            "acme",
            "--tier",
            "pro",
            "--effective",
            "2026-10-01",
            "--vm",
            "vm-1",
        ],
        "",
    );
    assert_code(&c, 0);
    let o = env.run("mb-tokens", &args(&[&fx("reprice.jsonl")]), "");
    assert_code(&o, 1);
    let unpriced_log = stdout(&o);
    assert_eq!(ingest(&env, &unpriced_log)["inserted"].as_u64(), Some(2));
    let invoice = [
        "invoice",
        "--month",
        "2026-11",
        "--usd-eur",
        "0.92",
        "--json",
    ];
    let o = env.run("mb-report", &invoice, "");
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("`mb-tokens reprice --db DB --prices FILE`"),
        "{}",
        stderr(&o)
    );
    let prices = env.write(
        "new-prices.json",
        r#"{"gpt-5.5": {"litellm_provider": "openai", "input_cost_per_token": 5e-06, "output_cost_per_token": 3e-05}}"#,
    );
    let p = prices.to_str().unwrap();
    let o = env.run("mb-tokens", &["reprice", "--prices", p, "--dry-run"], "");
    assert_code(&o, 0);
    // gpt-5.5: 600000 * 5/M + 100000 * 30/M = 3 + 3 = 6 USD.
    assert!(
        stdout(&o).starts_with("# dry run: 1 rows would be priced, USD 6; nothing changed\n"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        env.query("SELECT count(*) FROM api_usage WHERE priced = 0"),
        ["1"]
    );
    assert_eq!(env.query("SELECT count(*) FROM reprice_log"), ["0"]);
    let o = env.run("mb-tokens", &["reprice", "--prices", p], "");
    assert_code(&o, 0);
    let table = env.query("SELECT price_table FROM api_usage WHERE model = 'gpt-5.5'")[0].clone();
    assert!(table.starts_with("new-prices.json@"), "{table}");
    assert_eq!(
        stdout(&o),
        format!(
            "# 1 rows priced, USD 6 (reprice_runs.reprice_id 1)\n\
             CUSTOMER  MODEL    PRICE_KEY  ROWS  COST_USD\n\
             acme      gpt-5.5  gpt-5.5       1         6\n"
        )
    );
    assert_eq!(
        env.query(
            "SELECT r.id, quote(old_cost_nusd), new_cost_nusd, quote(old_price_key), new_price_key, \
             l.price_table = r2.price_table FROM reprice_log l JOIN api_usage r ON r.id = l.id \
             JOIN api_usage r2 ON r2.id = l.id"
        ),
        ["cpa:2026-11-10T10:00:00Z:c3000002|NULL|6000000000|NULL|gpt-5.5|1"]
    );
    // api_rollup moved the row from its unpriced key to the priced one and
    // agrees with api_usage: 0.12 + 6 = 6.12 USD, nothing unpriced.
    let sums = "SELECT sum(requests), sum(unpriced_requests), sum(cost_nusd), sum(tokens_in) FROM api_rollup";
    assert_eq!(env.query(sums), ["2|0|6120000000|1000000"]);
    assert_eq!(
        env.query(
            "SELECT count(*), sum(NOT priced), sum(cost_nusd), sum(tokens_in) FROM api_usage"
        ),
        ["2|0|6120000000|1000000"]
    );
    // Idempotent: a second run finds nothing and records nothing.
    let o = env.run("mb-tokens", &["reprice", "--prices", p], "");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "# nothing to price\n");
    assert_eq!(env.query("SELECT count(*) FROM reprice_runs"), ["1"]);
    // The invoice is exact now. Tokens: 400000 + 100000 + 600000 + 100000
    // = 1,200,000 > 1,000,000 included; cost 6.12 USD. Overage =
    // 6.12 * 200000 / 1200000 * 1.2 * 0.92 = 1.02 * 1.104 = 1.12608 EUR
    // -> 1.13 EUR = 113 cents.
    let o = env.run("mb-report", &invoice, "");
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let line = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["line"] == "llm_overage")
        .unwrap_or_else(|| panic!("no overage line: {v}"));
    assert_eq!(line["amount_minor"], 113);
    assert_eq!(line["tokens"], 1_200_000);
    assert_eq!(line["cost_usd"], "6.12");
    // Re-reading the old, unpriced log: duplicates only.
    let s = ingest(&env, &unpriced_log);
    assert_eq!(
        (s["duplicates"].as_u64(), s["conflicts"].as_u64()),
        (Some(2), Some(0)),
        "{s}"
    );
    // And reading it with the new price: the same rows, duplicates too.
    let o = env.run(
        "mb-tokens",
        &args(&["--prices", p, &fx("reprice.jsonl")]),
        "",
    );
    assert_code(&o, 0);
    let s = ingest(&env, &stdout(&o));
    assert_eq!(
        (s["duplicates"].as_u64(), s["conflicts"].as_u64()),
        (Some(2), Some(0)),
        "{s}"
    );
}

/// Issue 13.12: counts of the built-in table in the docs are checked, not
/// typed: docs/mb-tokens.md says "the built-in table has N keys".
#[test]
fn documented_builtin_key_count_is_the_real_one() {
    let n = mb::tokens::prices::PriceTable::builtin().unwrap().len();
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/mb-tokens.md"),
    )
    .unwrap();
    let claim = format!("the built-in table has {n} keys");
    assert!(doc.contains(&claim), "docs/mb-tokens.md must say {claim:?}");
    let env = env();
    let o = env.run("mb-tokens", &["prices"], "");
    // One header comment, one column header, one row per key.
    assert_eq!(stdout(&o).lines().count(), n + 2);
}

/// Issue 13.6 to 13.9: websocket sessions, Gemini `alt=json` and chunks
/// without responseId, count_tokens, commercial mode.
#[test]
fn request_log_websocket_alt_json_count_tokens_and_commercial_mode() {
    let env = env();
    let more = |f: &str| fx(&format!("reqlog-more/{f}"));
    // 13.6: the API WEBSOCKET TIMELINE frames, as AppendAPIWebsocketResponse
    // writes them (Timestamp:, Event: api.websocket.response, the frame);
    // each response.completed is one request of the session.
    let ws = more("v1-responses-2026-11-20T140000-d4000001.log");
    // 13.7: alt=json, the body is a JSON array of the stream's chunks.
    let alt =
        more("v1beta-models-gemini-2.5-flash-streamGenerateContent-2026-11-20T141000-d4000002.log");
    // 13.8: a count_tokens request: skipped, counted, no exit 1.
    let ct = more("v1-messages-count_tokens-2026-11-20T142000-d4000003.log");
    let o = env.run("mb-tokens", &args(&[&ws, &alt, &ct]), "");
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
    let got: Vec<_> = lines(&stdout(&o)).iter().map(brief).collect();
    assert_eq!(
        got,
        vec![
            // 5000 input incl. 4000 cached, 300 output (reasoning inside):
            // 1000 * 1.25/M + 4000 * 0.125/M + 300 * 10/M
            // = 0.00125 + 0.0005 + 0.003 = 0.00475
            b(
                "cpa:2026-11-20T14:00:00.5+08:00:d4000001",
                "gpt-5-codex",
                1000,
                300,
                4000,
                "0.00475",
                "-"
            ),
            // second turn: 1000 * 1.25/M + 5000 * 0.125/M + 200 * 10/M
            // = 0.00125 + 0.000625 + 0.002 = 0.003875
            b(
                "cpa:2026-11-20T14:00:00.5+08:00:d4000001:2",
                "gpt-5-codex",
                1000,
                200,
                5000,
                "0.003875",
                "-"
            ),
            // last chunk's running totals: 100 prompt, 40 + 10 thoughts:
            // 100 * 0.30/M + 50 * 2.50/M = 0.00003 + 0.000125 = 0.000155
            b(
                "cpa:2026-11-20T14:10:00+08:00:d4000002",
                "gemini-2.5-flash",
                100,
                50,
                0,
                "0.000155",
                "-"
            ),
        ]
    );
    // The count_tokens file shows in the summary once something else does.
    let bad = env.write("bad.log", "=== REQUEST INFO ===\nURL: /v1/messages\n");
    let o = env.run("mb-tokens", &args(&[&ct, bad.to_str().unwrap()]), "");
    assert_code(&o, 1);
    assert!(
        stderr(&o).ends_with(
            "mb-tokens: 0 lines written, 1 count_tokens requests skipped (no billable usage), \
             1 bad records skipped\n"
        ),
        "{}",
        stderr(&o)
    );
    // 13.7: Gemini chunks without responseId are one request, not three:
    // 1000 * 0.30/M + (300 + 50) * 2.50/M = 0.0003 + 0.000875 = 0.001175.
    // Raw chunks carry no time: the file's modification time is used.
    let noid = env.path("gemini-noid.jsonl");
    std::fs::copy(fx("gemini-noid.jsonl"), &noid).unwrap();
    let touch = std::process::Command::new("touch")
        .args(["-d", "2026-11-20T12:00:00Z"])
        .arg(&noid)
        .status()
        .unwrap();
    assert!(touch.success());
    let o = env.run("mb-tokens", &args(&[noid.to_str().unwrap()]), "");
    let v = lines(&stdout(&o));
    assert_eq!(v[0]["ts"], "2026-11-20T12:00:00Z");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["cost_usd"], "0.001175");
    // 13.9: request logs without any upstream section (commercial-mode:
    // true): said once, naming the setting; every file counted.
    let c1 = more("commercial-v1-chat-completions-2026-11-20T143001-d4000011.log");
    let c2 = more("commercial-v1-chat-completions-2026-11-20T143002-d4000012.log");
    let o = env.run("mb-tokens", &args(&[&c1, &c2]), "");
    assert_code(&o, 1);
    let e = stderr(&o);
    assert_eq!(e.matches("commercial-mode: true").count(), 1, "{e}");
    assert!(
        e.ends_with("mb-tokens: 0 lines written, 2 bad records skipped\n"),
        "{e}"
    );
}

/// Issue 13.10: the legacy snapshot (`/v0/management/usage`, v6.0.0 to
/// v6.9.49; StatisticsSnapshot in internal/usage/logger_plugin.go at
/// 18bb9c315^) has no provider field. Where its `apis` key names the
/// executor (a proxy without client keys), that executor's token rules
/// apply; where it cannot be known, a Claude model is read with Anthropic's
/// rules and a warning says so.
#[test]
fn legacy_snapshot_uses_the_executor_the_key_names() {
    let env = env();
    let f = fx("snapshot-executor.json");
    let o = env.run("mb-tokens", &args(&[&f]), "");
    assert_code(&o, 0);
    assert!(
        stderr(&o).starts_with(&format!(
            "mb-tokens: {f}: 1 Claude-model records name no executor"
        )),
        "{}",
        stderr(&o)
    );
    let v = lines(&stdout(&o));
    let by_ts = |ts: &str| v.iter().find(|l| l["ts"] == ts).unwrap().clone();
    // Antigravity speaks Gemini: 10000 prompt includes 8000 cached, the
    // 1000 thoughts are extra output: 2000 * 3/M + 8000 * 0.30/M
    // + (500 + 1000) * 15/M = 0.006 + 0.0024 + 0.0225 = 0.0309
    // (Anthropic's rules would say 10000 * 3/M + 8000 * 0.30/M + 500 * 15/M
    // = 0.0399, cached counted twice and thinking dropped).
    let a = by_ts("2026-03-02T01:00:00.250Z");
    assert_eq!(
        (
            a["provider"].as_str(),
            a["tokens_in"].as_u64(),
            a["tokens_out"].as_u64()
        ),
        (Some("google"), Some(2000), Some(1500))
    );
    assert_eq!(a["cost_usd"], "0.0309");
    assert_eq!(a["client"], serde_json::Value::Null);
    // A client key: Anthropic's rules, 9000 * 3/M + 1000 * 15/M = 0.042.
    let k = by_ts("2026-03-02T01:05:00Z");
    assert_eq!(k["provider"], "anthropic");
    assert_eq!(k["cost_usd"], "0.042");
    assert_eq!(k["client"], keyed("sk-vm-team-a-7f3e").as_str());
}

/// Issue 13.11: upstream's usage-statistics-enabled defaults to false, and
/// then nothing is ever queued: pull says so.
#[test]
fn pull_warns_when_upstream_statistics_are_disabled() {
    let env = env();
    let queue = Arc::new(Mutex::new(VecDeque::new()));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let qc = queue.clone();
    std::thread::spawn(move || serve(listener, qc, vec![], false));
    env.write("key", "s3cret\n");
    std::fs::set_permissions(
        env.path("key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
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
            "q.jsonl",
            "--once",
        ],
        "",
    );
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("CLIProxyAPI reports usage-statistics-enabled: false"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn on_a_terminal_with_no_input_it_says_what_it_waits_for() {
    let env = Env::new();
    // No file and stdin a terminal: a hint on stderr, then it reads
    // stdin like cat (here until timeout(1) ends it).
    let tty = crate::util::run_in_pty(&env, "mb-tokens", "--customer acme", &[], 3);
    assert!(
        tty.contains(
            "mb-tokens: reading usage records from standard input (a terminal); end with Ctrl-D, or name the files: mb-tokens FILE..."
        ),
        "{tty:?}"
    );
    // Not a terminal: no hint (a pipe or a file is what cron gives).
    let o = env.run("mb-tokens", &["--customer", "acme"], "");
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("Ctrl-D"), "{}", stderr(&o));
}

#[test]
fn flags_that_would_be_ignored_are_refused() {
    let env = Env::new();
    // --state remembers files' identities and offsets; standard input has
    // neither, so --state with no file is refused and no state is written.
    let o = env.run(
        "mb-tokens",
        &["--customer", "acme", "--state", "t.state"],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).starts_with("mb-tokens: --state t.state: standard input has no file identity or offset to remember; name the log files (mb-tokens --state t.state FILE...)"),
        "{}",
        stderr(&o)
    );
    assert!(!env.path("t.state").exists());
    // pull --retries counts failures before --once gives up; the service
    // (no --once) retries for ever, so --retries alone is refused.
    let o = env.run(
        "mb-tokens",
        &[
            "pull",
            "--out",
            "q.jsonl",
            "--key-file",
            "k",
            "--retries",
            "2",
        ],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("required arguments were not provided:\n  --once"),
        "{}",
        stderr(&o)
    );
}
