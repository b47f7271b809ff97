//! Waiting at zero (`podStartup`, `cold.rs`): a few listed tasks on an idle queue keep the
//! trigger inactive while, started `podStartup` later, they still start within the target.

use super::*;
use crate::policy::latency::cold as at_zero;

/// T = 60 s, 4 slots a pod, pods up 20 s after activation: a start is due when the oldest
/// task is 0.8·60 − 20 = 28 s old.
fn cold() -> LatencySettings {
    LatencySettings {
        pod_startup: Some(20.0),
        ..LatencySettings::new(4.0, 60.0)
    }
}

fn lone(backlog: u64, wait: Option<f64>) -> (QueueSignals, LiveSignals) {
    (q(backlog, 0, 0, 0), live(None, None, None, wait))
}

fn active(s: &LatencySettings, (q, l): &(QueueSignals, LiveSignals)) -> bool {
    decide(s, std::slice::from_ref(q), std::slice::from_ref(l)).active
}

#[test]
fn a_lone_task_waits_at_zero_until_its_start_is_due() {
    assert_eq!(at_zero::due_age(cold().pod_startup, 60.0, 1.0), Some(28.0));
    for (wait, want) in [(0.5, false), (27.9, false), (28.0, true), (50.0, true)] {
        assert_eq!(active(&cold(), &lone(1, Some(wait))), want, "wait {wait}");
    }
    // Without `podStartup` the first task activates at once, as before.
    let plain = LatencySettings::new(4.0, 60.0);
    assert!(active(&plain, &lone(1, Some(0.5))));
    assert_eq!(at_zero::due_age(plain.pod_startup, 60.0, 1.0), None);
    // The trigger waits; the metric only gains the start-up's premium (`startup.rs`).
    let (q, l) = lone(1, Some(0.5));
    let a = decide(&cold(), std::slice::from_ref(&q), std::slice::from_ref(&l));
    let b = decide(&plain, std::slice::from_ref(&q), std::slice::from_ref(&l));
    assert!(a.metric_value > b.metric_value, "{a:?} {b:?}");
}

/// The reserve is a fifth of T or one and a half sampler ticks, whichever is longer: an age
/// dated from the mid-point of two ticks reads up to half a tick short, and the rule looks
/// again a tick later. With a 10 s tick (the slowest the sampler allows) and T = 60 s the
/// reserve is 15 s, so a start is due at 60 − 15 − 20 = 25 s instead of 28 s.
#[test]
fn the_reserve_covers_a_slow_sampler_tick() {
    assert_eq!(at_zero::due_age(Some(20.0), 60.0, 0.0), Some(28.0));
    assert_eq!(at_zero::due_age(Some(20.0), 60.0, 8.0), Some(28.0));
    assert_eq!(at_zero::due_age(Some(20.0), 60.0, 10.0), Some(25.0));
    assert_eq!(at_zero::due_age(Some(20.0), 60.0, f64::NAN), Some(28.0));
    let at = |wait: f64, tick: Option<f64>| {
        let (q, mut l) = lone(1, Some(wait));
        l.tick = tick;
        active(&cold(), &(q, l))
    };
    assert!(!at(26.0, None));
    assert!(!at(26.0, Some(1.0)));
    assert!(
        at(26.0, Some(10.0)),
        "a 26 s old task under 10 s ticks is due"
    );
    assert!(!at(24.9, Some(10.0)));
    // A longer tick never turns the trigger inactive.
    for wait in [0.0, 10.0, 20.0, 25.0, 27.9, 30.0] {
        let mut was = false;
        for tick in [
            None,
            Some(0.5),
            Some(1.0),
            Some(5.0),
            Some(9.0),
            Some(10.0),
            Some(40.0),
        ] {
            let now = at(wait, tick);
            assert!(now || !was, "wait {wait} tick {tick:?}");
            was = now;
        }
    }
    // A tick so long that the reserve leaves no room: nothing waits.
    assert!(at(0.0, Some(40.0)));
}

/// The drain's start-up premium (`startup.rs`) through `decide`: from zero 20 listed 1 s
/// tasks that have waited 30 s (B = 30 s; with a 20 s start-up B' = 12 s) ask for
/// 20/13 slots instead of 20/31; as live workers come up the premium fades, and with as
/// many slots up as the plain drain needs it is gone.
#[test]
fn the_drain_premium_fades_as_live_workers_come_up() {
    let s = LatencySettings {
        pod_startup: Some(20.0),
        ..LatencySettings::new(1.0, 60.0)
    };
    let plain = LatencySettings::new(1.0, 60.0);
    let at = |s: &LatencySettings, workers: Option<f64>| {
        let mut l = live(None, None, Some(1.0), Some(30.0));
        l.workers = workers.map(|n| Estimate::new(n, Source::Heartbeat));
        decide(s, &[q(20, 0, 0, 0)], &[l]).metric_value
    };
    let (drain, fresh) = (20.0 / 31.0, 20.0 / 13.0);
    assert!(
        (at(&plain, None) - drain).abs() < 1e-9,
        "{}",
        at(&plain, None)
    );
    assert!((at(&s, None) - fresh).abs() < 1e-9, "{}", at(&s, None));
    let mut last = at(&s, None);
    for n in [0.1, 0.3, 0.5] {
        let v = at(&s, Some(n));
        assert!(v < last && v > drain, "{n} workers: {v}");
        last = v;
    }
    assert!((at(&s, Some(1.0)) - at(&plain, Some(1.0))).abs() < 1e-9);

    // The breakdown shows the premium apart from the plain drain.
    let d = decide(
        &s,
        &[q(20, 0, 0, 0)],
        &[live(None, None, Some(1.0), Some(30.0))],
    );
    assert!((part(&d, "drain") - drain).abs() < 1e-9, "{d:?}");
    assert!(
        (part(&d, "startup") - (fresh - drain)).abs() < 1e-9,
        "{d:?}"
    );
    let d = decide(
        &plain,
        &[q(20, 0, 0, 0)],
        &[live(None, None, Some(1.0), Some(30.0))],
    );
    assert_eq!(part(&d, "startup"), 0.0, "{d:?}");
}

