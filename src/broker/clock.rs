//! The scaler's wall clock as the live signals use it: epoch seconds. The signal core takes
//! time as an argument; this is where the broker reads it.

use std::time::{SystemTime, UNIX_EPOCH};

/// The scaler's wall clock, epoch seconds.
pub(crate) fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
