//! The cron pipeline end to end, tried the way production fails: each
//! producer (mb-tokens, mb-sample, mb-activity) writes durable files into a
//! spool, and `mb-ingest --spool` is made to fail at each point (database
//! unwritable, disk full, SIGKILL, a fatal error inside a transaction).
//! After the failure is removed, the next run stores every record exactly
//! once, and the audit trail (`sum(inserted)` over `ingest_runs`) equals the
//! stored rows.
//!
//! "Disk full" and "database unwritable" use a real small tmpfs mounted by
//! the test (`mount -t tmpfs -o size=...`, remounted read-only for the
//! latter), so SQLite sees the kernel's own ENOSPC and EROFS. That needs
//! root; without it those two tests say so and skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// One CLIProxyAPI usage-queue record (the fixture's first record, as the
/// proxy writes it) with its timestamp and request id made unique.
fn queue_records(from: usize, n: usize) -> String {
    let first = fs::read_to_string(fixture("tokens/queue-v2.jsonl")).unwrap();
    let base: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let mut out = String::new();
    for i in from..from + n {
        let mut r = base.clone();
        r["timestamp"] = Value::from(format!(
            "2026-11-20T{:02}:{:02}:{:02}.{:06}Z",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60,
            i % 1_000_000
        ));
        r["request_id"] = Value::from(format!("req-{i:08}"));
        out.push_str(&r.to_string());
        out.push('\n');
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (mount(8) syntax) at `dir`; None without the
    /// privilege to mount.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("cannot mount a tmpfs (not root?); skipping this failure injection");
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    fn remount(&self, opt: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(st.success(), "remount {opt}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// A VM's producers writing into one spool, and the records they wrote.
struct Pipeline {
    env: Env,
    spool: PathBuf,
    proc: PathBuf,
    /// Usage-queue records written to the proxy log so far.
    api: usize,
    /// Samples and activity events written to the spool so far.
    samples: usize,
    activities: usize,
    uptime: u64,
}

impl Pipeline {
    fn new(env: Env) -> Pipeline {
        let spool = env.path("spool");
        let proc = env.path("root");
        copy_tree(&fixture("sample/base"), &proc);
        Pipeline {
            env,
            spool,
            proc,
            api: 0,
            samples: 0,
            activities: 0,
            uptime: 100_000,
        }
    }

    fn spool_arg(&self) -> String {
        self.spool.to_string_lossy().into_owned()
    }

    /// Append `n` records to the proxy log and run the hourly
    /// `mb-tokens --state S --spool DIR LOG`.
    fn tokens(&mut self, n: usize) -> std::process::Output {
        let log = self.env.path("proxy/usage.jsonl");
        fs::create_dir_all(log.parent().unwrap()).unwrap();
        let mut text = fs::read_to_string(&log).unwrap_or_default();
        text.push_str(&queue_records(self.api, n));
        fs::write(&log, text).unwrap();
        let o = self.env.run(
            "mb-tokens",
            &[
                "--customer",
                "acme",
                "--vm",
                "vm-1",
                "--state",
                self.env.path("tokens.state").to_str().unwrap(),
                "--spool",
                &self.spool_arg(),
                log.to_str().unwrap(),
            ],
            "",
        );
        if o.status.code() == Some(0) {
            self.api += n;
        }
        o
    }

    /// One `mb-sample --spool DIR` run, 300 s after the previous one.
    fn sample(&mut self) -> std::process::Output {
        self.uptime += 300;
        fs::write(
            self.proc.join("proc/uptime"),
            format!("{}.00 1.00\n", self.uptime),
        )
        .unwrap();
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        let o = self.env.run(
            "mb-sample",
            &[
                "--proc-root",
                &s(self.proc.join("proc")),
                "--sys-root",
                &s(self.proc.join("sys")),
                "--statvfs-fixture",
                &s(self.proc.join("statvfs.tsv")),
                "--state",
                &s(self.env.path("sample.state")),
                "--customer",
                "acme",
                "--vm",
                "vm-1",
                "--spool",
                &self.spool_arg(),
            ],
            "",
        );
        if o.status.code() == Some(0) {
            self.samples += 1;
        }
        o
    }

    /// One `mb-activity run --wait --spool DIR -- true`.
    fn activity(&mut self) {
        let o = self.env.run(
            "mb-activity",
            &[
                "run",
                "--wait",
                "--customer",
                "acme",
                "--vm",
                "vm-1",
                "--spool",
                &self.spool_arg(),
                "--",
                "true",
            ],
            "",
        );
        assert_code(&o, 0);
        self.activities += 1;
    }

    /// A spool with files of all three producers.
    fn produce(&mut self, api: usize) {
        let o = self.tokens(api);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "", "--spool prints nothing on stdout");
        for _ in 0..3 {
            let o = self.sample();
            assert_code(&o, 0);
            assert_eq!(stdout(&o), "");
            self.activity();
        }
    }

    fn pending(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.spool)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".jsonl"))
            .collect();
        v.sort();
        v
    }

    fn ingest(&self) -> std::process::Output {
        self.env.run(
            "mb-ingest",
            &["--spool", &self.spool_arg(), "--batch", "500"],
            "",
        )
    }

    /// Every record produced is stored exactly once, the spool is empty,
    /// and the audit trail adds up to the stored rows.
    #[track_caller]
    fn assert_all_stored_once(&self) {
        let e = &self.env;
        assert_eq!(
            e.query("SELECT count(*), count(DISTINCT id) FROM api_usage"),
            [format!("{}|{}", self.api, self.api)]
        );
        assert_eq!(
            e.query("SELECT count(*), count(DISTINCT id) FROM resource_usage"),
            [format!("{}|{}", self.samples, self.samples)]
        );
        assert_eq!(
            e.query("SELECT count(*), count(DISTINCT id) FROM activity_log"),
            [format!("{}|{}", self.activities, self.activities)]
        );
        assert_eq!(self.pending(), Vec::<String>::new());
        let stored = self.api + self.samples + self.activities;
        assert_eq!(
            e.query("SELECT coalesce(sum(inserted), 0) FROM ingest_runs"),
            [stored.to_string()],
            "audit: {:?}",
            e.query("SELECT run_id, status, read, inserted, duplicates, error FROM ingest_runs")
        );
        // The rollup agrees with the rows.
        assert_eq!(
            e.query(
                "SELECT coalesce(sum(requests), 0), coalesce(sum(tokens_in), 0) FROM api_rollup"
            ),
            e.query("SELECT count(*), coalesce(sum(tokens_in), 0) FROM api_usage")
        );
    }

    /// The steady state after recovery: a run with nothing new adds nothing.
    #[track_caller]
    fn assert_rerun_adds_nothing(&mut self) {
        let o = self.tokens(0);
        assert_code(&o, 0);
        assert_eq!(
            self.pending(),
            Vec::<String>::new(),
            "no new records, no file"
        );
        let o = self.ingest();
        assert_code(&o, 0);
        self.assert_all_stored_once();
    }
}

