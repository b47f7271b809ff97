//! Estimators against synthetic series with a fake clock.

use super::*;
use crate::signals::heartbeat::{glob_match, Heartbeat, HeartbeatBook};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn rate_of_a_steady_counter() {
    let mut r = RateEstimator::new(10.0);
    assert_eq!(r.rate(), None);
    for s in 0..=30 {
        r.observe(1000.0 + s as f64, 50 * s);
    }
    assert!(close(r.rate().unwrap(), 50.0, 1e-9), "{:?}", r.rate());
}

#[test]
fn a_tick_woken_just_after_the_previous_one_reads_no_burst_from_one_arrival() {
    // One arrival every 10 s, sampled every second; then a tick woken 0.05 s after the
    // last regular one by a new arrival (keyspace notifications). Found by the simulator:
    // the burst path read it as 20 tasks/s, held for a whole tick.
    let mut r = RateEstimator::new(30.0);
    let mut c = 0;
    for s in 0..=60u64 {
        if s % 10 == 5 {
            c += 1;
        }
        r.observe(s as f64, c);
    }
    r.observe(60.05, c + 1);
    let woken = r.rate().unwrap();
    assert!(woken < 1.0, "{woken}");
    // A real burst in a regular tick still shows at once.
    r.observe(61.0, c + 201);
    assert!(r.rate().unwrap() > 100.0, "{:?}", r.rate());
}

#[test]
fn a_burst_shows_in_the_first_tick_and_a_lull_fades_over_the_window() {
    let mut r = RateEstimator::new(10.0);
    let mut c = 0;
    for s in 0..20 {
        c += 10;
        r.observe(s as f64, c);
    }
    assert!(close(r.rate().unwrap(), 10.0, 1e-9));
    c += 500;
    r.observe(20.0, c);
    assert!(
        close(r.rate().unwrap(), 500.0, 1e-9),
        "burst: {:?}",
        r.rate()
    );
    // Nothing arrives afterwards: the rate decays, not drops, while the burst is in the window.
    r.observe(21.0, c);
    let after = r.rate().unwrap();
    assert!(after > 10.0 && after < 500.0, "{after}");
    for s in 22..40 {
        r.observe(s as f64, c);
    }
    assert_eq!(r.rate(), Some(0.0));
}

#[test]
fn a_counter_reset_restarts_the_series() {
    let mut r = RateEstimator::new(10.0);
    r.observe(0.0, 100);
    r.observe(1.0, 110);
    r.observe(2.0, 3);
    assert_eq!(r.rate(), None);
    r.observe(3.0, 8);
    assert_eq!(r.rate(), Some(5.0));
}

#[test]
fn fifo_clock_tracks_the_oldest_arrival() {
    let mut f = FifoClock::default();
    assert_eq!(f.oldest_age(5.0), 0.0);
    f.arrive(10.0);
    f.arrive(11.0);
    f.arrive(12.0);
    assert_eq!(f.oldest_age(15.0), 5.0);
    f.dequeue();
    assert_eq!(f.oldest_age(15.0), 4.0);
    f.restore(14.0);
    assert_eq!(f.oldest_age(15.0), 4.0);
    assert_eq!(f.len(), 3);
}

#[test]
fn fifo_clock_reconciles_lost_events_against_llen() {
    let mut f = FifoClock::default();
    for t in [1.0, 2.0, 3.0, 4.0] {
        f.arrive(t);
    }
    // Two dequeue notifications were lost: the oldest two are gone.
    f.reconcile(2, 10.0, false);
    assert_eq!(f.len(), 2);
    assert_eq!(f.oldest_age(10.0), 7.0);
    // Items that were there before tracking began are dated from when they could be seen.
    let mut g = FifoClock::default();
    g.reconcile(3, 100.0, false);
    g.arrive(101.0);
    assert_eq!(g.len(), 4);
    assert_eq!(g.oldest_age(110.0), 10.0);
}

#[test]
fn tail_clock_dates_the_tail_by_its_head_sighting() {
    let mut t = TailClock::default();
    t.observe_empty();
    assert_eq!(t.oldest_age(0.0), 0.0);
    // A queue with one message, then more arrive while nobody consumes.
    t.observe(1.0, Some("a"), Some("a"));
    t.observe(2.0, Some("b"), Some("a"));
    t.observe(3.0, Some("c"), Some("a"));
    assert_eq!(t.oldest_age(5.0), 4.0);
    // "a" consumed: "b" is the tail, first seen at 2.
    t.observe(6.0, Some("c"), Some("b"));
    assert_eq!(t.oldest_age(6.0), 4.0);
    // A tail never seen at the head is bounded by the oldest remaining sighting.
    t.observe(7.0, Some("e"), Some("d"));
    assert_eq!(t.oldest_age(7.0), 4.0);
    t.observe_empty();
    assert_eq!(t.oldest_age(8.0), 0.0);
}

