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
        "mb-customer: added acme: tier pro from 2026-10-01T00:00:00Z\n"
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
         created:   2026-11-28T12:00:00.000000Z\n\
         \n\
         history:\n\
         EFFECTIVE             FIELD   VALUE       RECORDED\n\
         2026-10-01T00:00:00Z  tier    pro         2026-11-28T12:00:00.000000Z\n\
         2026-10-01T00:00:00Z  status  active      2026-11-28T12:00:00.000000Z\n\
         2026-11-15T00:00:00Z  tier    enterprise  2026-11-28T12:00:00.000000Z\n\
         2026-12-01T00:00:00Z  status  suspended   2026-11-28T12:00:00.000000Z\n"
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
    // 00:00 in Prague (CET, UTC+1) is 23:00 UTC the day before.
    assert_eq!(
        stderr(&o),
        "mb-customer: added acme: tier starter from 2026-10-31T23:00:00Z\n"
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
    let o = env.run("mb-customer", &["list"], "");
    assert_code(&o, 2);
    assert_eq!(
        stderr(&o),
        format!(
            "mb-customer: database {}: no database here; run mb-ingest (or mb-customer) first, or pass --db\n",
            env.db.display()
        )
    );
}
