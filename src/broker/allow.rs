//! Who may point the scaler where: the broker access policy (config `broker_policy`,
//! `allowed_brokers`, and each named connection's `allowed_databases` / `allowed_namespaces`).
//!
//! Pure data and a pure check, applied to every trigger after its metadata is parsed and
//! before any connection is opened. A refusal carries no detail about the target: the
//! caller gets the same [`AccessDenied`] text whether the host exists or not, and the reason
//! is only logged (see `Scaler::settings`).
//!
//! Architecture Invariant: a named connection's credentials are used only on its allowed
//! databases and from its allowed namespaces, whatever the mode.

use std::collections::BTreeMap;
use std::fmt;

use crate::signals::heartbeat::glob_match;
use crate::spec::{BrokerSpec, Endpoint, HostPort, NamedConnections};

/// How inline brokers (trigger metadata `address`, `host`, `sentinelMaster`…) are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BrokerMode {
    /// Any inline broker (backward compatible; the scaler warns at start-up).
    #[default]
    Any,
    /// Inline brokers only where every endpoint and the DB match an `allowed_brokers` rule.
    AllowList,
    /// Only named `connection`s; inline brokers are refused.
    NamedOnly,
}

impl BrokerMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerMode::Any => "any",
            BrokerMode::AllowList => "allow-list",
            BrokerMode::NamedOnly => "named-only",
        }
    }

    /// Parses the config spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "any" => Some(BrokerMode::Any),
            "allow-list" | "allowlist" | "allow_list" => Some(BrokerMode::AllowList),
            "named-only" | "namedonly" | "named_only" => Some(BrokerMode::NamedOnly),
            _ => None,
        }
    }
}

/// One `allowed_brokers` rule: `host-glob:port/dbs`, e.g. `redis-*.apps.svc:6379/0-3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRule {
    /// Lowercase host, exact or a glob with `*` and `?`.
    host: String,
    /// `None`: any port (`*`).
    port: Option<u16>,
    /// Inclusive DB range; `None`: any DB (`*` or no `/` part).
    dbs: Option<(i64, i64)>,
}

impl BrokerRule {
    /// Parses `host:port[/db]` where port may be `*` and db is `*`, `N` or `N-M`; IPv6 hosts
    /// in brackets (`[::1]:6379/0`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (endpoint, dbs) = match text.rsplit_once('/') {
            Some((e, d)) => (e, Some(d)),
            None => (text, None),
        };
        let (host, port) = match endpoint.strip_prefix('[') {
            Some(rest) => rest
                .split_once("]:")
                .ok_or("IPv6 hosts are written [addr]:port")?,
            None => endpoint
                .rsplit_once(':')
                .filter(|(h, _)| !h.contains(':'))
                .ok_or("must be host:port[/db]")?,
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the host must be a non-empty name, IP or glob".into());
        }
        let port = match port {
            "*" => None,
            p => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => return Err("the port must be 1-65535 or *".into()),
            },
        };
        let dbs = match dbs.map(str::trim) {
            None | Some("*") => None,
            Some(d) => Some(parse_db_range(d)?),
        };
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
            dbs,
        })
    }

    fn allows_endpoint(&self, hp: &HostPort) -> bool {
        let host = hp.host.to_ascii_lowercase();
        let host_ok = if self.host.contains(['*', '?']) {
            glob_match(&self.host, &host)
        } else {
            self.host == host
        };
        host_ok && self.port.is_none_or(|p| p == hp.port)
    }

    fn allows_db(&self, db: i64) -> bool {
        self.dbs.is_none_or(|(lo, hi)| (lo..=hi).contains(&db))
    }
}

fn parse_db_range(text: &str) -> Result<(i64, i64), String> {
    let number = |s: &str| {
        s.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0 && s.bytes().all(|b| b.is_ascii_digit()))
    };
    let range = match text.split_once('-') {
        Some((lo, hi)) => number(lo).zip(number(hi)).filter(|(lo, hi)| lo <= hi),
        None => number(text).map(|n| (n, n)),
    };
    range.ok_or_else(|| "the DB must be *, N or N-M (N ≤ M, integers ≥ 0)".to_string())
}