#[test]
fn an_unreadable_head_or_tail_forgets_no_age_and_dates_nothing_it_hides() {
    let mut t = TailClock::default();
    t.observe_empty();
    t.observe(1.0, Some("a"), Some("a"));
    // A message that is not kombu's pushed on top: "a" still waits, since 1.
    t.observe(30.0, None, Some("a"));
    t.observe(31.0, Some("c"), Some("a"));
    assert!(t.dated());
    assert_eq!(t.oldest_age(31.0), 30.0);
    // "a" consumed: the foreign message is the tail, of unknown age.
    t.observe(32.0, Some("c"), None);
    assert!(!t.dated());
    assert_eq!(t.oldest_age(32.0), 0.0);
    // It was consumed too: "c" was seen at the head at 31.
    t.observe(33.0, Some("c"), Some("c"));
    assert!(t.dated());
    assert_eq!(t.oldest_age(33.0), 2.0);

    // A message pushed just before an unreadable head was never seen at the head: when it
    // is the tail its age is at least since the unreadable head was seen, not dated.
    let mut h = TailClock::default();
    h.observe_empty();
    h.observe(1.0, Some("a"), Some("a"));
    h.observe(2.0, None, Some("a"));
    h.observe(3.0, None, Some("a"));
    h.observe(4.0, Some("c"), Some("a"));
    h.observe(5.0, Some("c"), Some("x"));
    assert!(!h.dated());
    assert_eq!(h.oldest_age(5.0), 2.0);
}

#[test]
fn heartbeats_give_running_and_start_rate_for_matching_workers() {
    let mut b = HeartbeatBook::new(10.0);
    for s in 0..=10 {
        let now = 100.0 + 2.0 * s as f64;
        for (name, active, per_beat) in [
            ("celery@high-1", 4, 8),
            ("celery@high-2", 2, 4),
            ("celery@low-1", 1, 100),
        ] {
            b.record(
                now,
                &Heartbeat {
                    hostname: name.into(),
                    active,
                    processed: per_beat * s,
                    freq: 2.0,
                },
            );
        }
    }
    let now = 120.0;
    assert_eq!(b.running(now, "celery@high-*"), Some(6));
    assert!(close(b.start_rate(now, "celery@high-").unwrap(), 6.0, 1e-9));
    assert_eq!(b.running(now, "celery@*"), Some(7));
    assert_eq!(b.running(now, "nobody@*"), None);
    let s = littles_law(6.0, b.start_rate(now, "celery@high-*").unwrap()).unwrap();
    assert!(close(s, 1.0, 1e-9), "{s}");
    // Silent for more than three intervals: gone.
    assert_eq!(b.running(now + 7.0, "celery@high-*"), None);
    assert_eq!(b.workers(), 0);
}

#[test]
fn glob_patterns() {
    assert!(glob_match("celery@worker-*", "celery@worker-abc"));
    assert!(glob_match("celery@worker-", "celery@worker-abc"));
    assert!(glob_match("*@w?", "x@w1"));
    assert!(!glob_match("*@w?", "x@w12"));
    assert!(!glob_match("celery@a*", "celery@b1"));
    assert!(glob_match("*", "anything"));
}

#[test]
fn residence_is_a_windowed_mean() {
    let mut r = Residence::new(30.0);
    assert_eq!(r.mean(0.0), None);
    // Only entries that were there before: the remainder is half a tick.
    r.left(10.0, 2.0, 1.0);
    r.left(11.0, 3.0, 1.0);
    assert_eq!(r.mean(11.0), Some(3.0));
    // With first sightings, their mean age is the remainder.
    r.first_seen(11.0, 0.25);
    r.first_seen(11.0, 0.75);
    assert_eq!(r.mean(11.0), Some(3.0));
    r.first_seen(11.0, 0.2);
    assert!(close(r.mean(11.0).unwrap(), 2.5 + 0.4, 1e-9));
    assert_eq!(r.mean(100.0), None);
    assert_eq!(littles_law(0.0, 3.0), None);
    assert_eq!(littles_law(3.0, 0.0), None);
}

