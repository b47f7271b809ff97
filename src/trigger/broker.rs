//! The broker part of trigger metadata: a named `connection`, or an inline address, host and
//! port, or Sentinel, with credentials and TLS. Host:port parsing is [`HostPort::parse`]'s.

use super::keys::{DEFAULT_REDIS_PORT, INLINE_BROKER_KEYS};
use super::limits::{MAX_DATABASE_INDEX, MAX_NAME_BYTES, MAX_SENTINELS, MAX_USERNAME_BYTES};
use super::reader::Reader;
use crate::config::text::{parse_uint, shown};
use crate::spec::{BrokerSpec, Endpoint, HostPort, NamedConnections, TlsSpec};

/// Parses `key`'s `text` as one `host:port`, recording a problem when it is not one.
fn host_port(r: &mut Reader<'_>, key: &str, text: &str) -> Option<HostPort> {
    match HostPort::parse(text) {
        Ok(hp) => Some(hp),
        Err(why) => {
            r.problem(
                key,
                format!("must be host:port ({why}), got {}", shown(text)),
            );
            None
        }
    }
}

/// A comma-separated list of `host:port`; an empty item (`a:1,` or `a:1,,b:2`) is refused.
fn host_ports(r: &mut Reader<'_>, key: &str, list: &str) -> Option<Vec<HostPort>> {
    let items: Vec<&str> = list.split(',').map(str::trim).collect();
    if items.iter().any(|s| s.is_empty()) {
        r.problem(key, format!("has an empty entry in {}", shown(list)));
        return None;
    }
    if items.len() > MAX_SENTINELS {
        r.problem(
            key,
            format!(
                "lists {} addresses; at most {MAX_SENTINELS} are accepted",
                items.len()
            ),
        );
        return None;
    }
    let parsed: Vec<Option<HostPort>> = items.iter().map(|s| host_port(r, key, s)).collect();
    parsed.into_iter().collect()
}

/// A printable name without spaces of at most `max` bytes (usernames, master names).
fn name(r: &mut Reader<'_>, key: &str, max: usize) -> Option<String> {
    let v = r.get(key)?;
    if v.len() > max {
        r.problem(
            key,
            format!("is {} bytes; at most {max} are accepted", v.len()),
        );
        return None;
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        r.problem(
            key,
            format!(
                "must not hold spaces or control characters, got {}",
                shown(v)
            ),
        );
        return None;
    }
    Some(v.to_string())
}

fn database_index(r: &mut Reader<'_>) -> Option<i64> {
    let v = r.get("databaseIndex")?;
    match parse_uint(v, MAX_DATABASE_INDEX) {
        Some(n) => i64::try_from(n).ok(),
        None => {
            r.problem(
                "databaseIndex",
                format!(
                    "must be an integer 0-{MAX_DATABASE_INDEX}, got {}",
                    shown(v)
                ),
            );
            None
        }
    }
}

fn named(
    r: &mut Reader<'_>,
    name: &str,
    db: Option<i64>,
    connections: &NamedConnections,
) -> Option<BrokerSpec> {
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
    match connections.get(name) {
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
                format!("no connection named {} ({known})", shown(name)),
            );
            None
        }
    }
}

pub(super) fn parse_broker(
    r: &mut Reader<'_>,
    connections: &NamedConnections,
) -> Option<BrokerSpec> {
    let db = database_index(r);
    if let Some(conn) = r.get("connection") {
        return named(r, conn, db, connections);
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
    let username = name(r, "username", MAX_USERNAME_BYTES);
    let password = r.secret("password");
    let endpoint = endpoint(r)?;
    Some(BrokerSpec {
        endpoint,
        db: db.unwrap_or(0),
        username,
        password,
        tls,
    })
}

fn endpoint(r: &mut Reader<'_>) -> Option<Endpoint> {
    if r.has("sentinelMaster") {
        return sentinel(r);
    }
    for key in ["sentinelUsername", "sentinelPassword"] {
        if r.has(key) {
            r.problem(key, "applies only with sentinelMaster");
        }
    }
    if let Some(addr) = r.get("address").or_else(|| r.get("addresses")) {
        let key = if r.has("address") {
            "address"
        } else {
            "addresses"
        };
        if addr.contains(',') {
            r.problem(
                key,
                "a standalone broker takes one host:port (use sentinelMaster for Sentinel)",
            );
            return None;
        }
        return host_port(r, key, addr).map(Endpoint::Direct);
    }
    if let Some(host) = r.get("host") {
        let port = match r.get("port") {
            None => DEFAULT_REDIS_PORT,
            Some(p) => match HostPort::parse_port(p) {
                Ok(p) => p,
                Err(why) => {
                    r.problem("port", format!("{why}, got {}", shown(p)));
                    return None;
                }
            },
        };
        return match HostPort::from_parts(host, &port.to_string()) {
            Ok(hp) => Some(Endpoint::Direct(hp)),
            Err(why) => {
                r.problem("host", format!("{why}, got {}", shown(host)));
                None
            }
        };
    }
    r.problem(
        "address",
        "no broker given: set address (host:port), host and port, sentinelMaster with addresses, or connection",
    );
    None
}

fn sentinel(r: &mut Reader<'_>) -> Option<Endpoint> {
    let master = name(r, "sentinelMaster", MAX_NAME_BYTES);
    let Some(list) = r.get("addresses").or_else(|| r.get("address")) else {
        r.problem(
            "addresses",
            "sentinelMaster needs the sentinels in addresses (host:port,host:port)",
        );
        return None;
    };
    let key = if r.has("addresses") {
        "addresses"
    } else {
        "address"
    };
    let sentinels = host_ports(r, key, list)?;
    Some(Endpoint::Sentinel {
        master: master?,
        sentinels,
        username: name(r, "sentinelUsername", MAX_USERNAME_BYTES),
        password: r.secret("sentinelPassword"),
    })
}
