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
//! capped; when the counter cannot be read, nothing is cached.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::{Mode, Store};

/// Most entries kept; reaching it empties the cache (a burst of distinct
/// queries should not grow the process).
pub const MAX_ENTRIES: usize = 256;

type Value = Arc<dyn Any + Send + Sync>;

/// The cache of one database.
pub struct Cache {
    db: crate::store::DbSpec,
    probe: Mutex<Option<Store>>,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    version: Option<i64>,
    map: HashMap<String, Value>,
}

impl Cache {
    /// A cache for the database at `db` (opened on first use).
    pub fn new(db: crate::store::DbSpec) -> Cache {
        Cache {
            db,
            probe: Mutex::new(None),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The database's change counter, from the kept connection (reopened
    /// after an error); None when it cannot be read.
    fn version(&self) -> Option<i64> {
        let mut probe = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        if probe.is_none() {
            *probe = Store::open(&self.db, Mode::ReadOnly).ok();
        }
        match probe.as_ref().map(Store::data_version) {
            Some(Ok(v)) => Some(v),
            _ => {
                *probe = None;
                None
            }
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
            if e.version != Some(version) {
                e.map.clear();
                e.version = Some(version);
            }
            if let Some(v) = e
                .map
                .get(&key)
                .and_then(|v| Arc::clone(v).downcast::<T>().ok())
            {
                return Ok(v);
            }
        }
        let v = Arc::new(f()?);
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.version == Some(version) {
            if e.map.len() >= MAX_ENTRIES {
                e.map.clear();
            }
            e.map.insert(key, Arc::clone(&v) as Value);
        }
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

    #[test]
    fn a_commit_by_another_connection_empties_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let mut w = Store::open(&db, Mode::ReadWrite).unwrap();
        let cache = Cache::new(db.as_path().into());
        let calls = Cell::new(0);
        let get = || {
            cache
                .get("k".into(), || {
                    calls.set(calls.get() + 1);
                    Ok::<_, crate::error::Error>(calls.get())
                })
                .unwrap()
        };
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
}
