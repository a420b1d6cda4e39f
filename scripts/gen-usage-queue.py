#!/usr/bin/env python3
"""Write N MB of synthetic CLIProxyAPI usage-queue records (JSONL) to stdout.

Deterministic (seeded), with the record shape of CLIProxyAPI v7.2 (accounting
version 2 with token_breakdown) mixed with the early v6.9 shape, several
providers and models (one unknown to the price table), failed requests and
distinct request ids. Used by scripts/bench-tokens.sh.

usage: scripts/gen-usage-queue.py [MEGABYTES]   (default 256; 300 MB is about 300,000 records)
"""
import json
import random
import sys

MB = float(sys.argv[1]) if len(sys.argv) > 1 else 256.0
rnd = random.Random(42)
MODELS = [
    ("claude", "claude-sonnet-4-5-20250929", "ClaudeExecutor", "POST /v1/messages"),
    ("claude", "claude-haiku-4-5-20251001", "ClaudeExecutor", "POST /v1/messages"),
    ("codex", "gpt-5-codex", "CodexExecutor", "POST /v1/responses"),
    ("gemini", "gemini-2.5-pro", "GeminiExecutor", "POST /v1beta/models/*action"),
    ("gemini", "gemini-2.5-flash", "GeminiExecutor", "POST /v1beta/models/*action"),
    ("openrouter", "moonshotai/kimi-k2", "OpenAICompatExecutor", "POST /v1/chat/completions"),
]
KEYS = ["sk-vm-team-a-7f3e", "sk-vm-team-b-19c2", "sk-vm-team-c-44aa"]

out = sys.stdout
written = 0
limit = int(MB * 1_000_000)
i = 0
while written < limit:
    i += 1
    prov, model, ex, ep = rnd.choice(MODELS)
    uncached = rnd.randint(0, 20000)
    cr = rnd.randint(0, 80000)
    cw = rnd.randint(0, 4000) if prov == "claude" else 0
    reasoning = rnd.randint(0, 2000)
    nonr = rnd.randint(1, 3000)
    failed = rnd.random() < 0.02
    if failed:
        uncached = cr = cw = reasoning = nonr = 0
    ts = "2026-11-%02dT%02d:%02d:%02d.%09d+08:00" % (
        1 + i % 27, i % 24, (i // 24) % 60, (i // 1440) % 60, i)
    rid = "%08x" % (i * 2654435761 % (1 << 32))
    inp = uncached + cr + cw
    out_total = nonr + reasoning
    if i % 10 == 0:
        # early shape (v6.9.38): no breakdown, provider semantics
        rec = {"timestamp": ts, "latency_ms": rnd.randint(100, 20000), "source": "user@example.com",
               "auth_index": "9c41e07a2b5d13f8",
               "tokens": {"input_tokens": uncached if prov == "claude" else inp,
                          "output_tokens": out_total if prov != "gemini" else nonr,
                          "reasoning_tokens": reasoning, "cached_tokens": cr,
                          "total_tokens": inp + out_total},
               "failed": failed, "provider": prov, "model": model, "endpoint": ep,
               "auth_type": "oauth", "api_key": rnd.choice(KEYS), "request_id": rid}
    else:
        rec = {"timestamp": ts, "latency_ms": rnd.randint(100, 20000), "ttft_ms": rnd.randint(0, 5000),
               "source": "user@example.com", "auth_index": "9c41e07a2b5d13f8",
               "client_ip": "127.0.0.1", "x_forwarded_for": "", "user_agent": "claude-cli/2.1.50 (external, cli)",
               "tokens": {"input_tokens": uncached if prov == "claude" else inp,
                          "output_tokens": out_total if prov != "gemini" else nonr,
                          "reasoning_tokens": reasoning, "cached_tokens": cr, "cache_read_tokens": cr,
                          "cache_read_tokens_present": True, "cache_creation_tokens": cw,
                          "total_tokens": inp + out_total},
               "failed": failed, "generate": True,
               "fail": {"status_code": 429 if failed else 200,
                        "body": "{\"error\":{\"message\":\"Rate limit exceeded\"}}" if failed else ""},
               "accounting_version": 2,
               "token_breakdown": {"schema_version": 2, "quality": "complete", "total_tokens": inp + out_total,
                                   "input": {"total_tokens": inp, "uncached_tokens": uncached,
                                             "cache_read_tokens": cr, "cache_write_tokens": cw},
                                   "output": {"total_tokens": out_total, "non_reasoning_tokens": nonr,
                                              "reasoning_tokens": reasoning},
                                   "unclassified_tokens": 0},
               "provider": prov, "executor_type": ex, "model": model, "alias": model, "endpoint": ep,
               "auth_type": rnd.choice(["oauth", "apikey"]), "api_key": rnd.choice(KEYS),
               "request_id": rid, "reasoning_effort": "", "service_tier": "default"}
    line = json.dumps(rec, separators=(",", ":")) + "\n"
    out.write(line)
    written += len(line)
