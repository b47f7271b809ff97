//! Latency mode under early ack (Celery's default): `unacked` holds only the tasks waiting
//! in pods' buffers, so what it shows is a wait, never a service time.

use super::*;

fn early_ack(workers: Option<f64>, p95: f64, s: (f64, Source)) -> LiveSignals {
    let mut l = live(Some(39.0), Some(5.0), None, None);
    l.service_time = Some(Estimate::new(s.0, s.1));
    l.service_time_p95 = Some(Estimate::new(p95, Source::UnackedResidence));
    l.workers = workers.map(|n| Estimate::new(n, Source::Heartbeat));
    l
}

#[test]
fn under_early_ack_the_tail_scale_comes_from_the_buffer_waits_and_the_pods() {
    // Celery's defaults: `unacked` holds only tasks not started, so its residence p95 (60 s)
    // is how long delayed tasks waited in a pod's buffer. λ = 5/s, S = 7.8 s (heartbeats),
    // 20 pods now: 1.95 busy slots a pod, θ = 60·(4 − 1.95)/ln 20 = 41.1 s, not 60/3 = 20 s.
    let s = LatencySettings::new(4.0, 30.0);
    let beat = (7.8, Source::Heartbeat);
    let d = decide(&s, &[q(0, 0, 0, 0)], &[early_ack(Some(20.0), 60.0, beat)]);
    let theta = 60.0 * (4.0 - 39.0 / 20.0) / P95_FACTOR;
    assert_eq!(
        d.metric_value,
        buffers::per_pod_slots(39.0, theta, 30.0, 4.0),
        "{d:?}"
    );
    assert!(d.metric_value > buffers::per_pod_slots(39.0, 20.0, 30.0, 4.0));
    // Without the pods' count, c − a is taken as c: θ = 60·4/ln 20.
    let d = decide(&s, &[q(0, 0, 0, 0)], &[early_ack(None, 60.0, beat)]);
    let upper = 60.0 * 4.0 / P95_FACTOR;
    assert_eq!(
        d.metric_value,
        buffers::per_pod_slots(39.0, upper, 30.0, 4.0)
    );
    // Short waits explain no tail beyond S.
    let d = decide(&s, &[q(0, 0, 0, 0)], &[early_ack(Some(20.0), 5.0, beat)]);
    assert_eq!(d.metric_value, buffers::per_pod_slots(39.0, 7.8, 30.0, 4.0));
    // Under acks_late (prefetch 4) the residence includes the run: a service time's p95.
    let late = LatencySettings {
        prefetch: Prefetch {
            multiplier: 4.0,
            acks_late: true,
        },
        ..s
    };
    let d = decide(
        &late,
        &[q(0, 0, 0, 0)],
        &[early_ack(Some(20.0), 60.0, beat)],
    );
    assert_eq!(
        d.metric_value,
        buffers::per_pod_slots(39.0, 20.0, 30.0, 4.0)
    );
}

#[test]
fn under_early_ack_unacked_gives_no_service_time() {
    // The residence in `unacked` (3 s) is a buffer wait under early ack: `taskDuration`
    // (7.8 s) is the service time, as if nothing had been measured.
    let s = LatencySettings {
        task_duration: Some(7.8),
        ..LatencySettings::new(4.0, 30.0)
    };
    let measured = |src| early_ack(Some(20.0), 0.0, (3.0, src));
    let d = decide(&s, &[q(10, 0, 0, 0)], &[measured(Source::UnackedResidence)]);
    assert_eq!(d.metric_value, buffers::per_pod_slots(39.0, 7.8, 30.0, 4.0));
    assert_eq!(d.breakdown[3].source, "config", "{d:?}");
    let occupancy = decide(&s, &[q(10, 0, 0, 0)], &[measured(Source::UnackedOccupancy)]);
    assert_eq!(occupancy.metric_value, d.metric_value);
    // A heartbeat service time is the workers' own, and is used (λ·S = 15 slots, below the
    // 39 running).
    let beat = decide(&s, &[q(10, 0, 0, 0)], &[measured(Source::Heartbeat)]);
    assert_eq!(buffers::per_pod_slots(15.0, 3.0, 30.0, 4.0), 20.0);
    assert_eq!(beat.metric_value, 39.0, "{beat:?}");
}

#[test]
fn under_early_ack_the_long_window_service_time_from_unacked_is_not_used() {
    // The sampler's long-window S̄ follows the tick's S: from `unacked` under early ack it is
    // a buffer wait (0.5 s), and with no starts now λ·S̄ would take 39 slots down to 2.5.
    // `taskDuration` (7.8 s) stands, as for S itself.
    let s = LatencySettings {
        task_duration: Some(7.8),
        ..LatencySettings::new(4.0, 30.0)
    };
    let plain = early_ack(Some(20.0), 0.0, (0.5, Source::UnackedResidence));
    let expected = decide(&s, &[q(0, 0, 0, 0)], std::slice::from_ref(&plain)).metric_value;
    assert_eq!(expected, buffers::per_pod_slots(39.0, 7.8, 30.0, 4.0));
    for rate in [0.0, 5.0] {
        let mut l = plain.clone();
        l.service_time_sizing = Some(Estimate::new(0.5, Source::UnackedResidence));
        l.service_rate = Some(rate);
        let d = decide(&s, &[q(0, 0, 0, 0)], &[l]);
        assert_eq!(d.metric_value, expected, "starts {rate}/s: {d:?}");
    }
}

proptest! {
    /// Under early ack, longer waits in the pods' buffers, or the same waits behind more pods
    /// (a heavier tail explains them), never lower the metric.
    #[test]
    fn monotone_in_the_buffer_wait_p95_and_the_workers(
        i in arb_input(),
        s in arb_settings(),
        p95 in 0.0f64..10_000.0,
        more in 0.0f64..10_000.0,
        // No live worker (0) counts as unknown, like `None`: the upper bound (below).
        workers in proptest::option::of(1.0f64..1_000.0),
        extra in 0.0f64..1_000.0,
    ) {
        let with_in = |s: &LatencySettings, v: f64, n: Option<f64>| {
            let mut l = live(i.running, i.rate, i.s, i.wait);
            l.service_time_p95 = Some(Estimate::new(v, Source::UnackedResidence));
            l.workers = n.map(|n| Estimate::new(n, Source::Heartbeat));
            decide(s, std::slice::from_ref(&i.q), &[l]).metric_value
        };
        let with = |v: f64, n: Option<f64>| with_in(&s, v, n);
        let base = with(p95, workers);
        prop_assert!(base.is_finite() && base >= 0.0);
        prop_assert!(with(p95 + more, workers) >= base);
        // With `podStartup` more live workers are more slots up: a smaller start-up premium.
        let plain = LatencySettings { pod_startup: None, ..s.clone() };
        let plain_base = with_in(&plain, p95, workers);
        prop_assert!(with_in(&plain, p95, workers.map(|n| n + extra)) >= plain_base);
        prop_assert!(with(p95, None) >= base, "unknown workers: the upper bound");
        prop_assert!(with(p95, Some(0.0)) >= base, "no live worker: unknown, the upper bound");
    }
}
