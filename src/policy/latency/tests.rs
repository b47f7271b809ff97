//! Table tests and property tests (the invariants listed in `docs/scaling.md`) for `latency`
//! mode.

use super::*;
use crate::signals::{Estimate, Source};
use proptest::prelude::*;

fn q(backlog: u64, reserved: u64, scheduled: u64, stale: u64) -> QueueSignals {
    QueueSignals {
        name: "q".into(),
        backlog,
        reserved,
        scheduled,
        stale,
    }
}

fn live(running: Option<f64>, rate: Option<f64>, s: Option<f64>, wait: Option<f64>) -> LiveSignals {
    LiveSignals {
        name: "q".into(),
        running: running.map(|v| Estimate::new(v, Source::Heartbeat)),
        arrival_rate: rate.map(|v| Estimate::new(v, Source::Keyspace)),
        arrival_rate_steady: None,
        rate_window: None,
        arrivals_quiet_for: None,
        arrivals_longest_gap: None,
        dequeue_rate: None,
        service_time: s.map(|v| Estimate::new(v, Source::Heartbeat)),
        service_time_p95: None,
        service_time_sizing: None,
        service_rate: None,
        wait: wait.map(|v| Estimate::new(v, Source::Keyspace)),
        workers: None,
        sampled_ago: 0.0,
        tick: None,
    }
}

/// One pool of slots (prefetch 1 with `acks_late`): the table tests below check the pooled
/// Erlang sizing; `buffers.rs` tests the per-pod one.
fn pooled() -> Prefetch {
    Prefetch {
        multiplier: 1.0,
        acks_late: true,
    }
}

fn settings() -> LatencySettings {
    LatencySettings {
        prefetch: pooled(),
        ..LatencySettings::new(4.0, 30.0)
    }
}

fn part(d: &Decision, name: &str) -> f64 {
    d.breakdown
        .iter()
        .find(|c| c.component == name)
        .map_or(f64::NAN, |c| c.value)
}

#[test]
fn steady_flow_asks_for_the_erlang_slots_of_lambda_times_s() {
    // λ = 10/s, S = 2 s: 20 busy slots; the fewest c > 20 whose p95 wait is ≤ 30 s.
    let d = decide(
        &settings(),
        &[q(0, 0, 0, 0)],
        &[live(Some(20.0), Some(10.0), Some(2.0), None)],
    );
    let c = steady_slots(20.0, 2.0, 30.0);
    assert_eq!(c, 21.0, "one spare slot keeps P(wait > 30 s) far below 5 %");
    assert_eq!(d.metric_value, c, "{d:?}");
    assert_eq!(d.target, 4.0);
    assert!(d.active);
    assert_eq!(part(&d, "in_flight"), 20.0);
    assert_eq!(part(&d, "headroom"), 1.0);
    assert_eq!(part(&d, "flow"), 0.0); // flow adds nothing beyond in-flight
    assert_eq!(d.breakdown[1].source, "keyspace");
}

#[test]
fn erlang_slots_match_known_values() {
    // M/M/c, a = 10 slots, S = 1: ErlangC(11, 10) ≈ 0.682, ErlangC(12, 10) ≈ 0.449.
    // T = 1 s: P(wait > 1) = 0.682·e^{−1} = 0.25 (11), 0.449·e^{−2} = 0.061 (12),
    // 13 slots: 0.280·e^{−3} = 0.014 → 13.
    assert_eq!(steady_slots(10.0, 1.0, 1.0), 13.0);
    // A long target needs only the first slot above the load.
    assert_eq!(steady_slots(10.0, 1.0, 100.0), 11.0);
    assert_eq!(steady_slots(0.0, 1.0, 1.0), 0.0);
    assert_eq!(steady_slots(0.2, 1.0, 30.0), 1.0);
    // Huge loads use √-staffing with β = 3, never more than the C ≤ 1 bound.
    let big = steady_slots(1.0e6, 1.0, 10.0);
    assert!((1.0e6..=1.0e6 + 3.0 * 1.0e3 + 1.0).contains(&big));
}

#[test]
fn a_heavier_tail_asks_for_more_slots() {
    let mut light = live(Some(0.0), Some(2.0), Some(2.0), None);
    light.service_time_p95 = Some(Estimate::new(6.0, Source::Heartbeat)); // exponential: 3 × mean
    let mut heavy = light.clone();
    heavy.service_time_p95 = Some(Estimate::new(60.0, Source::Heartbeat));
    let s = LatencySettings {
        prefetch: pooled(),
        ..LatencySettings::new(4.0, 10.0)
    };
    let a = decide(&s, &[q(0, 0, 0, 0)], &[light]);
    let b = decide(&s, &[q(0, 0, 0, 0)], &[heavy]);
    assert_eq!(a.metric_value, steady_slots(4.0, 2.0, 10.0));
    assert_eq!(b.metric_value, steady_slots(4.0, 20.0, 10.0));
    assert!(b.metric_value > a.metric_value, "{a:?} {b:?}");
}

#[test]
fn a_standing_queue_within_the_target_adds_no_slots() {
    // 8 slots busy, 20 waiting 1 s tasks, the oldest 5 s old, T = 30 s: the slots running
    // start them all within ~3 s; the metric stays at the busy slots.
    let d = decide(
        &settings(),
        &[q(20, 0, 0, 0)],
        &[live(Some(8.0), Some(7.0), Some(1.0), Some(5.0))],
    );
    assert_eq!(d.metric_value, 8.0, "{d:?}");
    assert_eq!(part(&d, "drain"), 0.0);
}

#[test]
fn a_lone_task_on_an_idle_queue_keeps_no_pod() {
    // One task in the last minute (λ = 1/60), done; T = 30 s: under one arrival per target.
    let idle = live(Some(0.0), Some(1.0 / 60.0), Some(20.0), None);
    let d = decide(&settings(), &[q(0, 0, 0, 0)], std::slice::from_ref(&idle));
    assert_eq!((d.metric_value, d.active), (0.0, false), "{d:?}");
    // While it waits or runs it has its slot.
    let d = decide(&settings(), &[q(1, 0, 0, 0)], &[idle]);
    assert!(d.metric_value >= 1.0 && d.active);
    // One arrival every 10 s is not sparse for a 30 s target: a slot stays.
    let busy = live(Some(0.0), Some(0.1), Some(1.0), None);
    let d = decide(&settings(), &[q(0, 0, 0, 0)], &[busy]);
    assert_eq!((d.metric_value, d.active), (1.0, true));
}

#[test]
fn backlog_drains_within_the_target() {
    // 300 waiting, S = 1 s, T = 30 s, no wait yet: 300 · 1/31 slots.
    let d = decide(
        &settings(),
        &[q(300, 0, 0, 0)],
        &[live(Some(0.0), Some(0.0), Some(1.0), Some(0.0))],
    );
    let drain = 300.0 / 31.0;
    assert!((part(&d, "drain") - drain).abs() < 1e-9);
    // Long tasks: one slot per waiting task at most.
    let d = decide(
        &settings(),
        &[q(10, 0, 0, 0)],
        &[live(None, None, Some(3000.0), None)],
    );
    assert!(part(&d, "drain") < 10.0 && part(&d, "drain") > 9.8);
}

