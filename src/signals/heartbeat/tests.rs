//! Unit tests of the heartbeat bounds: each forged field is clamped, refused or ignored.

use super::*;

fn beat(host: &str, active: u64, processed: u64, freq: f64) -> Heartbeat {
    Heartbeat {
        hostname: host.into(),
        active,
        processed,
        freq,
    }
}

fn limits(max_active: u64, max_workers: usize) -> HeartbeatLimits {
    HeartbeatLimits {
        max_active,
        max_workers,
    }
}

#[test]
fn active_above_the_per_worker_maximum_is_clamped_and_reported() {
    let mut b = HeartbeatBook::with_limits(30.0, limits(16, 10));
    let odd = b.record(0.0, &beat("celery@w", 1 << 63, 0, 2.0));
    assert_eq!(odd, vec![Implausible::Active]);
    assert_eq!(b.running(0.0, "celery@"), Some(16));
    assert!(b.record(2.0, &beat("celery@w", 16, 4, 2.0)).is_empty());
    assert_eq!(b.running(2.0, "celery@"), Some(16));
}

#[test]
fn an_implausible_freq_is_ignored_so_the_worker_still_expires() {
    for freq in [1e300, f64::INFINITY, f64::NAN, 0.0, -2.0, 0.01, 3601.0] {
        let mut b = HeartbeatBook::new(30.0);
        let odd = b.record(0.0, &beat("celery@w", 1, 0, freq));
        assert_eq!(odd, vec![Implausible::Freq], "freq {freq}");
        // The default interval (2 s) applies: gone after three of them.
        assert!(b.summary(6.0, "celery@").is_some(), "freq {freq}");
        assert_eq!(b.summary(6.1, "celery@"), None, "freq {freq}");
    }
    // Celery's range is kept as sent.
    let mut b = HeartbeatBook::new(30.0);
    assert!(b.record(0.0, &beat("celery@w", 1, 0, 60.0)).is_empty());
    assert!(b.summary(179.0, "celery@").is_some());
}

#[test]
fn processed_may_grow_by_at_most_a_full_worker_per_beat() {
    let mut b = HeartbeatBook::with_limits(30.0, limits(4, 10));
    b.record(0.0, &beat("celery@w", 4, 100, 2.0));
    let odd = b.record(2.0, &beat("celery@w", 4, u64::MAX / 2, 2.0));
    assert_eq!(odd, vec![Implausible::Processed]);
    let rate = b.start_rate(2.0, "celery@").expect("rate");
    // 4 slots × 1,000 starts per slot-second.
    assert!(rate <= 4.0 * MAX_STARTS_PER_SLOT + 1e-9, "{rate}");
    // A plausible count is kept as sent.
    assert!(b.record(4.0, &beat("celery@w", 4, 8_100, 2.0)).is_empty());
}

#[test]
fn fast_beats_credit_processed_by_the_time_that_really_passed() {
    let mut b = HeartbeatBook::with_limits(30.0, limits(4, 10));
    b.record(0.0, &beat("celery@w", 0, 0, 2.0));
    // Beats 10 ms apart, each claiming a full interval's worth of starts (4 × 1,000 × 2 s).
    let mut flagged = 0;
    for i in 1..=100u64 {
        let now = i as f64 * 0.01;
        flagged += b.record(now, &beat("celery@w", 0, i * 8_000, 2.0)).len();
        let rate = b.start_rate(now, "celery@").expect("rate");
        assert!(rate <= 4.0 * MAX_STARTS_PER_SLOT + 1e-6, "beat {i}: {rate}");
    }
    assert_eq!(flagged, 100, "every over-claim is implausible");
    // Beats held up and delivered together: the clamped count catches up afterwards.
    assert!(b
        .record(300.0, &beat("celery@w", 0, 800_000, 2.0))
        .is_empty());
}

#[test]
fn new_hostnames_beyond_the_bound_are_refused_until_a_worker_expires() {
    let mut b = HeartbeatBook::with_limits(30.0, limits(8, 3));
    for i in 0..3 {
        assert!(b.record(0.0, &beat(&format!("w{i}"), 1, 0, 2.0)).is_empty());
    }
    for i in 3..1000 {
        let odd = b.record(1.0, &beat(&format!("w{i}"), 1, 0, 2.0));
        assert_eq!(odd, vec![Implausible::TooManyWorkers]);
    }
    assert_eq!(b.workers(), 3);
    // Known workers still beat.
    assert!(b.record(2.0, &beat("w0", 2, 5, 2.0)).is_empty());
    // Once the silent ones expire, a new one fits.
    assert!(b.record(7.0, &beat("w-new", 1, 0, 2.0)).is_empty());
    assert_eq!(b.workers(), 2);
}

#[test]
fn beats_kept_per_worker_are_bounded() {
    let mut b = HeartbeatBook::with_limits(3600.0, limits(8, 3));
    for i in 0..10_000u64 {
        b.record(i as f64 * 0.1, &beat("w", 1, i, 0.1));
    }
    let w = b.workers.get("w").expect("tracked");
    assert_eq!(w.beats.len(), MAX_BEATS);
}

#[test]
fn capacity_bounds_the_flow_a_summary_implies() {
    let mut b = HeartbeatBook::with_limits(30.0, limits(4, 10));
    b.record(0.0, &beat("a", 4, 0, 2.0));
    b.record(0.0, &beat("b", 4, 0, 2.0));
    let s = b.summary(0.0, "").expect("two workers");
    assert_eq!(s.capacity, 8.0);
    assert_eq!(s.bounded_rate(100.0, 1.0), 8.0);
    assert_eq!(s.bounded_rate(2.0, 1.0), 2.0);
    // A service time below a millisecond counts as one, as in the policy.
    assert_eq!(s.bounded_rate(1e9, 1e-6), 8.0 * MAX_STARTS_PER_SLOT);
}
