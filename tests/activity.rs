//! Integration tests of mb-activity: the real binary, the real mb-ingest,
//! real shells.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::{assert_code, golden, run_cmd, stderr, stdout, Env, NOW};

/// The identity flags every recording test uses.
const ID: [&str; 4] = ["--customer", "acme", "--vm", "vm-1"];

fn act(env: &Env, args: &[&str], stdin: &str) -> Output {
    let mut c = env.cmd("mb-activity");
    c.env("LOGNAME", "alice").args(ID).args(args);
    run_cmd(&mut c, stdin)
}

/// The complete `*.jsonl` files of a spool directory, sorted by name.
fn spool_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every line of every spool file, parsed.
fn spool_events(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in spool_files(dir) {
        let text = fs::read_to_string(&f).unwrap();
        assert!(text.ends_with('\n'), "{}: no final newline", f.display());
        assert_eq!(
            text.lines().count(),
            1,
            "{}: one event per file",
            f.display()
        );
        out.push(serde_json::from_str(text.trim_end()).unwrap());
    }
    out
}

/// A command for another program (a shell, `script`) with the same clean,
/// pinned environment as the binaries under test.
fn with_env(env: &Env, program: &str) -> Command {
    let base = env.cmd("mb-activity");
    let mut c = Command::new(program);
    c.env_clear().current_dir(env.dir.path());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

/// Sort events by their start time (the text of `ts` has 0, 3, 6 or 9
/// fraction digits, so it does not sort as a string).
fn by_ts(ev: &mut [serde_json::Value]) {
    let ns = |v: &serde_json::Value| {
        mb::time::to_unix_nanos(&mb::time::parse_rfc3339(v["ts"].as_str().unwrap()).unwrap())
    };
    ev.sort_by_key(ns);
}

fn ingest_spool(env: &Env, dir: &Path) -> Output {
    let o = env.run("mb-ingest", &["--spool", dir.to_str().unwrap()], "");
    assert_code(&o, 0);
    o
}

// ---------------------------------------------------------------- record

#[test]
fn record_prints_one_line_that_ingests() {
    let env = Env::new();
    let o = act(
        &env,
        &[
            "record",
            "--type",
            "pattern",
            "--name",
            "rag-query",
            "--command",
            "python rag.py --q 'x'",
            "--duration",
            "95.5",
            "--exit-code",
            "0",
            "--at",
            "2026-11-28T10:00:00+01:00",
        ],
        "",
    );
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
    let line = stdout(&o);
    assert_eq!(line.lines().count(), 1);
    // The id is a hash (see src/activity/mod.rs), so the whole line is a
    // golden file; the fields are also checked one by one below.
    golden("activity/record.expected.jsonl", &line);
    let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
    // +01:00 converted to Z: 10:00+01:00 = 09:00Z.
    assert_eq!(v["ts"], "2026-11-28T09:00:00Z");
    assert_eq!(v["duration_seconds"], 95.5);
    assert_eq!(v["user"], "alice");

    let o = env.run("mb-ingest", &[], &line);
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 1, inserted 1, duplicates 0, conflicts 0, rejected 0\n"
    );
    assert_eq!(
        env.query("SELECT ts, customer_id, vm_id, activity_type, pattern_name, command, duration_seconds, exit_code, user FROM activity_log_v"),
        ["2026-11-28T09:00:00.000Z|acme|vm-1|pattern|rag-query|python rag.py --q 'x'|95.5|0|alice"]
    );
    // The same record again is the same event: a duplicate, not a second row.
    let again = act(
        &env,
        &[
            "record",
            "--type",
            "pattern",
            "--name",
            "rag-query",
            "--command",
            "python rag.py --q 'x'",
            "--duration",
            "95.5",
            "--exit-code",
            "0",
            "--at",
            "2026-11-28T09:00:00Z",
        ],
        "",
    );
    assert_eq!(stdout(&again), line);
    let o = env.run("mb-ingest", &[], &stdout(&again));
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 1, inserted 0, duplicates 1, conflicts 0, rejected 0\n"
    );
}

#[test]
fn record_defaults_to_now_and_optional_fields_are_null() {
    let env = Env::new();
    let o = act(
        &env,
        &["record", "--type", "operation", "--duration", "0"],
        "",
    );
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim_end()).unwrap();
    assert_eq!(v["ts"], NOW);
    assert_eq!(v["pattern_name"], serde_json::Value::Null);
    assert_eq!(v["command"], serde_json::Value::Null);
    assert_eq!(v["exit_code"], serde_json::Value::Null);
    assert_eq!(v["duration_seconds"], 0.0);
}

