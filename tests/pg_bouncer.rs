//! The PostgreSQL store behind the real pgbouncer in transaction mode
//! (Debian 12's 1.18, which does not track prepared statements): the same
//! byte-identical output as SQLite, concurrent writers that lose and double
//! nothing over two shared server connections, and no session state left
//! on a server connection for the next client to trip over (tests/pg starts
//! the pgbouncer; see [`crate::pg::Bouncer`]).

use std::collections::BTreeSet;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use mb::store::pgconn;
use postgres::types::Type;

use crate::pg::{self, Bouncer, Pg};
use crate::pg_or_skip;
use crate::postgres::{api_lines, summary_counts};
use crate::util::*;

/// What a session through `b` into `dbname` finds left on the server
/// connections pgbouncer hands out: each connection's pid, and anything a
/// client kept in a session beyond its transaction (named prepared
/// statements, open cursors, session settings, LISTEN channels), plus
/// temporary tables and advisory locks of any session of the database
/// (pg_locks is the cluster's: only this database's locks count).
/// Asked with the simple query protocol (no statement of its own), once
/// per transaction, enough times to meet every server connection.
fn leftovers(b: &Bouncer, dbname: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut c = pgconn::connect(&b.db(dbname)).unwrap_or_else(|e| panic!("{e}\n{}", b.log()));
    let mut pids = BTreeSet::new();
    let mut left = Vec::new();
    for _ in 0..4 * b.pool_size() {
        let rows = c
            .simple_query(
                "SELECT pg_backend_pid(), \
                 (SELECT string_agg(name, ',') FROM pg_prepared_statements), \
                 (SELECT string_agg(name, ',') FROM pg_cursors), \
                 (SELECT string_agg(name || '=' || setting, ',') FROM pg_settings \
                  WHERE source = 'session' AND name NOT IN ('application_name', \
                  'client_encoding', 'DateStyle', 'TimeZone', 'standard_conforming_strings', \
                  'IntervalStyle')), \
                 (SELECT string_agg(c, ',') FROM pg_listening_channels() c), \
                 (SELECT string_agg(relname, ',') FROM pg_class WHERE relpersistence = 't'), \
                 (SELECT string_agg(objid::text, ',') FROM pg_locks WHERE locktype = 'advisory' \
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            )
            .unwrap();
        for m in rows {
            if let ::postgres::SimpleQueryMessage::Row(r) = m {
                pids.insert(r.get(0).unwrap().to_string());
                for (i, what) in [
                    (1, "prepared statements"),
                    (2, "cursors"),
                    (3, "session settings"),
                    (4, "LISTEN channels"),
                    (5, "temporary tables"),
                    (6, "advisory locks"),
                ] {
                    if let Some(v) = r.get(i) {
                        left.push(format!("server pid {}: {what} {v}", r.get(0).unwrap()));
                    }
                }
            }
        }
    }
    (pids, left)
}

/// The server connections of `dbname` besides this one (all pgbouncer's:
/// every client of the test reaches the database through it).
fn server_backends(pg: &Pg, dbname: &str) -> usize {
    pg.query(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{dbname}' \
             AND backend_type = 'client backend'"
        ),
    )[0]
    .parse()
    .unwrap()
}

/// A NULL of any type, as mb's store sends one (`Value::Null`).
#[derive(Debug)]
struct Null;

impl ::postgres::types::ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut ::postgres::types::private::BytesMut,
    ) -> Result<::postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(::postgres::types::IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    ::postgres::types::to_sql_checked!();
}

