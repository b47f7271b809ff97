//! Validation of the collected raw configuration: one pass, every problem recorded with
//! where the value came from (file key, environment variable or flag).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    Config, LogFormat, Raw, RawConfig, RawValue, ServerTls, DEFAULT_ADMIN_LISTEN,
    DEFAULT_GRPC_LISTEN, DEFAULT_IDLE_EXPIRY_SECS, DEFAULT_RECONCILE_PERIOD_SECS,
    DEFAULT_REDIS_COMMAND_TIMEOUT_SECS, DEFAULT_REDIS_CONNECT_TIMEOUT_SECS,
    DEFAULT_SAMPLE_INTERVAL_SECS, DEFAULT_SHUTDOWN_GRACE_SECS, DEFAULT_SIGNAL_WINDOW_SECS,
    DEFAULT_STREAM_RESEND_SECS,
};
use crate::broker::{BrokerSpec, Endpoint, HostPort, NamedConnections, Secret, TlsSpec};
use crate::signals::heartbeat::HeartbeatLimits;

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
                "{origin}: must be IP:port (e.g. {default}), got {text:?}"
            ));
            fallback
        })
    }

    fn seconds(&mut self, raw: Option<&Raw>, default: f64, min: f64, max: f64) -> Duration {
        let Some((text, origin)) = self.text(raw) else {
            return Duration::from_secs_f64(default);
        };
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() && (min..=max).contains(&n) => Duration::from_secs_f64(n),
            _ => {
                self.problems.push(format!(
                    "{origin}: must be a number of seconds from {min} to {max}, got {text:?}"
                ));
                Duration::from_secs_f64(default)
            }
        }
    }

    fn bool(&mut self, raw: Option<&Raw>) -> bool {
        let Some((text, origin)) = self.text(raw) else {
            return false;
        };
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                self.problems
                    .push(format!("{origin}: must be true or false, got {text:?}"));
                false
            }
        }
    }

    /// Reads a file that must exist; `what` says what it should hold.
    fn file(&mut self, text: &str, origin: &str) -> Option<Vec<u8>> {
        match std::fs::read(text) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.problems
                    .push(format!("{origin}: cannot read {text:?}: {e}"));
                None
            }
        }
    }

    /// Reads a PEM file holding at least one certificate.
    fn cert_file(&mut self, raw: Option<&Raw>) -> Option<Vec<u8>> {
        let (text, origin) = self.text(raw)?;
        let bytes = self.file(text, origin)?;
        let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut bytes.as_slice()).collect();
        match certs {
            Ok(c) if !c.is_empty() => Some(bytes),
            _ => {
                self.problems
                    .push(format!("{origin}: {text:?} holds no PEM certificate"));
                None
            }
        }
    }

    fn key_file(&mut self, raw: Option<&Raw>) -> Option<Vec<u8>> {
        let (text, origin) = self.text(raw)?;
        let bytes = self.file(text, origin)?;
        match rustls_pemfile::private_key(&mut bytes.as_slice()) {
            Ok(Some(_)) => Some(bytes),
            _ => {
                self.problems
                    .push(format!("{origin}: {text:?} holds no PEM private key"));
                None
            }
        }
    }

    fn host_port(&mut self, text: &str, origin: &str) -> Option<HostPort> {
        match parse_host_port(text) {
            Some(hp) => Some(hp),
            None => {
                self.problems
                    .push(format!("{origin}: must be host:port, got {text:?}"));
                None
            }
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
            (Some((var, origin)), None) => match env.get(var).filter(|v| !v.is_empty()) {
                Some(v) => Some(Secret::new(v.clone())),
                None => {
                    self.problems.push(format!(
                        "{origin}: environment variable {var} is not set (or empty)"
                    ));
                    None
                }
            },
            (None, Some((path, origin))) => {
                let bytes = self.file(path, origin)?;
                match String::from_utf8(bytes) {
                    Ok(s) => Some(Secret::new(s.trim_end_matches(['\r', '\n']).to_string())),
                    Err(_) => {
                        self.problems
                            .push(format!("{origin}: {path:?} is not UTF-8 text"));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
}

/// `host:port` or `[v6]:port`.
pub(super) fn parse_host_port(text: &str) -> Option<HostPort> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => rest.split_once("]:")?,
        None => text.rsplit_once(':').filter(|(h, _)| !h.contains(':'))?,
    };
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    (!host.is_empty()).then(|| HostPort {
        host: host.to_string(),
        port,
    })
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
                .push(format!("{origin}: must be text or json, got {t:?}"));
            LogFormat::Text
        }
    };
    let tls = validate_tls(&mut c, raw);
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
    let stream_resend = c.seconds(
        top("stream_resend_seconds"),
        DEFAULT_STREAM_RESEND_SECS,
        0.5,
        300.0,
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
    let heartbeat_limits = validate_heartbeat_limits(&mut c, raw);
    let mut connections = NamedConnections::new();
    for (name, fields) in &raw.connections {
        if let Some(spec) = validate_connection(&mut c, name, fields, env) {
            connections.insert(name.clone(), spec);
        }
    }
    Config {
        grpc_listen,
        admin_listen,
        log_format,
        tls,
        sample_interval,
        redis_connect_timeout,
        redis_command_timeout,
        shutdown_grace,
        stream_resend,
        signal_window,
        idle_expiry,
        reconcile_period,
        connections,
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

fn validate_tls(c: &mut Check<'_>, raw: &RawConfig) -> Option<ServerTls> {
    let cert_raw = raw.top.get("tls_cert");
    let key_raw = raw.top.get("tls_key");
    let ca_raw = raw.top.get("tls_client_ca");
    let has = |r: Option<&Raw>| matches!(r.map(|r| &r.value), Some(RawValue::Text(t)) if !t.trim().is_empty());
    let (has_cert, has_key, has_ca) = (has(cert_raw), has(key_raw), has(ca_raw));
    if has_key && !has_cert {
        c.problems.push(format!(
            "{}: a TLS key needs a certificate (tls_cert / --tls-cert)",
            key_raw.map(|r| r.origin.as_str()).unwrap_or("tls_key")
        ));
    }
    if has_cert && !has_key {
        c.problems.push(format!(
            "{}: a TLS certificate needs its key (tls_key / --tls-key)",
            cert_raw.map(|r| r.origin.as_str()).unwrap_or("tls_cert")
        ));
    }
    if has_ca && !has_cert {
        c.problems.push(format!(
            "{}: a client CA (mTLS) needs a server certificate and key (tls_cert, tls_key)",
            ca_raw.map(|r| r.origin.as_str()).unwrap_or("tls_client_ca")
        ));
    }
    let cert = c.cert_file(cert_raw);
    let key = c.key_file(key_raw);
    let ca = c.cert_file(ca_raw);
    match (cert, key) {
        (Some(cert_pem), Some(key_pem)) if has_ca == ca.is_some() => Some(ServerTls {
            cert_pem,
            key_pem,
            client_ca_pem: ca,
        }),
        _ => None,
    }
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
    let endpoint = match (address, master) {
        (Some((_, origin)), Some(_)) => {
            c.problems.push(format!(
                "{origin}: give either address or sentinel_master (with sentinels), not both"
            ));
            None
        }
        (None, None) => {
            c.problems.push(format!(
                "{}: connection {name:?} needs address (host:port) or sentinel_master with sentinels",
                at("address")
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
            c.host_port(text, origin).map(Endpoint::Direct)
        }
        (None, Some((master, _))) => {
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
            let username = c
                .text(fields.get("sentinel_username"))
                .map(|(u, _)| u.to_string());
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
        Some((t, origin)) => match t.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => {
                c.problems
                    .push(format!("{origin}: must be an integer ≥ 0, got {t:?}"));
                0
            }
        },
    };
    let username = c.text(fields.get("username")).map(|(u, _)| u.to_string());
    let password = c.secret(fields, "password", env);
    let tls_on = c.bool(fields.get("tls"));
    let insecure = c.bool(fields.get("insecure_skip_verify"));
    let ca_file = c
        .text(fields.get("ca_file"))
        .map(|(p, o)| (p.to_string(), o.to_string()));
    if let Some((path, origin)) = &ca_file {
        if let Some(bytes) = c.file(path, origin) {
            let ok = rustls_pemfile::certs(&mut bytes.as_slice()).any(|r| r.is_ok());
            if !ok {
                c.problems
                    .push(format!("{origin}: {path:?} holds no PEM certificate"));
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
