//! What the scaler knows about each queue at one sampling instant: the input of the policy.
//!
//! Pure data. The broker module fills it from Redis; the policy reads it.

pub mod estimate;
pub mod heartbeat;
pub mod live;
pub mod visibility;

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

/// How far a live estimate can be trusted. Bounded set: the `mode` label of
/// `celery_scaler_signal_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignalMode {
    /// Counted from every event (keyspace notifications).
    Exact,
    /// Counted or estimated from samples, without a known bias.
    Estimated,
    /// Known to under-count: the true value may be much higher (a rate whose events mostly
    /// happen between two samples and leave no trace in Redis).
    LowerBound,
}

impl SignalMode {
    pub fn label(self) -> &'static str {
        match self {
            SignalMode::Exact => "exact",
            SignalMode::Estimated => "estimated",
            SignalMode::LowerBound => "lower-bound",
        }
    }
}

/// One live estimate, where it came from (e.g. `keyspace`, `conservation`, `heartbeat`,
/// `unacked-residence`, `config`) and how far it can be trusted. The source is a bounded
/// label: it ends up on `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub source: &'static str,
    pub mode: SignalMode,
}

impl Estimate {
    /// An estimate in the mode its source implies: `keyspace` is exact, any other estimated.
    pub fn new(value: f64, source: &'static str) -> Self {
        let mode = if source == "keyspace" {
            SignalMode::Exact
        } else {
            SignalMode::Estimated
        };
        Self {
            value,
            source,
            mode,
        }
    }

    /// An estimate known to under-count.
    pub fn lower_bound(value: f64, source: &'static str) -> Self {
        Self {
            value,
            source,
            mode: SignalMode::LowerBound,
        }
    }

    pub fn is_lower_bound(&self) -> bool {
        self.mode == SignalMode::LowerBound
    }

    /// The value when it is usable by the policy: finite and ≥ 0.
    pub fn usable(&self) -> Option<f64> {
        (self.value.is_finite() && self.value >= 0.0).then_some(self.value)
    }
}

/// Per-queue live signals from the background sampler (issue 4). Every field is optional:
/// a missing estimate makes the policy fall back (see `docs/scaling.md`), never fail.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LiveSignals {
    /// The queue these estimates are for (matches [`QueueSignals::name`]).
    pub name: String,
    /// Tasks executing now (heartbeat `active`), in tasks.
    pub running: Option<Estimate>,
    /// Arrival rate λ, in tasks per second.
    pub arrival_rate: Option<Estimate>,
    /// Dequeue (start) rate, in tasks per second.
    pub dequeue_rate: Option<Estimate>,
    /// Mean service time S, in seconds.
    pub service_time: Option<Estimate>,
    /// The 95th percentile of the service time, in seconds: how heavy the tail of task
    /// durations is (optional; the policy falls back to the mean alone).
    pub service_time_p95: Option<Estimate>,
    /// Age of the oldest waiting task, in seconds.
    pub wait: Option<Estimate>,
}
