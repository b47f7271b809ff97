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
    assert_eq!(b.summary(181.0, "celery@"), None);
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
fn a_new_hostname_in_a_full_book_evicts_the_least_recently_heard() {
    let mut b = HeartbeatBook::with_limits(30.0, limits(8, 3));
    for i in 0..3 {
        assert!(b.record(0.0, &beat(&format!("w{i}"), 1, 0, 2.0)).is_empty());
    }
    // w0 beats again: w1 is now the least recently heard.
    assert!(b.record(0.5, &beat("w0", 2, 5, 2.0)).is_empty());
    let odd = b.record(1.0, &beat("celery@new-pod", 1, 0, 2.0));
    assert_eq!(odd, vec![Implausible::TooManyWorkers]);
    assert_eq!(b.workers(), 3);
    assert!(b.summary(1.0, "w1").is_none(), "w1 evicted");
    for kept in ["w0", "w2", "celery@new-pod"] {
        assert!(b.summary(1.0, kept).is_some(), "{kept} kept");
    }
    // A flood of new hostnames keeps the book at its bound, the newest tracked.
    for i in 0..1000 {
        let odd = b.record(1.5, &beat(&format!("flood{i}"), 1, 0, 2.0));
        assert_eq!(odd, vec![Implausible::TooManyWorkers]);
    }
    assert_eq!(b.workers(), 3);
    assert!(b.summary(1.5, "flood999").is_some());
    // A worker that said goodbye leaves room without an eviction.
    b.forget("flood999");
    assert!(b.record(1.6, &beat("celery@real", 1, 0, 2.0)).is_empty());
    // Once the silent ones expire, new ones fit without evictions.
    assert!(b.record(7.7, &beat("w-new", 1, 0, 2.0)).is_empty());
    assert_eq!(b.workers(), 1);
}

