//! Validation of the access settings: `broker_policy`, `allowed_brokers`, the broker bounds,
//! `rpc_timeout_seconds`, and each connection's `allowed_databases` / `allowed_namespaces`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Check, Raw, RawConfig, RawValue};
use crate::broker::{
    AccessPolicy, BrokerLimits, BrokerMode, BrokerRule, BrokerSpec, ConnectionAccess,
    NamedConnections, DEFAULT_MAX_BROKERS, DEFAULT_MAX_BROKERS_PER_ENDPOINT,
    DEFAULT_MAX_WATCHED_LISTS_PER_BROKER,
};
use crate::config::{Config, DEFAULT_RPC_TIMEOUT_SECS};

/// Top-level keys read here.
pub(in crate::config) const ACCESS_KEYS: &[&str] = &[
    "broker_policy",
    "allowed_brokers",
    "max_brokers",
    "max_brokers_per_endpoint",
    "max_watched_lists_per_broker",
    "rpc_timeout_seconds",
];

/// Keys of one named connection read here.
pub(in crate::config) const ACCESS_CONNECTION_KEYS: &[&str] =
    &["allowed_databases", "allowed_namespaces"];

/// Upper bound of `max_brokers` and `max_brokers_per_endpoint`.
const MAX_BROKERS_LIMIT: usize = 10_000;
/// Upper bound of `max_watched_lists_per_broker`.
const MAX_WATCHED_LISTS_LIMIT: usize = 1_000_000;
/// Longest namespace pattern (Kubernetes names are at most 63 characters).
const MAX_NAMESPACE_PATTERN: usize = 253;

impl Config {
    /// Bounds on sampled brokers; the named connections, on their allowed DBs, are exempt.
    pub fn broker_limits(&self) -> BrokerLimits {
        let mut exempt = Vec::new();
        for (name, spec) in &self.connections {
            let dbs = self
                .access
                .connections
                .get(name)
                .map(|a| a.databases.as_slice());
            for db in dbs.unwrap_or(std::slice::from_ref(&spec.db)) {
                exempt.push(BrokerSpec {
                    db: *db,
                    ..spec.clone()
                });
            }
        }
        BrokerLimits {
            max_brokers: self.max_brokers,
            max_brokers_per_endpoint: self.max_brokers_per_endpoint,
            exempt,
            max_watched_lists_per_broker: self.max_watched_lists_per_broker,
        }
    }
}

/// The validated access settings.
pub(super) struct Access {
    pub policy: AccessPolicy,
    pub max_brokers: usize,
    pub max_brokers_per_endpoint: usize,
    pub max_watched_lists_per_broker: usize,
    pub rpc_timeout: Duration,
}

/// A list value: a YAML/TOML list, or comma-separated text (environment).
fn items(raw: Option<&Raw>) -> Vec<(String, String)> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let list: Vec<String> = match &raw.value {
        RawValue::List(items) => items.clone(),
        RawValue::Text(t) => t.split(',').map(str::to_string).collect(),
    };
    list.into_iter()
        .map(|s| (s.trim().to_string(), raw.origin.clone()))
        .filter(|(s, _)| !s.is_empty())
        .collect()
}

fn count(c: &mut Check<'_>, raw: Option<&Raw>, default: usize, max: usize) -> usize {
    let Some((text, origin)) = c.text(raw) else {
        return default;
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => n,
        _ => {
            c.problems.push(format!(
                "{origin}: must be an integer from 1 to {max}, got {text:?}"
            ));
            default
        }
    }
}

pub(super) fn validate_access(
    c: &mut Check<'_>,
    raw: &RawConfig,
    connections: &NamedConnections,
) -> Access {
    let top = |k: &str| raw.top.get(k);
    let mode = match c.text(top("broker_policy")) {
        None => BrokerMode::default(),
        Some((t, origin)) => BrokerMode::parse(t).unwrap_or_else(|| {
            c.problems.push(format!(
                "{origin}: must be any, allow-list or named-only, got {t:?}"
            ));
            BrokerMode::default()
        }),
    };
    let mut rules = Vec::new();
    for (text, origin) in items(top("allowed_brokers")) {
        match BrokerRule::parse(&text) {
            Ok(rule) => rules.push(rule),
            Err(why) => c.problems.push(format!(
                "{origin}: {text:?}: {why} (e.g. redis-*.apps.svc:6379/0-3)"
            )),
        }
    }
    if let Some(origin) = top("allowed_brokers").map(|r| r.origin.clone()) {
        if mode != BrokerMode::AllowList && !rules.is_empty() {
            c.problems.push(format!(
                "{origin}: allowed_brokers is used only with broker_policy: allow-list"
            ));
        }
    }
    if mode == BrokerMode::AllowList && rules.is_empty() {
        c.problems.push(
            "broker_policy: allow-list needs at least one allowed_brokers rule (or use named-only)"
                .to_string(),
        );
    }
    let mut access = BTreeMap::new();
    for (name, fields) in &raw.connections {
        let Some(spec) = connections.get(name) else {
            continue;
        };
        access.insert(name.clone(), connection_access(c, fields, spec.db));
    }
    Access {
        policy: AccessPolicy {
            mode,
            rules,
            connections: access,
        },
        max_brokers: count(
            c,
            top("max_brokers"),
            DEFAULT_MAX_BROKERS,
            MAX_BROKERS_LIMIT,
        ),
        max_brokers_per_endpoint: count(
            c,
            top("max_brokers_per_endpoint"),
            DEFAULT_MAX_BROKERS_PER_ENDPOINT,
            MAX_BROKERS_LIMIT,
        ),
        max_watched_lists_per_broker: count(
            c,
            top("max_watched_lists_per_broker"),
            DEFAULT_MAX_WATCHED_LISTS_PER_BROKER,
            MAX_WATCHED_LISTS_LIMIT,
        ),
        rpc_timeout: c.seconds(
            top("rpc_timeout_seconds"),
            DEFAULT_RPC_TIMEOUT_SECS,
            0.1,
            60.0,
        ),
    }
}

fn connection_access(
    c: &mut Check<'_>,
    fields: &BTreeMap<String, Raw>,
    own_db: i64,
) -> ConnectionAccess {
    let mut databases = Vec::new();
    for (text, origin) in items(fields.get("allowed_databases")) {
        match text.parse::<i64>() {
            Ok(n) if n >= 0 && text.bytes().all(|b| b.is_ascii_digit()) => databases.push(n),
            _ => c.problems.push(format!(
                "{origin}: {text:?} is not a DB number (integers ≥ 0)"
            )),
        }
    }
    if databases.is_empty() {
        databases.push(own_db);
    }
    let mut namespaces = Vec::new();
    for (text, origin) in items(fields.get("allowed_namespaces")) {
        let ok = text.len() <= MAX_NAMESPACE_PATTERN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*' | b'?'));
        if ok {
            namespaces.push(text);
        } else {
            c.problems.push(format!(
                "{origin}: a namespace or glob (letters, digits, -, ., *, ?) is expected"
            ));
        }
    }
    ConnectionAccess {
        databases,
        namespaces,
    }
}

#[cfg(test)]
mod tests;