/// Replays tasks of length `s` delivered at steady, phase-spread times into a sampler that
/// sees `unacked` at ticks one second apart; returns the estimate after `n` tasks.
fn residence_of_sampled_tasks(s: f64, n: usize) -> f64 {
    let mut r = Residence::new(1e9);
    // Deliveries every 1/φ s (irrational, so the tick phases spread evenly).
    let tasks: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let d = 1000.0 + i as f64 * 0.618_033_988_749_895;
            (d, d + s)
        })
        .collect();
    let mut seen = vec![false; n];
    let end = tasks.last().unwrap().1 + 2.0;
    let mut prev = 1000.0;
    let mut t = 1000.0;
    while t <= end {
        for (i, (d, gone)) in tasks.iter().enumerate() {
            let alive = *d <= t && t < *gone;
            if alive && !seen[i] {
                seen[i] = true;
                r.first_seen(t, t - d);
            } else if !alive && seen[i] && *gone <= t && *gone > prev {
                r.left(t, prev - d, t - prev);
            }
        }
        prev = t;
        t += 1.0;
    }
    r.mean(end).unwrap()
}

#[test]
fn residence_is_unbiased_for_tasks_shorter_and_longer_than_a_tick() {
    for s in [0.1, 0.3, 0.5, 0.8, 1.0, 1.3, 2.2, 4.7] {
        let est = residence_of_sampled_tasks(s, 2000);
        assert!(
            (est / s - 1.0).abs() <= 0.03,
            "task of {s}s: estimated {est:.4}s"
        );
    }
}

#[test]
fn heartbeat_littles_law_uses_time_averaged_busy_slots() {
    // One worker, -c 2, half busy: heartbeats alternate active 2 and 0; 1 task starts per
    // second, so each task takes 1 s on average (1 busy slot / 1 start per second).
    let mut b = HeartbeatBook::new(30.0);
    for beat in 0..=20u64 {
        b.record(
            2.0 * beat as f64,
            &Heartbeat {
                hostname: "celery@w".into(),
                active: if beat % 2 == 0 { 2 } else { 0 },
                processed: 2 * beat,
                freq: 2.0,
            },
        );
    }
    let s = b.summary(40.0, "celery@").unwrap();
    assert_eq!(s.running, 2, "latest heartbeat");
    assert!(close(s.busy, 2.0 * 8.0 / 15.0, 1e-9), "{s:?}");
    let service = s.service_time().unwrap();
    assert!((service - 1.0).abs() <= 0.1, "{service}");
}

#[test]
fn summary_reads_without_forgetting() {
    let mut b = HeartbeatBook::new(10.0);
    let hb = |host: &str, active, processed| Heartbeat {
        hostname: host.into(),
        active,
        processed,
        freq: 2.0,
    };
    b.record(0.0, &hb("celery@w-1", 1, 0));
    b.record(2.0, &hb("celery@w-1", 2, 4));
    b.record(2.0, &hb("other@x", 5, 0));
    let s = b.summary(2.0, "celery@w-").unwrap();
    assert_eq!((s.workers, s.running), (1, 2));
    assert!(close(s.start_rate.unwrap(), 2.0, 1e-9));
    // Expired for the query, but still stored until pruned.
    assert_eq!(b.summary(20.0, "celery@w-"), None);
    assert_eq!(b.workers(), 2);
    b.prune(20.0);
    assert_eq!(b.workers(), 0);
}

#[test]
fn a_late_credited_tick_of_a_steady_stream_is_not_a_burst() {
    let mut r = RateEstimator::new(30.0);
    let mut c = 0;
    for s in 0..40 {
        // 50/s, but every fifth tick's events arrive one tick late.
        c += match s % 5 {
            3 => 0,
            4 => 100,
            _ => 50,
        };
        r.observe(s as f64, c);
        if s > 30 {
            let rate = r.rate().unwrap();
            assert!((rate - 50.0).abs() <= 5.0, "tick {s}: {rate}");
        }
    }
}

