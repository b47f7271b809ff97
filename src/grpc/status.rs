//! The one mapping from scaler errors to gRPC status codes.
//!
//! | error | code | why |
//! |---|---|---|
//! | invalid trigger metadata, or a `ScaledObjectRef` namespace/name that is not a Kubernetes name | `INVALID_ARGUMENT` | the ScaledObject must change; message names every bad key, never a secret value, and is at most [`MAX_MESSAGE_BYTES`] |
//! | unknown `metricName` | `NOT_FOUND` | the metric asked for is not one this trigger serves (KEDA asks only for names we returned) |
//! | broker unreachable, auth failure, timeout, stale sample, Sentinel failure | `UNAVAILABLE` | the scaler is fine but cannot see the broker now; KEDA retries and `fallback` applies. Timeouts are ours (Redis I/O), not the caller's deadline, so they are `UNAVAILABLE`, not `DEADLINE_EXCEEDED` |
//! | scaler shutting down | `UNAVAILABLE` | retry on another replica |
//! | broker refused by `broker_policy` | `PERMISSION_DENIED` | the ScaledObject (or the scaler's config) must change; one text for every refusal |
//! | inline broker failed (any reason) | `UNAVAILABLE` | text is "see the scaler's log, id=…" only: no port-scan or password oracle |
//! | a new broker would exceed `max_brokers(_per_endpoint)` | `RESOURCE_EXHAUSTED` | not transient like UNAVAILABLE: it lasts until other brokers idle out; KEDA's fallback applies as for any error |

use tonic::{Code, Status};

use crate::broker::BrokerError;
use crate::config::text::shown;
use crate::scaler::ScalerError;

/// Longest status message sent, in bytes. Each echoed value is already cut to a few dozen
/// characters; this bounds the sum (many problems at once) far below the size at which
/// grpc-core clients replace the status with `RESOURCE_EXHAUSTED` (about 20 KB of message).
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// Maps `err` to a status whose message is safe to send (no credentials) and short.
pub fn to_status(err: &ScalerError) -> Status {
    match err {
        ScalerError::Metadata(e) => Status::invalid_argument(bounded(e.to_string())),
        ScalerError::UnknownMetric { asked, expected } => Status::not_found(bounded(format!(
            "unknown metricName {}: this trigger serves {expected:?}",
            shown(asked)
        ))),
        // Broker policy refusals: one text for all (nothing about the target).
        ScalerError::Denied(_) => Status::permission_denied(err.to_string()),
        // Broker bounds: a new broker would exceed max_brokers(_per_endpoint).
        ScalerError::Broker(BrokerError::Limit { .. }) => {
            Status::resource_exhausted(bounded(err.to_string()))
        }
        ScalerError::Broker(e) => Status::unavailable(bounded(broker_message(e))),
    }
}

/// Cuts `message` to [`MAX_MESSAGE_BYTES`] at a character boundary, saying so.
fn bounded(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let total = message.len();
    let mut cut = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(&format!("…(message of {total} bytes cut)"));
    message
}

fn broker_message(e: &BrokerError) -> String {
    match e {
        BrokerError::ShuttingDown => "the scaler is shutting down; retry".to_string(),
        other => other.to_string(),
    }
}

/// Bounded label for `celery_scaler_grpc_requests_total{code}`.
pub fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::{MetadataError, Problem};

    #[test]
    fn mapping() {
        let meta = ScalerError::Metadata(MetadataError {
            problems: vec![Problem {
                key: "listLength".into(),
                message: "must be a number > 0".into(),
            }],
        });
        let s = to_status(&meta);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("listLength"));
        let unknown = ScalerError::UnknownMetric {
            asked: "x".into(),
            expected: "celery-celery".into(),
        };
        assert_eq!(to_status(&unknown).code(), Code::NotFound);
        for e in [
            BrokerError::Timeout {
                broker: "h:1/0".into(),
                timeout_ms: 5,
            },
            BrokerError::Auth {
                broker: "h:1/0".into(),
                detail: "WRONGPASS".into(),
            },
            BrokerError::ShuttingDown,
        ] {
            assert_eq!(to_status(&ScalerError::Broker(e)).code(), Code::Unavailable);
        }
        assert_eq!(code_label(Code::Unavailable), "UNAVAILABLE");
    }

    #[test]
    fn messages_stay_short_whatever_the_input() {
        let many = ScalerError::Metadata(MetadataError {
            problems: (0..500)
                .map(|i| Problem {
                    key: format!("k{i}"),
                    message: "é".repeat(100),
                })
                .collect(),
        });
        let s = to_status(&many);
        assert!(
            s.message().len() < MAX_MESSAGE_BYTES + 100,
            "{}",
            s.message().len()
        );
        assert!(s.message().ends_with("cut)"));
        let unknown = ScalerError::UnknownMetric {
            asked: "m".repeat(1_000_000),
            expected: "celery-celery".into(),
        };
        let s = to_status(&unknown);
        assert!(s.message().len() < 1024, "{}", s.message().len());
    }
}
