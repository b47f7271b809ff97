//! Limits on trigger metadata and on the `ScaledObjectRef` that carries it.
//!
//! Each limit is far above what a real Celery deployment uses (see `docs/limits.md`), and low
//! enough that one request cannot make the scaler hold much memory, export many series or
//! issue many Redis commands per tick. A value over a limit is refused with
//! `INVALID_ARGUMENT` naming the key and the limit; nothing is ever truncated into a label.

use std::collections::HashMap;

use super::keys::KEDA_KEYS;
use super::reader::{MetadataError, Problem};
use crate::config::text::shown;

/// Most keys one metadata map may hold (the parser knows about 40, counting `…FromEnv` forms).
pub const MAX_METADATA_KEYS: usize = 64;
/// Longest metadata key, in bytes (the longest known key has 23).
pub const MAX_KEY_BYTES: usize = 64;
/// Largest metadata map: the sum of all keys and values, in bytes.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Longest value of any key without a tighter limit (addresses, passwords, numbers), bytes.
pub const MAX_VALUE_BYTES: usize = 4 * 1024;
/// Longest value of the keys KEDA passes through (`caCert` and friends may hold PEM), bytes.
pub const MAX_KEDA_VALUE_BYTES: usize = 16 * 1024;
/// Longest `queues` value, in bytes ([`MAX_QUEUES`] names of [`MAX_QUEUE_NAME_BYTES`]).
pub const MAX_QUEUES_VALUE_BYTES: usize = 16 * 1024;
/// Longest queue name (`queues` item, `listName`), in bytes.
pub const MAX_QUEUE_NAME_BYTES: usize = 200;
/// Most queues one trigger may watch.
pub const MAX_QUEUES: usize = 64;
/// Most priority steps (`prioritySteps` items; Celery's Redis transport uses 4, at most 10).
pub const MAX_PRIORITY_STEPS: usize = 16;
/// Highest priority step.
pub const MAX_PRIORITY: u64 = 255;
/// Most Redis lists one trigger makes the sampler read per tick: queues × priority steps.
pub const MAX_WATCHED_LISTS: usize = 512;
/// Longest `keyPrefix`, in bytes.
pub const MAX_KEY_PREFIX_BYTES: usize = 128;
/// Longest `prioritySeparator` once unescaped, in bytes (kombu's is 2).
pub const MAX_SEPARATOR_BYTES: usize = 16;
/// Longest `workerHostnames` pattern, in bytes.
pub const MAX_WORKER_HOSTNAMES_BYTES: usize = 255;
/// Longest `username` / `sentinelUsername`, in bytes.
pub const MAX_USERNAME_BYTES: usize = 256;
/// Longest `sentinelMaster` and `connection` name, in bytes.
pub const MAX_NAME_BYTES: usize = 253;
/// Most sentinels in `addresses`.
pub const MAX_SENTINELS: usize = 16;
/// Highest `databaseIndex`.
pub const MAX_DATABASE_INDEX: u64 = 65_535;
/// Longest Kubernetes namespace (`ScaledObjectRef.namespace`, a DNS-1123 label).
pub const MAX_NAMESPACE_BYTES: usize = 63;
/// Longest ScaledObject name (`ScaledObjectRef.name`, a DNS-1123 subdomain).
pub const MAX_SCALED_OBJECT_NAME_BYTES: usize = 253;

/// Range of `visibilityTimeout`, seconds: 1 s to 30 days.
pub const VISIBILITY_TIMEOUT_RANGE: (f64, f64) = (1.0, 30.0 * 86_400.0);
/// Largest `listLength`, `activationListLength` and `minHeadroom`.
pub const MAX_TASK_COUNT: f64 = 1e6;
/// Largest `prefetchMultiplier` (Celery's `worker_prefetch_multiplier`; 0 = unlimited).
pub const MAX_PREFETCH_MULTIPLIER: u64 = 10_000;
/// Largest `concurrency` (tasks one worker pod runs at once).
pub const MAX_CONCURRENCY: f64 = 10_000.0;
/// Largest `targetLatency` and `taskDuration`, seconds (one day).
pub const MAX_SECONDS: f64 = 86_400.0;

/// The byte limit of one value of `key`.
fn value_limit(key: &str) -> usize {
    match key {
        "queues" => MAX_QUEUES_VALUE_BYTES,
        k if KEDA_KEYS.contains(&k) => MAX_KEDA_VALUE_BYTES,
        _ => MAX_VALUE_BYTES,
    }
}

