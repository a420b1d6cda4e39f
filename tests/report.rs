//! mb-report on a fixture database built by the real mb-ingest and
//! mb-customer: golden outputs and hand-computed numbers.

use crate::util::*;

/// Ingest the fixture events and register the customers:
/// - acme: pro since 2026-10-01 (stripe cus_ACME);
/// - globex: starter from 2026-11-01, pro from 2026-11-16 (cus_GLOBEX);
/// - initech: enterprise since 2026-10-01, suspended from 2026-11-21 (cus_INI).
fn setup() -> Env {
    // The clock is in December so the whole of November can be ingested.
    setup_in(Env::at("2026-12-02T12:00:00Z"))
}

/// The fixture loaded into `env` (whose database may be PostgreSQL).
pub(crate) fn setup_in(env: Env) -> Env {
    let f = fixture("report/events.jsonl");
    assert_code(&env.run("mb-ingest", &["-q", f.to_str().unwrap()], ""), 0);
    for args in [
        &[
            "add",
            "acme",
            "--tier",
            "pro",
            "--effective",
            "2026-10-01",
            "--stripe-customer",
            "cus_ACME",
            "--vm",
            "vm-a1",
            "--vm",
            "vm-a2",
        ][..],
        &[
            "add",
            "globex",
            "--tier",
            "starter",
            "--effective",
            "2026-11-01",
            "--stripe-customer",
            "cus_GLOBEX",
        ],
        &[
            "set",
            "globex",
            "--tier",
            "pro",
            "--effective",
            "2026-11-16",
        ],
        &[
            "add",
            "initech",
            "--tier",
            "enterprise",
            "--effective",
            "2026-10-01",
            "--stripe-customer",
            "cus_INI",
        ],
        &[
            "set",
            "initech",
            "--status",
            "suspended",
            "--effective",
            "2026-11-21",
        ],
    ] {
        assert_code(&env.run("mb-customer", args, ""), 0);
    }
    env
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn summary_csv_reproduces_the_sectioned_layout() {
    let env = setup();
    let o = env.run(
        "mb-report",
        &["--month", "2026-11", "--customer", "acme", "--csv"],
        "",
    );
    assert_code(&o, 0);
    golden("report/acme-2026-11.csv", &stdout(&o));
    // Hand-checked: a1 (2,500,000 tokens, USD 12.5) + a2 (100, USD 0.00025);
    // a3 is 2026-10-31T23:30Z, outside the UTC month.
    let out = stdout(&o);
    assert!(out.contains(
        "\nanthropic,claude-sonnet-4-5,1000000,500000,2500000,12.5000,700000,300000,1\n"
    ));
    assert!(
        out.contains("\nopenai,gpt-4o,100,0,100,0.0003,0,0,1\n"),
        "0.00025 rounds half away from zero"
    );
    assert!(out.contains("\nTotal API Cost USD,12.5003\n"));
    // Samples: [23:45,23:50] 1,000,000 B + [23:50,00:00] (23:55 lost) 2,000,000 B
    // = 3.0 MB; CPU (100 + 200) / (1000 + 2000) = 10.0 %; memory 40 % for
    // 5 min and 60 % for 10 min = 53.3 %; disk max 12 GB.
    assert!(out.contains("\navg_cpu_percent,10.0\navg_memory_percent,53.3\nmax_disk_gb,12.0\ntotal_network_in_mb,3.0\ntotal_network_out_mb,0.3\n"));
    // Activity durations 10.25 + 20.5 + 0.05 = 30.8.
    assert!(out.contains("\ncommand,3,30.8\npattern,1,600.0"));
}

#[test]
fn summary_text_and_json() {
    let env = setup();
    let o = env.run("mb-report", &["--month", "2026-11"], "");
    assert_code(&o, 0);
    golden("report/all-2026-11.txt", &stdout(&o));
    let o = env.run("mb-report", &["--month", "2026-11", "--json"], "");
    assert_code(&o, 0);
    let v = json(&o);
    golden(
        "report/all-2026-11.json",
        &(serde_json::to_string_pretty(&v).unwrap() + "\n"),
    );
    assert_eq!(v["customers"].as_array().unwrap().len(), 3);
    assert_eq!(v["customers"][0]["api_total"]["total_tokens"], 2_500_100);
    assert_eq!(v["customers"][0]["api_total"]["cost_usd"], "12.50025");
    assert_eq!(v["period"]["start"], "2026-11-01T00:00:00Z");
}

#[test]
fn a_lost_sample_and_an_interval_split_at_the_range_edge() {
    let env = setup();
    // [23:55, 00:05): half of [23:50, 00:00] (1,000,000 B of 2,000,000) and
    // all of [00:00, 00:05] (1,000,000 B): 2.0 MB in. Out: 100,000 + 100,000.
    let o = env.run(
        "mb-report",
        &[
            "--since",
            "2026-11-30T23:55:00Z",
            "--until",
            "2026-12-01T00:05:00Z",
            "--customer",
            "acme",
            "--json",
        ],
        "",
    );
    assert_code(&o, 0);
    let r = &json(&o)["customers"][0]["resource"];
    assert_eq!(r["total_network_in_mb"], 2.0);
    assert_eq!(r["total_network_out_mb"], 0.2);
    // busy (200/2 + 100) / total (2000/2 + 1000) = 10 %.
    assert_eq!(r["avg_cpu_percent"], 10.0);
    // Covered: the whole 10 minutes of the range, one VM.
    assert_eq!(r["coverage_percent"], 100.0);
}

#[test]
fn months_follow_the_zone_including_dst() {
    let env = setup();
    let tokens = |args: &[&str]| -> serde_json::Value {
        let mut a = vec!["--customer", "acme", "--json"];
        a.extend_from_slice(args);
        let o = env.run("mb-report", &a, "");
        assert_code(&o, 0);
        json(&o)["customers"][0]["api_total"]["total_tokens"].clone()
    };
    // UTC October: a3 (2026-10-31T23:30Z, 200) + a4 (22:30Z, 300).
    assert_eq!(tokens(&["--month", "2026-10"]), 500);
    // Prague October is [2026-09-30T22:00Z, 2026-10-31T23:00Z) (CEST -> CET):
    // a5 (2026-09-30T22:30Z, 400) + a4 (300); a3 is Nov 1 00:30 local.
    assert_eq!(
        tokens(&["--month", "2026-10", "--tz", "Europe/Prague"]),
        700
    );
    // Prague November [2026-10-31T23:00Z, 2026-11-30T23:00Z): a3 + a1; a2 is
    // Dec 1 00:30 local.
    assert_eq!(
        tokens(&["--month", "2026-11", "--tz", "Europe/Prague"]),
        2_500_200
    );
    let o = env.run(
        "mb-report",
        &["--month", "2026-10", "--tz", "Europe/Prague", "--json"],
        "",
    );
    let p = &json(&o)["period"];
    assert_eq!(p["start"], "2026-09-30T22:00:00Z");
    assert_eq!(p["end"], "2026-10-31T23:00:00Z");
    assert_eq!(p["tz"], "Europe/Prague");
}

#[test]
fn invoice_lines_with_hand_computed_cents() {
    let env = setup();
    let o = env.run(
        "mb-report",
        &[
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--csv",
        ],
        "",
    );
    assert_code(&o, 0);
    golden("report/invoice-2026-11.csv", &stdout(&o));
    let mut rdr = csv::Reader::from_reader(o.stdout.as_slice());
    let head: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        head.join(","),
        "customer_id,stripe_customer_id,period_start,period_end,line,description,quantity,unit,currency,\
         amount_minor,amount_unrounded,tokens,cost_usd,markup,fx_rate,idempotency_key,fx_source,fx_date"
    );
    let rows: Vec<Vec<String>> = rdr
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let pick = |c: &str, line: &str| -> Vec<Vec<String>> {
        rows.iter()
            .filter(|r| r[0] == c && r[4] == line)
            .cloned()
            .collect()
    };
    // acme: pro all month = 499.00.
    assert_eq!(pick("acme", "base")[0][9], "49900");
    // acme overage: T = 2,500,100 > 1,000,000; USD 12.50025 x 1,500,100 /
    // 2,500,100 x 1.2 x 0.92 = EUR 8.28038639... -> 828 cents.
    let ov = &pick("acme", "llm_overage")[0];
    assert_eq!(
        (
            ov[9].as_str(),
            ov[10].as_str(),
            ov[11].as_str(),
            ov[12].as_str()
        ),
        ("828", "828.038640", "2500100", "12.50025")
    );
    assert_eq!(
        (
            ov[6].as_str(),
            ov[7].as_str(),
            ov[13].as_str(),
            ov[14].as_str()
        ),
        ("1500100", "token", "0.2", "0.92")
    );
    assert_eq!(ov[15], "mb-2026-11-acme-llm_overage");
    // globex: starter Nov 1-15 = 299.00 x 15/30 = 149.50; pro Nov 16-30 =
    // 499.00 x 15/30 = 249.50; exactly 1,000,000 tokens: no overage.
    let g = pick("globex", "base");
    assert_eq!(
        g.iter().map(|r| r[9].as_str()).collect::<Vec<_>>(),
        ["14950", "24950"]
    );
    assert!(pick("globex", "llm_overage").is_empty());
    // initech: enterprise Nov 1-20, suspended from the 21st: 833.00 x 20/30
    // = 555.3333 -> 55533; 999,999 tokens: no overage.
    let i = pick("initech", "base");
    assert_eq!(
        (
            i.len(),
            i[0][9].as_str(),
            i[0][10].as_str(),
            i[0][6].as_str()
        ),
        (1, "55533", "55533.333333", "20")
    );
    assert!(pick("initech", "llm_overage").is_empty());
    // The same run again is byte-identical (deterministic keys and order).
    let again = env.run(
        "mb-report",
        &[
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--csv",
        ],
        "",
    );
    assert_eq!(again.stdout, o.stdout);
}

