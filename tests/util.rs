//! Test harness: run the real binaries in a temp dir with their own database.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// A temp directory with a database path and a pinned clock.
pub struct Env {
    pub dir: TempDir,
    pub db: PathBuf,
    /// The pinned clock (MB_NOW) of this environment.
    pub now: String,
}

/// The pinned clock of the tests (MB_NOW).
pub const NOW: &str = "2026-11-28T12:00:00Z";

impl Env {
    pub fn new() -> Env {
        Env::at(NOW)
    }

    /// An environment whose clock is pinned at `now`.
    pub fn at(now: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("mb-test")
            .tempdir()
            .unwrap();
        let db = dir.path().join("data/usage.db");
        Env {
            dir,
            db,
            now: now.to_string(),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A command for `bin` with a clean, pinned environment. MB_CONFIG
    /// points at an empty file of the test's own, so a machine's
    /// /etc/mb/mb.toml (read by default as root) never leaks into a test.
    pub fn cmd(&self, bin: &str) -> Command {
        let empty = self.dir.path().join("empty-mb.toml");
        if !empty.exists() {
            std::fs::write(&empty, "").unwrap();
        }
        let mut c = Command::new(bin_path(bin));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("xdg-data"))
            .env("XDG_STATE_HOME", self.dir.path().join("xdg-state"))
            .env("MB_NOW", &self.now)
            .env("MB_DB", &self.db)
            .env("MB_CONFIG", &empty)
            // mb-tokens' client-key secret, kept in the test's directory
            // (the default is /var/lib/mb/client.key for root).
            .env("MB_CLIENT_KEY", self.dir.path().join("client.key"))
            .current_dir(self.dir.path());
        c
    }

    /// Run `bin args` with `stdin`, returning the output.
    pub fn run(&self, bin: &str, args: &[&str], stdin: &str) -> Output {
        run_cmd(self.cmd(bin).args(args), stdin)
    }

    /// Run `bin args` with `stdin` and the clock pinned at `now` instead.
    pub fn run_at(&self, bin: &str, now: &str, args: &[&str], stdin: &str) -> Output {
        run_cmd(self.cmd(bin).env("MB_NOW", now).args(args), stdin)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Query the test database; each row's columns joined by `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        query(&self.db, sql)
    }
}

pub fn bin_path(bin: &str) -> PathBuf {
    match bin {
        "mb-ingest" => env!("CARGO_BIN_EXE_mb-ingest").into(),
        "mb-customer" => env!("CARGO_BIN_EXE_mb-customer").into(),
        "mb-sample" => env!("CARGO_BIN_EXE_mb-sample").into(),
        "mb-tokens" => env!("CARGO_BIN_EXE_mb-tokens").into(),
        "mb-activity" => env!("CARGO_BIN_EXE_mb-activity").into(),
        "mb-report" => env!("CARGO_BIN_EXE_mb-report").into(),
        "mb-dashboard" => env!("CARGO_BIN_EXE_mb-dashboard").into(),
        other => panic!("unknown binary {other}"),
    }
}

pub fn run_cmd(c: &mut Command, stdin: &str) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut si = child.stdin.take().unwrap();
    let input = stdin.as_bytes().to_vec();
    let t = std::thread::spawn(move || {
        let _ = si.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    t.join().unwrap();
    out
}

pub fn query(db: &Path, sql: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c.prepare(sql).unwrap();
    let n = s.column_count();
    s.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Real(v) => v.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
            })
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert the exit code, showing stderr on failure.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// Compare `actual` with the golden file `tests/fixtures/<name>`;
/// `MB_UPDATE_GOLDEN=1` rewrites it.
#[track_caller]
pub fn golden(name: &str, actual: &str) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    if std::env::var_os("MB_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&p).unwrap_or_else(|_| {
        panic!(
            "missing golden file {}; run with MB_UPDATE_GOLDEN=1",
            p.display()
        )
    });
    assert_eq!(actual, expected, "golden file {} differs", p.display());
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Replace the cpu lines of the /proc/stat at `path` with the aggregate
/// `line` and two CPUs' lines that are its halves (cpu0 takes the odd
/// tick), as the kernel's per-CPU lines add up to the aggregate one
/// (mb-sample computes CPU from the per-CPU lines, as sar does).
pub fn set_stat_cpu(path: &Path, line: &str) {
    let old = std::fs::read_to_string(path).unwrap();
    let rest: Vec<&str> = old.lines().filter(|l| !l.starts_with("cpu")).collect();
    let cols: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let half = |odd: u64| {
        cols.iter()
            .map(|v| (v / 2 + v % 2 * odd).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    std::fs::write(
        path,
        format!(
            "{line}\ncpu0 {}\ncpu1 {}\n{}\n",
            half(1),
            half(0),
            rest.join("\n")
        ),
    )
    .unwrap();
}

/// Run `bin ARGS` (a shell command line after the program) on a terminal:
/// script(1) gives it one, with the test's clean environment and `extra`
/// variables. Returns everything the terminal showed (stdout and stderr,
/// with their escape sequences). `timeout` bounds a program waiting for
/// input that never comes.
pub fn run_in_pty(
    env: &Env,
    bin: &str,
    args: &str,
    extra: &[(&str, &str)],
    timeout: u32,
) -> String {
    let cmdline = format!("timeout {timeout} {} {args}", bin_path(bin).display());
    let base = env.cmd(bin);
    let mut c = Command::new("script");
    c.env_clear().current_dir(env.dir.path());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("COLUMNS", "80")
        .args(["-qec", &cmdline, "/dev/null"]);
    for (k, v) in extra {
        c.env(k, v);
    }
    let o = run_cmd(&mut c, "");
    String::from_utf8_lossy(&o.stdout).into_owned()
}