#[test]
fn the_drain_reads_at_most_a_few_long_window_service_times() {
    // 100 waiting, T = 30 s, no wait yet. The window's S reads 20 s (long tasks fill the
    // slots) against S̄ = 4 s: the drain uses 2.25 · 4 = 9 s, not 20 s.
    let drain = |s: f64, long_s: f64| {
        let l = with_sizing(
            live(Some(0.0), Some(0.0), Some(s), Some(0.0)),
            Some((long_s, 0.0)),
        );
        part(&decide(&settings(), &[q(100, 0, 0, 0)], &[l]), "drain")
    };
    let capped = 100.0 * 9.0 / (9.0 + 30.0);
    assert!(
        (drain(20.0, 4.0) - capped).abs() < 1e-9,
        "{}",
        drain(20.0, 4.0)
    );
    // Up to 2.25·S̄ (a wave's first starts read about 2·S̄) the window's S stands.
    assert!((drain(8.0, 4.0) - 100.0 * 8.0 / 38.0).abs() < 1e-9);
    // Below S̄ the window's S stands too: the cap only ever lowers it.
    assert!((drain(1.0, 4.0) - 100.0 / 31.0).abs() < 1e-9);
}

#[test]
fn older_backlog_is_more_urgent_but_bounded() {
    let young = decide(
        &settings(),
        &[q(100, 0, 0, 0)],
        &[live(None, None, Some(5.0), Some(0.0))],
    );
    let old = decide(
        &settings(),
        &[q(100, 0, 0, 0)],
        &[live(None, None, Some(5.0), Some(25.0))],
    );
    let late = decide(
        &settings(),
        &[q(100, 0, 0, 0)],
        &[live(None, None, Some(5.0), Some(600.0))],
    );
    assert!(old.metric_value > young.metric_value);
    assert_eq!(old.metric_value, late.metric_value); // budget floor T/2
}

#[test]
fn fallbacks_are_named() {
    // No live signals at all: S = taskDuration, then targetLatency; in-flight = reserved.
    let mut s = settings();
    let d = decide(&s, &[q(30, 5, 0, 0)], &[]);
    assert_eq!(part(&d, "in_flight"), 5.0);
    assert_eq!(d.breakdown[0].source, "unacked");
    assert_eq!(d.breakdown[3].source, "target-latency");
    // 30 waiting × S/(S + T) = 15 slots, 10 beyond the 5 in flight.
    assert!((d.metric_value - 30.0 * 30.0 / 60.0).abs() < 1e-9);
    assert!((part(&d, "drain") - 10.0).abs() < 1e-9);
    s.task_duration = Some(3.0);
    let d = decide(&s, &[q(30, 5, 0, 0)], &[]);
    assert_eq!(d.breakdown[3].source, "config");
    // Dequeue rate stands in for a missing arrival rate.
    let mut l = live(None, None, Some(2.0), None);
    l.dequeue_rate = Some(Estimate::new(4.0, Source::Heartbeat));
    let d = decide(&s, &[q(0, 0, 0, 0)], &[l]);
    assert!(d.metric_value >= 8.0 && d.active);
}

#[test]
fn idle_is_zero_and_scheduled_is_not_demand() {
    let d = decide(
        &settings(),
        &[q(0, 0, 50, 0)],
        &[live(Some(0.0), Some(0.0), Some(2.0), Some(0.0))],
    );
    assert_eq!(d.metric_value, 0.0);
    assert!(!d.active);
    let mut s = settings();
    s.min_headroom = 2.0;
    assert_eq!(decide(&s, &[q(0, 0, 0, 0)], &[]).metric_value, 0.0);
    let d = decide(&s, &[q(1, 0, 0, 0)], &[]);
    assert!(d.metric_value >= 2.0);
    assert_eq!(d.breakdown[2].source, "config");
}

#[test]
fn activation_threshold_applies_to_backlog_only() {
    let mut s = settings();
    s.activation_list_length = 3.0;
    assert!(!decide(&s, &[q(3, 0, 0, 0)], &[]).active);
    assert!(decide(&s, &[q(4, 0, 0, 0)], &[]).active);
    // A reserved task beyond the running ones waits for a slot on a full pod: active. A
    // running task with no counted flow keeps its slot (metric) but not the trigger
    // (docs/scaling.md).
    assert!(decide(&s, &[q(0, 5, 0, 0)], &[live(Some(4.0), None, None, None)]).active);
    assert!(!decide(&s, &[q(0, 0, 0, 0)], &[live(Some(1.0), None, None, None)]).active);
    assert!(decide(&s, &[q(0, 0, 0, 0)], &[live(None, Some(0.1), None, None)]).active);
}

#[test]
fn broken_estimates_are_ignored() {
    let l = live(
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(-1.0),
        Some(f64::NAN),
    );
    let d = decide(&settings(), &[q(10, 0, 0, 0)], &[l]);
    assert!(d.metric_value.is_finite() && d.metric_value > 0.0);
}

fn arb_opt(max: f64) -> impl Strategy<Value = Option<f64>> {
    proptest::option::of(0.0..max)
}

#[derive(Clone, Debug)]
struct Input {
    q: QueueSignals,
    running: Option<f64>,
    rate: Option<f64>,
    s: Option<f64>,
    wait: Option<f64>,
    /// The sizing inputs: S̄ (long window) and the start rate S was measured against.
    sizing: Option<(f64, f64)>,
}

impl Input {
    fn eval(&self, set: &LatencySettings) -> Decision {
        decide(
            set,
            std::slice::from_ref(&self.q),
            &[with_sizing(
                live(self.running, self.rate, self.s, self.wait),
                self.sizing,
            )],
        )
    }
}

fn arb_input() -> impl Strategy<Value = Input> {
    (
        (0u64..1_000_000, 0u64..10_000, 0u64..10_000, 0u64..10_000),
        arb_opt(10_000.0),
        arb_opt(1_000.0),
        arb_opt(10_000.0),
        arb_opt(100_000.0),
        proptest::option::of((0.0f64..10_000.0, 0.0f64..1_000.0)),
    )
        .prop_map(|((b, r, sc, st), running, rate, s, wait, sizing)| Input {
            q: q(b, r, sc, st),
            running,
            rate,
            s,
            wait,
            sizing,
        })
}

/// `l` with the sizing inputs (S̄, start rate), when given.
fn with_sizing(mut l: LiveSignals, sizing: Option<(f64, f64)>) -> LiveSignals {
    if let Some((long_s, started)) = sizing {
        l.service_time_sizing = Some(Estimate::new(long_s, Source::Heartbeat));
        l.service_rate = Some(started);
    }
    l
}