/// What the server makes of a NULL parameter declared `unknown` (how
/// mb's store sends a NULL, src/store/db.rs) is what it makes of one whose
/// type is left unspecified, as in a statement prepared without types:
/// inferred from the context, and refused where nothing says.
#[test]
fn a_null_declared_unknown_is_inferred_like_an_unspecified_parameter() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    let mut c = pg.client(&db);
    c.batch_execute("CREATE TABLE t (i BIGINT, s TEXT, f DOUBLE PRECISION, b BYTEA)")
        .unwrap();
    let none = Null;
    let cases = [
        "INSERT INTO t VALUES ($1, $2, $3, $4)",
        "SELECT coalesce($1, i) FROM t",
        "SELECT coalesce($1, s), coalesce($2, f), coalesce($3, b) FROM t",
        "SELECT i FROM t WHERE $1 IS NULL OR s = $1",
        "SELECT CAST($1 AS TEXT) IS NULL",
        "SELECT $1 IS NULL",
        "SELECT $1",
    ];
    let (mut accepted, mut refused) = (0, 0);
    for sql in cases {
        let n = (1..=9).filter(|k| sql.contains(&format!("${k}"))).count();
        let typed: Vec<(&(dyn ::postgres::types::ToSql + Sync), Type)> =
            (0..n).map(|_| (&none as _, Type::UNKNOWN)).collect();
        let declared = c.query_typed(sql, &typed);
        let inferred = c.prepare(sql);
        accepted += usize::from(declared.is_ok());
        match (declared, inferred) {
            (Ok(rows), Ok(st)) => {
                let types: Vec<Type> = st.columns().iter().map(|c| c.type_().clone()).collect();
                if let Some(r) = rows.first() {
                    let got: Vec<Type> = r.columns().iter().map(|c| c.type_().clone()).collect();
                    assert_eq!(got, types, "{sql}: result types");
                }
            }
            (Err(a), Err(b)) => {
                // could not determine the data type (42P18), or
                // inconsistent types deduced (42P08), the same either way.
                assert_eq!(a.code(), b.code(), "{sql}: {a:?} / {b:?}");
                assert!(a.code().is_some(), "{sql}: {a:?}");
                refused += 1;
            }
            (a, b) => panic!("{sql}: declared unknown {a:?}, unspecified {b:?}"),
        }
    }
    assert_eq!((accepted, refused), (5, 2));
    // The row the NULLs went into, read back after the inserts above.
    c.execute_typed(
        "INSERT INTO t VALUES ($1, $2, $3, $4)",
        &[
            (&7i64, Type::INT8),
            (&none, Type::UNKNOWN),
            (&none, Type::UNKNOWN),
            (&none, Type::UNKNOWN),
        ],
    )
    .unwrap();
    assert_eq!(
        pg.query(
            &db,
            "SELECT i, s IS NULL, f IS NULL, b IS NULL FROM t ORDER BY i"
        ),
        ["7|t|t|t", "NULL|t|t|t"]
    );
}

/// Every report, invoice, stripe-meter and events output, the end-to-end
/// month and the dashboard's JSON endpoints are byte-identical to SQLite's
/// when every tool reaches the database through pgbouncer in transaction
/// mode; and nothing of theirs is left on the shared server connections.
#[test]
fn reports_pipeline_and_dashboard_through_pgbouncer_are_byte_identical() {
    let pg = pg_or_skip!();
    let Some(b) = pg::bouncer_or_skip(pg, 2) else {
        return;
    };
    let now = "2026-12-02T12:00:00Z";
    let db = pg.new_db();
    let mut env = Env::at(now);
    env.db = b.db(&db).into();
    crate::postgres::report_parity(env);
    let (pids, left) = leftovers(&b, &db);
    assert_eq!(pids.len(), 2, "both server connections checked: {pids:?}");
    assert_eq!(left, Vec::<String>::new());

    let db = pg.new_db();
    crate::postgres::pipeline_parity(pg, &db, &b.db(&db));
    assert_eq!(leftovers(&b, &db).1, Vec::<String>::new());

    let db = pg.new_db();
    let mut env = Env::at(NOW);
    env.db = b.db(&db).into();
    crate::postgres::dashboard_parity(env);
    assert_eq!(leftovers(&b, &db).1, Vec::<String>::new());
    assert!(
        server_backends(pg, &db) <= 2,
        "pgbouncer kept to its pool: {}",
        b.log()
    );

    // The check sees what a client that prepares by name leaves behind
    // (what mb did before its statements were unnamed).
    let db = pg.new_db();
    let mut c = pgconn::connect(&b.db(&db)).unwrap();
    c.prepare("SELECT 1").unwrap();
    let left = leftovers(&b, &db).1;
    assert!(
        !left.is_empty() && left.iter().all(|l| l.contains("prepared statements s")),
        "{left:?}"
    );
}