#[test]
fn spool_files_of_all_three_producers_are_complete_and_private() {
    let mut p = Pipeline::new(Env::new());
    p.produce(5);
    let names = p.pending();
    assert_eq!(names.len(), 7, "{names:?}");
    assert_eq!(names.iter().filter(|n| n.starts_with("tokens-")).count(), 1);
    assert_eq!(names.iter().filter(|n| n.starts_with("sample-")).count(), 3);
    assert_eq!(
        names.iter().filter(|n| n.starts_with("activity-")).count(),
        3
    );
    use std::os::unix::fs::PermissionsExt;
    for n in &names {
        let path = p.spool.join(n);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        let lines = text.lines().count();
        assert_eq!(lines, if n.starts_with("tokens-") { 5 } else { 1 }, "{n}");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Nothing hidden left behind by the writers.
    assert!(fs::read_dir(&p.spool).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".tmp")));
    let o = p.ingest();
    assert_code(&o, 0);
    p.assert_all_stored_once();
    assert_eq!(fs::read_dir(p.spool.join("done")).unwrap().count(), 7);
    p.assert_rerun_adds_nothing();
}

#[test]
fn a_producer_that_cannot_write_the_spool_keeps_its_state() {
    let mut p = Pipeline::new(Env::new());
    // The spool path is a file: mb-tokens and mb-sample fail (exit 2) and
    // keep their state, so the next good run delivers the same records.
    fs::write(&p.spool, "in the way").unwrap();
    let o = p.tokens(4);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("spool"), "{}", stderr(&o));
    assert!(!p.env.path("tokens.state").exists());
    let o = p.sample();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("state not advanced"), "{}", stderr(&o));
    assert!(!p.env.path("sample.state").exists());
    fs::remove_file(&p.spool).unwrap();
    // The 4 records written to the log before are still delivered.
    p.api = 0;
    let log = p.env.path("proxy/usage.jsonl");
    fs::remove_file(&log).unwrap();
    p.produce(4);
    let o = p.ingest();
    assert_code(&o, 0);
    p.assert_all_stored_once();
}

#[test]
fn database_unwritable_then_the_next_run_stores_everything_once() {
    let env = Env::new();
    let Some(fs_) = Tmpfs::mount(&env.path("data"), "16m") else {
        return;
    };
    let mut p = Pipeline::new(env);
    p.produce(20);
    let o = p.ingest();
    assert_code(&o, 0);
    // Read-only now, as a full or failing disk remounted ro would be.
    fs_.remount("ro");
    p.produce(30);
    let before = p.pending();
    assert_eq!(before.len(), 7);
    let o = p.ingest();
    assert_code(&o, 2);
    assert_eq!(p.pending(), before, "nothing taken out of the spool");
    fs_.remount("rw");
    let o = p.ingest();
    assert_code(&o, 0);
    p.assert_all_stored_once();
    p.assert_rerun_adds_nothing();
}

