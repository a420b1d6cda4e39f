//! The whole pipeline on one machine, with temp paths and the real binaries:
//! mb-customer add; three mb-sample runs on a fixture /proc tree piped into
//! mb-ingest; mb-tokens on a fixture proxy log piped into mb-ingest;
//! mb-activity run (spooled) and record; mb-ingest --spool; then
//! mb-report summary and invoice, with every total checked by hand below;
//! and the pull of a VM's events into a billing database with
//! `mb-report events | mb-ingest`.
//!
//! Fixtures (tests/fixtures/e2e/): `proc-base` is a copy of mb-sample's base
//! tree (see tests/sample.rs for its numbers), mutated between runs here;
//! `usage-queue.jsonl` is the first three records of mb-tokens'
//! queue-v2.jsonl moved to 2026-11-20 (their costs are hand-computed in
//! tests/tokens.rs); `mb.toml` sets 50,000 included tokens so the month has
//! an overage, a 20 % markup and a 0.92 EUR/USD rate.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::util::{assert_code, fixture, stderr, stdout, Env};

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// `producer | consumer` with a real pipe; both outputs.
fn pipe(mut producer: Command, mut consumer: Command) -> (Output, Output) {
    let mut p = producer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let c = consumer
        .stdin(Stdio::from(p.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let co = c.wait_with_output().unwrap();
    let po = p.wait_with_output().unwrap();
    (po, co)
}

fn summary_json(o: &Output) -> Value {
    let last = stderr(o).lines().last().unwrap_or_default().to_string();
    serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {}", stderr(o)))
}

/// Assert mb-ingest's JSON summary counts (read, inserted, duplicates).
#[track_caller]
fn counts(o: &Output, read: i64, inserted: i64, duplicates: i64) {
    let s = summary_json(o);
    assert_eq!(
        (
            s["read"].as_i64(),
            s["inserted"].as_i64(),
            s["duplicates"].as_i64(),
            s["conflicts"].as_i64(),
            s["rejected"].as_i64()
        ),
        (
            Some(read),
            Some(inserted),
            Some(duplicates),
            Some(0),
            Some(0)
        ),
        "{s}"
    );
}

pub(crate) struct Vm {
    pub(crate) env: Env,
    root: PathBuf,
}

impl Vm {
    fn write(&self, rel: &str, text: &str) {
        fs::write(self.root.join(rel), text).unwrap();
    }

    fn set_cpu(&self, line: &str) {
        crate::util::set_stat_cpu(&self.root.join("proc/stat"), line);
    }

    fn set_eth0(&self, rx: u64, tx: u64) {
        let p = self.root.join("proc/net/dev");
        let old = fs::read_to_string(&p).unwrap();
        let new: Vec<String> = old
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("eth0:") {
                    format!("  eth0: {rx} 4000000    0    0    0     0          0         0 {tx} 2000000    0    0    0     0       0          0")
                } else {
                    l.to_string()
                }
            })
            .collect();
        fs::write(p, new.join("\n") + "\n").unwrap();
    }

    /// `mb-sample | mb-ingest` at wall-clock `now`.
    fn sample(&self, now: &str) -> (Output, Output) {
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut sample = self.env.cmd("mb-sample");
        sample.env("MB_NOW", now).args([
            "--proc-root",
            &s(self.root.join("proc")),
            "--sys-root",
            &s(self.root.join("sys")),
            "--statvfs-fixture",
            &s(self.root.join("statvfs.tsv")),
            "--state",
            &s(self.env.path("state/sample.state")),
            "--customer",
            "acme",
            "--vm",
            "vm-1",
        ]);
        let mut ingest = self.env.cmd("mb-ingest");
        ingest.args(["--summary", "json"]);
        pipe(sample, ingest)
    }

    pub(crate) fn report(&self, args: &[&str]) -> Output {
        let mut c = self.env.cmd("mb-report");
        c.env("MB_CONFIG", fixture("e2e/mb.toml")).args(args);
        crate::util::run_cmd(&mut c, "")
    }
}

