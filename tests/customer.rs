//! mb-customer: registry, dated history, output formats, bad arguments.

use crate::util::*;

#[test]
fn add_set_list_show_with_history() {
    let env = Env::new();
    let o = env.run(
        "mb-customer",
        &[
            "add",
            "acme",
            "--tier",
            "pro",
            "--vm",
            "vm-2",
            "--vm",
            "vm-1",
            "--stripe-customer",
            "cus_A1",
            "--effective",
            "2026-10-01",
        ],
        "",
    );
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-customer: added acme: tier pro, status active from 2026-10-01 (UTC; 2026-10-01T00:00:00Z)\n"
    );
    assert_code(
        &env.run("mb-customer", &["add", "globex", "--tier", "starter"], ""),
        0,
    );
    // Upgrade mid-November, suspend in December (future). globex gets a
    // change dated before its registration: the later "starter" wins.
    assert_code(
        &env.run(
            "mb-customer",
            &[
                "set",
                "acme",
                "--tier",
                "enterprise",
                "--effective",
                "2026-11-15",
            ],
            "",
        ),
        0,
    );
    assert_code(
        &env.run(
            "mb-customer",
            &[
                "set",
                "acme",
                "--status",
                "suspended",
                "--effective",
                "2026-12-01T00:00:00Z",
            ],
            "",
        ),
        0,
    );
    assert_code(
        &env.run(
            "mb-customer",
            &[
                "set",
                "globex",
                "--tier",
                "pro",
                "--effective",
                "2026-11-01",
                "--add-vm",
                "vm-g",
            ],
            "",
        ),
        0,
    );

    let o = env.run("mb-customer", &["list"], "");
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "CUSTOMER  TIER        STATUS  STRIPE  VMS\n\
         acme      enterprise  active  cus_A1  vm-1,vm-2\n\
         globex    starter     active  -       vm-g\n"
    );
    let o = env.run("mb-customer", &["list", "--at", "2026-12-02", "--csv"], "");
    assert_eq!(
        stdout(&o),
        "customer_id,tier,status,stripe_customer_id,vms,created_at\n\
         acme,enterprise,suspended,cus_A1,vm-1 vm-2,2026-11-28T12:00:00.000000Z\n\
         globex,starter,active,,vm-g,2026-11-28T12:00:00.000000Z\n"
    );
    let o = env.run("mb-customer", &["list", "--at", "2026-10-15", "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["tier"], "pro");
    assert_eq!(
        v[1]["tier"],
        serde_json::Value::Null,
        "globex did not exist yet on 2026-10-15"
    );
    let o = env.run("mb-customer", &["show", "acme"], "");
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "customer:  acme\n\
         tier:      enterprise\n\
         status:    active\n\
         stripe:    cus_A1\n\
         vms:       vm-1 vm-2\n\
         created:   2026-11-28 12:00:00\n\
         \n\
         history (times in UTC):\n\
         ID  EFFECTIVE   FIELD   VALUE       RECORDED             NOTE\n \
          1  2026-10-01  tier    pro         2026-11-28 12:00:00\n \
          2  2026-10-01  status  active      2026-11-28 12:00:00\n \
          5  2026-11-15  tier    enterprise  2026-11-28 12:00:00\n \
          6  2026-12-01  status  suspended   2026-11-28 12:00:00\n"
    );
    let o = env.run("mb-customer", &["show", "acme", "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["history"].as_array().unwrap().len(), 4);
    // The admin view agrees.
    assert_eq!(
        env.query("SELECT customer_id, tier, status, vms FROM customers_v ORDER BY 1")
            .len(),
        2
    );
}

#[test]
fn dates_use_the_configured_zone() {
    let env = Env::new();
    let cfg = env.write("mb.toml", "timezone = \"Europe/Prague\"\n");
    let o = env.run(
        "mb-customer",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "add",
            "acme",
            "--tier",
            "starter",
            "--effective",
            "2026-11-01",
        ],
        "",
    );
    assert_code(&o, 0);
    // Confirmed as typed, in the configured zone; 00:00 in Prague (CET,
    // UTC+1) is 23:00 UTC the day before, shown as a detail.
    assert_eq!(
        stderr(&o),
        "mb-customer: added acme: tier starter, status active from 2026-11-01 \
         (Europe/Prague; 2026-10-31T23:00:00Z)\n"
    );
    // An instant with an offset is shown in the zone too, and set says
    // what it changed and how to withdraw it.
    let o = env.run(
        "mb-customer",
        &[
            "set",
            "acme",
            "--tier",
            "pro",
            "--effective",
            "2026-11-10T08:30:00Z",
            "--config",
            cfg.to_str().unwrap(),
        ],
        "",
    );
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-customer: changed acme: tier starter -> pro from 2026-11-10 09:30 \
         (Europe/Prague; 2026-11-10T08:30:00Z) (change 3; `mb-customer undo 3` withdraws it)\n"
    );
}

