//! The scaler's own configuration: file + environment + flags, validated once at start-up.
//!
//! Layers, lowest first: built-in defaults < config file (`--config`, YAML or TOML by
//! extension) < environment `CELERY_SCALER_*` (nested keys with `__`, e.g.
//! `CELERY_SCALER_CONNECTIONS__APP__ADDRESS`) < command-line flags. Raw values are collected
//! as text with their origin, then validated in one pass that reports every problem
//! ([`ConfigErrors`]); `main` prints them and exits 64 before binding anything.
//!
//! Secrets (Redis passwords, the TLS private key) never appear in `Debug` output or errors.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use config::{Environment, File, FileFormat, Source, Value, ValueKind};

use crate::broker::{AccessPolicy, SamplerSettings};
use crate::signals::heartbeat::HeartbeatLimits;
use crate::spec::NamedConnections;

pub use defs::ENV_PREFIX;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// gRPC server TLS material, read and checked at load time.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    /// When set, clients must present a certificate signed by one of these CAs (mTLS).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl ServerTls {
    /// The private key; hand it only to the TLS acceptor.
    pub fn key_pem(&self) -> &[u8] {
        &self.key_pem
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"***")
            .field("mtls", &self.client_ca_pem.is_some())
            .finish()
    }
}

/// Timeouts, connection limits and keepalive of the two ports.
#[derive(Clone, Debug, PartialEq)]
pub struct PortSettings {
    /// A gRPC connection that has not finished TLS and sent the HTTP/2 preface by then is
    /// closed.
    pub grpc_handshake_timeout: Duration,
    /// An admin connection that has not sent a request's headers by then is closed (also
    /// between keep-alive requests).
    pub admin_header_timeout: Duration,
    /// Connections over these are closed as soon as they are accepted.
    pub grpc_max_connections: u32,
    pub admin_max_connections: u32,
    /// `StreamIsActive` streams open at once over all connections; one more is refused
    /// (`RESOURCE_EXHAUSTED`).
    pub grpc_max_streams: u32,
    /// HTTP/2 PING interval and ack timeout on the gRPC port: dead peers are dropped.
    pub grpc_keepalive_interval: Duration,
    pub grpc_keepalive_timeout: Duration,
    /// Idle time before TCP keepalive probes start (then every 10 s, 3 probes).
    pub tcp_keepalive: Duration,
}

impl Default for PortSettings {
    fn default() -> Self {
        Config::default().ports
    }
}

/// The validated configuration of the service.
#[derive(Clone, Debug)]
pub struct Config {
    pub grpc_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub log_format: LogFormat,
    pub tls: Option<ServerTls>,
    pub sample_interval: Duration,
    pub redis_connect_timeout: Duration,
    pub redis_command_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Window over which rates and service times are smoothed.
    pub signal_window: Duration,
    /// Watch sets nobody asked about for this long are dropped.
    pub idle_expiry: Duration,
    /// Full re-read of `unacked` (and re-check of keyspace notifications) at most this often.
    pub reconcile_period: Duration,
    /// Cap on per-ScaledObject and per-queue metric series.
    pub max_series: usize,
    /// Brokers by name, for trigger metadata `connection`.
    pub connections: NamedConnections,
    /// Accepted but deprecated settings, one message each; `serve` logs them as warnings.
    pub warnings: Vec<String>,
    /// Timeouts, connection limits and keepalive of the gRPC and admin ports.
    pub ports: PortSettings,
    /// Which brokers triggers may use (`broker_policy`, `allowed_brokers`, per-connection
    /// `allowed_databases` / `allowed_namespaces`).
    pub access: AccessPolicy,
    /// Bound on brokers sampled in total (named connections not counted).
    pub max_brokers: usize,
    /// Bound on brokers sampled per endpoint (named connections not counted).
    pub max_brokers_per_endpoint: usize,
    /// Bound on Redis lists one sampler reads per tick (distinct queue × priority-step lists
    /// of all its watch sets).
    pub max_watched_lists_per_broker: usize,
    /// Every RPC answers within this bound, UNAVAILABLE if the broker has not answered.
    pub rpc_timeout: Duration,
    /// Bounds on worker heartbeats (`max_worker_concurrency`, `max_tracked_workers`).
    pub heartbeat_limits: HeartbeatLimits,
}

impl Default for Config {
    /// What an empty configuration validates to: every default comes from `defs`.
    fn default() -> Self {
        validate::validate(&RawConfig::default(), &HashMap::new(), &mut Vec::new())
    }
}