#[test]
fn occupancy_gives_service_time_for_tasks_shorter_than_a_tick() {
    // Two slots always busy with 0.5 s tasks: 4 tasks taken per second, 2 in flight.
    let mut o = Occupancy::new(30.0);
    assert_eq!(o.service_time(), None);
    for s in 0..=20 {
        o.observe(100.0 + s as f64, 2, 4 * s);
    }
    assert!(
        close(o.service_time().unwrap(), 0.5, 1e-9),
        "{:?}",
        o.service_time()
    );
    // Idle afterwards: both the area and the count stop growing, the ratio holds.
    for s in 21..=25 {
        o.observe(100.0 + s as f64, 0, 80);
    }
    let s = o.service_time().unwrap();
    assert!(s > 0.45 && s < 0.55, "{s}");
    // Nothing taken in a whole window: no estimate.
    for s in 26..=70 {
        o.observe(100.0 + s as f64, 0, 80);
    }
    assert_eq!(o.service_time(), None);
}

#[test]
fn heartbeat_service_time_is_right_as_soon_as_load_starts_after_idling() {
    // 30 s idle, then 2 busy slots with 0.5 s tasks (4 starts per second). The start rate
    // alone takes the burst fast path (4/s at once) while the busy average still holds the
    // idle beats: Little's law must pair both over the same heartbeats.
    let mut b = HeartbeatBook::new(30.0);
    let mut processed = 0;
    for beat in 0..=19u64 {
        let t = 2.0 * beat as f64;
        let busy = t > 30.0;
        if busy {
            processed += 8;
        }
        b.record(
            t,
            &Heartbeat {
                hostname: "svc@w".into(),
                active: if busy { 2 } else { 0 },
                processed,
                freq: 2.0,
            },
        );
        if t >= 34.0 {
            let s = b.summary(t, "svc@").unwrap().service_time().unwrap();
            assert!((s - 0.5).abs() <= 0.05, "at {t}: {s}");
        }
    }
    // A restarted worker (counter back to 0) starts a new series, without a negative rate.
    b.record(
        40.0,
        &Heartbeat {
            hostname: "svc@w".into(),
            active: 2,
            processed: 3,
            freq: 2.0,
        },
    );
    assert_eq!(b.summary(40.0, "svc@").unwrap().service_time(), None);
}

#[test]
fn the_smoothed_rate_has_no_burst_fast_path() {
    // 1 task/s for a minute, then 40 in one tick: the fast path shows the burst at once,
    // the smoothed rate (the latency policy's λ) only as its share of the window.
    let mut r = RateEstimator::new(60.0);
    for s in 0..=60u64 {
        r.observe(s as f64, s);
    }
    assert!(close(r.smoothed_rate().unwrap(), 1.0, 1e-9));
    r.observe(61.0, 60 + 40);
    assert!(r.rate().unwrap() > 30.0, "{:?}", r.rate());
    let smoothed = r.smoothed_rate().unwrap();
    assert!(close(smoothed, 99.0 / 60.0, 1e-9), "{smoothed}");
}

#[test]
fn long_service_is_littles_law_over_its_window_not_the_mean_of_its_samples() {
    let mut l = LongService::new(100.0);
    assert_eq!(l.value(), None);
    // A short window that reads 60 s while the four busy slots are held by long tasks and
    // starts have all but stopped (4 / 60 s), then 2 s at 3 starts/s: S weighted by starts
    // is (60·1/15·10 + 2·3·90) / (1/15·10 + 3·90) ≈ 2.1 s, not the 9.8 s mean of the samples.
    for t in 0..=100 {
        let (s, r) = if t < 10 {
            (60.0, 4.0 / 60.0)
        } else {
            (2.0, 3.0)
        };
        l.observe(t as f64, Some(s), Some(r));
    }
    let expected = (4.0 * 10.0 + 2.0 * 3.0 * 90.0) / (4.0 / 60.0 * 10.0 + 3.0 * 90.0);
    assert!(close(l.value().unwrap(), expected, 1e-9), "{:?}", l.value());
    // Ticks without an estimate add nothing; what left the window no longer counts.
    l.observe(101.0, None, Some(3.0));
    l.observe(102.0, Some(5.0), None);
    for t in 103..=300 {
        l.observe(t as f64, Some(4.0), Some(1.0));
    }
    assert!(close(l.value().unwrap(), 4.0, 1e-9), "{:?}", l.value());
    // No starts in the window: the last value measured is kept. Time going backwards is
    // ignored.
    for t in 301..=500 {
        l.observe(t as f64, Some(4.0), Some(0.0));
    }
    assert_eq!(l.in_window(), None);
    assert!(close(l.value().unwrap(), 4.0, 1e-9), "{:?}", l.value());
    l.observe(10.0, Some(1.0), Some(1.0));
    assert!(close(l.value().unwrap(), 4.0, 1e-9), "{:?}", l.value());
    // Never a start: nothing to keep.
    let mut idle = LongService::new(100.0);
    for t in 0..=300 {
        idle.observe(t as f64, Some(4.0), Some(0.0));
    }
    assert_eq!(idle.value(), None);
}

