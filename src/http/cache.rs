//! An in-memory cache of hot objects (segments, parts, init segments; and,
//! for a short age, playlists), bounded by total bytes, least-recently-used out first
//! (quick_cache's CLOCK-Pro, which also resists one-off scans).
//!
//! Every viewer of a cached segment shares one `Bytes`. Concurrent misses
//! for the same key wait for a single storage read instead of each reading
//! it. Objects larger than `max_object_bytes` are never cached; they stream.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use streamforge_actors::storage::{ObjectInfo, ObjectKey, Storage, StorageError};

use super::delivery::Prepared;

#[derive(Clone, Debug)]
pub struct CachedObject {
    pub bytes: Bytes,
    pub info: ObjectInfo,
    /// When it was read from storage.
    pub loaded: Instant,
    /// The bytes gzip-compressed, made by the first request that takes
    /// them and shared by every later one while this copy is cached (not
    /// in its weight: only playlists and manifests are compressed, to a
    /// fraction of their size). `None` when compression did not shrink them.
    gzipped: Arc<OnceLock<Option<Bytes>>>,
    /// Its validators and response headers, made by the first request
    /// answered from this copy and shared by every later one.
    prepared: Arc<OnceLock<Prepared>>,
}

impl CachedObject {
    /// The bytes gzip-compressed (once per cached copy), unless that would
    /// not make them smaller.
    pub fn gzipped(&self) -> Option<&Bytes> {
        self.gzipped
            .get_or_init(|| super::gzip::compress(&self.bytes))
            .as_ref()
    }

    /// The headers every answer from this copy starts from, made by `make`
    /// the first time.
    pub(crate) fn prepared(&self, make: impl FnOnce() -> Prepared) -> &Prepared {
        self.prepared.get_or_init(make)
    }
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<ObjectKey, Option<CachedObject>> for ByBytes {
    fn weight(&self, key: &ObjectKey, value: &Option<CachedObject>) -> u64 {
        // A remembered "too large" marker weighs only its key.
        key.as_str().len() as u64 + value.as_ref().map_or(0, |o| o.bytes.len() as u64)
    }
}

#[derive(Clone)]
pub struct ObjectCache {
    /// `None` records "exists but too large to cache", so a large file costs
    /// one `head` per request rather than a failed load each time.
    inner: Option<Arc<Cache<ObjectKey, Option<CachedObject>, ByBytes>>>,
    max_object_bytes: u64,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCache")
            .field("weight", &self.weight())
            .field("max_object_bytes", &self.max_object_bytes)
            .finish()
    }
}

impl ObjectCache {
    /// A cache holding up to `capacity_bytes`; 0 disables caching.
    pub fn new(capacity_bytes: u64, max_object_bytes: u64) -> Self {
        let inner = (capacity_bytes > 0).then(|| {
            // The item estimate only sizes the initial tables.
            let estimated_items = usize::try_from(capacity_bytes / (512 * 1024))
                .unwrap_or(1024)
                .max(64);
            Arc::new(Cache::with_weighter(
                estimated_items,
                capacity_bytes,
                ByBytes,
            ))
        });
        ObjectCache {
            inner,
            max_object_bytes,
        }
    }

    /// Bytes held now.
    pub fn weight(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.weight())
    }

    /// The object from memory, loading it from storage on a miss or when the
    /// cached copy is older than `max_age` (objects that may still change);
    /// `None` when it is too large to cache (the caller streams it) or
    /// caching is off.
    pub async fn get_or_load(
        &self,
        storage: &Storage,
        key: &ObjectKey,
        max_age: Option<Duration>,
    ) -> Result<Option<CachedObject>, StorageError> {
        let Some(cache) = &self.inner else {
            return Ok(None);
        };
        let cached = cache
            .get_or_insert_async(key, self.load(storage, key))
            .await?;
        match (&cached, max_age) {
            (Some(object), Some(max_age)) if object.loaded.elapsed() > max_age => {
                match self.load(storage, key).await {
                    Ok(fresh) => {
                        cache.insert(key.clone(), fresh.clone());
                        Ok(fresh)
                    }
                    Err(err) => {
                        cache.remove(key);
                        Err(err)
                    }
                }
            }
            _ => Ok(cached),
        }
    }

    /// The cached object, when it is in memory and no older than `max_age`;
    /// never touches storage.
    pub fn peek(&self, key: &ObjectKey, max_age: Duration) -> Option<CachedObject> {
        let object = self.inner.as_ref()?.get(key)??;
        (object.loaded.elapsed() <= max_age).then_some(object)
    }

    async fn load(
        &self,
        storage: &Storage,
        key: &ObjectKey,
    ) -> Result<Option<CachedObject>, StorageError> {
        let Some(info) = storage.head(key).await? else {
            return Err(StorageError::NotFound(key.clone()));
        };
        if info.size > self.max_object_bytes {
            return Ok(None);
        }
        let bytes = storage.read_all(key).await?;
        Ok(Some(CachedObject {
            bytes,
            info,
            loaded: Instant::now(),
            gzipped: Arc::default(),
            prepared: Arc::default(),
        }))
    }

    /// Drops every cached object whose key starts with `prefix` (an asset
    /// being deleted or replaced).
    pub fn remove_prefix(&self, prefix: &str) {
        if let Some(cache) = &self.inner {
            cache.retain(|key, _| !key.as_str().starts_with(prefix));
        }
    }
}
