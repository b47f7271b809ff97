//! The drain when the slots it asks for must still start (`podStartup`).
//!
//! The drain term sizes the slots that start every waiting task within its budget B as if
//! they existed now. Slots that are up now do; slots asked for now start `podStartup` U
//! later and have B − U left (at least `FRESH_FLOOR`·T: a task already past that point
//! is served as soon as they come). From zero, or far below the need, the drain is
//! therefore sized on the shorter budget: `fresh` = waiting·D/(D + max(B − U, 0.2·T)).
//! With slots up, the drain blends from `fresh` back to the plain one as they approach
//! the need: `drain + (fresh − drain)·(1 − up/drain)³`. The cube keeps the start-up's
//! premium for a fleet far below the need (a burst on an idle queue: its first HPA sync is
//! the one that counts) and drops it fast when most of the slots are there (a load step on
//! a running fleet, whose pods are mostly already coming). `docs/scaling.md`, "The drain
//! and pod start-up".

use crate::signals::LiveSignals;

/// How fast the start-up premium falls as slots come up (see the module's doc).
pub const PREMIUM_EXPONENT: i32 = 3;

/// The least budget, as a share of the target, left to a slot asked for now however long
/// its pod takes to start. The same value as the waiting-at-zero reserve
/// (`cold::START_MARGIN`), kept apart so that retuning one does not move the other.
pub const FRESH_FLOOR: f64 = 0.2;

/// The budget of a slot asked for now: `budget − podStartup`, at least `FRESH_FLOOR`·T;
/// `budget` itself without a usable `podStartup`.
pub fn fresh_budget(budget: f64, pod_startup: Option<f64>, target: f64) -> f64 {
    pod_startup
        .filter(|u| u.is_finite() && *u > 0.0)
        .map_or(budget, |u| {
            (budget - u).max(FRESH_FLOOR * target).min(budget)
        })
}

/// The most workers any queue's heartbeats count alive (the queues share a Deployment),
/// `None` when none counts them.
pub fn live_workers(live: &[LiveSignals]) -> Option<f64> {
    live.iter()
        .filter_map(|l| l.workers?.usable())
        .reduce(f64::max)
}

/// Slots up now: the busy ones (`in_flight`), or the live workers' when heartbeats count
/// them.
pub fn slots_up(in_flight: f64, live: &[LiveSignals], concurrency: f64) -> f64 {
    in_flight.max(live_workers(live).unwrap_or(0.0) * concurrency)
}

/// The drain with `up` slots up now, from `drain` (slots needed if every one existed now)
/// and `fresh` (slots needed if every one started now).
pub fn drain(drain: f64, fresh: f64, up: f64) -> f64 {
    let up = if up.is_nan() { 0.0 } else { up.max(0.0) };
    if drain.is_nan() || drain <= up || !fresh.is_finite() {
        return drain;
    }
    let short = 1.0 - up / drain;
    drain + (fresh - drain).max(0.0) * short.powi(PREMIUM_EXPONENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_loses_the_startup_down_to_a_fifth_of_the_target() {
        assert_eq!(fresh_budget(30.0, None, 30.0), 30.0);
        assert_eq!(fresh_budget(30.0, Some(10.0), 30.0), 20.0);
        assert_eq!(fresh_budget(15.0, Some(24.6), 30.0), 6.0);
        assert_eq!(
            fresh_budget(4.0, Some(24.6), 30.0),
            4.0,
            "never above the budget"
        );
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0] {
            assert_eq!(fresh_budget(30.0, Some(bad), 30.0), 30.0, "{bad}");
        }
    }

    #[test]
    fn from_zero_the_drain_is_the_fresh_one_and_the_premium_fades_as_slots_come_up() {
        assert_eq!(drain(100.0, 250.0, 0.0), 250.0);
        assert_eq!(drain(100.0, 250.0, 50.0), 100.0 + 150.0 * 0.125);
        assert_eq!(drain(100.0, 250.0, 100.0), 100.0);
        assert_eq!(drain(100.0, 250.0, 300.0), 100.0);
        assert_eq!(drain(0.0, 0.0, 0.0), 0.0);
        assert_eq!(drain(100.0, 250.0, f64::NAN), 250.0);
        assert_eq!(drain(100.0, 250.0, f64::INFINITY), 100.0);
        // Never below the plain drain, never above the fresh one, non-increasing in `up`.
        let mut last = f64::INFINITY;
        for up in 0..=120 {
            let d = drain(100.0, 250.0, f64::from(up));
            assert!((100.0..=250.0).contains(&d), "{up}: {d}");
            assert!(d <= last, "{up}: {d} > {last}");
            last = d;
        }
    }
}
