//! [`Check`]: turns raw text into typed values, recording every problem with its origin;
//! shared by the validation of the top-level settings, the TLS files, the connections and the
//! access settings.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::defs::{Kind, Setting};
use crate::config::raw::{Raw, RawConfig, RawValue};
use crate::config::text::{parse_bool, parse_number, parse_uint, shown};
use crate::spec::{HostPort, Secret};

/// Collects problems while turning raw text into typed values.
pub(super) struct Check<'a> {
    pub(super) problems: &'a mut Vec<String>,
}

impl Check<'_> {
    pub(super) fn text<'r>(&mut self, raw: Option<&'r Raw>) -> Option<(&'r str, &'r str)> {
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
    pub(super) fn top<'r>(
        &mut self,
        raw: &'r RawConfig,
        setting: &Setting,
    ) -> Option<(&'r str, &'r str)> {
        self.text(raw.top.get(setting.key))
    }

    /// An [`Kind::Address`] setting.
    pub(super) fn addr(&mut self, raw: &RawConfig, setting: &Setting) -> SocketAddr {
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
    pub(super) fn seconds(&mut self, raw: &RawConfig, setting: &Setting) -> Duration {
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
    pub(super) fn count<T: TryFrom<u64> + Default>(
        &mut self,
        raw: &RawConfig,
        setting: &Setting,
    ) -> T {
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
    pub(super) fn choice(&mut self, raw: &RawConfig, setting: &Setting) -> &'static str {
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

    pub(super) fn bool(&mut self, raw: Option<&Raw>) -> bool {
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
    pub(super) fn file(&mut self, text: &str, origin: &str) -> Option<Vec<u8>> {
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
    pub(super) fn secret_file(&mut self, text: &str, origin: &str) -> Option<Vec<u8>> {
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
    pub(super) fn cert_file(&mut self, raw: Option<&Raw>) -> Option<Vec<u8>> {
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

    pub(super) fn key_file(&mut self, raw: Option<&Raw>) -> Option<Vec<u8>> {
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

    pub(super) fn host_port(&mut self, text: &str, origin: &str) -> Option<HostPort> {
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
    pub(super) fn name(&mut self, text: &str, origin: &str, max: usize) {
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
    pub(super) fn secret(
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

/// `a`, `a or b`, `a, b or c`.
pub(super) fn or_list(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
