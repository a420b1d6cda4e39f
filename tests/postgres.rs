//! The PostgreSQL store against a real server (tests/pg): connecting (TLS,
//! the password file), and, as the backend lands, the same guarantees and
//! byte-identical output as SQLite.

use std::path::Path;

use mb::store::pgconn;

use crate::pg::{self, Pg, SUPERUSER, SUPERUSER_PASSWORD};
use crate::pg_or_skip;

/// A private password file for the superuser over TCP, in `dir`.
fn pgpass(pg: &Pg, dir: &Path) -> String {
    let p = dir.join("pgpass");
    Pg::write_pgpass(
        &p,
        &[format!("*:{}:*:{SUPERUSER}:{SUPERUSER_PASSWORD}", pg.port)],
    );
    p.display().to_string()
}

fn owned(pg: &Pg) -> bool {
    if pg.ca.as_os_str().is_empty() {
        eprintln!("skipping: MB_TEST_PG names an external server whose CA the tests do not know");
        return false;
    }
    true
}

fn ssl_in_use(c: &mut ::postgres::Client) -> bool {
    c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn harness_serves_socket_and_tcp() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    assert_eq!(pg.query(&db, "SELECT 1 + 1"), ["2"]);
    assert_eq!(pg.query(&db, "SELECT current_database()"), [db.as_str()]);
    // The library connects over the unix socket without TLS (none is offered there).
    let mut c = pgconn::connect(&pg.socket_db(&db)).unwrap();
    let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND NOT ssl",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[test]
fn tls_verify_full_with_the_test_ca() {
    let pg = pg_or_skip!();
    if !owned(pg) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let pass = pgpass(pg, t.path());
    let db = pg.new_db();
    // The default sslmode is verify-full: by name and by address (both in the certificate).
    for host in ["localhost", "127.0.0.1"] {
        let spec = format!(
            "host={host} port={} dbname={db} user={SUPERUSER} sslrootcert={} passfile={pass}",
            pg.port,
            pg.ca.display()
        );
        let mut c = pgconn::connect(&spec).unwrap_or_else(|e| panic!("{host}: {e}"));
        assert!(ssl_in_use(&mut c), "{host}: TLS in use");
    }
    // The URI form, with the CA from the query string.
    let mut c = pgconn::connect(&format!("{}&passfile={pass}", pg.tcp_db(&db, SUPERUSER))).unwrap();
    assert!(ssl_in_use(&mut c));
}

#[test]
fn tls_wrong_host_name_or_unknown_ca_is_refused() {
    let pg = pg_or_skip!();
    if !owned(pg) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let pass = pgpass(pg, t.path());
    let db = pg.new_db();
    let base = format!(
        "port={} dbname={db} user={SUPERUSER} passfile={pass}",
        pg.port
    );
    let ca = pg.ca.display();

    // The right server (hostaddr), reached under a name its certificate does not carry.
    let wrong = format!("host=db.wrong.example hostaddr=127.0.0.1 {base} sslrootcert={ca}");
    let err = pgconn::connect(&wrong).err().unwrap().to_string();
    assert!(
        err.contains("certificate does not name host \"db.wrong.example\"")
            && err.contains("sslmode=verify-full"),
        "{err}"
    );
    assert!(!err.contains(SUPERUSER_PASSWORD));
    // verify-ca checks the chain only: the same connection is accepted.
    let mut c = pgconn::connect(&format!("{wrong} sslmode=verify-ca")).unwrap();
    assert!(ssl_in_use(&mut c));

    // No CA given: the system roots do not know the test CA.
    let err = pgconn::connect(&format!("host=localhost {base}"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not signed by a CA in the system's root certificates")
            && err.contains("sslrootcert=FILE or PGSSLROOTCERT"),
        "{err}"
    );
    // A CA file that is not the server's: refused, naming the file.
    let other = t.path().join("other-ca.pem");
    std::fs::write(&other, rcgen_ca()).unwrap();
    let err = pgconn::connect(&format!(
        "host=localhost {base} sslrootcert={}",
        other.display()
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains(&format!("not signed by a CA in {}", other.display())),
        "{err}"
    );

    // require encrypts without checking (libpq's meaning), when no CA file is given.
    let mut c = pgconn::connect(&format!(
        "host=db.wrong.example hostaddr=127.0.0.1 {base} sslmode=require sslrootcert=system"
    ))
    .unwrap();
    assert!(ssl_in_use(&mut c));
    // disable: clear text over TCP only when asked for.
    let mut c = pgconn::connect(&format!("host=localhost {base} sslmode=disable")).unwrap();
    assert!(!ssl_in_use(&mut c));
}

#[test]
fn password_comes_from_a_private_password_file_only() {
    let pg = pg_or_skip!();
    if !owned(pg) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let db = pg.new_db();
    let pass = t.path().join("pgpass");
    let spec = |extra: &str| {
        format!(
            "host=localhost port={} dbname={db} user={SUPERUSER} sslrootcert={} passfile={} {extra}",
            pg.port,
            pg.ca.display(),
            pass.display()
        )
    };
    // A line for another port does not match; the server asks and gets no password.
    Pg::write_pgpass(
        &pass,
        &[format!("localhost:1:*:{SUPERUSER}:{SUPERUSER_PASSWORD}")],
    );
    let err = pgconn::connect(&spec("")).err().unwrap().to_string();
    assert!(err.contains("password file"), "{err}");
    // Escapes and wildcards as libpq reads them.
    Pg::write_pgpass(
        &pass,
        &[format!(
            "localhost:{}:{db}:{SUPERUSER}:{SUPERUSER_PASSWORD}",
            pg.port
        )],
    );
    pgconn::connect(&spec("")).unwrap();
    // Readable by others: ignored (with a warning), so authentication fails.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(pgconn::connect(&spec("")).is_err());
    // A password in the connection string is refused before connecting.
    let err = pgconn::connect(&format!(
        "postgresql://{SUPERUSER}:{SUPERUSER_PASSWORD}@localhost:{}/{db}",
        pg.port
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("refused") && err.contains("PGPASSFILE"),
        "{err}"
    );
    assert!(!err.contains(SUPERUSER_PASSWORD), "{err}");
}

/// A CA certificate of no server (PEM).
fn rcgen_ca() -> String {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap()
        .pem()
}

#[test]
fn a_second_cluster_can_be_stopped_and_restarted() {
    let Some(pg) = pg::private_server() else {
        return;
    };
    let db = pg.new_db();
    pg.stop_server();
    assert!(
        ::postgres::Client::connect(&pg.admin_spec(&db), ::postgres::NoTls).is_err(),
        "stopped"
    );
    pg.start_server().unwrap();
    assert_eq!(pg.query(&db, "SELECT 42"), ["42"]);
}

// ---------------------------------------------------------------------------
// The store on a real server, through the real binaries.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// An environment (clock `now`) whose database is a new database on `pg`,
/// reached over the unix socket as the superuser.
fn pg_env(pg: &Pg, now: &str) -> (Env, String) {
    let mut env = Env::at(now);
    let db = pg.new_db();
    env.db = pg.socket_db(&db).into();
    (env, db)
}

/// The first line where `a` and `b` differ, for a readable failure.
fn first_diff(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i), lb.get(i));
        if x != y {
            return format!("line {}:\n  SQLite:     {x:?}\n  PostgreSQL: {y:?}", i + 1);
        }
    }
    "(only trailing bytes differ)".into()
}

/// Run `bin args` at `now` in both environments and require the same exit
/// status and byte-identical stdout; returns the SQLite run's output.
#[track_caller]
fn same(lite: &Env, pgx: &Env, bin: &str, now: &str, args: &[&str]) -> Output {
    let a = lite.run_at(bin, now, args, "");
    let b = pgx.run_at(bin, now, args, "");
    assert_eq!(
        a.status.code(),
        b.status.code(),
        "{bin} {args:?}: exit status\nSQLite stderr: {}\nPostgreSQL stderr: {}",
        stderr(&a),
        stderr(&b)
    );
    assert!(
        a.stdout == b.stdout,
        "{bin} {args:?}: stdout differs between SQLite and PostgreSQL at {}\nPostgreSQL stderr: {}",
        first_diff(&stdout(&a), &stdout(&b)),
        stderr(&b)
    );
    a
}

#[test]
fn report_fixtures_are_byte_identical_on_both_stores() {
    let pg = pg_or_skip!();
    let now = "2026-12-02T12:00:00Z";
    let (pgx, _) = pg_env(pg, now);
    report_parity(pgx);
}

/// Load the report fixtures into a SQLite environment and into `pgx`
/// (whose database is PostgreSQL, reached however the caller chose), and
/// require every report, invoice, stripe-meter, events and customer
/// output to be byte-identical.
pub(crate) fn report_parity(pgx: Env) {
    let now = "2026-12-02T12:00:00Z";
    let lite = crate::report::setup_in(Env::at(now));
    let pgx = crate::report::setup_in(pgx);
    let month = ["--month", "2026-11"];
    let cases: Vec<Vec<&str>> = vec![
        month.to_vec(),
        [&month[..], &["--json"]].concat(),
        [&month[..], &["--csv"]].concat(),
        [&month[..], &["--customer", "acme", "--csv"]].concat(),
        [&month[..], &["--by-vm"]].concat(),
        [&month[..], &["--by-vm", "--json"]].concat(),
        [&month[..], &["--by-vm", "--csv"]].concat(),
        [&month[..], &["--tz", "Asia/Kolkata", "--json"]].concat(),
        [&month[..], &["--as-of", "2026-12-01T00:00:00Z", "--json"]].concat(),
        vec!["--week", "2026-11-02", "--json"],
        vec!["series", "--month", "2026-11", "--by", "day", "--csv"],
        vec!["series", "--month", "2026-11", "--by", "hour", "--json"],
        vec![
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--csv",
        ],
        vec![
            "invoice",
            "--month",
            "2026-11",
            "--usd-eur",
            "0.92",
            "--json",
        ],
        vec!["invoice", "--month", "2026-11", "--usd-eur", "0.92"],
        vec!["invoice", "--month", "2026-11"],
        vec!["events"],
        vec!["events", "--kind", "api", "--since", "2026-11-05"],
        vec!["events", "--vm", "vm-a1"],
    ];
    let mut ok = 0;
    for args in &cases {
        let o = same(&lite, &pgx, "mb-report", now, args);
        if o.status.code() == Some(0) {
            assert!(!o.stdout.is_empty(), "{args:?}: empty output");
            ok += 1;
        }
    }
    assert!(
        ok >= cases.len() - 2,
        "most cases must succeed ({ok} of {})",
        cases.len()
    );
    // Stripe meter events after the month, as the monthly job runs them.
    for args in [
        &[
            "stripe-meter",
            "--month",
            "2026-11",
            "--event-name",
            "llm_tokens",
        ][..],
        &[
            "stripe-meter",
            "--month",
            "2026-11",
            "--event-name",
            "llm_tokens",
            "--json",
        ],
    ] {
        same(&lite, &pgx, "mb-report", "2026-12-01T03:00:00Z", args);
    }
    // The registry as mb-customer shows it.
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["show", "globex", "--json"],
    ] {
        same(&lite, &pgx, "mb-customer", now, args);
    }
}

