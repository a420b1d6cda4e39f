//! mb-ingest: golden loads, every rejection reason, duplicates and
//! conflicts, crash safety, concurrency, spool, modes, schema versions.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// `n` valid api lines with ids `prefix-0..n`, one token each (cost 1 nUSD).
pub fn api_lines(prefix: &str, n: usize) -> String {
    let mut s = String::with_capacity(n * 330);
    for i in 0..n {
        let _ = writeln!(
            s,
            r#"{{"v":1,"kind":"api","id":"{prefix}-{i}","ts":"2026-11-03T10:{:02}:{:02}Z","customer_id":"c{}","vm_id":"vm-1","provider":"openai","model":"gpt-4o","price_key":"gpt-4o","tokens_in":1,"tokens_out":0,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":"0.000000001","priced":true,"price_table":"t","request_id":null,"failed":false,"auth_type":"apikey","client":null,"service_tier":null,"source_format":"test"}}"#,
            (i / 60) % 60,
            i % 60,
            i % 7
        );
    }
    s
}

#[test]
fn golden_load_of_all_three_kinds() {
    let env = Env::new();
    let f = fixture("ingest/golden.jsonl");
    let o = env.run("mb-ingest", &[f.to_str().unwrap()], "");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "");
    // 7 events; the blank line and the comment line are not counted.
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 7, inserted 7, duplicates 0, conflicts 0, rejected 0\n"
    );
    let mut dump = String::new();
    for sql in [
        "SELECT ts, customer_id, vm_id, provider, model, price_key, tokens_in, tokens_out, \
         cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, cost_usd, priced, \
         failed, auth_type, request_id, id FROM api_usage_v ORDER BY ts",
        "SELECT ts_ns, cost_nusd, client, service_tier, source_format FROM api_usage ORDER BY ts_ns",
        "SELECT ts, customer_id, vm_id, status, interval_seconds, cpu_percent, memory_percent, \
         memory_used_mb, disk_used_gb, disk_total_gb, net_in_mb, net_out_mb, flags, errors, boot_id, seq \
         FROM resource_usage_v ORDER BY ts",
        "SELECT ts, activity_type, pattern_name, command, duration_seconds, exit_code, user, id \
         FROM activity_log_v ORDER BY ts",
        "SELECT run_id, tool, source, status, read, inserted, duplicates, conflicts, rejected FROM ingest_runs",
    ] {
        for row in env.query(sql) {
            dump.push_str(&row);
            dump.push('\n');
        }
        dump.push('\n');
    }
    let dump = dump.replace(f.to_str().unwrap(), "FIXTURE");
    golden("ingest/golden.expected.txt", &dump);
}

#[test]
fn events_read_back_identically() {
    // The stored rows map back to the same events: re-ingesting what the
    // store holds is all duplicates (the basis of `mb-report events`).
    let env = Env::new();
    let f = fixture("ingest/golden.jsonl");
    assert_code(&env.run("mb-ingest", &[f.to_str().unwrap()], ""), 0);
    let o = env.run("mb-ingest", &["-"], &std::fs::read_to_string(&f).unwrap());
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 7, inserted 0, duplicates 7, conflicts 0, rejected 0\n"
    );
}

#[test]
fn every_rejection_reason() {
    let env = Env::new();
    let f = fixture("ingest/bad.jsonl");
    let rej = env.path("rejects.jsonl");
    let o = env.run(
        "mb-ingest",
        &["--rejects", rej.to_str().unwrap(), f.to_str().unwrap()],
        "",
    );
    assert_code(&o, 1);
    let err = stderr(&o).replace(f.to_str().unwrap(), "bad.jsonl");
    golden("ingest/bad.expected.stderr", &err);
    // All 36 reasons are in the table, with the verbatim line.
    let rows = env.query("SELECT line_no || ': ' || reason FROM rejects ORDER BY line_no");
    assert_eq!(rows.len(), 36);
    golden("ingest/bad.expected.reasons", &(rows.join("\n") + "\n"));
    let raw = env.query("SELECT hex(line) FROM rejects WHERE line_no = 33");
    assert!(
        raw[0].contains("FFFE"),
        "invalid UTF-8 kept verbatim: {raw:?}"
    );
    assert_eq!(env.query("SELECT count(*) FROM api_usage")[0], "0");
    // The rejects file: a comment with the reason, then the verbatim line,
    // so it can be fixed and re-ingested (comments are skipped).
    let text = std::fs::read(&rej).unwrap();
    let original = std::fs::read(&f).unwrap();
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    assert!(lines[0].starts_with(b"# "));
    assert!(String::from_utf8_lossy(lines[0]).ends_with(":1: not a JSON object (each line must be one compact JSON object; pretty-printed JSON can be fixed with `jq -c`)"));
    assert_eq!(lines[1], b"hello");
    let verbatim: Vec<&[u8]> = lines.iter().skip(1).step_by(2).copied().take(36).collect();
    let orig: Vec<&[u8]> = original.split(|b| *b == b'\n').take(36).collect();
    assert_eq!(verbatim, orig);
    // Re-ingesting the rejects file rejects the same 36 lines again.
    let o = env.run("mb-ingest", &["--quiet", rej.to_str().unwrap()], "");
    assert_code(&o, 1);
    assert_eq!(env.query("SELECT count(*) FROM rejects")[0], "72");
}