#[test]
fn bad_arguments_exit_2_and_write_nothing() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["record", "--type", "command", "--duration", "-1"],
            "--duration \"-1\": must not be negative",
        ),
        (
            &["record", "--type", "command", "--duration", "1e3"],
            "--duration \"1e3\": not a number of seconds",
        ),
        (
            &["record", "--type", "Db-Backup", "--duration", "1"],
            "--type \"Db-Backup\": must be a lower-case word",
        ),
        (
            &[
                "record",
                "--type",
                "command",
                "--duration",
                "1",
                "--at",
                "yesterday",
            ],
            "--at \"yesterday\": not an RFC 3339 timestamp",
        ),
        (
            &[
                "record",
                "--type",
                "command",
                "--duration",
                "1",
                "--at",
                "2026-12-01T00:00:00Z",
            ],
            "more than 1 day in the future",
        ),
        (
            &[
                "record",
                "--type",
                "command",
                "--duration",
                "1",
                "--redact",
                "(",
            ],
            "--redact: invalid redaction pattern \"(\"",
        ),
    ];
    for (args, msg) in cases {
        let o = act(&env, args, "");
        assert_code(&o, 2);
        assert_eq!(stdout(&o), "", "{args:?}");
        assert!(stderr(&o).contains(msg), "{args:?}: {}", stderr(&o));
    }
    // No customer anywhere: a usage error naming the fixes.
    let o = env.run(
        "mb-activity",
        &["record", "--type", "command", "--duration", "1"],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("no customer configured"),
        "{}",
        stderr(&o)
    );
}

/// `run` with `args` (no identity flags added) around a command that
/// creates `ran` and exits 3.
fn run_marked(env: &Env, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let _ = fs::remove_file(env.path("ran"));
    let mut c = env.cmd("mb-activity");
    c.env("LOGNAME", "alice");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.args(args)
        .args(["--", "sh", "-c", "touch ran; echo out; exit 3"]);
    run_cmd(&mut c, "")
}

#[test]
fn metering_problems_never_stop_the_command() {
    let env = Env::new();
    let typo = env.write(
        "typo.toml",
        "customer_id = \"acme\"\n[activity]\nredcat = ['x']\n",
    );
    let typo = typo.to_str().unwrap();
    env.write("not-a-dir", "");
    let cases: &[(&[&str], &str)] = &[
        // No customer anywhere (the test config is empty).
        (&["run", "--spool", "spool"], "no customer configured"),
        // A typo in mb.toml.
        (&["--config", typo, "run", "--spool", "spool"], "redcat"),
        // Bad metering arguments.
        (
            &[
                "--customer",
                "acme",
                "run",
                "--type",
                "BAD",
                "--spool",
                "spool",
            ],
            "--type \"BAD\"",
        ),
        (
            &[
                "--customer",
                "acme",
                "--redact",
                "[",
                "run",
                "--spool",
                "spool",
            ],
            "--redact: invalid redaction pattern",
        ),
        // An unwritable spool, written before exiting or by the detached
        // writer (whose stderr is still ours).
        (
            &[
                "--customer",
                "acme",
                "run",
                "--wait",
                "--spool",
                "not-a-dir/spool",
            ],
            "event not recorded",
        ),
        (
            &["--customer", "acme", "run", "--spool", "not-a-dir/spool"],
            "event not recorded",
        ),
    ];
    for (args, says) in cases {
        let o = run_marked(&env, args, &[]);
        // The command ran, its output and status are the caller's.
        assert_code(&o, 3);
        assert!(env.path("ran").exists(), "{args:?}");
        assert_eq!(stdout(&o), "out\n", "{args:?}");
        // One warning, naming the cause.
        let err = stderr(&o);
        assert_eq!(err.matches("mb-activity: ").count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("mb-activity: "), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(spool_files(&env.path("spool")).is_empty(), "{args:?}");
    }
    let o = run_marked(&env, &["run", "--spool", "spool"], &[]);
    assert_eq!(
        stderr(&o),
        "mb-activity: not recording this command: no customer configured: \
         pass --customer ID, set MB_CUSTOMER_ID, or put customer_id = \"ID\" in mb.toml\n"
    );
    // A command that cannot start is still the shell's 127, with one
    // warning for the metering and bash's message.
    let mut c = env.cmd("mb-activity");
    c.args(["run", "--", "/nonexistent/mb-nothing"]);
    let o = run_cmd(&mut c, "");
    assert_code(&o, 127);
    assert!(stderr(&o).ends_with("/nonexistent/mb-nothing: command not found\n"));
}

#[test]
fn closed_stdout_is_not_an_error() {
    let env = Env::new();
    let mut c = env.cmd("mb-activity");
    c.args(ID)
        .args(["record", "--type", "command", "--duration", "1"]);
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
}

#[test]
fn help_has_examples() {
    let env = Env::new();
    let o = env.run("mb-activity", &["--help"], "");
    assert_code(&o, 0);
    assert!(stdout(&o).contains("EXAMPLES:"));
    assert!(stdout(&o).contains("eval \"$(mb-activity init bash)\""));
}

// ---------------------------------------------------------------- redaction

#[test]
fn every_redaction_rule_applies_before_writing() {
    let env = Env::new();
    let cfg = env.write("mb.toml", "[activity]\nredact = ['acct-[0-9]+']\n");
    let cfg = cfg.to_str().unwrap();
    let cases = [
        ("mysql --password=hunter2 shop", "mysql --password=*** shop"),
        (
            "docker login --password hunter2 reg",
            "docker login --password *** reg",
        ),
        (
            "curl -H 'Authorization: Bearer abc.123' https://api",
            "curl -H 'Authorization: Bearer ***' https://api",
        ),
        (
            "curl -H \"x-api-key: k-1\" https://api",
            "curl -H \"x-api-key: ***\" https://api",
        ),
        ("echo sk-proj-0123456789abcdefXYZ", "echo ***"),
        (
            "aws s3 ls --profile AKIAIOSFODNN7EXAMPLE",
            "aws s3 ls --profile ***",
        ),
        (
            "GITHUB_TOKEN=gh1 DB_PASSWORD='p w' AWS_SECRET_ACCESS_KEY=x MY_KEY=y make",
            "GITHUB_TOKEN=*** DB_PASSWORD=*** AWS_SECRET_ACCESS_KEY=*** MY_KEY=*** make",
        ),
        (
            "git clone https://bob:pw@git.example.com/r",
            "git clone https://bob:***@git.example.com/r",
        ),
        ("invoice acct-1234 internal-x", "invoice *** ***"),
        ("HOME=/root ls -la", "HOME=/root ls -la"),
    ];
    for (input, expected) in cases {
        let o = act(
            &env,
            &[
                "--config",
                cfg,
                "--redact",
                "internal-[a-z]",
                "record",
                "--type",
                "command",
                "--duration",
                "1",
                "--command",
                input,
            ],
            "",
        );
        assert_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim_end()).unwrap();
        assert_eq!(v["command"], expected, "{input}");
    }
    // run: the argv is redacted the same way.
    let spool = env.path("spool");
    let o = act(
        &env,
        &[
            "run",
            "--spool",
            spool.to_str().unwrap(),
            "--",
            "true",
            "--token",
            "s3cr3t",
            "API_KEY=k",
        ],
        "",
    );
    assert_code(&o, 0);
    assert_eq!(
        spool_events(&spool)[0]["command"],
        "true --token *** API_KEY=***"
    );
    // A bad pattern in the config is a config error, exit 2.
    env.write("mb.toml", "[activity]\nredact = ['(']\n");
    let o = act(
        &env,
        &[
            "--config",
            cfg,
            "record",
            "--type",
            "command",
            "--duration",
            "1",
        ],
        "",
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("[activity] redact: invalid redaction pattern"),
        "{}",
        stderr(&o)
    );
}