#[test]
fn a_long_interval_keeps_a_silent_worker_for_three_minutes_at_most() {
    let mut b = HeartbeatBook::new(30.0);
    assert!(b.record(0.0, &beat("forged@w", 1, 0, MAX_FREQ)).is_empty());
    assert!(b.summary(180.0, "forged@").is_some());
    assert_eq!(b.summary(180.1, "forged@"), None);
    b.prune(180.1);
    assert_eq!(b.workers(), 0);
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

/// Reference glob by dynamic programming over characters (the specification).
fn glob_reference(p: &[char], n: &[char]) -> bool {
    let mut dp = vec![vec![false; n.len() + 1]; p.len() + 1];
    dp[0][0] = true;
    for i in 1..=p.len() {
        for j in 0..=n.len() {
            dp[i][j] = match p[i - 1] {
                '*' => dp[i - 1][j] || (j > 0 && dp[i][j - 1]),
                '?' => j > 0 && dp[i - 1][j - 1],
                c => j > 0 && dp[i - 1][j - 1] && n[j - 1] == c,
            };
        }
    }
    dp[p.len()][n.len()]
}

#[test]
fn glob_agrees_with_the_reference_including_multibyte_characters() {
    let patterns = [
        "*", "?", "a*b", "*a?", "é?*", "?é", "*ü*x", "a**b?", "*?*?", "*@w-?",
    ];
    let names = [
        "", "a", "ab", "aab", "éx", "xé", "aüüx", "abbb", "é", "c@w-7", "c@w-77",
    ];
    for p in patterns {
        for n in names {
            let want = glob_reference(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            );
            assert_eq!(glob_match(p, n), want, "{p:?} vs {n:?}");
        }
    }
}

#[test]
fn glob_work_is_bounded_by_the_product_of_the_lengths() {
    // The classic worst case for backtracking matchers: many stars, a name that almost
    // matches each, at the longest pattern and hostname accepted.
    let pattern = format!("{}b", "*a".repeat(127));
    // The longest hostname a worker event may carry (`celery::event::MAX_HOSTNAME`).
    let name = "a".repeat(255);
    let mut steps = 0;
    assert!(!glob_steps(&pattern, &name, &mut steps));
    let bound = (name.len() as u64 + 1) * (pattern.len() as u64 + 1);
    assert!(steps <= bound, "{steps} steps > {bound}");
    // A name that matches at once costs one step per byte.
    let mut steps = 0;
    assert!(glob_steps("a*", &name, &mut steps));
    assert!(steps <= name.len() as u64 + 1, "{steps}");
}

#[test]
fn a_memoised_copy_answers_summaries_without_glob_work() {
    let mut b = HeartbeatBook::new(30.0);
    for i in 0..200 {
        b.record(0.0, &beat(&format!("celery@w-{i}"), 1, 0, 2.0));
        b.record(0.0, &beat(&format!("other@x-{i}"), 2, 0, 2.0));
    }
    let pattern = "*@w-*";
    let direct = b.summary(1.0, pattern);
    let mut copy = b.clone();
    copy.memoise([pattern, pattern, "other@"]);
    let before = GLOB_STEPS.with(|c| c.get());
    for _ in 0..100 {
        assert_eq!(copy.summary(1.0, pattern), direct);
    }
    assert_eq!(
        GLOB_STEPS.with(|c| c.get()),
        before,
        "no glob work per summary"
    );
    assert_eq!(copy.summary(1.0, "other@").map(|s| s.running), Some(400));
    // A pattern not memoised is still matched; expiry still applies to memoised ones.
    assert_eq!(
        copy.summary(1.0, "celery@w-1").map(|s| s.workers),
        Some(111)
    );
    assert_eq!(copy.summary(7.0, pattern), None);
    // Any change forgets the memo.
    copy.record(2.0, &beat("celery@w-new", 1, 0, 2.0));
    assert_eq!(copy.summary(2.0, pattern).map(|s| s.workers), Some(201));
}

#[test]
fn starts_are_quiet_from_the_latest_beat_with_a_start_to_the_earliest_latest_beat() {
    let mut b = HeartbeatBook::new(30.0);
    // Worker a starts tasks until its beat at 4 s; worker b until its beat at 7 s.
    for (t, p) in [(0.0, 0), (2.0, 3), (4.0, 5), (6.0, 5), (8.0, 5), (10.0, 5)] {
        b.record(t, &beat("celery@a", 0, p, 2.0));
    }
    for (t, p) in [(1.0, 0), (3.0, 1), (5.0, 2), (7.0, 4), (9.0, 4)] {
        b.record(t, &beat("celery@b", 0, p, 2.0));
    }
    let s = b.summary(10.0, "celery@").expect("two live workers");
    // No start after 7 s is known of up to b's latest beat at 9 s.
    assert_eq!(s.starts_quiet_for, 2.0);
    // a alone: its last start by 4 s, its latest beat at 10 s.
    let a = b.summary(10.0, "celery@a").expect("a is live");
    assert_eq!(a.starts_quiet_for, 6.0);
    // A start in b's next beat: quiet again from 0.
    b.record(11.0, &beat("celery@b", 0, 5, 2.0));
    let s = b.summary(11.0, "celery@").expect("two live workers");
    assert_eq!(s.starts_quiet_for, 0.0);
}

#[test]
fn a_worker_that_never_started_a_task_adds_no_start() {
    // a's last start shows in its beat at 4 s. Pod b comes up at 8 s, after the work was
    // done (`processed` 0): its first beat is no start, so the quiet still runs from 4 s.
    let mut b = HeartbeatBook::new(30.0);
    for (t, p) in [(0.0, 0), (2.0, 3), (4.0, 5), (6.0, 5), (8.0, 5), (10.0, 5)] {
        b.record(t, &beat("celery@a", 0, p, 2.0));
    }
    for t in [8.0, 10.0] {
        b.record(t, &beat("celery@b", 0, 0, 2.0));
    }
    let s = b.summary(10.0, "celery@").expect("two live workers");
    assert_eq!(s.starts_quiet_for, 6.0);
    // A worker alone that never started one: quiet as far back as its beats go.
    let fresh = b.summary(10.0, "celery@b").expect("b is live");
    assert_eq!(fresh.starts_quiet_for, 2.0);
    // A worker whose kept beats show no start but which started tasks before them: its
    // first kept beat may follow a start.
    let mut old = HeartbeatBook::new(30.0);
    for t in [100.0, 102.0, 104.0] {
        old.record(t, &beat("celery@c", 0, 7, 2.0));
    }
    let s = old.summary(104.0, "celery@").expect("live");
    assert_eq!(s.starts_quiet_for, 4.0);
}

#[test]
fn starts_longest_gap_is_the_longest_between_one_workers_beats_with_starts() {
    let mut b = HeartbeatBook::new(30.0);
    // a starts tasks in its beats at 2, 4 and 10 s (gap 6); b at 3 and 5 s (gap 2).
    for (t, p) in [(0.0, 0), (2.0, 3), (4.0, 5), (6.0, 5), (8.0, 5), (10.0, 9)] {
        b.record(t, &beat("celery@a", 0, p, 2.0));
    }
    for (t, p) in [(1.0, 0), (3.0, 1), (5.0, 2), (7.0, 2), (9.0, 2)] {
        b.record(t, &beat("celery@b", 0, p, 2.0));
    }
    let s = b.summary(10.0, "celery@").expect("two live workers");
    assert_eq!(s.starts_longest_gap, 6.0);
    let only_b = b.summary(10.0, "celery@b").expect("b is live");
    assert_eq!(only_b.starts_longest_gap, 2.0);
}

#[test]
fn a_pod_younger_than_the_window_counts_its_starts_over_the_window() {
    // Pod b beats across the whole window; pod a came up 10 s ago (the book heard its
    // `worker-online`) and started 20 tasks since: 2/s over its own beats (what Little's
    // law pairs with its busy slots), 20/30 over the 30 s window a list's rate is counted
    // over. For b both rates agree.
    let mut b = HeartbeatBook::new(30.0);
    for i in 0..=20u32 {
        let t = 70.0 + 2.0 * f64::from(i);
        b.record(t, &beat("celery@b", 1, u64::from(i) * 3, 2.0));
    }
    b.record_online(100.0, &beat("celery@a", 1, 0, 2.0));
    for (t, p) in [
        (102.0, 4),
        (104.0, 8),
        (106.0, 12),
        (108.0, 16),
        (110.0, 20),
    ] {
        b.record(t, &beat("celery@a", 1, p, 2.0));
    }
    let young = b.summary(110.0, "celery@a").expect("a is live");
    assert_eq!(young.busy_start_rate, 2.0);
    assert_eq!(young.window_start_rate, 20.0 / 30.0);
    let old = b.summary(110.0, "celery@b").expect("b is live");
    assert!(old.busy_start_rate > 0.0);
    assert_eq!(old.window_start_rate, old.busy_start_rate);
    let both = b.summary(110.0, "celery@").expect("two live workers");
    assert_eq!(both.window_start_rate, 20.0 / 30.0 + old.busy_start_rate);
}

#[test]
fn a_worker_whose_past_the_book_did_not_hear_keeps_its_span() {
    // 10 starts/s throughout. (1) The book opened 6 s ago with this worker's beat: it may
    // have run for hours. (2) Beats every 0.1 s: 64 kept beats cover 6.3 s of the 30 s
    // window. Either way the starts over the kept beats are the rate, not a sixth of it.
    let mut b = HeartbeatBook::new(30.0);
    for i in 0..=3u64 {
        b.record(
            1000.0 + 2.0 * i as f64,
            &beat("celery@w", 4, 50_000 + 20 * i, 2.0),
        );
    }
    let s = b.summary(1006.0, "celery@w").expect("live");
    assert_eq!(s.window_start_rate, 10.0);
    let mut fast = HeartbeatBook::new(30.0);
    fast.record(0.0, &beat("celery@other", 0, 0, 2.0));
    for i in 0..200u64 {
        fast.record(10.0 + 0.1 * i as f64, &beat("celery@f", 4, i, 0.1));
    }
    let s = fast.summary(29.9, "celery@f").expect("live");
    assert!((s.window_start_rate - 10.0).abs() < 1e-6, "{s:?}");
    // (3) The events connection was lost for longer than three beats: the worker, busy all
    // along, expired and is heard again (a heartbeat, not its `worker-online`); (4) the
    // scaler restarted and heard the worker's first beat a little over a beat after the
    // book opened. Read as young (they were), their 10/s read as 1.33/s for a window.
    let mut lost = HeartbeatBook::new(30.0);
    for i in 0..=20u64 {
        lost.record(2.0 * i as f64, &beat("celery@w", 4, 20 * i, 2.0));
    }
    lost.prune(60.0); // as the sampler does every tick
    assert!(lost.summary(60.0, "celery@w").is_none(), "expired");
    for i in 0..=2u64 {
        lost.record(
            60.0 + 2.0 * i as f64,
            &beat("celery@w", 4, 600 + 20 * i, 2.0),
        );
    }
    let s = lost.summary(64.0, "celery@w").expect("heard again");
    assert!((s.window_start_rate - 10.0).abs() < 1e-9, "{s:?}");
    let mut restarted = HeartbeatBook::new(30.0);
    restarted.record(100.0, &beat("celery@other", 0, 0, 2.0));
    for i in 0..=2u64 {
        let t = 102.05 + 2.0 * i as f64;
        restarted.record(t, &beat("celery@w", 4, 90_000 + 20 * i, 2.0));
    }
    let s = restarted.summary(106.05, "celery@w").expect("live");
    assert!((s.window_start_rate - 10.0).abs() < 1e-9, "{s:?}");
}

/// Sums over workers (start rates, Little's law pairs) add in hostname order: books fed the
/// same beats, workers first heard in any order, give bit-identical summaries. With a
/// `HashMap` each book iterated in its own hash-seeded order, float sums differed in their
/// last bits, and the simulator's benchmark differed from run to run (on-off-waves under
/// the shipped settings: 13,082 or 13,097 pod-s).
#[test]
fn summaries_do_not_depend_on_a_hash_seed() {
    let feed = |b: &mut HeartbeatBook, order: &[u64]| {
        for t in 0..8u32 {
            for &w in order {
                // Each worker beats at its own interval: its rate's denominator is its own.
                let freq = 2.0 + w as f64 * 0.0173;
                let processed = u64::from(t * t) * (w * 7 % 13 + 1) + w % 3;
                let at = f64::from(t) * freq;
                b.record(at, &beat(&format!("celery@w{w}"), w % 5, processed, freq));
            }
        }
    };
    let bits = |b: &HeartbeatBook| {
        let s = b.summary(14.0, "celery@*").expect("workers");
        (
            s.start_rate.map(f64::to_bits),
            s.busy.to_bits(),
            s.busy_start_rate.to_bits(),
            s.window_start_rate.to_bits(),
        )
    };
    let forward: Vec<u64> = (0..40).collect();
    let mut first = HeartbeatBook::new(30.0);
    feed(&mut first, &forward);
    let want = bits(&first);
    let backward: Vec<u64> = forward.iter().rev().copied().collect();
    let shuffled: Vec<u64> = forward.iter().map(|w| w * 17 % 40).collect();
    for order in [&forward, &backward, &shuffled].repeat(10) {
        let mut b = HeartbeatBook::new(30.0);
        feed(&mut b, order);
        assert_eq!(bits(&b), want);
    }
}
