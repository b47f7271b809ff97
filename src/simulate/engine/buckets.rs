//! The oracle's counters: per-second buckets over a ring, summed over trailing windows, of
//! each queue's arrivals, starts and completions; and the waits of tasks delayed in a pod's
//! buffer.

use crate::signals::estimate::ResidenceTail;

/// Per-second buckets over a ring (sums over trailing windows).
pub(crate) struct Buckets {
    stamp: Vec<u64>,
    v: Vec<f64>,
}

impl Buckets {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            stamp: vec![u64::MAX; n],
            v: vec![0.0; n],
        }
    }

    pub(crate) fn add(&mut self, t: f64, x: f64) {
        let s = t as u64;
        let i = (s % self.v.len() as u64) as usize;
        if self.stamp[i] != s {
            self.stamp[i] = s;
            self.v[i] = 0.0;
        }
        self.v[i] += x;
    }

    /// The longest time between two non-empty seconds within the `window` whole seconds
    /// before `now` (0 with fewer than two), at the buckets' one-second resolution.
    pub(crate) fn longest_gap(&self, now: f64, window: u32) -> f64 {
        let end = now as u64;
        let n = self.v.len() as u64;
        let mut last = None::<u64>;
        let mut longest = 0u64;
        for s in end.saturating_sub(u64::from(window))..end {
            let i = (s % n) as usize;
            if self.stamp[i] == s && self.v[i] > 0.0 {
                if let Some(l) = last {
                    longest = longest.max(s - l);
                }
                last = Some(s);
            }
        }
        longest as f64
    }

    /// Sum over the `window` whole seconds before `now`.
    pub(crate) fn sum(&self, now: f64, window: u32) -> f64 {
        let end = now as u64;
        let n = self.v.len() as u64;
        (end.saturating_sub(u64::from(window))..end)
            .map(|s| {
                let i = (s % n) as usize;
                if self.stamp[i] == s {
                    self.v[i]
                } else {
                    0.0
                }
            })
            .sum()
    }
}

/// One queue's counters.
pub(crate) struct QueueStats {
    pub arrivals: Buckets,
    /// When the latest task arrived (`None` before the first).
    pub last_arrival: Option<f64>,
    pub starts: Buckets,
    pub done_n: Buckets,
    pub done_sum: Buckets,
    /// (completion time, duration) of the tasks completed in the service window: the p95.
    pub done_recent: std::collections::VecDeque<(f64, f64)>,
    /// How long the tasks that found every slot of their pod busy waited in its buffer
    /// (early ack): exactly what the real sampler's residence tail estimates.
    pub buffered: ResidenceTail,
}

impl QueueStats {
    /// Records a completion at `now` and forgets those older than `window` seconds.
    pub(crate) fn completed(&mut self, now: f64, duration: f64, window: f64) {
        self.done_n.add(now, 1.0);
        self.done_sum.add(now, duration);
        self.done_recent.push_back((now, duration));
        while self
            .done_recent
            .front()
            .is_some_and(|(t, _)| *t <= now - window)
        {
            self.done_recent.pop_front();
        }
    }

    /// The p95 duration of the completions within `window` seconds of `now`.
    pub(crate) fn service_p95(&self, now: f64, window: f64) -> Option<f64> {
        let mut d: Vec<f64> = self
            .done_recent
            .iter()
            .filter(|(t, _)| *t > now - window)
            .map(|(_, d)| *d)
            .collect();
        let k = ((d.len() as f64) * 0.95).ceil() as usize;
        let k = k.checked_sub(1)?;
        Some(*d.select_nth_unstable_by(k, f64::total_cmp).1)
    }

    pub(crate) fn new(window: usize) -> Self {
        Self {
            arrivals: Buckets::new(window),
            last_arrival: None,
            starts: Buckets::new(window),
            done_n: Buckets::new(window),
            done_sum: Buckets::new(window),
            done_recent: std::collections::VecDeque::new(),
            buffered: ResidenceTail::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Buckets;

    #[test]
    fn longest_gap_is_between_non_empty_seconds_of_the_window() {
        let mut b = Buckets::new(64);
        for t in [10.2, 10.7, 12.5, 17.1, 18.0] {
            b.add(t, 1.0);
        }
        // Seconds 10, 12, 17 and 18 hold arrivals: gaps 2, 5, 1.
        assert_eq!(b.longest_gap(20.0, 30), 5.0);
        // The window's last 5 whole seconds (15–19) hold 17 and 18 only.
        assert_eq!(b.longest_gap(20.0, 5), 1.0);
        // One non-empty second leaves no gap; none at all either.
        assert_eq!(b.longest_gap(20.0, 2), 0.0);
        assert_eq!(b.longest_gap(40.0, 10), 0.0);
    }
}
