//! The tail of the service-time distribution from the residence of `unacked` entries.

use std::collections::VecDeque;

/// Departures kept for the quantile: enough for a p95 to rest on ~6 tail samples, few
/// enough that a watched list costs ≤ 2 KiB however long it is watched.
pub const TAIL_SAMPLES: usize = 128;
/// Departures older than this (seconds) no longer describe the task mix.
pub const TAIL_HORIZON: f64 = 600.0;
/// Fewer departures than this give no quantile (a p95 of a handful is noise).
pub const MIN_TAIL_SAMPLES: usize = 20;
/// The quantile reported.
pub const TAIL_QUANTILE: f64 = 0.95;

/// The 95th percentile of the time entries stay in `unacked`, over the last
/// [`TAIL_SAMPLES`] departures within [`TAIL_HORIZON`].
///
/// A departed entry's residence is its age when last seen plus half the tick that followed:
/// its departure lies uniformly within that tick, which is exact in expectation for entries
/// that lived longer than a tick, the ones the tail is made of. Entries shorter than a tick
/// are seen only in proportion to their length, so a mix of short and long tasks reads a
/// heavier tail than it has: the error over-provisions, never under-provisions.
#[derive(Clone, Debug, Default)]
pub struct ResidenceTail {
    /// (time of departure, residence) in departure order.
    samples: VecDeque<(f64, f64)>,
    /// The quantile of `samples`, recomputed only when they change.
    cached: Option<Option<f64>>,
}

impl ResidenceTail {
    /// An entry last seen `age` seconds after delivery is gone at `now`, `interval` after.
    pub fn left(&mut self, now: f64, age: f64, interval: f64) {
        if !(age.is_finite() && interval.is_finite()) {
            return;
        }
        let residence = age.max(0.0) + interval.max(0.0) / 2.0;
        if self.samples.len() == TAIL_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((now, residence));
        self.cached = None;
        self.expire(now);
    }

    fn expire(&mut self, now: f64) {
        let from = now - TAIL_HORIZON;
        while self.samples.front().is_some_and(|(t, _)| *t < from) {
            self.samples.pop_front();
            self.cached = None;
        }
    }

    /// The p95 residence at `now`, `None` with fewer than [`MIN_TAIL_SAMPLES`] departures.
    pub fn p95(&mut self, now: f64) -> Option<f64> {
        self.expire(now);
        if let Some(v) = self.cached {
            return v;
        }
        let v = nearest_rank(self.samples.iter().map(|(_, r)| *r).collect());
        self.cached = Some(v);
        v
    }
}

/// The [`TAIL_QUANTILE`] of `values` by nearest rank.
fn nearest_rank(mut values: Vec<f64>) -> Option<f64> {
    if values.len() < MIN_TAIL_SAMPLES {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (TAIL_QUANTILE * values.len() as f64).ceil() as usize;
    values.get(rank.clamp(1, values.len()) - 1).copied()
}

#[cfg(test)]
mod tests;
