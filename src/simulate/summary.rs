//! The numbers a run is compared by: one run's [`Summary`] (wait percentiles, share over
//! target, pod-seconds, cost efficiency, interruptions, scale events, cold start), the best
//! static fleet, and every run of one scenario ([`Comparison`]). Plain data shared by the
//! runner, the baselines and the reports.

use serde::Serialize;

use super::outcome::Outcome;
use super::scenario::Scenario;

/// All runs of one comparison, in report order.
pub struct Comparison {
    pub summaries: Vec<Summary>,
    pub outcomes: Vec<Outcome>,
    /// The keda-redis runs of the grid (summaries), best first.
    pub grid: Vec<Summary>,
    /// The `listLength` of each entry of `grid`, in the same order.
    pub grid_list_lengths: Vec<f64>,
    /// The best static replica count in hindsight.
    pub static_best: StaticBest,
}

/// The label of the latency-mode run on the scaler's own estimators, fed what its sampler
/// would read from the simulated broker (see `docs/simulate.md`, "Sampler").
pub const LATENCY_REAL: &str = "latency (real signals)";
/// The label of the latency-mode run on exact signals computed from the model.
pub const LATENCY_ORACLE: &str = "latency (oracle signals)";

/// The summary of one policy run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub policy: String,
    pub tasks: u64,
    pub unfinished: u64,
    pub wait_p50: f64,
    pub wait_p95: f64,
    pub wait_p99: f64,
    pub wait_max: f64,
    pub share_over_target: f64,
    pub pod_seconds: f64,
    /// Lower bound on pod-seconds: total task work ÷ concurrency.
    pub lower_bound: f64,
    /// `lower_bound / pod_seconds` (1 = no idle slot ever).
    pub cost_efficiency: f64,
    pub interrupted: u64,
    pub lost: u64,
    pub restored_at_shutdown: u64,
    pub scale_events: u64,
    /// Worst time from the first arrival after idle to the first task start, seconds.
    pub cold_start_max: Option<f64>,
    pub cold_starts: u64,
}

fn percentile(sorted: &[f32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1])
}

/// Summarises `o` (consumes its waits).
pub fn summarize(sc: &Scenario, o: &mut Outcome) -> Summary {
    o.waits.sort_unstable_by(f32::total_cmp);
    let w = &o.waits;
    let over = w
        .iter()
        .filter(|x| f64::from(**x) > sc.target_latency)
        .count();
    let lower = o.work / f64::from(sc.workers.concurrency);
    Summary {
        policy: o.label.clone(),
        tasks: w.len() as u64,
        unfinished: o.unfinished,
        wait_p50: percentile(w, 0.50),
        wait_p95: percentile(w, 0.95),
        wait_p99: percentile(w, 0.99),
        wait_max: w.last().map_or(0.0, |x| f64::from(*x)),
        share_over_target: if w.is_empty() {
            0.0
        } else {
            over as f64 / w.len() as f64
        },
        pod_seconds: o.pod_seconds,
        lower_bound: lower,
        cost_efficiency: if o.pod_seconds > 0.0 {
            lower / o.pod_seconds
        } else {
            0.0
        },
        interrupted: o.interrupted,
        lost: o.lost,
        restored_at_shutdown: o.restored_at_shutdown,
        scale_events: o.scale_events,
        cold_start_max: o.cold_starts.iter().copied().reduce(f64::max),
        cold_starts: o.cold_starts.len() as u64,
    }
}

/// The best static replica count of a scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StaticBest {
    /// The smallest N meeting the target; `keda.max_replicas` when none up to it does.
    pub replicas: u32,
    /// Whether `replicas` meets the target (false: no N ≤ `keda.max_replicas` does).
    pub meets: bool,
    /// The run with `replicas` pods.
    pub summary: Summary,
    /// Static runs simulated to find it.
    pub runs: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f32> = (1..=100).map(|x| x as f32).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
