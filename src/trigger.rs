//! ScaledObject trigger metadata → typed, validated settings.
//!
//! KEDA sends the trigger's metadata map on every call, so parsed settings are cached by
//! content ([`TriggerCache`]). Every problem is reported at once, each naming its key; values
//! of secret keys are never echoed.

use std::collections::HashMap;

use crate::spec::{BrokerSpec, NamedConnections, WatchSet};

use crate::config::text::{parse_uint, shown};
use crate::policy::latency::{Prefetch, DEFAULT_MIN_HEADROOM};
use crate::policy::{
    LatencySettings, PolicySettings, DEFAULT_ACTIVATION_LIST_LENGTH, DEFAULT_LIST_LENGTH,
};

/// Every key this parser understands (besides [`KEDA_KEYS`]).
const KNOWN_KEYS: &[&str] = &[
    "address",
    "addresses",
    "host",
    "port",
    "username",
    "password",
    "databaseIndex",
    "enableTLS",
    "brokerTLS",
    "unsafeSsl",
    "sentinelMaster",
    "sentinelUsername",
    "sentinelPassword",
    "connection",
    "queues",
    "listName",
    "keyPrefix",
    "prioritySteps",
    "prioritySeparator",
    "visibilityTimeout",
    "mode",
    "listLength",
    "activationListLength",
    "concurrency",
    "targetLatency",
    "taskDuration",
    "minHeadroom",
    "prefetchMultiplier",
    "acksLate",
    "podStartup",
    "workerHostnames",
];

/// Every metadata key this parser accepts: its own, their `<key>FromEnv` forms and KEDA's.
/// The fuzz tests draw keys from it, so a new key is fuzzed without a second list.
pub fn metadata_keys() -> impl Iterator<Item = String> {
    let own = KNOWN_KEYS.iter().chain(KEDA_KEYS).map(|k| k.to_string());
    own.chain(FROM_ENV_KEYS.iter().map(|k| format!("{k}FromEnv")))
}

/// Keys only `latency` mode reads.
const LATENCY_KEYS: &[&str] = &[
    "concurrency",
    "targetLatency",
    "taskDuration",
    "minHeadroom",
    "prefetchMultiplier",
    "acksLate",
    "podStartup",
];

/// Everything one trigger asks for, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerSettings {
    pub broker: BrokerSpec,
    pub watch: WatchSet,
    pub policy: PolicySettings,
    /// The one metric name this trigger's MetricSpec carries (lowercase, path-safe, stable).
    pub metric_name: String,
    /// The named connection used (`connection`, trimmed; absent when empty), as the broker
    /// policy must check it.
    pub connection: Option<String>,
}

/// Parses and validates `metadata`; `connections` resolves the `connection` key.
pub fn parse(
    metadata: &HashMap<String, String>,
    connections: &NamedConnections,
) -> Result<TriggerSettings, MetadataError> {
    limits::check_map(metadata)?;
    let mut r = Reader {
        map: metadata,
        problems: Vec::new(),
    };
    check_unknown_keys(&mut r);
    let broker = broker::parse_broker(&mut r, connections);
    let connection = r.get("connection").map(String::from);
    let layout = parse_layout(&mut r);
    let queues = parse_queues(&mut r);
    check_watched_lists(&mut r, &queues, &layout);
    let (vt_min, vt_max) = limits::VISIBILITY_TIMEOUT_RANGE;
    let vt = r.number(
        "visibilityTimeout",
        DEFAULT_VISIBILITY_TIMEOUT_SECS,
        vt_min,
        vt_max,
    );
    let policy = parse_policy(&mut r);
    let worker_hostnames = parse_worker_hostnames(&mut r);
    match broker {
        Some(broker) if r.problems.is_empty() => {
            let metric_name = metric_name(&queues);
            Ok(TriggerSettings {
                broker,
                watch: WatchSet {
                    layout,
                    queues,
                    visibility_timeout_ms: (vt * 1000.0).round() as u64,
                    worker_hostnames,
                },
                policy,
                metric_name,
                connection,
            })
        }
        _ => Err(MetadataError {
            problems: r.problems,
        }),
    }
}

fn check_unknown_keys(r: &mut Reader<'_>) {
    let mut unknown: Vec<&String> = r
        .map
        .keys()
        .filter(|k| {
            let base = k
                .strip_suffix("FromEnv")
                .filter(|b| FROM_ENV_KEYS.contains(b));
            !(KNOWN_KEYS.contains(&k.as_str()) || KEDA_KEYS.contains(&k.as_str()) || base.is_some())
        })
        .collect();
    unknown.sort();
    for key in unknown {
        let hint = KNOWN_KEYS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(key) || known.starts_with(key.as_str()))
            .map(|k| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        r.problem(key, format!("unknown metadata key{hint}"));
    }
}

