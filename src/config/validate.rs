//! Validation of the collected raw configuration: one pass, every problem recorded with
//! where the value came from (file key, environment variable or flag).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::text::{parse_bool, parse_number, parse_uint, shown};
use super::{
    Config, LogFormat, Raw, RawConfig, RawValue, ServerTls, DEFAULT_ADMIN_LISTEN,
    DEFAULT_GRPC_LISTEN, DEFAULT_IDLE_EXPIRY_SECS, DEFAULT_RECONCILE_PERIOD_SECS,
    DEFAULT_REDIS_COMMAND_TIMEOUT_SECS, DEFAULT_REDIS_CONNECT_TIMEOUT_SECS,
    DEFAULT_SAMPLE_INTERVAL_SECS, DEFAULT_SHUTDOWN_GRACE_SECS, DEFAULT_SIGNAL_WINDOW_SECS,
};
use super::{
    PortSettings, DEFAULT_ADMIN_HEADER_TIMEOUT_SECS, DEFAULT_ADMIN_MAX_CONNECTIONS,
    DEFAULT_GRPC_HANDSHAKE_TIMEOUT_SECS, DEFAULT_GRPC_KEEPALIVE_INTERVAL_SECS,
    DEFAULT_GRPC_KEEPALIVE_TIMEOUT_SECS, DEFAULT_GRPC_MAX_CONNECTIONS, DEFAULT_GRPC_MAX_STREAMS,
    DEFAULT_TCP_KEEPALIVE_SECS,
};
use crate::broker::{BrokerSpec, Endpoint, HostPort, NamedConnections, Secret, TlsSpec};
use crate::trigger::limits::{
    MAX_DATABASE_INDEX, MAX_NAME_BYTES, MAX_SENTINELS, MAX_USERNAME_BYTES,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

mod access;

use crate::signals::heartbeat::HeartbeatLimits;
pub(super) use access::{ACCESS_CONNECTION_KEYS, ACCESS_KEYS};

/// Collects problems while turning raw text into typed values.
struct Check<'a> {
    problems: &'a mut Vec<String>,
}