/// One form of tests/fixtures/activity/redaction.jsonl.
#[derive(serde::Deserialize)]
struct Form {
    form: String,
    argv: Vec<String>,
    command: String,
    secrets: Vec<String>,
    redacted: String,
}

#[test]
fn redaction_corpus_through_run_ingest_and_report() {
    let text = fs::read_to_string(crate::util::fixture("activity/redaction.jsonl")).unwrap();
    let forms: Vec<Form> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(forms.len() >= 60, "{} forms", forms.len());
    assert!(forms.iter().filter(|f| f.secrets.is_empty()).count() >= 15);
    let env = Env::new();
    let spool = env.path("spool");
    // An empty PATH: no wrapped command can start (127), so nothing of the
    // corpus runs, and `run` still records each one, as it does a typo.
    let nothing = env.path("empty-path");
    fs::create_dir_all(&nothing).unwrap();
    for (i, f) in forms.iter().enumerate() {
        assert_eq!(
            mb::activity::shell_join(&f.argv),
            f.command,
            "{}: `command` is not how run joins `argv`",
            f.form
        );
        for s in &f.secrets {
            assert!(
                f.command.contains(s.as_str()),
                "{}: secret {s:?} not in the command",
                f.form
            );
        }
        if f.secrets.is_empty() {
            assert_eq!(
                f.redacted, f.command,
                "{}: a kept form must be unchanged",
                f.form
            );
        }
        let mut c = env.cmd("mb-activity");
        c.env("LOGNAME", "alice")
            .env("PATH", &nothing)
            .args(ID)
            .args([
                "run",
                "--wait",
                "--name",
                &format!("form-{i:03}"),
                "--spool",
            ])
            .arg(&spool)
            .arg("--")
            .args(&f.argv);
        let o = run_cmd(&mut c, "");
        assert_code(&o, 127);
    }
    ingest_spool(&env, &spool);

    let stored: std::collections::HashMap<String, String> = env
        .query("SELECT pattern_name, command FROM activity_log_v")
        .into_iter()
        .map(|r| {
            let (n, c) = r.split_once('|').unwrap();
            (n.to_string(), c.to_string())
        })
        .collect();
    let o = env.run("mb-report", &["events", "--kind", "activity"], "");
    assert_code(&o, 0);
    let report = stdout(&o);
    let reported: std::collections::HashMap<String, String> = report
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["pattern_name"].as_str().unwrap().to_string(),
                v["command"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(stored.len(), forms.len());
    assert_eq!(reported.len(), forms.len());
    // The database file itself (and its WAL) holds no secret anywhere.
    let mut db_bytes = fs::read(&env.db).unwrap();
    if let Ok(wal) = fs::read(env.db.with_extension("db-wal")) {
        db_bytes.extend(wal);
    }
    let db_text = String::from_utf8_lossy(&db_bytes);
    for (i, f) in forms.iter().enumerate() {
        let name = format!("form-{i:03}");
        assert_eq!(stored[&name], f.redacted, "{}: stored row", f.form);
        assert_eq!(reported[&name], f.redacted, "{}: mb-report events", f.form);
        for s in &f.secrets {
            assert!(
                !stored[&name].contains(s.as_str()),
                "{}: {s:?} stored",
                f.form
            );
            assert!(!report.contains(s.as_str()), "{}: {s:?} reported", f.form);
            assert!(
                !db_text.contains(s.as_str()),
                "{}: {s:?} in the database file",
                f.form
            );
        }
    }
}

#[test]
fn command_text_is_capped_at_4_kib_on_a_char_boundary() {
    let env = Env::new();
    // 4095 ASCII bytes then "é" (2 bytes) would end at byte 4097: the cut
    // falls back to the boundary at 4095.
    let long = format!("{}é and more", "a".repeat(4095));
    let o = act(
        &env,
        &[
            "record",
            "--type",
            "command",
            "--duration",
            "1",
            "--command",
            &long,
        ],
        "",
    );
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim_end()).unwrap();
    assert_eq!(v["command"].as_str().unwrap(), "a".repeat(4095));
    let o = env.run("mb-ingest", &[], &stdout(&o));
    assert_code(&o, 0);
}