/// `mb-report vms` and the dashboard's `/api/v1/vms`. Kept apart: their
/// optional customer filter (`CAST(?N AS TEXT) IS NULL OR customer_id = ?N`)
/// once failed on PostgreSQL only, which cannot infer an untyped
/// parameter's type ("could not determine data type of parameter $4").
#[test]
fn vms_report_is_byte_identical_on_both_stores() {
    let pg = pg_or_skip!();
    let now = "2026-12-02T12:00:00Z";
    let lite = crate::report::setup_in(Env::at(now));
    let (pgx, _) = pg_env(pg, now);
    let pgx = crate::report::setup_in(pgx);
    for args in [&["vms"][..], &["vms", "--json"], &["vms", "--csv"]] {
        same(&lite, &pgx, "mb-report", now, args);
    }
    let lite = crate::dashboard::fixture_env();
    let (pgx, _) = pg_env(pg, NOW);
    let pgx = crate::dashboard::fixture_env_in(pgx);
    let (a, b) = (
        crate::dashboard::start(&lite, &[]),
        crate::dashboard::start(&pgx, &[]),
    );
    let (ra, rb) = (
        crate::dashboard::get(&a, "/api/v1/vms"),
        crate::dashboard::get(&b, "/api/v1/vms"),
    );
    assert_eq!((ra.status, &ra.body), (rb.status, &rb.body));
}