fn arb_settings() -> impl Strategy<Value = LatencySettings> {
    (
        0.001f64..256.0,
        0.001f64..10_000.0,
        arb_opt(10_000.0),
        0.0f64..100.0,
        (0u32..6, any::<bool>()),
        arb_opt(20_000.0),
    )
        .prop_map(|(c, t, d, h, (m, acks_late), startup)| LatencySettings {
            concurrency: c,
            target_latency: t,
            task_duration: d.filter(|d| *d > 0.0),
            min_headroom: h,
            activation_list_length: 0.0,
            prefetch: Prefetch {
                multiplier: f64::from(m),
                acks_late,
            },
            pod_startup: startup,
        })
}

proptest! {
    #[test]
    fn finite_non_negative_zero_only_when_idle(i in arb_input(), s in arb_settings()) {
        // `podStartup` only lets a few listed tasks wait at zero (`tests/cold.rs`).
        let s = LatencySettings { pod_startup: None, ..s };
        let d = i.eval(&s);
        prop_assert!(d.metric_value.is_finite() && d.metric_value >= 0.0);
        prop_assert!(d.target.is_finite() && d.target > 0.0);
        // Idle: nothing waiting, reserved, stale or running, and under one arrival per
        // target (docs/scaling.md: a cold start serves such a queue).
        let idle = i.q.backlog == 0 && i.q.reserved == 0 && i.q.stale == 0
            && i.running.unwrap_or(0.0) == 0.0
            && i.rate.unwrap_or(0.0) * s.target_latency < 1.0;
        prop_assert_eq!(d.metric_value == 0.0, idle, "{:?}", d);
        // Active while a task waits for a slot (listed, stale, reserved beyond the running
        // count with a pod's slots all running under acks_late or, with no running count,
        // any reserved) or λ·T ≥ 1; tasks that only run do not activate. Never active with
        // a zero metric.
        let held = match i.running {
            Some(r) if s.prefetch.acks_late => i.q.reserved as f64 > r && r >= s.concurrency,
            _ => i.q.reserved > 0,
        };
        let flowing = i.rate.unwrap_or(0.0) * s.target_latency >= 1.0;
        prop_assert_eq!(d.active, i.q.backlog > 0 || i.q.stale > 0 || held || flowing, "{:?}", d);
        prop_assert!(!d.active || d.metric_value > 0.0);
        let parts: f64 = d.breakdown.iter().map(|c| c.value).sum();
        prop_assert!((parts - d.metric_value).abs() <= 1e-9 * d.metric_value.max(1.0));
    }

    /// `podStartup` only ever raises the metric: slots asked for must still start. Every
    /// component of the breakdown is finite and ≥ 0, and `startup` is 0 without it.
    #[test]
    fn the_startup_premium_only_adds(i in arb_input(), s in arb_settings()) {
        let plain = i.eval(&LatencySettings { pod_startup: None, ..s.clone() });
        prop_assert!(i.eval(&s).metric_value >= plain.metric_value);
        for d in [&plain, &i.eval(&s)] {
            prop_assert!(d.breakdown.iter().all(|c| c.value.is_finite() && c.value >= 0.0), "{:?}", d);
        }
        prop_assert_eq!(part(&plain, "startup"), 0.0, "{:?}", plain);
    }

    #[test]
    fn never_below_the_slots_busy_now(i in arb_input(), s in arb_settings()) {
        let d = i.eval(&s);
        let busy = i.running.unwrap_or(i.q.reserved as f64);
        prop_assert!(d.metric_value >= busy);
    }

    #[test]
    fn monotone_in_every_signal(i in arb_input(), s in arb_settings(), which in 0usize..7, extra in 0.001f64..1000.0) {
        // With `podStartup` more busy slots (reserved standing for them, or running) are
        // more slots up, which lowers the start-up's premium on the drain (`startup.rs`).
        let fewer_up = which == 3 || (which == 1 && i.running.is_none());
        let s = if fewer_up { LatencySettings { pod_startup: None, ..s } } else { s };
        let before = i.eval(&s);
        let mut more = i.clone();
        let bump = |v: Option<f64>| Some(v.unwrap_or(0.0) + extra);
        match which {
            0 => more.q.backlog += extra.ceil() as u64,
            1 => more.q.reserved += extra.ceil() as u64,
            2 => more.q.stale += extra.ceil() as u64,
            // A heartbeat count replaces the `reserved` stand-in: monotone once present. A
            // task that starts under acks_late stays in `unacked` (reserved grows with it):
            // more running with the same reserved would be fewer held ones.
            3 => {
                more.running = i.running.map(|v| v + extra);
                if s.prefetch.acks_late && i.running.is_some() {
                    more.q.reserved += extra.ceil() as u64;
                }
            }
            4 => more.rate = bump(i.rate),
            5 => more.s = i.s.map(|v| v + extra),
            _ => more.wait = bump(i.wait),
        }
        let after = more.eval(&s);
        prop_assert!(after.metric_value >= before.metric_value * (1.0 - 1e-12), "{:?} -> {:?}", before, after);
        // Activity is monotone in every signal but the running count: with the same reserved
        // count, more running tasks means fewer held ones (docs/scaling.md, "Activation").
        if which != 3 {
            prop_assert!(after.active || !before.active);
        }
    }

    #[test]
    fn a_missing_signal_never_breaks_the_decision(i in arb_input(), s in arb_settings(), drop in 0usize..4) {
        let mut less = i.clone();
        match drop {
            0 => less.running = None,
            1 => less.rate = None,
            2 => less.s = None,
            _ => less.wait = None,
        }
        let d = less.eval(&s);
        prop_assert!(d.metric_value.is_finite() && d.metric_value >= 0.0);
        // Work present still asks for capacity whatever is missing.
        if i.q.backlog + i.q.reserved + i.q.stale > 0 {
            prop_assert!(d.metric_value > 0.0);
        }
    }
}

/// `live` with the arrival and dequeue rates marked as lower bounds (or not).
fn with_rates(mut l: LiveSignals, arrival: f64, dequeue: Option<f64>, lower: bool) -> LiveSignals {
    let mark = |v: f64| {
        if lower {
            Estimate::lower_bound(v, Source::Conservation)
        } else {
            Estimate::new(v, Source::Conservation)
        }
    };
    l.arrival_rate = Some(mark(arrival));
    l.dequeue_rate = dequeue.map(mark);
    l
}