fn parse_policy(r: &mut Reader<'_>) -> PolicySettings {
    let mode = r.get("mode").unwrap_or("backlog");
    let list_length = r.number(
        "listLength",
        DEFAULT_LIST_LENGTH,
        MIN_TARGET,
        limits::MAX_TASK_COUNT,
    );
    let activation = r.number(
        "activationListLength",
        DEFAULT_ACTIVATION_LIST_LENGTH,
        0.0,
        limits::MAX_TASK_COUNT,
    );
    match mode {
        "latency" => parse_latency(r, activation),
        other => {
            if other != "backlog" {
                r.problem(
                    "mode",
                    format!(
                        "unknown mode {} (supported: backlog, latency)",
                        shown(other)
                    ),
                );
            }
            for key in LATENCY_KEYS {
                if r.has(key) {
                    r.problem(key, "applies only to mode: latency");
                }
            }
            PolicySettings::Backlog {
                list_length,
                activation_list_length: activation,
            }
        }
    }
}

fn parse_latency(r: &mut Reader<'_>, activation: f64) -> PolicySettings {
    let required = |r: &mut Reader<'_>, key: &str, what: &str, max: f64| {
        if r.has(key) {
            r.number(key, 1.0, MIN_TARGET, max)
        } else {
            r.problem(key, format!("is required with mode: latency ({what})"));
            1.0
        }
    };
    let concurrency = required(
        r,
        "concurrency",
        "tasks one worker pod runs at once",
        limits::MAX_CONCURRENCY,
    );
    let target_latency = required(
        r,
        "targetLatency",
        "seconds a task may wait before it starts",
        limits::MAX_SECONDS,
    );
    let task_duration = r
        .has("taskDuration")
        .then(|| r.number("taskDuration", 1.0, MIN_TARGET, limits::MAX_SECONDS));
    let min_headroom = r.number(
        "minHeadroom",
        DEFAULT_MIN_HEADROOM,
        0.0,
        limits::MAX_TASK_COUNT,
    );
    let pod_startup = r
        .has("podStartup")
        .then(|| r.number("podStartup", 0.0, 0.0, limits::MAX_SECONDS));
    PolicySettings::Latency(LatencySettings {
        concurrency,
        target_latency,
        task_duration,
        min_headroom,
        activation_list_length: activation,
        prefetch: parse_prefetch(r),
        pod_startup,
    })
}

/// `prefetchMultiplier` (an integer, 0 = unlimited) and `acksLate`, as the workers set
/// Celery's `worker_prefetch_multiplier` and `task_acks_late`; absent, Celery's defaults.
fn parse_prefetch(r: &mut Reader<'_>) -> Prefetch {
    let default = Prefetch::default();
    let multiplier = match r.get("prefetchMultiplier") {
        None => default.multiplier,
        Some(v) => match parse_uint(v, limits::MAX_PREFETCH_MULTIPLIER) {
            Some(n) => n as f64,
            None => {
                let max = limits::MAX_PREFETCH_MULTIPLIER;
                r.problem(
                    "prefetchMultiplier",
                    format!("must be an integer 0-{max}, got {}", shown(v)),
                );
                default.multiplier
            }
        },
    };
    Prefetch {
        multiplier,
        acks_late: r.bool("acksLate", default.acks_late),
    }
}

/// `celery-<queues joined by ->`, lowercase and path-safe; a hash suffix keeps names that had
/// to be changed or shortened unique.
pub fn metric_name(queues: &[String]) -> String {
    let joined = queues.join("-");
    let clean: String = joined
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.' | '_') => c,
            _ => '-',
        })
        .collect();
    const MAX: usize = 100;
    if clean == joined && clean.len() <= MAX {
        return format!("celery-{clean}");
    }
    let short: String = clean.chars().take(MAX).collect();
    format!("celery-{short}-{:08x}", fnv1a(joined.as_bytes()) as u32)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

mod broker;
mod cache;
mod keys;
pub mod limits;
mod reader;
mod watch;

pub use cache::TriggerCache;
pub use keys::{DEFAULT_QUEUE, DEFAULT_REDIS_PORT, DEFAULT_VISIBILITY_TIMEOUT_SECS, MIN_TARGET};
use keys::{FROM_ENV_KEYS, KEDA_KEYS};
use reader::Reader;
pub use reader::{MetadataError, Problem};
pub use watch::unescape;
use watch::{check_watched_lists, parse_layout, parse_queues, parse_worker_hostnames};

#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod tests;
