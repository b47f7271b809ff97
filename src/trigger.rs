//! ScaledObject trigger metadata → typed, validated settings.
//!
//! KEDA sends the trigger's metadata map on every call, so parsed settings are cached by
//! content ([`TriggerCache`]). Every problem is reported at once, each naming its key; values
//! of secret keys are never echoed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::broker::{BrokerSpec, Endpoint, HostPort, NamedConnections, Secret, TlsSpec, WatchSet};
use crate::celery::{Layout, DEFAULT_PRIORITY_STEPS, DEFAULT_SEPARATOR};
use crate::policy::latency::DEFAULT_MIN_HEADROOM;
use crate::policy::{
    LatencySettings, PolicySettings, DEFAULT_ACTIVATION_LIST_LENGTH, DEFAULT_LIST_LENGTH,
};

/// Default queue when neither `queues` nor `listName` is given.
pub const DEFAULT_QUEUE: &str = "celery";
/// Default Redis port when `host` is given without `port`.
pub const DEFAULT_REDIS_PORT: u16 = 6379;
/// kombu's default `visibility_timeout`, in seconds.
pub const DEFAULT_VISIBILITY_TIMEOUT_SECS: f64 = 3600.0;
/// The smallest target KEDA can carry (it formats targets with `%.3f`).
pub const MIN_TARGET: f64 = 0.001;
/// How many parsed settings the cache keeps before it starts over.
const CACHE_CAPACITY: usize = 4096;

/// Keys KEDA reads or passes through for its own use; accepted and ignored here.
const KEDA_KEYS: &[&str] = &[
    "scalerAddress",
    "caCert",
    "tlsClientCert",
    "tlsClientKey",
    "tlsCertFile",
    "metricType",
];

/// Keys whose values are secrets: never echoed in errors.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwordFromEnv",
    "sentinelPassword",
    "sentinelPasswordFromEnv",
];

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
    "workerHostnames",
];

/// Keys only `latency` mode reads.
const LATENCY_KEYS: &[&str] = &[
    "concurrency",
    "targetLatency",
    "taskDuration",
    "minHeadroom",
];

/// Keys that may arrive as `<key>FromEnv` (KEDA resolves them against the workload's env).
const FROM_ENV_KEYS: &[&str] = &[
    "address",
    "host",
    "port",
    "username",
    "password",
    "sentinelUsername",
    "sentinelPassword",
];

/// Broker keys that must not be combined with `connection`.
const INLINE_BROKER_KEYS: &[&str] = &[
    "address",
    "addresses",
    "host",
    "port",
    "username",
    "password",
    "enableTLS",
    "brokerTLS",
    "unsafeSsl",
    "sentinelMaster",
    "sentinelUsername",
    "sentinelPassword",
];

/// Everything one trigger asks for, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerSettings {
    pub broker: BrokerSpec,
    pub watch: WatchSet,
    pub policy: PolicySettings,
    /// The one metric name this trigger's MetricSpec carries (lowercase, path-safe, stable).
    pub metric_name: String,
}

/// One invalid metadata value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// All problems found in one metadata map.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct MetadataError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid trigger metadata: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

/// Reads keys from the map, recording problems as it goes.
struct Reader<'a> {
    map: &'a HashMap<String, String>,
    problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// The value of `key` or of `<key>FromEnv`, trimmed; `None` when absent or empty.
    fn get(&mut self, key: &str) -> Option<&'a str> {
        let direct = self
            .map
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty());
        let from_env = if FROM_ENV_KEYS.contains(&key) {
            let env_key = format!("{key}FromEnv");
            self.map
                .get(&env_key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        } else {
            None
        };
        match (direct, from_env) {
            (Some(_), Some(_)) => {
                self.problem(key, format!("give either {key} or {key}FromEnv, not both"));
                direct
            }
            (a, b) => a.or(b),
        }
    }

    fn has(&mut self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Describes a bad value without echoing secrets.
    fn shown(key: &str, value: &str) -> String {
        if SECRET_KEYS.contains(&key) {
            "(value hidden)".to_string()
        } else {
            format!("got {value:?}")
        }
    }

    fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    let shown = Self::shown(key, v);
                    self.problem(key, format!("must be true or false, {shown}"));
                    default
                }
            },
        }
    }

    fn number(&mut self, key: &str, default: f64, min: f64, inclusive: bool) -> f64 {
        let Some(v) = self.get(key) else {
            return default;
        };
        match v.parse::<f64>() {
            Ok(n) if n.is_finite() && (n > min || (inclusive && n == min)) => n,
            _ => {
                let bound = if inclusive { "≥" } else { ">" };
                self.problem(key, format!("must be a number {bound} {min}, got {v:?}"));
                default
            }
        }
    }

    fn secret(&mut self, key: &str) -> Option<Secret> {
        self.get(key).map(Secret::new)
    }
}