#[test]
fn pipeline_and_dashboard_are_byte_identical_on_both_stores() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    pipeline_parity(pg, &db, &pg.socket_db(&db));
    let (pgx, _) = pg_env(pg, NOW);
    dashboard_parity(pgx);
}

/// The end-to-end month (tests/e2e.rs) on SQLite and on the PostgreSQL
/// database `db`, reached as `spec`: every report and invoice
/// byte-identical.
pub(crate) fn pipeline_parity(pg: &Pg, db: &str, spec: &str) {
    let lite = crate::e2e::build_month_on(None, None);
    let key = lite.env.path("client.key");
    let pgx = crate::e2e::build_month_on(Some(spec), Some(&key));
    // The one input that is not the same in both runs: the command that
    // mb-activity wrapped, whose id is unique per run and whose duration is
    // the wall clock's. Give the PostgreSQL row the SQLite row's, so the
    // comparison is of the stores, not of the clocks.
    let d = lite
        .env
        .query("SELECT id, duration_seconds FROM activity_log WHERE activity_type = 'command'");
    assert_eq!(d.len(), 1);
    let (id, secs) = d[0].split_once('|').unwrap();
    pg.client(db)
        .execute(
            "UPDATE activity_log SET id = $1, duration_seconds = $2 \
             WHERE activity_type = 'command'",
            &[&id, &secs.parse::<f64>().unwrap()],
        )
        .unwrap();
    for args in [
        &[
            "summary",
            "--month",
            "2026-11",
            "--customer",
            "acme",
            "--json",
        ][..],
        &["--month", "2026-11"],
        &["--month", "2026-11", "--by-vm", "--csv"],
        &["invoice", "--month", "2026-11", "--csv"],
        &["invoice", "--month", "2026-11", "--json"],
        &[
            "stripe-meter",
            "--month",
            "2026-11",
            "--event-name",
            "llm_tokens",
        ],
        &["events"],
    ] {
        let a = lite.report(args);
        let b = pgx.report(args);
        assert_eq!(a.status.code(), b.status.code(), "{args:?}: {}", stderr(&b));
        assert!(
            a.stdout == b.stdout,
            "{args:?}: differs at {}; {}",
            first_diff(&stdout(&a), &stdout(&b)),
            stderr(&b)
        );
    }
    assert_eq!(pg.query(db, "SELECT count(*) FROM resource_usage"), ["3"]);
    assert_eq!(pg.query(db, "SELECT count(*) FROM api_usage"), ["3"]);
}

/// The dashboard fixture in SQLite and in `pgx` (a PostgreSQL database):
/// every JSON endpoint's response byte-identical, for the whole fleet and
/// for one customer.
pub(crate) fn dashboard_parity(pgx: Env) {
    let lite = crate::dashboard::fixture_env();
    let pgx = crate::dashboard::fixture_env_in(pgx);
    let targets = [
        "/api/v1/summary",
        "/api/v1/summary?month=2026-11",
        "/api/v1/summary?month=last&customer=acme",
        "/api/v1/summary?period=week&date=2026-11-03",
        "/api/v1/summary?period=day&date=2026-11-05",
        "/api/v1/series?period=day&date=2026-11-03&by=hour&metric=cost_usd&metric=tokens",
        "/api/v1/series?month=2026-11",
        "/api/v1/invoice",
        "/api/v1/invoice?customer=globex",
        "/api/v1/customers",
    ];
    for scope in [&[][..], &["--customer", "acme"]] {
        let a = crate::dashboard::start(&lite, scope);
        let b = crate::dashboard::start(&pgx, scope);
        for t in targets {
            let (ra, rb) = (crate::dashboard::get(&a, t), crate::dashboard::get(&b, t));
            assert_eq!(ra.status, rb.status, "{scope:?} {t}: {}", rb.body);
            assert!(
                ra.body == rb.body,
                "{scope:?} {t}: JSON differs at {}",
                first_diff(
                    &ra.body.replace(",\"", ",\n\""),
                    &rb.body.replace(",\"", ",\n\"")
                )
            );
        }
    }
}

/// `n` valid api lines for `customer`, ids `PREFIX-i` for i in `from..from+n`,
/// spread over November (the shape of mb-tokens' lines).
pub(crate) fn api_lines(prefix: &str, customer: &str, from: usize, n: usize) -> String {
    let mut s = String::with_capacity(n * 520);
    for i in from..from + n {
        let secs = 1_793_491_200 + (i as i64 * 7) % 2_500_000;
        let ts = chrono::DateTime::from_timestamp(secs, (i % 1000) as u32 * 1_000_000)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        s.push_str(&format!(
            r#"{{"v":1,"kind":"api","id":"{prefix}-{i}","ts":"{ts}","customer_id":"{customer}","vm_id":"vm-{customer}","provider":"anthropic","model":"claude-sonnet-4-5","price_key":"claude-sonnet-4-5","tokens_in":{tin},"tokens_out":7,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":"0.{cost:09}","priced":true,"price_table":"builtin-2026-11-01","request_id":"req-{i}","failed":false,"auth_type":"apikey","client":"sha256:{i:016x}","service_tier":null,"source_format":"usage-queue"}}"#,
            tin = 100 + i % 50,
            cost = 300_000 + i % 50 * 3_000 + 105_000,
        ));
        s.push('\n');
    }
    s
}

