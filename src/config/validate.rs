//! Validation of the collected raw configuration: one pass, every problem recorded with
//! where the value came from (file key, environment variable or flag).

use std::collections::HashMap;

use super::defs;
use super::raw::RawConfig;
use super::settings::{Config, LogFormat, PortSettings};
use crate::signals::heartbeat::HeartbeatLimits;
use crate::spec::NamedConnections;

mod access;
mod check;
mod connection;
mod tls;

use check::Check;

impl Default for Config {
    /// What an empty configuration validates to: every default comes from `defs`.
    fn default() -> Self {
        validate(&RawConfig::default(), &HashMap::new(), &mut Vec::new())
    }
}

pub(super) fn validate(
    raw: &RawConfig,
    env: &HashMap<String, String>,
    problems: &mut Vec<String>,
) -> Config {
    let mut c = Check { problems };
    let grpc_listen = c.addr(raw, &defs::GRPC_LISTEN);
    let admin_listen = c.addr(raw, &defs::ADMIN_LISTEN);
    let log_format = match c.choice(raw, &defs::LOG_FORMAT) {
        "json" => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let tls = tls::validate_tls(&mut c, raw);
    let sample_interval = c.seconds(raw, &defs::SAMPLE_INTERVAL);
    let redis_connect_timeout = c.seconds(raw, &defs::REDIS_CONNECT_TIMEOUT);
    let redis_command_timeout = c.seconds(raw, &defs::REDIS_COMMAND_TIMEOUT);
    let shutdown_grace = c.seconds(raw, &defs::SHUTDOWN_GRACE);
    let signal_window = c.seconds(raw, &defs::SIGNAL_WINDOW);
    let idle_expiry = c.seconds(raw, &defs::IDLE_EXPIRY);
    let reconcile_period = c.seconds(raw, &defs::RECONCILE_PERIOD);
    let max_series = c.count(raw, &defs::MAX_SERIES);
    let ports = PortSettings {
        grpc_handshake_timeout: c.seconds(raw, &defs::GRPC_HANDSHAKE_TIMEOUT),
        admin_header_timeout: c.seconds(raw, &defs::ADMIN_HEADER_TIMEOUT),
        grpc_max_connections: c.count(raw, &defs::GRPC_MAX_CONNECTIONS),
        grpc_max_streams: c.count(raw, &defs::GRPC_MAX_STREAMS),
        admin_max_connections: c.count(raw, &defs::ADMIN_MAX_CONNECTIONS),
        grpc_keepalive_interval: c.seconds(raw, &defs::GRPC_KEEPALIVE_INTERVAL),
        grpc_keepalive_timeout: c.seconds(raw, &defs::GRPC_KEEPALIVE_TIMEOUT),
        tcp_keepalive: c.seconds(raw, &defs::TCP_KEEPALIVE),
    };
    let heartbeat_limits = HeartbeatLimits {
        max_active: c.count(raw, &defs::MAX_WORKER_CONCURRENCY),
        max_workers: c.count(raw, &defs::MAX_TRACKED_WORKERS),
    };
    let mut connections = NamedConnections::new();
    for (name, fields) in &raw.connections {
        if let Some(spec) = connection::validate_connection(&mut c, name, fields, env) {
            connections.insert(name.clone(), spec);
        }
    }
    let access = access::validate_access(&mut c, raw, &connections);
    Config {
        grpc_listen,
        admin_listen,
        log_format,
        tls,
        sample_interval,
        redis_connect_timeout,
        redis_command_timeout,
        shutdown_grace,
        signal_window,
        idle_expiry,
        reconcile_period,
        max_series,
        connections,
        warnings: deprecated(raw),
        ports,
        access: access.policy,
        max_brokers: access.max_brokers,
        max_brokers_per_endpoint: access.max_brokers_per_endpoint,
        max_watched_lists_per_broker: access.max_watched_lists_per_broker,
        rpc_timeout: access.rpc_timeout,
        heartbeat_limits,
    }
}

/// Settings still accepted so that old configs keep starting, but ignored.
fn deprecated(raw: &RawConfig) -> Vec<String> {
    raw.top
        .get(defs::STREAM_RESEND.key)
        .map(|r| {
            format!(
                "{}: deprecated and ignored; StreamIsActive now pushes only when a trigger \
                 turns active (HTTP/2 keepalive holds idle streams open)",
                r.origin
            )
        })
        .into_iter()
        .collect()
}
