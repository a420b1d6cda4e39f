//! Operations scripts, run for real in temp dirs: setup_cron.sh against a
//! stub `crontab` (the crontab is a file), the cron lines it writes executed
//! by /bin/sh (stripe-upload has its own module, tests/stripe.rs),
//! install.sh into a staging root and a private prefix, and the systemd
//! units checked by systemd-analyze when it is installed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{assert_code, bin_path, fixture, run_cmd, stderr, stdout, Env, NOW};

const BEGIN: &str = "# BEGIN mb (managed by setup_cron.sh; edits inside are overwritten)";
const END: &str = "# END mb";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// The directory holding the test build's mb-* binaries.
fn bin_dir() -> PathBuf {
    bin_path("mb-ingest").parent().unwrap().to_path_buf()
}

fn write_exec(p: &Path, text: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A directory of the few tools the scripts use (no crontab among them),
/// so "no crontab command" does not depend on the machine.
fn tools_dir(env: &Env) -> PathBuf {
    let d = env.path("tools");
    if d.exists() {
        return d;
    }
    fs::create_dir_all(&d).unwrap();
    for t in [
        "sh", "bash", "awk", "grep", "mktemp", "cmp", "id", "dirname", "basename", "cat", "mkdir",
        "rm", "hostname", "uname", "date", "mv", "sed", "chmod", "install", "tr", "pwd", "python3",
        "env", "ls",
    ] {
        let found = ["/usr/bin", "/bin", "/usr/local/bin"]
            .iter()
            .map(|b| Path::new(b).join(t))
            .find(|p| p.exists())
            .or_else(|| which(t));
        if let Some(p) = found {
            std::os::unix::fs::symlink(p, d.join(t)).unwrap();
        }
    }
    d
}

fn which(t: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(t))
            .find(|p| p.exists())
    })
}

/// A stub crontab(1): the table is the file $CRONTAB_FILE.
fn stub_crontab(env: &Env) -> PathBuf {
    let d = env.path("stub");
    write_exec(
        &d.join("crontab"),
        "#!/bin/sh\n\
         f=${CRONTAB_FILE:?}\n\
         case \"$1\" in\n\
         -l) if [ -f \"$f\" ]; then cat \"$f\"; else echo \"no crontab for $(id -un)\" >&2; exit 1; fi ;;\n\
         -) cat > \"$f\" ;;\n\
         *) cat \"$1\" > \"$f\"; echo \"$1\" >> \"$f.installs\" ;;\n\
         esac\n",
    );
    d
}

/// Run a script with a clean environment: PATH = dirs + the tools.
fn sh(
    env: &Env,
    path_dirs: &[&Path],
    script_path: &Path,
    args: &[&str],
    vars: &[(&str, &str)],
) -> Output {
    let mut path: Vec<PathBuf> = path_dirs.iter().map(|p| p.to_path_buf()).collect();
    path.push(tools_dir(env));
    let mut c = Command::new(script_path);
    c.env_clear()
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("HOME", env.dir.path())
        .env("CRONTAB_FILE", env.path("crontab.txt"))
        .env("TMPDIR", env.dir.path())
        .current_dir(env.dir.path())
        .args(args);
    for (k, v) in vars {
        c.env(k, v);
    }
    run_cmd(&mut c, "")
}

fn cron_args(env: &Env) -> Vec<String> {
    let s = |p: PathBuf| p.to_string_lossy().into_owned();
    vec![
        "--bin-dir".into(),
        s(bin_dir()),
        "--state-dir".into(),
        s(env.path("state")),
        "--db".into(),
        s(env.db.clone()),
        "--tokens-log".into(),
        s(env.path("proxy/usage.jsonl")),
    ]
}