pub(crate) fn summary_counts(o: &Output) -> serde_json::Value {
    let err = stderr(o);
    let line = err
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary on stderr: {err}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn spool_survives_the_server_being_down() {
    let Some(pg) = pg::private_server() else {
        return;
    };
    let db = pg.new_db();
    let env = Env::at("2026-12-02T12:00:00Z");
    let spec = pg.socket_db(&db);
    // Create the schema while the server is up.
    assert_code(&env.run("mb-ingest", &["--db", &spec], ""), 0);
    let spool = env.path("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let files = 6;
    let per = 20_000;
    for f in 0..files {
        // Each file overlaps the previous one by 1,000 lines.
        let text = api_lines("sp", "acme", f * (per - 1000), per);
        std::fs::write(spool.join(format!("{f:02}.jsonl")), text).unwrap();
    }
    let distinct = (files - 1) * (per - 1000) + per;
    let spool_s = spool.to_str().unwrap();
    let ingest = |extra: &[&str]| {
        let mut c = env.cmd("mb-ingest");
        c.args(["--db", &spec, "--summary", "json", "--spool", spool_s])
            .args(extra);
        c
    };
    let pending = || {
        let mut v: Vec<String> = std::fs::read_dir(&spool)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // 1. The server is down: exit 2, every file kept.
    pg.stop_server();
    let o = run_cmd(&mut ingest(&[]), "");
    assert_code(&o, 2);
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
    assert_eq!(pending().len(), files);

    // 2. The server stops in the middle of a run.
    pg.start_server().unwrap();
    let child = ingest(&[])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let committed = |pg: &Pg| -> i64 {
        ::postgres::Client::connect(&pg.admin_spec(&db), ::postgres::NoTls)
            .ok()
            .and_then(|mut c| c.query_one("SELECT count(*) FROM api_usage", &[]).ok())
            .map_or(0, |r| r.get(0))
    };
    assert!(
        pg::wait_for(Duration::from_secs(120), || committed(&pg) > 0),
        "nothing committed in 2 minutes"
    );
    pg.stop_server();
    let out = child.wait_with_output().unwrap();
    let stopped_after = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(2),
        "mb-ingest must fail when the server goes away (it ran {stopped_after:?}); stderr: {}",
        stderr(&out)
    );
    let left = pending();
    assert!(!left.is_empty() && left.len() <= files, "{left:?}");
    // The file being ingested stays in the spool; only finished files moved.
    let done = std::fs::read_dir(spool.join("done")).map_or(0, |d| d.count());
    assert_eq!(done + left.len(), files);

    // 3. Back up: everything stored exactly once.
    pg.start_server().unwrap();
    let o = run_cmd(&mut ingest(&[]), "");
    assert_code(&o, 0);
    assert!(pending().is_empty());
    assert_eq!(
        pg.query(&db, "SELECT count(*), count(DISTINCT id) FROM api_usage"),
        [format!("{distinct}|{distinct}")]
    );
    // The runs' counts reconcile with the rows: what a failed run
    // committed is counted in its row, and the rerun counts it as
    // duplicates.
    assert_eq!(
        pg.query(
            &db,
            "SELECT sum(inserted) FROM ingest_runs WHERE source <> '-'"
        ),
        [distinct.to_string()]
    );
    let s = summary_counts(&o);
    assert_eq!(s["rejected"], 0);
    assert_eq!(s["conflicts"], 0);
}

#[test]
fn fifty_concurrent_writers_over_tls_while_reports_read() {
    let pg = pg_or_skip!();
    if !owned(pg) {
        return;
    }
    let writers = 50;
    let per = 20_000;
    let step = 15_000; // consecutive writers share 5,000 lines
    let db = pg.new_db();
    let env = Env::at("2026-12-02T12:00:00Z");
    let pass = pgpass(pg, env.dir.path());
    let tcp = pg.tcp_db(&db, SUPERUSER);
    let mut setup = env.cmd("mb-ingest");
    setup.env("PGPASSFILE", &pass).args(["--db", &tcp]);
    assert_code(&run_cmd(&mut setup, ""), 0);
    for w in 0..writers {
        // Line i is the same line in every file that has it.
        env.write(
            &format!("in/{w:02}.jsonl"),
            &api_lines("ld", "acme", w * step, per),
        );
    }
    let distinct = (writers - 1) * step + per;

    // The readers: mb-report and the dashboard, all the time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dash_env = {
        let mut e = Env::at(&env.now);
        e.db = tcp.clone().into();
        e
    };
    std::fs::copy(&pass, dash_env.dir.path().join(".pgpass")).unwrap();
    let server = crate::dashboard::start(&dash_env, &[]);
    let reader = {
        let stop = stop.clone();
        let (tcp, pass, now) = (tcp.clone(), pass.clone(), env.now.clone());
        std::thread::spawn(move || {
            let e = Env::at(&now);
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut c = e.cmd("mb-report");
                c.env("PGPASSFILE", &pass)
                    .args(["--db", &tcp, "--month", "2026-11", "--json"]);
                let o = run_cmd(&mut c, "");
                assert!(
                    matches!(o.status.code(), Some(0 | 1)),
                    "mb-report during the load: {}",
                    stderr(&o)
                );
                reads += 1;
                // A report every half second, as a busy dashboard or
                // Grafana would ask, without starving the writers of CPU.
                std::thread::sleep(Duration::from_millis(500));
            }
            reads
        })
    };
    let started = Instant::now();
    let children: Vec<_> = (0..writers)
        .map(|w| {
            let mut c = env.cmd("mb-ingest");
            c.env("PGPASSFILE", &pass)
                .args(["--db", &tcp, "--summary", "json"])
                .arg(env.path(&format!("in/{w:02}.jsonl")))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut dash_reads = 0;
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| {
            let r = crate::dashboard::get(&server, "/api/v1/summary?month=2026-11");
            assert_eq!(r.status, 200, "dashboard during the load: {}", r.body);
            dash_reads += 1;
            c.wait_with_output().unwrap()
        })
        .collect();
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let reports = reader.join().unwrap();
    let mut inserted = 0;
    let mut duplicates = 0;
    for (w, o) in outs.iter().enumerate() {
        assert_code(o, 0);
        let s = summary_counts(o);
        assert_eq!(s["read"], per as u64, "writer {w}");
        assert_eq!(s["rejected"], 0, "writer {w}");
        assert_eq!(s["conflicts"], 0, "writer {w}");
        inserted += s["inserted"].as_u64().unwrap();
        duplicates += s["duplicates"].as_u64().unwrap();
    }
    eprintln!(
        "{writers} writers x {per} lines in {elapsed:?}; {reports} mb-report and {dash_reads} dashboard reads meanwhile"
    );
    // 0 lost, 0 doubled, and the runs reconcile with the rows.
    assert_eq!(inserted as usize, distinct);
    assert_eq!(duplicates as usize, writers * per - distinct);
    pg.assert_reconciled(
        &db,
        distinct,
        (writers, distinct, writers * per - distinct, writers * per),
    );
    assert!(reports > 0 && dash_reads > 0);
}

/// Run scripts/pg-setup.sh as the test cluster's superuser; its stdout.
fn pg_setup(pg: &Pg, args: &[&str]) -> String {
    let o = std::process::Command::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-setup.sh"),
    )
    .args(args)
    .env("PGHOST", &pg.socket_dir)
    .env("PGPORT", pg.port.to_string())
    .env("PGUSER", SUPERUSER)
    .env("PSQL", pg.bin.join("psql"))
    .env("PGPASS_HOST", "localhost")
    .env("PGPASS_PORT", pg.port.to_string())
    .output()
    .unwrap();
    assert_code(&o, 0);
    stdout(&o)
}