// ---------------------------------------------------------------- run

#[test]
fn run_passes_stdio_and_status_through_and_spools_the_event() {
    let env = Env::new();
    let spool = env.path("state/spool");
    let o = act(
        &env,
        &[
            "run",
            "--spool",
            spool.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "cat; echo out; echo err >&2; exit 3",
        ],
        "from stdin\n",
    );
    assert_code(&o, 3);
    assert_eq!(stdout(&o), "from stdin\nout\n");
    assert_eq!(stderr(&o), "err\n");
    // The spool directory was created private.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&spool).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let ev = spool_events(&spool);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0]["command"],
        "sh -c 'cat; echo out; echo err >&2; exit 3'"
    );
    assert_eq!(ev[0]["exit_code"], 3);
    assert_eq!(ev[0]["activity_type"], "command");
    assert_eq!(ev[0]["ts"], NOW);
    assert!(ev[0]["duration_seconds"].as_f64().unwrap() > 0.0);

    let o = ingest_spool(&env, &spool);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 1, inserted 1, duplicates 0, conflicts 0, rejected 0\n"
    );
    assert_eq!(
        env.query(
            "SELECT customer_id, vm_id, activity_type, command, exit_code, user FROM activity_log"
        ),
        ["acme|vm-1|command|sh -c 'cat; echo out; echo err >&2; exit 3'|3|alice"]
    );
    assert!(
        spool_files(&spool).is_empty(),
        "ingested files move to done/"
    );
}

#[test]
fn run_writes_in_the_background_unless_told_to_wait() {
    let env = Env::new();
    let spool = env.path("spool");
    let sp = spool.to_str().unwrap();
    // --wait: the event is in the spool when the wrapper exits, even for a
    // caller that only waits for the process (not for its stderr).
    let mut c = env.cmd("mb-activity");
    c.args(ID)
        .args(["run", "--wait", "--spool", sp, "--", "true"]);
    assert!(c.stderr(Stdio::null()).status().unwrap().success());
    assert_eq!(spool_files(&spool).len(), 1);
    // Default: a detached writer publishes it shortly after.
    let mut c = env.cmd("mb-activity");
    c.args(ID)
        .args(["run", "--spool", sp, "--", "sh", "-c", "exit 5"]);
    assert_eq!(c.stderr(Stdio::null()).status().unwrap().code(), Some(5));
    let ev = wait_for_events(&spool, 2);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().any(|v| v["exit_code"] == 5));
}

#[test]
fn run_measures_wall_time_and_names_patterns() {
    let env = Env::new();
    let spool = env.path("spool");
    let o = act(
        &env,
        &[
            "run",
            "--type",
            "operation",
            "--name",
            "nap",
            "--spool",
            spool.to_str().unwrap(),
            "--",
            "sleep",
            "0.3",
        ],
        "",
    );
    assert_code(&o, 0);
    let ev = spool_events(&spool);
    let d = ev[0]["duration_seconds"].as_f64().unwrap();
    assert!((0.3..1.5).contains(&d), "{d}");
    assert_eq!(ev[0]["activity_type"], "operation");
    assert_eq!(ev[0]["pattern_name"], "nap");
}