#[test]
fn anything_else_that_asks_for_a_pod_activates_at_once() {
    let young = Some(1.0);
    // More listed tasks than one pod starts at once.
    assert!(!active(&cold(), &lone(4, young)));
    assert!(active(&cold(), &lone(5, young)));
    // An age not measured yet.
    assert!(active(&cold(), &lone(1, None)));
    // A task running (a pod is up: the listed one waits for a slot or is being taken).
    let (qu, mut l) = lone(1, young);
    l.running = Some(Estimate::new(1.0, Source::Heartbeat));
    assert!(active(&cold(), &(q(1, 1, 0, 0), l)));
    // Stale entries.
    assert!(active(&cold(), &(q(1, 0, 0, 1), lone(1, young).1)));
    // A steady flow counted (0.1/s, λ·T = 6): tasks that keep coming are no lone task.
    let mut l = lone(1, young).1;
    l.arrival_rate = Some(Estimate::new(0.1, Source::Keyspace));
    assert!(active(&cold(), &(qu.clone(), l)));
    // One arrival in two minutes adds under one (and is no flow): still waits.
    let mut l = lone(1, young).1;
    l.arrival_rate = Some(Estimate::new(1.0 / 120.0, Source::Keyspace));
    assert!(!active(&cold(), &(qu, l)));
    // A start-up longer than the target allows never waits.
    let slow = LatencySettings {
        pod_startup: Some(48.0),
        ..cold()
    };
    assert!(active(&slow, &lone(1, Some(0.0))));
}

#[test]
fn the_oldest_of_several_queues_decides() {
    let queues = [
        q(1, 0, 0, 0),
        QueueSignals {
            name: "r".into(),
            ..q(1, 0, 0, 0)
        },
    ];
    let ages = |a: f64, b: Option<f64>| {
        [
            live(None, None, None, Some(a)),
            LiveSignals {
                name: "r".into(),
                ..live(None, None, None, b)
            },
        ]
    };
    assert!(!decide(&cold(), &queues, &ages(2.0, Some(10.0))).active);
    assert!(decide(&cold(), &queues, &ages(2.0, Some(30.0))).active);
    assert!(decide(&cold(), &queues, &ages(2.0, None)).active);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `podStartup` keeps the trigger inactive only for a few young listed tasks with
    /// nothing else in the system, and only raises the metric (the drain's start-up premium);
    /// activity stays monotone in every signal and in `podStartup` itself.
    #[test]
    fn waiting_at_zero_only_delays_a_few_young_tasks(
        i in arb_input(),
        s in arb_settings(),
        startup in 0.0f64..20_000.0,
        more in 0.001f64..1_000.0,
    ) {
        let plain = LatencySettings { pod_startup: None, ..s.clone() };
        let with = LatencySettings { pod_startup: Some(startup), ..s.clone() };
        let (a, b) = (i.eval(&with), i.eval(&plain));
        prop_assert!(a.metric_value >= b.metric_value, "the start-up premium only adds");
        prop_assert!(!a.active || b.active, "waiting never activates");
        if b.active && !a.active {
            let due = s.target_latency * (1.0 - at_zero::START_MARGIN) - startup;
            prop_assert!(i.wait.is_some_and(|w| w < due), "{:?}", i);
            prop_assert!(i.q.backlog as f64 <= s.concurrency && i.q.stale == 0);
            prop_assert!(i.running.unwrap_or(i.q.reserved as f64) == 0.0);
        }
        // A longer start-up, an older task or more listed tasks never turn it inactive.
        let slower = LatencySettings { pod_startup: Some(startup + more), ..s.clone() };
        prop_assert!(i.eval(&slower).active || !a.active);
        let mut older = i.clone();
        older.wait = Some(i.wait.unwrap_or(0.0) + more);
        prop_assert!(older.eval(&with).active || !a.active);
        let mut longer = i.clone();
        longer.q.backlog += more.ceil() as u64;
        prop_assert!(longer.eval(&with).active || !a.active);
    }
}
