//! How broker failures reach a client: errors of an inline broker (one named by trigger
//! metadata) are hidden behind an id, so that the scaler cannot be used as a port scanner or
//! a password oracle; errors of a named connection (operator-configured) keep their detail.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::LazyLock;
use std::time::Duration;

use tracing::{info, warn};

use super::error::ScalerError;
use crate::broker::{AccessPolicy, BrokerError, BrokerMode, BrokerSpec, NamedConnections};

/// Keys the ids: stable per broker within one process, not guessable from outside.
static ID_KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// Start-up log line of the policy; a warning in mode `any`.
pub(super) fn log_policy(policy: &AccessPolicy) {
    let mode = policy.mode.as_str();
    let connections = policy.connections.len();
    if policy.mode == BrokerMode::Any {
        warn!(
            broker_policy = mode,
            connections,
            "any ScaledObject may point the scaler at any host:port; set broker_policy: named-only (see docs/security.md)"
        );
    } else {
        info!(
            broker_policy = mode,
            rules = policy.rules.len(),
            connections,
            "broker policy"
        );
    }
}

/// The error of an evaluation that waited `bound` (the RPC deadline) without an answer.
pub(super) fn deadline(spec: &BrokerSpec, bound: Duration) -> BrokerError {
    BrokerError::Timeout {
        broker: spec.label(),
        timeout_ms: u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Whether `spec` is one of the named connections (on any DB): its endpoint and credentials
/// come from the operator, not from the metadata.
fn is_named(connections: &NamedConnections, spec: &BrokerSpec) -> bool {
    connections.values().any(|c| {
        c.endpoint == spec.endpoint
            && c.username == spec.username
            && c.password == spec.password
            && c.tls == spec.tls
    })
}

/// Maps a broker error for the client. Named connections keep the detail. For inline
/// brokers every target-dependent error (connect, auth, timeout, command, Sentinel, stale)
/// becomes [`BrokerError::Hidden`], logged here with its detail; bounds and shutdown say
/// nothing about the target and stay as they are.
pub(super) fn shield(
    connections: &NamedConnections,
    spec: &BrokerSpec,
    e: BrokerError,
) -> ScalerError {
    if is_named(connections, spec)
        || matches!(
            e,
            BrokerError::Limit { .. } | BrokerError::ShuttingDown | BrokerError::Hidden { .. }
        )
    {
        return ScalerError::Broker(e);
    }
    let id = format!("{:08x}", ID_KEY.hash_one(spec.label()) as u32);
    warn!(id = %id, kind = e.kind(), error = %e, "inline broker unavailable (the client sees only the id)");
    ScalerError::Broker(BrokerError::Hidden {
        id,
        detail: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Secret;

    #[test]
    fn inline_errors_read_the_same_named_ones_keep_detail() {
        let spec = BrokerSpec::direct("10.1.2.3", 6379);
        let errors = [
            BrokerError::Connect {
                broker: spec.label(),
                detail: "Connection refused".into(),
            },
            BrokerError::Auth {
                broker: spec.label(),
                detail: "invalid username or password (WRONGPASS)".into(),
            },
            BrokerError::Timeout {
                broker: spec.label(),
                timeout_ms: 2000,
            },
            BrokerError::Command {
                broker: spec.label(),
                detail: "protocol error".into(),
            },
        ];
        let none = NamedConnections::new();
        let texts: Vec<String> = errors
            .iter()
            .map(|e| shield(&none, &spec, e.clone()).to_string())
            .collect();
        assert!(texts.iter().all(|t| *t == texts[0]), "{texts:?}");
        assert!(!texts[0].contains("10.1.2.3") && texts[0].contains("id="));

        let mut named = NamedConnections::new();
        let mut app = spec.clone();
        app.password = Some(Secret::new("pw"));
        named.insert("app".into(), app.clone());
        app.db = 3;
        let kept = shield(&named, &app, errors[1].clone());
        assert!(kept.to_string().contains("WRONGPASS"), "{kept}");
        // Same address, other password: inline, hidden.
        let mut other = app.clone();
        other.password = Some(Secret::new("guess"));
        assert!(matches!(
            shield(&named, &other, errors[1].clone()),
            ScalerError::Broker(BrokerError::Hidden { .. })
        ));
    }
}
