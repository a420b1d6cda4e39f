//! stripe-upload against tests/fixtures/ops/fake_stripe.py, a fake that
//! follows Stripe's documented rules (saved and replayed results, 400 for a
//! reused key, 409 for a concurrent one, 429 with Retry-After, keys pruned
//! after 24 hours, livemode from the key, paginated lists, invoice items,
//! invoices, meter events and their adjustments; each rule cites its doc
//! page in the fixture). Every failure case of issue 14 is a test here,
//! including a kill -9 in the middle of an upload followed by re-runs
//! before and after the idempotency keys expire; and mb-report's side: the
//! invoice's per-segment periods, currencies, FX warnings and the meter
//! events' Stripe limits.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{assert_code, fixture, run_cmd, stderr, stdout, Env};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/stripe-upload.py")
}

/// The fake Stripe server, killed when dropped (and stopping by itself).
pub struct FakeStripe {
    child: Child,
    pub base: String,
    port: u16,
    record: PathBuf,
}

impl FakeStripe {
    pub fn start(env: &Env) -> FakeStripe {
        let record = env.path("stripe-requests.jsonl");
        let port_file = env.path("stripe-port");
        let child = Command::new("python3")
            .arg(fixture("ops/fake_stripe.py"))
            .arg(&record)
            .arg(&port_file)
            .arg("120")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !port_file.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "fake server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let port: u16 = fs::read_to_string(&port_file).unwrap().parse().unwrap();
        FakeStripe {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            record,
        }
    }