/// Parses and validates `metadata`; `connections` resolves the `connection` key.
pub fn parse(
    metadata: &HashMap<String, String>,
    connections: &NamedConnections,
) -> Result<TriggerSettings, MetadataError> {
    let mut r = Reader {
        map: metadata,
        problems: Vec::new(),
    };
    check_unknown_keys(&mut r);
    let broker = parse_broker(&mut r, connections);
    let layout = parse_layout(&mut r);
    let queues = parse_queues(&mut r);
    let vt = r.number(
        "visibilityTimeout",
        DEFAULT_VISIBILITY_TIMEOUT_SECS,
        0.0,
        false,
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

fn parse_host_port(r: &mut Reader<'_>, key: &str, text: &str) -> Option<HostPort> {
    let text = text.trim();
    let split = match text.strip_prefix('[') {
        Some(rest) => rest.split_once("]:"),
        None => text
            .rsplit_once(':')
            .filter(|(host, _)| !host.contains(':')),
    };
    match split.and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?))) {
        Some((host, port)) if !host.is_empty() && port > 0 => Some(HostPort {
            host: host.to_string(),
            port,
        }),
        _ => {
            r.problem(key, format!("must be host:port, got {text:?}"));
            None
        }
    }
}

fn parse_broker(r: &mut Reader<'_>, connections: &NamedConnections) -> Option<BrokerSpec> {
    let db_override = r.get("databaseIndex").map(|v| v.to_string());
    let db = match db_override.as_deref() {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                r.problem(
                    "databaseIndex",
                    format!("must be an integer ≥ 0, got {v:?}"),
                );
                None
            }
        },
    };
    if let Some(name) = r.get("connection") {
        let inline: Vec<&str> = INLINE_BROKER_KEYS
            .iter()
            .copied()
            .filter(|k| r.has(k))
            .collect();
        for key in inline {
            r.problem(
                key,
                "cannot be combined with connection (the named connection defines the broker)",
            );
        }
        return match connections.get(name) {
            Some(spec) => {
                let mut spec = spec.clone();
                if let Some(db) = db {
                    spec.db = db;
                }
                Some(spec)
            }
            None => {
                let known: Vec<&str> = connections.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "the scaler's config defines no connections".to_string()
                } else {
                    format!("known: {}", known.join(", "))
                };
                r.problem(
                    "connection",
                    format!("no connection named {name:?} ({known})"),
                );
                None
            }
        };
    }

    let tls_on = if r.has("brokerTLS") {
        r.bool("brokerTLS", false)
    } else {
        r.bool("enableTLS", false)
    };
    let insecure = r.bool("unsafeSsl", false);
    let tls = tls_on.then_some(TlsSpec {
        insecure,
        ca_file: None,
    });
    let username = r.get("username").map(str::to_string);
    let password = r.secret("password");

    let endpoint = if let Some(master) = r.get("sentinelMaster") {
        let list = r.get("addresses").or_else(|| r.get("address"));
        let Some(list) = list else {
            r.problem(
                "addresses",
                "sentinelMaster needs the sentinels in addresses (host:port,host:port)",
            );
            return None;
        };
        let mut sentinels = Vec::new();
        for item in list.split(',').filter(|s| !s.trim().is_empty()) {
            sentinels.push(parse_host_port(r, "addresses", item)?);
        }
        if sentinels.is_empty() {
            r.problem("addresses", "lists no sentinel");
            return None;
        }
        Endpoint::Sentinel {
            master: master.to_string(),
            sentinels,
            username: r.get("sentinelUsername").map(str::to_string),
            password: r.secret("sentinelPassword"),
        }
    } else if let Some(addr) = r.get("address").or_else(|| r.get("addresses")) {
        let key = if r.has("address") {
            "address"
        } else {
            "addresses"
        };
        let mut items = addr.split(',').map(str::trim).filter(|s| !s.is_empty());
        let first = items.next().unwrap_or_default();
        if items.next().is_some() {
            r.problem(
                key,
                "a standalone broker takes one host:port (use sentinelMaster for Sentinel)",
            );
        }
        Endpoint::Direct(parse_host_port(r, key, first)?)
    } else if let Some(host) = r.get("host") {
        let port = match r.get("port") {
            None => DEFAULT_REDIS_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    r.problem("port", format!("must be a port number 1-65535, got {p:?}"));
                    return None;
                }
            },
        };
        Endpoint::Direct(HostPort {
            host: host.to_string(),
            port,
        })
    } else {
        r.problem(
            "address",
            "no broker given: set address (host:port), host and port, sentinelMaster with addresses, or connection",
        );
        return None;
    };
    Some(BrokerSpec {
        endpoint,
        db: db.unwrap_or(0),
        username,
        password,
        tls,
    })
}

