//! [`TriggerCache`]: parsed settings by metadata content, bounded by entry count and by an
//! approximate byte size, evicting the oldest entries first.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{limits, parse, MetadataError, TriggerSettings};
use crate::spec::NamedConnections;

/// Most parsed settings the cache keeps.
pub const CACHE_CAPACITY: usize = 4096;
/// Most bytes (approximate: see [`entry_bytes`]) the cache keeps.
pub const CACHE_BUDGET_BYTES: usize = 16 * 1024 * 1024;
/// Fixed cost counted per entry on top of its text: map nodes, the settings struct, `Arc`s.
const ENTRY_OVERHEAD_BYTES: usize = 1024;

type Key = Arc<BTreeMap<String, String>>;

/// Parsed settings cached by metadata content. A map over the metadata limits is refused
/// before anything is copied or cached.
#[derive(Default)]
pub struct TriggerCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, (Arc<TriggerSettings>, usize)>,
    /// Insertion order, oldest first.
    order: VecDeque<Key>,
    bytes: usize,
}

/// Approximate memory of one entry: its metadata text twice (the key, and what the settings
/// copy of it: queues, prefix, hosts) plus a fixed overhead.
fn entry_bytes(metadata: &BTreeMap<String, String>) -> usize {
    let text: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    2 * text + ENTRY_OVERHEAD_BYTES
}

impl TriggerCache {
    /// Parses `metadata` (or returns the cached result for the same content).
    pub fn get(
        &self,
        metadata: &HashMap<String, String>,
        connections: &NamedConnections,
    ) -> Result<Arc<TriggerSettings>, MetadataError> {
        limits::check_map(metadata)?;
        let key: BTreeMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some((hit, _)) = self.lock().entries.get(&key) {
            return Ok(hit.clone());
        }
        let settings = Arc::new(parse(metadata, connections)?);
        let size = entry_bytes(&key);
        let key = Arc::new(key);
        let mut inner = self.lock();
        if inner.entries.contains_key(&key) {
            return Ok(settings);
        }
        while !inner.order.is_empty()
            && (inner.entries.len() >= CACHE_CAPACITY || inner.bytes + size > CACHE_BUDGET_BYTES)
        {
            if let Some(old) = inner.order.pop_front() {
                if let Some((_, n)) = inner.entries.remove(&old) {
                    inner.bytes -= n;
                }
            }
        }
        inner.bytes += size;
        inner.order.push_back(key.clone());
        inner.entries.insert(key, (settings.clone(), size));
        Ok(settings)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes held (what the budget counts).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned cache holds only immutable parsed values: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big_map(i: usize) -> HashMap<String, String> {
        // Near the whole-map limit: 60 queues of 190 bytes each, distinct per `i`.
        let queues: Vec<String> = (0..60)
            .map(|q| format!("{i:08}-{q:03}-{}", "x".repeat(177)))
            .collect();
        HashMap::from([
            ("address".to_string(), "redis:6379".to_string()),
            ("queues".to_string(), queues.join(",")),
            ("prioritySteps".to_string(), "0".to_string()),
            ("keyPrefix".to_string(), format!("{i}-{}", "p".repeat(100))),
        ])
    }

    #[test]
    fn bytes_stay_under_the_budget() {
        let cache = TriggerCache::default();
        let conns = NamedConnections::new();
        let one = entry_bytes(&big_map(0).into_iter().collect());
        let n = 2 * CACHE_BUDGET_BYTES / one + 10;
        for i in 0..n {
            cache.get(&big_map(i), &conns).unwrap();
            assert!(
                cache.bytes() <= CACHE_BUDGET_BYTES,
                "{} after {i}",
                cache.bytes()
            );
        }
        assert!(cache.len() < n);
        assert!(
            cache.bytes() > CACHE_BUDGET_BYTES / 2,
            "evicts only what it must"
        );
        // The newest entry is still cached; the oldest was evicted.
        let last = cache.get(&big_map(n - 1), &conns).unwrap();
        assert!(Arc::ptr_eq(
            &last,
            &cache.get(&big_map(n - 1), &conns).unwrap()
        ));
    }

    #[test]
    fn oversize_maps_are_refused_before_caching() {
        let cache = TriggerCache::default();
        let conns = NamedConnections::new();
        let huge = HashMap::from([
            ("address".to_string(), "redis:6379".to_string()),
            ("keyPrefix".to_string(), "k".repeat(4_000_000)),
        ]);
        let e = cache.get(&huge, &conns).unwrap_err();
        assert!(e.to_string().len() < 1024);
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
    }
}