#[test]
fn a_lower_bound_rate_leans_on_dequeues_and_in_flight() {
    // Queue a: λ 1/s counted but a lower bound, 8 tasks in flight, 0.1 s tasks: λ·S = 0.1
    // alone would ask for a fraction of a slot beside queue b's flow.
    let a = |lower| {
        let mut l = with_rates(
            live(Some(8.0), None, Some(0.1), None),
            1.0,
            Some(3.0),
            lower,
        );
        l.name = "a".into();
        l
    };
    let mut b = with_rates(live(None, None, Some(1.0), None), 10.0, None, false);
    b.name = "b".into();
    let mut qa = q(0, 0, 0, 0);
    qa.name = "a".into();
    let mut qb = q(0, 0, 0, 0);
    qb.name = "b".into();
    let queues = [qa, qb];
    let exact = decide(&settings(), &queues, &[a(false), b.clone()]);
    let lower = decide(&settings(), &queues, &[a(true), b]);
    // Exact: max(8, 0.1 + 10) + headroom. Lower bound: a's flow is at least its 8 in flight
    // (and λ is raised to the dequeue rate, 3/s), so 8 + 10 + headroom.
    assert!((part(&exact, "in_flight") + part(&exact, "flow") - 10.1).abs() < 1e-9);
    assert!((part(&lower, "in_flight") + part(&lower, "flow") - 18.0).abs() < 1e-9);
    assert!(lower.metric_value > exact.metric_value);
    // Without in-flight work the lower bound uses the larger of arrivals and dequeues.
    let alone = |lower| {
        let l = with_rates(live(None, None, Some(1.0), None), 1.0, Some(3.0), lower);
        decide(&settings(), &[q(0, 0, 0, 0)], &[l])
    };
    assert!((part(&alone(false), "flow") - 1.0).abs() < 1e-9);
    assert!((part(&alone(true), "flow") - 3.0).abs() < 1e-9);
}

proptest! {
    /// docs/scaling.md: a lower-bound λ only ever raises the metric; the metric is never
    /// below the queue's in-flight work, nor below the larger of the two counted rates × S.
    #[test]
    fn a_lower_bound_rate_never_lowers_the_metric(
        i in arb_input(),
        s in arb_settings(),
        arrival in 0.0f64..1_000.0,
        dequeue in arb_opt(1_000.0),
    ) {
        let base = live(i.running, None, i.s, i.wait);
        let exact = decide(&s, std::slice::from_ref(&i.q), &[with_rates(base.clone(), arrival, dequeue, false)]);
        let lower = decide(&s, std::slice::from_ref(&i.q), &[with_rates(base, arrival, dequeue, true)]);
        prop_assert!(lower.metric_value.is_finite());
        prop_assert!(lower.metric_value >= exact.metric_value * (1.0 - 1e-12), "{:?} < {:?}", lower, exact);
        let busy = i.running.unwrap_or(i.q.reserved as f64);
        prop_assert!(lower.metric_value >= busy);
        if let Some(service) = i.s.filter(|v| *v > 0.0) {
            let counted = arrival.max(dequeue.unwrap_or(0.0)) * service.max(MIN_SERVICE_TIME);
            let slots = part(&lower, "in_flight") + part(&lower, "flow");
            prop_assert!(slots >= counted * (1.0 - 1e-12), "{} < {}", slots, counted);
        }
        prop_assert!(lower.active || !exact.active);
        let parts: f64 = lower.breakdown.iter().map(|c| c.value).sum();
        prop_assert!((parts - lower.metric_value).abs() <= 1e-9 * lower.metric_value.max(1.0));
    }
}

proptest! {
    /// `steady_slots` is what makes the metric monotone in λ, S and S95: non-decreasing in
    /// the load and the tail scale, non-increasing in the target, and above the load.
    #[test]
    fn steady_slots_is_monotone(
        load in 0.0f64..5_000.0,
        tail in 0.001f64..1_000.0,
        target in 0.001f64..1_000.0,
        more in 0.0f64..100.0,
    ) {
        let c = steady_slots(load, tail, target);
        prop_assert!(c.is_finite() && (c > load || load == 0.0));
        prop_assert!(steady_slots(load + more, tail, target) >= c);
        prop_assert!(steady_slots(load, tail + more, target) >= c);
        prop_assert!(steady_slots(load, tail, target + more) <= c);
    }

    /// A heavier service-time tail (p95) never lowers the metric.
    #[test]
    fn monotone_in_the_service_time_p95(i in arb_input(), s in arb_settings(), p95 in 0.0f64..10_000.0, more in 0.0f64..10_000.0) {
        let with = |v: f64| {
            let mut l = live(i.running, i.rate, i.s, i.wait);
            l.service_time_p95 = Some(Estimate::new(v, Source::Heartbeat));
            decide(&s, std::slice::from_ref(&i.q), &[l])
        };
        prop_assert!(with(p95 + more).metric_value >= with(p95).metric_value);
    }
}

#[test]
fn the_steady_rate_sizes_the_flow_not_the_burst_rate() {
    // The exported λ reads a one-tick burst (30/s); the steady λ over the window is 10/s.
    // The flow is sized on the steady one: a burst reaches the policy through the backlog.
    let mut l = live(Some(20.0), Some(30.0), Some(2.0), None);
    l.arrival_rate_steady = Some(Estimate::new(10.0, Source::Keyspace));
    let d = decide(&settings(), &[q(0, 0, 0, 0)], &[l]);
    assert_eq!(d.metric_value, steady_slots(20.0, 2.0, 30.0), "{d:?}");
    // Without a steady λ, the exported one is used.
    let d = decide(
        &settings(),
        &[q(0, 0, 0, 0)],
        &[live(Some(20.0), Some(30.0), Some(2.0), None)],
    );
    assert_eq!(d.metric_value, steady_slots(60.0, 2.0, 30.0), "{d:?}");
}

#[test]
fn pods_with_private_buffers_are_sized_one_m_m_c_queue_each() {
    // Celery's defaults (prefetch 4, early ack): each pod reserves tasks for its own slots,
    // so 4-slot pods fed λ/N each must keep P(wait > T) ≤ 5 %. λ = 5/s, S = 7.8 s: one pool
    // would need 40 slots (10 pods), separate pods 12 (48 slots).
    let l = live(Some(39.0), Some(5.0), Some(7.8), None);
    let defaults = decide(
        &LatencySettings::new(4.0, 30.0),
        &[q(0, 0, 0, 0)],
        std::slice::from_ref(&l),
    );
    assert_eq!(defaults.metric_value, 48.0, "{defaults:?}");
    assert_eq!(part(&defaults, "headroom"), 9.0);
    let early_ack_1 = LatencySettings {
        prefetch: Prefetch {
            multiplier: 1.0,
            acks_late: false,
        },
        ..LatencySettings::new(4.0, 30.0)
    };
    let d = decide(&early_ack_1, &[q(0, 0, 0, 0)], std::slice::from_ref(&l));
    assert_eq!(
        d.metric_value, 48.0,
        "early ack reserves beyond the running tasks"
    );
    // Prefetch 1 with acks_late: a pod fetches only for a free slot, one pool.
    let d = decide(&settings(), &[q(0, 0, 0, 0)], &[l]);
    assert_eq!(d.metric_value, 40.0, "{d:?}");
}