fn parse_layout(r: &mut Reader<'_>) -> Layout {
    let prefix = r
        .map
        .get("keyPrefix")
        .cloned()
        .unwrap_or_default()
        .into_bytes();
    let separator = match r.map.get("prioritySeparator").filter(|s| !s.is_empty()) {
        None => DEFAULT_SEPARATOR.to_vec(),
        Some(text) => match unescape(text) {
            Ok(sep) if !sep.is_empty() => sep,
            Ok(_) => {
                r.problem("prioritySeparator", "must not be empty");
                DEFAULT_SEPARATOR.to_vec()
            }
            Err(msg) => {
                r.problem("prioritySeparator", msg);
                DEFAULT_SEPARATOR.to_vec()
            }
        },
    };
    let priority_steps = match r.get("prioritySteps") {
        None => DEFAULT_PRIORITY_STEPS.to_vec(),
        Some(text) => {
            let parsed: Result<Vec<u32>, _> =
                text.split(',').map(|s| s.trim().parse::<u32>()).collect();
            match parsed {
                Ok(mut steps) if !steps.is_empty() && steps.iter().all(|s| *s <= 255) => {
                    steps.sort_unstable();
                    steps.dedup();
                    steps
                }
                _ => {
                    r.problem(
                        "prioritySteps",
                        format!("must be a comma-separated list of integers 0-255, got {text:?}"),
                    );
                    DEFAULT_PRIORITY_STEPS.to_vec()
                }
            }
        }
    };
    Layout {
        prefix,
        separator,
        priority_steps,
    }
}

/// Turns the escaped text form (`\x06\x16`, `\\`) into bytes; other characters stand for
/// their UTF-8 bytes.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 => out.push(b),
                    _ => return Err(format!("bad escape \\x{hex} in {text:?} (want \\xHH)")),
                }
            }
            other => {
                let shown = other.map(String::from).unwrap_or_default();
                return Err(format!(
                    "bad escape \\{shown} in {text:?} (use \\xHH or \\\\)"
                ));
            }
        }
    }
    Ok(out)
}

fn parse_queues(r: &mut Reader<'_>) -> Vec<String> {
    let queues = r.get("queues");
    let list_name = r.get("listName");
    let text = match (queues, list_name) {
        (Some(q), Some(l)) if q != l => {
            r.problem(
                "listName",
                "is an alias for one queue; give either queues or listName",
            );
            q
        }
        (Some(q), _) => q,
        (None, Some(l)) => {
            if l.contains(',') {
                r.problem("listName", "names one queue; use queues for several");
            }
            l
        }
        (None, None) => DEFAULT_QUEUE,
    };
    let mut out: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() {
            r.problem("queues", format!("has an empty queue name in {text:?}"));
        } else if !out.iter().any(|q| q == name) {
            out.push(name.to_string());
        }
    }
    if out.is_empty() {
        out.push(DEFAULT_QUEUE.to_string());
    }
    out
}

fn parse_policy(r: &mut Reader<'_>) -> PolicySettings {
    let mode = r.get("mode").unwrap_or("backlog");
    let list_length = r.number("listLength", DEFAULT_LIST_LENGTH, MIN_TARGET, true);
    let activation = r.number(
        "activationListLength",
        DEFAULT_ACTIVATION_LIST_LENGTH,
        0.0,
        true,
    );
    match mode {
        "latency" => parse_latency(r, activation),
        other => {
            if other != "backlog" {
                r.problem(
                    "mode",
                    format!("unknown mode {other:?} (supported: backlog, latency)"),
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
    let required = |r: &mut Reader<'_>, key: &str, what: &str| {
        if r.has(key) {
            r.number(key, 1.0, MIN_TARGET, true)
        } else {
            r.problem(key, format!("is required with mode: latency ({what})"));
            1.0
        }
    };
    let concurrency = required(r, "concurrency", "tasks one worker pod runs at once");
    let target_latency = required(
        r,
        "targetLatency",
        "seconds a task may wait before it starts",
    );
    let task_duration = r
        .has("taskDuration")
        .then(|| r.number("taskDuration", 1.0, 0.0, false));
    let min_headroom = r.number("minHeadroom", DEFAULT_MIN_HEADROOM, 0.0, true);
    PolicySettings::Latency(LatencySettings {
        concurrency,
        target_latency,
        task_duration,
        min_headroom,
        activation_list_length: activation,
    })
}

/// `workerHostnames`: a non-empty glob or prefix of printable characters.
fn parse_worker_hostnames(r: &mut Reader<'_>) -> Option<String> {
    let v = r.get("workerHostnames")?;
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        r.problem(
            "workerHostnames",
            format!("must be a hostname glob or prefix without spaces, got {v:?}"),
        );
        return None;
    }
    Some(v.to_string())
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

/// Parsed settings cached by metadata content.
#[derive(Default)]
pub struct TriggerCache {
    entries: Mutex<HashMap<BTreeMap<String, String>, Arc<TriggerSettings>>>,
}

impl TriggerCache {
    /// Parses `metadata` (or returns the cached result for the same content).
    pub fn get(
        &self,
        metadata: &HashMap<String, String>,
        connections: &NamedConnections,
    ) -> Result<Arc<TriggerSettings>, MetadataError> {
        let key: BTreeMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(hit) = self.lock().get(&key) {
            return Ok(hit.clone());
        }
        let settings = Arc::new(parse(metadata, connections)?);
        let mut entries = self.lock();
        if entries.len() >= CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(key, settings.clone());
        Ok(settings)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<BTreeMap<String, String>, Arc<TriggerSettings>>> {
        // A poisoned cache holds only immutable parsed values: keep using it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
