//! What the scaler knows about each queue at one sampling instant: the input of the policy.
//!
//! Pure data. The broker module fills it from Redis; the policy reads it.

pub mod estimate;

use serde::Serialize;

/// Per-queue signals read from the broker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueSignals {
    /// The Celery queue name (without key prefix or priority suffix).
    pub name: String,
    /// Ready messages: Σ LLEN over the queue key and its priority sub-keys.
    pub backlog: u64,
    /// `unacked` entries of this queue that are prefetched or running (no future ETA, not stale).
    pub reserved: u64,
    /// `unacked` entries held until a future ETA: not demand now.
    pub scheduled: u64,
    /// `unacked` entries delivered longer ago than the visibility timeout.
    pub stale: u64,
}
