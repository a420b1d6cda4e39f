//! The PostgreSQL store's write path against a real server (tests/pg):
//! duplicates and conflicts by content (stored ids, ids repeated in one
//! batch, rows another role cannot see), whole batches or nothing, the
//! customer-hour bound, a commit-ordered `ingested_at`, and the schema
//! version check with SQLite's message.

use mb::events::parse_line;
use mb::store::{InsertResult, Mode, Store};

use crate::pg_or_skip;
use crate::util::{assert_code, fixture, stderr, Env};

fn api(id: &str, minute: u32, tokens_in: u64) -> String {
    format!(
        r#"{{"v":1,"kind":"api","id":"{id}","ts":"2026-11-03T10:{minute:02}:00Z","customer_id":"acme","vm_id":"vm-1","provider":"openai","model":"gpt-4o","price_key":"gpt-4o","tokens_in":{tokens_in},"tokens_out":5,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":"0.001","priced":true,"price_table":"t","request_id":null,"failed":false,"auth_type":"apikey","client":null,"service_tier":null,"source_format":"test"}}"#
    )
}

/// mb-ingest with `--db spec`.
fn ingest(env: &Env, spec: &str, file: &std::path::Path) -> std::process::Output {
    env.run("mb-ingest", &["--db", spec, file.to_str().unwrap()], "")
}

#[test]
fn duplicates_and_conflicts_are_told_apart_by_content() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    let spec = pg.socket_db(&db);
    let env = Env::at("2026-12-02T12:00:00Z");
    let f = fixture("report/events.jsonl");
    let o = ingest(&env, &spec, &f);
    assert_code(&o, 0);
    assert!(stderr(&o).ends_with("read 15, inserted 15, duplicates 0, conflicts 0, rejected 0\n"));
    let o = ingest(&env, &spec, &f);
    assert_code(&o, 0);
    assert!(stderr(&o).ends_with("read 15, inserted 0, duplicates 15, conflicts 0, rejected 0\n"));
    // A new batch mixing new lines, a stored id with other content, and an
    // id repeated within the batch (once equal, once different).
    let text = [
        api("n1", 1, 10),
        api("a1", 2, 1),
        api("n2", 3, 20),
        api("n2", 3, 20),
        api("n1", 1, 11),
        api("n3", 4, 30),
    ]
    .join("\n");
    let g = env.write("mixed.jsonl", &(text + "\n"));
    let o = ingest(&env, &spec, &g);
    assert_code(&o, 1);
    assert!(
        stderr(&o).ends_with("read 6, inserted 3, duplicates 1, conflicts 2, rejected 0\n"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        pg.query(
            &db,
            "SELECT kind, id, line_no FROM conflicts ORDER BY line_no"
        ),
        ["api|a1|2", "api|n1|5"]
    );
    // The stored rows are the first versions, in input order by rowid.
    assert_eq!(
        pg.query(
            &db,
            "SELECT id, tokens_in FROM api_usage WHERE id LIKE 'n%' ORDER BY rowid"
        ),
        ["n1|10", "n2|20", "n3|30"]
    );
    assert_eq!(
        pg.query(&db, "SELECT tokens_in FROM api_usage WHERE id = 'a1'"),
        ["1000000"]
    );
    // The rollup holds exactly the stored rows.
    assert_eq!(
        pg.query(
            &db,
            "SELECT (SELECT sum(requests) FROM api_rollup), (SELECT count(*) FROM api_usage), \
             (SELECT sum(tokens_in) FROM api_rollup) = (SELECT sum(tokens_in) FROM api_usage)"
        ),
        ["10|10|t"]
    );
    // The run is recorded with its host and database role.
    assert_eq!(
        pg.query(
            &db,
            "SELECT status, inserted, conflicts, host IS NOT NULL, db_user = current_user \
             FROM ingest_runs ORDER BY run_id"
        ),
        ["ok|15|0|t|t", "ok|0|0|t|t", "partial|3|2|t|t"]
    );
}

#[test]
fn a_row_the_role_cannot_see_is_a_conflict() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    let spec = pg.socket_db(&db);
    let env = Env::at("2026-12-02T12:00:00Z");
    // Another customer's line, stored first.
    let f = env.write(
        "one.jsonl",
        &(api("x1", 1, 10).replace("\"acme\"", "\"zeta\"") + "\n"),
    );
    assert_code(&ingest(&env, &spec, &f), 0);
    // A role that sees only acme's rows (row-level security), as acme's VM
    // would.
    let role = format!("{db}_vm");
    let mut c = pg.client(&db);
    c.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN; GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; \
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}; \
         ALTER TABLE api_usage ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY own_rows ON api_usage USING (customer_id = 'acme'); \
         CREATE POLICY insert_any ON api_usage FOR INSERT WITH CHECK (true);"
    ))
    .unwrap();
    let vm_spec = spec.replace("user=mbtest", &format!("user={role}"));
    let g = env.write(
        "two.jsonl",
        &(api("x1", 1, 10) + "\n" + &api("x2", 2, 20) + "\n"),
    );
    let o = ingest(&env, &vm_spec, &g);
    assert_code(&o, 1);
    assert!(
        stderr(&o).ends_with("read 2, inserted 1, duplicates 0, conflicts 1, rejected 0\n"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        pg.query(&db, "SELECT id, customer_id FROM api_usage ORDER BY rowid"),
        ["x1|zeta", "x2|acme"]
    );
    assert_eq!(pg.query(&db, "SELECT sum(requests) FROM api_rollup"), ["2"]);
    c.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
}

