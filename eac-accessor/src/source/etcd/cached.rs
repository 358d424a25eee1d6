//! The prefix as kept in the last-known-good cache: the configuration keys at one
//! revision, as JSON, started from when etcd cannot be read.
//!
//! The cache is written off the reload's path: the first commit's state at once (a
//! start's state is cached before anything else happens), each later one
//! [`CACHE_DELAY`] after the first commit of a burst, the newest then, on the blocking
//! pool. A burst of changes is one write, and a fleet's members, which all commit a
//! change at the same moment, write their caches (a `fsync` of the file and of its
//! folder each) once the fleet has applied it, not while other members still apply it
//! on the same cores. A process that ends within the delay after a change keeps the
//! previous state cached: a last-known-good state still, and the watch reads the
//! change again after a start from it.

use std::sync::Arc;
use std::time::Duration;

use super::entry::Key;
use super::{Fetched, Shared, lock};
use crate::source::Format;

/// How long after a commit its state is cached (unless it is the first): the newest
/// state then is written.
pub(crate) const CACHE_DELAY: Duration = Duration::from_millis(500);

/// What waits to be cached.
#[derive(Default)]
pub(super) struct CacheWrites {
    /// The newest committed state not cached yet.
    pending: Option<Arc<Fetched>>,
    /// A write is scheduled (it takes `pending` when it runs).
    scheduled: bool,
    /// The first commit was cached (at once).
    first_done: bool,
}

/// The cache file's document: the configuration keys of the prefix at one revision.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    prefix: String,
    revision: i64,
    keys: Vec<CachedKey>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedKey {
    key: String,
    mod_revision: i64,
    value: String,
}

impl Shared {
    /// Takes the cached state as the current one; false when there is no usable cache.
    pub(super) fn start_from_cache(&self) -> bool {
        let Some(cache) = &self.options.cache else {
            return false;
        };
        let Some((_, text)) = self.background.load_cache(cache) else {
            return false;
        };
        let cached: Cached = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(cache = %cache.path().display(), error = %e, "etcd cache skipped: not a cached prefix");
                return false;
            }
        };
        if cached.prefix != self.options.prefix {
            tracing::warn!(cache = %cache.path().display(), cached = cached.prefix, "etcd cache skipped: it holds another prefix");
            return false;
        }
        let entries = cached
            .keys
            .iter()
            .filter_map(|k| match self.classify(k.key.as_bytes()) {
                Key::Config(name) => Some(self.entry(
                    name,
                    k.key.as_bytes(),
                    Some(k.value.as_bytes()),
                    k.mod_revision,
                )),
                _ => None,
            })
            .collect();
        let mut state = lock(&self.state);
        state.current = Arc::new(Fetched {
            revision: cached.revision,
            entries,
            from_cache: true,
            staged: None,
        });
        state.seen = cached.revision;
        self.background.serving_cache(true);
        true
    }

    /// Caches `fetched`, committed now, when there is a cache and it came from the
    /// cluster: at once the first time (or outside a Tokio runtime), else
    /// [`CACHE_DELAY`] later, with whatever was committed last by then.
    pub(super) fn cache_committed(self: &Arc<Self>, fetched: Arc<Fetched>) {
        if self.options.cache.is_none() || fetched.from_cache {
            return;
        }
        let mut writes = lock(&self.cache_writes);
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if writes.first_done => runtime,
            // The first commit, or no runtime to write later on: now.
            _ => {
                writes.first_done = true;
                // Newer than what a scheduled write would take.
                writes.pending = None;
                drop(writes);
                let _written = lock(&self.cache_writing);
                self.cache(&fetched);
                return;
            }
        };
        writes.pending = Some(fetched);
        if std::mem::replace(&mut writes.scheduled, true) {
            return;
        }
        drop(writes);
        let shared = Arc::clone(self);
        runtime.spawn(async move {
            tokio::time::sleep(CACHE_DELAY).await;
            let _ = tokio::task::spawn_blocking(move || {
                // One write at a time, the newest last.
                let _written = lock(&shared.cache_writing);
                let next = {
                    let mut writes = lock(&shared.cache_writes);
                    writes.scheduled = false;
                    writes.pending.take()
                };
                if let Some(fetched) = next {
                    shared.cache(&fetched);
                }
            })
            .await;
        });
    }

    /// Writes `fetched` to the cache, when there is one and it came from the cluster.
    fn cache(&self, fetched: &Fetched) {
        let Some(cache) = &self.options.cache else {
            return;
        };
        if fetched.from_cache {
            return;
        }
        let cached = Cached {
            prefix: self.options.prefix.clone(),
            revision: fetched.revision,
            keys: fetched
                .entries
                .iter()
                .map(|e| CachedKey {
                    key: e.key.clone(),
                    mod_revision: e.mod_revision,
                    value: e.text.to_string(),
                })
                .collect(),
        };
        let text = serde_json::to_string(&cached).unwrap_or_default();
        // Over the cache's cap, `store` keeps the previous cache (the loader would
        // refuse the new one): said in a warning and the status.
        self.background.store_cache(cache, Format::Json, &text);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::source::{EtcdOptions, LastGood};

    const PREFIX: &str = "/eac/cached/";

    /// The revision the cache file holds, if any.
    fn cached_revision(cache: &LastGood) -> Option<i64> {
        let (_, text) = cache.load()?;
        Some(serde_json::from_str::<Cached>(&text).unwrap().revision)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_commit_is_cached_at_once_a_burst_after_it_once_later_its_newest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LastGood::new(dir.path().join("etcd.cache"));
        // Nothing listens there: the client connects lazily, and nothing here reads.
        let options = EtcdOptions::new(["http://127.0.0.1:9"], PREFIX).cache(cache.clone());
        let shared = Arc::new(Shared::new(options).await.unwrap());
        let read = |revision: i64, from_cache: bool| {
            let key = format!("{PREFIX}greeting");
            let value = format!(r#"{{"message": "at {revision}"}}"#);
            let entry = shared.entry(
                Some("greeting"),
                key.as_bytes(),
                Some(value.as_bytes()),
                revision,
            );
            Arc::new(Fetched {
                revision,
                entries: vec![entry],
                from_cache,
                staged: None,
            })
        };
        let fetched = |revision| read(revision, false);

        shared.cache_committed(fetched(1));
        assert_eq!(
            cached_revision(&cache),
            Some(1),
            "the first commit, at once"
        );

        let burst = Instant::now();
        for revision in 2..=4 {
            shared.cache_committed(fetched(revision));
        }
        tokio::time::sleep(CACHE_DELAY / 2).await;
        if burst.elapsed() < CACHE_DELAY {
            assert_eq!(
                cached_revision(&cache),
                Some(1),
                "a later commit is cached after the delay, not on the reload's path"
            );
        }
        let deadline = Instant::now() + CACHE_DELAY * 20;
        while cached_revision(&cache) != Some(4) {
            assert!(
                Instant::now() < deadline,
                "the burst's newest state not cached: {:?}",
                cached_revision(&cache)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // A commit from the cache itself is never written back.
        shared.cache_committed(read(5, true));
        tokio::time::sleep(CACHE_DELAY * 2).await;
        assert_eq!(cached_revision(&cache), Some(4));
    }
}
