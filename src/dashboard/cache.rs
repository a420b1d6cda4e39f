//! mb-dashboard's cache of computed figures, keyed by the database's
//! change counter.
//!
//! A dashboard is polled (browsers refresh, Grafana and scripts scrape) far
//! more often than mb-ingest commits, so most requests would recompute the
//! same summary. The cache keeps one read-only connection open only to ask
//! SQLite `PRAGMA data_version`, which changes whenever another connection
//! (any mb-ingest or mb-customer process) commits; while it is unchanged, a
//! figure computed before is served again. A commit empties the cache, so
//! nothing stale is ever served; a figure that is computed while a commit
//! lands is stored under the older counter and recomputed on the next
//! request. Entries are few (one per period, customer and view asked) and
//! capped; when the counter cannot be read, nothing is cached. The probe
//! connection is reopened when SQLite's path names another file (a restore
//! renamed into place: the old file's counter would never move again) and
//! closed after [`super::pool::MAX_IDLE`] unused ([`Cache::reap`]), so a
//! quiet dashboard holds no PostgreSQL connection.
//!
//! One computation per key at a time: requests that miss while the same
//! key is being computed wait for it instead of computing it again (after
//! a commit, 16 polling clients would otherwise run 8 copies of the same
//! month's queries at once on the blocking pool and all finish late).

use std::any::Any;
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::pool::FileId;
use crate::store::{Mode, Store};

/// Most entries kept; reaching it empties the cache (a burst of distinct
/// queries should not grow the process).
pub const MAX_ENTRIES: usize = 256;

type Value = Arc<dyn Any + Send + Sync>;

/// The cache of one database.
pub struct Cache {
    db: crate::store::DbSpec,
    probe: Mutex<Option<Probe>>,
    entries: Mutex<Entries>,
    /// Signalled when a computation ends.
    done: Condvar,
}

/// The kept connection that reads the change counter.
struct Probe {
    store: Store,
    /// The SQLite file it opened (read before opening).
    file: Option<FileId>,
    used: Instant,
}

#[derive(Default)]
struct Entries {
    version: Option<i64>,
    map: HashMap<String, Value>,
    /// Keys being computed (under `version`).
    computing: HashSet<String>,
}

impl Cache {
    /// A cache for the database at `db` (opened on first use).
    pub fn new(db: crate::store::DbSpec) -> Cache {
        Cache {
            db,
            probe: Mutex::new(None),
            entries: Mutex::new(Entries::default()),
            done: Condvar::new(),
        }
    }

    /// The database's change counter, from the kept connection (reopened
    /// after an error); None when it cannot be read.
    fn version(&self) -> Option<i64> {
        let mut probe = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        if probe
            .as_ref()
            .is_some_and(|p| p.file.is_some() && FileId::of(&self.db) != p.file)
        {
            *probe = None;
        }
        if probe.is_none() {
            let file = FileId::of(&self.db);
            *probe = Store::open(&self.db, Mode::ReadOnly)
                .ok()
                .map(|store| Probe {
                    store,
                    file,
                    used: Instant::now(),
                });
            // A new connection counts from its own start: what was cached
            // under the old connection's numbers must not match them.
            let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            e.map.clear();
            e.version = None;
        }
        let v = probe.as_mut().map(|p| {
            p.used = Instant::now();
            p.store.data_version()
        });
        match v {
            Some(Ok(v)) => Some(v),
            _ => {
                *probe = None;
                None
            }
        }
    }

    /// Close the probe connection if unused for `max_idle` (the next
    /// request reopens it, and recomputes what it asks).
    pub fn reap(&self, max_idle: Duration) {
        let mut probe = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        if probe.as_ref().is_some_and(|p| p.used.elapsed() >= max_idle) {
            *probe = None;
        }
    }

