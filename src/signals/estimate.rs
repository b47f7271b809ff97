//! Estimators for the live signals: event rates, the age of the oldest waiting task, running
//! tasks and start rate from worker heartbeats, and service time.
//!
//! Pure state machines: every method takes the time (`now`, epoch seconds) from its caller,
//! so they are tested with synthetic series and a fake clock. The broker's sampler feeds them.

use std::collections::VecDeque;

mod clock;
mod tail;
pub use clock::{FifoClock, TailClock};
pub use tail::ResidenceTail;

/// How much faster than the smoothed rate the last tick must be to count as a burst.
pub const BURST_FACTOR: f64 = 3.0;

/// Rate of a cumulative counter, smoothed over a window, with a fast path upwards: a burst
/// (the last tick over [`BURST_FACTOR`] × the smoothed rate) shows in the first tick that sees
/// it, a lull fades in over the window.
#[derive(Clone, Debug)]
pub struct RateEstimator {
    window: f64,
    samples: VecDeque<(f64, u64)>,
    /// The smoothed rate read at the latest samples (at most [`LATELY_SAMPLES`], within
    /// [`LATELY_HORIZON`] seconds), newest last.
    lately: VecDeque<(f64, f64)>,
}

/// How many recent smoothed rates a [`RateEstimator`] keeps.
pub const LATELY_SAMPLES: usize = 64;
/// How far back (seconds) a [`RateEstimator`] keeps its recent smoothed rates: as long as a
/// worker whose heartbeat interval is the longest honoured stays live.
pub const LATELY_HORIZON: f64 = 180.0;

impl RateEstimator {
    pub fn new(window_secs: f64) -> Self {
        Self {
            window: window_secs.max(0.001),
            samples: VecDeque::new(),
            lately: VecDeque::new(),
        }
    }

    /// Records the counter's value at `now`. A counter that went backwards restarts the series.
    pub fn observe(&mut self, now: f64, cumulative: u64) {
        if let Some(&(t, c)) = self.samples.back() {
            if cumulative < c || now < t {
                self.samples.clear();
                self.lately.clear();
            } else if now == t {
                self.samples.pop_back();
                self.lately.pop_back();
            }
        }
        self.samples.push_back((now, cumulative));
        // Keep one sample at or before the window's start so the window is fully covered.
        while self.samples.len() > 2 && self.samples[1].0 <= now - self.window {
            self.samples.pop_front();
        }
        if let Some(r) = self.smoothed_rate() {
            self.lately.push_back((now, r));
        }
        while self.lately.len() > LATELY_SAMPLES
            || self
                .lately
                .front()
                .is_some_and(|e| e.0 < now - LATELY_HORIZON)
        {
            self.lately.pop_front();
        }
    }

    /// The highest smoothed rate read since `t`: at the samples after it and at the last one
    /// at or before it (the rate at `t` lies between two samples), or at every kept sample
    /// when `t` is older; `None` before two samples. What a rate known only as of some time
    /// since `t` compares with.
    pub fn highest_smoothed_since(&self, t: f64) -> Option<f64> {
        let from = self.lately.iter().rposition(|e| e.0 <= t).unwrap_or(0);
        self.lately.range(from..).map(|e| e.1).reduce(f64::max)
    }

    /// Events per second, or `None` before two samples.
    pub fn rate(&self) -> Option<f64> {
        let n = self.samples.len();
        let first = *self.samples.front()?;
        let last = *self.samples.back()?;
        // The burst path's interval spans about one regular gap at least (0.9 × the
        // window's mean gap between samples, which absorbs a regular tick's jitter): a tick
        // woken moments after the previous one (an `lpush` on an idle queue) must not read
        // one arrival over a few milliseconds as a burst of 1/δ, held for a whole tick.
        let gap = (last.0 - first.0) / n.checked_sub(1).filter(|g| *g > 0)? as f64;
        let previous = self
            .samples
            .iter()
            .rev()
            .skip(1)
            .find(|(t, _)| last.0 - t >= 0.9 * gap)
            .copied()
            .unwrap_or(first);
        rate_of(first, previous, last)
    }