#[test]
fn invoice_rate_comes_from_the_flag_or_the_config_never_a_guess() {
    let env = setup();
    let o = env.run("mb-report", &["invoice", "--month", "2026-11", "--csv"], "");
    assert_code(&o, 2);
    assert_eq!(stdout(&o), "", "nothing half-written for the upload job");
    assert_eq!(
        stderr(&o),
        "mb-report: customer acme has LLM usage above the allowance in 2026-11 and no USD->EUR rate: \
         pass --usd-eur RATE or set billing.usd_eur in mb.toml\n"
    );
    let cfg = env.write(
        "mb.toml",
        "[billing]\nusd_eur = \"0.92\"\nusd_eur_source = \"ECB reference rate\"\nusd_eur_date = \"2026-11-30\"\n",
    );
    let o = env.run(
        "mb-report",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "invoice",
            "--month",
            "2026-11",
            "--json",
        ],
        "",
    );
    assert_code(&o, 0);
    let v = json(&o);
    assert_eq!(
        v["fx"],
        serde_json::json!({"rate": "0.92", "source": "ECB reference rate", "date": "2026-11-30"})
    );
    // The customer reads the description; the rate and its source are
    // audit fields beside it, never on the invoice (issue 14).
    let l = &v["lines"][1];
    assert_eq!(
        l["description"],
        "LLM usage above 1,000,000 included tokens: 1,500,100 of 2,500,100 tokens billed pro rata"
    );
    assert_eq!(
        (&l["fx_rate"], &l["fx_source"], &l["fx_date"], &l["markup"]),
        (
            &serde_json::json!("0.92"),
            &serde_json::json!("ECB reference rate"),
            &serde_json::json!("2026-11-30"),
            &serde_json::json!("0.2")
        )
    );
    assert_eq!(v["total_minor"], 49900 + 828 + 14950 + 24950 + 55533);
    // A customer below the allowance needs no rate at all.
    let o = env.run(
        "mb-report",
        &[
            "invoice",
            "--month",
            "2026-11",
            "--customer",
            "globex",
            "--csv",
        ],
        "",
    );
    assert_code(&o, 0);
}

#[test]
fn unpriced_and_unregistered_usage_fail_the_invoice_unless_allowed() {
    let env = setup();
    let line = r#"{"v":1,"kind":"api","id":"u1","ts":"2026-11-20T10:00:00Z","customer_id":"umbrella","vm_id":"vm-u","provider":"openrouter","model":"mystery-9","price_key":null,"tokens_in":5,"tokens_out":5,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":null,"priced":false}"#;
    assert_code(&env.run("mb-ingest", &["-q"], &format!("{line}\n")), 0);
    let o = env.run(
        "mb-report",
        &[
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--csv",
        ],
        "",
    );
    assert_code(&o, 2);
    assert_eq!(
        stderr(&o),
        "mb-report: usage of unregistered customers in 2026-11: umbrella (register them with mb-customer add); \
         or pass --allow-unregistered to invoice the others\n"
    );
    let o = env.run(
        "mb-report",
        &[
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--csv",
            "--allow-unregistered",
        ],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o)
            .contains("unpriced API usage in 2026-11: umbrella openrouter/mystery-9 (1 requests)"),
        "{}",
        stderr(&o)
    );
    let o = env.run(
        "mb-report",
        &[
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--csv",
            "--allow-unregistered",
            "--allow-unpriced",
        ],
        "",
    );
    assert_code(&o, 1);
    assert_eq!(
        stdout(&o).lines().count(),
        1 + 5,
        "the five lines of the registered customers"
    );
    // The summary flags both, exit 1.
    let o = env.run(
        "mb-report",
        &["--month", "2026-11", "--customer", "umbrella"],
        "",
    );
    assert_code(&o, 1);
    assert!(stderr(&o).contains("umbrella: 1 requests of openrouter/mystery-9 have no price"));
    assert!(stderr(&o).contains("umbrella: usage of a customer that is not registered"));
}

#[test]
fn as_of_hides_late_events_and_reruns_are_byte_identical() {
    let env = setup();
    let args = [
        "--month",
        "2026-11",
        "--customer",
        "globex",
        "--csv",
        "--as-of",
        "2026-12-02T12:30:00Z",
    ];
    let before = env.run("mb-report", &args, "");
    assert_code(&before, 0);
    // A late event for November arrives in the same ingest hour, after the
    // cutoff, and another an hour later.
    let late = |id: &str| {
        format!(
            r#"{{"v":1,"kind":"api","id":"{id}","ts":"2026-11-12T10:00:00Z","customer_id":"globex","vm_id":"vm-g1","provider":"google","model":"gemini-2.5-pro","price_key":"gemini-2.5-pro","tokens_in":5,"tokens_out":0,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":"0.1","priced":true,"price_table":"test-2026-11"}}"#
        ) + "\n"
    };
    let o = env.run_at("mb-ingest", "2026-12-02T12:45:00Z", &["-q"], &late("late1"));
    assert_code(&o, 0);
    let o = env.run_at("mb-ingest", "2026-12-02T13:10:00Z", &["-q"], &late("late2"));
    assert_code(&o, 0);
    let after = env.run("mb-report", &args, "");
    assert_eq!(stdout(&after), stdout(&before));
    assert!(stdout(&before).contains("google,gemini-2.5-pro,600000,400000,1000000,3.0000,0,0"));
    assert!(stdout(&before).starts_with("Report Type,Generated At,Customer ID,Period,Period Start,Period End,Time Zone,As Of,Price Tables,Units,Tier,Status,Inactive Requests,Inactive Tokens,Inactive Cost USD,Inactive Activity Events,Inactive Resource Samples\nusage_report,2026-12-02T12:30:00Z,globex,month,"));
    // Without the cutoff both late events count; with a cutoff between them one.
    let now = env.run(
        "mb-report",
        &["--month", "2026-11", "--customer", "globex", "--json"],
        "",
    );
    assert_eq!(
        json(&now)["customers"][0]["api_total"]["total_tokens"],
        1_000_010
    );
    let mid = env.run(
        "mb-report",
        &[
            "--month",
            "2026-11",
            "--customer",
            "globex",
            "--json",
            "--as-of",
            "2026-12-02T13:00:00Z",
        ],
        "",
    );
    assert_eq!(
        json(&mid)["customers"][0]["api_total"]["total_tokens"],
        1_000_005
    );
    // The invoice honours it too: with late1 globex is above the allowance.
    let o = env.run(
        "mb-report",
        &[
            "invoice",
            "--month",
            "2026-11",
            "--customer",
            "globex",
            "--csv",
            "--as-of",
            "2026-12-02T12:30:00Z",
        ],
        "",
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o).lines().count(),
        3,
        "no overage line before the late events"
    );
}