#[test]
fn fixed_rejects_can_be_reingested() {
    let env = Env::new();
    let good = api_lines("ok", 2);
    let bad = good
        .lines()
        .next()
        .unwrap()
        .replace("\"tokens_in\":1", "\"tokens_in\":-1");
    let rej = env.path("rej.jsonl");
    let input = format!("{}\n{}\n", bad, good.lines().nth(1).unwrap());
    let o = env.run("mb-ingest", &["--rejects", rej.to_str().unwrap()], &input);
    assert_code(&o, 1);
    let fixed = std::fs::read_to_string(&rej)
        .unwrap()
        .replace("\"tokens_in\":-1", "\"tokens_in\":1");
    std::fs::write(&rej, fixed).unwrap();
    let o = env.run("mb-ingest", &[rej.to_str().unwrap()], "");
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 1, inserted 1, duplicates 0, conflicts 0, rejected 0\n"
    );
    assert_eq!(env.query("SELECT count(*) FROM api_usage")[0], "2");
}

#[test]
fn duplicates_and_conflicts() {
    let env = Env::new();
    let lines = api_lines("d", 3);
    assert_code(&env.run("mb-ingest", &[], &lines), 0);
    let o = env.run("mb-ingest", &[], &lines);
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 3, inserted 0, duplicates 3, conflicts 0, rejected 0\n"
    );
    // Same id, different token count: a conflict that never overwrites.
    let changed = lines
        .lines()
        .nth(1)
        .unwrap()
        .replace("\"tokens_in\":1", "\"tokens_in\":999");
    let o = env.run("mb-ingest", &[], &format!("{changed}\n"));
    assert_code(&o, 1);
    assert_eq!(
        stderr(&o),
        "mb-ingest: stdin:1: conflict: api id \"d-1\" is already stored with different content; \
         the stored event is kept and this line is recorded in the conflicts table\n\
         mb-ingest: read 1, inserted 0, duplicates 0, conflicts 1, rejected 0\n"
    );
    assert_eq!(
        env.query("SELECT tokens_in FROM api_usage WHERE id = 'd-1'"),
        ["1"]
    );
    assert_eq!(
        env.query(&format!(
            "SELECT kind, id, source, line_no, line = '{}' FROM conflicts",
            changed.replace('\'', "''")
        )),
        ["api|d-1|stdin|1|1"]
    );
    // Whitespace, key order and unknown fields do not make a conflict: the
    // content is compared, not the bytes.
    let v: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    let mut reordered = serde_json::Map::new();
    let obj = v.as_object().unwrap();
    for k in obj.keys().rev() {
        reordered.insert(k.clone(), obj[k].clone());
    }
    reordered.insert("extra".into(), serde_json::json!(1));
    let pretty = serde_json::to_string(&reordered)
        .unwrap()
        .replace(",", ", ");
    let o = env.run("mb-ingest", &[], &format!("{pretty}\n"));
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 1, inserted 0, duplicates 1, conflicts 0, rejected 0\n"
    );
    // A duplicate inside one input is one insert and one duplicate.
    let one = api_lines("e", 1);
    let o = env.run("mb-ingest", &[], &format!("{one}{one}"));
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 2, inserted 1, duplicates 1, conflicts 0, rejected 0\n"
    );
    // Same id in another kind is another event.
    let act = r#"{"v":1,"kind":"activity","id":"d-1","ts":"2026-11-03T10:05:00Z","customer_id":"c1","vm_id":"vm-1","activity_type":"command","duration_seconds":1}"#;
    let o = env.run("mb-ingest", &[], &format!("{act}\n"));
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 1, inserted 1, duplicates 0, conflicts 0, rejected 0\n"
    );
}

#[test]
fn summary_json_dry_run_and_quiet() {
    let env = Env::new();
    let lines = api_lines("s", 4);
    let o = env.run(
        "mb-ingest",
        &["--dry-run", "--summary", "json"],
        &format!("{lines}{}\nnope\n", lines.lines().next().unwrap()),
    );
    assert_code(&o, 1);
    let last = stderr(&o).lines().last().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"read":6,"inserted":4,"duplicates":1,"conflicts":0,"rejected":1,"dry_run":true,"files":1})
    );
    assert!(!env.db.exists(), "a dry run creates no database");
    // Against an existing database the dry run sees stored events.
    assert_code(&env.run("mb-ingest", &["-q"], &api_lines("s", 2)), 0);
    let o = env.run("mb-ingest", &["--dry-run"], &lines);
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 4, inserted 2, duplicates 2, conflicts 0, rejected 0 (dry run, nothing written)\n"
    );
    assert_eq!(env.query("SELECT count(*) FROM api_usage"), ["2"]);
    let o = env.run("mb-ingest", &["--quiet"], &lines);
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
}