    /// Every API request the fake received, in order.
    pub fn requests(&self) -> Vec<Value> {
        fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The POSTs to `path`, as (Idempotency-Key, form).
    fn posts(&self, path: &str) -> Vec<(String, Vec<(String, String)>)> {
        self.requests()
            .iter()
            .filter(|r| r["method"] == "POST" && r["path"] == path)
            .map(|r| {
                (
                    r["idempotency_key"].as_str().unwrap_or("").to_string(),
                    url_decode_form(r["body"].as_str().unwrap()),
                )
            })
            .collect()
    }

    /// One raw HTTP/1.1 request (std only): (status, body as JSON).
    pub fn http(&self, method: &str, path: &str, body: &str, key: Option<&str>) -> (u16, Value) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(k) = key {
            req.push_str(&format!("Authorization: Bearer {k}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status: u16 = resp[9..12].parse().unwrap();
        let (_, b) = resp.split_once("\r\n\r\n").unwrap();
        (status, serde_json::from_str(b).unwrap_or(Value::Null))
    }

    fn rules(&self, rules: Value) {
        assert_eq!(
            self.http("POST", "/_control/rules", &rules.to_string(), None)
                .0,
            200
        );
    }

    fn advance(&self, seconds: i64) {
        let body = format!("{{\"seconds\": {seconds}}}");
        assert_eq!(self.http("POST", "/_control/advance", &body, None).0, 200);
    }

    /// The objects of one account and mode ("acct_1MBTEST/test").
    fn state(&self, scope: &str) -> Value {
        self.http("GET", "/_control/state", "", None).1[scope].clone()
    }

    /// The invoice items of `scope` as (customer, amount, invoice, key).
    fn items(&self, scope: &str) -> Vec<(String, i64, String, String)> {
        self.state(scope)["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|i| {
                (
                    i["customer"].as_str().unwrap().to_string(),
                    i["amount"].as_i64().unwrap(),
                    i["invoice"].as_str().unwrap_or("").to_string(),
                    i["metadata"]["mb_idempotency_key"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn upload_cmd(env: &Env, srv: &FakeStripe, key: Option<&str>) -> Command {
    let mut c = Command::new(script());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("STRIPE_API_BASE", &srv.base)
        .env("MB_STRIPE_LEDGER", env.path("state/ledger.sqlite"))
        .args(["--retry-window", "4"]);
    if let Some(k) = key {
        c.env("STRIPE_API_KEY", k);
    }
    c
}

fn upload(env: &Env, srv: &FakeStripe, input: &Path, extra: &[&str], key: Option<&str>) -> Output {
    run_cmd(upload_cmd(env, srv, key).args(extra).arg(input), "")
}

fn last_line(o: &Output) -> String {
    stderr(o).lines().last().unwrap_or("").to_string()
}

fn ledger(env: &Env, sql: &str) -> Vec<String> {
    crate::util::query(&env.path("state/ledger.sqlite"), sql)
}

/// The good lines of the fixture (acme base and overage, flaky base).
fn good_csv(env: &Env, name: &str, edit: &dyn Fn(&str) -> String) -> PathBuf {
    let text: String = fs::read_to_string(fixture("ops/invoice.csv"))
        .unwrap()
        .lines()
        .take(4)
        .map(|l| format!("{}\n", edit(l)))
        .collect();
    env.write(name, &text)
}

const T: &str = "acct_1MBTEST/test";
const ACME_BASE: &str = "mb-2026-11-acme-base-pro-2026-11-01";
const ACME_OVER: &str = "mb-2026-11-acme-llm_overage";
const FLAKY: &str = "mb-2026-11-flaky-base-starter-2026-11-01";

#[test]
fn invoice_items_go_once_with_their_key_version_and_form() {
    let env = Env::new();
    let srv = FakeStripe::start(&env);
    let input = fixture("ops/invoice.csv");

    // Dry run: the requests, no key needed, nothing sent, no ledger.
    let o = upload(&env, &srv, &input, &["--dry-run"], None);
    assert_code(&o, 1); // three lines refused
    let out = stdout(&o);
    assert_eq!(out.matches("POST ").count(), 3, "{out}");
    assert!(out.contains(&format!("POST {}/v1/invoiceitems\nAuthorization: Bearer ***\nIdempotency-Key: {ACME_BASE}\nStripe-Version: 2026-01-28.clover\n", srv.base)), "{out}");
    let e = stderr(&o);
    for want in [
        "ops/invoice.csv:5: customer 'nostripe' has no stripe_customer_id",
        "invoice.csv:6: currency 'USD' is not the configured EUR",
        "invoice.csv:7: amount_minor '49900.5' is not an integer",
        "read 6, would send 3, refused 3 (dry run: nothing sent)",
    ] {
        assert!(e.contains(want), "{want}: {e}");
    }
    assert!(srv.requests().is_empty());
    assert!(!env.path("state").exists());

    // No key: exit 2 before anything is sent or created (issue 14, point 8).
    let o = upload(&env, &srv, &input, &[], None);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("no Stripe key: set STRIPE_API_KEY"));
    assert!(srv.requests().is_empty());
    assert!(
        !env.path("state").exists(),
        "a run without a key created the ledger"
    );

    // A wrong key: Stripe's 401 is fatal (exit 2), never printed.
    let o = upload(&env, &srv, &input, &[], Some("sk_test_wrong"));
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("Stripe refused the key (HTTP 401"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("sk_test_wrong"));
    assert!(!env.path("state").exists());

    // Plain http to another host would send the key in clear.
    let o = run_cmd(
        upload_cmd(&env, &srv, Some("sk_test_123"))
            .args(["--api-base", "http://api.example.com"])
            .arg(&input),
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("only https, or http to a loopback address"),
        "{}",
        stderr(&o)
    );

    // The real run: 3 items, exit 1 for the 3 refused lines, which the last
    // line lists.
    let o = upload(&env, &srv, &input, &[], Some("sk_test_123"));
    assert_code(&o, 1);
    assert_eq!(
        last_line(&o),
        "stripe-upload: NEEDS ATTENTION: read 6, sent 3, already sent 0, corrected 0, refused 3; \
         test mode, account acct_1MBTEST; 3 need a person: \
         ops/invoice.csv:5, ops/invoice.csv:6, ops/invoice.csv:7"
            .replace("ops/invoice.csv", &input.display().to_string())
    );
    let ids: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids[0].starts_with(&format!("{ACME_BASE}\tii_")) && ids[0].ends_with("\tcreated"));
    let posts = srv.posts("/v1/invoiceitems");
    let keys: Vec<&str> = posts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(keys, [ACME_BASE, ACME_OVER, FLAKY]);
    for r in srv.requests() {
        assert_eq!(r["stripe_version"], "2026-01-28.clover");
    }
    assert_eq!(
        srv.requests()
            .iter()
            .filter(|r| r["authorization"] == "Bearer sk_test_123")
            .count(),
        4,
        "GET /v1/account and the 3 items"
    );
    // The overage's form, field by field. period: 2026-11-01T00:00Z =
    // 1793491200; Stripe's period end is inclusive, so the exclusive end
    // 2026-12-01T00:00Z (1796083200) is sent as 1796083199.
    let f = |k: &str| -> Vec<String> {
        posts[1]
            .1
            .iter()
            .filter(|(a, _)| a == k)
            .map(|(_, b)| b.clone())
            .collect()
    };
    assert_eq!(f("customer"), ["cus_ACME"]);
    assert_eq!(f("amount"), ["828"]);
    assert_eq!(f("currency"), ["eur"]);
    assert_eq!(f("period[start]"), ["1793491200"]);
    assert_eq!(f("period[end]"), ["1796083199"]);
    assert_eq!(f("metadata[mb_idempotency_key]"), [ACME_OVER]);
    assert_eq!(f("metadata[mb_amount_unrounded]"), ["828.038640"]);
    assert_eq!(f("metadata[mb_fx_rate]"), ["0.92"]);
    assert_eq!(f("metadata[mb_version]"), ["1"]);
    assert_eq!(f("metadata[mb_request_hash]")[0].len(), 64);
    // The ledger: scoped by mode and account, amount and hash stored, 0600.
    assert_eq!(
        ledger(
            &env,
            "SELECT mode, account, key, amount, state FROM lines ORDER BY key"
        ),
        [
            format!("test|acct_1MBTEST|{ACME_BASE}|49900|sent"),
            format!("test|acct_1MBTEST|{ACME_OVER}|828|sent"),
            format!("test|acct_1MBTEST|{FLAKY}|14950|sent"),
        ]
    );
    let mode = fs::metadata(env.path("state/ledger.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Re-run of the good lines: a no-op, exit 0.
    let n = srv.requests().len();
    let good = good_csv(&env, "good.csv", &|l| l.to_string());
    let o = upload(&env, &srv, &good, &[], Some("sk_test_123"));
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "");
    assert!(
        last_line(&o).starts_with("stripe-upload: done: read 3, sent 0, already sent 3"),
        "{}",
        last_line(&o)
    );
    assert_eq!(srv.requests().len(), n + 1, "only GET /v1/account");

    // A Stripe 400 (no such customer) for a new line: named, exit 1, and the
    // next run tries it again (nothing was created).
    let gone = env.write(
        "gone.csv",
        &format!(
            "{}gone,cus_GONE1,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,base,x,1,day,EUR,100,100.000000,,,,,mb-2026-11-gone-base\n",
            fs::read_to_string(&good).unwrap()
        ),
    );
    let o = upload(&env, &srv, &gone, &[], Some("sk_test_123"));
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("gone.csv:5: mb-2026-11-gone-base: Stripe answered HTTP 400: No such customer: 'cus_GONE1'; not sent"),
        "{}",
        stderr(&o)
    );
    assert_eq!(srv.items(T).len(), 3);

    // Not an invoice or meter CSV: exit 2.
    let bad = env.write("summary.csv", "Report Type,Generated At\nusage_report,x\n");
    let o = upload(&env, &srv, &bad, &[], Some("sk_test_123"));
    assert_code(&o, 2);
    assert!(stderr(&o).contains("not mb-report invoice --csv or stripe-meter output"));
}

#[test]
fn help_describes_every_option() {
    let o = Command::new(script()).arg("--help").output().unwrap();
    assert_code(&o, 0);
    let h = stdout(&o);
    for opt in [
        "--dry-run",
        "--currency",
        "--ledger",
        "--key-file",
        "--api-base",
        "--stripe-version",
        "--correct",
        "--invoice",
        "--finalize",
        "--draft-invoice",
        "--timeout",
        "--retry-window",
    ] {
        let line = h
            .lines()
            .find(|l| l.trim_start().starts_with(opt))
            .unwrap_or_else(|| panic!("{opt}: {h}"));
        // A description follows the option on its line or the next one.
        let idx = h.find(line).unwrap() + line.len();
        let after = &h[idx..].lines().nth(1).unwrap_or("");
        assert!(
            line.trim().len() > opt.len() + 12 || after.trim().len() > 10,
            "{opt} has no description: {line:?}"
        );
    }
    assert!(h.contains("Exit status: 0"));
}

#[test]
fn a_saved_500_is_reported_and_the_other_customers_are_billed() {
    let env = Env::new();
    let srv = FakeStripe::start(&env);
    let good = good_csv(&env, "good.csv", &|l| l.to_string());
    // The endpoint starts for flaky's line and fails: Stripe saves the 500
    // on the key and replays it (Idempotent-Replayed: true) to the retry.
    srv.rules(serde_json::json!([
        {"path": "/v1/invoiceitems", "customer": "cus_FLAKY", "action": "500", "times": 1}
    ]));
    let o = upload(&env, &srv, &good, &[], Some("sk_test_123"));
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(
        e.contains(&format!("good.csv:4: {FLAKY}: needs reconciliation: outcome unknown (HTTP 500, replayed by Stripe for this key (Idempotent-Replayed: true)")),
        "{e}"
    );
    assert!(
        last_line(&o).ends_with(&format!("1 need a person: {FLAKY}")),
        "{}",
        last_line(&o)
    );
    let flaky_posts: Vec<String> = srv
        .posts("/v1/invoiceitems")
        .into_iter()
        .filter(|p| p.0.contains("flaky"))
        .map(|p| p.0)
        .collect();
    assert_eq!(
        flaky_posts,
        [FLAKY, FLAKY],
        "one retry, then the replay stops it"
    );
    // acme was billed in the same run, flaky not at all.
    let items = srv.items(T);
    assert_eq!(
        items
            .iter()
            .map(|i| (i.0.as_str(), i.1))
            .collect::<Vec<_>>(),
        [("cus_ACME", 49900), ("cus_ACME", 828)]
    );
    // A re-run (inside the 24 hours, so the old key would only replay the
    // 500): it lists flaky's items, finds none, and sends with a new key.
    let o = upload(&env, &srv, &good, &[], Some("sk_test_123"));
    assert_code(&o, 0);
    let reqs = srv.requests();
    let list = reqs
        .iter()
        .find(|r| r["method"] == "GET" && r["path"] == "/v1/invoiceitems")
        .unwrap();
    assert_eq!(list["query"], "customer=cus_FLAKY&pending=true&limit=100");
    assert_eq!(
        srv.posts("/v1/invoiceitems").last().unwrap().0,
        format!("{FLAKY}.a2")
    );
    assert_eq!(srv.items(T).len(), 3);
    assert!(
        last_line(&o).starts_with("stripe-upload: done: read 3, sent 1, already sent 2"),
        "{}",
        last_line(&o)
    );
}

#[test]
fn a_changed_amount_is_refused_then_corrected_pending_or_invoiced() {
    let env = Env::new();
    let srv = FakeStripe::start(&env);
    let v1 = good_csv(&env, "v1.csv", &|l| l.to_string());
    assert_code(&upload(&env, &srv, &v1, &[], Some("sk_test_123")), 0);
    // A late event: acme's overage is now 12.22, not 8.28.
    let v2 = good_csv(&env, "v2.csv", &|l| {
        l.replace(",828,828.038640,", ",1222,1222.000000,")
    });
    let o = upload(&env, &srv, &v2, &[], Some("sk_test_123"));
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "v2.csv:3: {ACME_OVER}: changed: amount 8.28 EUR was sent as ii_"
        )),
        "{e}"
    );
    assert!(
        e.contains(", now 12.22 EUR; not sent. Run with --correct"),
        "{e}"
    );
    assert!(last_line(&o).ends_with(&format!("1 need a person: {ACME_OVER}")));
    assert_eq!(
        srv.items(T).iter().map(|i| i.1).collect::<Vec<_>>(),
        [49900, 828, 14950]
    );

    // --correct while pending: delete and re-create under a new key.
    let o = upload(&env, &srv, &v2, &["--correct"], Some("sk_test_123"));
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("the pending item was re-created as ii_"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        srv.requests()
            .iter()
            .filter(|r| r["method"] == "DELETE")
            .count(),
        1
    );
    assert_eq!(
        srv.posts("/v1/invoiceitems").last().unwrap().0,
        format!("{ACME_OVER}.v2")
    );
    assert_eq!(
        srv.items(T).iter().map(|i| i.1).collect::<Vec<_>>(),
        [49900, 14950, 1222]
    );

    // Invoice them: one invoice per customer, pending items included,
    // finalized; a re-run creates no second invoice.
    let o = upload(
        &env,
        &srv,
        &v2,
        &["--invoice", "include", "--finalize"],
        Some("sk_test_123"),
    );
    assert_code(&o, 0);
    let inv_posts = srv.posts("/v1/invoices");
    assert_eq!(
        inv_posts.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["mb-2026-11-acme-invoice", "mb-2026-11-flaky-invoice"]
    );
    assert!(inv_posts[0]
        .1
        .contains(&("pending_invoice_items_behavior".into(), "include".into())));
    let st = srv.state(T);
    let invs = st["invoices"].as_array().unwrap();
    assert_eq!(
        invs.iter()
            .map(|i| (i["status"].as_str().unwrap(), i["total"].as_i64().unwrap()))
            .collect::<Vec<_>>(),
        [("open", 49900 + 1222), ("open", 14950)]
    );
    let o = upload(
        &env,
        &srv,
        &v2,
        &["--invoice", "include", "--finalize"],
        Some("sk_test_123"),
    );
    assert_code(&o, 0);
    assert_eq!(srv.posts("/v1/invoices").len(), 2);

    // Another change once invoiced: the item cannot be deleted, so an
    // adjustment line of +0.78 with its own key, pending for the next invoice.
    let v3 = good_csv(&env, "v3.csv", &|l| {
        l.replace(",828,828.038640,", ",1300,1300.000000,")
    });
    let o = upload(&env, &srv, &v3, &["--correct"], Some("sk_test_123"));
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("amount 12.22 EUR was sent as ii_")
            && stderr(&o).contains("now 13.00 EUR; it is invoiced, so adjustment item ii_"),
        "{}",
        stderr(&o)
    );
    let (k, form) = srv.posts("/v1/invoiceitems").last().unwrap().clone();
    assert_eq!(k, format!("{ACME_OVER}.adj3"));
    assert!(form.contains(&("amount".into(), "78".into())));
    let items = srv.items(T);
    assert_eq!(items.last().unwrap().1, 78);
    assert_eq!(items.last().unwrap().2, "", "the adjustment is pending");
    // And it is all in the ledger: what Stripe holds now is 13.00.
    assert_eq!(
        ledger(
            &env,
            &format!("SELECT amount, billed, version, state FROM lines WHERE key = '{ACME_OVER}'")
        ),
        ["1300|1300|3|sent"]
    );
    assert_code(&upload(&env, &srv, &v3, &[], Some("sk_test_123")), 0);
}

#[test]
fn lost_answers_during_corrections_are_reconciled_not_repeated() {
    let env = Env::new();
    let srv = FakeStripe::start(&env);
    let v1 = good_csv(&env, "v1.csv", &|l| l.to_string());
    assert_code(&upload(&env, &srv, &v1, &[], Some("sk_test_123")), 0);
    // The DELETE of a pending correction reaches Stripe, the answer is lost
    // (no retry with --retry-window 0): the next run sees the item gone and
    // re-creates it, once.
    let v2 = good_csv(&env, "v2.csv", &|l| {
        l.replace(",828,828.038640,", ",1222,1222.000000,")
    });
    srv.rules(serde_json::json!([{"method": "DELETE", "action": "drop", "times": 1}]));
    let o = upload(
        &env,
        &srv,
        &v2,
        &["--correct", "--retry-window", "0"],
        Some("sk_test_123"),
    );
    assert_code(&o, 1);
    assert_eq!(
        srv.items(T).iter().map(|i| i.1).collect::<Vec<_>>(),
        [49900, 14950]
    );
    let o = upload(&env, &srv, &v2, &["--correct"], Some("sk_test_123"));
    assert_code(&o, 0);
    assert_eq!(
        srv.items(T).iter().map(|i| i.1).collect::<Vec<_>>(),
        [49900, 14950, 1222]
    );
    // Invoiced, then the adjustment's answer is lost; a day later (the key
    // pruned) the re-run finds the adjustment instead of adding another.
    assert_code(
        &upload(
            &env,
            &srv,
            &v2,
            &["--invoice", "include", "--finalize"],
            Some("sk_test_123"),
        ),
        0,
    );
    let v3 = good_csv(&env, "v3.csv", &|l| {
        l.replace(",828,828.038640,", ",1300,1300.000000,")
    });
    srv.rules(serde_json::json!([
        {"path": "/v1/invoiceitems", "customer": "cus_ACME", "action": "drop", "times": 1}
    ]));
    let o = upload(
        &env,
        &srv,
        &v3,
        &["--correct", "--retry-window", "0"],
        Some("sk_test_123"),
    );
    assert_code(&o, 1);
    srv.advance(25 * 3600);
    let o = upload(&env, &srv, &v3, &["--correct"], Some("sk_test_123"));
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains(&format!("{ACME_OVER}: reconciled")),
        "{}",
        stderr(&o)
    );
    let amounts: Vec<i64> = srv.items(T).iter().map(|i| i.1).collect();
    assert_eq!(amounts, [49900, 14950, 1222, 78], "one adjustment of +0.78");
    assert_eq!(
        ledger(
            &env,
            &format!("SELECT amount, billed, state FROM lines WHERE key = '{ACME_OVER}'")
        ),
        ["1300|1300|sent"]
    );
}

#[test]
fn a_draft_invoice_takes_the_items_when_given() {
    let env = Env::new();
    let srv = FakeStripe::start(&env);
    // The admin made a draft invoice for acme in Stripe.
    let (code, inv) = srv.http(
        "POST",
        "/v1/invoices",
        "customer=cus_ACME&auto_advance=false",
        Some("sk_test_123"),
    );
    assert_eq!(code, 200);
    let id = inv["id"].as_str().unwrap().to_string();
    let good = good_csv(&env, "good.csv", &|l| l.to_string());
    let o = upload(
        &env,
        &srv,
        &good,
        &["--draft-invoice", &format!("cus_ACME={id}")],
        Some("sk_test_123"),
    );
    assert_code(&o, 0);
    let items = srv.items(T);
    assert_eq!(
        items
            .iter()
            .map(|i| (i.0.as_str(), i.2.as_str()))
            .collect::<Vec<_>>(),
        [
            ("cus_ACME", id.as_str()),
            ("cus_ACME", id.as_str()),
            ("cus_FLAKY", "")
        ]
    );
    // A standalone invoice with Stripe's default (exclude) takes no pending
    // items: that is why --invoice include sets the behaviour explicitly.
    let (_, inv2) = srv.http(
        "POST",
        "/v1/invoices",
        "customer=cus_FLAKY",
        Some("sk_test_123"),
    );
    assert_eq!(inv2["lines"]["data"].as_array().unwrap().len(), 0);
}

#[test]
fn test_mode_does_not_block_live_mode_nor_another_account() {
    let env = Env::new();
    let srv = FakeStripe::start(&env);
    let good = good_csv(&env, "good.csv", &|l| l.to_string());
    assert_code(&upload(&env, &srv, &good, &[], Some("sk_test_123")), 0);
    let o = upload(&env, &srv, &good, &[], Some("sk_live_123"));
    assert_code(&o, 0);
    assert!(
        last_line(&o).contains("sent 3, already sent 0"),
        "{}",
        last_line(&o)
    );
    assert!(last_line(&o).contains("live mode, account acct_1MBTEST"));
    let o = upload(&env, &srv, &good, &[], Some("sk_test_other"));
    assert_code(&o, 0);
    assert!(
        last_line(&o).contains("sent 3, already sent 0"),
        "{}",
        last_line(&o)
    );
    assert_eq!(srv.items("acct_1MBTEST/live").len(), 3);
    assert_eq!(srv.items("acct_1MBOTHER/test").len(), 3);
    assert_eq!(srv.items(T).len(), 3);
    assert_eq!(
        ledger(
            &env,
            "SELECT mode || ' ' || account, count(*) FROM lines GROUP BY 1 ORDER BY 1"
        ),
        [
            "live acct_1MBTEST|3",
            "test acct_1MBOTHER|3",
            "test acct_1MBTEST|3"
        ]
    );
    // A response whose livemode contradicts the key stops the run (exit 2).
    let v2 = good_csv(&env, "v2.csv", &|l| l.replace("mb-2026-11", "mb-2026-10"));
    srv.rules(
        serde_json::json!([{"path": "/v1/invoiceitems", "action": "livemode_flip", "times": 1}]),
    );
    let o = upload(&env, &srv, &v2, &[], Some("sk_live_123"));
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("Stripe answered livemode=false to a live-mode key"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        srv.posts("/v1/invoiceitems")
            .iter()
            .filter(|p| p.0.starts_with("mb-2026-10"))
            .count(),
        1
    );
}

#[test]
fn conflicts_409_and_rate_limits_429_are_retried() {
    let env = Env::new();
    let srv = FakeStripe::start(&env);
    let good = good_csv(&env, "good.csv", &|l| l.to_string());
    // 429 twice for acme's base line: retried after Retry-After (1 s).
    srv.rules(serde_json::json!([
        {"path": "/v1/invoiceitems", "customer": "cus_ACME", "action": "429", "times": 2},
        {"path": "/v1/invoiceitems", "customer": "cus_FLAKY", "action": "hang:3", "times": 1}
    ]));
    // A second uploader (another host, its own ledger) sends flaky's line
    // while the first one's request is in flight: 409, retried, then the
    // saved result is replayed to it: one item, both ledgers agree.
    let mut first = upload_cmd(&env, &srv, Some("sk_test_123"));
    first
        .arg(&good)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = first.spawn().unwrap();
    let t0 = Instant::now();
    while !srv.posts("/v1/invoiceitems").iter().any(|p| p.0 == FLAKY) {
        assert!(t0.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    let flaky_only = env.write(
        "flaky.csv",
        &fs::read_to_string(&good)
            .unwrap()
            .lines()
            .enumerate()
            .filter(|(i, _)| *i == 0 || *i == 3)
            .map(|(_, l)| format!("{l}\n"))
            .collect::<String>(),
    );
    let second = run_cmd(
        upload_cmd(&env, &srv, Some("sk_test_123"))
            .env("MB_STRIPE_LEDGER", env.path("other/ledger.sqlite"))
            .arg(&flaky_only),
        "",
    );
    let first = child.wait_with_output().unwrap();
    assert_code(&first, 0);
    assert_code(&second, 0);
    assert!(
        stderr(&first).contains(&format!("{ACME_BASE}: HTTP 429; retrying in ")),
        "{}",
        stderr(&first)
    );
    assert!(
        stderr(&second).contains(&format!("{FLAKY}: HTTP 409; retrying in ")),
        "{}",
        stderr(&second)
    );
    let id1 = stdout(&first)
        .lines()
        .find(|l| l.starts_with(FLAKY))
        .unwrap()
        .split('\t')
        .nth(1)
        .unwrap()
        .to_string();
    let id2 = stdout(&second).split('\t').nth(1).unwrap().to_string();
    assert_eq!(id1, id2);
    assert_eq!(srv.items(T).len(), 3);
}

/// Start an upload, wait until Stripe got `key`'s request, kill -9 it.
fn kill_during(env: &Env, srv: &FakeStripe, input: &Path, key: &str) {
    let mut c = upload_cmd(env, srv, Some("sk_test_123"));
    c.arg(input).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let t0 = Instant::now();
    while !srv.posts("/v1/invoiceitems").iter().any(|p| p.0 == key) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no request for {key}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn kill_9_mid_upload_then_reruns_before_and_after_key_expiry_bill_once() {
    // Killed while Stripe was creating flaky's item (the answer never came):
    // the intent is in the ledger without an outcome.
    for expire in [false, true] {
        let env = Env::new();
        let srv = FakeStripe::start(&env);
        let good = good_csv(&env, "good.csv", &|l| l.to_string());
        srv.rules(serde_json::json!([
            {"path": "/v1/invoiceitems", "customer": "cus_FLAKY", "action": "hang:30", "times": 1}
        ]));
        kill_during(&env, &srv, &good, FLAKY);
        assert_eq!(
            ledger(
                &env,
                "SELECT key, outcome IS NULL FROM requests ORDER BY id"
            ),
            [
                format!("{ACME_BASE}|0"),
                format!("{ACME_OVER}|0"),
                format!("{FLAKY}|1")
            ]
        );
        assert_eq!(srv.items(T).len(), 3, "Stripe did create flaky's item");
        if expire {
            // 25 hours later Stripe has pruned the key: re-sending it would
            // create a second item. The reconciliation finds the first.
            srv.advance(25 * 3600);
        }
        let o = upload(&env, &srv, &good, &[], Some("sk_test_123"));
        assert_code(&o, 0);
        assert!(
            stderr(&o).contains(&format!(
                "good.csv:4: {FLAKY}: reconciled: Stripe has it as ii_"
            )),
            "{}",
            stderr(&o)
        );
        assert_eq!(srv.items(T).len(), 3, "expire={expire}: billed twice");
        assert_eq!(srv.posts("/v1/invoiceitems").len(), 3);
        assert!(stdout(&o).contains("\treconciled\n"));
        // And once more: nothing to do.
        let o = upload(&env, &srv, &good, &[], Some("sk_test_123"));
        assert_code(&o, 0);
        assert_eq!(srv.posts("/v1/invoiceitems").len(), 3);
    }

    // Killed before the request reached Stripe's endpoint (rate limited,
    // waiting for Retry-After): the re-run after expiry finds nothing and
    // sends it, once.
    let env = Env::new();
    let srv = FakeStripe::start(&env);
    let good = good_csv(&env, "good.csv", &|l| l.to_string());
    srv.rules(serde_json::json!([
        {"path": "/v1/invoiceitems", "customer": "cus_FLAKY", "action": "429", "times": 1}
    ]));
    kill_during(&env, &srv, &good, FLAKY);
    assert_eq!(srv.items(T).len(), 2);
    srv.advance(25 * 3600);
    let o = upload(&env, &srv, &good, &[], Some("sk_test_123"));
    assert_code(&o, 0);
    assert_eq!(srv.items(T).len(), 3);
    assert_eq!(
        srv.posts("/v1/invoiceitems").last().unwrap().0,
        format!("{FLAKY}.a2")
    );
}

#[test]
fn reconciliation_follows_pagination() {
    // 120 pending items of one customer: the list is paginated (100 a page),
    // the item to find is on the second page (lists are newest first).
    let env = Env::new();
    let srv = FakeStripe::start(&env);
    let mut csv = fs::read_to_string(fixture("ops/invoice.csv"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    csv.push('\n');
    for i in 0..120 {
        csv.push_str(&format!(
            "acme,cus_ACME,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,base,item {i},1,day,EUR,{},1.000000,,,,,mb-2026-11-acme-x{i:03}\n",
            100 + i
        ));
    }
    let input = env.write("many.csv", &csv);
    srv.rules(serde_json::json!([
        {"path": "/v1/invoiceitems", "customer": "cus_ACME", "action": "500_after", "times": 1}
    ]));
    // The first item is created but answered with a 500 (saved on the key).
    let o = upload(&env, &srv, &input, &[], Some("sk_test_123"));
    assert_code(&o, 1);
    assert_eq!(srv.items(T).len(), 120);
    srv.advance(25 * 3600);
    let o = upload(&env, &srv, &input, &[], Some("sk_test_123"));
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("mb-2026-11-acme-x000: reconciled"),
        "{}",
        stderr(&o)
    );
    let lists: Vec<String> = srv
        .requests()
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == "/v1/invoiceitems")
        .map(|r| r["query"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert!(lists[1].starts_with("customer=cus_ACME&pending=true&limit=100&starting_after=ii_"));
    assert_eq!(srv.items(T).len(), 120);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[test]
fn meter_events_once_then_cancel_and_reidentify_or_send_the_increase() {
    let env = Env::new();
    let srv = FakeStripe::start(&env);
    let now = unix_now();
    let ts = now - 2 * 86400;
    let meter = |v: i64| {
        format!(
            "identifier,timestamp,event_name,payload_stripe_customer_id,payload_value\n\
             mb-day-acme-1,{ts},llm_tokens,cus_ACME,{v}\n"
        )
    };
    let m1 = env.write("m1.csv", &meter(1000));
    assert_code(&upload(&env, &srv, &m1, &[], Some("sk_test_123")), 0);
    // Re-uploading the same month counts nothing twice (even after Stripe's
    // 24-hour identifier window: the ledger remembers).
    srv.advance(2 * 3600);
    assert_code(&upload(&env, &srv, &m1, &[], Some("sk_test_123")), 0);
    assert_eq!(srv.posts("/v1/billing/meter_events").len(), 1);
    // The day's value changed: refused without --correct; with it, cancel
    // the event (less than 24 hours old) and send a new identifier.
    let m2 = env.write("m2.csv", &meter(1500));
    let o = upload(&env, &srv, &m2, &[], Some("sk_test_123"));
    assert_code(&o, 1);
    assert!(
        stderr(&o)
            .contains("mb-day-acme-1: changed: value 1000 was sent as mb-day-acme-1, now 1500"),
        "{}",
        stderr(&o)
    );
    let later = rfc3339(now + 2 * 3600);
    let o = run_cmd(
        upload_cmd(&env, &srv, Some("sk_test_123"))
            .env("MB_NOW", &later)
            .args(["--correct"])
            .arg(&m2),
        "",
    );
    assert_code(&o, 0);
    let adj = srv.posts("/v1/billing/meter_event_adjustments");
    assert_eq!(adj.len(), 1);
    assert!(adj[0]
        .1
        .contains(&("cancel[identifier]".into(), "mb-day-acme-1".into())));
    assert!(adj[0].1.contains(&("type".into(), "cancel".into())));
    // Stripe now counts 1500: the cancelled 1000 is out.
    let counted = |srv: &FakeStripe| -> i64 {
        srv.state(T)["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["cancelled"] == false)
            .map(|e| {
                e["payload"]["value"]
                    .as_str()
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            })
            .sum()
    };
    assert_eq!(counted(&srv), 1500);
    // Two days later it cannot be cancelled any more: the increase is sent
    // as its own event; a decrease needs a person (exit 1, nothing sent).
    srv.advance(48 * 3600);
    let much_later = rfc3339(now + 50 * 3600);
    let m3 = env.write("m3.csv", &meter(1700));
    let o = run_cmd(
        upload_cmd(&env, &srv, Some("sk_test_123"))
            .env("MB_NOW", &much_later)
            .args(["--correct"])
            .arg(&m3),
        "",
    );
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("sent mb-day-acme-1.r3 with value 200"),
        "{}",
        stderr(&o)
    );
    assert_eq!(counted(&srv), 1700);
    // Down to 1600 at once: the recent +200 is cancelled and +100 sent; the
    // 1500 sent 48 hours ago stays.
    let m4 = env.write("m4.csv", &meter(1600));
    let o = run_cmd(
        upload_cmd(&env, &srv, Some("sk_test_123"))
            .env("MB_NOW", &much_later)
            .args(["--correct"])
            .arg(&m4),
        "",
    );
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("sent mb-day-acme-1.r4 with value 100"),
        "{}",
        stderr(&o)
    );
    assert_eq!(counted(&srv), 1600);
    // Below what can no longer be cancelled: a person must credit it.
    let m5 = env.write("m5.csv", &meter(1400));
    let o = run_cmd(
        upload_cmd(&env, &srv, Some("sk_test_123"))
            .env("MB_NOW", &much_later)
            .args(["--correct"])
            .arg(&m5),
        "",
    );
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(
            "a decrease cannot be sent as an event: credit the customer 100 units by hand"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(counted(&srv), 1600);

    // Outside Stripe's window: refused, naming the day, the rest is sent.
    let old = now - 40 * 86400;
    let future = now + 3600;
    let w = env.write(
        "w.csv",
        &format!(
            "identifier,timestamp,event_name,payload_stripe_customer_id,payload_value\n\
             mb-old,{old},llm_tokens,cus_ACME,5\nmb-future,{future},llm_tokens,cus_ACME,5\nmb-ok,{ts},llm_tokens,cus_ACME,5\n"
        ),
    );
    let o = upload(&env, &srv, &w, &[], Some("sk_test_123"));
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "w.csv:2: the event of {} is older than Stripe's 35-day window",
            &rfc3339(old)[..10]
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "w.csv:3: the event of {} is dated in the future",
            &rfc3339(future)[..10]
        )),
        "{e}"
    );
    assert!(e.contains("sent 1"), "{e}");
}

/// The report fixture's customers (see tests/report.rs): acme pro all
/// month with overage, globex starter then pro from the 16th, initech
/// enterprise until suspended on the 21st.
fn report_env() -> Env {
    // Ingested before the monthly job's --as-of (03:00 on the 1st).
    let env = Env::at("2026-12-01T00:30:00Z");
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

#[test]
fn mb_report_output_goes_to_stripe_as_produced() {
    let env = report_env();
    let srv = FakeStripe::start(&env);
    // The monthly job at 03:00 on the 1st: the fake's clock is moved there
    // too, so Stripe's 35-day window is judged at that time whatever the day
    // the test runs.
    let job = "2026-12-01T03:00:00Z";
    let job_t = chrono::DateTime::parse_from_rfc3339(job)
        .unwrap()
        .timestamp();
    srv.advance(job_t - unix_now());
    let o = env.run_at(
        "mb-report",
        job,
        &[
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--usd-eur-source",
            "ECB",
            "--as-of",
            job,
            "--csv",
        ],
        "",
    );
    assert_code(&o, 0);
    let inv = env.write("invoice.csv", &stdout(&o));
    let up = run_cmd(
        upload_cmd(&env, &srv, Some("sk_test_123"))
            .env("MB_NOW", job)
            .args(["--invoice", "include", "--finalize"])
            .arg(&inv),
        "",
    );
    assert_code(&up, 0);
    let posts = srv.posts("/v1/invoiceitems");
    assert_eq!(posts.len(), 5);
    let get = |i: usize, k: &str| -> String {
        posts[i]
            .1
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    // globex's two segments, each with its own period: 2026-11-01 to the
    // 15th inclusive (1793491200 .. 1794787199) and the 16th to the 30th
    // (1794787200 .. 1796083199).
    assert_eq!(
        (
            get(2, "metadata[mb_customer_id]"),
            get(2, "period[start]"),
            get(2, "period[end]"),
            get(2, "amount")
        ),
        (
            "globex".into(),
            "1793491200".into(),
            "1794787199".into(),
            "14950".into()
        )
    );
    assert_eq!(
        (
            get(3, "period[start]"),
            get(3, "period[end]"),
            get(3, "amount")
        ),
        ("1794787200".into(), "1796083199".into(), "24950".into())
    );
    // The overage: no internal arithmetic in the description, the audit
    // fields in metadata.
    assert_eq!(
        get(1, "description"),
        "LLM usage above 1,000,000 included tokens: 1,500,100 of 2,500,100 tokens billed pro rata"
    );
    assert_eq!(
        (
            get(1, "metadata[mb_fx_source]"),
            get(1, "metadata[mb_fx_date]"),
            get(1, "metadata[mb_markup]")
        ),
        ("ECB".into(), "2026-11-30".into(), "0.2".into())
    );
    let totals: Vec<i64> = srv.state(T)["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["total"].as_i64().unwrap())
        .collect();
    assert_eq!(totals, [49900 + 828, 14950 + 24950, 55533]);

    // The meter events of the same month, from stripe-meter to Stripe.
    let o = env.run_at(
        "mb-report",
        job,
        &[
            "stripe-meter",
            "--month",
            "2026-11",
            "--event-name",
            "llm_tokens",
            "--as-of",
            job,
        ],
        "",
    );
    assert_code(&o, 0);
    let m = env.write("meter.csv", &stdout(&o));
    let up = run_cmd(
        upload_cmd(&env, &srv, Some("sk_test_123"))
            .env("MB_NOW", job)
            .arg(&m),
        "",
    );
    assert_code(&up, 0);
    let ev: Vec<(String, String)> = srv.state(T)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["identifier"].as_str().unwrap().to_string(),
                e["payload"]["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ev,
        [
            (
                "mb-2026-11-02-acme-29eef870".to_string(),
                "2500000".to_string()
            ),
            ("mb-2026-11-05-initech-29eef870".into(), "999999".into()),
            ("mb-2026-11-10-globex-29eef870".into(), "1000000".into()),
            ("mb-2026-11-30-acme-29eef870".into(), "100".into()),
        ]
    );
}

#[test]
fn mb_customer_refuses_what_is_not_a_stripe_customer_id() {
    let env = Env::new();
    for bad in ["not an id!", "cus_", "sub_123", "cus_12-3"] {
        let o = env.run(
            "mb-customer",
            &["add", "acme", "--tier", "pro", "--stripe-customer", bad],
            "",
        );
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains("is not a Stripe customer id: expected cus_"),
            "{bad}: {}",
            stderr(&o)
        );
    }
    assert_code(
        &env.run(
            "mb-customer",
            &[
                "add",
                "acme",
                "--tier",
                "pro",
                "--stripe-customer",
                "cus_P1x2",
            ],
            "",
        ),
        0,
    );
    let o = env.run(
        "mb-customer",
        &["set", "acme", "--stripe-customer", "cus P1x2"],
        "",
    );
    assert_code(&o, 2);
}

pub fn url_decode_form(body: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    if body.is_empty() {
        return Vec::new();
    }
    body.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (dec(k), dec(v))
        })
        .collect()
}
