//! mb-dashboard's pool of read-only stores against a real PostgreSQL
//! server (tests/pg): many requests share a few kept server connections,
//! and the dashboard recovers when its connections are cut (a backend
//! terminated by the admin, a server restart). The byte-identical output
//! of the dashboard on both stores is in tests/postgres.rs.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::dashboard::{fixture_env_in, get, get_from, start, Server};
use crate::pg::Pg;
use crate::pg_or_skip;
use crate::util::*;

/// The most server connections one mb-dashboard may hold: its request
/// threads' pool (mb::dashboard::DB_CONNECTIONS) and the cache's probe.
const BOUND: usize = mb::dashboard::DB_CONNECTIONS + 1;

/// The dashboard fixture in a new database on `pg`, and the `--db` value
/// the dashboard gets: the same database under application name `app`, so
/// its connections can be told apart in pg_stat_activity.
fn fixture_on(pg: &Pg, app: &str) -> (Env, String) {
    let mut env = Env::at(NOW);
    let db = pg.new_db();
    env.db = pg.socket_db(&db).into();
    let mut env = fixture_env_in(env);
    env.db = format!("{} application_name={app}", pg.socket_db(&db)).into();
    (env, db)
}

/// The backends of application `app`: their pids.
fn backends(pg: &Pg, db: &str, app: &str) -> Vec<String> {
    pg.query(
        db,
        &format!("SELECT pid FROM pg_stat_activity WHERE application_name = '{app}'"),
    )
}

/// `n` requests from each of `threads` clients at once, over URLs that
/// read the database on every request (`/api/v1/vms` is not cached) or on
/// their first (a summary per day). Returns the statuses that were not 200,
/// with their bodies.
fn load(s: &Server, threads: usize, n: usize) -> Vec<String> {
    let bad = Mutex::new(Vec::new());
    let addr = s.addr();
    std::thread::scope(|sc| {
        for t in 0..threads {
            let bad = &bad;
            sc.spawn(move || {
                for i in 0..n {
                    let url = if i % 2 == 0 {
                        "/api/v1/vms".to_string()
                    } else {
                        format!(
                            "/api/v1/summary?period=day&date=2026-11-{:02}",
                            1 + (t * n + i) % 28
                        )
                    };
                    let r = get_from(addr, &url);
                    if r.status != 200 {
                        bad.lock()
                            .unwrap()
                            .push(format!("{url}: {} {}", r.status, r.body));
                    }
                }
            });
        }
    });
    bad.into_inner().unwrap()
}

#[test]
fn many_requests_share_a_bounded_set_of_kept_connections() {
    let pg = pg_or_skip!();
    let app = format!("mb_pool_{}", std::process::id());
    let (env, db) = fixture_on(pg, &app);
    let s = start(&env, &[]);
    // Watch the dashboard's backends while 16 clients send 480 requests.
    let done = AtomicBool::new(false);
    let (most, seen, bad) = std::thread::scope(|sc| {
        let watch = sc.spawn(|| {
            let mut c = pg.client(&db);
            let q = "SELECT pid FROM pg_stat_activity WHERE application_name = $1";
            let (mut most, mut seen) = (0, BTreeSet::new());
            while !done.load(Ordering::SeqCst) {
                let pids: Vec<i32> = c
                    .query(q, &[&app])
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                most = most.max(pids.len());
                seen.extend(pids);
                std::thread::sleep(Duration::from_millis(10));
            }
            (most, seen)
        });
        let bad = load(&s, 16, 30);
        done.store(true, Ordering::SeqCst);
        let (most, seen) = watch.join().unwrap();
        (most, seen, bad)
    });
    assert!(bad.is_empty(), "failed requests: {bad:?}");
    assert!(
        (2..=BOUND).contains(&most),
        "{most} server connections at once (bound {BOUND})"
    );
    // Kept, not reopened per request: 480 requests were served by no more
    // backends than the bound, and they are still there, idle.
    assert!(
        seen.len() <= BOUND,
        "{} distinct backends served 480 requests: {seen:?}",
        seen.len()
    );
    let idle = backends(pg, &db, &app);
    assert!(
        !idle.is_empty() && idle.len() <= BOUND,
        "after the load: {idle:?}"
    );

    // The admin terminates them (or idle_session_timeout does): the next
    // requests notice, drop the dead connections and succeed on new ones.
    pg.query(
        &db,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{app}'"
        ),
    );
    assert!(crate::pg::wait_for(Duration::from_secs(10), || backends(
        pg, &db, &app
    )
    .is_empty()));
    let bad = load(&s, 8, 6);
    assert!(
        bad.is_empty(),
        "after the backends were terminated: {bad:?}"
    );
    let r = get(&s, "/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert!(backends(pg, &db, &app).len() <= BOUND);
}

#[test]
fn the_dashboard_recovers_after_the_server_restarts() {
    let Some(pg) = crate::pg::private_server() else {
        return;
    };
    let app = "mb_pool_restart";
    let (env, db) = fixture_on(&pg, app);
    let s = start(&env, &[]);
    assert!(load(&s, 8, 4).is_empty());
    assert!(!backends(&pg, &db, app).is_empty(), "connections are kept");

    // A restart between two requests: every kept connection is dead, and
    // the first requests after it must not fail because of that.
    pg.stop_server();
    pg.start_server().unwrap();
    let bad = load(&s, 8, 4);
    assert!(bad.is_empty(), "after the restart: {bad:?}");
    let after = backends(&pg, &db, app);
    assert!(
        !after.is_empty() && after.len() <= BOUND,
        "after the restart: {after:?}"
    );

    // While the server is down: 503 at once (no wait for a connect
    // timeout), and /healthz says so; once it is back, 200 again.
    pg.stop_server();
    let t = Instant::now();
    let r = get(&s, "/api/v1/vms");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        r.body,
        "{\"error\":\"the usage database is not available right now\"}\n"
    );
    assert_eq!(get(&s, "/healthz").status, 503);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?} to fail",
        t.elapsed()
    );
    pg.start_server().unwrap();
    let bad = load(&s, 4, 4);
    assert!(bad.is_empty(), "after the server came back: {bad:?}");
    assert_eq!(get(&s, "/healthz").status, 200);
}