#[test]
fn long_service_memory_does_not_grow_with_the_tick_rate() {
    // A 600 s window observed every 0.1 s for an hour keeps its checkpoints, not 6,000
    // samples; the value is the same Little's law over the window.
    let mut l = LongService::new(600.0);
    for i in 0..37_000u32 {
        let t = f64::from(i) / 10.0;
        let s = if t < 3_000.0 { 10.0 } else { 2.0 };
        l.observe(t, Some(s), Some(1.0));
    }
    assert!(
        l.samples.len() <= LONG_CHECKPOINTS as usize + 2,
        "{}",
        l.samples.len()
    );
    // The window starts at most one checkpoint spacing (10 s) before 3099.9: all at 2 s.
    let v = l.value().unwrap();
    assert!(close(v, 2.0, 1e-9), "{v}");
    // Half the window at 10 s, half at 2 s.
    for i in 0..3_000u32 {
        let t = 3_700.0 + f64::from(i) / 10.0;
        l.observe(t, Some(10.0), Some(1.0));
    }
    let v = l.value().unwrap();
    assert!((5.8..=6.2).contains(&v), "{v}");
}

#[test]
fn long_service_keeps_the_whole_window_not_its_last_seconds() {
    // 1,000 s at S = 10, 1 start/s, then 5 s in which S reads 100, then idle: the value kept
    // is the window's as of its last start (about 600 s at 10, 5 s at 100), not the S of
    // the last seconds the window held before it emptied.
    let mut l = LongService::new(600.0);
    for t in 0..=1_000u32 {
        l.observe(f64::from(t), Some(10.0), Some(1.0));
    }
    for t in 1_001..=1_005u32 {
        l.observe(f64::from(t), Some(100.0), Some(1.0));
    }
    let before = l.value().unwrap();
    for t in 1_006..=3_000u32 {
        l.observe(f64::from(t), None, None);
    }
    let v = l.value().unwrap();
    assert!(
        (10.5..11.0).contains(&v) && close(v, before, 0.2),
        "{v} vs {before}"
    );
}

#[test]
fn long_service_survives_a_hostile_reading() {
    // An absurd S (a forged age of 1e308) is ignored, and what follows is measured as usual.
    let mut l = LongService::new(100.0);
    for t in 0..5u32 {
        l.observe(f64::from(t), Some(1e308), Some(10.0));
    }
    for t in 5..=2_000u32 {
        l.observe(f64::from(t), Some(3.0), Some(1.0));
    }
    let v = l.value().unwrap();
    assert!(close(v, 3.0, 1e-9), "{v}");
}

#[test]
fn quiet_for_counts_from_the_last_sample_that_moved() {
    let mut r = RateEstimator::new(30.0);
    assert_eq!(r.quiet_for(), None);
    r.observe(0.0, 0);
    assert_eq!(r.quiet_for(), None, "one sample says nothing");
    for (t, c) in [(1.0, 5), (2.0, 10), (3.0, 10), (4.0, 10), (5.5, 10)] {
        r.observe(t, c);
    }
    // The last arrivals were counted by the sample at 2 s.
    assert_eq!(r.quiet_for(), Some(3.5));
    r.observe(6.0, 11);
    assert_eq!(r.quiet_for(), Some(0.0));
    // Nothing counted in the whole window: at least its span.
    let mut idle = RateEstimator::new(10.0);
    for t in 0..=40u32 {
        idle.observe(f64::from(t), 7);
    }
    assert_eq!(idle.quiet_for(), Some(10.0));
}

#[test]
fn longest_gap_is_between_samples_that_counted() {
    let mut r = RateEstimator::new(30.0);
    assert_eq!(r.longest_gap(), 0.0);
    // Counted at 1, 2, 6 and 8 s: gaps 1, 4, 2.
    for (t, c) in [
        (0.0, 0),
        (1.0, 3),
        (2.0, 4),
        (3.0, 4),
        (6.0, 9),
        (7.0, 9),
        (8.0, 10),
        (9.0, 10),
    ] {
        r.observe(t, c);
    }
    assert_eq!(r.longest_gap(), 4.0);
    // One counting sample alone leaves no gap.
    let mut once = RateEstimator::new(30.0);
    for (t, c) in [(0.0, 0), (1.0, 5), (2.0, 5)] {
        once.observe(t, c);
    }
    assert_eq!(once.longest_gap(), 0.0);
}