#[test]
fn a_batch_commits_whole_or_not_at_all() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    let store = Store::open(pg.socket_db(&db).as_str(), Mode::ReadWrite).unwrap();
    let lines: Vec<_> = (0..50)
        .map(|i| {
            parse_line(
                &api(&format!("b{i}"), i % 60, 1 + i as u64),
                mb::time::now(),
            )
            .unwrap()
        })
        .collect();
    let evs: Vec<&_> = lines.iter().collect();
    {
        let w = store.writer().unwrap();
        let r = w.insert_batch(&evs, 1).unwrap();
        assert!(r.iter().all(|r| *r == InsertResult::Inserted));
        // Dropped without commit: rolled back.
    }
    assert_eq!(pg.query(&db, "SELECT count(*) FROM api_usage"), ["0"]);
    assert_eq!(pg.query(&db, "SELECT count(*) FROM api_rollup"), ["0"]);
    let w = store.writer().unwrap();
    w.insert_batch(&evs, 1).unwrap();
    // The same events again in the same transaction: duplicates.
    let again = w.insert_batch(&evs[..3], 1).unwrap();
    assert_eq!(again, [InsertResult::Duplicate; 3]);
    w.commit().unwrap();
    assert_eq!(
        pg.query(&db, "SELECT count(*), sum(tokens_in) FROM api_usage"),
        ["50|1275"]
    );
    assert_eq!(
        pg.query(&db, "SELECT sum(requests) FROM api_rollup"),
        ["50"]
    );
}

#[test]
fn ingested_at_never_goes_back_and_the_schema_version_is_checked() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    let spec = pg.socket_db(&db);
    let env = Env::new();
    let f = env.write("a.jsonl", &(api("t1", 1, 1) + "\n"));
    assert_code(
        &env.run_at(
            "mb-ingest",
            "2026-11-28T12:00:00Z",
            &["--db", &spec, f.to_str().unwrap()],
            "",
        ),
        0,
    );
    // A later run whose clock is behind stamps the last time, not its own.
    let g = env.write("b.jsonl", &(api("t2", 2, 1) + "\n"));
    assert_code(
        &env.run_at(
            "mb-ingest",
            "2026-11-20T00:00:00Z",
            &["--db", &spec, g.to_str().unwrap()],
            "",
        ),
        0,
    );
    assert_eq!(
        pg.query(&db, "SELECT id, ingested_at FROM api_usage ORDER BY rowid"),
        [
            "t1|2026-11-28T12:00:00.000000Z",
            "t2|2026-11-28T12:00:00.000000Z"
        ]
    );
    assert_eq!(
        pg.query(&db, "SELECT last_ingested_at FROM mb_clock"),
        ["2026-11-28T12:00:00.000000Z"]
    );
    // A schema newer than this mb is refused, as SQLite's is.
    pg.query(&db, "UPDATE mb_schema_version SET version = 99");
    let o = env.run("mb-report", &["--db", &spec, "--month", "2026-11"], "");
    assert_code(&o, 2);
    let pg_msg = stderr(&o).replace(&mb::store::pgconn::display(&spec), "DB");
    let sq = Env::new();
    assert_code(&sq.run("mb-ingest", &[f.to_str().unwrap()], ""), 0);
    crate::util::query(&sq.db, "PRAGMA user_version = 99");
    let o = sq.run("mb-report", &["--month", "2026-11"], "");
    assert_code(&o, 2);
    let sq_msg = stderr(&o).replace(&sq.db.display().to_string(), "DB");
    assert_eq!(pg_msg, sq_msg);
    assert!(pg_msg.contains("99"), "{pg_msg}");
}

#[test]
fn the_customer_hour_bound_holds_on_postgres() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    let spec = pg.socket_db(&db);
    let env = Env::at("2026-12-02T12:00:00Z");
    // USD 100,000 lines: the hour's bound of 2^49 nano-USD takes five.
    let line = |i: u32| {
        format!(
            r#"{{"v":1,"kind":"api","id":"max-{i}","ts":"2026-11-03T10:{i:02}:00Z","customer_id":"acme","vm_id":"vm-1","provider":"openai","model":"gpt-4o","price_key":"gpt-4o","tokens_in":1000000000,"tokens_out":1000000000,"cache_read_tokens":1000000000,"cache_write_tokens":1000000000,"reasoning_tokens":0,"cost_usd":"100000","priced":true,"price_table":"t","request_id":null,"failed":false,"auth_type":"apikey","client":null,"service_tier":null,"source_format":"test"}}"#
        )
    };
    let text: String = (0..7).map(|i| line(i) + "\n").collect();
    let f = env.write("max.jsonl", &text);
    for (code, summary) in [
        (1, "inserted 5, duplicates 0, conflicts 0, rejected 2"),
        (1, "inserted 0, duplicates 5, conflicts 0, rejected 2"),
    ] {
        let o = ingest(&env, &spec, &f);
        assert_code(&o, code);
        assert!(stderr(&o).contains(summary), "{}", stderr(&o));
    }
    assert_eq!(
        pg.query(&db, "SELECT count(*), sum(cost_nusd) FROM api_usage"),
        ["5|500000000000000"]
    );
    assert_eq!(pg.query(&db, "SELECT count(*) FROM rejects"), ["2"]);
}