#[test]
fn iso_week_53() {
    let env = Env::new();
    let ev = |id: &str, ts: &str| {
        format!(
            r#"{{"v":1,"kind":"activity","id":"{id}","ts":"{ts}","customer_id":"acme","vm_id":"vm-1","activity_type":"command","duration_seconds":1}}"#
        ) + "\n"
    };
    let input = [
        ev("w52", "2026-12-27T23:59:59Z"),
        ev("w53a", "2026-12-28T00:00:00Z"),
        ev("w53b", "2027-01-03T23:59:59Z"),
        ev("w01", "2027-01-04T00:00:00Z"),
    ]
    .concat();
    let o = env.run_at("mb-ingest", "2027-01-10T00:00:00Z", &["-q"], &input);
    assert_code(&o, 0);
    let o = env
        .cmd("mb-report")
        .env("MB_NOW", "2027-01-10T00:00:00Z")
        .args(["--period", "week", "--date", "2026-12-31", "--json"])
        .output()
        .unwrap();
    // Exit 1: acme is not registered, which the report flags.
    assert_code(&o, 1);
    let v = json(&o);
    assert_eq!(v["period"]["label"], "2026-W53");
    assert_eq!(v["customers"][0]["activity"][0]["count"], 2);
}

#[test]
fn series_is_one_tidy_table() {
    let env = setup();
    let o = env.run(
        "mb-report",
        &[
            "series", "--month", "2026-11", "--by", "week", "--metric", "tokens", "--metric",
            "cost_usd", "--csv",
        ],
        "",
    );
    assert_code(&o, 0);
    golden("report/series-week.csv", &stdout(&o));
    let o = env.run(
        "mb-report",
        &[
            "series",
            "--since",
            "2026-11-30T23:00:00Z",
            "--until",
            "2026-12-01T01:00:00Z",
            "--by",
            "hour",
            "--customer",
            "acme",
            "--metric",
            "net_in_mb",
        ],
        "",
    );
    assert_code(&o, 0);
    // 23:00-00:00: 1.0 + 2.0 MB; 00:00-01:00: 1.0 MB.
    assert_eq!(
        stdout(&o),
        "BUCKET            CUSTOMER  METRIC     VALUE\n\
         2026-11-30 23:00  acme      net_in_mb    3.0\n\
         2026-12-01 00:00  acme      net_in_mb    1.0\n"
    );
}

#[test]
fn invoice_in_a_zero_decimal_currency_and_fx_dates_far_from_the_month() {
    let env = setup();
    // JPY has no minor unit: a 4,990 yen plan is amount 4990, not 499000.
    let cfg = env.write(
        "jpy.toml",
        "[billing]\ncurrency = \"JPY\"\n[plans]\nstarter = \"2990\"\npro = \"4990\"\nenterprise = \"8330\"\n",
    );
    let o = env.run(
        "mb-report",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "150",
            "--usd-eur-date",
            "2026-11-30",
            "--json",
        ],
        "",
    );
    assert_code(&o, 0);
    let v = json(&o);
    let amounts: Vec<(String, i64)> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["description"].as_str().unwrap().to_string(),
                l["amount_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        amounts[0],
        (
            "pro plan 4990 JPY/month, 2026-11-01 to 2026-11-30: 30 of 30 days".to_string(),
            4990
        )
    );
    // Overage: USD 12.50025 x 1,500,100 / 2,500,100 x 1.2 x 150 = 1350.06...
    // yen -> 1350.
    assert_eq!(amounts[1].1, 1350);
    // globex 4990 x 15/30 = 2495; starter 2990 x 15/30 = 1495.
    assert_eq!(amounts[2].1, 1495);
    assert_eq!(amounts[3].1, 2495);
    // A three-decimal currency is refused with the reason.
    let kwd = env.write(
        "kwd.toml",
        "[billing]\ncurrency = \"KWD\"\n[plans]\npro = \"10\"\n",
    );
    let o = env.run(
        "mb-report",
        &[
            "--config",
            kwd.to_str().unwrap(),
            "invoice",
            "--month",
            "2026-11",
        ],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("KWD has three decimals"),
        "{}",
        stderr(&o)
    );
    // A non-EUR currency without its own plans: refused, not billed in euros.
    let usd = env.write("usd.toml", "[billing]\ncurrency = \"USD\"\n");
    let o = env.run(
        "mb-report",
        &[
            "--config",
            usd.to_str().unwrap(),
            "invoice",
            "--month",
            "2026-11",
        ],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("the built-in plans are EUR prices"),
        "{}",
        stderr(&o)
    );

    // A 2024 rate on a 2026 invoice: billed, but warned (exit 1).
    let o = env.run(
        "mb-report",
        &[
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--usd-eur-source",
            "ECB",
            "--usd-eur-date",
            "2024-03-01",
        ],
        "",
    );
    assert_code(&o, 1);
    assert_eq!(
        stderr(&o),
        "mb-report: the USD rate 0.92 (ECB) is dated 2024-03-01, 975 days from 2026-11 \
         (2026-11-01 to 2026-11-30); check --usd-eur-date or billing.usd_eur_date, or pass a \
         current --usd-eur\n"
    );
    let text = stdout(&o);
    assert!(
        text.starts_with(
            "Invoice month 2026-11: 2026-11-01 to 2026-11-30, UTC; amounts in EUR, rounded\n    \
             once per line half-up to the minor unit; USD costs converted at 0.92 EUR/USD\n    \
             (ECB, 2024-03-01)\n"
        ),
        "{text}"
    );
    // An undated rate from the config is warned about too.
    let cfg = env.write("undated.toml", "[billing]\nusd_eur = \"0.92\"\n");
    let o = env.run(
        "mb-report",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "invoice",
            "--month",
            "2026-11",
            "--csv",
        ],
        "",
    );
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("has no date (got \"undated\")"),
        "{}",
        stderr(&o)
    );
    // No overage customer: nothing to convert, and the header says so.
    let o = env.run(
        "mb-report",
        &["invoice", "--month", "2026-11", "--customer", "globex"],
        "",
    );
    assert_code(&o, 0);
    assert!(
        stdout(&o)
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("; no USD costs to convert"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn stripe_meter_csv() {
    let env = setup();
    // After the month (the monthly job's time): every day with usage, each
    // identifier within Stripe's 100 characters (mb-DAY-CUSTOMER-8 hex of
    // sha256("llm_tokens")), each day as its last second.
    let o = env.run_at(
        "mb-report",
        "2026-12-01T03:00:00Z",
        &[
            "stripe-meter",
            "--month",
            "2026-11",
            "--event-name",
            "llm_tokens",
        ],
        "",
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "identifier,timestamp,event_name,payload_stripe_customer_id,payload_value\n\
         mb-2026-11-02-acme-29eef870,1793663999,llm_tokens,cus_ACME,2500000\n\
         mb-2026-11-05-initech-29eef870,1793923199,llm_tokens,cus_INI,999999\n\
         mb-2026-11-10-globex-29eef870,1794355199,llm_tokens,cus_GLOBEX,1000000\n\
         mb-2026-11-30-acme-29eef870,1796083199,llm_tokens,cus_ACME,100\n"
    );
    // On the 30th itself: it has not ended, so its event would be in the
    // future; left out, named, exit 1.
    let o = env.run_at(
        "mb-report",
        "2026-11-30T12:00:00Z",
        &[
            "stripe-meter",
            "--month",
            "2026-11",
            "--event-name",
            "llm_tokens",
        ],
        "",
    );
    assert_code(&o, 1);
    assert_eq!(stdout(&o).lines().count(), 4);
    assert_eq!(
        stderr(&o),
        "mb-report: 2026-11-30 left out: it has not ended yet: its event would be dated \
         2026-11-30T23:59:59Z, in the future, and Stripe accepts at most 5 minutes ahead; \
         upload it after the day\n"
    );
    // 35 days late: the 2nd is outside Stripe's window (with an hour's
    // margin), named; the later days are still sent. As JSON too.
    let o = env.run_at(
        "mb-report",
        "2026-12-07T23:30:00Z",
        &[
            "stripe-meter",
            "--month",
            "2026-11",
            "--event-name",
            "llm_tokens",
            "--json",
        ],
        "",
    );
    assert_code(&o, 1);
    let v = json(&o);
    assert_eq!(v["report_type"], "stripe_meter");
    let ids: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["identifier"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "mb-2026-11-05-initech-29eef870",
            "mb-2026-11-10-globex-29eef870",
            "mb-2026-11-30-acme-29eef870"
        ]
    );
    assert_eq!(v["left_out"][0]["day"], "2026-11-02");
    assert!(stderr(&o).starts_with(
        "mb-report: 2026-11-02 left out: it is older than Stripe's 35-day window for meter events"
    ));
    // The longest customer id and event name still fit in 100 characters.
    let long_event = "e".repeat(100);
    let o = env.run_at(
        "mb-report",
        "2026-12-01T03:00:00Z",
        &[
            "stripe-meter",
            "--month",
            "2026-11",
            "--event-name",
            &long_event,
        ],
        "",
    );
    assert_code(&o, 0);
    for l in stdout(&o).lines().skip(1) {
        assert!(l.split(',').next().unwrap().len() <= 100, "{l}");
    }
}

#[test]
fn events_round_trip_into_another_database() {
    let env = setup();
    let o = env.run("mb-report", &["events"], "");
    assert_code(&o, 0);
    let lines = stdout(&o);
    assert_eq!(lines.lines().count(), 15);
    let central = env.path("central.db");
    let o = env.run("mb-ingest", &["--db", central.to_str().unwrap()], &lines);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 15, inserted 15, duplicates 0, conflicts 0, rejected 0\n"
    );
    // Pulling again is all duplicates.
    let o = env.run("mb-ingest", &["--db", central.to_str().unwrap()], &lines);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 15, inserted 0, duplicates 15, conflicts 0, rejected 0\n"
    );
    let o = env.run(
        "mb-report",
        &["events", "--since", "2026-11-30", "--kind", "resource"],
        "",
    );
    assert_eq!(stdout(&o).lines().count(), 4);
    let o = env.run(
        "mb-report",
        &["events", "--kind", "api", "--customer", "globex"],
        "",
    );
    assert_eq!(stdout(&o).lines().count(), 1);
}

