//! PostgreSQL's bulk write path against a real server (tests/pg): rows
//! streamed into the COPY while they are decided, across chunk and
//! transaction boundaries, and the rollup rows of hours new to the store
//! copied rather than upserted, with the upsert taking over when a table
//! is out of step with the other.

use crate::pg_or_skip;
use crate::util::{assert_code, stderr, Env};

/// `n` api lines of customer `c`, one a second from 10:00 on 2026-11-03
/// (hour 498250 since the epoch), on three VMs in turn, ids
/// `{c}-{tag}-{i}`, tokens_in = i + 1.
fn lines(c: &str, tag: &str, n: u32) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"v":1,"kind":"api","id":"{c}-{tag}-{i}","ts":"2026-11-03T{:02}:{:02}:{:02}Z","customer_id":"{c}","vm_id":"vm-{}","provider":"openai","model":"gpt-4o","price_key":"gpt-4o","tokens_in":{},"tokens_out":5,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":"0.000001","priced":true,"price_table":"t","request_id":null,"failed":false,"auth_type":"apikey","client":null,"service_tier":null,"source_format":"test"}}"#,
                10 + i / 3600,
                i / 60 % 60,
                i % 60,
                i % 3,
                i + 1
            ) + "\n"
        })
        .collect()
}

/// Ingest `file` in transactions of `batch` lines; it must exit 0 with
/// `summary` ("read N, inserted N, ...") as its last line.
fn ingest(env: &Env, spec: &str, file: &std::path::Path, batch: &str, summary: &str) {
    let o = env.run(
        "mb-ingest",
        &["--db", spec, "--batch", batch, file.to_str().unwrap()],
        "",
    );
    assert_code(&o, 0);
    assert!(
        stderr(&o).ends_with(&format!("{summary}\n")),
        "{}",
        stderr(&o)
    );
}

/// Per (customer, hour): api_rollup's requests and tokens_in, the same
/// from the stored rows; per (customer, VM, hour): vm_event_hours' api
/// events, the same from the stored rows.
const CHECK: &str = "SELECT \
     (SELECT string_agg(concat_ws(':', customer_id, h, r, t), ' ' ORDER BY customer_id, h) \
      FROM (SELECT customer_id, hour_ns / 3600000000000 AS h, sum(requests) AS r, \
      sum(tokens_in) AS t FROM api_rollup GROUP BY 1, 2) x), \
     (SELECT string_agg(concat_ws(':', customer_id, h, r, t), ' ' ORDER BY customer_id, h) \
      FROM (SELECT customer_id, ts_ns / 3600000000000 AS h, count(*) AS r, \
      sum(tokens_in) AS t FROM api_usage GROUP BY 1, 2) y), \
     (SELECT string_agg(concat_ws(':', customer_id, vm_id, hour_ns / 3600000000000, events), ' ' \
      ORDER BY customer_id, vm_id, hour_ns) FROM vm_event_hours WHERE kind = 'api'), \
     (SELECT string_agg(concat_ws(':', customer_id, vm_id, h, n), ' ' ORDER BY customer_id, vm_id, h) \
      FROM (SELECT customer_id, vm_id, ts_ns / 3600000000000 AS h, count(*) AS n \
      FROM api_usage GROUP BY 1, 2, 3) z)";

#[test]
fn rollups_hold_across_chunks_transactions_and_stored_hours() {
    let pg = pg_or_skip!();
    let db = pg.new_db();
    let spec = pg.socket_db(&db);
    let env = Env::at("2026-12-02T12:00:00Z");
    // 20,000 lines of one customer over 6 hours, and 100 of another, in
    // transactions of 7,000 lines: chunks (8,192 lines into PostgreSQL)
    // and transactions end mid-hour, so later transactions meet hours an
    // earlier one stored (upserted) beside hours new to the store (copied).
    let first = env.write(
        "first.jsonl",
        &(lines("acme", "a", 20_000) + &lines("globex", "a", 100)),
    );
    ingest(
        &env,
        &spec,
        &first,
        "7000",
        "read 20100, inserted 20100, duplicates 0, conflicts 0, rejected 0",
    );
    let check = |want_hours: &str| {
        let got = pg.query(&db, CHECK);
        let parts: Vec<&str> = got[0].split('|').collect();
        assert_eq!(parts[0], parts[1], "api_rollup against api_usage");
        assert_eq!(parts[2], parts[3], "vm_event_hours against api_usage");
        assert!(parts[0].starts_with(want_hours), "{}", parts[0]);
    };
    // 3,600 lines an hour: tokens_in 1 + ... + 3600 = 6,481,800 in the
    // first, 3601 + ... + 7200 = 19,441,800 in the second.
    check("acme:498250:3600:6481800 acme:498251:3600:19441800 ");
    // The same lines again: all duplicates, nothing changes.
    ingest(
        &env,
        &spec,
        &first,
        "7000",
        "read 20100, inserted 0, duplicates 20100, conflicts 0, rejected 0",
    );
    check("acme:498250:3600:6481800 acme:498251:3600:19441800 ");
    // New ids in hours already stored: upserted onto the stored rows.
    let more = env.write("more.jsonl", &lines("acme", "b", 120));
    ingest(
        &env,
        &spec,
        &more,
        "50000",
        "read 120, inserted 120, duplicates 0, conflicts 0, rejected 0",
    );
    // 120 more in the first hour: 1 + ... + 120 = 7,260 more tokens.
    check("acme:498250:3720:6489060 acme:498251:3600:19441800 ");
    // New lines first, then stored ones, in one chunk: the first attempt
    // adds the new rows to the rollup as it streams them and then fails on
    // a stored id; the rollup is put back before the chunk is decided again,
    // so the 30 new rows count once (1 + ... + 30 = 465 more tokens).
    let mixed = env.write(
        "mixed.jsonl",
        &(lines("acme", "d", 30) + &lines("acme", "b", 120)),
    );
    ingest(
        &env,
        &spec,
        &mixed,
        "50000",
        "read 150, inserted 30, duplicates 120, conflicts 0, rejected 0",
    );
    check("acme:498250:3750:6489525 acme:498251:3600:19441800 ");
    // A vm_event_hours out of step with api_rollup (its hour's rollup rows
    // gone, as if deleted by hand): the hour looks new, the copy of its
    // vm_event_hours cells meets the stored ones, and the upsert takes
    // over, in the same transaction.
    pg.query(&db, "DELETE FROM api_rollup WHERE customer_id = 'globex'");
    let g = env.write("globex.jsonl", &lines("globex", "c", 10));
    ingest(
        &env,
        &spec,
        &g,
        "50000",
        "read 10, inserted 10, duplicates 0, conflicts 0, rejected 0",
    );
    assert_eq!(
        pg.query(
            &db,
            "SELECT vm_id, events FROM vm_event_hours WHERE customer_id = 'globex' \
             AND hour_ns = 498250 * 3600000000000 ORDER BY vm_id"
        ),
        // 34, 33, 33 of the first 100 lines, then 4, 3, 3.
        ["vm-0|38", "vm-1|36", "vm-2|36"]
    );
    assert_eq!(
        pg.query(
            &db,
            "SELECT sum(requests), sum(tokens_in) FROM api_rollup WHERE customer_id = 'globex'"
        ),
        ["10|55"]
    );
}
