//! The residence tail against replayed task mixes, bounds and expiry.

use super::*;

/// Replays a task mix through a sampler that sees `unacked` at ticks one second apart and
/// returns the tail's p95 at the end: every `1/φ` s one task starts; every 20th runs `long`
/// seconds, the others `short`.
fn sampled_p95(short: f64, long: f64, n: usize) -> Option<f64> {
    let mut tail = ResidenceTail::default();
    let tasks: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let d = i as f64 * 0.618_033_988_749_895;
            (d, d + if i % 20 == 7 { long } else { short })
        })
        .collect();
    let end = tasks.iter().map(|t| t.1).fold(0.0, f64::max) + 2.0;
    let mut seen = vec![false; n];
    let (mut prev, mut t) = (0.0, 0.0);
    while t <= end {
        for (i, (d, gone)) in tasks.iter().enumerate() {
            if *d <= t && t < *gone {
                seen[i] = true;
            } else if seen[i] && *gone <= t && *gone > prev {
                tail.left(t, prev - d, t - prev);
            }
        }
        prev = t;
        t += 1.0;
    }
    tail.p95(end)
}

#[test]
fn the_tail_of_a_mix_is_read_and_never_understated() {
    // 5 % of tasks run 40 s: the true p95 lies between the modes (40 s is the top 5 %).
    // Tasks of 3 s are always seen; so the p95 is the long mode's.
    let p95 = sampled_p95(3.0, 40.0, 400).expect("enough departures");
    assert!((39.0..=41.0).contains(&p95), "p95 {p95}");
    // Tasks shorter than a tick are seen in proportion to their length: the long mode weighs
    // more among those seen, so the p95 can only be over-stated.
    let p95 = sampled_p95(0.3, 40.0, 400).expect("enough departures");
    assert!((39.0..=41.0).contains(&p95), "p95 {p95}");
    // Without a long mode the p95 is the short one's (plus at most a tick's sampling).
    let p95 = sampled_p95(3.0, 3.0, 400).expect("enough departures");
    assert!((2.5..=3.6).contains(&p95), "p95 {p95}");
}

#[test]
fn a_handful_of_departures_gives_no_quantile() {
    let mut tail = ResidenceTail::default();
    for i in 0..MIN_TAIL_SAMPLES - 1 {
        tail.left(i as f64, 5.0, 1.0);
    }
    assert_eq!(tail.p95(20.0), None);
    tail.left(20.0, 5.0, 1.0);
    assert_eq!(tail.p95(20.0), Some(5.5));
}

#[test]
fn memory_is_bounded_and_old_departures_expire() {
    let mut tail = ResidenceTail::default();
    for i in 0..100_000 {
        tail.left(f64::from(i) * 0.001, f64::from(i % 100), 1.0);
    }
    assert_eq!(tail.samples.len(), TAIL_SAMPLES);
    // The last 128 ages are 72..=99 then 0..=99: the p95 is among the highest.
    assert!(tail.p95(100.0).is_some_and(|v| v >= 94.5));
    // A departure changes the cached quantile.
    for _ in 0..TAIL_SAMPLES {
        tail.left(100.0, 1.0, 1.0);
    }
    assert_eq!(tail.p95(100.0), Some(1.5));
    // Nothing left within the horizon: no quantile.
    assert_eq!(tail.p95(100.0 + TAIL_HORIZON + 1.0), None);
    assert!(tail.samples.is_empty());
}

#[test]
fn non_finite_ages_are_not_samples() {
    let mut tail = ResidenceTail::default();
    for _ in 0..MIN_TAIL_SAMPLES {
        tail.left(1.0, f64::INFINITY, 1.0);
        tail.left(1.0, f64::NAN, 1.0);
    }
    assert_eq!(tail.p95(1.0), None);
}
