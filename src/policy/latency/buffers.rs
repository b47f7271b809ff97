//! Sizing when each worker pod holds a private buffer of prefetched tasks.
//!
//! A Celery worker reserves up to `worker_prefetch_multiplier × concurrency` messages beyond
//! the ones it runs (early ack), or beyond none of them (`task_acks_late`: running tasks
//! count against the limit). Redis hands the next message to whichever consumer is blocked
//! on `BRPOP`, busy or not, so a reserved task waits for a slot of *its* pod while slots of
//! other pods may be idle. The fleet then behaves like N separate M/G/c queues, each fed λ/N,
//! not one pool of N·c slots: the pooled Erlang C under-sizes it (head-of-line blocking behind
//! a long task). `steady` sizes such a fleet as N pods of `c` slots each. Under early ack
//! the waits in those buffers are what `unacked` shows: they give the tail's time scale
//! (`tail_from_buffer_waits`), and no service time.
//!
//! Pure: no I/O, no clock.

use super::erlang::{steady_slots, P95_FACTOR, TAIL_SHARE};
use crate::signals::{Estimate, Source};

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

/// Whether an estimate from `source` measures the service time under `prefetch`. Under early
/// ack a task leaves `unacked` when it starts, so what `unacked` shows (residence,
/// occupancy) is the time prefetched tasks waited in a buffer, never how long they ran.
pub fn is_service_time(prefetch: &Prefetch, source: Source) -> bool {
    prefetch.acks_late || !matches!(source, Source::UnackedResidence | Source::UnackedOccupancy)
}

/// Splits the sampler's p95 by what it measures under `prefetch`: `(service-time p95,
/// buffer-wait p95)`. The residence p95 is a service time's (plus any wait in a buffer)
/// under `acks_late`; under early ack it is the p95 wait of the tasks that found every slot
/// of their pod busy (one that finds a free slot leaves `unacked` at once and is hardly ever
/// seen). A p95 from elsewhere (heartbeats, task events) is a service time's.
pub fn tail_inputs(prefetch: &Prefetch, p95: Option<Estimate>) -> (f64, Option<f64>) {
    match p95.and_then(|e| e.usable().map(|v| (v, e.source))) {
        Some((v, source)) if !is_service_time(prefetch, source) => (0.0, Some(v)),
        Some((v, _)) => (v, None),
        None => (0.0, None),
    }
}