/// What one named connection may be used for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionAccess {
    /// DBs a trigger may select with `databaseIndex` (the connection's own `database` when
    /// not configured).
    pub databases: Vec<i64>,
    /// Namespaces (exact names or globs) whose ScaledObjects may use the connection; empty:
    /// every namespace.
    pub namespaces: Vec<String>,
}

/// The whole policy, built once from the config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    pub mode: BrokerMode,
    /// `allowed_brokers` (used in [`BrokerMode::AllowList`]).
    pub rules: Vec<BrokerRule>,
    /// Per named connection; a connection missing here may use only its own DB.
    pub connections: BTreeMap<String, ConnectionAccess>,
}

/// Who asks: KEDA on behalf of a ScaledObject's namespace, or the operator (`inspect`, whose
/// user already holds the config and its credentials; namespace pins do not apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester<'a> {
    Namespace(&'a str),
    Operator,
}

/// A refused trigger. Its text is the same for every refusal (nothing about the target);
/// `reason` is for the scaler's log only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessDenied {
    pub reason: String,
}

impl fmt::Display for AccessDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ACCESS_DENIED_TEXT)
    }
}

/// The one message a refused trigger gets.
pub const ACCESS_DENIED_TEXT: &str =
    "this broker is not allowed for this ScaledObject by the scaler's broker_policy \
     (ask the scaler's operator; the reason is in the scaler's log)";

impl AccessPolicy {
    /// Gives every connection of `connections` without an entry the default: its own DB
    /// only, from every namespace.
    pub fn fill_defaults(&mut self, connections: &NamedConnections) {
        for (name, spec) in connections {
            self.connections
                .entry(name.clone())
                .or_insert_with(|| ConnectionAccess {
                    databases: vec![spec.db],
                    namespaces: Vec::new(),
                });
        }
    }

    /// Checks `spec` (reached through named connection `connection`, or inline when `None`)
    /// for `who`.
    pub fn check(
        &self,
        connection: Option<&str>,
        spec: &BrokerSpec,
        who: Requester<'_>,
    ) -> Result<(), AccessDenied> {
        let deny = |reason: String| Err(AccessDenied { reason });
        match connection {
            Some(name) => {
                let access = self.connections.get(name);
                let dbs_ok = match access {
                    Some(a) => a.databases.contains(&spec.db),
                    None => false,
                };
                if !dbs_ok {
                    return deny(format!("connection {name:?}: DB {} not allowed", spec.db));
                }
                let namespaces = access.map(|a| a.namespaces.as_slice()).unwrap_or(&[]);
                if let Requester::Namespace(ns) = who {
                    if !namespaces.is_empty() && !namespaces.iter().any(|p| namespace_match(p, ns))
                    {
                        return deny(format!("connection {name:?}: namespace not allowed"));
                    }
                }
                Ok(())
            }
            None => match self.mode {
                BrokerMode::Any => Ok(()),
                BrokerMode::NamedOnly => {
                    deny("inline broker refused (broker_policy: named-only)".into())
                }
                BrokerMode::AllowList => {
                    let endpoints: Vec<&HostPort> = match &spec.endpoint {
                        Endpoint::Direct(hp) => vec![hp],
                        Endpoint::Sentinel { sentinels, .. } => sentinels.iter().collect(),
                    };
                    let allowed = !endpoints.is_empty()
                        && endpoints.iter().all(|hp| {
                            self.rules
                                .iter()
                                .any(|r| r.allows_endpoint(hp) && r.allows_db(spec.db))
                        });
                    if allowed {
                        Ok(())
                    } else {
                        deny(format!(
                            "inline broker {:?} matches no allowed_brokers rule",
                            spec.label()
                        ))
                    }
                }
            },
        }
    }
}

fn namespace_match(pattern: &str, namespace: &str) -> bool {
    if pattern.contains(['*', '?']) {
        glob_match(pattern, namespace)
    } else {
        pattern == namespace
    }
}

#[cfg(test)]
mod tests;