/// Checks the map as a whole before anything is parsed or cached: key count, total size,
/// key lengths and value lengths. Cheap (no allocation per value).
pub fn check_map(map: &HashMap<String, String>) -> Result<(), MetadataError> {
    let mut problems = Vec::new();
    if map.len() > MAX_METADATA_KEYS {
        problems.push(problem(
            "scalerMetadata",
            format!(
                "has {} keys; at most {MAX_METADATA_KEYS} are accepted",
                map.len()
            ),
        ));
    }
    let total: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_METADATA_BYTES {
        problems.push(problem(
            "scalerMetadata",
            format!("is {total} bytes; at most {MAX_METADATA_BYTES} are accepted"),
        ));
    }
    if !problems.is_empty() {
        return Err(MetadataError { problems });
    }
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        if key.len() > MAX_KEY_BYTES {
            problems.push(problem(
                &shown(key),
                format!(
                    "key of {} bytes; keys have at most {MAX_KEY_BYTES}",
                    key.len()
                ),
            ));
            continue;
        }
        let len = map.get(key).map_or(0, String::len);
        let limit = value_limit(key);
        if len > limit {
            problems.push(problem(
                key,
                format!("is {len} bytes; at most {limit} are accepted"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MetadataError { problems })
    }
}

/// Checks `ScaledObjectRef.namespace` and `.name`: Kubernetes names (DNS-1123 label of at
/// most 63 bytes, DNS-1123 subdomain of at most 253). Empty values are accepted (KEDA always
/// fills both; tools calling by hand may not). Anything else, such as a newline that could
/// forge a log line, is refused.
pub fn check_scaled_object(namespace: &str, name: &str) -> Result<(), MetadataError> {
    let mut problems = Vec::new();
    if !namespace.is_empty() && !is_dns_name(namespace, MAX_NAMESPACE_BYTES, false) {
        problems.push(problem(
            "scaledObjectRef.namespace",
            format!(
                "must be a Kubernetes namespace (lowercase letters, digits, '-'; at most \
                 {MAX_NAMESPACE_BYTES} bytes), got {}",
                shown(namespace)
            ),
        ));
    }
    if !name.is_empty() && !is_dns_name(name, MAX_SCALED_OBJECT_NAME_BYTES, true) {
        problems.push(problem(
            "scaledObjectRef.name",
            format!(
                "must be a Kubernetes object name (lowercase letters, digits, '-', '.'; at \
                 most {MAX_SCALED_OBJECT_NAME_BYTES} bytes), got {}",
                shown(name)
            ),
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MetadataError { problems })
    }
}

/// DNS-1123 label (`dots: false`) or subdomain (`dots: true`) of at most `max` bytes.
fn is_dns_name(s: &str, max: usize, dots: bool) -> bool {
    let ok_byte = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(ok_byte)
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.len() <= 63
    };
    if s.len() > max {
        return false;
    }
    if dots {
        s.split('.').all(label_ok)
    } else {
        label_ok(s)
    }
}

fn problem(key: &str, message: String) -> Problem {
    Problem {
        key: key.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn scaled_object_names_are_kubernetes_names() {
        let l63 = "x".repeat(63);
        let longest = format!("{l63}.{l63}.{l63}.{}", "y".repeat(61));
        assert_eq!(longest.len(), MAX_SCALED_OBJECT_NAME_BYTES);
        for (ns, name) in [
            ("celery", "worker"),
            ("", ""),
            ("a-1", "a.b-c.d"),
            (&"n".repeat(63)[..], &longest[..]),
        ] {
            assert!(check_scaled_object(ns, name).is_ok(), "{ns}/{name}");
        }
        let bad = [
            ("celery", "w\nINFO forged"),
            ("ns\n", "w"),
            ("celery", "Worker"),
            ("celery", "-w"),
            ("a.b", "w"),
            ("celery", "w..x"),
            ("celery", "wörker"),
            ("celery", "w\0"),
            (&"n".repeat(64)[..], "w"),
            ("celery", &format!("{longest}y")[..]),
        ];
        for (ns, name) in bad {
            let e = check_scaled_object(ns, name).unwrap_err();
            assert!(e.to_string().len() < 1024);
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn whole_map_limits() {
        let many: HashMap<String, String> = (0..=MAX_METADATA_KEYS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        let e = check_map(&many).unwrap_err();
        assert_eq!(e.problems[0].key, "scalerMetadata");
        assert!(e.to_string().contains(&MAX_METADATA_KEYS.to_string()));

        let big = "q,".repeat(MAX_METADATA_BYTES);
        let e = check_map(&md(&[("queues", &big)])).unwrap_err();
        assert!(e.to_string().contains(&MAX_METADATA_BYTES.to_string()));
        assert!(e.to_string().len() < 1024);

        let long_key = "k".repeat(1_000_000);
        let e = check_map(&HashMap::from([(long_key, String::new())])).unwrap_err();
        assert!(e.to_string().len() < 1024, "{}", e.to_string().len());

        let e = check_map(&md(&[("password", &"p".repeat(MAX_VALUE_BYTES + 1))])).unwrap_err();
        assert_eq!(e.problems[0].key, "password");
        assert!(!e.to_string().contains("ppp"));

        let cert = "c".repeat(MAX_VALUE_BYTES * 2);
        assert!(check_map(&md(&[("caCert", &cert)])).is_ok());
    }
}