#[test]
fn tasks_that_only_run_keep_their_slots_but_not_the_trigger() {
    // Sparse arrivals (one 20 s task every ~3 min, T = 60 s, acks_late: the running task is
    // also `reserved`): while it runs the metric keeps its slot, but the trigger is inactive,
    // so KEDA's cooldown starts when it left the list, as with KEDA's redis scaler.
    let s = LatencySettings {
        target_latency: 60.0,
        ..settings()
    };
    let running = live(Some(1.0), Some(1.0 / 180.0), Some(20.0), None);
    let d = decide(&s, &[q(0, 1, 0, 0)], std::slice::from_ref(&running));
    assert!(d.metric_value >= 1.0 && !d.active, "{d:?}");
    // A second task reserved beside three free slots has just started: inactive. On a
    // full pod (four running) a fifth reserved one waits for a slot: active.
    let d = decide(&s, &[q(0, 2, 0, 0)], std::slice::from_ref(&running));
    assert!(d.metric_value >= 1.0 && !d.active, "{d:?}");
    let full = live(Some(4.0), Some(1.0 / 180.0), Some(20.0), None);
    let d = decide(&s, &[q(0, 5, 0, 0)], &[full]);
    assert!(d.metric_value >= 4.0 && d.active, "{d:?}");
    // Without a running count, a reserved task may be waiting: active.
    let blind = live(None, Some(1.0 / 180.0), Some(20.0), None);
    assert!(decide(&s, &[q(0, 1, 0, 0)], &[blind]).active);
    // One arrival per target or more: the flow keeps the trigger active while tasks run.
    let busy = live(Some(1.0), Some(1.0 / 60.0), Some(20.0), None);
    assert!(decide(&s, &[q(0, 1, 0, 0)], &[busy]).active);
    // A lower-bound λ is no evidence of quiet: the running task's flow keeps it active.
    let lower = with_rates(
        live(Some(1.0), None, Some(20.0), None),
        1.0 / 180.0,
        None,
        true,
    );
    assert!(decide(&s, &[q(0, 1, 0, 0)], &[lower]).active);
}

proptest! {
    /// docs/scaling.md, "Activation": on empty lists, under one arrival per target, tasks
    /// that only run are inactive whatever their number, and the metric still covers them.
    #[test]
    fn running_alone_never_activates_but_keeps_its_slots(
        running in 0.0f64..10_000.0,
        extra_running in 0u64..100,
        rate in 0.0f64..1.0,
        service in arb_opt(10_000.0),
        wait in arb_opt(100_000.0),
        s in arb_settings(),
    ) {
        let s = LatencySettings { prefetch: pooled(), ..s };
        let rate = rate / s.target_latency; // λ·T < 1
        // Reserved never above the running count: under acks_late every reserved task runs.
        let reserved = (running.floor() as u64).saturating_sub(extra_running);
        let d = decide(&s, &[q(0, reserved, 0, 0)], &[live(Some(running), Some(rate), service, wait)]);
        prop_assert!(!d.active, "{:?}", d);
        prop_assert!(d.metric_value >= running);
    }
}

#[test]
fn a_rate_resting_on_one_counted_arrival_is_no_flow() {
    // One arrival in the sampler's 30 s window reads λ = 1/30 s: λ·T = 2 for T = 60 s, but
    // it is one task, not a flow. Idle, it keeps no pod; running, it keeps the trigger off.
    let s = LatencySettings {
        target_latency: 60.0,
        ..settings()
    };
    let windowed = |running, rate, window| {
        let mut l = live(running, Some(rate), Some(20.0), None);
        l.rate_window = window;
        l
    };
    let d = decide(
        &s,
        &[q(0, 0, 0, 0)],
        &[windowed(Some(0.0), 1.0 / 30.0, Some(30.0))],
    );
    assert_eq!((d.metric_value, d.active), (0.0, false), "{d:?}");
    let d = decide(
        &s,
        &[q(0, 1, 0, 0)],
        &[windowed(Some(1.0), 1.0 / 30.0, Some(30.0))],
    );
    assert!(d.metric_value >= 1.0 && !d.active, "{d:?}");
    // Without the window the same rate is taken at its word: λ·T = 2 ≥ 1.
    let d = decide(
        &s,
        &[q(0, 0, 0, 0)],
        &[windowed(Some(0.0), 1.0 / 30.0, None)],
    );
    assert!(d.metric_value >= 1.0 && d.active, "{d:?}");
    // Four arrivals in the window are a flow.
    let d = decide(
        &s,
        &[q(0, 0, 0, 0)],
        &[windowed(Some(0.0), 4.0 / 30.0, Some(30.0))],
    );
    assert!(d.metric_value >= 1.0 && d.active, "{d:?}");
    // A lower-bound λ is never quiet.
    let mut lower = with_rates(
        live(Some(0.0), None, Some(20.0), None),
        1.0 / 30.0,
        None,
        true,
    );
    lower.rate_window = Some(30.0);
    assert!(decide(&s, &[q(0, 0, 0, 0)], &[lower]).active);
}

proptest! {
    /// docs/scaling.md, invariants: an idle queue whose rate rests on at most three
    /// arrivals counted in its window is zero and inactive whatever the target; one more
    /// arrival per window never lowers the metric.
    #[test]
    fn a_lone_counted_arrival_keeps_no_pod(
        window in 1.0f64..3_600.0,
        arrivals in 0.0f64..3.49,
        service in arb_opt(10_000.0),
        s in arb_settings(),
    ) {
        let with = |n: f64| {
            let mut l = live(Some(0.0), Some(n / window), service, None);
            l.rate_window = Some(window);
            decide(&s, &[q(0, 0, 0, 0)], &[l])
        };
        let d = with(arrivals);
        prop_assert_eq!((d.metric_value, d.active), (0.0, false), "{:?}", d);
        prop_assert!(with(arrivals + 1.0).metric_value >= d.metric_value);
    }
}

#[test]
fn running_tasks_in_unacked_are_not_drained_as_waiting_under_acks_late() {
    // acks_late: the 40 running tasks stay in `unacked` (reserved 40) until done; only the
    // 100 listed wait. S = 60 s, T = 30 s, nothing arriving: drain = 100·60/(60+30).
    let l = live(Some(40.0), Some(0.0), Some(60.0), None);
    let d = decide(&settings(), &[q(100, 40, 0, 0)], std::slice::from_ref(&l));
    assert!((d.metric_value - 100.0 * 60.0 / 90.0).abs() < 1e-9, "{d:?}");
    // Early ack: a started task is acked, so all 40 reserved wait behind the running ones.
    let early = LatencySettings {
        prefetch: Prefetch {
            multiplier: 4.0,
            acks_late: false,
        },
        ..LatencySettings::new(4.0, 30.0)
    };
    let d = decide(&early, &[q(100, 40, 0, 0)], &[l]);
    assert!((d.metric_value - 140.0 * 60.0 / 90.0).abs() < 1e-9, "{d:?}");
}

