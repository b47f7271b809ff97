//! What the scaler knows about each queue at one sampling instant: the input of the policy.
//!
//! Pure data. The broker module fills it from Redis; the policy reads it.

pub mod estimate;
pub mod heartbeat;
pub mod live;
pub mod source;
pub mod visibility;

use serde::Serialize;

pub use source::{SignalMode, Source, NO_ESTIMATE};

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

/// One live estimate, where it came from ([`Source`]) and how far it can be trusted
/// ([`SignalMode`]). Both are bounded labels: they end up on `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub source: Source,
    pub mode: SignalMode,
}

impl Estimate {
    /// An estimate in the mode its source implies ([`Source::mode`]).
    pub fn new(value: f64, source: Source) -> Self {
        Self {
            value,
            source,
            mode: source.mode(),
        }
    }

    /// An estimate known to under-count.
    pub fn lower_bound(value: f64, source: Source) -> Self {
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
    /// λ without the burst fast path: the window's mean arrival rate, which the latency
    /// policy sizes its steady flow on (a burst reaches it through the backlog). `None`
    /// falls back to `arrival_rate`.
    pub arrival_rate_steady: Option<Estimate>,
    /// Seconds the arrival rate is read over (the window, or less in the sampler's first
    /// seconds); `None` when unknown. With it the latency policy can tell a rate that rests
    /// on a few arrivals from a flow.
    pub rate_window: Option<f64>,
    /// Seconds since an arrival was last counted, as of the sampler's tick: with it the
    /// latency policy can tell a flow that has stopped (a burst that is over) from one that
    /// goes on. Where heartbeats credit starts the list never showed, the smaller of that
    /// and the workers' own quiet. `None` when unknown; not exported.
    pub arrivals_quiet_for: Option<f64>,
    /// The longest time between counted arrivals earlier in the window, seconds: a quiet no
    /// longer than this the flow has left before (batches), so it is no sign of a stop.
    /// Where heartbeats credit starts, at least the longest such gap of any worker's starts.
    /// `None` when unknown; not exported.
    pub arrivals_longest_gap: Option<f64>,
    /// Dequeue (start) rate, in tasks per second.
    pub dequeue_rate: Option<Estimate>,
    /// Mean service time S, in seconds.
    pub service_time: Option<Estimate>,
    /// The 95th percentile of the service time, in seconds: how heavy the tail of task
    /// durations is (optional; the policy falls back to the mean alone). With source
    /// `unacked-residence` it is the p95 time entries stayed in `unacked`: under early ack
    /// (tasks leave `unacked` as they start) that is how long prefetched tasks waited in a
    /// pod's buffer, not a service time (the policy reads it as such, `docs/scaling.md`).
    pub service_time_p95: Option<Estimate>,
    /// The mean service time over a long window (S̄, weighted by starts: Little's law over
    /// it), which latency mode sizes its steady flow on; not exported. `None`: the policy
    /// uses `service_time` alone.
    pub service_time_sizing: Option<Estimate>,
    /// The start rate `service_time` was measured against (its Little's law: S·r is the
    /// slots busy over the window), tasks per second; not exported.
    pub service_rate: Option<f64>,
    /// Age of the oldest waiting task, in seconds; mode `lower-bound` where the arrivals of
    /// the tasks waiting were not all seen (the sampler's first reading of a list that holds
    /// tasks, entries reconciled in after a subscription, unreadable delivery tags).
    pub wait: Option<Estimate>,
    /// Worker pods consuming the queue now: live heartbeats matching `workerHostnames`.
    pub workers: Option<Estimate>,
    /// Seconds from the sample these estimates come from to when the policy is asked (0:
    /// asked at the sample). The estimates stay as of the sample, where the backlog they
    /// pair with was read; a task found waiting has waited up to this much longer, which
    /// the rule that lets tasks wait at zero (`podStartup`) adds. Not exported.
    #[serde(skip)]
    pub sampled_ago: f64,
    /// Seconds between the sampler's last two ticks, when known: an age dated from the
    /// mid-point of two ticks may read up to half of it short, so the `podStartup` rule
    /// keeps at least one and a half of it in reserve. Not exported.
    #[serde(skip)]
    pub tick: Option<f64>,
}

impl LiveSignals {
    /// These signals asked `elapsed` seconds after they were sampled (see
    /// [`LiveSignals::sampled_ago`]; a clock that stepped back counts as 0).
    pub fn asked_after(mut self, elapsed: f64) -> Self {
        self.sampled_ago = if elapsed.is_finite() {
            elapsed.max(0.0)
        } else {
            0.0
        };
        self
    }
}
