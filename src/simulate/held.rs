//! The bench's answer where only a fleet up from t = 0 meets a target and the Deployment may
//! sit at zero between bursts: the fewest pods KEDA must start at once on the first task
//! (`idleReplicaCount` 0 with `minReplicaCount` K), keda-redis under the same setting, and
//! the bar judged again with every run under it (`docs/benchmarks/scaling.md`, "Where
//! latency mode falls short").

use super::baseline::latency_shortfalls;
use super::floors::{latency_floor, Hold};
use super::outcome::Signals;
use super::report::Summary;
use super::{compare_with_static, Comparison, Scenario, SimError};

/// Latency mode with the Deployment held at zero between bursts, at the fewest K with which
/// it meets the target.
pub(crate) struct Held {
    /// `minReplicaCount` (KEDA starts that many pods on the first task).
    pub k: u32,
    /// Latency mode's run under it.
    pub run: Summary,
    /// What it misses of the bar there, every run under the same setting (none: it meets).
    pub shortfalls: Vec<String>,
    /// keda-redis' best `listLength` under the same setting and its run (the grid's first:
    /// the cheapest meeting the target, else the lowest p95).
    pub keda: Option<(f64, Summary)>,
}

/// [`Held`] for `sc` on `signals`, K tried from 1 up to `keda.max_replicas`; `None` when no
/// K meets the target. The bar is judged against `cmp`'s best static fleet.
pub(crate) fn held_at_floor(
    sc: &Scenario,
    cmp: &Comparison,
    signals: Signals,
) -> Result<Option<Held>, SimError> {
    let Some((k, run)) = latency_floor(sc, Hold::Idle, signals, sc.keda.max_replicas)? else {
        return Ok(None);
    };
    let scenario = Hold::Idle.apply(sc, k);
    let at_k = compare_with_static(&scenario, cmp.static_best.clone())?;
    let shortfalls = latency_shortfalls(&scenario, &at_k);
    let keda = at_k
        .grid_list_lengths
        .first()
        .copied()
        .zip(at_k.grid.first().cloned());
    Ok(Some(Held {
        k,
        run,
        shortfalls,
        keda,
    }))
}

/// The answer when the Deployment may sit at zero between bursts (not always cheaper than
/// the warm floor: a queue busy most of the day pays K at every wave): the fewest pods K
/// KEDA starts at once on activation (`idleReplicaCount` 0 + `minReplicaCount` K, tried from
/// 1 up to `keda.max_replicas`) with which latency mode meets the target, keda-redis' best
/// `listLength` under the same setting, and whether latency mode meets the bar there (every
/// run under that setting, against the same best static fleet); true when it does.
pub(crate) fn idle_floor_text(
    sc: &Scenario,
    cmp: &Comparison,
    signals: Signals,
) -> Result<(String, bool), SimError> {
    let max = sc.keda.max_replicas;
    let Some(Held {
        k,
        run: s,
        shortfalls: short,
        keda,
    }) = held_at_floor(sc, cmp, signals)?
    else {
        return Ok((
            format!("held at zero (`idleReplicaCount` 0), not even with `minReplicaCount` {max}"),
            false,
        ));
    };
    let keda = match keda {
        Some((l, r)) => format!(
            "keda-redis with the same: `listLength` {l}, p95 {:.2} s, {:.0} pod-s",
            r.wait_p95, r.pod_seconds
        ),
        None => "no keda-redis grid to compare".into(),
    };
    let bar = if short.is_empty() {
        "with it latency mode meets the bar".to_string()
    } else {
        format!("with it latency mode {}", short.join(", "))
    };
    Ok((
        format!(
            "held at zero between bursts, `idleReplicaCount` 0 with `minReplicaCount` {k} \
             (KEDA starts {k} pods on the first task) does (p95 {:.2} s, {:.0} pod-s; {keda}; \
             {bar})",
            s.wait_p95, s.pod_seconds
        ),
        short.is_empty(),
    ))
}

/// What the count of scenarios meeting the bar leaves out: those where latency mode meets
/// it once the Deployment is held at zero between bursts and started at the computed
/// `minReplicaCount` (the item says which).
pub(crate) fn held_clause(names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    format!(
        " Held at zero between bursts (`idleReplicaCount` 0) with the `minReplicaCount` its \
         item computes, also on {}.",
        names.join(", ")
    )
}
