//! Validation of the collected raw configuration: one pass, every problem recorded with
//! where the value came from (file key, environment variable or flag).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use super::defs::{self, Kind, Setting};
use super::text::{parse_bool, parse_number, parse_uint, shown};
use super::{Config, LogFormat, PortSettings, Raw, RawConfig, RawValue, ServerTls};
use crate::broker::{HostPort, NamedConnections, Secret};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

mod access;
mod connection;

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

    /// A top-level setting's text, if set and not blank.
    fn top<'r>(&mut self, raw: &'r RawConfig, setting: &Setting) -> Option<(&'r str, &'r str)> {
        self.text(raw.top.get(setting.key))
    }

    /// An [`Kind::Address`] setting.
    fn addr(&mut self, raw: &RawConfig, setting: &Setting) -> SocketAddr {
        let default = setting.default_text();
        let fallback = default
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let Some((text, origin)) = self.top(raw, setting) else {
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

    /// A [`Kind::Seconds`] setting, within its bounds.
    fn seconds(&mut self, raw: &RawConfig, setting: &Setting) -> Duration {
        let Kind::Seconds { default, min, max } = setting.kind else {
            self.problems
                .push(format!("{}: not a seconds setting (a bug)", setting.key));
            return Duration::ZERO;
        };
        let Some((text, origin)) = self.top(raw, setting) else {
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

    /// A [`Kind::Count`] setting, within its bounds, in the type of its field.
    fn count<T: TryFrom<u64> + Default>(&mut self, raw: &RawConfig, setting: &Setting) -> T {
        let Kind::Count { default, min, max } = setting.kind else {
            self.problems
                .push(format!("{}: not a count setting (a bug)", setting.key));
            return T::default();
        };
        let n = match self.top(raw, setting) {
            None => default,
            Some((text, origin)) => match parse_uint(text, max).filter(|n| *n >= min) {
                Some(n) => n,
                None => {
                    self.problems.push(format!(
                        "{origin}: must be a whole number from {min} to {max}, got {}",
                        shown(text)
                    ));
                    default
                }
            },
        };
        T::try_from(n).unwrap_or_default()
    }

    /// A [`Kind::Choice`] setting: one of its words (any ASCII case), else its default.
    fn choice(&mut self, raw: &RawConfig, setting: &Setting) -> &'static str {
        let Kind::Choice { choices } = setting.kind else {
            self.problems
                .push(format!("{}: not a choice setting (a bug)", setting.key));
            return "";
        };
        let default = setting.default_text();
        let Some((text, origin)) = self.top(raw, setting) else {
            return default;
        };
        match choices.iter().find(|c| c.eq_ignore_ascii_case(text)) {
            Some(c) => c,
            None => {
                self.problems.push(format!(
                    "{origin}: must be {}, got {}",
                    or_list(choices),
                    shown(text)
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

/// A list value: a YAML/TOML list, or comma-separated text (environment); blank items
/// dropped, each with its origin.
fn list_items(raw: Option<&Raw>) -> Vec<(String, String)> {
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

/// `a`, `a or b`, `a, b or c`.
fn or_list(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
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

mod tls;