#[test]
fn the_steady_flow_is_the_occupancy_at_the_long_window_service_time() {
    // A saturated pod: the short window reads S = 60 s (four long tasks hold the slots while
    // starts have all but stopped: 0.13/s) and λ = 3/s; the long window says S̄ = 5 s. λ·S
    // would ask for 180 slots; occupancy is the 4 busy slots (S·r ≈ 7.8, Little's law over
    // the short window) plus what arrivals beyond the starts add at S̄.
    let mut l = live(Some(4.0), Some(3.0), Some(60.0), None);
    l.service_time_sizing = Some(Estimate::new(5.0, Source::Heartbeat));
    l.service_rate = Some(0.13);
    // One pool takes the smaller of that and λ·S̄ (see the test at the end of this file).
    let d = decide(&settings(), &[q(0, 4, 0, 0)], std::slice::from_ref(&l));
    let a = (60.0 * 0.13 + (3.0 - 0.13) * 5.0_f64).min(3.0 * 5.0);
    assert_eq!(d.metric_value, steady_slots(a, 5.0, 30.0), "{d:?}");
    assert!(d.metric_value < 30.0, "{d:?}");
    // Without the sizing inputs, λ·S as before.
    let plain = live(Some(4.0), Some(3.0), Some(60.0), None);
    let d = decide(&settings(), &[q(0, 4, 0, 0)], &[plain]);
    assert_eq!(d.metric_value, steady_slots(180.0, 60.0, 30.0), "{d:?}");
    // When the starts keep up with the arrivals the two agree: S·r = λ·S.
    let mut even = live(Some(4.0), Some(3.0), Some(2.0), None);
    even.service_time_sizing = Some(Estimate::new(2.0, Source::Heartbeat));
    even.service_rate = Some(3.0);
    let d = decide(&settings(), &[q(0, 4, 0, 0)], &[even]);
    assert_eq!(d.metric_value, steady_slots(6.0, 2.0, 30.0), "{d:?}");
    // Starts outrunning arrivals (a drain just ended) never take arrivals to zero slots:
    // S·r + (λ − r)·S̄ = 1 − 10 < 0, floored at λ × the smaller S.
    let mut drained = live(Some(0.0), Some(1.0), Some(0.5), None);
    drained.service_time_sizing = Some(Estimate::new(10.0, Source::Heartbeat));
    drained.service_rate = Some(2.0);
    let d = decide(&settings(), &[q(0, 0, 0, 0)], &[drained]);
    assert_eq!(d.metric_value, steady_slots(0.5, 10.0, 30.0), "{d:?}");
    assert!(d.active);
}

mod cold;
mod early_ack;

#[test]
fn one_pool_sizes_its_headroom_on_the_mean_load_not_on_long_tasks_holding_slots() {
    // markov-trace, a saturated tick: 12 slots busy, 10 of them with long tasks, so the
    // short window reads S = 20 s against 0.6 starts/s; λ = 3/s and S̄ = 6 s. Occupancy
    // (S·r + (λ − r)·S̄ = 26.4 slots) counts the long tasks' slots beyond their share; one
    // pool keeps those through `in_flight` and sizes the headroom on λ·S̄ = 18 slots.
    let mut l = live(Some(12.0), Some(3.0), Some(20.0), None);
    l.service_time_sizing = Some(Estimate::new(6.0, Source::Heartbeat));
    l.service_rate = Some(0.6);
    let occupancy = 20.0 * 0.6 + (3.0 - 0.6) * 6.0;
    let d = decide(&settings(), &[q(0, 12, 0, 0)], std::slice::from_ref(&l));
    assert_eq!(d.metric_value, steady_slots(3.0 * 6.0, 6.0, 30.0), "{d:?}");
    assert!(d.metric_value < steady_slots(occupancy, 6.0, 30.0), "{d:?}");
    // Never below the slots busy now: a pool held by more long tasks keeps them all.
    let d = decide(&settings(), &[q(0, 40, 0, 0)], &[with_running(&l, 40.0)]);
    assert_eq!(d.metric_value, 40.0, "{d:?}");
    // Pods with private buffers keep the occupancy: a task buffered in a pod whose slots
    // long tasks hold waits for that pod, whatever the other pods hold.
    let buffered = LatencySettings {
        prefetch: Prefetch {
            multiplier: 4.0,
            acks_late: true,
        },
        ..settings()
    };
    let d = decide(&buffered, &[q(0, 12, 0, 0)], std::slice::from_ref(&l));
    let per_pod = buffers::steady(&buffered.prefetch, occupancy, 6.0, 30.0, 4.0);
    assert_eq!(d.metric_value, per_pod, "{d:?}");
    // Starts shorter than S̄ (S < S̄): occupancy is the smaller and stays the load.
    let mut short = live(Some(2.0), Some(3.0), Some(1.0), None);
    short.service_time_sizing = Some(Estimate::new(6.0, Source::Heartbeat));
    short.service_rate = Some(2.0);
    let d = decide(&settings(), &[q(0, 2, 0, 0)], &[short]);
    let a = 1.0 * 2.0 + (3.0 - 2.0) * 6.0;
    assert_eq!(d.metric_value, steady_slots(a, 6.0, 30.0), "{d:?}");
}

fn with_running(l: &LiveSignals, running: f64) -> LiveSignals {
    LiveSignals {
        running: Some(Estimate::new(running, Source::Heartbeat)),
        ..l.clone()
    }
}

#[test]
fn a_task_reserved_beside_free_slots_is_starting_not_waiting() {
    // Sparse arrivals under acks_late (prefetch 1, 4 slots a pod, T = 60 s): a task that
    // arrives while a pod runs one is fetched into a free slot and starts at once, but
    // until the next heartbeat (2 s) it reads as reserved beyond the running count. It
    // must not restart KEDA's cooldown (the redis scaler never sees such a task), and its
    // slot stays counted.
    let s = LatencySettings {
        target_latency: 60.0,
        ..settings()
    };
    let one = live(Some(1.0), Some(1.0 / 180.0), Some(20.0), None);
    let d = decide(&s, &[q(0, 2, 0, 0)], std::slice::from_ref(&one));
    assert!(!d.active && d.metric_value >= 1.0, "{d:?}");
    // Three pods' worth of reserved tasks on eleven running slots: no pod can be told full
    // or not from the count alone, so the held ones may wait: active.
    let many = live(Some(11.0), Some(1.0 / 180.0), Some(20.0), None);
    assert!(decide(&s, &[q(0, 12, 0, 0)], &[many]).active);
    // Two queues of one trigger: their running shares add up to a full pod, so a task
    // reserved beyond one queue's share may wait.
    let named = |name: &str, running: f64| LiveSignals {
        name: name.into(),
        ..live(Some(running), Some(1.0 / 180.0), Some(20.0), None)
    };
    let queue = |name: &str, reserved: u64| QueueSignals {
        name: name.into(),
        ..q(0, reserved, 0, 0)
    };
    let d = decide(
        &s,
        &[queue("a", 3), queue("b", 2)],
        &[named("a", 2.0), named("b", 2.0)],
    );
    assert!(d.active, "{d:?}");
    // Early ack: a reserved task is prefetched, not started, whatever runs: active.
    let early = LatencySettings {
        prefetch: Prefetch {
            multiplier: 4.0,
            acks_late: false,
        },
        ..s.clone()
    };
    assert!(decide(&early, &[q(0, 1, 0, 0)], std::slice::from_ref(&one)).active);
    // No running count: any reserved task may wait, as before.
    let blind = live(None, Some(1.0 / 180.0), Some(20.0), None);
    assert!(decide(&s, &[q(0, 2, 0, 0)], &[blind]).active);
}