    /// Seconds the counter has not moved, as of its latest sample: since the latest sample
    /// that counted an event, or at least the window's span when none did. The events of
    /// that sample happened within its interval, so the true quiet is at least this long.
    /// `None` before two samples.
    pub fn quiet_for(&self) -> Option<f64> {
        let &(last, _) = self.samples.back()?;
        let &(first, _) = self.samples.front().filter(|_| self.samples.len() > 1)?;
        let (moved, _) = increases(self.samples.iter().copied());
        Some(last - moved.unwrap_or(first))
    }

    /// The longest time between two samples that counted events, within the window: the
    /// longest quiet the flow itself left before its latest events (0 with fewer than two
    /// such samples). A producer that sends in batches leaves gaps a Poisson flow would not.
    pub fn longest_gap(&self) -> f64 {
        increases(self.samples.iter().copied()).1
    }

    /// Seconds the rates are read over.
    pub fn window(&self) -> f64 {
        self.window
    }

    /// Seconds the smoothed rate is read over now: the window once the samples cover it
    /// (up to a tick more, the sample kept at or before its start), less while they do not
    /// yet (the sampler's first seconds, or a counter that restarted); `None` before two
    /// samples. The smoothed rate × this span is the count it rests on.
    pub fn span(&self) -> Option<f64> {
        let (t0, _) = *self.samples.front()?;
        let (t1, _) = *self.samples.back()?;
        (t1 > t0).then_some(t1 - t0)
    }

    /// Events per second over the window, without the burst fast path: what the latency
    /// policy sizes a steady flow on (its drain term sees a burst in the backlog at once).
    /// `None` before two samples.
    pub fn smoothed_rate(&self) -> Option<f64> {
        let (t0, c0) = *self.samples.front()?;
        let (t1, c1) = *self.samples.back()?;
        (t1 > t0).then(|| c1.saturating_sub(c0) as f64 / (t1 - t0))
    }
}

/// Where a cumulative counter sampled at `points` (time, count; oldest first) grew: the time
/// of the latest sample that counted events (`None` when none did), and the longest time
/// between two samples that did (0 with fewer than two).
pub(super) fn increases(points: impl Iterator<Item = (f64, u64)>) -> (Option<f64>, f64) {
    let (mut last, mut longest, mut previous) = (None::<f64>, 0.0f64, None::<u64>);
    for (t, c) in points {
        if previous.is_some_and(|p| c > p) {
            if let Some(l) = last {
                longest = longest.max(t - l);
            }
            last = Some(t);
        }
        previous = Some(c);
    }
    (last, longest)
}

/// Rate of a cumulative counter sampled at `first` … `previous`, `last` (time, count): the
/// smoothed rate from first to last, or the last interval's when it is a burst.
pub(super) fn rate_of(first: (f64, u64), previous: (f64, u64), last: (f64, u64)) -> Option<f64> {
    let ((t0, c0), (tp, cp), (t1, c1)) = (first, previous, last);
    if t1 <= t0 {
        return None;
    }
    let smoothed = c1.saturating_sub(c0) as f64 / (t1 - t0);
    let recent = if t1 > tp {
        c1.saturating_sub(cp) as f64 / (t1 - tp)
    } else {
        0.0
    };
    // Only a real burst takes the fast path: counts credited one tick late (pub/sub or
    // sampling jitter) can double a single tick of a steady stream, not triple it.
    Some(if recent > BURST_FACTOR * smoothed {
        recent
    } else {
        smoothed
    })
}

/// Mean time entries stay in `unacked` (delivered → acked), over a window, from entries seen
/// at ticks: with `acks_late` and prefetch 1 it is the service time plus a short reserve wait.
///
/// An entry's delivery time is its score, but its departure is only known to lie between the
/// last tick that saw it and the next one. Its unseen remainder (departure − last sighting)
/// has the same distribution as its age when first seen (first sighting − delivery): with
/// ticks at a uniform phase, both are uniform on (0, min(S, tick)) for a task of length S. So
/// mean residence = mean age at last sighting + mean age at first sighting, unbiased for
/// tasks shorter or longer than a tick. (Dating departures mid-way between ticks instead
/// over-states tasks shorter than a tick: S/2 + tick/2.) Entries that come and go between two
/// ticks are never seen, so a mix of task lengths is weighted towards those over a tick.
#[derive(Clone, Debug)]
pub struct Residence {
    window: f64,
    /// (time, age when last seen, tick interval) of departed entries.
    done: VecDeque<(f64, f64, f64)>,
    /// (time, age when first seen) of new entries.
    seen: VecDeque<(f64, f64)>,
    /// The distribution's tail, over a longer horizon than the mean's window.
    tail: ResidenceTail,
}