/// Everything up to the reports: the state of the VM's database at the end
/// of November. Returns the VM (its Env holds the database).
fn build_month() -> Vm {
    build_month_on(None, None)
}

/// [`build_month`] into `db` (a PostgreSQL connection string) instead of
/// the temp directory's SQLite file, with mb-tokens' client key copied from
/// `client_key` (so the same events come out as in another run).
pub(crate) fn build_month_on(db: Option<&str>, client_key: Option<&Path>) -> Vm {
    // The clock is in December, so all of November's events are in the past.
    let mut env = Env::at("2026-12-02T12:00:00Z");
    if let Some(db) = db {
        env.db = db.into();
    }
    if let Some(k) = client_key {
        fs::copy(k, env.path("client.key")).unwrap();
    }
    let root = env.path("root");
    copy_tree(&fixture("e2e/proc-base"), &root);
    let vm = Vm { env, root };
    let env = &vm.env;

    // 1. The customer: pro since October, with a Stripe id and this VM.
    let mut c = env.cmd("mb-customer");
    c.env("MB_CONFIG", fixture("e2e/mb.toml")).args([
        "add",
        "acme",
        "--tier",
        "pro",
        "--effective",
        "2026-10-01",
        "--stripe-customer",
        "cus_ACME",
        "--vm",
        "vm-1",
    ]);
    assert_code(&crate::util::run_cmd(&mut c, ""), 0);

    // 2. Three samples, 300 s apart. The base tree is uptime 100000 s at
    // btime 1795800000, so wall = btime + uptime = 1795900000 =
    // 2026-11-28T21:06:40Z. First run: status first, nothing to count yet.
    let (s, i) = vm.sample("2026-11-28T21:06:40Z");
    assert_code(&s, 0);
    assert_code(&i, 0);
    counts(&i, 1, 1, 0);
    // +300 s: cpu busy +10800 (user +9000, system +1500, irq +100,
    // softirq +200), total +60000 (= busy + idle 48000 + iowait 300 +
    // steal 900 = 2 CPUs x 100 Hz x 300 s); eth0 rx +3,000,000 B, tx
    // +500,000 B; memory unchanged at 25 %.
    vm.write("proc/uptime", "100300.00 1.00\n");
    vm.set_cpu("cpu  1009000 20000 301500 18548000 50300 10100 20200 100900 106000 0");
    vm.set_eth0(5_003_000_000, 800_500_000);
    let (s, i) = vm.sample("2026-11-28T21:11:40Z");
    assert_code(&s, 0);
    counts(&i, 1, 1, 0);
    // +300 s: busy +19200 (user +15000, system +3000, irq +600, softirq
    // +600), total +60000 (+ idle 40000, iowait 500, steal 300); eth0 rx
    // +7,000,000, tx +1,500,000; MemAvailable 2,000,000 kB of 4,000,000:
    // memory 50 %.
    vm.write("proc/uptime", "100600.00 1.00\n");
    vm.set_cpu("cpu  1024000 20000 304500 18588000 50800 10700 20800 101200 106000 0");
    vm.set_eth0(5_010_000_000, 802_000_000);
    let mem = fs::read_to_string(vm.root.join("proc/meminfo"))
        .unwrap()
        .replace("MemAvailable:    3000000 kB", "MemAvailable:    2000000 kB");
    vm.write("proc/meminfo", &mem);
    let (s, i) = vm.sample("2026-11-28T21:16:40Z");
    assert_code(&s, 0);
    counts(&i, 1, 1, 0);

    // 3. Tokens: the proxy's usage queue, priced, piped in. Hourly again
    // with the same state: nothing new.
    let log = fixture("e2e/usage-queue.jsonl");
    let tokens = |state: &Path| {
        let mut t = env.cmd("mb-tokens");
        t.args(["--customer", "acme", "--vm", "vm-1", "--state"])
            .arg(state)
            .arg(&log);
        let mut i = env.cmd("mb-ingest");
        i.args(["--summary", "json"]);
        pipe(t, i)
    };
    let state = env.path("state/tokens.state");
    let (t, i) = tokens(&state);
    assert_code(&t, 0);
    assert_code(&i, 0);
    counts(&i, 3, 3, 0);
    let (t, i) = tokens(&state);
    assert_code(&t, 0);
    counts(&i, 0, 0, 0);

    // 4. Activity: a wrapped command (exit 3 passes through) into the
    // spool, and a recorded pattern of 95.5 s piped in.
    let spool = env.path("state/spool");
    let mut run = env.cmd("mb-activity");
    run.env("MB_NOW", "2026-11-15T09:00:00Z")
        .args([
            "run",
            "--wait",
            "--customer",
            "acme",
            "--vm",
            "vm-1",
            "--spool",
        ])
        .arg(&spool)
        .args(["--", "sh", "-c", "exit 3"]);
    let o = crate::util::run_cmd(&mut run, "");
    assert_code(&o, 3);
    let mut rec = env.cmd("mb-activity");
    rec.args([
        "record",
        "--customer",
        "acme",
        "--vm",
        "vm-1",
        "--type",
        "pattern",
        "--name",
        "rag-query",
        "--duration",
        "95.5",
        "--exit-code",
        "0",
        "--at",
        "2026-11-15T10:00:00Z",
    ]);
    let mut i = env.cmd("mb-ingest");
    i.args(["--summary", "json"]);
    let (r, i) = pipe(rec, i);
    assert_code(&r, 0);
    counts(&i, 1, 1, 0);

    // 5. The spool, as cron's job does it: one file, moved to done/.
    let o = env.run(
        "mb-ingest",
        &["--summary", "json", "--spool", spool.to_str().unwrap()],
        "",
    );
    assert_code(&o, 0);
    counts(&o, 1, 1, 0);
    assert_eq!(fs::read_dir(spool.join("done")).unwrap().count(), 1);
    if db.is_none() {
        assert_eq!(
            env.query("SELECT activity_type, exit_code FROM activity_log ORDER BY ts_ns"),
            ["command|3", "pattern|0"]
        );
    }
    vm
}