#[test]
fn up_to_three_counted_arrivals_ask_for_no_second_pod() {
    // Sparse arrivals (T = 60 s, 4 slots a pod): two or three tasks within the sampler's
    // 30 s window, no service time measured yet (S falls back to T). λ·S read 4 and 6
    // slots, which the Erlang term turned into 6 and 8: a second pod for a minute. The
    // counted tasks are the ones running or listed now, and `in_flight` and `drain` size
    // them.
    let s = LatencySettings {
        target_latency: 60.0,
        ..settings()
    };
    let windowed = |running: f64, arrivals: f64| {
        let mut l = live(Some(running), Some(arrivals / 30.0), None, None);
        l.rate_window = Some(30.0);
        l
    };
    for (arrivals, running, backlog) in [(2.0, 1.0, 1), (3.0, 0.0, 3), (3.0, 2.0, 1)] {
        let d = decide(
            &s,
            &[q(backlog, running as u64, 0, 0)],
            &[windowed(running, arrivals)],
        );
        assert!(d.metric_value <= 4.0 && d.metric_value >= running, "{d:?}");
        assert_eq!(part(&d, "flow"), 0.0, "{d:?}");
        assert!(d.active, "a listed task activates: {d:?}");
    }
    // Four arrivals are a flow: slots for the tasks still to come.
    let d = decide(&s, &[q(1, 1, 0, 0)], &[windowed(1.0, 4.0)]);
    assert!(d.metric_value > 4.0 && part(&d, "flow") > 0.0, "{d:?}");
}

proptest! {
    /// docs/scaling.md, "Few arrivals are no flow": a rate resting on at most three
    /// arrivals counted in its window, with at most three tasks present, decides as no
    /// arrivals at all.
    #[test]
    fn a_quiet_flow_adds_nothing_to_a_handful_of_tasks(
        (backlog, reserved, stale) in (0u64..=1, 0u64..=1, 0u64..=1),
        running in arb_opt(0.49),
        service in arb_opt(10_000.0),
        wait in arb_opt(100_000.0),
        sizing in proptest::option::of((0.0f64..10_000.0, 0.0f64..1_000.0)),
        s in arb_settings(),
        window in 1.0f64..3_600.0,
        arrivals in 0.0f64..3.49,
    ) {
        let with = |rate: f64| {
            let mut l = with_sizing(live(running, Some(rate), service, wait), sizing);
            l.rate_window = Some(window);
            decide(&s, &[q(backlog, reserved, 0, stale)], &[l])
        };
        let (quiet, none) = (with(arrivals / window), with(0.0));
        prop_assert_eq!(quiet.metric_value, none.metric_value, "{:?}", quiet);
        prop_assert_eq!(quiet.active, none.active, "{:?}", quiet);
    }
}

#[test]
fn tasks_outlasting_the_window_keep_their_flow_on_few_arrivals() {
    // 300 s tasks, one arrival every 20 s: the 30 s window counts 1.5 arrivals, but 15
    // tasks run. Those are no handful: the flow (λ·S = 15 slots) and its Erlang margin
    // size them, as they would with a longer window.
    let s = LatencySettings {
        target_latency: 60.0,
        ..settings()
    };
    let mut l = live(Some(15.0), Some(1.0 / 20.0), Some(300.0), None);
    l.rate_window = Some(30.0);
    let d = decide(&s, &[q(0, 15, 0, 0)], &[l]);
    assert_eq!(d.metric_value, steady_slots(15.0, 300.0, 60.0), "{d:?}");
    assert!(d.metric_value > 15.0, "{d:?}");
}

/// A queue's live signals after a burst of `rate` × 30 s arrivals counted in a 30 s window,
/// the last of them `quiet` seconds ago.
fn after_burst(rate: f64, quiet: Option<f64>) -> LiveSignals {
    LiveSignals {
        arrival_rate_steady: Some(Estimate::new(rate, Source::ListPosition)),
        rate_window: Some(30.0),
        arrivals_quiet_for: quiet,
        ..live(None, Some(rate), Some(1.0), Some(0.0))
    }
}

#[test]
fn a_burst_that_is_over_keeps_no_flow_and_no_trigger_active() {
    // 1,000 tasks in the window, all served; the last arrived 2 s ago. A flow still on at
    // 33 tasks/s leaves no 2 s gap: the burst is over, the queue is idle.
    let s = settings();
    let idle = [q(0, 0, 0, 0)];
    let over = decide(&s, &idle, &[after_burst(1_000.0 / 30.0, Some(2.0))]);
    assert!(!over.active, "{over:?}");
    assert_eq!(over.metric_value, 0.0, "{over:?}");
    // Arrivals counted this tick: the flow goes on and is sized.
    let on = decide(&s, &idle, &[after_burst(1_000.0 / 30.0, Some(0.0))]);
    assert!(on.active, "{on:?}");
    assert!(on.metric_value > 33.0, "{on:?}");
    // No quiet known (an older sampler, or a rate heartbeats credit): as before.
    let unknown = decide(&s, &idle, &[after_burst(1_000.0 / 30.0, None)]);
    assert_eq!(unknown, on);
    // While the burst's backlog drains, the drain term and the trigger stay.
    let draining = decide(
        &s,
        &[q(500, 0, 0, 0)],
        &[after_burst(1_000.0 / 30.0, Some(5.0))],
    );
    assert!(draining.active, "{draining:?}");
    assert!(part(&draining, "drain") > 0.0, "{draining:?}");
}

