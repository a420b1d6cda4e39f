//! Security properties that cut across the tools (docs/security.md): the
//! modes of the files mb creates whatever the umask, secret files refused
//! when others can read them, and the billing-side checks of VMs the
//! customer controls.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::util::{assert_code, bin_path, fixture, run_cmd, stderr, Env};

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `bin args` run by `sh` after `umask MASK`, with the test environment.
fn under_umask(env: &Env, mask: &str, bin: &str, args: &[&str], stdin: &str) -> Output {
    let base = env.cmd(bin);
    let mut c = Command::new("sh");
    c.env_clear().current_dir(env.dir.path());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.arg("-c")
        .arg(format!("umask {mask}; exec \"$0\" \"$@\""))
        .arg(bin_path(bin))
        .args(args);
    run_cmd(&mut c, stdin)
}

// ---------------------------------------------------------------- file modes

#[test]
fn state_lock_rejects_and_database_files_are_private_under_any_umask() {
    for mask in ["000", "022"] {
        let env = Env::new();
        let p = |s: &str| env.path(s).to_string_lossy().into_owned();

        // mb-sample on this machine's /proc, into a state directory that
        // does not exist yet.
        let o = under_umask(
            &env,
            mask,
            "mb-sample",
            &[
                "--customer",
                "acme",
                "--vm",
                "vm-1",
                "--state",
                &p("s/deep/sample.state"),
            ],
            "",
        );
        assert_code(&o, 0);
        let sample_line = String::from_utf8(o.stdout).unwrap();
        for d in ["s", "s/deep"] {
            assert_eq!(mode(&env.path(d)), 0o700, "umask {mask}: {d}");
        }
        for f in ["s/deep/sample.state", "s/deep/sample.state.lock"] {
            assert_eq!(mode(&env.path(f)), 0o600, "umask {mask}: {f}");
        }

        // mb-tokens with a state file in a new directory.
        let o = under_umask(
            &env,
            mask,
            "mb-tokens",
            &[
                "--customer",
                "acme",
                "--vm",
                "vm-1",
                "--state",
                &p("t/tokens.state"),
                &fixture("tokens/queue-v2.jsonl").to_string_lossy(),
            ],
            "",
        );
        assert!(o.status.code() == Some(0) || o.status.code() == Some(1));
        assert_eq!(mode(&env.path("t")), 0o700, "umask {mask}");
        for f in ["t/tokens.state", "t/tokens.state.lock"] {
            assert_eq!(mode(&env.path(f)), 0o600, "umask {mask}: {f}");
        }

        // mb-ingest: the database directory of the README's first command,
        // the database, and the rejects file (it quotes input lines).
        let input = format!("{sample_line}not json\n");
        let o = under_umask(
            &env,
            mask,
            "mb-ingest",
            &["--rejects", &p("rejects.jsonl")],
            &input,
        );
        assert_code(&o, 1);
        assert_eq!(mode(&env.path("data")), 0o700, "umask {mask}");
        assert_eq!(mode(&env.db), 0o600, "umask {mask}");
        assert_eq!(mode(&env.path("rejects.jsonl")), 0o600, "umask {mask}");

        // mb-ingest --spool: its lock file.
        let o = under_umask(
            &env,
            mask,
            "mb-activity",
            &[
                "--customer",
                "acme",
                "--vm",
                "vm-1",
                "run",
                "--wait",
                "--spool",
                &p("sp/spool"),
                "--",
                "true",
            ],
            "",
        );
        assert_code(&o, 0);
        assert_eq!(mode(&env.path("sp")), 0o700, "umask {mask}");
        assert_eq!(mode(&env.path("sp/spool")), 0o700, "umask {mask}");
        let o = under_umask(&env, mask, "mb-ingest", &["--spool", &p("sp/spool")], "");
        assert_code(&o, 0);
        assert_eq!(
            mode(&env.path("sp/spool/.mb-ingest.lock")),
            0o600,
            "umask {mask}"
        );
        assert_eq!(mode(&env.path("sp/spool/done")), 0o700, "umask {mask}");
    }
}