#[test]
fn killed_mid_ingest_then_rerun_stores_each_line_once() {
    let env = Env::new();
    let n = 200_000;
    let input = env.write("big.jsonl", &api_lines("k", n));
    let mut child = env
        .cmd("mb-ingest")
        .args(["--batch", "500", "--quiet", input.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some batches are committed, then SIGKILL.
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if env.db.exists() {
            let c = rusqlite::Connection::open(&env.db).unwrap();
            let k: i64 = c
                .query_row("SELECT count(*) FROM api_usage", [], |r| r.get(0))
                .unwrap_or(0);
            if k > 0 {
                break;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "nothing committed");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stored: u64 = env.query("SELECT count(*) FROM api_usage")[0]
        .parse()
        .unwrap();
    assert!(stored > 0 && stored < n as u64, "killed mid-way: {stored}");
    assert_eq!(stored % 500, 0, "only whole batches are committed");
    // The killed run's audit row is left 'running' with its committed counts.
    assert_eq!(
        env.query("SELECT status, inserted FROM ingest_runs"),
        [format!("running|{stored}")]
    );
    let o = env.run(
        "mb-ingest",
        &["--summary", "json", input.to_str().unwrap()],
        "",
    );
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(v["read"], n as u64);
    assert_eq!(v["duplicates"], stored);
    assert_eq!(v["inserted"], n as u64 - stored);
    assert_eq!(
        env.query("SELECT count(*), count(DISTINCT id) FROM api_usage"),
        [format!("{n}|{n}")]
    );
}

#[test]
fn concurrent_writers_and_a_reader() {
    let env = Env::new();
    // Create the database first so all writers race on inserts, not on
    // creation; a separate test below races on creation too.
    let per = 20_000;
    let mut files = Vec::new();
    for w in 0..4 {
        // Each writer has its own ids plus a shared block of 2,000.
        let mut s = api_lines(&format!("w{w}"), per);
        s.push_str(&api_lines("shared", 2_000));
        files.push(env.write(&format!("w{w}.jsonl"), &s));
    }
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            env.cmd("mb-ingest")
                .args(["--batch", "1000", "--summary", "json", f.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // A reader querying meanwhile must never see "database is locked".
    let reader_db = env.db.clone();
    let reader = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut reads = 0;
        while t0.elapsed() < Duration::from_secs(2) {
            if reader_db.exists() {
                if let Ok(c) = rusqlite::Connection::open_with_flags(
                    &reader_db,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                ) {
                    c.busy_timeout(Duration::from_secs(10)).unwrap();
                    let r: rusqlite::Result<i64> =
                        c.query_row("SELECT count(*) FROM api_usage", [], |r| r.get(0));
                    match r {
                        Ok(_) => reads += 1,
                        Err(e) if e.to_string().contains("no such table") => {}
                        Err(e) => panic!("reader failed: {e}"),
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        reads
    });
    let mut inserted = 0;
    let mut dups = 0;
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
        inserted += v["inserted"].as_u64().unwrap();
        dups += v["duplicates"].as_u64().unwrap();
    }
    assert!(reader.join().unwrap() > 0);
    assert_eq!(inserted, 4 * per as u64 + 2_000);
    assert_eq!(dups, 3 * 2_000);
    assert_eq!(
        env.query("SELECT count(*) FROM api_usage"),
        [(4 * per + 2_000).to_string()]
    );
}

#[test]
fn concurrent_first_runs_create_the_database_once() {
    let env = Env::new();
    let children: Vec<_> = (0..6)
        .map(|w| {
            let mut c = env.cmd("mb-ingest");
            c.arg("--quiet")
                .stdin(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(api_lines(&format!("f{w}"), 100).as_bytes())
                .unwrap();
            child
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_code(&o, 0);
    }
    assert_eq!(env.query("SELECT count(*) FROM api_usage"), ["600"]);
    assert_eq!(
        env.query("PRAGMA user_version"),
        [mb::store::schema::current_version().to_string()]
    );
}

#[test]
fn private_file_and_directory_modes() {
    let env = Env::new();
    assert_code(&env.run("mb-ingest", &["-q"], &api_lines("m", 1)), 0);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.db), 0o600);
    assert_eq!(mode(env.db.parent().unwrap()), 0o700);
    assert_eq!(env.query("PRAGMA journal_mode"), ["wal"]);
    // An existing directory keeps its mode; only what we create is private.
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db2 = shared.join("u.db");
    assert_code(
        &env.run(
            "mb-ingest",
            &["-q", "--db", db2.to_str().unwrap()],
            &api_lines("m", 1),
        ),
        0,
    );
    assert_eq!(mode(&shared), 0o755);
    assert_eq!(mode(&db2), 0o600);
}

#[test]
fn schema_too_new_is_refused_and_untouched() {
    let env = Env::new();
    assert_code(&env.run("mb-ingest", &["-q"], &api_lines("n", 1)), 0);
    rusqlite::Connection::open(&env.db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let o = env.run("mb-ingest", &[], &api_lines("n2", 1));
    assert_code(&o, 2);
    assert_eq!(
        stderr(&o),
        format!(
            "mb-ingest: database {}: schema version 99 is newer than this mb supports ({}); \
             upgrade mb, or point --db at another file\n",
            env.db.display(),
            mb::store::schema::current_version()
        )
    );
    assert_eq!(env.query("SELECT count(*) FROM api_usage"), ["1"]);
    let o = env.run("mb-customer", &["list"], "");
    assert_code(&o, 2);
}

#[test]
fn fatal_errors_exit_2_with_nothing_committed() {
    let env = Env::new();
    // Unreadable input file.
    let o = env.run("mb-ingest", &["/nonexistent/x.jsonl"], "");
    assert_code(&o, 2);
    assert_eq!(
        stderr(&o),
        "mb-ingest: /nonexistent/x.jsonl: No such file or directory (os error 2)\n"
    );
    // The database path is a directory.
    let d = env.path("adir");
    std::fs::create_dir(&d).unwrap();
    let o = env.run(
        "mb-ingest",
        &["--db", d.to_str().unwrap()],
        &api_lines("x", 1),
    );
    assert_code(&o, 2);
    assert!(stderr(&o).starts_with("mb-ingest: "), "{}", stderr(&o));
    // A good file then a missing one: the good file's batch is committed
    // (it ended), the run is recorded as failed.
    let good = env.write("good.jsonl", &api_lines("g", 3));
    let o = env.run(
        "mb-ingest",
        &[good.to_str().unwrap(), "/nonexistent/y.jsonl"],
        "",
    );
    assert_code(&o, 2);
    assert_eq!(env.query("SELECT count(*) FROM api_usage"), ["3"]);
    // Both failed runs are in the audit table; only the second stored lines.
    assert_eq!(
        env.query("SELECT status, inserted FROM ingest_runs ORDER BY run_id"),
        ["failed|0", "failed|3"]
    );
    // Usage errors.
    let o = env.run("mb-ingest", &["--delete"], "");
    assert_code(&o, 2);
    let o = env.run("mb-ingest", &["--bogus"], "");
    assert_code(&o, 2);
}

#[test]
fn closed_stderr_is_not_a_panic() {
    let env = Env::new();
    let bad = "nope\n".repeat(1000);
    let mut c = env.cmd("mb-ingest");
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stderr.take());
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(bad.as_bytes())
            .unwrap();
    }
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(1), "rejected lines, no panic (101)");
    // 1000 identical bad lines: counted 1000 times, recorded once.
    assert_eq!(env.query("SELECT count(*) FROM rejects"), ["1"]);
    assert_eq!(env.query("SELECT rejected FROM ingest_runs"), ["1000"]);
}

#[test]
fn spool_takes_only_complete_files_and_moves_them() {
    let env = Env::new();
    let spool = env.path("spool");
    std::fs::create_dir(&spool).unwrap();
    env.write("spool/b.jsonl", &api_lines("b", 2));
    env.write("spool/a.jsonl", &api_lines("a", 3));
    env.write("spool/c.jsonl.tmp", &api_lines("c", 5));
    env.write("spool/.d.jsonl", &api_lines("d", 5));
    env.write("spool/notes.txt", "x");
    let o = env.run("mb-ingest", &["--spool", spool.to_str().unwrap()], "");
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 5, inserted 5, duplicates 0, conflicts 0, rejected 0\n"
    );
    let mut left: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            ".d.jsonl",
            ".mb-ingest.lock",
            "c.jsonl.tmp",
            "done",
            "notes.txt"
        ]
    );
    assert!(spool.join("done/a.jsonl").exists() && spool.join("done/b.jsonl").exists());
    assert_eq!(
        env.query("SELECT DISTINCT source FROM api_usage JOIN ingest_runs USING (run_id)"),
        ["2 sources"]
    );
    // The producer renames its .tmp into place; the next run takes it. A
    // name already in done/ gets a suffix instead of being overwritten.
    std::fs::rename(spool.join("c.jsonl.tmp"), spool.join("c.jsonl")).unwrap();
    env.write("spool/a.jsonl", &api_lines("a", 3));
    let o = env.run("mb-ingest", &["--spool", spool.to_str().unwrap()], "");
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 8, inserted 5, duplicates 3, conflicts 0, rejected 0\n"
    );
    assert!(spool.join("done/a.jsonl.1").exists());
    // --delete removes instead.
    env.write("spool/e.jsonl", &api_lines("e", 1));
    let o = env.run(
        "mb-ingest",
        &["--spool", spool.to_str().unwrap(), "--delete"],
        "",
    );
    assert_code(&o, 0);
    assert!(!spool.join("e.jsonl").exists() && !spool.join("done/e.jsonl").exists());
    // An empty spool is fine.
    let o = env.run("mb-ingest", &["--spool", spool.to_str().unwrap()], "");
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 0, inserted 0, duplicates 0, conflicts 0, rejected 0\n"
    );
}