/// Eight mb-ingest processes with overlapping lines, and the dashboard
/// answering meanwhile, all through pgbouncer with two server connections:
/// every line stored once, the counts reconcile, and the server never saw
/// more than the pool's two connections.
#[test]
fn concurrent_writers_through_pgbouncer_lose_and_double_nothing() {
    let pg = pg_or_skip!();
    let Some(b) = pg::bouncer_or_skip(pg, 2) else {
        return;
    };
    let writers = 8;
    let per = 3_000;
    let step = 2_000; // consecutive writers share 1,000 lines
    let db = pg.new_db();
    let mut env = Env::at("2026-12-02T12:00:00Z");
    env.db = b.db(&db).into();
    assert_code(&env.run("mb-ingest", &[], ""), 0);
    for w in 0..writers {
        env.write(
            &format!("in/{w}.jsonl"),
            &api_lines("bx", "acme", w * step, per),
        );
    }
    // A few resource and activity lines in each writer's file too (they
    // go one statement each, not by COPY), the same in every file.
    let extra = std::fs::read_to_string(fixture("report/events.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"kind\":\"api\""))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    let extra_n = extra.lines().count();
    assert!(extra_n > 0);
    for w in 0..writers {
        let p = env.path(&format!("in/{w}.jsonl"));
        let mut t = std::fs::read_to_string(&p).unwrap();
        t.push_str(&extra);
        std::fs::write(&p, t).unwrap();
    }
    let distinct = (writers - 1) * step + per;
    let server = crate::dashboard::start(&env, &[]);
    let started = Instant::now();
    let children: Vec<_> = (0..writers)
        .map(|w| {
            let mut c = env.cmd("mb-ingest");
            c.args(["--summary", "json", "--batch", "500"])
                .arg(env.path(&format!("in/{w}.jsonl")))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut dash_reads = 0;
    let mut most_backends = 0;
    let mut outs: Vec<Option<Output>> = Vec::new();
    let mut children: Vec<Option<std::process::Child>> = children.into_iter().map(Some).collect();
    while children.iter().any(Option::is_some) {
        let r = crate::dashboard::get(&server, "/api/v1/summary?month=2026-11");
        assert_eq!(r.status, 200, "dashboard during the load: {}", r.body);
        dash_reads += 1;
        most_backends = most_backends.max(server_backends(pg, &db));
        for c in children.iter_mut() {
            if c.as_mut()
                .is_some_and(|ch| ch.try_wait().unwrap().is_some())
            {
                outs.push(Some(c.take().unwrap().wait_with_output().unwrap()));
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the writers did not finish in 10 minutes; pgbouncer log: {}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed();
    let (mut inserted, mut duplicates) = (0, 0);
    for o in outs.iter().flatten() {
        assert_code(o, 0);
        let s = summary_counts(o);
        assert_eq!(s["read"], (per + extra_n) as u64, "{s}");
        assert_eq!(s["rejected"], 0, "{s}");
        assert_eq!(s["conflicts"], 0, "{s}");
        inserted += s["inserted"].as_u64().unwrap();
        duplicates += s["duplicates"].as_u64().unwrap();
    }
    eprintln!(
        "{writers} writers x {} lines through pgbouncer in {elapsed:?}; {dash_reads} dashboard \
         reads meanwhile; at most {most_backends} server connections",
        per + extra_n
    );
    assert_eq!(outs.len(), writers);
    // 0 lost, 0 doubled, and the runs reconcile with the rows.
    let all = writers * (per + extra_n);
    assert_eq!(inserted as usize, distinct + extra_n);
    assert_eq!(duplicates as usize, all - distinct - extra_n);
    pg.assert_reconciled(
        &db,
        distinct,
        (writers, distinct + extra_n, all - distinct - extra_n, all),
    );
    assert!(dash_reads > 0);
    assert!(
        (1..=2).contains(&most_backends),
        "{most_backends} server connections for {writers} writers and a dashboard"
    );
    let (pids, left) = leftovers(&b, &db);
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_eq!(left, Vec::<String>::new());
    // The dashboard still answers through the same pool after the load
    // (what it shows is compared with SQLite in the parity test above).
    let r = crate::dashboard::get(&server, "/api/v1/summary?month=2026-11");
    assert_eq!(r.status, 200, "{}", r.body);
}

/// What mb's store relies on to leave no statement behind a failed batch
/// (src/store/db.rs): a statement prepared by name in a transaction that
/// then fails is still closed by the protocol's Close (sent when the
/// client drops its handle, before the ROLLBACK), even though the server
/// refuses every other statement of the failed transaction.
#[test]
fn a_statement_closed_in_a_failed_transaction_is_gone() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    let mut c = pg.client(&db);
    c.batch_execute("CREATE TABLE t (i BIGINT UNIQUE); BEGIN")
        .unwrap();
    let st = c
        .prepare_typed("INSERT INTO t VALUES ($1)", &[Type::INT8])
        .unwrap();
    c.execute(&st, &[&1i64]).unwrap();
    let e = c.execute(&st, &[&1i64]).unwrap_err();
    assert_eq!(
        e.code(),
        Some(&::postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    // The transaction is failed: the server refuses anything else...
    assert!(c.simple_query("SELECT 1").is_err());
    // ...but honours the Close that dropping the statement sends.
    drop(st);
    c.batch_execute("ROLLBACK").unwrap();
    let names = |c: &mut ::postgres::Client| -> Vec<String> {
        c.simple_query("SELECT name FROM pg_prepared_statements")
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                ::postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect()
    };
    assert_eq!(names(&mut c), Vec::<String>::new());
    // A statement still held is listed (the check can fail).
    let kept = c.prepare("SELECT 1").unwrap();
    assert_eq!(names(&mut c).len(), 1);
    drop(kept);
}
