//! Synthetic mb-events(5) lines for benchmarks.
//!
//! `cargo run --release --example gen_events -- KIND N [CUSTOMERS] [SEED]`
//! writes N lines of KIND (api, resource, activity) to stdout. Ids are
//! pseudo-random 8-hex request ids plus a timestamp, like CLIProxyAPI's, so
//! the unique index sees realistic random keys. Deterministic for a seed.

use std::io::{self, BufWriter, Write};

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("api");
    let n: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let customers: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(50);
    let mut seed: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(42);
    let mut rnd = move || {
        // xorshift64*: fast, deterministic, good enough for keys.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let random_ids = std::env::var("GEN_IDS").is_ok_and(|v| v == "random");
    let out = io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, out.lock());
    let start = 1_793_491_200u64; // 2026-11-01T00:00:00Z
    let models = [
        ("anthropic", "claude-sonnet-4-5", 3_000u64, 15_000u64),
        ("openai", "gpt-4o", 2_500, 10_000),
        ("google", "gemini-2.5-pro", 1_250, 10_000),
    ];
    for i in 0..n {
        let r = rnd();
        let t = start + (i * 2_332_800 / n.max(1)); // spread over 27 days
        let ts = chrono::DateTime::from_timestamp(t as i64, (r % 1000) as u32 * 1_000_000)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let c = r % customers;
        let vm = (r >> 8) % 3;
        match kind {
            "api" => {
                let (p, m, pin, pout) = models[(r >> 16) as usize % 3];
                let tin = (r >> 20) % 20_000;
                let tout = (r >> 36) % 4_000;
                // price per million tokens in micro-USD -> cost in nano-USD
                let nusd = tin * pin + tout * pout;
                let req = format!("{:08x}", r as u32);
                let id = if random_ids {
                    format!("cpa:{req}:{ts}")
                } else {
                    format!("cpa:{ts}:{req}")
                };
                writeln!(
                    w,
                    r#"{{"v":1,"kind":"api","id":"{id}","ts":"{ts}","customer_id":"cust-{c:04}","vm_id":"vm-{c:04}-{vm}","provider":"{p}","model":"{m}","price_key":"{m}","tokens_in":{tin},"tokens_out":{tout},"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":"{}.{:09}","priced":true,"price_table":"builtin-2026-11-01","request_id":"{req}","failed":false,"auth_type":"apikey","client":"sha256:{:016x}","service_tier":null,"source_format":"usage-queue"}}"#,
                    nusd / 1_000_000_000,
                    nusd % 1_000_000_000,
                    c
                )?;
            }
            "resource" => {
                // 1000 VMs (customer = vm % customers), one sample per VM
                // every 5 minutes, counters growing consistently per VM.
                let vmn = i % 1000;
                let seq = i / 1000;
                let c = vmn % customers;
                let t = start + seq * 300;
                let ts = chrono::DateTime::from_timestamp(t as i64, 0)
                    .unwrap_or_default()
                    .format("%Y-%m-%dT%H:%M:%SZ");
                writeln!(
                    w,
                    r#"{{"v":1,"kind":"resource","id":"vm-{vmn:04}:boot-{vmn}:{}","ts":"{ts}","customer_id":"cust-{c:04}","vm_id":"vm-{vmn:04}","interval_seconds":300.0,"status":"ok","flags":[],"boot_id":"boot-{vmn}","seq":{seq},"cpu_percent":12.5,"cpu_busy_ticks":7500,"cpu_total_ticks":60000,"ncpu":2,"clk_tck":100,"memory_percent":38.0,"memory_used_bytes":3040000000,"memory_total_bytes":8000000000,"disk_used_bytes":18200000000,"disk_total_bytes":40000000000,"net_in_bytes":10000000,"net_out_bytes":1000000,"cpu_busy_ticks_cum":{},"cpu_total_ticks_cum":{},"net_in_bytes_cum":{},"net_out_bytes_cum":{},"errors":[]}}"#,
                    (seq + 1) * 300_000,
                    seq * 7500,
                    seq * 60000,
                    seq * 10_000_000,
                    seq * 1_000_000
                )?;
            }
            _ => {
                writeln!(
                    w,
                    r#"{{"v":1,"kind":"activity","id":"act:{:016x}","ts":"{ts}","customer_id":"cust-{c:04}","vm_id":"vm-{c:04}-{vm}","activity_type":"command","pattern_name":null,"command":"cargo build --release","duration_seconds":{}.5,"exit_code":0,"user":"bob"}}"#,
                    r,
                    r % 600
                )?;
            }
        }
    }
    w.flush()
}
