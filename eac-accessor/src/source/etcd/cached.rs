//! The prefix as kept in the last-known-good cache: the configuration keys at one
//! revision, as JSON, started from when etcd cannot be read.

use std::sync::Arc;

use super::entry::Key;
use super::{Fetched, Shared, lock};
use crate::source::Format;

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

    /// Writes `fetched` to the cache, when there is one and it came from the cluster.
    pub(super) fn cache(&self, fetched: &Fetched) {
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
