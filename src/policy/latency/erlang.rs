//! The pooled Erlang sizing: the fewest slots of one M/M/c queue whose p95 wait stays within
//! the target, and the constants of that p95 rule. A leaf module: `latency.rs` and
//! `buffers.rs` both size with it. Pure: no I/O, no clock.

/// `ln(1/0.05)`: the tail factor of the p95 (P(wait > T) ≤ 5 %).
pub const P95_FACTOR: f64 = 2.995_732_273_553_991;
/// The share of tasks allowed to wait longer than the target.
pub const TAIL_SHARE: f64 = 0.05;
/// Above this offered load (slots) the exact Erlang search gives way to square-root staffing
/// with β = 3 (P(wait) ≈ 0.15 %), which is never below the exact answer there.
pub const ERLANG_EXACT_MAX_LOAD: f64 = 2_000.0;

/// The fewest slots `c > load` for which an M/M/c queue with offered `load` (slots) and
/// exponential tail scale `tail` keeps P(wait > `target`) = ErlangC(c, load)·e^{−(c−load)·target/tail}
/// within [`TAIL_SHARE`]. 0 for no load. Non-decreasing in `load` and `tail`, non-increasing
/// in `target`.
pub fn steady_slots(load: f64, tail: f64, target: f64) -> f64 {
    if load.is_nan() || load <= 0.0 {
        return 0.0;
    }
    if !load.is_finite() || !tail.is_finite() {
        return f64::MAX;
    }
    // C ≤ 1, so this many spare slots always suffice; √-staffing with β = 3 too (large load).
    let enough = load + P95_FACTOR * tail / target;
    if load > ERLANG_EXACT_MAX_LOAD {
        return enough.min(load + 3.0 * load.sqrt()).ceil();
    }
    // Erlang B by recursion up to c, then C from B; c runs over integers above the load.
    let mut b = 1.0;
    let mut c = 0.0;
    while c < load.floor() {
        c += 1.0;
        b = load * b / (c + load * b);
    }
    loop {
        c += 1.0;
        b = load * b / (c + load * b);
        let erlang_c = c * b / (c - load * (1.0 - b));
        let tail_share = erlang_c * (-(c - load) * target / tail).exp();
        if tail_share <= TAIL_SHARE || c >= enough {
            return c;
        }
    }
}
