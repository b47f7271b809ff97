//! The scaler's own configuration: file + environment + flags, validated once at start-up.
//!
//! Layers, lowest first: built-in defaults < config file (`--config`, YAML or TOML by
//! extension) < environment `CELERY_SCALER_*` (nested keys with `__`, e.g.
//! `CELERY_SCALER_CONNECTIONS__APP__ADDRESS`) < command-line flags. Raw values are collected
//! as text with their origin, then validated in one pass that reports every problem
//! ([`ConfigErrors`]); `main` prints them and exits 64 before binding anything.
//!
//! Secrets (Redis passwords, the TLS private key) never appear in `Debug` output or errors.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use config::{Environment, File, FileFormat, Source, Value, ValueKind};

pub use defs::ENV_PREFIX;
pub use settings::{Config, LogFormat, PortSettings, ServerTls};

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
mod raw;
mod settings;
pub mod text;
mod validate;

use raw::{Raw, RawConfig, RawValue};

#[cfg(test)]
mod tests;