fn setup_cron(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Output {
    let stub = stub_crontab(env);
    let mut args: Vec<String> = cron_args(env);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sh(env, &[&stub], &script("setup_cron.sh"), &args, vars)
}

fn crontab(env: &Env) -> String {
    fs::read_to_string(env.path("crontab.txt")).unwrap_or_default()
}

/// The lines between the markers.
fn block(tab: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inb = false;
    for l in tab.lines() {
        if l == BEGIN {
            inb = true;
        } else if l == END {
            inb = false;
        } else if inb {
            out.push(l.to_string());
        }
    }
    out
}

const USER_TAB: &str =
    "MAILTO=ops@example.com\n# my backups\n0 2 * * * /usr/local/bin/backup --quiet\n";

#[test]
fn cron_dry_run_prints_the_block_and_changes_nothing() {
    let env = Env::new();
    fs::write(env.path("crontab.txt"), USER_TAB).unwrap();
    let o = setup_cron(
        &env,
        &["--dry-run"],
        &[("CUSTOMER_ID", "acme"), ("VM_ID", "vm-1")],
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    // The user's lines first, untouched, then the block.
    assert!(out.starts_with(USER_TAB), "{out}");
    let b = block(&out);
    let sched: Vec<&str> = b
        .iter()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if l.starts_with('@') {
                l.split(' ').next().unwrap()
            } else {
                let mut n = 0;
                let end = l
                    .char_indices()
                    .find(|&(_, c)| {
                        if c == ' ' {
                            n += 1
                        }
                        n == 5
                    })
                    .unwrap()
                    .0;
                &l[..end]
            }
        })
        .collect();
    assert_eq!(
        sched,
        [
            "*/5 * * * *",
            "7 * * * *",
            "2-59/5 * * * *",
            "10 0 * * *",
            "20 0 * * 1",
            "30 0 1 * *",
            "@reboot"
        ]
    );
    let all = b.join("\n");
    assert!(
        all.contains("mb-sample --customer acme --vm vm-1 --state "),
        "{all}"
    );
    assert!(
        all.contains("mb-tokens --customer acme --vm vm-1 --state "),
        "{all}"
    );
    assert!(all.contains("--spool "), "{all}");
    assert!(
        all.contains("summary --period day --date $u --customer acme --csv"),
        "{all}"
    );
    assert!(
        all.contains("summary --month last --as-of $(date -u -d \"$(date +\\%Y-\\%m-01) 00:30\" +\\%Y-\\%m-\\%dT\\%H:\\%M:\\%SZ) --customer acme --csv"),
        "{all}"
    );
    assert!(all.contains("mb-dashboard --db "), "{all}");
    // cron turns a bare % into a newline: every % is escaped.
    for l in &b {
        assert!(!l.replace("\\%", "").contains('%'), "unescaped % in {l}");
        assert!(l.len() < 1000, "line too long for cron: {l}");
    }
    // Nothing was changed: the crontab file and the state dir.
    assert_eq!(crontab(&env), USER_TAB);
    assert!(!env.path("state").exists());
    assert!(!env.path("crontab.txt.installs").exists());
}