#[test]
fn the_span_is_what_the_smoothed_rate_was_read_over() {
    // The sampler's first 0.6 s: one event reads 1/0.6 per second over 0.6 s, the count it
    // rests on being 1, not 1/0.6 × the 30 s window. Once the samples cover the window the
    // span is the window (and up to a tick more).
    let mut r = RateEstimator::new(30.0);
    assert_eq!(r.span(), None);
    r.observe(100.0, 0);
    assert_eq!(r.span(), None);
    r.observe(100.6, 1);
    let (rate, span) = (r.smoothed_rate().unwrap(), r.span().unwrap());
    assert!(close(span, 0.6, 1e-9), "{span}");
    assert!(close(rate * span, 1.0, 1e-9));
    for s in 1..=40u64 {
        r.observe(100.6 + s as f64, 1);
    }
    let span = r.span().unwrap();
    assert!((30.0..31.0).contains(&span), "{span}");
}

#[test]
fn the_highest_smoothed_rate_since_a_time_covers_the_sample_before_it() {
    // 10 events/s until t = 10, none after, window 10 s: the smoothed rate falls 1/s a tick.
    let mut r = RateEstimator::new(10.0);
    assert_eq!(r.highest_smoothed_since(0.0), None);
    for t in 0..=15u64 {
        r.observe(t as f64, 10 * t.min(10));
    }
    let now = r.smoothed_rate().unwrap();
    assert!(close(now, 5.0, 1e-9), "{now}");
    // Since the latest sample: the latest rate; since 13.5: the rate at 13 (7/s), which
    // with the one at 14 brackets the rate at 13.5.
    assert_eq!(r.highest_smoothed_since(15.0), Some(now));
    assert!(close(r.highest_smoothed_since(13.5).unwrap(), 7.0, 1e-9));
    assert!(close(r.highest_smoothed_since(12.0).unwrap(), 8.0, 1e-9));
    // Older than every kept rate: all of them (10/s while the flow ran).
    assert!(close(r.highest_smoothed_since(-5.0).unwrap(), 10.0, 1e-9));
    // Memory stays bounded whatever the tick rate, and a restarted counter forgets.
    for i in 0..10_000u64 {
        r.observe(16.0 + i as f64 * 0.001, 100 + i);
    }
    assert!(r.lately.len() <= LATELY_SAMPLES);
    r.observe(30.0, 0);
    assert_eq!(r.highest_smoothed_since(0.0), None);
}

#[test]
fn reconciled_entries_are_no_heard_arrivals() {
    // The subscription is (re-)established with two messages listed: they are reconciled
    // in at `now`, which only bounds their age. Once they are consumed, the clock dates
    // again what it heard.
    let mut c = FifoClock::default();
    c.arrive(10.0);
    assert!(c.dated());
    c.reconcile(3, 20.0, false);
    assert!(!c.dated());
    assert_eq!(c.oldest_age(25.0), 15.0);
    c.dequeue();
    c.dequeue();
    assert!(c.dated(), "the two reconciled entries were the oldest");
    c.reconcile(1, 30.0, false);
    assert!(c.dated());
    // Entries known to have arrived since (the list was seen empty just before) are dated.
    let mut d = FifoClock::default();
    d.reconcile(2, 40.0, true);
    assert!(d.dated());
    assert_eq!(d.oldest_age(41.0), 1.0);
}

#[test]
fn a_tail_first_seen_on_the_first_observation_is_not_dated() {
    let mut t = TailClock::default();
    t.observe(100.0, Some("b"), Some("a"));
    assert!(!t.dated(), "the list's past is unknown");
    // Consumed down to a message that arrived since: dated by its head sighting.
    t.observe(101.0, Some("c"), Some("b"));
    assert!(!t.dated(), "b was at the head at the first observation");
    t.observe(102.0, Some("c"), Some("c"));
    assert!(t.dated());
    assert_eq!(t.oldest_age(103.0), 2.0);
    // Unreadable tags: no tail, nothing dated.
    t.observe(104.0, None, None);
    assert!(!t.dated());
}
