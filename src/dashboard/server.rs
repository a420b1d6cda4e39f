//! The accept loop: local denial-of-service limits around the router.
//!
//! `axum::serve` keeps a connection that never finishes its request header
//! open for as long as the client likes, and accepts until the process runs
//! out of file descriptors; 200 such connections under an open-files limit
//! of 128 starved every probe. This loop, on the same hyper and
//! hyper-util as axum, adds:
//! - a **header-read timeout** (`--header-timeout`, default 10 s): a
//!   request head must arrive whole within it. hyper starts that timer
//!   whenever it waits for a head, so it is also the **idle timeout** of a
//!   kept-alive connection between requests;
//! - a **cap on connections** (`--max-connections`, default 256, and never
//!   more than the open-files limit less [`FD_RESERVE`], which keeps
//!   descriptors for the database files each request opens). At the cap
//!   the oldest connection that is not answering a request (a header still
//!   trickling in, an idle keep-alive) is closed to make room, so 200
//!   half-open connections cannot keep a probe out even before their
//!   timeout; only when every connection is busy is the new one closed
//!   (never left in the backlog to form a second wave);
//! - a **request size limit**: a head over [`MAX_HEAD_BYTES`] is refused
//!   by hyper with 431; the query string is limited to 2 KiB (414) and any
//!   request body is refused (413) in the router's guard.
//!
//! SIGTERM stops accepting, lets open connections finish their current
//! request (graceful shutdown), and returns when they are closed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};

use crate::cli;

/// Descriptors kept free of connections: stdio, the listener, the
/// database, its WAL and shared-memory files for each of the 8 blocking
/// threads, and some slack.
pub const FD_RESERVE: u64 = 40;

/// Largest request head (request line and headers) accepted, bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The limits of the loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to send a whole request head (also the keep-alive
    /// idle timeout).
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// The connection cap actually applied: `wanted`, lowered to fit the
/// process's open-files limit.
pub fn effective_cap(wanted: usize) -> usize {
    let mut lim = libc_rlimit_nofile();
    if lim == 0 {
        lim = u64::MAX;
    }
    let room = lim.saturating_sub(FD_RESERVE).max(1);
    wanted
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

/// The soft RLIMIT_NOFILE, or 0 when unknown. Read from /proc so that no
/// libc binding is needed.
fn libc_rlimit_nofile() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One open connection, as the cap sees it.
struct Conn {
    /// Requests being answered right now.
    busy: Arc<AtomicUsize>,
    /// Closes the connection when notified.
    kill: Arc<Notify>,
    /// Set once the connection task has ended.
    done: Arc<AtomicBool>,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Open(Mutex<VecDeque<Conn>>);

impl Open {
    /// Close the oldest connection that is not answering a request (a
    /// header still trickling in, or an idle keep-alive). Returns whether
    /// one was found.
    fn evict_idle(&self) -> bool {
        let Ok(mut q) = self.0.lock() else {
            return false;
        };
        q.retain(|c| !c.done.load(Ordering::Acquire));
        match q.iter().position(|c| c.busy.load(Ordering::Acquire) == 0) {
            Some(i) => {
                if let Some(c) = q.remove(i) {
                    c.kill.notify_one();
                }
                true
            }
            None => false,
        }
    }

    fn push(&self, c: Conn) {
        if let Ok(mut q) = self.0.lock() {
            q.push_back(c);
        }
    }
}

/// Accept and serve until `stop` turns true; then drain open connections.
///
/// At the cap, the oldest connection that is not answering a request is
/// closed to make room (a half-open or idle connection costs its owner
/// nothing to reopen, but it must not cost a real request its turn); only
/// when every connection is busy is the new one closed instead.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let cap = effective_cap(limits.max_connections);
    let slots = Arc::new(Semaphore::new(cap));
    let open = Arc::new(Open::default());
    let mut shed: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = async { let _ = stop.wait_for(|v| *v).await; } => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the
                // connection stays in the backlog.
                cli::warn(format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(s) => Some(s),
            Err(_) if open.evict_idle() => {
                // The evicted task gives its slot back as soon as it runs.
                tokio::time::timeout(
                    Duration::from_millis(500),
                    Arc::clone(&slots).acquire_owned(),
                )
                .await
                .ok()
                .and_then(|r| r.ok())
            }
            Err(_) => None,
        };
        let Some(slot) = slot else {
            shed += 1;
            if shed.is_power_of_two() {
                cli::warn(format!(
                    "{cap} connections open (the cap), all busy; closed {shed} new connections so far"
                ));
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            busy: Arc::new(AtomicUsize::new(0)),
            kill: Arc::new(Notify::new()),
            done: Arc::new(AtomicBool::new(false)),
        };
        let (busy, kill, done) = (
            Arc::clone(&conn.busy),
            Arc::clone(&conn.kill),
            Arc::clone(&conn.done),
        );
        open.push(conn);
        let router = router.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let inner = TowerToHyperService::new(router);
            let svc = hyper::service::service_fn(move |req| {
                // Counted busy from the complete head to the response.
                let busy = Arc::clone(&busy);
                busy.fetch_add(1, Ordering::AcqRel);
                let fut = hyper::service::Service::call(&inner, req);
                async move {
                    let r = fut.await;
                    busy.fetch_sub(1, Ordering::AcqRel);
                    r
                }
            });
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .keep_alive(true);
            let conn = b.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = kill.notified() => {}
                _ = async { let _ = stop.wait_for(|v| *v).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            done.store(true, Ordering::Release);
            drop(slot);
        });
    }
    // Draining: every slot back means every connection closed.
    let _ = slots.acquire_many(cap as u32).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_files_limit() {
        let lim = libc_rlimit_nofile();
        assert!(lim > 0, "no Max open files in /proc/self/limits");
        assert!(effective_cap(usize::MAX) as u64 <= lim.saturating_sub(FD_RESERVE).max(1));
        assert_eq!(effective_cap(1), 1);
    }
}