#[test]
fn csv_text_cells_are_neutralised() {
    let env = Env::at("2026-12-02T12:00:00Z");
    let line = r#"{"v":1,"kind":"api","id":"f1","ts":"2026-11-20T10:00:00Z","customer_id":"acme","vm_id":"vm-u","provider":"=cmd","model":"@SUM(A1)","price_key":null,"tokens_in":5,"tokens_out":5,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":"1","priced":true}"#;
    assert_code(&env.run("mb-ingest", &["-q"], &format!("{line}\n")), 0);
    let o = env.run("mb-report", &["--month", "2026-11", "--csv"], "");
    assert!(
        stdout(&o).contains("\n'=cmd,'@SUM(A1),5,5,10,1.0000,0,0,1\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_arguments_and_missing_database() {
    let env = Env::new();
    let o = env.run("mb-report", &[], "");
    assert_code(&o, 2);
    assert!(stderr(&o).contains("no database here"), "{}", stderr(&o));
    let env = setup();
    for (args, needle) in [
        (
            &["--tz", "Mars/Base"][..],
            "--tz \"Mars/Base\": not an IANA zone",
        ),
        (
            &["--month", "2026-13"],
            "--month \"2026-13\": expected YYYY-MM",
        ),
        (&["--until", "2026-11-01"], "--since"),
        (
            &["--since", "2026-11-02", "--until", "2026-11-01"],
            "is not after --since",
        ),
        (&["--period", "week", "--date", "soon"], "--date \"soon\""),
        (&["--as-of", "yesterday"], "--as-of \"yesterday\""),
        (&["--customer", "a b"], "--customer \"a b\""),
        (&["invoice"], "--month"),
        (
            &["invoice", "--month", "2026-11", "--usd-eur", "-1"],
            "--usd-eur \"-1\"",
        ),
        (&["series", "--metric", "bogus"], "invalid value 'bogus'"),
    ] {
        let o = env.run("mb-report", args, "");
        assert_code(&o, 2);
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let env = setup();
    let mut c = env.cmd("mb-report");
    c.args(["events"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
}

/// `--as-of` at many cutoffs over many small ingests (crossing ingest
/// hours) equals summing the stored rows ingested up to the cutoff: the
/// rollup plus the rowid search for the cutoff's own hour miss nothing and
/// subtract nothing twice.
#[test]
fn as_of_matches_the_rows_ingested_by_then() {
    let env = Env::new();
    for i in 0..30u32 {
        let line = format!(
            r#"{{"v":1,"kind":"api","id":"a{i}","ts":"2026-11-{:02}T{:02}:17:00Z","customer_id":"acme","vm_id":"vm-1","provider":"openai","model":"gpt-4o","price_key":null,"tokens_in":{},"tokens_out":0,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":null,"priced":false,"price_table":null}}"#,
            3 + i % 20,
            (i * 7) % 24,
            1u64 << i
        );
        let now = format!("2026-12-01T{:02}:{:02}:00Z", 10 + i / 6, (i % 6) * 11);
        assert_code(
            &env.run_at("mb-ingest", &now, &["-q"], &format!("{line}\n")),
            0,
        );
    }
    for cutoff in [
        "2026-12-01T09:59:00.000000Z",
        "2026-12-01T10:00:00.000000Z",
        "2026-12-01T10:22:00.000000Z",
        "2026-12-01T10:22:00.000001Z",
        "2026-12-01T11:30:00.000000Z",
        "2026-12-01T12:54:59.000000Z",
        "2026-12-01T13:00:00.000000Z",
        "2026-12-01T14:44:00.000000Z",
        "2026-12-01T15:00:00.000000Z",
    ] {
        let o = env.run_at(
            "mb-report",
            "2026-12-02T00:00:00Z",
            &["--month", "2026-11", "--json", "--as-of", cutoff],
            "",
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let want: u64 = env.query(&format!(
            "SELECT coalesce(sum(tokens_in), 0) FROM api_usage WHERE ingested_at <= '{cutoff}'"
        ))[0]
            .parse()
            .unwrap();
        let got = v["customers"]
            .as_array()
            .unwrap()
            .first()
            .map_or(0, |c| c["api_total"]["total_tokens"].as_u64().unwrap());
        assert_eq!(got, want, "as of {cutoff}");
    }
}

/// A resource sample that arrives after an `--as-of` cutoff changes
/// neither the samples of the period nor the neighbours just outside it
/// (found by rowid, see store::report) of a report with that cutoff.
#[test]
fn as_of_hides_late_resource_samples() {
    let env = setup();
    let with_cutoff = [
        "--month",
        "2026-11",
        "--customer",
        "acme",
        "--csv",
        "--as-of",
        "2026-12-02T12:30:00Z",
    ];
    let plain = ["--month", "2026-11", "--customer", "acme", "--csv"];
    let before = env.run("mb-report", &with_cutoff, "");
    assert_code(&before, 0);
    let plain_before = env.run("mb-report", &plain, "");
    // One sample inside November (between the boot's samples) and one just
    // after it (a neighbour of the period's end), ingested after the cutoff.
    let sample = |id: &str, ts: &str, mem: f64, cum: u64| {
        format!(
            r#"{{"v":1,"kind":"resource","id":"{id}","ts":"{ts}","customer_id":"acme","vm_id":"vm-a1","interval_seconds":300.0,"status":"ok","flags":[],"boot_id":"b1","seq":9,"cpu_percent":null,"cpu_busy_ticks":null,"cpu_total_ticks":null,"ncpu":2,"clk_tck":100,"memory_percent":{mem},"memory_used_bytes":null,"memory_total_bytes":8000000000,"disk_used_bytes":39000000000,"disk_total_bytes":40000000000,"net_in_bytes":null,"net_out_bytes":null,"cpu_busy_ticks_cum":{cum},"cpu_total_ticks_cum":{},"net_in_bytes_cum":{},"net_out_bytes_cum":{},"errors":[]}}"#,
            cum * 10,
            cum * 10_000,
            cum * 1_000
        ) + "\n"
    };
    let late = sample("vm-a1:b1:late1", "2026-11-30T23:52:30Z", 99.0, 150)
        + &sample("vm-a1:b1:late2", "2026-12-01T00:02:30Z", 98.0, 350);
    let o = env.run_at("mb-ingest", "2026-12-02T12:45:00Z", &["-q"], &late);
    assert_code(&o, 0);
    let after = env.run("mb-report", &with_cutoff, "");
    assert_eq!(stdout(&after), stdout(&before));
    let plain_after = env.run("mb-report", &plain, "");
    assert_ne!(stdout(&plain_after), stdout(&plain_before));
}

/// One api event for `customer` at `ts`, 10 tokens, USD 0.1.
fn api_line(id: &str, ts: &str, customer: &str) -> String {
    format!(
        r#"{{"v":1,"kind":"api","id":"{id}","ts":"{ts}","customer_id":"{customer}","vm_id":"vm-x","provider":"openai","model":"gpt-4o","price_key":"gpt-4o","tokens_in":10,"tokens_out":0,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":"0.1","priced":true,"price_table":"test-2026-11"}}"#
    ) + "\n"
}

#[test]
fn tier_status_and_usage_while_suspended() {
    let env = setup();
    // initech is suspended from 2026-11-21; this request came after.
    let o = env.run(
        "mb-ingest",
        &["-q"],
        &api_line("late-i", "2026-11-25T10:00:00Z", "initech"),
    );
    assert_code(&o, 0);
    let args = ["--month", "2026-11", "--customer", "initech"];
    let o = env.run("mb-report", &args, "");
    assert_code(&o, 1);
    assert_eq!(
        stderr(&o),
        "mb-report: initech: usage recorded while suspended (2026-11-21 00:00 UTC to \
         2026-12-01 00:00 UTC): 1 requests, 0 activity events, 0 resource samples\n"
    );
    let out = stdout(&o);
    assert!(
        out.contains("\nCustomer initech  tier enterprise, suspended  [prices: test-2026-11]\n  Changes in the period: status suspended from 2026-11-21 00:00\n  ! Usage while suspended, 2026-11-21 00:00 to 2026-12-01 00:00: 1 request,\n      10 tokens, USD 0.1000; 0 activity events; 0 resource samples\n"),
        "{out}"
    );
    // Active customers say so; the CSV header block and JSON carry it too.
    let o = env.run("mb-report", &["--month", "2026-11"], "");
    assert!(stdout(&o).contains("\nCustomer acme  tier pro, active  [prices: test-2026-11]\n"));
    let mut csv = args.to_vec();
    csv.push("--csv");
    let o = env.run("mb-report", &csv, "");
    assert_code(&o, 1);
    assert!(stdout(&o).contains(
        ",USD exact sums shown to 4 decimals; GB=10^9 B; MB=10^6 B,enterprise,suspended,1,10,0.1000,0,0\n"
    ));
    let mut js = args.to_vec();
    js.push("--json");
    let v = json(&env.run("mb-report", &js, ""));
    let c = &v["customers"][0];
    assert_eq!(c["tier"], "enterprise");
    assert_eq!(c["status"], "suspended");
    assert_eq!(c["status_at"], "2026-12-01T00:00:00Z");
    assert_eq!(c["changes"][0]["effective"], "2026-11-21T00:00:00Z");
    let u = &c["inactive_usage"][0];
    assert_eq!(u["status"], "suspended");
    assert_eq!(u["start"], "2026-11-21T00:00:00Z");
    assert_eq!(u["end"], "2026-12-01T00:00:00Z");
    assert_eq!(u["api"]["requests"], 1);
    assert_eq!(u["api"]["total_tokens"], 10);
    assert_eq!(u["api"]["cost_nusd"], "100000000");
    // Before the suspension nothing is flagged.
    let o = env.run(
        "mb-report",
        &[
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-21",
            "--customer",
            "initech",
        ],
        "",
    );
    assert_code(&o, 0);
    assert!(!stdout(&o).contains("Usage while"));
}

#[test]
fn a_typo_is_not_a_new_customer() {
    let env = setup();
    for args in [
        &["--customer", "acmee"][..],
        &["invoice", "--month", "2026-11", "--customer", "acmee"],
        &["series", "--customer", "acmee"],
    ] {
        let o = env.run("mb-report", args, "");
        assert_code(&o, 2);
        assert_eq!(
            stderr(&o),
            "mb-report: no customer and no usage named acmee; did you mean acme?\n",
            "{args:?}"
        );
        assert_eq!(stdout(&o), "");
    }
    let o = env.run("mb-report", &["--customer", "zzzzzz"], "");
    assert_code(&o, 2);
    assert!(stderr(&o).contains("no customer and no usage named zzzzzz; see mb-customer list"));
    // A registered customer without usage in the period is not a typo, and
    // neither is an unregistered one with usage.
    let o = env.run(
        "mb-report",
        &["--month", "2026-10", "--customer", "globex"],
        "",
    );
    assert_code(&o, 0);
    let o = env.run(
        "mb-ingest",
        &["-q"],
        &api_line("u1", "2026-11-05T10:00:00Z", "newco"),
    );
    assert_code(&o, 0);
    let o = env.run(
        "mb-report",
        &["--month", "2026-11", "--customer", "newco"],
        "",
    );
    assert_code(&o, 1);
    assert!(stdout(&o).contains("Customer newco (not registered)"));
}

#[test]
fn dates_as_people_type_them() {
    let env = setup();
    let o = env.run(
        "mb-report",
        &["--month", "2026-11", "--tz", "Europe/Prague"],
        "",
    );
    assert_code(&o, 0);
    assert!(
        stdout(&o).starts_with(
            "Usage month 2026-11: 2026-11-01 to 2026-11-30, Europe/Prague (+01:00)\n\
         UTC 2026-10-31T23:00:00Z to 2026-11-30T23:00:00Z\n\
         Generated 2026-12-02 13:00 CET; all ingested events.\n"
        ),
        "{}",
        stdout(&o)
    );
    // The same month read as a local-time range: said once, local.
    let o = env.run(
        "mb-report",
        &[
            "--since",
            "2026-11-10T00:00",
            "--until",
            "2026-11-20 12:30",
            "--tz",
            "Europe/Prague",
        ],
        "",
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.starts_with(
            "Usage 2026-11-10 00:00 to 2026-11-20 12:30, Europe/Prague (+01:00)\n\
         UTC 2026-11-09T23:00:00Z to 2026-11-20T11:30:00Z\n"
        ),
        "{out}"
    );
    assert!(!out.contains(".."), "the range is not repeated: {out}");
    // --since alone: until now (MB_NOW).
    let v = json(&env.run("mb-report", &["--since", "2026-11-25", "--json"], ""));
    assert_eq!(v["period"]["start"], "2026-11-25T00:00:00Z");
    assert_eq!(v["period"]["end"], "2026-12-02T12:00:00Z");
    // --as-of takes a local date like --since; JSON stays UTC.
    let v = json(&env.run(
        "mb-report",
        &[
            "--month",
            "2026-11",
            "--tz",
            "Europe/Prague",
            "--as-of",
            "2026-12-02",
            "--json",
        ],
        "",
    ));
    assert_eq!(v["as_of"], "2026-12-01T23:00:00Z");
    // A local time the clocks skip does not exist.
    let o = env.run(
        "mb-report",
        &["--since", "2026-03-29T02:30", "--tz", "Europe/Prague"],
        "",
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--since \"2026-03-29T02:30\": not a date"));
    // The invoice header too.
    let o = env.run(
        "mb-report",
        &[
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--tz",
            "Europe/Prague",
        ],
        "",
    );
    assert!(
        stdout(&o).starts_with(
            "Invoice month 2026-11: 2026-11-01 to 2026-11-30, Europe/Prague (+01:00);"
        ),
        "{}",
        stdout(&o)
    );
}

#[test]
fn json_is_exact_and_typed_and_missing_is_missing() {
    let env = setup();
    let v = json(&env.run("mb-report", &["--month", "2026-11", "--json"], ""));
    let acme = &v["customers"][0];
    let r = &acme["resource"];
    // 1,000,000 + 2,000,000 B in; CPU 300 of 3000 ticks (see above).
    assert_eq!(r["net_in_bytes"], 3_000_000.0);
    assert_eq!(r["net_out_bytes"], 300_000.0);
    assert_eq!(r["cpu_busy_ticks"], 300.0);
    assert_eq!(r["cpu_total_ticks"], 3000.0);
    assert_eq!(r["avg_memory_percent_exact"], 160.0 / 3.0);
    assert_eq!(r["total_network_in_mb"], 3.0, "the old field stays");
    assert_eq!(acme["api_total"]["cost_nusd"], "12500250000");
    assert_eq!(acme["api_total"]["cost_usd"], "12.50025");
    // globex has no samples: missing, not 0.
    let g = &v["customers"][1]["resource"];
    assert_eq!(g["total_network_in_mb"], serde_json::Value::Null);
    assert_eq!(g["net_in_bytes"], serde_json::Value::Null);
    assert_eq!(g["cpu_busy_ticks"], serde_json::Value::Null);

    // The invoice JSON is typed, not the CSV as strings.
    let v = json(&env.run(
        "mb-report",
        &[
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--json",
        ],
        "",
    ));
    let lines = v["lines"].as_array().unwrap();
    let base = lines.iter().find(|l| l["line"] == "base").unwrap();
    assert!(base["quantity"].is_i64(), "{base}");
    assert_eq!(base["tokens"], serde_json::Value::Null);
    assert_eq!(base["cost_usd"], serde_json::Value::Null);
    assert_eq!(base["fx_rate"], serde_json::Value::Null);
    assert!(base["amount_minor"].is_i64());
    let over = lines.iter().find(|l| l["line"] == "llm_overage").unwrap();
    assert!(over["tokens"].is_i64(), "{over}");
    assert!(over["quantity"].is_i64());
    assert_eq!(over["fx_rate"], "0.92");
    assert!(over["cost_usd"].is_string());

    // One lone sample: CPU and network are missing in text and CSV too.
    let lone = std::fs::read_to_string(fixture("report/events.jsonl"))
        .unwrap()
        .lines()
        .find(|l| l.contains(r#""id":"vm-a1:b1:1""#))
        .unwrap()
        .replace(r#""customer_id":"acme""#, r#""customer_id":"solo""#)
        .replace(r#""vm_id":"vm-a1""#, r#""vm_id":"vm-s1""#)
        .replace("vm-a1:b1:1", "vm-s1:b1:1");
    assert_code(&env.run("mb-ingest", &["-q"], &(lone + "\n")), 0);
    let o = env.run(
        "mb-report",
        &["--month", "2026-11", "--customer", "solo"],
        "",
    );
    assert!(
        stdout(&o).contains("  Resources: cpu - %, memory 40.0 %, disk 10.0 GB, network in - MB, out - MB;\n      coverage 0.0 % (1 VM, 1 sample)\n"),
        "{}",
        stdout(&o)
    );
    let o = env.run(
        "mb-report",
        &["--month", "2026-11", "--customer", "solo", "--csv"],
        "",
    );
    assert!(stdout(&o).contains("\ntotal_network_in_mb,\ntotal_network_out_mb,\n"));
}

#[test]
fn text_fits_the_terminal_and_colour_only_on_a_tty() {
    let env = setup();
    // Not a terminal: 80 columns, no colour.
    for args in [
        &["--month", "2026-11"][..],
        &["invoice", "--month", "2026-11", "--usd-eur", "0.92"],
    ] {
        let o = env.run("mb-report", args, "");
        let out = stdout(&o);
        for l in out.lines() {
            assert!(l.chars().count() <= 80, "{args:?}: {l:?} is wider than 80");
        }
        assert!(!out.contains('\x1b'), "{out}");
    }
    // The invoice moves its long descriptions under the lines.
    let o = env.run(
        "mb-report",
        &["invoice", "--month", "2026-11", "--usd-eur", "0.92"],
        "",
    );
    assert!(
        stdout(&o).contains("\nCUSTOMER  LINE         AMOUNT EUR\nacme      base             499.00\n    pro plan 499.00 EUR/month, 2026-11-01 to 2026-11-30: 30 of 30 days\n"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("\n    pro plan "), "{}", stdout(&o));
    // A wide terminal (COLUMNS) gets one table per customer and the
    // descriptions inline.
    let o = run_cmd(
        env.cmd("mb-report")
            .env("COLUMNS", "200")
            .args(["--month", "2026-11"]),
        "",
    );
    assert!(stdout(&o).contains(
        "\n  PROVIDER   MODEL              REQUESTS  TOKENS IN  TOKENS OUT  CACHE READ  CACHE WRITE  TOTAL TOKENS  COST USD\n"
    ));
    let o = run_cmd(
        env.cmd("mb-report").env("COLUMNS", "250").args([
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
        ]),
        "",
    );
    assert!(stdout(&o).contains("\nCUSTOMER  LINE         DESCRIPTION"));
    // On a terminal (script(1) gives one): bold headers, unless NO_COLOR.
    let tty = |no_color: bool| {
        let cmdline = format!("{} --month 2026-11", bin_path("mb-report").display());
        // The test's clean environment, for script(1) and its child.
        let base = env.cmd("mb-report");
        let mut c = std::process::Command::new("script");
        c.env_clear().current_dir(env.dir.path());
        for (k, v) in base.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.args(["-qec", &cmdline, "/dev/null"])
            .env("COLUMNS", "100");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        stdout(&run_cmd(&mut c, ""))
    };
    let coloured = tty(false);
    assert!(
        coloured.contains("\x1b[1mCustomer acme\x1b[0m"),
        "{coloured:?}"
    );
    assert!(
        coloured.contains("\x1b[33msuspended\x1b[0m"),
        "{coloured:?}"
    );
    assert!(coloured.contains("daily cost "), "sparklines on a terminal");
    let plain = tty(true);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(plain.contains("Customer acme  tier pro"));
}

#[test]
fn flags_are_refused_at_parse_time_or_work() {
    let env = setup();
    for (args, needle) in [
        (&["events", "--csv"][..], "unexpected argument '--csv'"),
        (&["events", "--json"], "unexpected argument '--json'"),
        (
            &["invoice", "--month", "2026-11", "--vm", "vm-a1"],
            "unexpected argument '--vm'",
        ),
        (
            &["--vm", "vm-a1", "invoice", "--month", "2026-11"],
            "--vm does not apply",
        ),
        (&["--csv", "events"], "--csv and --json do not apply"),
        (&["--csv", "series", "--json"], "exclude each other"),
    ] {
        let o = env.run("mb-report", args, "");
        assert_code(&o, 2);
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    // Global options work after the subcommand, with MB_DB unset.
    let db = env.db.to_str().unwrap().to_string();
    let o = run_cmd(
        env.cmd("mb-report").env_remove("MB_DB").args([
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--csv",
            "--db",
            &db,
            "--tz",
            "UTC",
        ]),
        "",
    );
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with("customer_id,"));
    let o = run_cmd(
        env.cmd("mb-report").env_remove("MB_DB").args([
            "events",
            "--kind",
            "api",
            "--db",
            &db,
            "--customer",
            "globex",
        ]),
        "",
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o).lines().count(), 1);
    // Format and VM before the subcommand apply to it.
    let o = env.run(
        "mb-report",
        &["--json", "series", "--metric", "requests"],
        "",
    );
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with('['));
    // Subcommand help shows the global options.
    for sub in ["invoice", "events", "series", "stripe-meter", "summary"] {
        let o = env.run("mb-report", &[sub, "--help"], "");
        assert_code(&o, 0);
        for flag in ["--db", "--config", "--tz", "--as-of", "--customer"] {
            assert!(stdout(&o).contains(flag), "{sub} --help lacks {flag}");
        }
    }
}

#[test]
fn control_characters_are_escaped_in_text_and_exact_in_json_and_csv() {
    let env = Env::at("2026-12-02T12:00:00Z");
    let f = fixture("report/injection.jsonl");
    // mb-ingest rejects the last line, quoting its customer id escaped.
    let o = env.run("mb-ingest", &[f.to_str().unwrap()], "");
    assert_code(&o, 1);
    assert!(!stderr(&o).contains('\x1b'), "{:?}", stderr(&o));
    assert!(stderr(&o).contains(":4: "), "{}", stderr(&o));
    let o = env.run("mb-report", &["--month", "2026-11"], "");
    let out = stdout(&o);
    for raw in ['\x1b', '\x07', '\u{9b}', '\u{202e}', '\r', '\x08'] {
        assert!(!out.contains(raw), "{raw:?} in {out:?}");
        assert!(!stderr(&o).contains(raw), "{raw:?} in {:?}", stderr(&o));
    }
    assert!(out.contains(r"gpt\e[2J\e]0;pwned\x07-4o"), "{out}");
    assert!(out.contains(r"m\x9b31m\u{202e}od"), "{out}");
    // The newline in the provider does not start a fake customer row.
    assert_eq!(out.matches("\nCustomer ").count(), 1, "{out}");
    assert!(out.contains(r"evil\nCustomer fake  tier pro"), "{out}");
    // JSON and CSV keep the text exact.
    let v = json(&env.run("mb-report", &["--month", "2026-11", "--json"], ""));
    let models: Vec<&str> = v["customers"][0]["api"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert!(
        models.contains(&"gpt\x1b[2J\x1b]0;pwned\x07-4o"),
        "{models:?}"
    );
    let o = env.run("mb-report", &["--month", "2026-11", "--csv"], "");
    assert!(stdout(&o).contains("gpt\x1b[2J\x1b]0;pwned\x07-4o"));
    // The events stay exact for another database.
    let o = env.run("mb-report", &["events", "--kind", "activity"], "");
    assert!(
        stdout(&o).contains(r#""pattern_name":"dep\u001b[31mloy""#),
        "{}",
        stdout(&o)
    );
    // mb-tokens' summary line on stderr (cron mail) is escaped too.
    let t = fixture("report/injection-tokens.jsonl");
    let o = env.run(
        "mb-tokens",
        &["--customer", "acme", "--vm", "vm-1", t.to_str().unwrap()],
        "",
    );
    assert_code(&o, 1);
    assert!(!stderr(&o).contains('\x1b'), "{:?}", stderr(&o));
    assert!(
        stderr(&o).contains(r"unpriced models: evil\e]0;pwned\x07-model (1)"),
        "{}",
        stderr(&o)
    );
    // mb-customer list shows stored text escaped (ids are validated, so
    // this is the last line of defence; a plain list stays plain).
    let o = env.run(
        "mb-customer",
        &["add", "acme", "--tier", "pro", "--effective", "2026-11-01"],
        "",
    );
    assert_code(&o, 0);
    let o = env.run("mb-customer", &["list"], "");
    assert_code(&o, 0);
    assert!(stdout(&o).contains("acme"));
    assert!(!stdout(&o).contains('\x1b'));
}

/// One resource line of VM `vm` (customer acme) at `ts`.
#[allow(clippy::too_many_arguments)]
fn sample(
    vm: &str,
    boot: &str,
    seq: u64,
    ts: &str,
    status: &str,
    interval: &str,
    flags: &str,
    cum: [u64; 4],
    mem: f64,
    disk: u64,
) -> String {
    format!(
        r#"{{"v":1,"kind":"resource","id":"{vm}:{boot}:{seq}","ts":"{ts}","customer_id":"acme","vm_id":"{vm}","interval_seconds":{interval},"status":"{status}","flags":[{flags}],"boot_id":"{boot}","seq":{seq},"cpu_percent":null,"cpu_busy_ticks":null,"cpu_total_ticks":null,"ncpu":2,"clk_tck":100,"memory_percent":{mem},"memory_used_bytes":null,"memory_total_bytes":8000000000,"disk_used_bytes":{disk},"disk_total_bytes":40000000000,"net_in_bytes":null,"net_out_bytes":null,"cpu_busy_ticks_cum":{},"cpu_total_ticks_cum":{},"net_in_bytes_cum":{},"net_out_bytes_cum":{},"errors":[]}}"#,
        cum[0], cum[1], cum[2], cum[3]
    ) + "\n"
}

/// Two VMs of acme, one of them not registered to it: a lost line (a gap),
/// a flagged CPU interval, a reboot and a network counter reset.
fn two_vm_env() -> Env {
    let env = Env::at("2026-12-02T12:00:00Z");
    let ok = "300.0";
    let mut lines = String::new();
    for l in [
        sample(
            "vm-a1",
            "b1",
            1,
            "2026-11-10T10:00:00Z",
            "first",
            "null",
            "",
            [0, 0, 0, 0],
            40.0,
            10_000_000_000,
        ),
        sample(
            "vm-a1",
            "b1",
            2,
            "2026-11-10T10:05:00Z",
            "ok",
            ok,
            "",
            [100, 1000, 1_000_000, 100_000],
            50.0,
            11_000_000_000,
        ),
        // Ticks known to be wrong: left out of CPU, network still counted.
        sample(
            "vm-a1",
            "b1",
            3,
            "2026-11-10T10:10:00Z",
            "ok",
            ok,
            r#""cpu_total_mismatch""#,
            [300, 2000, 2_000_000, 200_000],
            50.0,
            11_000_000_000,
        ),
        // seq 4 never arrived: one gap; the counters still give its usage.
        sample(
            "vm-a1",
            "b1",
            5,
            "2026-11-10T10:20:00Z",
            "ok",
            ok,
            "",
            [400, 4000, 4_000_000, 300_000],
            50.0,
            11_000_000_000,
        ),
        // Rebooted, up 120 s: since-boot counters over [10:23, 10:25].
        sample(
            "vm-a1",
            "b2",
            6,
            "2026-11-10T10:25:00Z",
            "reboot",
            "120.0",
            "",
            [50, 1200, 500_000, 60_000],
            60.0,
            12_000_000_000,
        ),
        sample(
            "vm-x",
            "x1",
            1,
            "2026-11-10T10:00:00Z",
            "first",
            "null",
            "",
            [0, 0, 0, 0],
            30.0,
            5_000_000_000,
        ),
        sample(
            "vm-x",
            "x1",
            2,
            "2026-11-10T10:05:00Z",
            "ok",
            ok,
            "",
            [600, 6000, 9_000_000, 1_000_000],
            30.0,
            5_000_000_000,
        ),
        // rx went back (9 MB -> 3 MB): a reset, counted as 3 MB.
        sample(
            "vm-x",
            "x1",
            3,
            "2026-11-10T10:10:00Z",
            "ok",
            ok,
            "",
            [900, 9000, 3_000_000, 1_200_000],
            30.0,
            5_000_000_000,
        ),
    ] {
        lines.push_str(&l);
    }
    assert_code(&env.run("mb-ingest", &["-q"], &lines), 0);
    assert_code(
        &env.run(
            "mb-customer",
            &[
                "add",
                "acme",
                "--tier",
                "pro",
                "--effective",
                "2026-10-01",
                "--vm",
                "vm-a1",
            ],
            "",
        ),
        0,
    );
    env
}

#[test]
fn by_vm_breaks_usage_down_per_vm_and_flags_unregistered_vms() {
    let env = two_vm_env();
    let o = env.run(
        "mb-report",
        &["--month", "2026-11", "--by-vm", "--json"],
        "",
    );
    // Usage from a VM the registry does not list for acme: warned, exit 1.
    assert_code(&o, 1);
    assert!(stderr(&o).contains("acme: usage from VMs the registry does not list for it: vm-x"));
    let v = json(&o);
    assert_eq!(v["report_type"], "vm_usage");
    let c = &v["customers"][0];
    assert_eq!(c["unregistered_vms"], serde_json::json!(["vm-x"]));
    let a1 = &c["vms"][0];
    assert_eq!(a1["vm_id"], "vm-a1");
    assert_eq!(a1["registered"], true);
    assert_eq!(a1["samples"], 5);
    assert_eq!(a1["last_sample"], "2026-11-10T10:25:00Z");
    // busy 100 + (skipped) + 100 + 50 over total 1000 + 2000 + 1200.
    assert_eq!(a1["busy_ticks"], 250);
    assert_eq!(a1["total_ticks"], 4200);
    assert_eq!(a1["cpu_skipped_intervals"], 1);
    // 1 + 1 + 2 + 0.5 MB in; 0.1 + 0.1 + 0.1 + 0.06 MB out.
    assert_eq!(a1["net_in_bytes"], 4_500_000);
    assert_eq!(a1["net_out_bytes"], 360_000);
    assert_eq!(a1["max_disk_bytes"], 12_000_000_000i64);
    // 50 % for 300 + 300 + 600 s, 60 % for 120 s.
    assert_eq!(a1["avg_memory_percent"], 67_200.0 / 1_320.0);
    assert_eq!(
        (&a1["gaps"], &a1["counter_resets"], &a1["reboots"]),
        (&1.into(), &0.into(), &1.into())
    );
    let x = &c["vms"][1];
    assert_eq!(
        (&x["vm_id"], &x["registered"]),
        (&"vm-x".into(), &false.into())
    );
    assert_eq!(x["net_in_bytes"], 12_000_000);
    assert_eq!(x["counter_resets"], 1);
    assert_eq!(x["avg_cpu_percent"], 10.0);
    let t = &c["total"];
    // Disks add up across VMs: 12 GB + 5 GB.
    assert_eq!(t["disk_bytes"], 17_000_000_000i64);
    assert_eq!(t["samples"], 8);
    assert_eq!(t["net_in_bytes"], 16_500_000);
    assert_eq!(t["avg_cpu_percent"], 1150.0 / 13_200.0 * 100.0);
    assert_eq!(
        (
            &t["gaps"],
            &t["counter_resets"],
            &t["reboots"],
            &t["cpu_skipped_intervals"]
        ),
        (&1.into(), &1.into(), &1.into(), &1.into())
    );

    let o = env.run("mb-report", &["--month", "2026-11", "--by-vm", "--csv"], "");
    assert_code(&o, 1);
    assert_eq!(
        stdout(&o),
        "customer_id,vm_id,registered,samples,last_sample,avg_cpu_percent,avg_memory_percent,max_disk_bytes,net_in_bytes,net_out_bytes,coverage_percent,busy_ticks,total_ticks,cpu_skipped_intervals,gaps,counter_resets,reboots\n\
         acme,vm-a1,true,5,2026-11-10T10:25:00Z,6.0,50.9,12000000000,4500000,360000,0.1,250,4200,1,1,0,1\n\
         acme,vm-x,false,3,2026-11-10T10:10:00Z,10.0,30.0,5000000000,12000000,1200000,0.0,900,9000,0,0,1,0\n"
    );

    let o = env.run(
        "mb-report",
        &["--month", "2026-11", "--by-vm", "--tz", "Asia/Kolkata"],
        "",
    );
    assert_code(&o, 1);
    let text = stdout(&o);
    // Local times in the zone; the unregistered VM marked; the total line
    // sums the disks; on 80 columns the counters' events get a table of
    // their own.
    assert!(
        text.contains(
            "\nCustomer acme\n\
             \x20 VM         SAMPLES  LAST SAMPLE       CPU %  MEM %  DISK GB  IN MB  OUT MB  COVER %\n\
             \x20 vm-a1            5  2026-11-10 15:55    6.0   50.9     12.0    4.5     0.4      0.1\n\
             \x20 vm-x !           3  2026-11-10 15:40   10.0   30.0      5.0   12.0     1.2      0.0\n\
             \x20 total (2)        8                      8.7   44.4     17.0   16.5     1.6      0.0\n\
             \n\
             \x20 VM         GAPS  RESETS  REBOOTS\n\
             \x20 vm-a1         1       0        1\n\
             \x20 vm-x !        0       1        0\n\
             \x20 total (2)     1       1        1\n"
        ),
        "{text}"
    );
    assert!(text.contains("  ! not registered to acme: vm-x (mb-customer set acme --add-vm VM)"));
    assert!(text.contains("  * 1 interval left out of CPU"));

    // The summary says it too.
    let o = env.run("mb-report", &["--month", "2026-11"], "");
    assert_code(&o, 1);
    let text = stdout(&o);
    assert!(
        text.contains("memory 44.4 %, disk 17.0 GB, network in 16.5 MB,\n      out 1.6 MB;"),
        "{text}"
    );
    assert!(text.contains("  ! usage from VMs not registered to acme: vm-x"));
    // --by-vm belongs to the summary.
    assert_code(&env.run("mb-report", &["invoice", "--by-vm"], ""), 2);
}

#[test]
fn a_flagged_last_sample_shows_no_cpu_in_the_fleet_view() {
    // mb-report vms (and the dashboard's /api/v1/vms and /metrics, which
    // share the function) show the last sample's CPU %; when mb-sample
    // flagged its ticks as wrong, that figure is the 100 % the aggregate
    // line gave across a hotplug, so it is shown as missing, as the
    // averages leave it out.
    let env = Env::at("2026-11-10T10:12:00Z");
    let mut lines = String::new();
    for (seq, ts, flags, pct) in [
        (1, "2026-11-10T10:05:00Z", "", "12.5"),
        (
            2,
            "2026-11-10T10:10:00Z",
            r#""cpu_total_mismatch""#,
            "100.0",
        ),
    ] {
        lines.push_str(
            &sample(
                "vm-1",
                "b1",
                seq,
                ts,
                "ok",
                "300.0",
                flags,
                [100 * seq, 1000 * seq, 0, 0],
                50.0,
                1,
            )
            .replace(r#""cpu_percent":null"#, &format!(r#""cpu_percent":{pct}"#)),
        );
    }
    assert_code(&env.run("mb-ingest", &["-q"], &lines), 0);
    let o = env.run("mb-report", &["vms", "--json"], "");
    assert_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["vms"][0]["last_sample"]["ts"], "2026-11-10T10:10:00Z");
    assert_eq!(
        v["vms"][0]["last_sample"]["cpu_percent"],
        serde_json::Value::Null
    );
    assert_eq!(v["vms"][0]["last_sample"]["memory_percent"], 50.0);
}

#[test]
fn vms_refuses_as_of_instead_of_ignoring_it() {
    let env = setup();
    let o = env.run("mb-report", &["vms", "--as-of", "2026-11-20"], "");
    assert_code(&o, 2);
    assert!(
        stderr(&o).starts_with(
            "mb-report: --as-of does not apply to vms; use --until T to measure ages at an earlier time"
        ),
        "{}",
        stderr(&o)
    );
}