/// The tail time scale θ that explains a p95 wait `wait_p95` of delayed tasks in pods of
/// `concurrency` slots each offered `pod_load`: in an M/G/c queue the wait of a delayed task
/// is about exponential with mean θ/(c − a) (θ = E[S²]/(2·E[S]) in heavy traffic), so θ =
/// w95·(c − a)/ln 20. A property of the task mix, not of the fleet: more pods shorten the
/// waits and widen c − a together. Without a load per pod (no heartbeats name the workers)
/// c − a is taken as c, its upper bound: θ is over-, never under-estimated. 0 when the pods
/// are loaded to c or beyond (the waits then grow without a steady scale: the drain term
/// and the service time answer for them).
pub fn tail_from_buffer_waits(wait_p95: f64, concurrency: f64, pod_load: Option<f64>) -> f64 {
    let c = concurrency.floor().max(1.0);
    let spare = match pod_load {
        Some(a) if a.is_finite() => (c - a.max(0.0)).max(0.0),
        _ => c,
    };
    let theta = wait_p95 * spare / P95_FACTOR;
    if theta.is_finite() {
        theta
    } else {
        0.0
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
    // Past 2^53 pods `mid` may equal an end: stop there (the answer is `hi`, enough pods).
    while hi - lo > 1.0 {
        let mid = ((lo + hi) / 2.0).floor();
        if mid <= lo || mid >= hi {
            break;
        }
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

    #[test]
    fn under_early_ack_unacked_measures_buffer_waits_not_service_times() {
        let early = Prefetch::default();
        let residence = |v| Some(Estimate::new(v, Source::UnackedResidence));
        for source in [Source::UnackedResidence, Source::UnackedOccupancy] {
            assert!(!is_service_time(&early, source), "{source:?}");
            assert!(is_service_time(&POOLED, source), "{source:?}");
        }
        assert!(is_service_time(&early, Source::Heartbeat));
        // Early ack: the residence p95 is a buffer wait; a heartbeat one a service time.
        assert_eq!(tail_inputs(&early, residence(45.0)), (0.0, Some(45.0)));
        let beat = Some(Estimate::new(45.0, Source::Heartbeat));
        assert_eq!(tail_inputs(&early, beat), (45.0, None));
        // acks_late: `unacked` holds running tasks, its residence is (at least) a service time.
        assert_eq!(tail_inputs(&POOLED, residence(45.0)), (45.0, None));
        assert_eq!(tail_inputs(&early, None), (0.0, None));
        assert_eq!(tail_inputs(&early, residence(f64::NAN)), (0.0, None));
    }

    #[test]
    fn the_tail_scale_from_buffer_waits_inverts_the_m_m_c_conditional_wait() {
        // Delayed tasks in an M/M/c pod wait Exp((c − a)/θ): p95 = θ·ln 20/(c − a).
        let (theta, c, a) = (46.6, 4.0, 2.5);
        let w95 = theta * P95_FACTOR / (c - a);
        assert!((tail_from_buffer_waits(w95, c, Some(a)) - theta).abs() < 1e-9);
        // The same θ behind fewer, busier pods: longer waits, the same θ.
        let w95_busy = theta * P95_FACTOR / (c - 3.5);
        assert!((tail_from_buffer_waits(w95_busy, c, Some(3.5)) - theta).abs() < 1e-9);
        // Unknown load per pod: c − a taken as c (never under-estimated).
        assert!((tail_from_buffer_waits(w95, c, None) - w95 * 4.0 / P95_FACTOR).abs() < 1e-9);
        assert!(tail_from_buffer_waits(w95, c, None) > theta);
        // Pods loaded to c or beyond: no steady scale.
        assert_eq!(tail_from_buffer_waits(w95, c, Some(4.0)), 0.0);
        assert_eq!(tail_from_buffer_waits(w95, c, Some(9.0)), 0.0);
        // Whole slots; odd inputs give a finite, non-negative scale.
        assert_eq!(
            tail_from_buffer_waits(30.0, 4.9, Some(1.0)),
            tail_from_buffer_waits(30.0, 4.0, Some(1.0))
        );
        assert_eq!(tail_from_buffer_waits(f64::INFINITY, 4.0, None), 0.0);
        assert!(tail_from_buffer_waits(30.0, 4.0, Some(f64::NAN)) > 0.0);
    }

    #[test]
    fn a_load_beyond_exact_integers_ends_the_search() {
        // Past 2^53 the midpoint of two pod counts can be one of them: the search must end
        // (a hostile broker's counts can make λ·S that large).
        for load in [1e16, 1e17, 1e18, 1e300] {
            let slots = per_pod_slots(load, 7.8, 30.0, 4.0);
            assert!(slots.is_finite() && slots >= load, "{load}: {slots}");
        }
    }

    proptest! {
        #[test]
        fn the_tail_from_buffer_waits_grows_with_the_waits_and_the_pods(
            w95 in 0.0f64..10_000.0,
            more in 0.0f64..1_000.0,
            c in 0.001f64..64.0,
            load in 0.0f64..100.0,
        ) {
            let theta = tail_from_buffer_waits(w95, c, Some(load));
            prop_assert!(theta.is_finite() && theta >= 0.0);
            prop_assert!(tail_from_buffer_waits(w95 + more, c, Some(load)) >= theta);
            // A lighter load per pod (more pods for the same flow) explains the same waits
            // with a heavier tail; the unknown load bounds them all.
            prop_assert!(tail_from_buffer_waits(w95, c, Some(load / 2.0)) >= theta);
            prop_assert!(tail_from_buffer_waits(w95, c, None) >= theta);
        }

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