impl Check<'_> {
    fn text<'r>(&mut self, raw: Option<&'r Raw>) -> Option<(&'r str, &'r str)> {
        let raw = raw?;
        match &raw.value {
            RawValue::Text(t) if t.trim().is_empty() => None,
            RawValue::Text(t) => Some((t.trim(), raw.origin.as_str())),
            RawValue::List(_) => {
                self.problems
                    .push(format!("{}: must be a single value", raw.origin));
                None
            }
        }
    }

    fn addr(&mut self, raw: Option<&Raw>, default: &str) -> SocketAddr {
        let fallback = default
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let Some((text, origin)) = self.text(raw) else {
            return fallback;
        };
        text.parse().unwrap_or_else(|_| {
            self.problems.push(format!(
                "{origin}: must be IP:port (e.g. {default}), got {}",
                shown(text)
            ));
            fallback
        })
    }

    fn seconds(&mut self, raw: Option<&Raw>, default: f64, min: f64, max: f64) -> Duration {
        let Some((text, origin)) = self.text(raw) else {
            return Duration::from_secs_f64(default);
        };
        match parse_number(text, min, max) {
            Some(n) => Duration::from_secs_f64(n),
            None => {
                self.problems.push(format!(
                    "{origin}: must be a number of seconds from {min} to {max}, got {}",
                    shown(text)
                ));
                Duration::from_secs_f64(default)
            }
        }
    }

    fn count(&mut self, raw: Option<&Raw>, default: usize, min: usize, max: usize) -> usize {
        let Some((text, origin)) = self.text(raw) else {
            return default;
        };
        match text.parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.problems.push(format!(
                    "{origin}: must be a whole number from {min} to {max}, got {text:?}"
                ));
                default
            }
        }
    }

    fn bool(&mut self, raw: Option<&Raw>) -> bool {
        let Some((text, origin)) = self.text(raw) else {
            return false;
        };
        parse_bool(text).unwrap_or_else(|| {
            self.problems.push(format!(
                "{origin}: must be true or false, got {}",
                shown(text)
            ));
            false
        })
    }

    /// Reads a file that must exist.
    fn file(&mut self, text: &str, origin: &str) -> Option<Vec<u8>> {
        match std::fs::read(text) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.problems
                    .push(format!("{origin}: cannot read {}: {e}", shown(text)));
                None
            }
        }
    }

    /// Reads a file that holds a credential; the error names the setting, not the path.
    fn secret_file(&mut self, text: &str, origin: &str) -> Option<Vec<u8>> {
        match std::fs::read(text) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.problems.push(format!(
                    "{origin}: cannot read the file it names ({}; path not shown)",
                    e.kind()
                ));
                None
            }
        }
    }

    /// Reads a PEM file holding at least one certificate.
    fn cert_file(&mut self, raw: Option<&Raw>) -> Option<Vec<u8>> {
        let (text, origin) = self.text(raw)?;
        let bytes = self.file(text, origin)?;
        let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
        match certs {
            Ok(c) if !c.is_empty() => Some(bytes),
            _ => {
                self.problems.push(format!(
                    "{origin}: {} holds no PEM certificate",
                    shown(text)
                ));
                None
            }
        }
    }

    fn key_file(&mut self, raw: Option<&Raw>) -> Option<Vec<u8>> {
        let (text, origin) = self.text(raw)?;
        let bytes = self.file(text, origin)?;
        match PrivateKeyDer::from_pem_slice(&bytes) {
            Ok(_) => Some(bytes),
            _ => {
                self.problems.push(format!(
                    "{origin}: {} holds no PEM private key",
                    shown(text)
                ));
                None
            }
        }
    }

    fn host_port(&mut self, text: &str, origin: &str) -> Option<HostPort> {
        match HostPort::parse(text) {
            Ok(hp) => Some(hp),
            Err(why) => {
                self.problems.push(format!(
                    "{origin}: must be host:port ({why}), got {}",
                    shown(text)
                ));
                None
            }
        }
    }

    /// Checks a user or master name: at most `max` bytes, no spaces or control characters
    /// (it reaches logs and the broker label).
    fn name(&mut self, text: &str, origin: &str, max: usize) {
        if text.len() > max {
            self.problems.push(format!(
                "{origin}: is {} bytes; at most {max} are accepted",
                text.len()
            ));
        } else if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            self.problems.push(format!(
                "{origin}: must not hold spaces or control characters, got {}",
                shown(text)
            ));
        }
    }

    /// A secret from `<base>_env` (a variable name) or `<base>_file` (a path).
    fn secret(
        &mut self,
        fields: &BTreeMap<String, Raw>,
        base: &str,
        env: &HashMap<String, String>,
    ) -> Option<Secret> {
        let from_env = self.text(fields.get(&format!("{base}_env")));
        let from_file = self.text(fields.get(&format!("{base}_file")));
        match (from_env, from_file) {
            (Some((_, origin)), Some(_)) => {
                self.problems.push(format!(
                    "{origin}: give either {base}_env or {base}_file, not both"
                ));
                None
            }
            // The variable's name is not echoed: a password pasted here by mistake would be.
            (Some((var, origin)), None) => match env.get(var).filter(|v| !v.is_empty()) {
                Some(v) => Some(Secret::new(v.clone())),
                None => {
                    self.problems.push(format!(
                        "{origin}: the environment variable it names is not set or empty \
                         (name not shown: this key holds a credential reference)"
                    ));
                    None
                }
            },
            (None, Some((path, origin))) => {
                let bytes = self.secret_file(path, origin)?;
                match String::from_utf8(bytes) {
                    Ok(s) => Some(Secret::new(s.trim_end_matches(['\r', '\n']).to_string())),
                    Err(_) => {
                        self.problems
                            .push(format!("{origin}: the file it names is not UTF-8 text"));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
}

pub(super) fn validate(
    raw: &RawConfig,
    env: &HashMap<String, String>,
    problems: &mut Vec<String>,
) -> Config {
    let mut c = Check { problems };
    let top = |k: &str| raw.top.get(k);
    let grpc_listen = c.addr(top("grpc_listen"), DEFAULT_GRPC_LISTEN);
    let admin_listen = c.addr(top("admin_listen"), DEFAULT_ADMIN_LISTEN);
    let log_format = match c.text(top("log_format")) {
        None => LogFormat::Text,
        Some((t, _)) if t.eq_ignore_ascii_case("text") => LogFormat::Text,
        Some((t, _)) if t.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some((t, origin)) => {
            c.problems
                .push(format!("{origin}: must be text or json, got {}", shown(t)));
            LogFormat::Text
        }
    };
    let tls = tls::validate_tls(&mut c, raw);
    let sample_interval = c.seconds(
        top("sample_interval_seconds"),
        DEFAULT_SAMPLE_INTERVAL_SECS,
        0.1,
        10.0,
    );
    let redis_connect_timeout = c.seconds(
        top("redis_connect_timeout_seconds"),
        DEFAULT_REDIS_CONNECT_TIMEOUT_SECS,
        0.1,
        60.0,
    );
    let redis_command_timeout = c.seconds(
        top("redis_command_timeout_seconds"),
        DEFAULT_REDIS_COMMAND_TIMEOUT_SECS,
        0.1,
        60.0,
    );
    let shutdown_grace = c.seconds(
        top("shutdown_grace_seconds"),
        DEFAULT_SHUTDOWN_GRACE_SECS,
        0.0,
        3600.0,
    );
    let signal_window = c.seconds(
        top("signal_window_seconds"),
        DEFAULT_SIGNAL_WINDOW_SECS,
        1.0,
        3600.0,
    );
    let idle_expiry = c.seconds(
        top("idle_expiry_seconds"),
        DEFAULT_IDLE_EXPIRY_SECS,
        10.0,
        86_400.0,
    );
    let reconcile_period = c.seconds(
        top("reconcile_period_seconds"),
        DEFAULT_RECONCILE_PERIOD_SECS,
        1.0,
        86_400.0,
    );
    let max_series = c.count(
        top("max_series"),
        crate::telemetry::DEFAULT_MAX_SERIES,
        100,
        10_000_000,
    );
    let ports = validate_ports(&mut c, raw);
    let heartbeat_limits = validate_heartbeat_limits(&mut c, raw);
    let mut connections = NamedConnections::new();
    for (name, fields) in &raw.connections {
        if let Some(spec) = validate_connection(&mut c, name, fields, env) {
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

/// `max_worker_concurrency` (1–100,000) and `max_tracked_workers` (1–1,000,000).
fn validate_heartbeat_limits(c: &mut Check<'_>, raw: &RawConfig) -> HeartbeatLimits {
    let defaults = HeartbeatLimits::default();
    let mut whole = |key: &str, default: u64, max: u64| {
        let Some((text, origin)) = c.text(raw.top.get(key)) else {
            return default;
        };
        match text.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                let shown: String = text.chars().take(32).collect();
                c.problems.push(format!(
                    "{origin}: must be a whole number from 1 to {max}, got {shown:?}"
                ));
                default
            }
        }
    };
    let max_active = whole("max_worker_concurrency", defaults.max_active, 100_000);
    let max_workers = whole(
        "max_tracked_workers",
        defaults.max_workers as u64,
        1_000_000,
    );
    HeartbeatLimits {
        max_active,
        max_workers: usize::try_from(max_workers).unwrap_or(defaults.max_workers),
    }
}

/// The ports block: timeouts, connection limits, keepalive.
fn validate_ports(c: &mut Check<'_>, raw: &RawConfig) -> PortSettings {
    let top = |k: &str| raw.top.get(k);
    let mut count = |key: &str, default: u32, max: u32| {
        let Some((text, origin)) = c.text(top(key)) else {
            return default;
        };
        match text.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                c.problems.push(format!(
                    "{origin}: must be a whole number from 1 to {max}, got {text:?}"
                ));
                default
            }
        }
    };
    let grpc_max_connections = count(
        "grpc_max_connections",
        DEFAULT_GRPC_MAX_CONNECTIONS,
        1_000_000,
    );
    let admin_max_connections = count(
        "admin_max_connections",
        DEFAULT_ADMIN_MAX_CONNECTIONS,
        1_000_000,
    );
    let grpc_max_streams = count("grpc_max_streams", DEFAULT_GRPC_MAX_STREAMS, 1_000_000);
    PortSettings {
        grpc_handshake_timeout: c.seconds(
            top("grpc_handshake_timeout_seconds"),
            DEFAULT_GRPC_HANDSHAKE_TIMEOUT_SECS,
            0.1,
            300.0,
        ),
        admin_header_timeout: c.seconds(
            top("admin_header_timeout_seconds"),
            DEFAULT_ADMIN_HEADER_TIMEOUT_SECS,
            0.1,
            300.0,
        ),
        grpc_max_connections,
        admin_max_connections,
        grpc_max_streams,
        grpc_keepalive_interval: c.seconds(
            top("grpc_keepalive_interval_seconds"),
            DEFAULT_GRPC_KEEPALIVE_INTERVAL_SECS,
            1.0,
            3600.0,
        ),
        grpc_keepalive_timeout: c.seconds(
            top("grpc_keepalive_timeout_seconds"),
            DEFAULT_GRPC_KEEPALIVE_TIMEOUT_SECS,
            1.0,
            300.0,
        ),
        tcp_keepalive: c.seconds(
            top("tcp_keepalive_seconds"),
            DEFAULT_TCP_KEEPALIVE_SECS,
            1.0,
            7200.0,
        ),
    }
}

/// Settings still accepted so that old configs keep starting, but ignored.
fn deprecated(raw: &RawConfig) -> Vec<String> {
    raw.top
        .get("stream_resend_seconds")
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

fn validate_connection(
    c: &mut Check<'_>,
    name: &str,
    fields: &BTreeMap<String, Raw>,
    env: &HashMap<String, String>,
) -> Option<BrokerSpec> {
    let before = c.problems.len();
    let at = |key: &str| format!("connections.{name}.{key}");
    let address = c.text(fields.get("address"));
    let master = c.text(fields.get("sentinel_master"));
    let sentinels: Vec<(String, String)> = match fields.get("sentinels") {
        None => Vec::new(),
        Some(r) => {
            let items = match &r.value {
                RawValue::List(items) => items.clone(),
                RawValue::Text(t) => t.split(',').map(str::to_string).collect(),
            };
            items
                .into_iter()
                .map(|s| (s.trim().to_string(), r.origin.clone()))
                .filter(|(s, _)| !s.is_empty())
                .collect()
        }
    };
    if sentinels.len() > MAX_SENTINELS {
        c.problems.push(format!(
            "{}: lists {} sentinels; at most {MAX_SENTINELS} are accepted",
            at("sentinels"),
            sentinels.len()
        ));
    }
    let endpoint = match (address, master) {
        (Some((text, origin)), Some(_)) => {
            c.problems.push(format!(
                "{origin}: give either address or sentinel_master (with sentinels), not both"
            ));
            // Check every value anyway, so one pass reports all that is wrong.
            c.host_port(text, origin);
            for (s, origin) in &sentinels {
                c.host_port(s, origin);
            }
            None
        }
        (None, None) => {
            c.problems.push(format!(
                "{}: connection {} needs address (host:port) or sentinel_master with sentinels",
                at("address"),
                shown(name)
            ));
            None
        }
        (Some((text, origin)), None) => {
            if !sentinels.is_empty() {
                c.problems.push(format!(
                    "{}: sentinels are only used with sentinel_master",
                    at("sentinels")
                ));
            }
            for key in [
                "sentinel_username",
                "sentinel_password_env",
                "sentinel_password_file",
            ] {
                if c.text(fields.get(key)).is_some() {
                    c.problems
                        .push(format!("{}: applies only with sentinel_master", at(key)));
                }
            }
            c.host_port(text, origin).map(Endpoint::Direct)
        }
        (None, Some((master, origin))) => {
            c.name(master, origin, MAX_NAME_BYTES);
            if sentinels.is_empty() {
                c.problems.push(format!(
                    "{}: sentinel_master needs at least one sentinel (host:port)",
                    at("sentinels")
                ));
            }
            let hosts: Vec<HostPort> = sentinels
                .iter()
                .filter_map(|(s, origin)| c.host_port(s, origin))
                .collect();
            let username = c.text(fields.get("sentinel_username")).map(|(u, origin)| {
                c.name(u, origin, MAX_USERNAME_BYTES);
                u.to_string()
            });
            let password = c.secret(fields, "sentinel_password", env);
            Some(Endpoint::Sentinel {
                master: master.to_string(),
                sentinels: hosts,
                username,
                password,
            })
        }
    };
    let db = match c.text(fields.get("database")) {
        None => 0,
        Some((t, origin)) => match parse_uint(t, MAX_DATABASE_INDEX) {
            Some(n) => n as i64,
            None => {
                c.problems.push(format!(
                    "{origin}: must be an integer 0-{MAX_DATABASE_INDEX}, got {}",
                    shown(t)
                ));
                0
            }
        },
    };
    let username = c.text(fields.get("username")).map(|(u, origin)| {
        c.name(u, origin, MAX_USERNAME_BYTES);
        u.to_string()
    });
    let password = c.secret(fields, "password", env);
    let tls_on = c.bool(fields.get("tls"));
    let insecure = c.bool(fields.get("insecure_skip_verify"));
    let ca_file = c
        .text(fields.get("ca_file"))
        .map(|(p, o)| (p.to_string(), o.to_string()));
    if let Some((path, origin)) = &ca_file {
        if let Some(bytes) = c.file(path, origin) {
            let ok = CertificateDer::pem_slice_iter(&bytes).any(|r| r.is_ok());
            if !ok {
                c.problems.push(format!(
                    "{origin}: {} holds no PEM certificate",
                    shown(path)
                ));
            }
        }
        if !tls_on {
            c.problems
                .push(format!("{origin}: ca_file needs tls: true"));
        }
    }
    if insecure && !tls_on {
        c.problems.push(format!(
            "{}: insecure_skip_verify needs tls: true",
            at("insecure_skip_verify")
        ));
    }
    let tls = tls_on.then(|| TlsSpec {
        insecure,
        ca_file: ca_file.map(|(p, _)| PathBuf::from(p)),
    });
    if c.problems.len() > before {
        return None;
    }
    Some(BrokerSpec {
        endpoint: endpoint?,
        db,
        username,
        password,
        tls,
    })
}

mod tls;
