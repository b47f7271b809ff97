//! Validation of the access settings: `broker_policy`, `allowed_brokers`, the broker bounds,
//! `rpc_timeout_seconds`, and each connection's `allowed_databases` / `allowed_namespaces`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::check::{or_list, Check};
use crate::broker::{
    AccessPolicy, BrokerLimits, BrokerMode, BrokerRule, BrokerSpec, ConnectionAccess,
    NamedConnections,
};
use crate::config::defs::{self, Kind};
use crate::config::raw::{list_items as items, Raw, RawConfig};
use crate::config::text::shown;
use crate::config::Config;

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

pub(super) fn validate_access(
    c: &mut Check<'_>,
    raw: &RawConfig,
    connections: &NamedConnections,
) -> Access {
    let top = |k: &str| raw.top.get(k);
    let mode = match c.top(raw, &defs::BROKER_POLICY) {
        None => BrokerMode::default(),
        Some((t, origin)) => BrokerMode::parse(t).unwrap_or_else(|| {
            let choices = match defs::BROKER_POLICY.kind {
                Kind::Choice { choices } => choices,
                _ => &[],
            };
            c.problems.push(format!(
                "{origin}: must be {}, got {}",
                or_list(choices),
                shown(t)
            ));
            BrokerMode::default()
        }),
    };
    let mut rules = Vec::new();
    for (text, origin) in items(top(defs::ALLOWED_BROKERS.key)) {
        match BrokerRule::parse(&text) {
            Ok(rule) => rules.push(rule),
            Err(why) => c.problems.push(format!(
                "{origin}: {}: {why} (e.g. redis-*.apps.svc:6379/0-3)",
                shown(&text)
            )),
        }
    }
    if let Some(origin) = top(defs::ALLOWED_BROKERS.key).map(|r| r.origin.clone()) {
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
        max_brokers: c.count(raw, &defs::MAX_BROKERS),
        max_brokers_per_endpoint: c.count(raw, &defs::MAX_BROKERS_PER_ENDPOINT),
        max_watched_lists_per_broker: c.count(raw, &defs::MAX_WATCHED_LISTS_PER_BROKER),
        rpc_timeout: c.seconds(raw, &defs::RPC_TIMEOUT),
    }
}

fn connection_access(
    c: &mut Check<'_>,
    fields: &BTreeMap<String, Raw>,
    own_db: i64,
) -> ConnectionAccess {
    let mut databases = Vec::new();
    for (text, origin) in items(fields.get(defs::CONN_ALLOWED_DATABASES.key)) {
        match text.parse::<i64>() {
            Ok(n) if n >= 0 && text.bytes().all(|b| b.is_ascii_digit()) => databases.push(n),
            _ => c.problems.push(format!(
                "{origin}: {} is not a DB number (integers ≥ 0)",
                shown(&text)
            )),
        }
    }
    if databases.is_empty() {
        databases.push(own_db);
    }
    let mut namespaces = Vec::new();
    for (text, origin) in items(fields.get(defs::CONN_ALLOWED_NAMESPACES.key)) {
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
