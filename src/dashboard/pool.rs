//! mb-dashboard's pool of open read-only stores, one lent to each request.
//!
//! Opening a SQLite file costs tens of microseconds, but opening a
//! PostgreSQL store is a TCP (and TLS) connect, a password exchange and a
//! server backend forked for it; one per request, at the hundreds of
//! requests a second a polled dashboard serves, would cost more than the
//! queries and could use up the server's `max_connections`. So stores are
//! kept open and lent out:
//!
//! - **Bounded.** At most `max` stores are open, lent or idle (the
//!   dashboard's blocking threads, which are the only users, so a request
//!   never waits in practice); one more waits until a store comes back,
//!   it never fails for want of a slot.
//! - **Opened on demand, by the request that needs it**, in its own
//!   thread: a server that is down fails that request at once with the
//!   server's own error (a 503), as without a pool, instead of holding
//!   it for a connect timeout while a background thread retries (r2d2's
//!   behaviour, which is why it is not used here).
//! - **Idle stores are kept**, the most recently returned lent first, so
//!   under a light load the others age and are closed after [`MAX_IDLE`]
//!   unused ([`Pool::reap`], called by the server every minute): a quiet
//!   dashboard holds no server connection.
//! - **Checked before reuse.** A PostgreSQL store idle for [`CHECK_AFTER`]
//!   or more is asked one round trip first (servers, pgbouncer and NAT
//!   close idle connections); one that fails it is closed and another
//!   taken. A SQLite store is reused only while the path still names the
//!   file it opened (same device and inode): a restore that renamed a new
//!   file into place is picked up, as a fresh open would.
//! - **Broken stores are dropped, not returned.** A request that failed on
//!   the server's side asks its store [`Lease::healthy`]; a store that
//!   cannot answer is discarded ([`Lease::discard`]), and with it every
//!   idle one, since they share the likely cause (a server restart, a
//!   failover, a cut network); the caller then runs the request once more
//!   on a new store.

use std::os::unix::fs::MetadataExt;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::store::{DbSpec, Mode, Store};

/// An idle PostgreSQL store unused this long is checked with a round trip
/// before it is lent again.
pub const CHECK_AFTER: Duration = Duration::from_secs(30);

/// An idle store unused this long is closed by [`Pool::reap`].
pub const MAX_IDLE: Duration = Duration::from_secs(300);

/// Which file a SQLite path names: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId(u64, u64);

impl FileId {
    /// The file at `spec` now, for a SQLite database (None for
    /// PostgreSQL, or a path that cannot be read).
    pub fn of(spec: &DbSpec) -> Option<FileId> {
        let m = std::fs::metadata(spec.sqlite_path()?).ok()?;
        Some(FileId(m.dev(), m.ino()))
    }
}

