//! Sizing when each worker pod holds a private buffer of prefetched tasks.
//!
//! A Celery worker reserves up to `worker_prefetch_multiplier × concurrency` messages beyond
//! the ones it runs (early ack), or beyond none of them (`task_acks_late`: running tasks
//! count against the limit). Redis hands the next message to whichever consumer is blocked
//! on `BRPOP`, busy or not, so a reserved task waits for a slot of *its* pod while slots of
//! other pods may be idle. The fleet then behaves like N separate M/G/c queues, each fed λ/N,
//! not one pool of N·c slots: the pooled Erlang C under-sizes it (head-of-line blocking behind
//! a long task). `steady` sizes such a fleet as N pods of `c` slots each.
//!
//! Pure: no I/O, no clock.

use super::erlang::{steady_slots, P95_FACTOR, TAIL_SHARE};

/// Celery's default `worker_prefetch_multiplier`.
pub const DEFAULT_PREFETCH_MULTIPLIER: f64 = 4.0;
/// Celery's default `task_acks_late`.
pub const DEFAULT_ACKS_LATE: bool = false;

/// How the workers fetch (trigger metadata `prefetchMultiplier`, `acksLate`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prefetch {
    /// Celery's `worker_prefetch_multiplier` (0 = unlimited).
    pub multiplier: f64,
    /// Celery's `task_acks_late`.
    pub acks_late: bool,
}

impl Default for Prefetch {
    /// Celery's defaults: multiplier 4, early ack.
    fn default() -> Self {
        Self {
            multiplier: DEFAULT_PREFETCH_MULTIPLIER,
            acks_late: DEFAULT_ACKS_LATE,
        }
    }
}

impl Prefetch {
    /// Whether a pod can hold a task it has not started while one of its slots is busy and
    /// another pod could start it: always under early ack (it reserves beyond its running
    /// tasks), and under `acks_late` when the limit exceeds its slots (multiplier > 1, or 0 =
    /// unlimited). Prefetch 1 with `acks_late` fetches only for a free slot: one pool.
    pub fn private_buffers(&self) -> bool {
        !self.acks_late || self.multiplier == 0.0 || self.multiplier > 1.0
    }
}

/// P(wait > `target`) in an M/M/c queue with `c` slots, offered `load` and tail time scale
/// `tail`: ErlangC(c, load)·e^{−(c−load)·target/tail}; 1 when the queue is unstable.
fn tail_share(c: u32, load: f64, tail: f64, target: f64) -> f64 {
    let cf = f64::from(c);
    if load >= cf {
        return 1.0;
    }
    let mut b = 1.0;
    for k in 1..=c {
        b = load * b / (f64::from(k) + load * b);
    }
    let erlang_c = cf * b / (cf - load * (1.0 - b));
    erlang_c * (-(cf - load) * target / tail).exp()
}