#[test]
fn vm_roles_reach_only_their_own_customers_rows() {
    let pg = pg_or_skip!();
    if !owned(pg) {
        return;
    }
    // Roles are cluster-wide: names of this test's own.
    let tag = format!("{}_{}", std::process::id(), rand_tag());
    let db = format!("mbroles_{tag}");
    let owner = format!("own_{tag}");
    let (vm_a, vm_b, rep) = (
        format!("vma_{tag}"),
        format!("vmb_{tag}"),
        format!("rep_{tag}"),
    );
    pg_setup(pg, &["init", &db, &owner]);
    let env = Env::at("2026-12-02T12:00:00Z");
    let as_owner = format!(
        "host={} port={} user={owner} dbname={db}",
        pg.socket_dir.display(),
        pg.port
    );
    // The owner creates the schema, registers the customers, and stores
    // some of both customers' usage.
    let own = |args: &[&str], stdin: &str| {
        let mut c = env.cmd(args[0]);
        c.args(["--db", &as_owner]).args(&args[1..]);
        run_cmd(&mut c, stdin)
    };
    assert_code(&own(&["mb-ingest"], ""), 0);
    pg_setup(pg, &["grant", &db]);
    let mut pass = vec![pg_setup(pg, &["add-vm", &db, &vm_a, "acme"])];
    pass.push(pg_setup(pg, &["add-vm", &db, &vm_b, "globex"]));
    pass.push(pg_setup(pg, &["add-reader", &db, &rep, "report"]));
    let pass: Vec<String> = pass.iter().map(|l| l.trim().to_string()).collect();
    assert!(
        pass.iter()
            .all(|l| l.starts_with(&format!("localhost:{}:{db}:", pg.port))),
        "{pass:?}"
    );
    let passfile = env.path("pgpass");
    Pg::write_pgpass(&passfile, &pass);
    // A second run of grant changes nothing (idempotent).
    pg_setup(pg, &["grant", &db]);
    for c in ["acme", "globex"] {
        assert_code(
            &own(
                &[
                    "mb-customer",
                    "add",
                    c,
                    "--tier",
                    "pro",
                    "--effective",
                    "2026-10-01",
                ],
                "",
            ),
            0,
        );
    }
    assert_code(
        &own(&["mb-ingest", "-q"], &api_lines("a", "acme", 0, 100)),
        0,
    );
    assert_code(
        &own(&["mb-ingest", "-q"], &api_lines("g", "globex", 0, 100)),
        0,
    );

    let as_role = |role: &str, bin: &str, args: &[&str], stdin: &str| {
        let mut c = env.cmd(bin);
        c.env("PGPASSFILE", &passfile)
            .args(["--db", &pg.tcp_db(&db, role)])
            .args(args);
        run_cmd(&mut c, stdin)
    };
    let count = |who: &str| {
        pg.query(
            &db,
            &format!("SELECT count(*) FROM api_usage WHERE customer_id = '{who}'"),
        )
    };

    // vm_a stores its own customer's usage, and tells its re-sent lines
    // (stored by the owner) apart as duplicates by reading them back.
    let o = as_role(
        &vm_a,
        "mb-ingest",
        &["--summary", "json"],
        &api_lines("a", "acme", 50, 100),
    );
    assert_code(&o, 0);
    let s = summary_counts(&o);
    assert_eq!(
        (s["inserted"].as_u64(), s["duplicates"].as_u64()),
        (Some(50), Some(50)),
        "{s}"
    );
    assert_eq!(count("acme"), ["150"]);
    // Lines of an hour the store has none of (lines 1000-1009 are 7,000 s
    // in): their rollup rows are new, which the owner COPYs, but row-level
    // security refuses COPY FROM, so a VM's role upserts them.
    let o = as_role(&vm_a, "mb-ingest", &[], &api_lines("h", "acme", 1000, 10));
    assert_code(&o, 0);
    assert_eq!(count("acme"), ["160"]);
    assert_eq!(
        pg.query(
            &db,
            "SELECT (SELECT sum(requests) FROM api_rollup WHERE customer_id = 'acme'), \
             (SELECT sum(events) FROM vm_event_hours WHERE customer_id = 'acme' AND kind = 'api')"
        ),
        ["160|160"]
    );
    // Its runs are recorded under its own name.
    assert_eq!(
        pg.query(
            &db,
            &format!("SELECT count(*) FROM ingest_runs WHERE db_user = '{vm_a}'")
        ),
        ["2"]
    );

    // vm_a cannot write globex's usage: the batch fails, nothing is stored.
    let o = as_role(&vm_a, "mb-ingest", &[], &api_lines("x", "globex", 0, 10));
    assert_code(&o, 2);
    assert!(stderr(&o).contains("row-level security"), "{}", stderr(&o));
    assert_eq!(count("globex"), ["100"]);

    // An id that globex's event already has, sent by vm_a for acme: vm_a
    // cannot see the stored row to compare it, so the line is a conflict,
    // recorded and kept out; globex's row is untouched.
    let o = as_role(
        &vm_a,
        "mb-ingest",
        &["--summary", "json"],
        &api_lines("g", "acme", 0, 1),
    );
    assert_code(&o, 1);
    assert_eq!(summary_counts(&o)["conflicts"], 1);
    assert_eq!(
        pg.query(&db, "SELECT customer_id FROM api_usage WHERE id = 'g-0'"),
        ["globex"]
    );

    // vm_a sees only acme's rows, through any query.
    let mut c = pgconn::connect(&format!(
        "{}&passfile={}",
        pg.tcp_db(&db, &vm_a),
        passfile.display()
    ))
    .unwrap();
    let seen: Vec<(String, i64)> = c
        .query(
            "SELECT customer_id, count(*) FROM api_usage GROUP BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(seen, [("acme".to_string(), 160)]);
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM api_rollup WHERE customer_id = 'globex'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    for sql in [
        "SELECT * FROM api_usage_v",
        "SELECT * FROM customers",
        "SELECT * FROM rejects",
        "DELETE FROM api_usage",
        "UPDATE api_usage SET cost_nusd = 0",
    ] {
        let e = c
            .batch_execute(sql)
            .err()
            .unwrap_or_else(|| panic!("{sql} must be refused"));
        assert_eq!(
            e.code(),
            Some(&::postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {e}"
        );
    }
    // Nor can it report on globex.
    let o = as_role(
        &vm_a,
        "mb-report",
        &["--month", "2026-11", "--customer", "globex", "--json"],
        "",
    );
    assert!(
        !stdout(&o).contains("\"cost_usd\": \"0.0"),
        "{}",
        stdout(&o)
    );

    // vm_b, the same for globex.
    let o = as_role(
        &vm_b,
        "mb-ingest",
        &["-q"],
        &api_lines("g", "globex", 100, 10),
    );
    assert_code(&o, 0);
    assert_eq!(count("globex"), ["110"]);

    // The report role reads everything and writes nothing.
    let o = as_role(&rep, "mb-report", &["--month", "2026-11", "--json"], "");
    assert_code(&o, 0);
    assert!(stdout(&o).contains("\"globex\"") && stdout(&o).contains("\"acme\""));
    let o = as_role(&rep, "mb-ingest", &[], &api_lines("r", "acme", 0, 5));
    assert_code(&o, 2);
    assert_eq!(count("acme"), ["160"]);
    let mut c = pgconn::connect(&format!(
        "{}&passfile={}",
        pg.tcp_db(&db, &rep),
        passfile.display()
    ))
    .unwrap();
    let e = c
        .batch_execute("INSERT INTO rejects (run_id, source, line_no, reason, line, rejected_at) VALUES (1, 's', 1, 'r', 'x', 't')")
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(&::postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{e}"
    );
}

fn rand_tag() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

#[test]
fn tools_refuse_a_bad_certificate_and_a_password_in_db() {
    let pg = pg_or_skip!();
    if !owned(pg) {
        return;
    }
    let db = pg.new_db();
    let env = Env::at("2026-12-02T12:00:00Z");
    let pass = pgpass(pg, env.dir.path());
    let run = |bin: &str, spec: &str, args: &[&str]| {
        let mut c = env.cmd(bin);
        c.env("PGPASSFILE", &pass).args(["--db", spec]).args(args);
        run_cmd(&mut c, "")
    };
    let good = pg.tcp_db(&db, SUPERUSER);
    assert_code(&run("mb-ingest", &good, &[]), 0);
    assert_code(&run("mb-report", &good, &["--month", "2026-11"]), 0);
    // Environment variables name the server as for psql.
    let mut c = env.cmd("mb-report");
    c.env("PGPASSFILE", &pass)
        .env("PGHOST", "localhost")
        .env("PGPORT", pg.port.to_string())
        .env("PGUSER", SUPERUSER)
        .env("PGDATABASE", &db)
        .env("PGSSLROOTCERT", &pg.ca)
        .args(["--db", "postgresql://", "--month", "2026-11"]);
    assert_code(&run_cmd(&mut c, ""), 0);

    let wrong = format!(
        "postgresql://{SUPERUSER}@db.wrong.example:{}/{db}?hostaddr=127.0.0.1&sslrootcert={}",
        pg.port,
        pg.ca.display()
    );
    let o = run("mb-report", &wrong, &["--month", "2026-11"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("does not name host \"db.wrong.example\""),
        "{}",
        stderr(&o)
    );
    let no_ca = format!("postgresql://{SUPERUSER}@localhost:{}/{db}", pg.port);
    let o = run("mb-ingest", &no_ca, &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("not signed by a CA"), "{}", stderr(&o));
    let with_pw = format!(
        "postgresql://{SUPERUSER}:{SUPERUSER_PASSWORD}@localhost:{}/{db}?sslrootcert={}",
        pg.port,
        pg.ca.display()
    );
    for bin in ["mb-ingest", "mb-report", "mb-customer"] {
        let args: &[&str] = if bin == "mb-customer" { &["list"] } else { &[] };
        let o = run(bin, &with_pw, args);
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains("password in the connection string is refused"),
            "{bin}: {}",
            stderr(&o)
        );
        assert!(
            !stderr(&o).contains(SUPERUSER_PASSWORD),
            "{bin}: {}",
            stderr(&o)
        );
    }
}

/// A PostgreSQL client program of the test cluster's (pg_dump, psql, ...)
/// run as this process's user; its output, after requiring exit 0.
#[track_caller]
fn pg_tool(pg: &Pg, name: &str, args: &[&str]) -> Output {
    let o = std::process::Command::new(pg.bin.join(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_code(&o, 0);
    o
}

/// docs/postgres.md's backup and restore, step by step: `pg_dump
/// --format=custom` of a loaded store (customers, api, resource and
/// activity events, a reprice, invoices), `pg_dumpall --roles-only`, and on a
/// new server the roles, `pg-setup.sh init`, `pg_restore --no-owner
/// --role=OWNER --exit-on-error` as the owner, `pg-setup.sh grant`. Every
/// report, invoice, stripe-meter, events and customer output is
/// byte-identical before and after, `--as-of` an earlier stamp too; the
/// row-level security comes back; and ingest continues where the dump
/// left off: identity rowids and run ids after the restored ones,
/// `ingested_at` not before the restored clock, re-sent lines duplicates.
#[test]
fn pg_dump_and_pg_restore_keep_every_output_and_ingest_continues() {
    let pg = pg_or_skip!();
    if !owned(pg) {
        return;
    }
    let Some(new) = pg::private_server() else {
        return;
    };
    let tag = format!("{}_{}", std::process::id(), rand_tag());
    let (db, owner, vm) = (
        format!("mbdump_{tag}"),
        format!("own_{tag}"),
        format!("vmd_{tag}"),
    );
    let as_owner = |p: &Pg| {
        format!(
            "host={} port={} user={owner} dbname={db}",
            p.socket_dir.display(),
            p.port
        )
    };
    let now = "2026-12-02T12:00:00Z";

    // The store, set up as docs/postgres.md says, and loaded by the owner.
    pg_setup(pg, &["init", &db, &owner]);
    let mut env = Env::at(now);
    env.db = as_owner(pg).into();
    assert_code(&env.run("mb-ingest", &[], ""), 0);
    pg_setup(pg, &["grant", &db]);
    let vm_pass = pg_setup(pg, &["add-vm", &db, &vm, "acme"]);
    let env = crate::report::setup_in(env);
    // Unpriced usage from mb-tokens, priced afterwards by a reprice.
    let o = env.run(
        "mb-tokens",
        &[
            "--customer",
            "acme",
            "--vm",
            "vm-a1",
            fixture("tokens/reprice.jsonl").to_str().unwrap(),
        ],
        "",
    );
    assert_code(&o, 1);
    assert_code(&env.run("mb-ingest", &["-q"], &stdout(&o)), 0);
    let prices = env.write(
        "new-prices.json",
        r#"{"gpt-5.5": {"litellm_provider": "openai", "input_cost_per_token": 5e-06, "output_cost_per_token": 3e-05}}"#,
    );
    let o = env.run(
        "mb-tokens",
        &["reprice", "--prices", prices.to_str().unwrap()],
        "",
    );
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with("# 1 rows priced"), "{}", stdout(&o));
    // A stamp between two ingest runs, for --as-of; then more usage.
    let stamp = pg.query(&db, "SELECT last_ingested_at FROM mb_clock")[0].clone();
    std::thread::sleep(Duration::from_millis(20));
    assert_code(
        &env.run("mb-ingest", &["-q"], &api_lines("late", "acme", 0, 40)),
        0,
    );

    let month = ["--month", "2026-11"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("mb-report", [&month[..], &["--json"]].concat()),
        ("mb-report", [&month[..], &["--by-vm", "--csv"]].concat()),
        (
            "mb-report",
            [&month[..], &["--as-of", &stamp, "--json"]].concat(),
        ),
        (
            "mb-report",
            vec!["series", "--month", "2026-11", "--by", "day", "--csv"],
        ),
        (
            "mb-report",
            vec![
                "invoice",
                "--month",
                "2026-11",
                "--usd-eur",
                "0.92",
                "--json",
            ],
        ),
        (
            "mb-report",
            vec![
                "invoice",
                "--month",
                "2026-11",
                "--usd-eur",
                "0.92",
                "--csv",
            ],
        ),
        (
            "mb-report",
            vec![
                "invoice",
                "--month",
                "2026-11",
                "--usd-eur",
                "0.92",
                "--as-of",
                &stamp,
                "--csv",
            ],
        ),
        (
            "mb-report",
            vec![
                "stripe-meter",
                "--month",
                "2026-11",
                "--event-name",
                "llm_tokens",
            ],
        ),
        ("mb-report", vec!["events"]),
        ("mb-customer", vec!["list", "--json"]),
        ("mb-customer", vec!["show", "acme", "--json"]),
    ];
    let run_all = |spec: &str| -> Vec<Output> {
        let mut e = Env::at(now);
        e.db = spec.into();
        cases
            .iter()
            .map(|(bin, args)| e.run(bin, args, ""))
            .collect()
    };
    let before = run_all(&as_owner(pg));
    for ((bin, args), o) in cases.iter().zip(&before) {
        assert_code(o, 0);
        assert!(!o.stdout.is_empty(), "{bin} {args:?}");
    }
    // --as-of really cuts: the earlier stamp leaves out the late lines.
    assert_ne!(before[0].stdout, before[2].stdout);
    let stored = |p: &Pg, sql: &str| p.query(&db, sql);
    let state =
        "SELECT (SELECT max(rowid) FROM api_usage), (SELECT max(run_id) FROM ingest_runs), \
                 (SELECT last_ingested_at FROM mb_clock), (SELECT count(*) FROM reprice_log), \
                 (SELECT string_agg(role_name || ':' || customer_id, ',') FROM mb_vm_roles), \
                 (SELECT count(*) FROM pg_policies), \
                 (SELECT relrowsecurity FROM pg_class WHERE relname = 'api_usage'), \
                 (SELECT datacl::text FROM pg_database WHERE datname = current_database())";
    let state_before = stored(pg, state);

    // The backup, as the owner.
    let t = tempfile::tempdir().unwrap();
    let dump = t.path().join("mb.dump");
    let roles = t.path().join("roles.sql");
    let dump_s = dump.to_str().unwrap();
    pg_tool(
        pg,
        "pg_dump",
        &[
            "--format=custom",
            &format!("--file={dump_s}"),
            &as_owner(pg),
        ],
    );
    let list = pg_tool(pg, "pg_restore", &["--list", dump_s]);
    assert!(
        stdout(&list).contains("TABLE DATA public api_usage"),
        "{}",
        stdout(&list)
    );
    pg_tool(
        pg,
        "pg_dumpall",
        &[
            "--roles-only",
            &format!("--file={}", roles.display()),
            &format!("--dbname={}", pg.admin_spec("postgres")),
        ],
    );

    // The restore into the new server.
    pg_tool(
        &new,
        "psql",
        &[
            "-X",
            "-q",
            "-f",
            roles.to_str().unwrap(),
            &new.admin_spec("postgres"),
        ],
    );
    pg_setup(&new, &["init", &db, &owner]);
    pg_tool(
        &new,
        "pg_restore",
        &[
            &format!("--dbname={}", as_owner(&new)),
            "--no-owner",
            &format!("--role={owner}"),
            "--exit-on-error",
            dump_s,
        ],
    );
    // The dump brought the row-level security policies and the VM mapping
    // back, but not the database's own privileges (pg_dump writes those
    // only for --create): `grant` puts them back.
    let fields =
        |p: &Pg| -> Vec<String> { stored(p, state)[0].split('|').map(str::to_string).collect() };
    let (was, now_is) = (fields(pg), fields(&new));
    assert_eq!(was[4..7], now_is[4..7]);
    assert_eq!(now_is[7], "NULL");
    pg_setup(&new, &["grant", &db]);

    let after = run_all(&as_owner(&new));
    for (((bin, args), a), b) in cases.iter().zip(&before).zip(&after) {
        assert_eq!(
            a.status.code(),
            b.status.code(),
            "{bin} {args:?}: {}",
            stderr(b)
        );
        assert!(
            a.stdout == b.stdout,
            "{bin} {args:?}: differs after the restore at {}",
            first_diff(&stdout(a), &stdout(b))
        );
    }
    // The counters, the clock, the reprice audit, the VM mapping, the
    // policies and the database's privileges came back as they were.
    assert_eq!(stored(&new, state), state_before);

    // Ingest continues: re-sent lines are duplicates, new ones follow.
    let mut e = Env::at(now);
    e.db = as_owner(&new).into();
    let o = e.run(
        "mb-ingest",
        &[
            "--summary",
            "json",
            fixture("report/events.jsonl").to_str().unwrap(),
        ],
        "",
    );
    assert_code(&o, 0);
    let s = summary_counts(&o);
    assert_eq!(
        (s["inserted"].as_u64(), s["duplicates"].as_u64()),
        (Some(0), Some(15)),
        "{s}"
    );
    let o = e.run(
        "mb-ingest",
        &["--summary", "json"],
        &api_lines("late", "acme", 20, 40),
    );
    assert_code(&o, 0);
    let s = summary_counts(&o);
    assert_eq!(
        (s["inserted"].as_u64(), s["duplicates"].as_u64()),
        (Some(20), Some(20)),
        "{s}"
    );
    let old: Vec<&str> = state_before[0].split('|').collect();
    assert_eq!(
        stored(
            &new,
            &format!(
                "SELECT min(rowid) > {rowid}, min(run_id) > {run}, min(ingested_at) >= '{clock}', \
                 count(*) FROM api_usage WHERE run_id > {run}",
                rowid = old[0],
                run = old[1],
                clock = old[2]
            )
        ),
        ["t|t|t|20"]
    );

    // The VM's login (its role and password from roles.sql) reaches only
    // its customer's rows on the new server: the policies came back.
    let line = vm_pass
        .trim()
        .replacen(&format!(":{}:", pg.port), &format!(":{}:", new.port), 1);
    let passfile = t.path().join("pgpass");
    Pg::write_pgpass(&passfile, &[line]);
    let mut c = pgconn::connect(&format!(
        "{}&passfile={}",
        new.tcp_db(&db, &vm),
        passfile.display()
    ))
    .unwrap();
    let seen: Vec<String> = c
        .query("SELECT DISTINCT customer_id FROM api_usage", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, ["acme"]);
    assert_eq!(
        stored(
            &new,
            "SELECT count(DISTINCT customer_id) > 1 FROM api_usage"
        ),
        ["t"]
    );
}