#[test]
fn tiers_come_from_the_config() {
    let env = Env::new();
    let cfg = env.write("mb.toml", "[plans]\nbasic = \"99\"\n");
    let c = cfg.to_str().unwrap();
    let o = env.run(
        "mb-customer",
        &["--config", c, "add", "acme", "--tier", "pro"],
        "",
    );
    assert_code(&o, 2);
    assert_eq!(
        stderr(&o),
        "mb-customer: unknown tier \"pro\"; the plans are: basic (set [plans] in mb.toml to change them)\n\nFor more information, try 'mb-customer --help'.\n"
    );
    assert_code(
        &env.run(
            "mb-customer",
            &["--config", c, "add", "acme", "--tier", "basic"],
            "",
        ),
        0,
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["add", "_bad", "--tier", "pro"], "customer id \"_bad\""),
        (&["add", "acme corp", "--tier", "pro"], "must match"),
        (&["add", "acme", "--tier", "gold"], "unknown tier \"gold\""),
        (
            &["add", "acme", "--tier", "pro", "--vm", "vm 1"],
            "vm id \"vm 1\"",
        ),
        (
            &["add", "acme", "--tier", "pro", "--effective", "next week"],
            "--effective \"next week\"",
        ),
        (&["set", "acme"], "nothing to change"),
        (
            &["set", "acme", "--status", "paused"],
            "invalid value 'paused'",
        ),
        (&["add", "acme"], "--tier"),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, needle) in cases {
        let o = env.run("mb-customer", args, "");
        assert_code(&o, 2);
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    assert!(!env.db.exists(), "no usage error creates the database");
    // Domain errors after the database exists.
    assert_code(
        &env.run("mb-customer", &["add", "acme", "--tier", "pro"], ""),
        0,
    );
    let o = env.run("mb-customer", &["add", "acme", "--tier", "pro"], "");
    assert_code(&o, 2);
    assert_eq!(stderr(&o), "mb-customer: customer \"acme\" already exists; use `mb-customer set acme ...` to change it\n");
    let o = env.run("mb-customer", &["set", "nobody", "--tier", "pro"], "");
    assert_code(&o, 2);
    assert!(stderr(&o).contains("no customer \"nobody\""));
    let o = env.run("mb-customer", &["set", "acme", "--remove-vm", "vm-x"], "");
    assert_code(&o, 2);
    let o = env.run("mb-customer", &["show", "nobody"], "");
    assert_code(&o, 2);
    // A bad config is fatal, naming the file.
    let cfg = env.write("bad.toml", "timezone = \"Mars/Olympus\"\n");
    let o = env.run(
        "mb-customer",
        &["--config", cfg.to_str().unwrap(), "list"],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("bad.toml: timezone: \"Mars/Olympus\" is not an IANA zone"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn csv_cells_are_neutralised_and_list_survives_a_closed_pipe() {
    let env = Env::new();
    // A formula is not a Stripe id, so mb-customer refuses it (issue 14)...
    let o = env.run(
        "mb-customer",
        &[
            "add",
            "acme",
            "--tier",
            "pro",
            "--stripe-customer",
            "=HYPERLINK(1)",
        ],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("\"=HYPERLINK(1)\" is not a Stripe customer id: expected cus_"),
        "{}",
        stderr(&o)
    );
    // ...but a database written by hand or by an older mb may hold one, and
    // the CSV must still neutralise it.
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
    rusqlite::Connection::open(&env.db)
        .unwrap()
        .execute(
            "UPDATE customers SET stripe_customer_id = '=HYPERLINK(1)'",
            [],
        )
        .unwrap();
    let o = env.run("mb-customer", &["list", "--csv"], "");
    assert!(stdout(&o).contains(",'=HYPERLINK(1),"), "{}", stdout(&o));
    for i in 0..300 {
        assert_code(
            &env.run(
                "mb-customer",
                &["add", &format!("c{i:04}"), "--tier", "starter"],
                "",
            ),
            0,
        );
    }
    let mut c = env.cmd("mb-customer");
    c.args(["list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
}

#[test]
fn missing_database_for_reading_says_what_to_do() {
    let env = Env::new();
    let o = env.run("mb-customer", &["show", "acme"], "");
    assert_code(&o, 2);
    assert_eq!(
        stderr(&o),
        format!(
            "mb-customer: database {}: no database here; run mb-ingest (or mb-customer) first, or pass --db\n",
            env.db.display()
        )
    );
    // Listing an empty registry is not an error: it says so on stderr,
    // with nothing on stdout.
    let o = env.run("mb-customer", &["list"], "");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!(
            "mb-customer: no customers yet (no database at {}); register one with \
             `mb-customer add ID --tier TIER`\n",
            env.db.display()
        )
    );
    // A database with usage but no customer yet.
    let line = r#"{"v":1,"kind":"activity","id":"a1","ts":"2026-11-01T00:00:00Z","customer_id":"acme","vm_id":"vm-1","activity_type":"command","duration_seconds":1.0}"#;
    assert_code(&env.run("mb-ingest", &[], &format!("{line}\n")), 0);
    let o = env.run("mb-customer", &["list"], "");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "mb-customer: no customers yet; register one with `mb-customer add ID --tier TIER`\n"
    );
    // CSV and JSON stay machine-readable: a header, an empty array.
    let o = env.run("mb-customer", &["list", "--json"], "");
    assert_eq!(stdout(&o), "[]\n");
}

#[test]
fn global_options_work_after_the_subcommand() {
    let env = Env::new();
    let other = env.path("other.db");
    let db = other.to_str().unwrap();
    let o = env.run(
        "mb-customer",
        &["add", "acme", "--tier", "pro", "--db", db],
        "",
    );
    assert_code(&o, 0);
    assert!(other.exists() && !env.db.exists());
    let o = env.run("mb-customer", &["list", "--db", db, "--csv"], "");
    assert_code(&o, 0);
    assert!(stdout(&o).contains("\nacme,pro,active,"), "{}", stdout(&o));
    let o = env.run("mb-customer", &["--db", db, "show", "acme"], "");
    assert_code(&o, 0);
    // And every subcommand's help lists them.
    for sub in ["add", "set", "list", "show", "undo"] {
        let o = env.run("mb-customer", &[sub, "--help"], "");
        assert_code(&o, 0);
        let h = stdout(&o);
        assert!(
            h.contains("--db <PATH>") && h.contains("--config <FILE>"),
            "{sub}: {h}"
        );
    }
}

/// Invoice base lines of November as (description, amount_minor).
fn base_lines(env: &Env) -> Vec<(String, String)> {
    let o = env.run("mb-report", &["invoice", "--month", "2026-11", "--csv"], "");
    assert_code(&o, 0);
    let mut rdr = csv::Reader::from_reader(o.stdout.as_slice());
    rdr.records()
        .map(|r| r.unwrap())
        .filter(|r| &r[4] == "base")
        .map(|r| (r[5].to_string(), r[9].to_string()))
        .collect()
}

#[test]
fn a_wrong_change_is_withdrawn_kept_in_history_and_ignored_by_the_invoice() {
    let env = Env::at("2026-12-02T09:00:00Z");
    let ok = |args: &[&str]| {
        let o = env.run("mb-customer", args, "");
        assert_code(&o, 0);
        stderr(&o)
    };
    ok(&["add", "acme", "--tier", "pro", "--effective", "2026-11-01"]);
    // Meant for December, typed as November.
    let said = ok(&[
        "set",
        "acme",
        "--tier",
        "enterprise",
        "--effective",
        "2026-11-16",
    ]);
    assert_eq!(
        said,
        "mb-customer: changed acme: tier pro -> enterprise from 2026-11-16 \
         (UTC; 2026-11-16T00:00:00Z) (change 3; `mb-customer undo 3` withdraws it)\n"
    );
    // Before: pro Nov 1-15 = 499.00 x 15/30 = 249.50, enterprise Nov 16-30
    // = 833.00 x 15/30 = 416.50.
    let before = base_lines(&env);
    assert_eq!(
        before.iter().map(|l| l.1.as_str()).collect::<Vec<_>>(),
        ["24950", "41650"],
        "{before:?}"
    );
    let said = ok(&["undo", "3", "--reason", "meant December"]);
    assert_eq!(
        said,
        "mb-customer: withdrew change 3 of acme: tier enterprise from 2026-11-16 \
         (UTC; 2026-11-16T00:00:00Z); from then its tier is pro\n"
    );
    // After: pro all month, one line of 499.00.
    let after = base_lines(&env);
    assert_eq!(
        after.iter().map(|l| l.1.as_str()).collect::<Vec<_>>(),
        ["49900"],
        "{after:?}"
    );
    // Nothing was deleted: the change and its withdrawal are both rows.
    assert_eq!(
        env.query("SELECT change_id, field, value FROM customer_changes ORDER BY 1"),
        ["1|tier|pro", "2|status|active", "3|tier|enterprise"]
    );
    assert_eq!(
        env.query("SELECT change_id, withdrawn_at, reason FROM customer_withdrawals"),
        ["3|2026-12-02T09:00:00.000000Z|meant December"]
    );
    assert_eq!(env.query("SELECT tier FROM customers_v"), ["pro"]);
    let o = env.run("mb-customer", &["show", "acme"], "");
    assert!(
        stdout(&o).contains(
            " 3  2026-11-16  tier    enterprise  2026-12-02 09:00:00  withdrawn 2026-12-02 09:00:00 (meant December)\n"
        ),
        "{}",
        stdout(&o)
    );
    let o = env.run("mb-customer", &["show", "acme", "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["customer"]["tier"], "pro");
    assert_eq!(
        v["history"][2]["withdrawn_at"],
        "2026-12-02T09:00:00.000000Z"
    );
    assert_eq!(v["history"][0]["withdrawn_at"], serde_json::Value::Null);
    // Twice, the first tier, an unknown id: refused, nothing written.
    for (args, msg) in [
        (
            &["undo", "3"][..],
            "mb-customer: change 3 of acme was already withdrawn at 2026-12-02T09:00:00.000000Z\n",
        ),
        (
            &["undo", "1"][..],
            "mb-customer: change 1 is acme's first tier; it cannot be withdrawn (the customer \
             would have none). Record the right one with `mb-customer set acme --tier VALUE \
             --effective ...` instead\n",
        ),
        (
            &["undo", "99"][..],
            "mb-customer: no change 99; `mb-customer show CUSTOMER` lists the ids\n",
        ),
    ] {
        let o = env.run("mb-customer", args, "");
        assert_code(&o, 2);
        assert_eq!(stderr(&o), msg);
    }
    assert_eq!(
        env.query("SELECT count(*) FROM customer_withdrawals"),
        ["1"]
    );
}

#[test]
fn an_unreadable_database_says_permission_denied_and_who_owns_it() {
    // Run as "nobody" on a root-owned 0600 database: SQLite alone says only
    // "unable to open database file". Needs root to switch users.
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: permission test not run");
        return;
    }
    let env = Env::new();
    assert_code(
        &env.run("mb-customer", &["add", "acme", "--tier", "pro"], ""),
        0,
    );
    // The test directory must be reachable for nobody; the database not.
    use std::os::unix::fs::PermissionsExt;
    for d in [env.dir.path(), env.db.parent().unwrap()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&env.db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = std::process::Command::new("setpriv");
    c.env_clear()
        .env("MB_DB", &env.db)
        .env("MB_CONFIG", "/dev/null")
        .env("HOME", "/")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin_path("mb-customer"))
        .arg("list");
    let o = c.output().unwrap();
    assert_code(&o, 2);
    assert_eq!(
        stderr(&o),
        format!(
            "mb-customer: database {db}: cannot open: permission denied: {db} is owned by root \
             (mode 0600) and this runs as nobody; run as root (sudo -u root ...) or ask for \
             read access\n",
            db = env.db.display()
        )
    );
}