impl Residence {
    pub fn new(window_secs: f64) -> Self {
        Self {
            window: window_secs,
            done: VecDeque::new(),
            seen: VecDeque::new(),
            tail: ResidenceTail::default(),
        }
    }

    /// An entry delivered `age` seconds before `now` was seen for the first time at `now`.
    pub fn first_seen(&mut self, now: f64, age: f64) {
        self.seen.push_back((now, age.max(0.0)));
        self.expire(now);
    }

    /// An entry `age` seconds old when last seen is gone at `now`, a tick `interval` later.
    pub fn left(&mut self, now: f64, age: f64, interval: f64) {
        self.done.push_back((now, age.max(0.0), interval.max(0.0)));
        self.tail.left(now, age, interval);
        self.expire(now);
    }

    fn expire(&mut self, now: f64) {
        let from = now - self.window;
        while self.done.front().is_some_and(|(t, ..)| *t < from) {
            self.done.pop_front();
        }
        while self.seen.front().is_some_and(|(t, _)| *t < from) {
            self.seen.pop_front();
        }
    }

    /// Mean residence over the window, `None` without departures. Without first sightings
    /// in the window (only entries that were already there), the remainder is taken as half
    /// a tick.
    pub fn mean(&self, now: f64) -> Option<f64> {
        let from = now - self.window;
        let mean = |it: &mut dyn Iterator<Item = f64>| {
            let (n, sum) = it.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
            (n > 0).then(|| sum / n as f64)
        };
        let done = || self.done.iter().filter(|(t, ..)| *t >= from);
        let last = mean(&mut done().map(|(_, a, _)| *a))?;
        let remainder = mean(
            &mut self
                .seen
                .iter()
                .filter(|(t, _)| *t >= from)
                .map(|(_, a)| *a),
        )
        .or_else(|| mean(&mut done().map(|(_, _, i)| i / 2.0)))?;
        Some(last + remainder)
    }

    /// The 95th percentile residence of recent departures ([`ResidenceTail`]).
    pub fn p95(&mut self, now: f64) -> Option<f64> {
        self.tail.p95(now)
    }
}

/// Service time by Little's law over the `unacked` hash: the time-average number of a queue's
/// in-flight entries divided by the rate at which its tasks were taken, over a window. Exact
/// for any task-length distribution when every dequeue is counted (keyspace `rpop`, or
/// `LPOS` while the list keeps a backlog), and free of the sampling phase, unlike the
/// residence of entries seen at ticks. Under `acks_late` with prefetch 1 the time in
/// `unacked` is the service time.
#[derive(Clone, Debug)]
pub struct Occupancy {
    window: f64,
    /// (time, entries in flight then, cumulative dequeues then)
    samples: VecDeque<(f64, u64, u64)>,
}

impl Occupancy {
    pub fn new(window_secs: f64) -> Self {
        Self {
            window: window_secs.max(0.001),
            samples: VecDeque::new(),
        }
    }

    /// Records the in-flight count and the cumulative dequeue counter at `now`.
    pub fn observe(&mut self, now: f64, in_flight: u64, dequeued: u64) {
        if let Some(&(t, _, d)) = self.samples.back() {
            if now <= t || dequeued < d {
                self.samples.clear();
            }
        }
        self.samples.push_back((now, in_flight, dequeued));
        while self.samples.len() > 2 && self.samples[1].0 <= now - self.window {
            self.samples.pop_front();
        }
    }