#[test]
fn cron_install_is_idempotent_keeps_other_lines_and_uninstalls() {
    let env = Env::new();
    fs::write(env.path("crontab.txt"), USER_TAB).unwrap();
    let who = ["--customer", "acme", "--vm", "vm-1"];
    let o = setup_cron(&env, &who, &[]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("added the mb block to the crontab"),
        "{}",
        stdout(&o)
    );
    let first = crontab(&env);
    assert!(first.starts_with(USER_TAB));
    assert_eq!(block(&first).len(), 8, "{first}");
    // The directories, mode 0700.
    for d in ["state", "state/spool", "state/log", "state/reports/daily"] {
        let m = fs::metadata(env.path(d)).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o700, "{d}");
    }

    // Twice: nothing changes, and crontab is not even called to install.
    let o = setup_cron(&env, &who, &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("crontab unchanged"), "{}", stdout(&o));
    assert_eq!(crontab(&env), first);
    let installs = || {
        fs::read_to_string(env.path("crontab.txt.installs"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(installs(), 1);

    // The user adds a line after the block; a new VM id replaces the block
    // in place and keeps both of the user's parts.
    let mut t = crontab(&env);
    t.push_str("30 4 * * * /usr/bin/other-job\n");
    fs::write(env.path("crontab.txt"), &t).unwrap();
    let o = setup_cron(&env, &["--customer", "acme", "--vm", "vm-2"], &[]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("replaced the mb block"),
        "{}",
        stdout(&o)
    );
    let second = crontab(&env);
    assert!(second.starts_with(USER_TAB));
    assert!(
        second.ends_with("# END mb\n30 4 * * * /usr/bin/other-job\n"),
        "{second}"
    );
    assert!(second.contains("--vm vm-2") && !second.contains("--vm vm-1"));
    assert_eq!(second.matches(BEGIN).count(), 1);

    // Uninstall removes exactly the block.
    let o = setup_cron(&env, &["--uninstall"], &[]);
    assert_code(&o, 0);
    assert_eq!(
        crontab(&env),
        format!("{USER_TAB}30 4 * * * /usr/bin/other-job\n")
    );
    // Again: nothing to remove.
    let o = setup_cron(&env, &["--uninstall"], &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("nothing to remove"));
    // State is left alone.
    assert!(env.path("state/spool").is_dir());
}

#[test]
fn cron_refuses_a_bad_environment_with_exit_2_and_a_fix() {
    let env = Env::new();
    fs::write(env.path("crontab.txt"), USER_TAB).unwrap();
    let expect_2 = |o: &Output, what: &str| {
        assert_code(o, 2);
        let e = stderr(o);
        assert!(e.contains(what), "{e}");
        assert!(e.contains("fix: "), "{e}");
        assert_eq!(crontab(&env), USER_TAB, "crontab touched");
        assert!(!env.path("state").exists(), "state dir created");
    };

    // No customer.
    let o = setup_cron(&env, &["--vm", "vm-1"], &[]);
    expect_2(&o, "no customer given");
    // A customer id that would not pass mb-ingest.
    let o = setup_cron(&env, &["--customer", "ac me"], &[]);
    assert_code(&o, 2);

    // A missing binary: a bin dir without mb-report.
    let partial = env.path("partial-bin");
    fs::create_dir_all(&partial).unwrap();
    for b in ["mb-sample", "mb-ingest", "mb-tokens", "mb-dashboard"] {
        std::os::unix::fs::symlink(bin_path(b), partial.join(b)).unwrap();
    }
    let o = setup_cron(
        &env,
        &["--customer", "acme", "--bin-dir", partial.to_str().unwrap()],
        &[],
    );
    expect_2(&o, "missing in");
    assert!(stderr(&o).contains("mb-report"));

    // No crontab command on PATH.
    let args = cron_args(&env);
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--customer", "acme"]);
    let o = sh(&env, &[], &script("setup_cron.sh"), &a, &[]);
    expect_2(&o, "no crontab command");

    // An unwritable state directory (a regular file in the way; as root a
    // permission bit would not stop us).
    fs::write(env.path("blocker"), "").unwrap();
    let o = setup_cron(
        &env,
        &[
            "--customer",
            "acme",
            "--state-dir",
            env.path("blocker/mb").to_str().unwrap(),
        ],
        &[],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("is not writable"), "{}", stderr(&o));
    assert_eq!(crontab(&env), USER_TAB);

    // A crontab with half a block is not guessed at.
    let broken = format!("{USER_TAB}{BEGIN}\n* * * * * something\n");
    fs::write(env.path("crontab.txt"), &broken).unwrap();
    let o = setup_cron(&env, &["--customer", "acme"], &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("unbalanced mb block"), "{}", stderr(&o));
    assert_eq!(crontab(&env), broken);
}

/// The schedule field removed and cron's `\%` unescaped: what cron runs.
fn command_of(line: &str) -> String {
    let rest = if let Some(r) = line.strip_prefix("@reboot ") {
        r.to_string()
    } else {
        line.splitn(6, ' ').nth(5).unwrap().to_string()
    };
    rest.replace("\\%", "%")
}

fn run_line(env: &Env, line: &str) -> Output {
    let mut c = Command::new("/bin/sh");
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", env.dir.path())
        .env("MB_NOW", NOW)
        .env("MB_CONFIG", env.path("empty-mb.toml"))
        // mb-tokens' client-key secret in the test's directory, not the
        // machine's /var/lib/mb (the default for root).
        .env("MB_CLIENT_KEY", env.path("client.key"))
        .current_dir(env.dir.path())
        .arg("-c")
        .arg(command_of(line));
    run_cmd(&mut c, "")
}

#[test]
fn cron_lines_do_their_jobs_under_sh() {
    let env = Env::new();
    fs::write(env.path("empty-mb.toml"), "").unwrap();
    // Proxy log: the usage-queue fixture of mb-tokens (4 records).
    fs::create_dir_all(env.path("proxy")).unwrap();
    fs::copy(
        fixture("tokens/queue-v2.jsonl"),
        env.path("proxy/usage.jsonl"),
    )
    .unwrap();
    let o = setup_cron(&env, &["--customer", "acme", "--vm", "vm-1"], &[]);
    assert_code(&o, 0);
    let lines: Vec<String> = block(&crontab(&env))
        .into_iter()
        .filter(|l| !l.starts_with('#'))
        .collect();
    let find = |pat: &str| lines.iter().find(|l| l.contains(pat)).unwrap().clone();

    // mb-sample | mb-ingest on this machine's /proc: one resource row.
    let o = run_line(&env, &find("mb-sample"));
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "", "nothing to mail: {}", stderr(&o));
    assert_eq!(env.query("SELECT count(*) FROM resource_usage"), ["1"]);
    let log = fs::read_to_string(env.path("state/log/sample.log")).unwrap();
    assert!(log.contains("read 1, inserted 1,"), "{log}");
    assert!(env.path("state/sample.state").exists());

    // mb-tokens --spool, then mb-ingest --spool: the 4 records of the
    // fixture; hourly again: nothing new.
    let o = run_line(&env, &find("mb-tokens"));
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "");
    assert_eq!(env.query("SELECT count(*) FROM api_usage"), ["4"]);
    let o = run_line(&env, &find("mb-tokens"));
    assert_code(&o, 0);
    assert_eq!(env.query("SELECT count(*) FROM api_usage"), ["4"]);

    // The spool: an mb-activity event written there is loaded and moved to done/.
    let o = env.run(
        "mb-activity",
        &[
            "run",
            "--wait",
            "--customer",
            "acme",
            "--vm",
            "vm-1",
            "--spool",
            env.path("state/spool").to_str().unwrap(),
            "--",
            "true",
        ],
        "",
    );
    assert_code(&o, 0);
    let o = run_line(&env, &find("2-59/5"));
    assert_code(&o, 0);
    assert_eq!(env.query("SELECT count(*) FROM activity_log"), ["1"]);
    // done/ holds the tokens job's one file (the second hour had nothing
    // new, so no file) and the activity event.
    assert_eq!(
        fs::read_dir(env.path("state/spool/done")).unwrap().count(),
        2
    );

    // The three reports: one CSV each, under the date of 12 hours ago.
    for (pat, dir) in [
        ("--period day", "daily"),
        ("--period week", "weekly"),
        ("--month last", "monthly"),
    ] {
        let o = run_line(&env, &find(pat));
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "", "{}", stderr(&o));
        let files: Vec<_> = fs::read_dir(env.path(&format!("state/reports/{dir}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files.len(), 1, "{dir}: {files:?}");
        assert!(files[0].ends_with(".csv") && !files[0].contains("tmp"));
        let text =
            fs::read_to_string(env.path(&format!("state/reports/{dir}/{}", files[0]))).unwrap();
        assert!(
            text.starts_with("Report Type,Generated At,Customer ID,Period"),
            "{text}"
        );
    }

    // A fatal failure reaches cron's mail: make the database unusable
    // (a directory where the file should be) and run the spool line.
    fs::remove_file(&env.db).unwrap();
    let _ = fs::remove_file(env.db.with_extension("db-wal"));
    let _ = fs::remove_file(env.db.with_extension("db-shm"));
    fs::create_dir_all(&env.db).unwrap();
    let o = run_line(&env, &find("2-59/5"));
    assert_code(&o, 0);
    assert!(
        stdout(&o).starts_with("mb: mb-ingest --spool failed (exit 2); see "),
        "{}",
        stdout(&o)
    );
    let o = run_line(&env, &find("mb-sample"));
    assert!(
        stdout(&o).contains("mb: mb-ingest of samples failed (exit 2)"),
        "{}",
        stdout(&o)
    );
}

// ------------------------------------------------------------------ install

/// Tiny stand-ins for the binaries that exec the test build's ones.
fn shim_bins(env: &Env) -> PathBuf {
    let d = env.path("shims");
    for b in [
        "mb-sample",
        "mb-tokens",
        "mb-activity",
        "mb-ingest",
        "mb-customer",
        "mb-report",
        "mb-dashboard",
    ] {
        write_exec(
            &d.join(b),
            &format!("#!/bin/sh\nexec '{}' \"$@\"\n", bin_path(b).display()),
        );
    }
    d
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn install_stages_a_systemd_layout_under_destdir() {
    let env = Env::new();
    let shims = shim_bins(&env);
    let root = env.path("pkg");
    let o = sh(
        &env,
        &[],
        &script("install.sh"),
        &[
            "--systemd",
            "--destdir",
            root.to_str().unwrap(),
            "--bin-src",
            shims.to_str().unwrap(),
            "--customer",
            "acme",
            "--vm",
            "vm-acme-1",
        ],
        &[],
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    // System actions are printed, not done.
    assert!(
        out.contains("skipped under --destdir, run on the target: useradd --system"),
        "{out}"
    );
    assert!(out.contains("systemctl daemon-reload && systemctl enable --now mb-sample.timer mb-tokens.timer mb-ingest-spool.timer mb-report-monthly.timer mb-dashboard.service"), "{out}");
    for b in [
        "mb-sample",
        "mb-ingest",
        "mb-report",
        "mb-dashboard",
        "stripe-upload",
    ] {
        assert_eq!(mode(&root.join("usr/local/bin").join(b)), 0o755, "{b}");
    }
    assert_eq!(
        mode(&root.join("usr/local/share/man/man1/mb-ingest.1")),
        0o644
    );
    assert!(root.join("usr/local/share/man/man5/mb-events.5").exists());
    assert!(root.join("usr/local/share/mb/setup_cron.sh").exists());
    for d in [
        "var/lib/mb",
        "var/lib/mb/spool",
        "var/lib/mb/log",
        "var/lib/mb/reports/monthly",
    ] {
        assert_eq!(mode(&root.join(d)), 0o700, "{d}");
    }
    let conf = fs::read_to_string(root.join("etc/mb/mb.toml")).unwrap();
    assert!(conf.contains("customer_id = \"acme\""), "{conf}");
    assert!(conf.contains("vm_id = \"vm-acme-1\""), "{conf}");
    // The written config is valid for the tools.
    let o = env
        .cmd("mb-customer")
        .env("MB_CONFIG", root.join("etc/mb/mb.toml"))
        .env("MB_DB", env.path("check.db"))
        .args(["add", "acme", "--tier", "pro"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let units: Vec<String> = fs::read_dir(root.join("etc/systemd/system"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(units.len(), 10, "{units:?}");
    let lr = fs::read_to_string(root.join("etc/logrotate.d/mb")).unwrap();
    assert!(lr.contains("su mb mb"), "{lr}");

    // A second run keeps the admin's config.
    fs::write(root.join("etc/mb/mb.toml"), "customer_id = \"edited\"\n").unwrap();
    let o = sh(
        &env,
        &[],
        &script("install.sh"),
        &[
            "--systemd",
            "--destdir",
            root.to_str().unwrap(),
            "--bin-src",
            shims.to_str().unwrap(),
        ],
        &[],
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains("kept the existing"));
    assert_eq!(
        fs::read_to_string(root.join("etc/mb/mb.toml")).unwrap(),
        "customer_id = \"edited\"\n"
    );

    // --dry-run changes nothing.
    let dry = env.path("dry");
    let o = sh(
        &env,
        &[],
        &script("install.sh"),
        &[
            "--systemd",
            "--dry-run",
            "--destdir",
            dry.to_str().unwrap(),
            "--bin-src",
            shims.to_str().unwrap(),
        ],
        &[],
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains("+ install -m 0755"), "{}", stdout(&o));
    assert!(!dry.exists());

    // Usage errors: no mode; a relative prefix; no binaries.
    let o = sh(
        &env,
        &[],
        &script("install.sh"),
        &["--destdir", dry.to_str().unwrap()],
        &[],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("pass --cron, --systemd or --no-schedule"));
    let o = sh(
        &env,
        &[],
        &script("install.sh"),
        &[
            "--no-schedule",
            "--prefix",
            "usr",
            "--destdir",
            dry.to_str().unwrap(),
        ],
        &[],
    );
    assert_code(&o, 2);
    let o = sh(
        &env,
        &[],
        &script("install.sh"),
        &[
            "--no-schedule",
            "--destdir",
            dry.to_str().unwrap(),
            "--bin-src",
            env.path("nothing").to_str().unwrap(),
        ],
        &[],
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("is missing or not executable"),
        "{}",
        stderr(&o)
    );
    assert!(!dry.exists());
}

#[test]
fn install_into_a_private_prefix_with_the_cron_block() {
    let env = Env::new();
    let shims = shim_bins(&env);
    let stub = stub_crontab(&env);
    let p = |s: &str| env.path(s).to_string_lossy().into_owned();
    let o = sh(
        &env,
        &[&stub],
        &script("install.sh"),
        &[
            "--cron",
            "--prefix",
            &p("usr"),
            "--config-dir",
            &p("etc/mb"),
            "--state-dir",
            &p("var/mb"),
            "--bin-src",
            shims.to_str().unwrap(),
            "--customer",
            "acme",
            "--vm",
            "vm-1",
            "--no-tokens",
            "--logrotate-dir",
            &p("logrotate.d"),
        ],
        &[],
    );
    assert_code(&o, 0);
    let tab = crontab(&env);
    let b = block(&tab).join("\n");
    assert!(
        b.contains(&format!(
            "{}/mb-sample --config {}/mb.toml --customer acme --vm vm-1",
            p("usr/bin"),
            p("etc/mb")
        )),
        "{b}"
    );
    assert!(!b.contains("mb-tokens"), "{b}");
    // The installed config points the tools at the private state dir.
    let conf = fs::read_to_string(env.path("etc/mb/mb.toml")).unwrap();
    assert!(
        conf.contains(&format!("db = \"{}/usage.db\"", p("var/mb"))),
        "{conf}"
    );
    // And the installed binaries answer.
    let o = Command::new(env.path("usr/bin/mb-ingest"))
        .arg("--version")
        .output()
        .unwrap();
    assert_code(&o, 0);
    // The logrotate snippet names the private paths and this user.
    let lr = fs::read_to_string(env.path("logrotate.d/mb")).unwrap();
    assert!(
        lr.contains(&format!("{}/log/sample.log", p("var/mb"))),
        "{lr}"
    );
    assert!(
        lr.contains(&format!("find {}/spool/done", p("var/mb"))),
        "{lr}"
    );
    assert!(!lr.contains("/var/lib/mb"), "{lr}");
}

#[test]
fn systemd_units_pass_systemd_analyze() {
    let Some(sa) = which("systemd-analyze") else {
        eprintln!("systemd-analyze not installed; skipping the unit check");
        return;
    };
    let env = Env::new();
    let dir = env.path("units");
    fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for e in fs::read_dir(script("systemd")).unwrap() {
        let e = e.unwrap();
        let to = dir.join(e.file_name());
        fs::copy(e.path(), &to).unwrap();
        files.push(to);
    }
    assert_eq!(files.len(), 10);
    let o = Command::new(sa)
        .arg("verify")
        .arg("--man=no")
        .args(&files)
        .output()
        .unwrap();
    // The binaries are not installed on the test machine; anything else is a unit error.
    let problems: Vec<String> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.contains("is not executable: No such file or directory"))
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    // Every service is hardened the same way.
    for f in files.iter().filter(|f| f.extension().unwrap() == "service") {
        let t = fs::read_to_string(f).unwrap();
        for k in [
            "User=mb",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/mb",
            "CapabilityBoundingSet=",
        ] {
            assert!(t.contains(k), "{}: {k}", f.display());
        }
    }
}

#[test]
fn install_dry_run_shows_the_real_plan_and_completions_are_installed() {
    let env = Env::new();
    let shims = shim_bins(&env);
    let args = |root: &Path, dry: bool| -> Vec<String> {
        let mut a: Vec<String> = [
            "--cron",
            "--destdir",
            root.to_str().unwrap(),
            "--bin-src",
            shims.to_str().unwrap(),
            "--customer",
            "acme",
            "--vm",
            "vm-acme-1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if dry {
            a.push("--dry-run".into());
        }
        a
    };
    let plan = |root: &Path, dry: bool| -> Vec<String> {
        let a = args(root, dry);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = sh(&env, &[], &script("install.sh"), &a, &[]);
        assert_code(&o, 0);
        // What install.sh says it does, with the root made comparable; the
        // last line differs on purpose ("dry run, nothing changed").
        stdout(&o)
            .lines()
            .filter(|l| l.starts_with("install.sh: ") && !l.starts_with("install.sh: done"))
            .map(|l| l.replace(root.to_str().unwrap(), "ROOT"))
            .collect()
    };
    let dry = plan(&env.path("dry"), true);
    let real = plan(&env.path("real"), false);
    assert_eq!(dry, real);
    assert!(!env.path("dry").exists());
    let root = env.path("real/usr/local/share");
    for (f, head) in [
        ("bash-completion/completions/mb-report", "_mb__report()"),
        ("zsh/site-functions/_mb-customer", "#compdef mb-customer"),
        (
            "fish/vendor_completions.d/mb-tokens.fish",
            "complete -c mb-tokens",
        ),
    ] {
        let text = fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.contains(head), "{f}: {}", &text[..text.len().min(200)]);
        assert_eq!(mode(&root.join(f)), 0o644, "{f}");
    }
    // Every subcommand page is installed.
    assert!(root.join("man/man1/mb-report-invoice.1").exists());
    assert!(root.join("man/man1/mb-customer-undo.1").exists());
}

#[test]
fn setup_cron_dry_run_needs_no_crontab_and_follows_the_config_spool() {
    let env = Env::new();
    let cfg = env.write(
        "mb.toml",
        &format!(
            "state_dir = \"{}\"   # shared with mb-activity\n",
            env.path("st").display()
        ),
    );
    // No crontab stub on PATH: the dry run still prints the block.
    let args: Vec<String> = vec![
        "--dry-run".into(),
        "--customer".into(),
        "acme".into(),
        "--vm".into(),
        "vm-1".into(),
        "--bin-dir".into(),
        bin_dir().to_string_lossy().into_owned(),
        "--config".into(),
        cfg.to_string_lossy().into_owned(),
        "--no-tokens".into(),
    ];
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = sh(&env, &[], &script("setup_cron.sh"), &a, &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains(BEGIN), "{}", stdout(&o));
    // The spool job reads the spool mb-activity writes: state_dir/spool
    // of the config, without --spool or --state-dir.
    let spool = format!("--spool {}/spool ", env.path("st").display());
    assert!(stdout(&o).contains(&spool), "{}", stdout(&o));
    assert_eq!(
        stderr(&o),
        "setup_cron.sh: no crontab command here: showing the mb block alone\n"
    );
    let o = env
        .cmd("mb-activity")
        .env("MB_CONFIG", &cfg)
        .args([
            "run",
            "--wait",
            "--customer",
            "acme",
            "--vm",
            "vm-1",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(fs::read_dir(env.path("st/spool")).unwrap().count(), 1);
    // A --state-dir that mb-activity does not know of is warned about, with
    // the line that makes them agree.
    let mut args2 = args.clone();
    args2.extend([
        "--state-dir".into(),
        env.path("other").to_string_lossy().into_owned(),
    ]);
    let a: Vec<&str> = args2.iter().map(String::as_str).collect();
    let o = sh(&env, &[], &script("setup_cron.sh"), &a, &[]);
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains(&format!(
            "put state_dir = \"{}\" in {}",
            env.path("other").display(),
            cfg.display()
        )),
        "{}",
        stderr(&o)
    );
}