impl Config {
    /// Sampler timing derived from the config: the first sample of a new watch set may take a
    /// connect, a round trip and one interval; a sample is served while younger than a few
    /// ticks (at least 10 s).
    pub fn sampler_settings(&self) -> SamplerSettings {
        let first = self.redis_connect_timeout + self.redis_command_timeout + self.sample_interval;
        let max_age = (self.sample_interval * 3 + first).max(Duration::from_secs(10));
        SamplerSettings {
            interval: self.sample_interval,
            connect_timeout: self.redis_connect_timeout,
            command_timeout: self.redis_command_timeout,
            first_sample_timeout: first,
            max_sample_age: max_age,
            signal_window: self.signal_window,
            idle_expiry: self.idle_expiry,
            reconcile_period: self.reconcile_period,
            heartbeat_limits: self.heartbeat_limits,
        }
    }
}

/// Values given on the command line (each also readable from `CELERY_SCALER_<NAME>` through
/// the environment layer).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub grpc_listen: Option<String>,
    pub admin_listen: Option<String>,
    pub log_format: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub tls_client_ca: Option<String>,
}

impl Flags {
    /// The value given for the setting `key`; `None` if `key` has no flag (a unit test checks
    /// that every flagged setting of [`defs::ALL`] is answered here).
    fn get(&self, key: &str) -> Option<&Option<String>> {
        match key {
            "grpc_listen" => Some(&self.grpc_listen),
            "admin_listen" => Some(&self.admin_listen),
            "log_format" => Some(&self.log_format),
            "tls_cert" => Some(&self.tls_cert),
            "tls_key" => Some(&self.tls_key),
            "tls_client_ca" => Some(&self.tls_client_ca),
            _ => None,
        }
    }
}

/// Every problem found while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problems):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// A raw value and where it came from.
#[derive(Clone, Debug)]
struct Raw {
    value: RawValue,
    origin: String,
}

#[derive(Clone, Debug)]
enum RawValue {
    Text(String),
    List(Vec<String>),
}

/// Everything collected from all layers, before validation.
#[derive(Default)]
struct RawConfig {
    top: BTreeMap<String, Raw>,
    connections: BTreeMap<String, BTreeMap<String, Raw>>,
}

/// Loads the file (if any), the `CELERY_SCALER_*` variables of `env` and `flags`, then
/// validates. `env` is also where `password_env` variables are looked up.
pub fn load(
    file: Option<&Path>,
    env: &HashMap<String, String>,
    flags: &Flags,
) -> Result<Config, ConfigErrors> {
    let mut raw = RawConfig::default();
    let mut problems = Vec::new();
    if let Some(path) = file {
        absorb_file(path, &mut raw, &mut problems);
    }
    absorb_env(env, &mut raw, &mut problems);
    absorb_flags(flags, &mut raw);
    let config = validate::validate(&raw, env, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors { problems })
    }
}

fn absorb_file(path: &Path, raw: &mut RawConfig, problems: &mut Vec<String>) {
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => FileFormat::Yaml,
        Some("toml") => FileFormat::Toml,
        _ => {
            problems.push(format!(
                "config file {}: unknown format (use a .yaml, .yml or .toml extension)",
                path.display()
            ));
            return;
        }
    };
    if let Err(e) = std::fs::metadata(path) {
        problems.push(format!("config file {}: {e}", path.display()));
        return;
    }
    match File::from(path).format(format).required(true).collect() {
        Ok(map) => {
            let shown = path.display().to_string();
            absorb_map(map, raw, problems, &|key| format!("{key} (in {shown})"));
        }
        Err(e) => problems.push(format!(
            "config file {}: {}",
            path.display(),
            parse_error(&e.to_string())
        )),
    }
}