    /// Forgets the series (a tick whose dequeues were not all counted).
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// Mean time in flight per task, `None` before any task was taken in the window.
    pub fn service_time(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let taken = last.2.checked_sub(first.2)?;
        if taken == 0 {
            return None;
        }
        let area: f64 = self
            .samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(a, b)| (a.1 + b.1) as f64 / 2.0 * (b.0 - a.0))
            .sum();
        (area > 0.0).then(|| area / taken as f64)
    }
}

/// Checkpoints a [`LongService`] keeps per window: its memory is bounded by this, not by how
/// often it is observed, and its window is exact to within `window / LONG_CHECKPOINTS`.
pub const LONG_CHECKPOINTS: f64 = 60.0;

/// Service times and start rates above this (about 116 days; tasks/s) are no reading a
/// worker can give: a [`LongService`] ignores them rather than let one overflow its sums.
pub const LONG_MAX_SECS: f64 = 1e7;

/// A service time over a long window, from a short-window estimate and the start rate it
/// pairs with: Σ S·r·dt / Σ r·dt over the window (S·r is the busy slots, so this is
/// Little's law over the long window).
#[derive(Clone, Debug)]
pub struct LongService {
    window: f64,
    /// Checkpoints (time, ∫ S·r dt, ∫ r dt), at least `window / LONG_CHECKPOINTS` apart.
    samples: VecDeque<(f64, f64, f64)>,
    /// The integrals at the latest observation.
    head: Option<(f64, f64, f64)>,
    /// The pair recorded at the latest observation.
    last: Option<(f64, f64)>,
    /// The window's value as of the latest step with starts (the whole window then).
    kept: Option<f64>,
}

impl LongService {
    pub fn new(window_secs: f64) -> Self {
        Self {
            window: window_secs.max(0.001),
            samples: VecDeque::new(),
            head: None,
            last: None,
            kept: None,
        }
    }

    /// Records the short-window service time `s` and its start rate `rate` at `now`.
    pub fn observe(&mut self, now: f64, s: Option<f64>, rate: Option<f64>) {
        let (mut busy, mut starts) = (0.0, 0.0);
        if let Some((t, b, r)) = self.head {
            if now <= t {
                return;
            }
            (busy, starts) = (b, r);
            if let Some((s, r)) = self.last {
                busy += s * r * (now - t);
                starts += r * (now - t);
            }
        }
        if !(busy.is_finite() && starts.is_finite()) {
            // Only a hostile reading gets here (see `LONG_MAX_SECS`); start afresh.
            self.samples.clear();
            (busy, starts) = (0.0, 0.0);
        }
        // The step just integrated had starts: the window's value is a measured one.
        let started = self.last.is_some_and(|(_, r)| r > 0.0);
        self.last = match (s, rate) {
            (Some(s), Some(r))
                if (0.0..=LONG_MAX_SECS).contains(&s) && (0.0..=LONG_MAX_SECS).contains(&r) =>
            {
                Some((s, r))
            }
            _ => None,
        };
        self.head = Some((now, busy, starts));
        let spacing = self.window / LONG_CHECKPOINTS;
        if self.samples.back().is_none_or(|c| now - c.0 >= spacing) {
            self.samples.push_back((now, busy, starts));
        }
        while self.samples.len() > 1 && self.samples[1].0 <= now - self.window {
            self.samples.pop_front();
        }
        if started {
            self.kept = self.in_window().or(self.kept);
        }
    }

    /// The service time over the window, `None` without starts in it.
    fn in_window(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.head?);
        let starts = last.2 - first.2;
        (starts > 0.0).then(|| (last.1 - first.1) / starts)
    }

    /// The service time over the window or, without starts in it, the last one measured
    /// (a queue idle for longer than the window keeps what its tasks took); `None` before
    /// any start.
    pub fn value(&self) -> Option<f64> {
        self.in_window().or(self.kept)
    }
}

/// Service time by Little's law over the running tasks: S = mean running / start rate.
pub fn littles_law(running: f64, start_rate: f64) -> Option<f64> {
    (start_rate > 0.0 && running > 0.0).then(|| running / start_rate)
}

#[cfg(test)]
mod tests;
