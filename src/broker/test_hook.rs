//! Test-only hooks, off unless a test sets them: every sampler tick busy-loops for a set time
//! first (a stand-in for any CPU-heavy, non-yielding work, to prove that it cannot starve
//! `/healthz`, the gRPC server or signal handling), and the next N ticks panic (to prove that
//! the supervisor restarts the sampler).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Test hook: CPU time (ms) each tick burns without yielding, on every broker. Zero outside
/// tests. Lets tests prove that a sampler stuck in CPU-heavy work cannot starve `/healthz`,
/// the gRPC server or signal handling.
static TEST_TICK_BURN_MS: AtomicU64 = AtomicU64::new(0);

/// Test hook (not part of the API): makes every sampler tick busy-loop for `burn` first.
#[doc(hidden)]
pub fn set_test_tick_burn(burn: Duration) {
    let ms = u64::try_from(burn.as_millis()).unwrap_or(u64::MAX);
    TEST_TICK_BURN_MS.store(ms, Ordering::Relaxed);
}

/// In debug builds only (the ones `cargo test` runs), `TEST_CELERY_SCALER_TICK_BURN_MS` sets
/// the test hook for the real binary. Release builds ignore it.
pub(crate) fn test_tick_burn_from_env() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("TEST_CELERY_SCALER_TICK_BURN_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        TEST_TICK_BURN_MS.store(ms, Ordering::Relaxed);
    }
}

/// Busy-loops for the test hook's time (a stand-in for any CPU-heavy, non-yielding work).
pub(crate) fn burn() {
    let ms = TEST_TICK_BURN_MS.load(Ordering::Relaxed);
    if ms == 0 {
        return;
    }
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Test hook: how many of the next sampler ticks panic (any broker).
static TEST_PANICS: AtomicU64 = AtomicU64::new(0);

/// Test hook (not part of the API): makes the next `n` sampler ticks panic.
#[doc(hidden)]
pub fn set_test_sampler_panics(n: u64) {
    TEST_PANICS.store(n, Ordering::Relaxed);
}

/// Panics when the test hook asks for it.
pub(crate) fn maybe_panic() {
    let take = TEST_PANICS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    if take.is_ok() {
        panic!("test hook: sampler tick panicked");
    }
}

/// Test hook: how many of the next pub/sub sessions panic (any broker).
static TEST_EVENTS_PANICS: AtomicU64 = AtomicU64::new(0);

/// Test hook (not part of the API): makes the next `n` pub/sub sessions panic.
#[doc(hidden)]
pub fn set_test_events_panics(n: u64) {
    TEST_EVENTS_PANICS.store(n, Ordering::Relaxed);
}

/// Panics when the test hook asks for it.
pub(crate) fn maybe_panic_events() {
    let take =
        TEST_EVENTS_PANICS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    if take.is_ok() {
        panic!("test hook: pub/sub session panicked");
    }
}