    /// The value under `key` computed while the database was as it is now,
    /// or `f()` (stored for the next request).
    pub fn get<T, E, F>(&self, key: String, f: F) -> std::result::Result<Arc<T>, E>
    where
        T: Any + Send + Sync,
        F: FnOnce() -> std::result::Result<T, E>,
    {
        // Read the counter before computing: a commit during `f` then makes
        // the stored value look older than the database, never newer.
        let Some(version) = self.version() else {
            return f().map(Arc::new);
        };
        {
            let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if e.version != Some(version) {
                    e.map.clear();
                    e.computing.clear();
                    e.version = Some(version);
                }
                if let Some(v) = e
                    .map
                    .get(&key)
                    .and_then(|v| Arc::clone(v).downcast::<T>().ok())
                {
                    return Ok(v);
                }
                if !e.computing.contains(&key) {
                    break;
                }
                e = self.done.wait(e).unwrap_or_else(|p| p.into_inner());
            }
            e.computing.insert(key.clone());
        }
        // Whatever happens in `f` (an error, a panic), the key is released.
        struct Release<'a>(&'a Cache, &'a str, i64);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                let mut e = self.0.entries.lock().unwrap_or_else(|p| p.into_inner());
                if e.version == Some(self.2) {
                    e.computing.remove(self.1);
                }
                drop(e);
                self.0.done.notify_all();
            }
        }
        let release = Release(self, &key, version);
        let v = Arc::new(f()?);
        {
            let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if e.version == Some(version) {
                if e.map.len() >= MAX_ENTRIES {
                    e.map.clear();
                }
                e.map.insert(key.clone(), Arc::clone(&v) as Value);
            }
        }
        drop(release);
        Ok(v)
    }

    /// Entries held (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// The value under "k": the number of computations so far.
    fn counted(cache: &Cache, calls: &Cell<i32>) -> Arc<i32> {
        cache
            .get("k".into(), || {
                calls.set(calls.get() + 1);
                Ok::<_, crate::error::Error>(calls.get())
            })
            .unwrap()
    }

    #[test]
    fn a_commit_by_another_connection_empties_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let mut w = Store::open(&db, Mode::ReadWrite).unwrap();
        let cache = Cache::new(db.as_path().into());
        let calls = Cell::new(0);
        let get = || counted(&cache, &calls);
        assert_eq!(*get(), 1);
        assert_eq!(*get(), 1, "unchanged database: served from the cache");
        // An empty transaction changes nothing; a real write does.
        w.writer().unwrap().commit().unwrap();
        assert_eq!(*get(), 1);
        w.begin_run("test", "stdin", "2026-11-01T00:00:00.000000Z")
            .unwrap();
        assert_eq!(*get(), 2, "a commit elsewhere invalidates");
        assert_eq!(*get(), 2);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_restored_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        Store::open(&db, Mode::ReadWrite).unwrap();
        let cache = Cache::new(db.as_path().into());
        let calls = Cell::new(0);
        let get = || counted(&cache, &calls);
        assert_eq!(*get(), 1);
        // A restore renames another file into place: its counter is not
        // comparable with the old file's, so the probe reopens and the
        // figure is computed again.
        let new = dir.path().join("new.db");
        Store::open(&new, Mode::ReadWrite).unwrap();
        std::fs::rename(&new, &db).unwrap();
        assert_eq!(*get(), 2);
        assert_eq!(*get(), 2);
        // Closed after the idle time, reopened on the next request.
        cache.reap(std::time::Duration::ZERO);
        assert!(cache.probe.lock().unwrap().is_none());
        assert_eq!(*get(), 3);
    }

    #[test]
    fn concurrent_misses_compute_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let _w = Store::open(&db, Mode::ReadWrite).unwrap();
        let cache = Cache::new(db.into());
        let calls = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let got: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        *cache
                            .get("k".into(), || {
                                calls.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_millis(300));
                                Ok::<_, crate::error::Error>(7)
                            })
                            .unwrap()
                    })
                })
                .collect();
            for h in got {
                assert_eq!(h.join().unwrap(), 7);
            }
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A failed computation releases the key: the next request computes.
        let r = cache.get::<i32, _, _>("e".into(), || Err("boom"));
        assert!(r.is_err());
        assert_eq!(*cache.get("e".into(), || Ok::<_, &str>(3)).unwrap(), 3);
    }
}