#[test]
fn a_state_file_left_world_writable_is_narrowed() {
    let env = Env::new();
    let st = env.write("st/tokens.state", "");
    fs::remove_file(&st).unwrap();
    let lock = env.write("st/tokens.state.lock", "");
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o666)).unwrap();
    let rej = env.write("rej.jsonl", "");
    fs::set_permissions(&rej, fs::Permissions::from_mode(0o644)).unwrap();
    let o = env.run(
        "mb-tokens",
        &[
            "--customer",
            "acme",
            "--vm",
            "vm-1",
            "--state",
            st.to_str().unwrap(),
            &fixture("tokens/queue-v2.jsonl").to_string_lossy(),
        ],
        "",
    );
    assert!(o.status.code() == Some(0) || o.status.code() == Some(1));
    assert_eq!(mode(&lock), 0o600);
    assert_eq!(mode(&st), 0o600);
    let o = env.run(
        "mb-ingest",
        &["--rejects", rej.to_str().unwrap()],
        "not json\n",
    );
    assert_code(&o, 1);
    assert_eq!(mode(&rej), 0o600);
}

#[test]
fn secret_files_others_can_read_are_refused_with_the_chmod() {
    let env = Env::new();
    let token = env.write("dash.token", "0123456789abcdef0123\n");
    let key = env.write("mgmt.key", "s3cret\n");
    for m in [0o644, 0o640, 0o604] {
        fs::set_permissions(&token, fs::Permissions::from_mode(m)).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(m)).unwrap();
        let o = env.run(
            "mb-dashboard",
            &["--port", "0", "--token-file", token.to_str().unwrap()],
            "",
        );
        assert_code(&o, 2);
        assert_eq!(
            stderr(&o),
            format!(
                "mb-dashboard: --token-file {0}: permissions {m:04o} are too open \
                 (group or others can read it); run: chmod 600 {0}\n",
                token.display()
            )
        );
        let o = env.run(
            "mb-tokens",
            &[
                "pull",
                "--url",
                "http://127.0.0.1:9",
                "--key-file",
                key.to_str().unwrap(),
                "--out",
                "out.jsonl",
                "--once",
            ],
            "",
        );
        assert_code(&o, 2);
        assert_eq!(
            stderr(&o),
            format!(
                "mb-tokens: --key-file {0}: permissions {m:04o} are too open \
                 (group or others can read it); run: chmod 600 {0}\n",
                key.display()
            )
        );
        // Nothing was created before the refusal.
        assert!(!env.path("out.jsonl").exists());
    }
}

