//! [`ScalerError`]: what one evaluation can fail with; the gRPC module maps it to status codes.

use crate::broker::{AccessDenied, BrokerError};
use crate::trigger::MetadataError;

/// Errors of one evaluation; the gRPC module maps them to status codes.
#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("unknown metricName {asked:?}: this trigger serves {expected:?}")]
    UnknownMetric { asked: String, expected: String },
    /// The broker policy refuses this trigger's broker (same text for every refusal).
    #[error("{0}")]
    Denied(AccessDenied),
}
