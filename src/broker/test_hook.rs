//! A test-only hook: every sampler tick busy-loops for a set time first, a stand-in for any
//! CPU-heavy, non-yielding work. Tests use it to prove that such work cannot starve
//! `/healthz`, the gRPC server or signal handling. Zero (off) unless a test sets it.

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