#[test]
fn stripe_upload_refuses_a_key_file_others_can_read() {
    let env = Env::new();
    let key = env.write("stripe.key", "sk_test_0123456789abcdefABCDEF\n");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/stripe-upload.py");
    let mut c = Command::new(script);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("MB_STRIPE_LEDGER", env.path("ledger.tsv"))
        .env("STRIPE_API_BASE", "http://127.0.0.1:9")
        .arg(fixture("ops/invoice.csv"))
        .args(["--key-file", key.to_str().unwrap()]);
    let o = run_cmd(&mut c, "");
    assert_code(&o, 2);
    assert!(
        stderr(&o).ends_with(&format!(
            "--key-file {0}: permissions 0644 are too open (group or others can read it); \
             run: chmod 600 {0}\n",
            key.display()
        )),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------- VMs the customer controls

/// One priced `api` line (mb-events(5)).
fn api_line(id: &str, customer: &str, vm: &str, tokens_in: i64, cost: &str) -> String {
    format!(
        "{{\"v\":1,\"kind\":\"api\",\"id\":\"{id}\",\"ts\":\"2026-11-10T10:00:00Z\",\
         \"customer_id\":\"{customer}\",\"vm_id\":\"{vm}\",\"provider\":\"anthropic\",\
         \"model\":\"claude-sonnet-4-5\",\"price_key\":\"claude-sonnet-4-5\",\
         \"tokens_in\":{tokens_in},\"tokens_out\":0,\"cache_read_tokens\":0,\
         \"cache_write_tokens\":0,\"reasoning_tokens\":0,\"cost_usd\":\"{cost}\",\
         \"priced\":true,\"price_table\":\"t1\",\"request_id\":\"{id}\",\"failed\":false,\
         \"auth_type\":\"apikey\",\"client\":null,\"service_tier\":null,\
         \"source_format\":\"usage-queue\"}}\n"
    )
}

/// (customer, amount_minor) of the overage lines of `csv`.
fn overage(csv: &[u8]) -> Vec<(String, String)> {
    let mut rdr = csv::Reader::from_reader(csv);
    rdr.records()
        .map(|r| r.unwrap())
        .filter(|r| &r[4] == "llm_overage")
        .map(|r| (r[0].to_string(), r[9].to_string()))
        .collect()
}

#[test]
fn usage_claiming_another_customer_than_the_registry_lists_for_the_vm_is_kept_out() {
    let env = Env::new();
    for (id, vm) in [("acme", "vm-1"), ("globex", "vm-2")] {
        let o = env.run(
            "mb-customer",
            &[
                "add",
                id,
                "--tier",
                "pro",
                "--vm",
                vm,
                "--effective",
                "2026-11-01",
            ],
            "",
        );
        assert_code(&o, 0);
    }
    let lines = [
        // acme's own VM: 2,000,000 tokens, USD 10.
        api_line("a1", "acme", "vm-1", 2_000_000, "10"),
        // From acme's VM, claiming globex: suspect.
        api_line("f1", "globex", "vm-1", 3_000_000, "30"),
        // globex's own VM: 1,500,000 tokens, USD 6.
        api_line("g1", "globex", "vm-2", 1_500_000, "6"),
        // A VM the registry does not list is not checked.
        api_line("u1", "globex", "vm-9", 0, "0"),
    ]
    .concat();
    let o = env.run("mb-ingest", &[], &lines);
    assert_code(&o, 0);
    let inv = |extra: &[&str]| {
        let mut args = vec![
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--csv",
        ];
        args.extend_from_slice(extra);
        env.run("mb-report", &args, "")
    };
    let warning = "mb-report: usage claiming a customer the registry does not list for its VM \
                   in 2026-11: globex from VM vm-1 (1 requests; the registry lists it for acme)";

    // Default: flagged (exit 1) and left out. acme: 10 x 1,000,000 /
    // 2,000,000 x 1.2 x 0.92 = 5.52 EUR. globex without vm-1's claim:
    // 6 x 500,000 / 1,500,000 x 1.2 x 0.92 = 2.208 -> 221 cents.
    let o = inv(&[]);
    assert_code(&o, 1);
    assert_eq!(
        stderr(&o),
        format!(
            "{warning}; not invoiced (check the VM with mb-report --vm, fix the registry with \
             mb-customer, or pass --allow-vm-mismatch)\n"
        )
    );
    assert_eq!(
        overage(&o.stdout),
        [
            ("acme".into(), "552".into()),
            ("globex".into(), "221".into())
        ]
    );

    // Allowed: invoiced as claimed. globex: 36 x 3,500,000 / 4,500,000 x
    // 1.2 x 0.92 = 30.912 EUR -> 3091 cents.
    let o = inv(&["--allow-vm-mismatch"]);
    assert_code(&o, 1);
    assert_eq!(
        stderr(&o),
        format!("{warning}; invoiced as claimed (--allow-vm-mismatch)\n")
    );
    assert_eq!(
        overage(&o.stdout),
        [
            ("acme".into(), "552".into()),
            ("globex".into(), "3091".into())
        ]
    );

    // Once the registry says globex rents vm-1 too, nothing is suspect.
    let o = env.run("mb-customer", &["set", "globex", "--add-vm", "vm-1"], "");
    assert_code(&o, 0);
    let o = inv(&[]);
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
    assert_eq!(
        overage(&o.stdout),
        [
            ("acme".into(), "552".into()),
            ("globex".into(), "3091".into())
        ]
    );
}

#[test]
fn the_central_store_keeps_what_it_pulled_when_the_vm_database_changes() {
    // The VM's own database, fed by its producers.
    let vm = Env::new();
    let lines = [
        api_line("p1", "acme", "vm-1", 1_000, "0.5"),
        api_line("p2", "acme", "vm-1", 2_000, "1"),
        api_line("p3", "acme", "vm-1", 3_000, "1.5"),
    ]
    .concat();
    assert_code(&vm.run("mb-ingest", &[], &lines), 0);
    let act = vm.run(
        "mb-activity",
        &[
            "--customer",
            "acme",
            "--vm",
            "vm-1",
            "record",
            "--type",
            "operation",
            "--name",
            "backup",
            "--duration",
            "60",
            "--at",
            "2026-11-10T11:00:00Z",
        ],
        "",
    );
    assert_code(
        &vm.run("mb-ingest", &[], &String::from_utf8(act.stdout).unwrap()),
        0,
    );

    // The billing host pulls: `mb-report events | mb-ingest --db central`.
    let central = Env::new();
    let pull = || {
        let o = vm.run("mb-report", &["events"], "");
        assert_code(&o, 0);
        central.run("mb-ingest", &[], &String::from_utf8(o.stdout).unwrap())
    };
    let o = pull();
    assert_code(&o, 0);
    let snapshot = "SELECT id, tokens_in, cost_nusd FROM api_usage ORDER BY id";
    let before_api = central.query(snapshot);
    let before_act = central.query("SELECT id, duration_seconds FROM activity_log ORDER BY id");
    assert_eq!(before_api.len(), 3);
    assert_eq!(before_act.len(), 1);

    // Root on the VM edits its database with sqlite3: more tokens, a
    // cheaper cost, a longer backup, and a row deleted.
    let sql = "UPDATE api_usage SET tokens_in = tokens_in * 10 WHERE id = 'p1'; \
               UPDATE api_usage SET cost_nusd = 1 WHERE id = 'p2'; \
               UPDATE activity_log SET duration_seconds = 6000 WHERE pattern_name = 'backup'; \
               DELETE FROM api_usage WHERE id = 'p3';";
    let o = Command::new("sqlite3")
        .arg(&vm.db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Pulling again changes nothing stored; the changed lines are
    // conflicts, kept verbatim and reported (exit 1).
    let o = pull();
    assert_code(&o, 1);
    let kept = "is already stored with different content; the stored event is kept and this \
                line is recorded in the conflicts table";
    let act_id = &before_act[0][..before_act[0].find('|').unwrap()];
    assert_eq!(
        stderr(&o),
        format!(
            "mb-ingest: stdin:1: conflict: api id \"p1\" {kept}\n\
             mb-ingest: stdin:2: conflict: api id \"p2\" {kept}\n\
             mb-ingest: stdin:3: conflict: activity id \"{act_id}\" {kept}\n\
             mb-ingest: read 3, inserted 0, duplicates 0, conflicts 3, rejected 0\n"
        )
    );
    assert_eq!(central.query(snapshot), before_api);
    assert_eq!(
        central.query("SELECT id, duration_seconds FROM activity_log ORDER BY id"),
        before_act
    );
    let conflicts = central.query("SELECT id, line FROM conflicts ORDER BY id");
    assert_eq!(conflicts.len(), 3, "{conflicts:?}");
    assert!(conflicts[0].starts_with("act:"), "{conflicts:?}");
    assert!(
        conflicts[0].contains("\"duration_seconds\":6000"),
        "{conflicts:?}"
    );
    assert!(conflicts[1].starts_with("p1|"), "{conflicts:?}");
    assert!(
        conflicts[1].contains("\"tokens_in\":10000,"),
        "{conflicts:?}"
    );
    assert!(conflicts[2].starts_with("p2|"), "{conflicts:?}");
    assert!(
        conflicts[2].contains("\"cost_usd\":\"0.000000001\""),
        "{conflicts:?}"
    );
}
