//! Running a wrapped command the way a shell would, and measuring it.
//!
//! `mb-activity run -- CMD ARGS` must be invisible to the command and to
//! whoever called it: the child inherits stdin, stdout and stderr as they
//! are (no pipes, no buffering in between), and its exit status comes back
//! in the shell's encoding: the code itself, 128+N for a death by signal N,
//! 127 when the command does not exist and 126 when it exists but cannot
//! be executed (with bash's messages on stderr).
//!
//! While the child runs, SIGINT and SIGQUIT are ignored by the wrapper, as
//! `system(3)` and shells do: a Ctrl-C at the terminal reaches the whole
//! foreground process group, so the child gets it and decides, and the
//! wrapper survives to record the interrupted command (exit 130). They are
//! ignored only after the child is spawned, because an ignored disposition
//! would be inherited through exec and the child could no longer be
//! interrupted.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Instant;

/// How a wrapped command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Shell-style exit status: code, 128+signal, 126 or 127.
    pub status: i32,
    /// Process id of the child; None when it could not be started.
    pub pid: Option<u32>,
    /// Wall time from just before the spawn to the end of the wait, ns.
    pub elapsed_nanos: u128,
    /// When it could not be started: the message to print, bash style.
    pub spawn_error: Option<String>,
}

/// Exit status for a command that does not exist (shell convention).
pub const NOT_FOUND: i32 = 127;
/// Exit status for a command that exists but cannot be executed.
pub const NOT_EXECUTABLE: i32 = 126;

/// Run `argv` (program and arguments) with inherited stdio and wait for it.
///
/// Only waiting can fail after a successful spawn (it does not in practice:
/// the child is ours); that error is returned as is.
pub fn run(argv: &[OsString]) -> io::Result<Finished> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no command given",
        ));
    };
    let start = Instant::now();
    let spawned = Command::new(prog).args(args).spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let (status, why) = spawn_failure(&e);
            return Ok(Finished {
                status,
                pid: None,
                elapsed_nanos: start.elapsed().as_nanos(),
                spawn_error: Some(format!("{}: {why}", prog.to_string_lossy())),
            });
        }
    };
    ignore_interrupts();
    let pid = child.id();
    let st = child.wait()?;
    let elapsed_nanos = start.elapsed().as_nanos();
    let status = match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        // Neither code nor signal: stopped/continued states are not
        // reported by wait() without WUNTRACED, so this cannot happen.
        (None, None) => 1,
    };
    Ok(Finished {
        status,
        pid: Some(pid),
        elapsed_nanos,
        spawn_error: None,
    })
}

/// Map a spawn error to the shell's status and message.
fn spawn_failure(e: &io::Error) -> (i32, String) {
    match e.kind() {
        io::ErrorKind::NotFound => (NOT_FOUND, "command not found".into()),
        io::ErrorKind::PermissionDenied => (NOT_EXECUTABLE, "Permission denied".into()),
        _ => (NOT_EXECUTABLE, e.to_string()),
    }
}

/// Ignore SIGINT and SIGQUIT in this process (see the module docs).
fn ignore_interrupts() {
    // SAFETY: signal(2) with SIG_IGN installs no handler code, so there is
    // no async-signal-safety concern; the process is single-threaded here
    // and only the disposition of two signals changes.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
}

/// Which side of [`detach`] the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The original process: exit now with the command's status.
    Parent,
    /// The detached writer: do the slow, durable work, then exit 0.
    Writer,
}

/// Fork a detached writer, so the caller of `mb-activity run` gets the
/// command's status back without waiting for the spool write.
///
/// The write is durable (two fsyncs), which costs several milliseconds on
/// a virtual disk, far above the 2 ms the wrapper may add. The writer
/// starts a new session (no SIGINT or SIGHUP from the terminal can stop it
/// half-way) and moves stdin and stdout to /dev/null, so a `$(...)` or a
/// pipe reading the command's output sees its end when the command ends.
/// Stderr stays, so a failed write is still reported.
///
/// Call only while the process is single-threaded (mb-activity is).
pub fn detach() -> io::Result<Side> {
    // SAFETY: fork(2) in a single-threaded process: the child is a full
    // copy with no other thread that could hold a lock, so it may run any
    // code afterwards.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(Side::Parent);
    }
    // SAFETY: setsid(2) and dup2(2) only change this process's session and
    // descriptor table; the descriptors are valid (0, 1 and an open file).
    unsafe {
        libc::setsid();
        if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
    Ok(Side::Writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn statuses_like_a_shell() {
        let f = run(&os(&["sh", "-c", "exit 3"])).unwrap();
        assert_eq!(f.status, 3);
        assert!(f.pid.is_some());
        let f = run(&os(&["sh", "-c", "kill -TERM $$"])).unwrap();
        assert_eq!(f.status, 128 + 15);
        let f = run(&os(&["/nonexistent/mb-no-such-command"])).unwrap();
        assert_eq!(f.status, NOT_FOUND);
        assert_eq!(
            f.spawn_error.as_deref(),
            Some("/nonexistent/mb-no-such-command: command not found")
        );
        let f = run(&os(&["/"])).unwrap();
        assert_eq!(f.status, NOT_EXECUTABLE);
        assert!(f.pid.is_none());
    }
}