#[test]
fn disk_full_then_the_next_run_stores_everything_once() {
    let env = Env::new();
    let Some(_fs) = Tmpfs::mount(&env.path("data"), "8m") else {
        return;
    };
    let mut p = Pipeline::new(env);
    p.produce(10);
    let o = p.ingest();
    assert_code(&o, 0);
    // Fill the file system to the last block.
    let filler = p.env.path("data/filler");
    {
        use std::io::Write;
        let mut f = fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    p.produce(2000);
    let before = p.pending();
    let o = p.ingest();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("full") || stderr(&o).contains("disk"),
        "{}",
        stderr(&o)
    );
    assert_eq!(p.pending(), before, "the failed files stay in the spool");
    fs::remove_file(&filler).unwrap();
    let o = p.ingest();
    assert_code(&o, 0);
    p.assert_all_stored_once();
    p.assert_rerun_adds_nothing();
}

#[test]
fn sigkill_mid_run_then_the_next_run_stores_everything_once() {
    let mut p = Pipeline::new(Env::new());
    // Kill mb-ingest at several moments of one big spool run; whatever it
    // had committed stays, the rest comes with the next run.
    p.produce(20_000);
    let mut killed_mid_run = false;
    // The kill is timed by what the run has committed, not by a delay, so it
    // lands mid-run on a fast machine and a loaded one alike: the first
    // attempt kills after the first committed batch, later ones after more.
    for want in [1usize, 2_000, 8_000, 15_000] {
        let mut c = p.env.cmd("mb-ingest");
        c.args(["--spool", &p.spool_arg(), "--batch", "500"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let stored: usize = rusqlite::Connection::open_with_flags(
                &p.env.db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .and_then(|c| c.query_row("SELECT count(*) FROM api_usage", [], |r| r.get(0)))
            .unwrap_or(0);
            if stored >= want {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill(); // SIGKILL
        let st = child.wait().unwrap();
        if st.code().is_none() && p.env.db.exists() {
            // Killed before the schema was created: no table yet.
            let n: usize = rusqlite::Connection::open(&p.env.db)
                .and_then(|c| c.query_row("SELECT count(*) FROM api_usage", [], |r| r.get(0)))
                .unwrap_or(0);
            killed_mid_run |= n > 0 && n < p.api;
        }
        if p.pending().is_empty() {
            break;
        }
        p.produce(50);
    }
    assert!(killed_mid_run, "no kill landed in the middle of a run");
    let o = p.ingest();
    assert_code(&o, 0);
    p.assert_all_stored_once();
    // The killed runs are marked by the next run, with what they committed.
    let e = &p.env;
    assert_eq!(
        e.query("SELECT count(*) FROM ingest_runs WHERE status = 'running'"),
        ["0"]
    );
    let abandoned = e.query(
        "SELECT inserted, error FROM ingest_runs WHERE status = 'abandoned' AND inserted > 0",
    );
    assert!(
        !abandoned.is_empty(),
        "{:?}",
        e.query("SELECT * FROM ingest_runs")
    );
    assert!(
        abandoned[0].contains("ended without finishing"),
        "{abandoned:?}"
    );
    p.assert_rerun_adds_nothing();
}

#[test]
fn a_fatal_error_inside_a_transaction_then_the_next_run_stores_everything_once() {
    let mut p = Pipeline::new(Env::new());
    p.produce(10);
    let o = p.ingest();
    assert_code(&o, 0);
    // A database error in the middle of a batch (here a trigger, standing
    // for an I/O error or a corrupt page): the transaction rolls back.
    let c = rusqlite::Connection::open(&p.env.db).unwrap();
    c.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON api_usage WHEN new.id LIKE '%req-00000030' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .unwrap();
    drop(c);
    p.produce(1200);
    let o = p.ingest();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("injected failure"), "{}", stderr(&o));
    assert!(p.pending().iter().any(|n| n.starts_with("tokens-")));
    // The failed run's audit row counts only what it committed.
    let failed = p
        .env
        .query("SELECT status, inserted FROM ingest_runs ORDER BY run_id DESC LIMIT 1");
    assert!(failed[0].starts_with("failed|"), "{failed:?}");
    let c = rusqlite::Connection::open(&p.env.db).unwrap();
    c.execute_batch("DROP TRIGGER boom").unwrap();
    drop(c);
    let o = p.ingest();
    assert_code(&o, 0);
    p.assert_all_stored_once();
    p.assert_rerun_adds_nothing();
}
