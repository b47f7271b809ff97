//! Errors from talking to a broker. Messages name the broker by its credential-free label
//! and never contain a secret; `kind()` is a bounded metric label.

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
