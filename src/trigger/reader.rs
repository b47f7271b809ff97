//! [`Reader`]: reads trigger metadata key by key and records every problem, each naming its
//! key ([`Problem`], [`MetadataError`]); values of secret keys are never echoed.

use std::collections::HashMap;
use std::fmt;

use super::keys::{FROM_ENV_KEYS, SECRET_KEYS};
use crate::config::text::{parse_bool, parse_number, shown};
use crate::spec::Secret;

/// One invalid metadata value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// All problems found in one metadata map.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct MetadataError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid trigger metadata: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

/// A key as an error may name it: as is when printable ASCII, else quoted and escaped.
fn key_shown(key: &str) -> String {
    if key.bytes().all(|b| b.is_ascii_graphic()) {
        key.to_string()
    } else {
        shown(key)
    }
}

/// Reads keys from the map, recording problems as it goes.
pub(super) struct Reader<'a> {
    pub(super) map: &'a HashMap<String, String>,
    pub(super) problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key_shown(key),
            message: message.into(),
        });
    }

    /// The value of `key` or of `<key>FromEnv`, trimmed; `None` when absent or empty.
    pub(super) fn get(&mut self, key: &str) -> Option<&'a str> {
        let direct = self
            .map
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty());
        let from_env = if FROM_ENV_KEYS.contains(&key) {
            let env_key = format!("{key}FromEnv");
            self.map
                .get(&env_key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        } else {
            None
        };
        match (direct, from_env) {
            (Some(_), Some(_)) => {
                self.problem(key, format!("give either {key} or {key}FromEnv, not both"));
                direct
            }
            (a, b) => a.or(b),
        }
    }

    pub(super) fn has(&mut self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Describes a bad value: truncated, and never a secret.
    fn shown(key: &str, value: &str) -> String {
        if SECRET_KEYS.contains(&key) {
            "(value hidden)".to_string()
        } else {
            format!("got {}", shown(value))
        }
    }

    pub(super) fn bool(&mut self, key: &str, default: bool) -> bool {
        let Some(v) = self.get(key) else {
            return default;
        };
        parse_bool(v).unwrap_or_else(|| {
            let shown = Self::shown(key, v);
            self.problem(key, format!("must be true or false, {shown}"));
            default
        })
    }

    /// A finite number in `min..=max`.
    pub(super) fn number(&mut self, key: &str, default: f64, min: f64, max: f64) -> f64 {
        let Some(v) = self.get(key) else {
            return default;
        };
        parse_number(v, min, max).unwrap_or_else(|| {
            let shown = Self::shown(key, v);
            self.problem(
                key,
                format!("must be a number ≥ {min} and ≤ {max}, {shown}"),
            );
            default
        })
    }

    pub(super) fn secret(&mut self, key: &str) -> Option<Secret> {
        self.get(key).map(Secret::new)
    }
}