/// The fewest pods `n` of `concurrency` slots, each an M/M/c queue with offered load
/// `load / n`, whose P(wait > `target`) stays within [`TAIL_SHARE`], as slots (`n ×
/// concurrency`). 0 for no load. A pod counts `floor(concurrency)` slots (at least 1) in the
/// model: a fractional slot cannot start a task. Never below [`steady_slots`] of the same
/// inputs rounded up to whole pods (one pool of the same slots waits less); non-decreasing in
/// `load` and `tail`.
pub fn per_pod_slots(load: f64, tail: f64, target: f64, concurrency: f64) -> f64 {
    let pooled = steady_slots(load, tail, target);
    if pooled <= 0.0 || pooled >= f64::MAX {
        return pooled;
    }
    let c = concurrency.floor().clamp(1.0, f64::from(u32::MAX));
    let slots = c as u32;
    let lower = (pooled / concurrency).ceil().max(1.0);
    let meets = |n: f64| tail_share(slots, load / n, tail, target) <= TAIL_SHARE;
    // Enough pods: ErlangC(c, ρ) ≤ ErlangC(1, ρ) = ρ, so ρ = load/n ≤ 5 % always meets the
    // target; so does a spare c − ρ ≥ ln 20 · tail / target per pod (ErlangC ≤ 1).
    let spare = P95_FACTOR * tail / target;
    let mut hi = (load / TAIL_SHARE).ceil();
    if spare < c {
        hi = hi.min((load / (c - spare)).ceil());
    }
    let mut hi = hi.max(lower);
    let mut lo = lower;
    if meets(lo) {
        return lo * concurrency;
    }
    // `meets` is false at lo and true at hi: bisect (it is monotone in n).
    while hi - lo > 1.0 {
        let mid = ((lo + hi) / 2.0).floor();
        if meets(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi * concurrency
}

/// The steady requirement in slots under `prefetch`: one pool ([`steady_slots`]) unless the
/// pods hold private buffers, then [`per_pod_slots`].
pub fn steady(prefetch: &Prefetch, load: f64, tail: f64, target: f64, concurrency: f64) -> f64 {
    if prefetch.private_buffers() {
        per_pod_slots(load, tail, target, concurrency)
    } else {
        steady_slots(load, tail, target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POOLED: Prefetch = Prefetch {
        multiplier: 1.0,
        acks_late: true,
    };

    #[test]
    fn which_settings_give_pods_private_buffers() {
        let p = |multiplier, acks_late| Prefetch {
            multiplier,
            acks_late,
        };
        assert_eq!(Prefetch::default(), p(4.0, false), "Celery's defaults");
        assert!(Prefetch::default().private_buffers());
        assert!(
            p(1.0, false).private_buffers(),
            "early ack reserves c beyond c running"
        );
        assert!(
            !POOLED.private_buffers(),
            "prefetch 1 + acks_late fetches for a free slot"
        );
        assert!(p(2.0, true).private_buffers());
        assert!(p(0.0, true).private_buffers(), "0 = unlimited");
    }

    #[test]
    fn pods_fed_lambda_over_n_need_more_slots_than_one_pool() {
        // λ = 5/s, S = 7.8 s (39 busy slots), T = 30 s, 4 slots a pod: one pool needs 40
        // slots (10 pods); 12 separate M/M/4 queues with 3.25 slots of load each keep
        // P(wait > 30 s) = 0.62·e^{−0.75·30/7.8} = 3.5 % ≤ 5 %, 11 pods (3.55 each) do not
        // (0.76·e^{−0.45·30/7.8} = 13 %).
        assert_eq!(steady_slots(39.0, 7.8, 30.0), 40.0);
        assert_eq!(per_pod_slots(39.0, 7.8, 30.0, 4.0), 48.0);
        assert_eq!(steady(&Prefetch::default(), 39.0, 7.8, 30.0, 4.0), 48.0);
        assert_eq!(steady(&POOLED, 39.0, 7.8, 30.0, 4.0), 40.0);
        assert!(tail_share(4, 39.0 / 12.0, 7.8, 30.0) <= TAIL_SHARE);
        assert!(tail_share(4, 39.0 / 11.0, 7.8, 30.0) > TAIL_SHARE);
        // No load, no slots; a light load still one pod.
        assert_eq!(per_pod_slots(0.0, 7.8, 30.0, 4.0), 0.0);
        assert_eq!(per_pod_slots(0.1, 7.8, 30.0, 4.0), 4.0);
        // A tail longer than the target per spare slot: the ρ ≤ 5 % bound ends the search.
        let n = per_pod_slots(2.0, 1_000.0, 1.0, 1.0);
        assert!(n.is_finite() && n >= 40.0, "{n}");
    }

    proptest! {
        #[test]
        fn per_pod_is_whole_pods_never_below_the_pool_and_monotone(
            load in 0.0f64..3_000.0,
            tail in 0.001f64..10_000.0,
            target in 0.001f64..10_000.0,
            concurrency in 0.001f64..64.0,
            more in 0.0f64..100.0,
        ) {
            let n = per_pod_slots(load, tail, target, concurrency);
            prop_assert!(n.is_finite() && n >= 0.0);
            let pods = n / concurrency;
            prop_assert!((pods - pods.round()).abs() <= 1e-6 * pods.max(1.0), "{}", pods);
            prop_assert!(n >= steady_slots(load, tail, target) - 1e-9 * n.max(1.0));
            prop_assert!(per_pod_slots(load + more, tail, target, concurrency) >= n);
            prop_assert!(per_pod_slots(load, tail + more, target, concurrency) >= n);
        }
    }
}
