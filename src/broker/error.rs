//! Errors from talking to a broker. Messages name the broker by its credential-free label
//! and never contain a secret; `kind()` is a bounded metric label.

use std::time::Duration;

use redis::{ErrorKind, RedisError};

use crate::spec::Secret;

/// Why the scaler could not answer from a broker.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("broker {broker}: cannot connect: {detail}")]
    Connect { broker: String, detail: String },
    #[error("broker {broker}: authentication failed: {detail}")]
    Auth { broker: String, detail: String },
    #[error("broker {broker}: no answer within {timeout_ms} ms")]
    Timeout { broker: String, timeout_ms: u64 },
    #[error("broker {broker}: command failed: {detail}")]
    Command { broker: String, detail: String },
    #[error("broker {broker}: sentinel: {detail}")]
    Sentinel { broker: String, detail: String },
    #[error("broker {broker}: latest sample is {age_ms} ms old (bound {bound_ms} ms)")]
    Stale {
        broker: String,
        age_ms: u64,
        bound_ms: u64,
    },
    /// A new broker would exceed `max_brokers` or `max_brokers_per_endpoint`.
    #[error("broker {broker}: refused: {detail}")]
    Limit { broker: String, detail: String },
    /// An inline broker (given in trigger metadata) failed. The client sees only `id`, so
    /// the answer cannot tell a closed port from a non-Redis server or a wrong password; the
    /// scaler logs `detail` (credential-free) with the same id.
    #[error("broker unavailable: see the scaler's log, id={id}")]
    Hidden {
        id: String,
        detail: Box<BrokerError>,
    },
    #[error("the scaler is shutting down")]
    ShuttingDown,
}

impl BrokerError {
    /// Bounded label for `celery_scaler_redis_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerError::Connect { .. } => "connect",
            BrokerError::Auth { .. } => "auth",
            BrokerError::Timeout { .. } => "timeout",
            BrokerError::Command { .. } => "command",
            BrokerError::Sentinel { .. } => "sentinel",
            BrokerError::Stale { .. } => "stale",
            BrokerError::Limit { .. } => "limit",
            BrokerError::Hidden { detail, .. } => detail.kind(),
            BrokerError::ShuttingDown => "shutdown",
        }
    }
}

/// Maps a Redis error to a [`BrokerError`]; the message never contains `password`.
pub(crate) fn map_error(
    label: &str,
    e: &RedisError,
    password: Option<&Secret>,
    timeout: Duration,
) -> BrokerError {
    let broker = label.to_string();
    let code = e.code().unwrap_or_default();
    let detail = scrub(&e.to_string(), password);
    if e.is_timeout() {
        return BrokerError::Timeout {
            broker,
            timeout_ms: millis(timeout),
        };
    }
    if e.kind() == ErrorKind::AuthenticationFailed
        || matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM")
    {
        let why = match code {
            "NOPERM" => "the user lacks a permission the scaler needs (NOPERM)",
            "NOAUTH" => "the server requires a password (NOAUTH)",
            _ => "invalid username or password (WRONGPASS)",
        };
        return BrokerError::Auth {
            broker,
            detail: why.to_string(),
        };
    }
    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        return BrokerError::Connect { broker, detail };
    }
    BrokerError::Command { broker, detail }
}

fn scrub(text: &str, password: Option<&Secret>) -> String {
    match password.map(Secret::expose) {
        Some(pw) if !pw.is_empty() => text.replace(pw, "***"),
        _ => text.to_string(),
    }
}

/// `d` in whole milliseconds, saturated.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_say_so_and_never_carry_the_password() {
        let pw = Secret::new("hunter2-pw");
        let e = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "auth failed",
            "hunter2-pw rejected".to_string(),
        ));
        let mapped = map_error("h:1/0", &e, Some(&pw), Duration::from_secs(1));
        assert_eq!(mapped.kind(), "auth");
        let text = mapped.to_string();
        assert!(
            text.contains("authentication failed") && !text.contains("hunter2"),
            "{text}"
        );
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused hunter2-pw",
        ));
        let mapped = map_error("h:1/0", &io, Some(&pw), Duration::from_secs(1));
        assert_eq!(mapped.kind(), "connect");
        assert!(!mapped.to_string().contains("hunter2"));
        let slow = RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        assert_eq!(
            map_error("h:1/0", &slow, None, Duration::from_millis(1500)),
            BrokerError::Timeout {
                broker: "h:1/0".into(),
                timeout_ms: 1500
            }
        );
    }
}
