//! The arrival rate λ the latency policy sizes on: the sampler's steady rate (or the dequeue
//! rate), raised to the dequeue rate when it is a lower bound, and 0 once the flow has
//! stopped.

use crate::signals::LiveSignals;

/// A flow has stopped when its window's arrivals all came before a quiet so long that a flow
/// going on would leave it with probability under e^−7 ≈ 0.1 %: n arrivals of a steady flow
/// fall anywhere in the window W, so all n miss the last q seconds with probability
/// (1 − q/W)^n (≈ e^{−λq} for a short quiet). A burst that is over passes the test a
/// fraction of a second after its last task.
pub const STOPPED_FLOW: f64 = 7.0;

/// The queue's λ, its source, and whether it is a lower bound.
pub(super) fn arrival_rate(live: &LiveSignals) -> (f64, &'static str, bool) {
    // λ without the burst fast path when the sampler has it: a burst shows in the backlog
    // (the drain term) at once, and a one-tick peak held as pods by the HPA's scale-down
    // window would cost more than it serves.
    let arrival = live.arrival_rate_steady.or(live.arrival_rate);
    let (rate, rate_source) = match (
        arrival.and_then(|e| e.usable().map(|v| (v, e.source.as_str()))),
        live.dequeue_rate
            .and_then(|e| e.usable().map(|v| (v, e.source.as_str()))),
    ) {
        (Some(a), _) => a,
        (None, Some(d)) => d,
        (None, None) => (0.0, "none"),
    };
    // A lower-bound λ (traffic mostly unseen) only ever raises the estimate: the dequeue
    // count under-counts too, so the larger of the two is used.
    let lower_bound = arrival.is_some_and(|e| e.is_lower_bound());
    let rate = match live.dequeue_rate.and_then(|e| e.usable()) {
        Some(d) if lower_bound => rate.max(d),
        _ => rate,
    };
    // A flow that has stopped arrives at rate 0 from now on, whatever its window still
    // counts: a burst that is over must not keep its λ (and the trigger active) for the rest
    // of the window. A lower-bound λ rests on arrivals mostly unseen: its quiet is no evidence.
    if !lower_bound && stopped(rate, live) {
        return (0.0, rate_source, false);
    }
    (rate, rate_source, lower_bound)
}

/// Whether the flow `live` counts at `rate` has stopped: no arrival for longer than any gap
/// it left before in its window (a producer sending batches leaves long ones), and longer
/// than the window's arrivals, were the flow still on, would leave with probability above
/// e^−[`STOPPED_FLOW`].
fn stopped(rate: f64, live: &LiveSignals) -> bool {
    let (Some(q), Some(w)) = (live.arrivals_quiet_for, live.rate_window) else {
        return false;
    };
    if !(q.is_finite() && w.is_finite() && q > 0.0 && w > 0.0 && rate > 0.0) {
        return false;
    }
    if live
        .arrivals_longest_gap
        .is_some_and(|g| q <= g || g.is_nan())
    {
        return false;
    }
    // ln P(no arrival in the last q | n in the window) = n·ln(1 − q/W); −∞ once q ≥ W.
    let n = rate * w;
    let log_p = n * (-(q / w).min(1.0)).ln_1p();
    log_p < -STOPPED_FLOW
}
