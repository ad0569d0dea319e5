//! A short-lived in-process cache of authenticated API keys.
//!
//! Every `/schedule` is authenticated by its `ttr-api-key`; without a cache that is one store
//! read per call, as costly as the write it guards. Entries live [`API_KEY_CACHE_TTL`]; a key
//! deleted through this service is forgotten at once, so it is refused by the very next call.
//! A key deleted through another instance sharing the store is refused here within the TTL
//! (docs/decisions.md). Unknown keys are never cached, so a key created anywhere works at once.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::ApiKeyId;
use crate::model::AuthenticatedKey;

/// How long an authenticated key is trusted without asking the store again.
pub const API_KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// Most keys remembered; beyond that the cache starts over (a bound, not an eviction policy:
/// no real deployment authenticates this many distinct keys within one TTL).
const MAX_ENTRIES: usize = 4096;

/// The cache: key hash → the key and when it was read from the store.
pub(crate) struct ApiKeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (AuthenticatedKey, Instant)>>,
}

impl fmt::Debug for ApiKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ApiKeyCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        ApiKeyCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The key with this hash, if it was read from the store less than a TTL ago.
    pub(crate) fn get(&self, key_hash: &str) -> Option<AuthenticatedKey> {
        self.get_at(key_hash, Instant::now())
    }

    /// [`ApiKeyCache::get`] as of `now`.
    fn get_at(&self, key_hash: &str, now: Instant) -> Option<AuthenticatedKey> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (key, read_at) = entries.get(key_hash)?;
        (now.saturating_duration_since(*read_at) < self.ttl).then(|| key.clone())
    }

    /// Remembers a key just read from the store.
    pub(crate) fn insert(&self, key_hash: String, key: AuthenticatedKey) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (_, read_at)| read_at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key_hash, (key, Instant::now()));
    }

    /// Forgets the key with this id (it was deleted).
    pub(crate) fn forget(&self, id: &ApiKeyId) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (key, _)| &key.key_id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ProjectId;

    fn key(id: &str) -> AuthenticatedKey {
        AuthenticatedKey {
            key_id: ApiKeyId::new(id),
            project_id: ProjectId::new("prj_1"),
        }
    }

    #[test]
    fn a_remembered_key_is_served_until_forgotten() {
        let cache = ApiKeyCache::new(Duration::from_secs(60));
        assert!(cache.get("h1").is_none());
        cache.insert("h1".into(), key("key_1"));
        cache.insert("h2".into(), key("key_2"));
        assert_eq!(cache.get("h1").unwrap().key_id.as_str(), "key_1");
        cache.forget(&ApiKeyId::new("key_1"));
        assert!(cache.get("h1").is_none());
        assert_eq!(cache.get("h2").unwrap().key_id.as_str(), "key_2");
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let ttl = Duration::from_secs(1);
        let cache = ApiKeyCache::new(ttl);
        cache.insert("h1".into(), key("key_1"));
        let read_at = cache.entries.lock().unwrap()["h1"].1;
        let just_before = read_at + ttl - Duration::from_millis(1);
        assert!(cache.get_at("h1", just_before).is_some());
        assert!(cache.get_at("h1", read_at + ttl).is_none());
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = ApiKeyCache::new(Duration::ZERO);
        cache.insert("h1".into(), key("key_1"));
        assert!(cache.entries.lock().unwrap().is_empty());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = ApiKeyCache::new(Duration::from_secs(60));
        for i in 0..(MAX_ENTRIES + 10) {
            cache.insert(format!("h{i}"), key("key_1"));
        }
        let len = cache.entries.lock().unwrap().len();
        assert!(len <= MAX_ENTRIES, "{len}");
        assert!(cache.get(&format!("h{}", MAX_ENTRIES + 9)).is_some());
    }
}