#[test]
fn a_gap_a_steady_flow_would_leave_is_no_stop() {
    // 2 tasks/s, 60 arrivals in the window: a 1 s gap is common ((1 − 1/30)^60 ≈ e^−2), a
    // 4 s one is not ((1 − 4/30)^60 ≈ e^−8.6).
    let s = settings();
    let idle = [q(0, 0, 0, 0)];
    let gap = |quiet: f64| decide(&s, &idle, &[after_burst(2.0, Some(quiet))]);
    assert!(gap(1.0).active, "{:?}", gap(1.0));
    assert!(gap(1.0).metric_value > 2.0, "{:?}", gap(1.0));
    assert!(!gap(4.0).active, "{:?}", gap(4.0));
    // 0.25 tasks/s, 7.5 arrivals in the window: 8 s of quiet is left by a flow still on
    // with probability (1 − 8/30)^7.5 ≈ 10 %, 20 s with (1/3)^7.5 ≈ 0.03 %.
    assert!(decide(&s, &idle, &[after_burst(0.25, Some(8.0))]).active);
    assert!(!decide(&s, &idle, &[after_burst(0.25, Some(20.0))]).active);
    // A lower-bound λ rests on arrivals mostly unseen: its quiet is no evidence.
    let mut unseen = after_burst(2.0, Some(10.0));
    unseen.arrival_rate_steady = Some(Estimate::lower_bound(2.0, Source::Conservation));
    assert!(decide(&s, &idle, &[unseen]).active);
}

proptest! {
    /// A stopped flow only ever lowers the metric, never below what runs.
    #[test]
    fn a_stopped_flow_never_raises_the_metric_nor_drops_below_in_flight(
        (backlog, reserved) in (0u64..1_000, 0u64..100),
        running in arb_opt(100.0),
        rate in 0.0f64..1_000.0,
        quiet in 0.0f64..100.0,
        s in arb_settings(),
    ) {
        let with = |quiet: Option<f64>| {
            let mut l = after_burst(rate, quiet);
            l.running = running.map(|v| Estimate::new(v, Source::Heartbeat));
            decide(&s, &[q(backlog, reserved, 0, 0)], &[l])
        };
        let (stopped, on) = (with(Some(quiet)), with(None));
        prop_assert!(stopped.metric_value <= on.metric_value, "{:?} vs {:?}", stopped, on);
        let in_flight = part(&stopped, "in_flight");
        prop_assert!(stopped.metric_value >= in_flight, "{:?}", stopped);
    }
}

/// Decides on an idle queue at each 1 s tick of `arrivals` (tasks counted per tick), with
/// the live signals a sampler's 30 s rate window gives: how many ticks read no flow.
fn ticks_without_flow(arrivals: impl Iterator<Item = u64>) -> usize {
    use crate::signals::estimate::RateEstimator;
    let mut r = RateEstimator::new(30.0);
    let (mut count, mut none) = (0u64, 0usize);
    for (t, n) in arrivals.enumerate() {
        count += n;
        r.observe(t as f64, count);
        if t < 30 {
            continue;
        }
        let rate = r.smoothed_rate().unwrap_or(0.0);
        let l = LiveSignals {
            arrivals_longest_gap: Some(r.longest_gap()),
            ..after_burst(rate, r.quiet_for())
        };
        let d = decide(&settings(), &[q(0, 0, 0, 0)], &[l]);
        none += usize::from(!d.active || d.metric_value == 0.0);
    }
    none
}

#[test]
fn a_producer_sending_batches_is_no_stopped_flow_between_them() {
    // 50 tasks every 5 s: each 4 s gap would be a stop for a Poisson flow of 10/s, but the
    // flow left such gaps all along. (Without the longest-gap rule: 2,856 of 3,570 ticks.)
    let batches = (0..3_600u64).map(|t| if t % 5 == 0 { 50 } else { 0 });
    assert_eq!(ticks_without_flow(batches), 0);
    // 20 every 2 s likewise.
    let pairs = (0..3_600u64).map(|t| if t % 2 == 0 { 20 } else { 0 });
    assert_eq!(ticks_without_flow(pairs), 0);
    // A burst of 300 on top of one task a second: the background's gaps (1 s) are what the
    // quiet is weighed against, and it never goes quiet.
    let mixed = (0..600u64).map(|t| if t == 300 { 301 } else { 1 });
    assert_eq!(ticks_without_flow(mixed), 0);
    // A burst that is over on an otherwise idle queue: no flow within a few ticks.
    let burst = (0..120u64).map(|t| if (40..50).contains(&t) { 100 } else { 0 });
    let none = ticks_without_flow(burst);
    assert!(none >= 120 - 30 - 10 - 3, "{none}");
}

proptest! {
    /// docs/scaling.md, "A flow that stopped": with a quiet known, the decision is the one
    /// without it, or (a quiet longer than every earlier gap and than the window's arrivals
    /// would leave with probability e^−7) the one with no arrivals; either way finite, never
    /// below what runs, never active with a zero metric, and the breakdown adds up.
    #[test]
    fn a_quiet_decides_as_unheard_or_as_no_arrivals(
        i in arb_input(),
        s in arb_settings(),
        quiet in 0.0f64..100.0,
        gap in 0.0f64..50.0,
        window in 1.0f64..120.0,
    ) {
        let eval = |rate: Option<f64>, heard: bool| {
            let mut l = with_sizing(live(i.running, rate, i.s, i.wait), i.sizing);
            l.rate_window = Some(window);
            if heard {
                l.arrivals_quiet_for = Some(quiet);
                l.arrivals_longest_gap = Some(gap);
            }
            decide(&s, std::slice::from_ref(&i.q), &[l])
        };
        let d = eval(i.rate, true);
        prop_assert!(d.metric_value.is_finite() && d.metric_value >= 0.0);
        prop_assert!(d.metric_value >= part(&d, "in_flight"), "{:?}", d);
        prop_assert!(!d.active || d.metric_value > 0.0, "{:?}", d);
        let parts: f64 = d.breakdown.iter().map(|c| c.value).sum();
        prop_assert!((parts - d.metric_value).abs() <= 1e-9 * d.metric_value.max(1.0));
        let rate = i.rate.unwrap_or(0.0);
        let stop = quiet > gap
            && rate > 0.0
            && rate * window * (-(quiet / window).min(1.0)).ln_1p() < -STOPPED_FLOW;
        let same = if stop { eval(Some(0.0), false) } else { eval(i.rate, false) };
        prop_assert_eq!(d.metric_value, same.metric_value, "stop {}: {:?} vs {:?}", stop, d, same);
        prop_assert_eq!(d.active, same.active, "stop {}: {:?} vs {:?}", stop, d, same);
    }
}

#[test]
fn an_infinite_or_nan_part_leaves_every_component_finite() {
    let p = Parts {
        in_flight: 2.0,
        flow: f64::INFINITY,
        steady: f64::INFINITY,
        headroom_configured: false,
        plain_drain: f64::NAN,
        metric_value: f64::MAX,
    };
    let parts = breakdown(&[], &p);
    assert!(
        parts.iter().all(|c| c.value.is_finite() && c.value >= 0.0),
        "{parts:?}"
    );
    assert_eq!(parts[0].value, 2.0);
    assert_eq!(parts.iter().map(|c| c.value).sum::<f64>(), f64::MAX);
}