/// The November summary of acme as mb-report JSON, checked field by field.
/// The dashboard's JSON API must agree with this (the lead adds that
/// comparison once mb-dashboard exists: same period, same numbers).
fn assert_november_summary_json(s: &Value) {
    assert_eq!(s["period"]["start"], "2026-11-01T00:00:00Z");
    assert_eq!(s["period"]["end"], "2026-12-01T00:00:00Z");
    let cs = s["customers"].as_array().unwrap();
    assert_eq!(cs.len(), 1);
    let c = &cs[0];
    assert_eq!(c["customer_id"], "acme");
    assert_eq!(c["registered"], true);

    // API: tokens = in + out + cache read + cache write per model:
    //   claude-sonnet-4-5: 1843 + 912 + 48210 + 2051 = 53016, USD 0.04136325
    //   gpt-5-codex:       4599 + 1380 + 19968 + 0   = 25947, USD 0.02204475
    //   gemini-2.5-pro:    2240 + 1859 + 8192 + 0    = 12291, USD 0.022414
    // total 53016 + 25947 + 12291 = 91254 tokens,
    // USD 0.04136325 + 0.02204475 + 0.022414 = 0.085822.
    let t = &c["api_total"];
    assert_eq!(t["requests"], 3);
    assert_eq!(t["tokens_in"], 1843 + 4599 + 2240);
    assert_eq!(t["tokens_out"], 912 + 1380 + 1859);
    assert_eq!(t["cache_read_tokens"], 48210 + 19968 + 8192);
    assert_eq!(t["cache_write_tokens"], 2051);
    assert_eq!(t["total_tokens"], 91254);
    assert_eq!(t["cost_usd"], "0.085822");
    let mut models: Vec<(String, i64, String)> = c["api"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["model"].as_str().unwrap().to_string(),
                m["total_tokens"].as_i64().unwrap(),
                m["cost_usd"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    models.sort();
    assert_eq!(
        models,
        [
            (
                "claude-sonnet-4-5-20250929".into(),
                53016,
                "0.04136325".into()
            ),
            ("gemini-2.5-pro".into(), 12291, "0.022414".into()),
            ("gpt-5-codex".into(), 25947, "0.02204475".into()),
        ]
    );

    // Resources, from the two intervals of one boot:
    //   CPU (10800 + 19200) / (60000 + 60000) = 30000 / 120000 = 25.0 %;
    //   memory time-weighted (25 x 300 + 50 x 300) / 600 = 37.5 %;
    //   network in 3,000,000 + 7,000,000 B = 10.0 MB, out 500,000 +
    //   1,500,000 B = 2.0 MB (only eth0 is physical);
    //   disk: / 400000 x 4096 + /data 400000 x 4096 + "/mnt/my disk"
    //   500 x 1024 = 3,277,312,000 B = 3.3 GB (tests/sample.rs);
    //   coverage 600 s of the 30-day month (2,592,000 s) = 0.0231.. %.
    let r = &c["resource"];
    assert_eq!(r["samples"], 3);
    assert_eq!(r["vms"], 1);
    assert_eq!(r["avg_cpu_percent"], 25.0);
    assert_eq!(r["avg_memory_percent"], 37.5);
    assert_eq!(r["total_network_in_mb"], 10.0);
    assert_eq!(r["total_network_out_mb"], 2.0);
    assert_eq!(r["max_disk_bytes"], 3_277_312_000i64);
    assert_eq!(r["max_disk_gb"], 3.3);

    // Activity: the wrapped command (a few ms) and the 95.5 s pattern.
    let a = c["activity"].as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(
        (&a[0]["activity_type"], &a[0]["count"]),
        (&"command".into(), &1.into())
    );
    assert!(a[0]["duration_seconds"].as_f64().unwrap() < 5.0);
    assert_eq!(a[1]["activity_type"], "pattern");
    assert_eq!(a[1]["count"], 1);
    assert_eq!(a[1]["duration_seconds"], 95.5);
}

#[test]
fn pipeline_end_to_end_summary_and_invoice() {
    let vm = build_month();
    let env = &vm.env;

    // Summary JSON (what the dashboard must agree with).
    let o = vm.report(&[
        "summary",
        "--month",
        "2026-11",
        "--customer",
        "acme",
        "--json",
    ]);
    assert_code(&o, 0);
    let s: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_november_summary_json(&s);

    // The sectioned CSV says the same, rounded for people.
    let o = vm.report(&["summary", "--month", "2026-11", "--csv"]);
    assert_code(&o, 0);
    let csv = stdout(&o);
    for want in [
        "Total API Cost USD,0.0858\n", // 0.085822 to 4 decimals
        "avg_cpu_percent,25.0\n",
        "avg_memory_percent,37.5\n",
        "max_disk_gb,3.3\n",
        "total_network_in_mb,10.0\n",
        "total_network_out_mb,2.0\n",
        "pattern,1,95.5\n",
    ] {
        assert!(csv.contains(want), "{want:?} not in\n{csv}");
    }

    // Invoice for November:
    // - base: pro 499.00 EUR all 30 days = 49900 cents;
    // - overage: T = 91254 > I = 50000, so
    //   0.085822 USD x (91254 - 50000) / 91254 x 1.2 x 0.92 EUR/USD
    //   = 0.085822 x 41254 / 91254 x 1.104
    //   = 0.0428333319... EUR = 4.28333319... cents -> 4 cents (half-up).
    let o = vm.report(&["invoice", "--month", "2026-11", "--csv"]);
    assert_code(&o, 0);
    let mut rdr = csv::Reader::from_reader(o.stdout.as_slice());
    let rows: Vec<Vec<String>> = rdr
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{}", stdout(&o));
    let base = &rows[0];
    assert_eq!(
        (
            &base[0][..],
            &base[1][..],
            &base[4][..],
            &base[8][..],
            &base[9][..]
        ),
        ("acme", "cus_ACME", "base", "EUR", "49900")
    );
    assert_eq!(base[15], "mb-2026-11-acme-base-pro-2026-11-01");
    let ov = &rows[1];
    assert_eq!(
        (
            &ov[4][..],
            &ov[6][..],
            &ov[9][..],
            &ov[10][..],
            &ov[11][..],
            &ov[12][..],
            &ov[14][..]
        ),
        (
            "llm_overage",
            "41254",
            "4",
            "4.283333",
            "91254",
            "0.085822",
            "0.92"
        )
    );
    assert_eq!(ov[15], "mb-2026-11-acme-llm_overage");

    // The invoice goes to Stripe as two items (dry run: the requests).
    let inv = env.write("invoice.csv", &stdout(&o));
    let up = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/stripe-upload.py"))
        .env("MB_STRIPE_LEDGER", env.path("ledger.tsv"))
        .args(["--dry-run"])
        .arg(&inv)
        .output()
        .unwrap();
    assert_code(&up, 0);
    let reqs = stdout(&up);
    assert_eq!(reqs.matches("POST ").count(), 2);
    assert!(
        reqs.contains("customer=cus_ACME&amount=49900&currency=eur&"),
        "{reqs}"
    );
    assert!(
        reqs.contains("customer=cus_ACME&amount=4&currency=eur&"),
        "{reqs}"
    );

    // Billing host: pull the VM's November events into a central database.
    // The same 8 rows (3 samples, 3 API calls, 2 activities); pulled twice,
    // all duplicates; the central summary equals the VM's.
    let central = env.path("central/usage.db");
    let pull = || {
        let mut ev = env.cmd("mb-report");
        ev.args(["events", "--since", "2026-11-01", "--until", "2026-12-01"]);
        let mut ing = env.cmd("mb-ingest");
        ing.arg("--db").arg(&central).args(["--summary", "json"]);
        pipe(ev, ing)
    };
    let (e, i) = pull();
    assert_code(&e, 0);
    assert_code(&i, 0);
    counts(&i, 8, 8, 0);
    let (_, i) = pull();
    counts(&i, 8, 0, 8);
    let mut c = env.cmd("mb-report");
    c.env("MB_CONFIG", fixture("e2e/mb.toml"))
        .arg("--db")
        .arg(&central)
        .args([
            "summary",
            "--month",
            "2026-11",
            "--customer",
            "acme",
            "--json",
        ]);
    let o = crate::util::run_cmd(&mut c, "");
    // The customer registry is not in the pulled events: central reports
    // flag acme as unregistered until the registry is set up there.
    let central_json: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut a = central_json["customers"][0].clone();
    let mut b = s["customers"][0].clone();
    // So are its standing fields (tier, status: from the registry), and
    // whether the registry lists its VMs.
    for k in ["registered", "tier", "status", "changes", "inactive_usage"] {
        a[k] = Value::Null;
        b[k] = Value::Null;
    }
    for v in [&mut a, &mut b] {
        for vm in v["resource"]["by_vm"].as_array_mut().unwrap() {
            vm["registered"] = Value::Null;
        }
    }
    assert_eq!(a, b);
}

/// The dashboard must show what mb-report computes: its
/// `/api/v1/summary` for acme's November equals `mb-report --json` for the
/// same customer and period, whose every number is checked by hand in
/// `assert_november_summary_json`.
#[test]
fn dashboard_json_agrees_with_mb_report() {
    let vm = build_month();
    let o = vm.report(&[
        "summary",
        "--month",
        "2026-11",
        "--customer",
        "acme",
        "--json",
    ]);
    assert_code(&o, 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_november_summary_json(&report);

    let mut c = vm.env.cmd("mb-dashboard");
    c.env("MB_CONFIG", fixture("e2e/mb.toml"))
        .args(["--port", "0", "--customer", "acme"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    err.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("mb-dashboard: listening on http://")
        .unwrap_or_else(|| panic!("mb-dashboard did not start: {line}"))
        .trim_end_matches('/')
        .to_string();
    let body = http_get(&addr, "/api/v1/summary?month=2026-11");
    let _ = child.kill();
    let _ = child.wait();
    let dashboard: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(dashboard, report);
}

/// GET `target` with `Connection: close`; the body of a 200 (chunked or not).
pub(crate) fn http_get(addr: &str, target: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
}