#[test]
fn signals_and_unstartable_commands_are_reported_like_a_shell() {
    let env = Env::new();
    let spool = env.path("spool");
    let sp = spool.to_str().unwrap();
    fs::write(env.path("not-exec.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["sh", "-c", "kill -TERM $$"], 128 + 15, ""),
        (&["sh", "-c", "kill -INT $$"], 128 + 2, ""),
        (&["sh", "-c", "kill -KILL $$"], 128 + 9, ""),
        (&["sh", "-c", "exit 255"], 255, ""),
        (
            &["mb-no-such-command", "x"],
            127,
            "mb-activity: mb-no-such-command: command not found\n",
        ),
        (
            &["./not-exec.sh"],
            126,
            "mb-activity: ./not-exec.sh: Permission denied\n",
        ),
    ];
    for (cmd, status, err) in cases {
        let mut args = vec!["run", "--spool", sp, "--"];
        args.extend_from_slice(cmd);
        let mut c = env.cmd("mb-activity");
        c.env("LOGNAME", "alice").args(ID).args(&args);
        // A shell started with `&` by a non-interactive shell (cron, nohup
        // jobs, some CI runners) inherits SIGINT and SIGQUIT ignored, and
        // `sh -c 'kill -INT $$'` then exits 0, as it would under mb-activity
        // in real life too. This test is about what mb-activity reports for
        // a signal-killed command, so give the child default dispositions.
        // SAFETY: signal() is async-signal-safe, as pre_exec requires.
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                Ok(())
            });
        }
        let o = run_cmd(&mut c, "");
        assert_code(&o, *status);
        assert_eq!(stderr(&o), *err, "{cmd:?}");
    }
    let mut got: Vec<(String, i64)> = spool_events(&spool)
        .iter()
        .map(|v| {
            (
                v["command"].as_str().unwrap().to_string(),
                v["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("./not-exec.sh".to_string(), 126),
            ("mb-no-such-command x".to_string(), 127),
            ("sh -c 'exit 255'".to_string(), 255),
            ("sh -c 'kill -INT $$'".to_string(), 130),
            ("sh -c 'kill -KILL $$'".to_string(), 137),
            ("sh -c 'kill -TERM $$'".to_string(), 143),
        ]
    );
    let o = ingest_spool(&env, &spool);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 6, inserted 6, duplicates 0, conflicts 0, rejected 0\n"
    );
}

#[test]
fn a_pipeline_stage_is_unaffected() {
    let env = Env::new();
    let spool = env.path("spool");
    let wrap = format!(
        "{} --customer acme --vm vm-1 run --spool {} --",
        crate::util::bin_path("mb-activity").display(),
        spool.display()
    );
    // 200,000 numbered lines through a wrapped `sort -rn` inside a real
    // shell pipeline: the wrapped sort must see all of stdin, and all its
    // output must reach the next stage.
    let script =
        format!("seq 1 200000 | {wrap} sort -rn | tail -n 3; echo \"rc=${{PIPESTATUS[1]}}\"");
    let o = run_cmd(with_env(&env, "bash").arg("-c").arg(&script), "");
    assert_eq!(stdout(&o), "3\n2\n1\nrc=0\n", "{}", stderr(&o));
    assert_eq!(spool_events(&spool)[0]["exit_code"], 0);
    assert_eq!(spool_events(&spool)[0]["command"], "sort -rn");

    // `| head` closes the pipe early: the wrapped command may die of
    // SIGPIPE (141) or finish first; whatever it did is both the status
    // the pipeline sees and the status recorded.
    fs::remove_dir_all(&spool).unwrap();
    let script =
        format!("seq 1 200000 | {wrap} sort -rn | head -n 2; echo \"rc=${{PIPESTATUS[1]}}\"");
    let o = run_cmd(with_env(&env, "bash").arg("-c").arg(&script), "");
    let out = stdout(&o);
    let rc = out
        .strip_prefix("200000\n199999\nrc=")
        .unwrap_or_else(|| panic!("{out}"));
    let ev = spool_events(&spool);
    assert_eq!(ev[0]["exit_code"].to_string(), rc.trim_end());
    assert!(matches!(rc, "0\n" | "141\n"), "{rc}");
}