#[test]
fn spool_is_locked_against_a_second_run() {
    let env = Env::new();
    let spool = env.path("spool");
    std::fs::create_dir(&spool).unwrap();
    env.write("spool/a.jsonl", &api_lines("a", 1));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(spool.join(".mb-ingest.lock"))
        .unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let o = env.run("mb-ingest", &["--spool", spool.to_str().unwrap()], "");
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("another mb-ingest is working on"),
        "{}",
        stderr(&o)
    );
    assert!(spool.join("a.jsonl").exists());
}

#[test]
fn help_has_examples() {
    let env = Env::new();
    let o = env.run("mb-ingest", &["--help"], "");
    assert_code(&o, 0);
    assert!(stdout(&o).contains("EXAMPLES:\n    # The cron job of every VM"));
    let o = Command::new(bin_path("mb-ingest"))
        .arg("--version")
        .output()
        .unwrap();
    assert_code(&o, 0);
}

#[test]
fn a_slow_producer_gets_each_line_stored_and_holds_no_lock_while_waiting() {
    // `mb-sample --watch 300 | mb-ingest`: a line every few minutes must be
    // committed when it arrives, and the writer must not keep a transaction
    // (the write lock) open while it waits for the next one.
    use std::io::Write;
    let env = Env::new();
    let lines = api_lines("slow", 2);
    let mut it = lines.lines();
    let mut child = env
        .cmd("mb-ingest")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", it.next().unwrap()).unwrap();
    stdin.flush().unwrap();
    let t0 = Instant::now();
    loop {
        if env.db.exists() {
            let c = rusqlite::Connection::open(&env.db).unwrap();
            let n: i64 = c
                .query_row("SELECT count(*) FROM api_usage", [], |r| r.get(0))
                .unwrap_or(0);
            if n == 1 {
                break;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the first line was not committed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // While it waits, another writer gets through at once.
    let o = env.run_at("mb-ingest", &env.now, &["-q"], &api_lines("other", 1));
    assert_code(&o, 0);
    writeln!(stdin, "{}", it.next().unwrap()).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 2, inserted 2, duplicates 0, conflicts 0, rejected 0\n"
    );
    assert_eq!(env.query("SELECT count(*) FROM api_usage"), ["3"]);
}

/// The rollup that reports read (api_rollup, summed in memory while a
/// transaction inserts) matches the stored rows exactly, whatever the mix of
/// duplicates, conflicts, unpriced and failed requests, hours, negative
/// times and transaction boundaries.
#[test]
fn rollup_matches_stored_rows() {
    let env = Env::new();
    let mut s = String::new();
    for i in 0..40u32 {
        let (priced, cost, key) = if i % 5 == 0 {
            ("false", "null".to_string(), "null")
        } else {
            ("true", format!("\"0.{:09}\"", 1_000 + i * 7), "\"k\"")
        };
        let _ = writeln!(
            s,
            r#"{{"v":1,"kind":"api","id":"r-{i}","ts":"{}-11-03T{:02}:{:02}:00.5Z","customer_id":"c{}","vm_id":"vm-1","provider":"openai","model":"m{}","price_key":{key},"tokens_in":{},"tokens_out":{},"cache_read_tokens":{},"cache_write_tokens":1,"reasoning_tokens":{},"cost_usd":{cost},"priced":{priced},"price_table":"t","request_id":null,"failed":{},"auth_type":"apikey","client":null,"service_tier":null,"source_format":"test"}}"#,
            if i == 7 { "1969" } else { "2026" },
            (i * 5) % 24,
            i % 60,
            i % 3,
            i % 2,
            100 + i,
            10 * i,
            i % 4,
            i % 3,
            i % 6 == 1,
        );
    }
    // Re-sent lines (duplicates) and a changed one (a conflict) in the same
    // and in later transactions must not count twice.
    let dup: String = s.lines().take(5).map(|l| format!("{l}\n")).collect();
    let conflict = s
        .lines()
        .nth(8)
        .unwrap()
        .replace("\"tokens_out\":80", "\"tokens_out\":81");
    let input = format!("{s}{dup}{conflict}\n");
    let o = env.run("mb-ingest", &["--batch", "3"], &input);
    assert_code(&o, 1);
    assert_eq!(
        stderr(&o).lines().last().unwrap(),
        "mb-ingest: read 46, inserted 40, duplicates 5, conflicts 1, rejected 0"
    );
    let o = env.run("mb-ingest", &["--batch", "7"], &s);
    assert_code(&o, 0);
    let from_rows = "SELECT customer_id, ts_ns - (((ts_ns % 3600000000000) + 3600000000000) % 3600000000000), \
        provider, model, coalesce(price_key, ''), coalesce(price_table, ''), count(*), sum(failed), \
        sum(NOT priced), sum(tokens_in), sum(tokens_out), sum(cache_read_tokens), \
        sum(cache_write_tokens), sum(reasoning_tokens), coalesce(sum(cost_nusd), 0) \
        FROM api_usage GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6";
    let from_rollup = "SELECT customer_id, hour_ns, provider, model, price_key, price_table, \
        sum(requests), sum(failed_requests), sum(unpriced_requests), sum(tokens_in), \
        sum(tokens_out), sum(cache_read_tokens), sum(cache_write_tokens), \
        sum(reasoning_tokens), sum(cost_nusd) \
        FROM api_rollup GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6";
    let rows = env.query(from_rows);
    assert_eq!(rows.len(), 32, "{rows:?}");
    assert_eq!(env.query(from_rollup), rows);
    // Spot check one group against hand-computed sums: line 7 is the only
    // event of 1969 (a negative time, floored to its hour).
    assert_eq!(
        env.query(
            "SELECT hour_ns, requests, tokens_in, cost_nusd FROM api_rollup WHERE hour_ns < 0"
        ),
        ["-5058000000000000|1|107|1049"]
    );
}

/// `ingested_at` never decreases in insertion order, even when the clock
/// steps back between runs: as-of reports find a cutoff's rows by rowid.
#[test]
fn ingested_at_never_goes_back_with_the_clock() {
    let env = Env::new();
    let lines = api_lines("clk", 3);
    let mut it = lines.lines();
    for now in [
        "2026-11-28T12:30:00Z",
        "2026-11-28T12:10:00Z",
        "2026-11-28T13:05:00Z",
    ] {
        let o = env.run_at(
            "mb-ingest",
            now,
            &["-q"],
            &format!("{}\n", it.next().unwrap()),
        );
        assert_code(&o, 0);
    }
    assert_eq!(
        env.query("SELECT id, ingested_at FROM api_usage ORDER BY rowid"),
        [
            "clk-0|2026-11-28T12:30:00.000000Z",
            "clk-1|2026-11-28T12:30:00.000000Z",
            "clk-2|2026-11-28T13:05:00.000000Z"
        ]
    );
    // The rollup's ingest hour agrees with the stamp.
    assert_eq!(
        env.query(
            "SELECT requests, ingest_hour_ns FROM api_rollup ORDER BY ingest_hour_ns, customer_id"
        ),
        [
            "1|1795867200000000000",
            "1|1795867200000000000",
            "1|1795870800000000000"
        ]
    );
}

/// An api line at the physical bounds of mb-events(5): every token count
/// 10^9 and the cost USD 100,000, in the hour 2026-11-03T10.
fn maximal_api_line(id: &str, minute: u32) -> String {
    format!(
        r#"{{"v":1,"kind":"api","id":"{id}","ts":"2026-11-03T10:{minute:02}:00Z","customer_id":"acme","vm_id":"vm-1","provider":"openai","model":"gpt-4o","price_key":"gpt-4o","tokens_in":1000000000,"tokens_out":1000000000,"cache_read_tokens":1000000000,"cache_write_tokens":1000000000,"reasoning_tokens":0,"cost_usd":"100000","priced":true,"price_table":"t","request_id":null,"failed":false,"auth_type":"apikey","client":null,"service_tier":null,"source_format":"test"}}"#
    )
}

#[test]
fn a_poison_line_is_one_reject_and_never_fails_the_batch() {
    let env = Env::new();
    let mut text = api_lines("ok", 30);
    // The contract's old i64 maximum, and far beyond it: each is a reject
    // with its line number; the 30 valid lines around them are stored.
    let poison = api_lines("p", 1)
        .trim_end()
        .replace("\"tokens_in\":1", "\"tokens_in\":9223372036854775807")
        .replace("\"id\":\"p-0\"", "\"id\":\"poison\"");
    text.insert_str(0, &format!("{poison}\n"));
    text.push_str(&poison.replace("9223372036854775807", "1000000001"));
    text.push('\n');
    text.push_str(&api_lines("q", 1).replace(
        "\"cost_usd\":\"0.000000001\"",
        "\"cost_usd\":\"100000.000000001\"",
    ));
    let f = env.write("in.jsonl", &text);
    let o = env.run("mb-ingest", &[f.to_str().unwrap()], "");
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(
            "in.jsonl:1: field \"tokens_in\": 9223372036854775807 is larger than 1000000000"
        ),
        "{err}"
    );
    assert!(err.contains("in.jsonl:32: field \"tokens_in\""), "{err}");
    assert!(err.contains("in.jsonl:33: field \"cost_usd\""), "{err}");
    assert!(
        err.ends_with("read 33, inserted 30, duplicates 0, conflicts 0, rejected 3\n"),
        "{err}"
    );
    assert_eq!(env.query("SELECT count(*) FROM api_usage"), ["30"]);
}

#[test]
fn a_maximal_customer_hour_keeps_every_report_and_the_invoice_exact() {
    let env = Env::at("2026-12-02T12:00:00Z");
    let cfg = fixture("e2e/mb.toml");
    let mut c = env.cmd("mb-customer");
    c.env("MB_CONFIG", &cfg).args([
        "add",
        "acme",
        "--tier",
        "pro",
        "--effective",
        "2026-10-01",
        "--stripe-customer",
        "cus_ACME",
    ]);
    assert_code(&run_cmd(&mut c, ""), 0);
    // Three runs of maximal lines for one customer-hour. USD 100,000 each:
    // the hour's bound of 2^49 nano-USD (USD 562,949.953421312) takes five;
    // the sixth and seventh are rejects naming the line, whichever run
    // brings them, and a re-run of a file stores nothing twice.
    let mut stored = 0i128;
    let mut stored_tokens = 0i128;
    for (run, ids) in [(0, 0..3), (1, 3..5), (2, 5..7)] {
        let text: String = ids
            .clone()
            .map(|i| maximal_api_line(&format!("max-{i}"), i as u32) + "\n")
            .collect();
        let f = env.write(&format!("run{run}.jsonl"), &text);
        for again in [false, true] {
            let o = env.run("mb-ingest", &[f.to_str().unwrap()], "");
            let fits = ids.clone().filter(|i| *i < 5).count();
            let over = ids.len() - fits;
            assert_code(&o, if over > 0 { 1 } else { 0 });
            let summary = if again {
                format!("inserted 0, duplicates {fits}, conflicts 0, rejected {over}")
            } else {
                format!("inserted {fits}, duplicates 0, conflicts 0, rejected {over}")
            };
            assert!(stderr(&o).contains(&summary), "{}", stderr(&o));
            if over > 0 {
                assert!(
                    stderr(&o).contains("would pass the bound of one UTC hour"),
                    "{}",
                    stderr(&o)
                );
            }
            if !again {
                stored += fits as i128 * 100_000_000_000_000;
                stored_tokens += fits as i128 * 4_000_000_000;
            }
        }
    }
    assert_eq!(stored, 500_000_000_000_000);
    // Sums stay INTEGER and exact.
    assert_eq!(
        env.query(
            "SELECT typeof(sum(cost_nusd)), sum(cost_nusd), sum(tokens_in + tokens_out + \
             cache_read_tokens + cache_write_tokens) FROM api_rollup"
        ),
        [format!("integer|{stored}|{stored_tokens}")]
    );
    assert_eq!(
        env.query(
            "SELECT count(*) FROM api_rollup WHERE typeof(tokens_in) <> 'integer' \
             OR typeof(cost_nusd) <> 'integer'"
        ),
        ["0"]
    );
    assert_eq!(
        env.query("SELECT sum(inserted) FROM ingest_runs"),
        ["5"],
        "the audit counts the stored rows"
    );
    let report = |args: &[&str]| {
        let mut c = env.cmd("mb-report");
        c.env("MB_CONFIG", &cfg).args(args);
        run_cmd(&mut c, "")
    };
    // The summary (one customer and all), text, CSV and JSON.
    for extra in [
        &["--customer", "acme"][..],
        &[][..],
        &["--csv"][..],
        &["--json"][..],
    ] {
        let mut a = vec!["summary", "--month", "2026-11"];
        a.extend_from_slice(extra);
        let o = report(&a);
        assert_code(&o, 0);
    }
    let o = report(&["summary", "--month", "2026-11", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let t = &v["customers"][0]["api_total"];
    assert_eq!(t["requests"], 5);
    assert_eq!(t["total_tokens"].as_i64().unwrap() as i128, stored_tokens);
    assert_eq!(t["cost_usd"], "500000");
    for by in ["hour", "day", "month"] {
        let o = report(&["series", "--month", "2026-11", "--by", by, "--csv"]);
        assert_code(&o, 0);
    }
    // The invoice: overage = cost x (T - I) / T x 1.2 x 0.92, in cents,
    // half up, computed here exactly in i128.
    let o = report(&["invoice", "--month", "2026-11", "--csv"]);
    assert_code(&o, 0);
    let mut rdr = csv::Reader::from_reader(o.stdout.as_slice());
    let rows: Vec<Vec<String>> = rdr
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let ov = rows.iter().find(|r| r[4] == "llm_overage").unwrap();
    let included = 50_000i128;
    // cents = nusd / 1e9 USD x 100 x (T - I) / T x 120/100 x 92/100
    let num = stored * 100 * (stored_tokens - included) * 120 * 92;
    let den = 1_000_000_000i128 * stored_tokens * 100 * 100;
    let cents = (2 * num + den) / (2 * den);
    assert_eq!(ov[9], cents.to_string(), "{ov:?}");
    assert_eq!(ov[11], stored_tokens.to_string());
    let o = report(&[
        "stripe-meter",
        "--month",
        "2026-11",
        "--event-name",
        "tokens",
    ]);
    assert_code(&o, 0);
}

#[test]
fn a_too_long_line_keeps_a_prefix_its_length_and_hash_and_reruns_add_nothing() {
    let env = Env::new();
    // 3 MiB of one line between valid ones, and a last line with no newline
    // at all of 2 MiB: both rejected with their length and SHA-256, the
    // valid lines stored.
    let long = format!("{{\"v\":1,\"pad\":\"{}\"}}", "x".repeat(3 << 20));
    let tail = "y".repeat(2 << 20);
    let mut text = api_lines("a", 2);
    text.push_str(&long);
    text.push('\n');
    text.push_str(&api_lines("b", 2));
    text.push_str("not json\n");
    text.push_str(&tail);
    let f = env.write("long.jsonl", &text);
    for run in 0..3 {
        let o = env.run("mb-ingest", &[f.to_str().unwrap()], "");
        assert_code(&o, 1);
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "long.jsonl:3: line of {} bytes is longer than 1048576 bytes",
                long.len()
            )),
            "{err}"
        );
        assert!(err.contains("long.jsonl:7: line of 2097152 bytes"), "{err}");
        let ins = if run == 0 { 4 } else { 0 };
        assert!(
            err.ends_with(&format!(
                "read 7, inserted {ins}, duplicates {}, conflicts 0, rejected 3\n",
                4 - ins
            )),
            "{err}"
        );
    }
    // Each distinct bad line once, however many runs.
    let rows = env.query(
        "SELECT line_no, line_len, length(line), hex(line_sha256) FROM rejects ORDER BY line_no",
    );
    use sha2::Digest;
    let h = |s: &str| hex_upper(&sha2::Sha256::digest(s.as_bytes()));
    assert_eq!(
        rows,
        [
            format!("3|{}|4096|{}", long.len(), h(&long)),
            format!("6|8|8|{}", h("not json")),
            format!("7|{}|4096|{}", tail.len(), h(&tail)),
        ]
    );
    assert_eq!(
        env.query("SELECT count(*), sum(rejected), sum(inserted) FROM ingest_runs"),
        ["3|9|4"]
    );
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

#[test]
fn conflicts_are_recorded_once_per_source() {
    let env = Env::new();
    let a = env.write("a.jsonl", &api_lines("c", 3));
    assert_code(&env.run("mb-ingest", &[a.to_str().unwrap()], ""), 0);
    let changed = api_lines("c", 3).replace("\"tokens_in\":1,", "\"tokens_in\":2,");
    let b = env.write("b.jsonl", &changed);
    for _ in 0..3 {
        let o = env.run("mb-ingest", &[b.to_str().unwrap()], "");
        assert_code(&o, 1);
        assert!(stderr(&o).contains("conflicts 3"), "{}", stderr(&o));
    }
    assert_eq!(env.query("SELECT count(*) FROM conflicts"), ["3"]);
}

#[test]
fn readme_states_the_real_transaction_size() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let n = mb::ingest::DEFAULT_BATCH_LINES;
    let shown = format!("{},{:03}", n / 1000, n % 1000);
    assert!(
        readme.contains(&format!("transactions of {shown} (`--batch`)")),
        "README must say the default transaction size, {shown} lines"
    );
}

