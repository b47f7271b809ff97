//! What the live workers matching one pattern report together ([`WorkerSummary`]), and the
//! bounds it puts on the rates credited from it.

use super::MAX_STARTS_PER_SLOT;
use crate::signals::estimate::littles_law;

/// What the live workers matching one pattern report together.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WorkerSummary {
    pub workers: usize,
    /// Σ `active` (latest heartbeats).
    pub running: u64,
    /// Σ task starts per second over workers with a rate yet.
    pub start_rate: Option<f64>,
    /// Σ time-averaged `active` over the window.
    pub busy: f64,
    /// Σ task starts per second over the same heartbeats as `busy` (smoothed, no fast path).
    pub busy_start_rate: f64,
    /// Σ task starts per second over the book's window: a worker heard for less than the
    /// window counts its starts over the whole window (it started none before it came up),
    /// so the sum compares with a rate the list counted over the same window.
    pub window_start_rate: f64,
    /// The most slots these workers can keep busy: workers × the per-worker maximum.
    pub capacity: f64,
    /// Seconds none of these workers started a task, as far as all their latest heartbeats
    /// tell: from the latest beat of any with a start to the earliest of their latest beats
    /// (0 when they overlap). Workers that never started one (`processed` 0, fresh pods) add
    /// no start.
    pub starts_quiet_for: f64,
    /// The earliest of these workers' latest beats: their rates describe the time up to it
    /// at least, and up to their own latest beats, none later than now.
    pub rates_as_of: f64,
    /// The longest time between two beats of one worker that showed starts, over these
    /// workers: gaps the flow of starts left before (at least those of the flow together,
    /// so a quiet judged against it is no sooner a stop).
    pub starts_longest_gap: f64,
}

impl WorkerSummary {
    /// Service time by Little's law over these workers: mean busy slots / start rate, both
    /// over the same heartbeats.
    pub fn service_time(&self) -> Option<f64> {
        littles_law(self.busy, self.busy_start_rate)
    }

    /// `rate` limited so that `rate × service_time` (the busy slots it implies, with the
    /// service time taken as at least 1 / [`MAX_STARTS_PER_SLOT`], as the policy does) stays
    /// within the workers' capacity: what they started cannot have kept more slots busy than
    /// exist.
    pub fn bounded_rate(&self, rate: f64, service_time: f64) -> f64 {
        let s = service_time.max(1.0 / MAX_STARTS_PER_SLOT);
        if rate * s > self.capacity {
            self.capacity / s
        } else {
            rate
        }
    }
}