/// An open store, with what it was opened on.
struct Conn {
    store: Store,
    /// The SQLite file, read before opening (so a file replaced meanwhile
    /// makes the store look stale, never a stale store look current).
    file: Option<FileId>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

#[derive(Default)]
struct State {
    /// Idle stores, the most recently returned last.
    idle: Vec<Idle>,
    /// Stores open: lent plus idle.
    open: usize,
    /// Stores opened since the start (for tests and diagnostics).
    opened: u64,
}

/// The pool of one database.
pub struct Pool {
    db: DbSpec,
    max: usize,
    page_cache_kib: u32,
    state: Mutex<State>,
    /// Signalled when a store is returned or closed.
    freed: Condvar,
}

/// A store lent to one request; returned to the pool when dropped.
pub struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl Pool {
    /// A pool of at most `max` (at least 1) read-only stores of `db`, each
    /// with its SQLite page cache capped at `page_cache_kib`.
    pub fn new(db: DbSpec, max: usize, page_cache_kib: u32) -> Pool {
        Pool {
            db,
            max: max.max(1),
            page_cache_kib,
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lend a store: an idle one that passes its check, or a new one while
    /// fewer than `max` are open; otherwise wait for one to come back.
    pub fn get(&self) -> Result<Lease<'_>> {
        let mut st = self.lock();
        loop {
            if let Some(idle) = st.idle.pop() {
                drop(st);
                let recent = idle.since.elapsed() < CHECK_AFTER;
                if idle.conn.usable(&self.db, recent) {
                    return Ok(Lease {
                        pool: self,
                        conn: Some(idle.conn),
                    });
                }
                drop(idle);
                st = self.lock();
                st.open -= 1;
                continue;
            }
            if st.open < self.max {
                st.open += 1;
                st.opened += 1;
                drop(st);
                return match self.open() {
                    Ok(conn) => Ok(Lease {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn open(&self) -> Result<Conn> {
        let file = FileId::of(&self.db);
        let store = Store::open(&self.db, Mode::ReadOnly)?;
        store.limit_page_cache(self.page_cache_kib)?;
        Ok(Conn { store, file })
    }

    fn put_back(&self, conn: Conn) {
        self.lock().idle.push(Idle {
            conn,
            since: Instant::now(),
        });
        self.freed.notify_one();
    }

    /// Close `n` stores taken out of the count (outside the lock: closing
    /// a PostgreSQL connection writes to its socket).
    fn closed(&self, n: usize) {
        if n > 0 {
            self.lock().open -= n;
            self.freed.notify_all();
        }
    }

    /// Close the idle stores unused for `max_idle` or more.
    pub fn reap(&self, max_idle: Duration) {
        let old: Vec<Idle> = {
            let mut st = self.lock();
            let (old, keep) = std::mem::take(&mut st.idle)
                .into_iter()
                .partition(|i| i.since.elapsed() >= max_idle);
            st.idle = keep;
            old
        };
        let n = old.len();
        drop(old);
        self.closed(n);
    }

    /// Close every idle store.
    fn drop_idle(&self) {
        let idle = std::mem::take(&mut self.lock().idle);
        let n = idle.len();
        drop(idle);
        self.closed(n);
    }

    /// (open, idle, opened since the start).
    pub fn counts(&self) -> (usize, usize, u64) {
        let st = self.lock();
        (st.open, st.idle.len(), st.opened)
    }
}

impl Conn {
    /// Whether the store may be lent: a SQLite store while its path names
    /// the file it opened; a PostgreSQL store used `recent`ly, or that
    /// answers a round trip.
    fn usable(&self, db: &DbSpec, recent: bool) -> bool {
        if self.file.is_some() {
            return FileId::of(db) == self.file;
        }
        recent || self.store.data_version().is_ok()
    }
}

impl Lease<'_> {
    /// Whether the store still works (after a failed request): it answers
    /// a round trip and, on SQLite, its path still names its file.
    pub fn healthy(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.usable(&self.pool.db, false))
    }

    /// Close this store instead of returning it, and every idle one with
    /// it (a store that broke is rarely the only one: the server restarted
    /// or the network went away for all of them).
    pub fn discard(mut self) {
        drop(self.conn.take());
        self.pool.closed(1);
        self.pool.drop_idle();
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = Store;

    fn deref(&self) -> &Store {
        // Some until `discard`, which consumes the lease.
        &self.conn.as_ref().expect("a lease holds its store").store
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.put_back(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn db() -> (tempfile::TempDir, DbSpec) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.db");
        Store::open(&p, Mode::ReadWrite).unwrap();
        (dir, p.into())
    }

    #[test]
    fn stores_are_reused_not_reopened() {
        let (_d, db) = db();
        let pool = Pool::new(db, 4, 1024);
        for _ in 0..10 {
            let s = pool.get().unwrap();
            s.data_version().unwrap();
        }
        assert_eq!(pool.counts(), (1, 1, 1));
        // Two at once: two stores, both kept.
        let (a, b) = (pool.get().unwrap(), pool.get().unwrap());
        assert_eq!(pool.counts(), (2, 0, 2));
        drop((a, b));
        assert_eq!(pool.counts(), (2, 2, 2));
    }

    #[test]
    fn a_request_beyond_the_bound_waits_for_a_store() {
        let (_d, db) = db();
        let pool = Pool::new(db, 2, 1024);
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        let got = AtomicBool::new(false);
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let c = pool.get().unwrap();
                got.store(true, Ordering::SeqCst);
                c.data_version().unwrap()
            });
            std::thread::sleep(Duration::from_millis(300));
            assert!(!got.load(Ordering::SeqCst), "a third store was lent");
            assert_eq!(pool.counts().0, 2);
            drop(a);
            h.join().unwrap();
        });
        assert!(got.load(Ordering::SeqCst));
        drop(b);
        assert_eq!(pool.counts(), (2, 2, 2));
    }

    #[test]
    fn a_discarded_store_is_closed_with_the_idle_ones() {
        let (_d, db) = db();
        let pool = Pool::new(db, 4, 1024);
        drop((
            pool.get().unwrap(),
            pool.get().unwrap(),
            pool.get().unwrap(),
        ));
        assert_eq!(pool.counts(), (3, 3, 3));
        let s = pool.get().unwrap();
        assert!(s.healthy());
        s.discard();
        assert_eq!(pool.counts(), (0, 0, 3));
        drop(pool.get().unwrap());
        assert_eq!(pool.counts(), (1, 1, 4));
    }

    #[test]
    fn a_replaced_sqlite_file_is_opened_anew() {
        let (dir, db) = db();
        let pool = Pool::new(db.clone(), 4, 1024);
        let s = pool.get().unwrap();
        s.data_version().unwrap();
        drop(s);
        // A restore: a new file renamed over the old one.
        let new = dir.path().join("new.db");
        {
            let mut w = Store::open(&new, Mode::ReadWrite).unwrap();
            w.begin_run("test", "stdin", "2026-11-01T00:00:00.000000Z")
                .unwrap();
        }
        std::fs::rename(&new, db.sqlite_path().unwrap()).unwrap();
        let s = pool.get().unwrap();
        assert!(s.healthy());
        assert_eq!(pool.counts(), (1, 0, 2), "the old store was closed");
    }

    #[test]
    fn a_failed_open_gives_its_slot_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing.db");
        let pool = Pool::new(p.clone().into(), 1, 1024);
        let e = pool.get().err().expect("no database yet").to_string();
        assert!(e.contains("no database here"), "{e}");
        assert_eq!(pool.counts(), (0, 0, 1));
        Store::open(&p, Mode::ReadWrite).unwrap();
        drop(pool.get().unwrap());
        assert_eq!(pool.counts(), (1, 1, 2));
    }

    #[test]
    fn idle_stores_are_closed_after_the_idle_time() {
        let (_d, db) = db();
        let pool = Pool::new(db, 4, 1024);
        drop((pool.get().unwrap(), pool.get().unwrap()));
        pool.reap(Duration::from_secs(60));
        assert_eq!(pool.counts(), (2, 2, 2), "not idle long enough");
        std::thread::sleep(Duration::from_millis(20));
        pool.reap(Duration::from_millis(10));
        assert_eq!(pool.counts(), (0, 0, 2));
    }
}