#[test]
fn a_leap_second_is_stored_once_and_reingested_as_a_duplicate() {
    let env = Env::new();
    let line = api_lines("leap", 1).replace("2026-11-03T10:00:00Z", "2016-12-31T23:59:60.5Z");
    assert!(line.contains("23:59:60.5Z"));
    let f = env.write("leap.jsonl", &line);
    let o = env.run("mb-ingest", &[f.to_str().unwrap()], "");
    assert_code(&o, 0);
    let o = env.run("mb-ingest", &[f.to_str().unwrap()], "");
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("inserted 0, duplicates 1, conflicts 0"),
        "{}",
        stderr(&o)
    );
    // Stored as the last instant of 23:59:59, still in 2016.
    assert_eq!(
        env.query("SELECT ts_ns FROM api_usage"),
        ["1483228799999999999"]
    );
    let o = env.run("mb-report", &["events"], "");
    assert_code(&o, 0);
    assert!(stdout(&o).contains("\"ts\":\"2016-12-31T23:59:59.999999999Z\""));
}

#[test]
fn minus_zero_integers_and_a_leading_bom_are_accepted() {
    let env = Env::new();
    let mut text = String::from("\u{feff}");
    text.push_str(
        &api_lines("z", 2)
            .replacen("\"tokens_out\":0", "\"tokens_out\":-0", 1)
            .replacen("\"reasoning_tokens\":0", "\"reasoning_tokens\":-0", 2),
    );
    let f = env.write("bom.jsonl", &text);
    let o = env.run("mb-ingest", &[f.to_str().unwrap()], "");
    assert_code(&o, 0);
    assert_eq!(
        env.query("SELECT typeof(tokens_out), tokens_out FROM api_usage ORDER BY id"),
        ["integer|0", "integer|0"]
    );
    // A BOM anywhere else is named, not mistaken for bad JSON.
    let mid = format!("{}\u{feff}{}", api_lines("m", 1), api_lines("n", 1));
    let f = env.write("mid.jsonl", &mid);
    let o = env.run("mb-ingest", &[f.to_str().unwrap()], "");
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("mid.jsonl:2: starts with a UTF-8 byte order mark (U+FEFF)"),
        "{}",
        stderr(&o)
    );
    // Other negative or fractional numbers stay rejects.
    let bad = api_lines("x", 1).replace("\"tokens_out\":0", "\"tokens_out\":-0.5");
    let o = env.run("mb-ingest", &[], &bad);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("field \"tokens_out\": invalid type: floating point `-0.5`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_report_during_database_creation_waits_for_the_creator() {
    let env = Env::new();
    // The file exists but is empty, as while mb-ingest is creating it.
    env.write("data/usage.db", "");
    let mut c = env.cmd("mb-report");
    c.args(["events"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let o = env.run("mb-ingest", &[], &api_lines("w", 3));
    assert_code(&o, 0);
    let o = child.wait_with_output().unwrap();
    // It waited for the schema and reported what was committed by then
    // (the rows may land a moment after the schema), with no error.
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
    assert!(stdout(&o).lines().count() <= 3);
    // With nobody creating it, it says so (after a bounded wait).
    let env = Env::new();
    env.write("data/usage.db", "");
    let t0 = Instant::now();
    let o = env.run("mb-report", &["events"], "");
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("empty or still being created"),
        "{}",
        stderr(&o)
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
}

#[test]
fn progress_on_a_terminal_has_percent_eta_and_whole_rates() {
    let env = Env::new();
    let f = env.path("big.jsonl");
    std::fs::write(&f, api_lines("p", 30_000)).unwrap();
    let db = env.db.display().to_string();
    // A file of known size: percentage of its bytes, total, rate, ETA,
    // then the lines so far with a whole lines-per-second rate.
    let tty = run_in_pty(
        &env,
        "mb-ingest",
        &format!("--db {db} {}", f.display()),
        &[],
        120,
    );
    assert!(tty.contains("% ["), "{tty:?}");
    assert!(tty.contains(" of 11.98 MiB, "), "{tty:?}");
    assert!(tty.contains(", ETA "), "{tty:?}");
    assert!(tty.contains(" lines ("), "{tty:?}");
    // No fractional rates (indicatif's {per_sec} printed 4 decimals).
    let frac = tty.split("/s").any(|piece| {
        let tail: String = piece
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        tail.contains('.') && tail.find('.').is_some_and(|i| i >= 3)
    });
    assert!(!frac, "a rate with 3+ decimals: {tty:?}");
    assert!(tty.contains("read 30000, inserted 30000"), "{tty:?}");
    // A regular file on stdin has a known size too.
    let tty = run_in_pty(
        &env,
        "mb-ingest",
        &format!("--db {db}-2 < {}", f.display()),
        &[],
        120,
    );
    assert!(
        tty.contains(", ETA ") && tty.contains(" lines ("),
        "{tty:?}"
    );
    assert!(tty.contains("read 30000, inserted 30000"), "{tty:?}");
    // Not a terminal (or --quiet): no progress at all, only the summary.
    let o = env.run(
        "mb-ingest",
        &["--db", &format!("{db}-3"), f.to_str().unwrap()],
        "",
    );
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 30000, inserted 30000, duplicates 0, conflicts 0, rejected 0\n"
    );
}

#[test]
fn flags_that_would_be_ignored_are_refused() {
    let env = Env::new();
    let spool = env.path("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let sp = spool.to_str().unwrap();
    // --quiet drops the summary --summary would format; a dry run has no
    // transactions for --batch and moves or deletes no spool file.
    for (args, conflict) in [
        (
            &["--quiet", "--summary", "json"][..],
            "'--quiet' cannot be used with '--summary <FORMAT>'",
        ),
        (
            &["--dry-run", "--batch", "5"],
            "'--dry-run' cannot be used with '--batch <N>'",
        ),
        (
            &["--dry-run", "--spool", sp, "--delete"],
            "'--dry-run' cannot be used with '--delete'",
        ),
    ] {
        let o = env.run("mb-ingest", args, "");
        assert_code(&o, 2);
        assert!(stderr(&o).contains(conflict), "{args:?}: {}", stderr(&o));
    }
    // --rejects in a dry run works: the rejected lines are collected, and
    // the summary says that this was written.
    let rej = env.path("rejected.jsonl");
    let o = env.run(
        "mb-ingest",
        &["--dry-run", "--rejects", rej.to_str().unwrap()],
        "not json\n",
    );
    assert_code(&o, 1);
    assert!(
        stderr(&o).ends_with(&format!(
            "read 1, inserted 0, duplicates 0, conflicts 0, rejected 1 (dry run: nothing written but the rejected lines, to {})\n",
            rej.display()
        )),
        "{}",
        stderr(&o)
    );
    assert!(std::fs::read_to_string(&rej)
        .unwrap()
        .ends_with("\nnot json\n"));
    assert!(!env.db.exists());
}