/// What a parse error of the file may say: where, never what. The parsers quote the offending
/// line, which may hold a password, so only its line and column are kept.
fn parse_error(detail: &str) -> String {
    let number_after = |word: &str| {
        let lower = detail.to_ascii_lowercase();
        let start = lower.find(word)? + word.len();
        let digits: String = lower[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u64>().ok()
    };
    match (number_after("line "), number_after("column ")) {
        (Some(line), Some(col)) => format!(
            "syntax error at line {line}, column {col} (the line is not shown: it may hold a secret)"
        ),
        (Some(line), None) => {
            format!("syntax error at line {line} (the line is not shown: it may hold a secret)")
        }
        _ => "cannot be parsed (details not shown: they may quote a secret)".to_string(),
    }
}

fn absorb_env(env: &HashMap<String, String>, raw: &mut RawConfig, problems: &mut Vec<String>) {
    let ours: config::Map<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}_")))
        // The config file path is read by the command line, not by this layer.
        .filter(|(k, _)| k.as_str() != "CELERY_SCALER_CONFIG")
        .filter(|(k, _)| !is_service_link(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let source = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .source(Some(ours));
    match source.collect() {
        Ok(map) => absorb_map(map, raw, problems, &|key| {
            format!("{ENV_PREFIX}_{}", key.replace('.', "__").to_uppercase())
        }),
        Err(e) => problems.push(format!("environment: {e}")),
    }
}

/// Whether `key` is one of the variables Kubernetes injects for every Service of the
/// namespace (`enableServiceLinks`): a Service named `celery-scaler` yields
/// `CELERY_SCALER_SERVICE_HOST`, `CELERY_SCALER_PORT_9090_TCP_ADDR` and so on, which are not
/// settings and must not fail start-up.
fn is_service_link(key: &str) -> bool {
    if key.ends_with("_SERVICE_HOST") || key.contains("_SERVICE_PORT") {
        return true;
    }
    if key.ends_with("_PORT") {
        return true;
    }
    // …_PORT_<number>_<TCP|UDP|SCTP>[_PROTO|_PORT|_ADDR]
    let Some((_, tail)) = key.rsplit_once("_PORT_") else {
        return false;
    };
    let mut parts = tail.split('_');
    let number = parts
        .next()
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let proto = parts
        .next()
        .is_some_and(|p| matches!(p, "TCP" | "UDP" | "SCTP"));
    let rest: Vec<&str> = parts.collect();
    number
        && proto
        && (rest.is_empty() || matches!(rest.as_slice(), ["PROTO"] | ["PORT"] | ["ADDR"]))
}

fn absorb_flags(flags: &Flags, raw: &mut RawConfig) {
    for setting in defs::ALL.iter().filter(|s| s.flag) {
        let (Some(Some(v)), Some(flag)) = (flags.get(setting.key), setting.flag_name()) else {
            continue;
        };
        raw.top.insert(
            setting.key.to_string(),
            Raw {
                value: RawValue::Text(v.clone()),
                origin: flag,
            },
        );
    }
}

/// Folds one layer's key/value map into `raw`; `origin` names a dotted key's source.
fn absorb_map(
    map: config::Map<String, Value>,
    raw: &mut RawConfig,
    problems: &mut Vec<String>,
    origin: &dyn Fn(&str) -> String,
) {
    let mut keys: Vec<_> = map.into_iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in keys {
        if key == "connections" {
            absorb_connections(value, raw, problems, origin);
            continue;
        }
        // The environment source yields flat dotted keys: `connections.<name>.<field>`.
        if let Some(rest) = key.strip_prefix("connections.") {
            match rest.split_once('.') {
                Some((name, field)) if !field.contains('.') => {
                    let mut table = config::Map::new();
                    table.insert(field.to_string(), value);
                    let mut outer = config::Map::new();
                    outer.insert(name.to_string(), Value::new(None, ValueKind::Table(table)));
                    absorb_connections(
                        Value::new(None, ValueKind::Table(outer)),
                        raw,
                        problems,
                        origin,
                    );
                }
                _ => problems.push(format!("{}: unknown setting", origin(&key))),
            }
            continue;
        }
        if !defs::is_known(defs::Scope::Top, &key) {
            problems.push(format!("{}: unknown setting", origin(&key)));
            continue;
        }
        match to_raw(value, origin(&key)) {
            Ok(r) => {
                raw.top.insert(key, r);
            }
            Err(p) => problems.push(p),
        }
    }
}

fn absorb_connections(
    value: Value,
    raw: &mut RawConfig,
    problems: &mut Vec<String>,
    origin: &dyn Fn(&str) -> String,
) {
    let table = match value.into_table() {
        Ok(t) => t,
        Err(_) => {
            problems.push(format!(
                "{}: must be a map of named connections",
                origin("connections")
            ));
            return;
        }
    };
    let mut names: Vec<_> = table.into_iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, conn) in names {
        let path = format!("connections.{name}");
        let fields = match conn.into_table() {
            Ok(t) => t,
            Err(_) => {
                problems.push(format!("{}: must be a map of settings", origin(&path)));
                continue;
            }
        };
        let entry = raw.connections.entry(name.clone()).or_default();
        let mut fields: Vec<_> = fields.into_iter().collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, v) in fields {
            let key_path = format!("{path}.{key}");
            if !defs::is_known(defs::Scope::Connection, &key) {
                problems.push(format!("{}: unknown connection setting", origin(&key_path)));
                continue;
            }
            match to_raw(v, origin(&key_path)) {
                Ok(r) => {
                    entry.insert(key, r);
                }
                Err(p) => problems.push(p),
            }
        }
    }
}

fn to_raw(value: Value, origin: String) -> Result<Raw, String> {
    let value = match value.kind {
        ValueKind::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item.into_string() {
                    Ok(s) => out.push(s),
                    Err(_) => return Err(format!("{origin}: list items must be plain values")),
                }
            }
            RawValue::List(out)
        }
        ValueKind::Table(_) => return Err(format!("{origin}: must be a plain value, not a map")),
        ValueKind::Nil => RawValue::Text(String::new()),
        other => match Value::new(None, other).into_string() {
            Ok(s) => RawValue::Text(s),
            Err(e) => return Err(format!("{origin}: {e}")),
        },
    };
    Ok(Raw { value, origin })
}

pub mod defs;
pub mod text;
mod validate;

#[cfg(test)]
mod tests;
