//! Security properties that cut across the tools (docs/security.md): the
//! modes of the files mb creates whatever the umask, secret files refused
//! when others can read them, and the billing-side checks of VMs the
//! customer controls.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::util::{assert_code, bin_path, fixture, run_cmd, stderr, Env};

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `bin args` run by `sh` after `umask MASK`, with the test environment.
fn under_umask(env: &Env, mask: &str, bin: &str, args: &[&str], stdin: &str) -> Output {
    let base = env.cmd(bin);
    let mut c = Command::new("sh");
    c.env_clear().current_dir(env.dir.path());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.arg("-c")
        .arg(format!("umask {mask}; exec \"$0\" \"$@\""))
        .arg(bin_path(bin))
        .args(args);
    run_cmd(&mut c, stdin)
}

// ---------------------------------------------------------------- file modes

#[test]
fn state_lock_rejects_and_database_files_are_private_under_any_umask() {
    for mask in ["000", "022"] {
        let env = Env::new();
        let p = |s: &str| env.path(s).to_string_lossy().into_owned();

        // mb-sample on this machine's /proc, into a state directory that
        // does not exist yet.
        let o = under_umask(
            &env,
            mask,
            "mb-sample",
            &[
                "--customer",
                "acme",
                "--vm",
                "vm-1",
                "--state",
                &p("s/deep/sample.state"),
            ],
            "",
        );
        assert_code(&o, 0);
        let sample_line = String::from_utf8(o.stdout).unwrap();
        for d in ["s", "s/deep"] {
            assert_eq!(mode(&env.path(d)), 0o700, "umask {mask}: {d}");
        }
        for f in ["s/deep/sample.state", "s/deep/sample.state.lock"] {
            assert_eq!(mode(&env.path(f)), 0o600, "umask {mask}: {f}");
        }

        // mb-tokens with a state file in a new directory.
        let o = under_umask(
            &env,
            mask,
            "mb-tokens",
            &[
                "--customer",
                "acme",
                "--vm",
                "vm-1",
                "--state",
                &p("t/tokens.state"),
                &fixture("tokens/queue-v2.jsonl").to_string_lossy(),
            ],
            "",
        );
        assert!(o.status.code() == Some(0) || o.status.code() == Some(1));
        assert_eq!(mode(&env.path("t")), 0o700, "umask {mask}");
        for f in ["t/tokens.state", "t/tokens.state.lock"] {
            assert_eq!(mode(&env.path(f)), 0o600, "umask {mask}: {f}");
        }

        // mb-ingest: the database directory of the README's first command,
        // the database, and the rejects file (it quotes input lines).
        let input = format!("{sample_line}not json\n");
        let o = under_umask(
            &env,
            mask,
            "mb-ingest",
            &["--rejects", &p("rejects.jsonl")],
            &input,
        );
        assert_code(&o, 1);
        assert_eq!(mode(&env.path("data")), 0o700, "umask {mask}");
        assert_eq!(mode(&env.db), 0o600, "umask {mask}");
        assert_eq!(mode(&env.path("rejects.jsonl")), 0o600, "umask {mask}");

        // mb-ingest --spool: its lock file.
        let o = under_umask(
            &env,
            mask,
            "mb-activity",
            &[
                "--customer",
                "acme",
                "--vm",
                "vm-1",
                "run",
                "--wait",
                "--spool",
                &p("sp/spool"),
                "--",
                "true",
            ],
            "",
        );
        assert_code(&o, 0);
        assert_eq!(mode(&env.path("sp")), 0o700, "umask {mask}");
        assert_eq!(mode(&env.path("sp/spool")), 0o700, "umask {mask}");
        let o = under_umask(&env, mask, "mb-ingest", &["--spool", &p("sp/spool")], "");
        assert_code(&o, 0);
        assert_eq!(
            mode(&env.path("sp/spool/.mb-ingest.lock")),
            0o600,
            "umask {mask}"
        );
        assert_eq!(mode(&env.path("sp/spool/done")), 0o700, "umask {mask}");
    }
}

#[test]
fn a_state_file_left_world_writable_is_narrowed() {
    let env = Env::new();
    let st = env.write("st/tokens.state", "");
    fs::remove_file(&st).unwrap();
    let lock = env.write("st/tokens.state.lock", "");
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o666)).unwrap();
    let rej = env.write("rej.jsonl", "");
    fs::set_permissions(&rej, fs::Permissions::from_mode(0o644)).unwrap();
    let o = env.run(
        "mb-tokens",
        &[
            "--customer",
            "acme",
            "--vm",
            "vm-1",
            "--state",
            st.to_str().unwrap(),
            &fixture("tokens/queue-v2.jsonl").to_string_lossy(),
        ],
        "",
    );
    assert!(o.status.code() == Some(0) || o.status.code() == Some(1));
    assert_eq!(mode(&lock), 0o600);
    assert_eq!(mode(&st), 0o600);
    let o = env.run(
        "mb-ingest",
        &["--rejects", rej.to_str().unwrap()],
        "not json\n",
    );
    assert_code(&o, 1);
    assert_eq!(mode(&rej), 0o600);
}

#[test]
fn secret_files_others_can_read_are_refused_with_the_chmod() {
    let env = Env::new();
    let token = env.write("dash.token", "0123456789abcdef0123\n");
    let key = env.write("mgmt.key", "s3cret\n");
    for m in [0o644, 0o640, 0o604] {
        fs::set_permissions(&token, fs::Permissions::from_mode(m)).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(m)).unwrap();
        let o = env.run(
            "mb-dashboard",
            &["--port", "0", "--token-file", token.to_str().unwrap()],
            "",
        );
        assert_code(&o, 2);
        assert_eq!(
            stderr(&o),
            format!(
                "mb-dashboard: --token-file {0}: permissions {m:04o} are too open \
                 (group or others can read it); run: chmod 600 {0}\n",
                token.display()
            )
        );
        let o = env.run(
            "mb-tokens",
            &[
                "pull",
                "--url",
                "http://127.0.0.1:9",
                "--key-file",
                key.to_str().unwrap(),
                "--out",
                "out.jsonl",
                "--once",
            ],
            "",
        );
        assert_code(&o, 2);
        assert_eq!(
            stderr(&o),
            format!(
                "mb-tokens: --key-file {0}: permissions {m:04o} are too open \
                 (group or others can read it); run: chmod 600 {0}\n",
                key.display()
            )
        );
        // Nothing was created before the refusal.
        assert!(!env.path("out.jsonl").exists());
    }
}

#[test]
fn stripe_upload_refuses_a_key_file_others_can_read() {
    let env = Env::new();
    let key = env.write("stripe.key", "sk_test_0123456789abcdefABCDEF\n");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/stripe-upload.py");
    let mut c = Command::new(script);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("MB_STRIPE_LEDGER", env.path("ledger.tsv"))
        .env("STRIPE_API_BASE", "http://127.0.0.1:9")
        .arg(fixture("ops/invoice.csv"))
        .args(["--key-file", key.to_str().unwrap()]);
    let o = run_cmd(&mut c, "");
    assert_code(&o, 2);
    assert!(
        stderr(&o).ends_with(&format!(
            "--key-file {0}: permissions 0644 are too open (group or others can read it); \
             run: chmod 600 {0}\n",
            key.display()
        )),
        "{}",
        stderr(&o)
    );
}