#[test]
fn eight_concurrent_writers_lose_and_tear_nothing() {
    let env = Env::new();
    let spool = env.path("spool");
    let sp = spool.to_str().unwrap().to_string();
    // A long argument makes each event about 3 KiB, so a torn write would
    // show as a broken line.
    let filler = "x".repeat(3000);
    let per_writer = 10;
    let mut threads = Vec::new();
    for w in 0..8 {
        let sp = sp.clone();
        let filler = filler.clone();
        let mut cmds = Vec::new();
        for i in 0..per_writer {
            let mut c = env.cmd("mb-activity");
            c.env("LOGNAME", "alice")
                .args(ID)
                .args([
                    "run",
                    "--spool",
                    &sp,
                    "--",
                    "sh",
                    "-c",
                    &format!("exit {}", (w * per_writer + i) % 256),
                ])
                .arg(&filler)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            cmds.push(c);
        }
        threads.push(std::thread::spawn(move || {
            for mut c in cmds {
                let o = c.output().unwrap();
                assert_eq!(String::from_utf8_lossy(&o.stderr), "");
            }
        }));
    }
    // Meanwhile mb-ingest empties the spool: it must never see a partial file.
    let mut ingested_while_writing = 0;
    while threads.iter().any(|t| !t.is_finished()) {
        if spool.is_dir() {
            let o = env.run("mb-ingest", &["--spool", &sp], "");
            assert_code(&o, 0);
            ingested_while_writing += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for t in threads {
        t.join().unwrap();
    }
    ingest_spool(&env, &spool);
    assert!(ingested_while_writing > 0);
    // Exactly the 80 expected events: exit codes 0..=79, once each.
    let codes = env.query("SELECT exit_code FROM activity_log ORDER BY exit_code");
    let expected: Vec<String> = (0..80).map(|n| n.to_string()).collect();
    assert_eq!(codes, expected);
    assert_eq!(env.query("SELECT count(*) FROM rejects"), ["0"]);
    assert_eq!(
        env.query("SELECT count(DISTINCT id) FROM activity_log"),
        ["80"]
    );
    let leftovers: Vec<_> = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn spool_defaults_to_the_state_dir_and_the_config() {
    let env = Env::new();
    // (The built-in default, $XDG_STATE_HOME/mb/spool or /var/lib/mb/spool
    // for root, is not exercised: tests may run as root.)
    let cfg = env.write(
        "mb.toml",
        &format!("state_dir = '{}'\n", env.path("state").display()),
    );
    let cfg = cfg.to_str().unwrap();
    let o = act(&env, &["--config", cfg, "run", "--", "true"], "");
    assert_code(&o, 0);
    assert_eq!(spool_events(&env.path("state/spool")).len(), 1);
    env.write(
        "mb.toml",
        &format!(
            "state_dir = '{}'\n[activity]\nspool = '{}'\n",
            env.path("state").display(),
            env.path("cfg-spool").display()
        ),
    );
    let o = act(&env, &["--config", cfg, "run", "--", "true"], "");
    assert_code(&o, 0);
    assert_eq!(spool_events(&env.path("cfg-spool")).len(), 1);
}

// ---------------------------------------------------------------- hooks

#[test]
fn hook_subcommand_skips_space_prefixed_lines() {
    let env = Env::new();
    let spool = env.path("spool");
    let sp = spool.to_str().unwrap();
    let base = [
        "hook",
        "--spool",
        sp,
        "--start",
        "1795900000.25",
        "--end",
        "1795900001.5",
        "--exit-code",
        "4",
        "--pid",
        "99",
        "--",
    ];
    let o = act(&env, &[&base[..], &[" export DB_PASSWORD=x"]].concat(), "");
    assert_code(&o, 0);
    assert!(spool_files(&spool).is_empty());
    let o = act(&env, &[&base[..], &["make -j4"]].concat(), "");
    assert_code(&o, 0);
    let ev = spool_events(&spool);
    // 1795900001.5 - 1795900000.25 = 1.25 s; 1795900000 s = 20785 days
    // (1970-01-01 + 20785 d = 2026-11-28) + 76000 s (21:06:40).
    assert_eq!(ev[0]["ts"], "2026-11-28T21:06:40.250Z");
    assert_eq!(ev[0]["duration_seconds"], 1.25);
    assert_eq!(ev[0]["exit_code"], 4);
    assert_eq!(ev[0]["command"], "make -j4");
    let o = act(
        &env,
        &[
            "hook",
            "--start",
            "soon",
            "--end",
            "1",
            "--exit-code",
            "0",
            "--pid",
            "1",
            "--",
            "ls",
        ],
        "",
    );
    assert_code(&o, 2);
}

/// Run `input` in an interactive shell under a pseudo-terminal (`script`),
/// with `rc` as its startup file. Returns the terminal transcript.
fn interactive(env: &Env, shell: &str, rc: &str, input: &str) -> String {
    let rcfile = env.write("rc", rc);
    let cmdline = match shell {
        "bash" => format!("bash --noprofile --rcfile {} -i", rcfile.display()),
        _ => {
            fs::copy(&rcfile, env.path(".zshrc")).unwrap();
            "zsh -i".to_string()
        }
    };
    let mut c = with_env(env, "script");
    c.args(["-qfec", &cmdline, "/dev/null"])
        // Hook events carry the shell's real clock, not MB_NOW.
        .env_remove("MB_NOW")
        .env("ZDOTDIR", env.dir.path())
        .env("TERM", "dumb")
        .env("LOGNAME", "alice")
        .env("MB_CUSTOMER_ID", "acme")
        .env("MB_VM_ID", "vm-1");
    let o = run_cmd(&mut c, input);
    let text = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert!(o.status.success(), "{text}\n{}", stderr(&o));
    text
}

/// Wait (up to 10 s) until the background jobs of the hook have written
/// `n` events.
fn wait_for_events(dir: &Path, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        if spool_files(dir).len() >= n {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Give a straggler the chance to show up as an extra event.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut ev = spool_events(dir);
    by_ts(&mut ev);
    ev
}

fn hook_text(env: &Env, shell: &str, spool: &Path) -> String {
    let o = act(
        env,
        &["init", shell, "--spool", spool.to_str().unwrap()],
        "",
    );
    assert_code(&o, 0);
    stdout(&o)
}

#[test]
fn bash_hook_records_interactive_commands_and_keeps_status() {
    let env = Env::new();
    let spool = env.path("spool");
    let hist = env.path("bash_history");
    let rc = format!(
        "HISTFILE={}\nHISTCONTROL=ignoreboth\nPS1='$ '\nPROMPT_COMMAND='echo \"prompt-saw=$?\"'\n{}",
        hist.display(),
        hook_text(&env, "bash", &spool)
    );
    let input = "echo one two\necho \"last=$_\"\nfalse\necho \"st=$?\"\n echo secret-line --password=x\nsleep 0.3\n(exit 7)\necho \"st=$?\"\nexport API_TOKEN=abc123\necho one two\necho one two\nexit\n";
    let out = interactive(&env, "bash", &rc, input);
    // $? and $_ are what they would be without the hook, for the user's
    // next command and for the PROMPT_COMMAND that runs after the hook.
    assert!(out.contains("\nlast=two\n"), "{out}");
    assert!(out.contains("\nst=1\n"), "{out}");
    assert!(out.contains("\nst=7\n"), "{out}");
    assert!(out.contains("prompt-saw=7\n"), "{out}");
    assert!(out.contains("prompt-saw=1\n"), "{out}");

    let ev = wait_for_events(&spool, 10);
    let got: Vec<(String, i64)> = ev
        .iter()
        .map(|v| {
            (
                v["command"].as_str().unwrap().to_string(),
                v["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = [
        ("echo one two", 0),
        ("echo \"last=$_\"", 0),
        ("false", 1),
        ("echo \"st=$?\"", 0),
        ("sleep 0.3", 0),
        ("(exit 7)", 7),
        ("echo \"st=$?\"", 0),
        ("export API_TOKEN=***", 0),
        ("echo one two", 0),
        // A repeat dropped from the history by ignoredups is still a run.
        ("echo one two", 0),
    ]
    .iter()
    .map(|(c, s)| (c.to_string(), *s))
    .collect();
    assert_eq!(got, want, "{out}");
    let sleep = ev[4]["duration_seconds"].as_f64().unwrap();
    assert!((0.3..2.0).contains(&sleep), "{sleep}");
    assert!(ev
        .iter()
        .all(|v| v["user"] == "alice" && v["customer_id"] == "acme"));
    // The space-prefixed line is in neither the events nor the history file.
    let history = fs::read_to_string(&hist).unwrap();
    assert!(!history.contains("secret-line"), "{history}");
    assert!(history.contains("sleep 0.3"), "{history}");

    let o = env
        .cmd("mb-ingest")
        .env_remove("MB_NOW")
        .args(["--spool", spool.to_str().unwrap()])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o),
        "mb-ingest: read 10, inserted 10, duplicates 0, conflicts 0, rejected 0\n"
    );
}

#[test]
fn bash_hook_is_silent_when_the_binary_is_gone() {
    let env = Env::new();
    let spool = env.path("spool");
    let copy = env.path("bin/mb-activity");
    fs::create_dir_all(copy.parent().unwrap()).unwrap();
    fs::copy(crate::util::bin_path("mb-activity"), &copy).unwrap();
    let o = run_cmd(
        env.cmd("mb-activity")
            .args(ID)
            .args(["init", "bash", "--spool", spool.to_str().unwrap()]),
        "",
    );
    let text = stdout(&o).replace(
        &crate::util::bin_path("mb-activity")
            .to_string_lossy()
            .into_owned(),
        &copy.to_string_lossy(),
    );
    fs::remove_file(&copy).unwrap();
    let rc = format!("PS1='$ '\n{text}");
    let out = interactive(
        &env,
        "bash",
        &rc,
        "false\necho \"st=$?\"\nls /nonexistent-dir\necho \"st=$?\"\nexit\n",
    );
    assert!(out.contains("\nst=1\n"), "{out}");
    assert!(out.contains("\nst=2\n"), "{out}");
    assert!(!out.contains("mb-activity"), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(spool_files(&spool).is_empty());
}

#[test]
fn zsh_hook_records_interactive_commands() {
    if Command::new("zsh")
        .arg("-fc")
        .arg("true")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        // zsh is optional on build machines; bash is the hook that is
        // always tested. Say so instead of passing silently.
        let _ = writeln!(
            std::io::stderr(),
            "zsh not installed: zsh hook test not run"
        );
        return;
    }
    let env = Env::new();
    let spool = env.path("spool");
    let rc = format!(
        "PS1='%% '\nsetopt HIST_IGNORE_SPACE\n{}",
        hook_text(&env, "zsh", &spool)
    );
    let out = interactive(
        &env,
        "zsh",
        &rc,
        "false\necho \"st=$?\"\n echo secret --password=x\nsleep 0.2\nexit\n",
    );
    assert!(out.contains("st=1"), "{out}");
    let ev = wait_for_events(&spool, 3);
    let got: Vec<(&str, i64)> = ev
        .iter()
        .map(|v| {
            (
                v["command"].as_str().unwrap(),
                v["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("false", 1), ("echo \"st=$?\"", 0), ("sleep 0.2", 0)],
        "{out}"
    );
    let d = ev[2]["duration_seconds"].as_f64().unwrap();
    assert!((0.2..2.0).contains(&d), "{d}");
}

#[test]
fn init_embeds_identity_config_and_redaction_into_the_hook() {
    let env = Env::new();
    let spool = env.path("spool");
    let cfg = env.write("conf/mb.toml", "[activity]\nredact = ['proj-[0-9]+']\n");
    let mut c = env.cmd("mb-activity");
    c.current_dir(env.path("conf")).args([
        "--customer",
        "globex",
        "--vm",
        "vm-9",
        "--config",
        "mb.toml",
        "--redact",
        "acct-[0-9]+",
        "init",
        "bash",
        "--spool",
        spool.to_str().unwrap(),
    ]);
    let o = run_cmd(&mut c, "");
    assert_code(&o, 0);
    assert_eq!(stderr(&o), "");
    let hook = stdout(&o);
    assert!(
        hook.contains(&format!(
            "__mb_activity_args=('--customer' 'globex' '--vm' 'vm-9' '--config' '{}' \
             '--redact' 'acct-[0-9]+' '--spool' '{}')",
            cfg.display(),
            spool.display()
        )),
        "{hook}"
    );
    assert!(!hook.contains("records nothing"), "{hook}");
    // A shell without MB_CUSTOMER_ID or MB_VM_ID records with them.
    let rc = format!("PS1='$ '\n{hook}");
    let out = shell_without_identity(&env, &rc, "echo acct-42 proj-7\nexit\n");
    assert!(!out.contains("mb-activity"), "{out}");
    let ev = wait_for_events(&spool, 1);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["customer_id"], "globex");
    assert_eq!(ev[0]["vm_id"], "vm-9");
    assert_eq!(ev[0]["command"], "echo *** ***");
}

#[test]
fn a_hook_without_a_customer_says_so_once_per_shell() {
    let env = Env::new();
    let spool = env.path("spool");
    let mut c = env.cmd("mb-activity");
    c.args(["init", "bash", "--spool", spool.to_str().unwrap()]);
    let o = run_cmd(&mut c, "");
    assert_code(&o, 0);
    let hook = stdout(&o);
    let rc = format!("PS1='$ '\n{hook}");
    let out = shell_without_identity(&env, &rc, "true\ntrue\ntrue\nexit\n");
    let warning = "mb-activity: the shell hook records nothing: no customer configured";
    assert_eq!(out.matches(warning).count(), 1, "{out}");
    // Sourcing it again in the same shell is a no-op (already installed).
    let rc = format!("PS1='$ '\n{hook}\n{hook}");
    let out = shell_without_identity(&env, &rc, "true\nexit\n");
    assert_eq!(out.matches(warning).count(), 1, "{out}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(spool_files(&spool).is_empty());
    // zsh too.
    let mut c = env.cmd("mb-activity");
    c.args(["init", "zsh", "--spool", spool.to_str().unwrap()]);
    let zhook = stdout(&run_cmd(&mut c, ""));
    assert!(zhook.contains(warning), "{zhook}");
}

/// An interactive bash under a pty with no MB_CUSTOMER_ID / MB_VM_ID;
/// returns what the terminal showed (stdout and stderr).
fn shell_without_identity(env: &Env, rc: &str, input: &str) -> String {
    let rcfile = env.write("rc", rc);
    let cmdline = format!("bash --noprofile --rcfile {} -i", rcfile.display());
    let mut c = with_env(env, "script");
    c.args(["-qfec", &cmdline, "/dev/null"])
        .env_remove("MB_NOW")
        .env("TERM", "dumb")
        .env("LOGNAME", "alice");
    let o = run_cmd(&mut c, input);
    let text = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert!(o.status.success(), "{text}\n{}", stderr(&o));
    text
}

#[test]
fn init_prints_the_absolute_binary_path() {
    let env = Env::new();
    let o = act(&env, &["init", "bash", "--spool", "rel/spool"], "");
    assert_code(&o, 0);
    let text = stdout(&o);
    let bin = crate::util::bin_path("mb-activity");
    assert!(
        text.contains(&format!("__mb_activity_bin='{}'", bin.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("'--spool' '{}'", env.path("rel/spool").display())),
        "{text}"
    );
    let o = act(&env, &["init", "fish"], "");
    assert_code(&o, 2);
}
