//! Synthetic mb-events(5) lines for benchmarks.
//!
//! `cargo run --release --example gen_events -- KIND N [CUSTOMERS] [SEED]`
//! writes N lines of KIND (api, resource, activity) to stdout. Ids are
//! pseudo-random 8-hex request ids plus a timestamp, like CLIProxyAPI's, so
//! the unique index sees realistic random keys. Deterministic for a seed.
//! Resource lines take `GEN_VMS` (VM count) and `GEN_START` (first sample
//! time) from the environment.

use std::io::{self, BufWriter, Write};

/// One VM's boot number and cumulative counters since that boot.
#[derive(Debug, Clone, Copy, Default)]
struct VmState {
    boot: u64,
    seq: u64,
    busy: u64,
    total: u64,
    net_in: u64,
    net_out: u64,
}

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
    let vms: u64 = std::env::var("GEN_VMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
        .max(1);
    let res_start = std::env::var("GEN_START")
        .ok()
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(&v).ok())
        .map_or(start, |t| t.timestamp() as u64);
    let mut vm_state = vec![VmState::default(); if kind == "resource" { vms as usize } else { 0 }];
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
                // GEN_VMS VMs (default 1000; customer = vm % customers), one
                // sample per VM every 5 minutes from GEN_START (RFC 3339,
                // default 2026-11-01T00:00:00Z), with counters growing
                // consistently per VM boot. Like a real fleet, about one
                // sample in 400 is lost (the counters still advance), and
                // one VM in 7 reboots every 2,000 intervals (the first
                // sample of the new boot is a `reboot` sample carrying its
                // since-boot counters).
                let vmn = i % vms;
                let seq = i / vms;
                let c = vmn % customers;
                let t = res_start + seq * 300;
                let h = (vmn.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93))
                .rotate_left(29)
                .wrapping_mul(0x2545_F491_4F6C_DD1D);
                let st = &mut vm_state[vmn as usize];
                let rebooting = vmn % 7 == 3 && seq > 0 && seq % 2000 == 0;
                if rebooting {
                    st.boot += 1;
                    *st = VmState {
                        boot: st.boot,
                        ..VmState::default()
                    };
                }
                // This interval's usage, then the cumulative counters.
                let busy = 3_000 + h % 20_000;
                st.busy += busy;
                st.total += 60_000;
                st.net_in += (h >> 20) % 40_000_000;
                st.net_out += (h >> 40) % 4_000_000;
                st.seq += 1;
                if h % 400 == 7 {
                    continue; // lost sample
                }
                let ts = chrono::DateTime::from_timestamp(t as i64, 0)
                    .unwrap_or_default()
                    .format("%Y-%m-%dT%H:%M:%SZ");
                let (status, interval) = if seq == 0 {
                    ("first", "null".to_string())
                } else if rebooting {
                    ("reboot", "300.0".to_string())
                } else {
                    ("ok", "300.0".to_string())
                };
                let mem = 20.0 + (h % 600) as f64 / 10.0;
                let disk = 10_000_000_000 + vmn * 100_000_000 + seq * 10_000;
                writeln!(
                    w,
                    r#"{{"v":1,"kind":"resource","id":"vm-{vmn:04}:boot-{vmn}-{boot}:{sseq}","ts":"{ts}","customer_id":"cust-{c:04}","vm_id":"vm-{vmn:04}","interval_seconds":{interval},"status":"{status}","flags":[],"boot_id":"boot-{vmn}-{boot}","seq":{sseq},"cpu_percent":{pct:.2},"cpu_busy_ticks":{busy},"cpu_total_ticks":60000,"ncpu":2,"clk_tck":100,"memory_percent":{mem:.1},"memory_used_bytes":3040000000,"memory_total_bytes":8000000000,"disk_used_bytes":{disk},"disk_total_bytes":40000000000,"net_in_bytes":10000000,"net_out_bytes":1000000,"cpu_busy_ticks_cum":{},"cpu_total_ticks_cum":{},"net_in_bytes_cum":{},"net_out_bytes_cum":{},"errors":[]}}"#,
                    st.busy,
                    st.total,
                    st.net_in,
                    st.net_out,
                    boot = st.boot,
                    sseq = st.seq,
                    pct = busy as f64 / 600.0,
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
