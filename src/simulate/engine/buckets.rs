//! The oracle's counters: per-second buckets over a ring, summed over trailing windows, of
//! each queue's arrivals, starts and completions.

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
    pub starts: Buckets,
    pub done_n: Buckets,
    pub done_sum: Buckets,
}

impl QueueStats {
    pub(crate) fn new(window: usize) -> Self {
        Self {
            arrivals: Buckets::new(window),
            starts: Buckets::new(window),
            done_n: Buckets::new(window),
            done_sum: Buckets::new(window),
        }
    }
}
