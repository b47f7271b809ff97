//! `celery-scaler simulate`: a deterministic (seeded) discrete-event simulation of one Celery
//! worker Deployment under KEDA and the HPA, comparing KEDA's redis scaler with our
//! `backlog` and `latency` modes on the same workload. The format of scenario files and the
//! model are documented in `docs/simulate.md`.
//!
//! Architecture Invariant: the simulator reads no clock and no environment; the same
//! scenario and seed give byte-identical output.

use std::path::{Path, PathBuf};

pub mod autoscale;
pub mod baseline;
pub mod bench;
pub mod engine;
mod error;
pub mod floors;
pub mod held;
pub mod limits;
mod load;
pub mod outcome;
pub mod recommended;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod seeds;
pub mod summary;
pub mod workload;

pub use engine::simulate;
pub use error::SimError;
pub use outcome::{Outcome, PolicyKind, PolicyRun, Signals};
pub use scenario::Scenario;
pub use summary::{Comparison, StaticBest, Summary, LATENCY_ORACLE, LATENCY_REAL};

use std::collections::HashMap;

use crate::policy::latency::Prefetch;
use crate::policy::{LatencySettings, PolicySettings};
use crate::spec::NamedConnections;
use crate::trigger;

/// Errors of the simulator; [`SimError::exit_code`] is what the CLI exits with.
/// Flags of `celery-scaler simulate`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML, see docs/simulate.md).
    #[arg(long)]
    pub scenario: PathBuf,
    /// Print JSON instead of the text table.
    #[arg(long)]
    pub json: bool,
    /// Write the time series of every run to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write an SVG plot (replicas and oldest wait over time) to this file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Report every keda-redis `listLength` of the grid, not only the best one.
    #[arg(long)]
    pub all_grid: bool,
}

/// The latency policy as the scenario configures it.
pub fn latency_settings(sc: &Scenario) -> PolicySettings {
    let task_duration = task_duration(sc);
    PolicySettings::Latency(LatencySettings {
        concurrency: f64::from(sc.workers.concurrency),
        target_latency: sc.target_latency,
        task_duration,
        min_headroom: sc.policies.latency_min_headroom,
        activation_list_length: 0.0,
        prefetch: worker_prefetch(sc, &metadata(sc, task_duration)),
        pod_startup: Some(pod_startup(sc)),
    })
}

/// `taskDuration` as an operator states it for the scenario (the shipped ScaledObjects
/// state one): the configured `policies.latency_task_duration`, else the mean duration of
/// the tasks the scenario publishes ([`workload::mean_task_duration`]).
pub fn task_duration(sc: &Scenario) -> Option<f64> {
    sc.policies
        .latency_task_duration
        .or_else(|| workload::mean_task_duration(sc))
}

/// `podStartup` as an operator states it for the scenario's pods: the configured
/// `policies.latency_pod_startup`, else the 95th percentile of `workers.startup`, plus
/// `pollingInterval` when KEDA polls the trigger instead of taking its pushes.
pub fn pod_startup(sc: &Scenario) -> f64 {
    sc.policies.latency_pod_startup.unwrap_or_else(|| {
        let polling = if sc.keda.external_push {
            0.0
        } else {
            sc.keda.polling_interval
        };
        sc.workers.startup.quantile(0.95) + polling
    })
}

/// The trigger metadata an operator writes for the scenario's workers: `prefetchMultiplier`
/// and `acksLate` as their Celery settings, `podStartup` and `taskDuration` as stated,
/// beside the keys latency mode requires.
pub fn worker_metadata(sc: &Scenario) -> HashMap<String, String> {
    metadata(sc, task_duration(sc))
}

/// [`worker_metadata`] with `taskDuration` already worked out (it walks every arrival).
fn metadata(sc: &Scenario, task_duration: Option<f64>) -> HashMap<String, String> {
    [
        ("address", "redis:6379".to_string()),
        ("mode", "latency".to_string()),
        ("concurrency", sc.workers.concurrency.to_string()),
        ("targetLatency", sc.target_latency.to_string()),
        (
            "prefetchMultiplier",
            sc.workers.prefetch_multiplier.to_string(),
        ),
        ("acksLate", sc.workers.acks_late.to_string()),
        ("podStartup", pod_startup(sc).to_string()),
    ]
    .into_iter()
    .chain(task_duration.map(|d| ("taskDuration", d.to_string())))
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// How the scenario's workers prefetch, read through the trigger parser from their
/// `metadata` ([`worker_metadata`]); the scenario's values directly if the parser refuses
/// them.
fn worker_prefetch(sc: &Scenario, metadata: &HashMap<String, String>) -> Prefetch {
    let parsed = trigger::parse(metadata, &NamedConnections::default());
    match parsed.map(|t| t.policy) {
        Ok(PolicySettings::Latency(l)) => l.prefetch,
        _ => Prefetch {
            multiplier: f64::from(sc.workers.prefetch_multiplier),
            acks_late: sc.workers.acks_late,
        },
    }
}

/// keda-redis over every `listLength` of `sc`'s grid, best first ([`best_first`]).
pub(crate) fn keda_grid(sc: &Scenario) -> Result<Vec<(f64, Summary, Outcome)>, SimError> {
    let mut grid = Vec::new();
    for l in &sc.policies.keda_redis_list_lengths {
        let run = PolicyRun {
            label: format!("keda-redis (listLength {l})"),
            kind: PolicyKind::KedaRedis {
                list_length: *l,
                activation: sc.policies.keda_redis_activation,
            },
        };
        let mut o = simulate(sc, &run)?;
        let s = report::summarize(sc, &mut o);
        grid.push((*l, s, o));
    }
    best_first(sc, &mut grid);
    Ok(grid)
}

/// keda-redis' best grid entry: the fewest pod-seconds among runs meeting p95 ≤ target; when
/// none meets it, the lowest p95 (then fewest pod-seconds).
fn best_first(sc: &Scenario, grid: &mut [(f64, Summary, Outcome)]) {
    let t = sc.target_latency;
    grid.sort_by(|(_, a, _), (_, b, _)| {
        let (am, bm) = (a.wait_p95 <= t, b.wait_p95 <= t);
        bm.cmp(&am).then_with(|| {
            if am {
                a.pod_seconds.total_cmp(&b.pod_seconds)
            } else {
                a.wait_p95
                    .total_cmp(&b.wait_p95)
                    .then(a.pod_seconds.total_cmp(&b.pod_seconds))
            }
        })
    });
}

/// Runs keda-redis over its `listLength` grid, then `backlog` and `latency` (on each of the
/// scenario's `policies.signals`), then the
/// static-fleet search of [`baseline::best_static`].
pub fn compare(sc: &Scenario) -> Result<Comparison, SimError> {
    compare_with_static(sc, baseline::best_static(sc)?)
}

/// [`compare`] with the best static fleet already known: it depends on neither KEDA's
/// timing nor its `behavior` (`min = max = N`), so a re-run of the same scenario under other
/// ScaledObject settings need not search it again.
pub fn compare_with_static(sc: &Scenario, static_best: StaticBest) -> Result<Comparison, SimError> {
    let grid = keda_grid(sc)?;
    // Backlog mode reads only what the sampler reads exactly (`LLEN`, `unacked` counts):
    // the same on either signals, so it runs once.
    let mut ours = vec![PolicyRun {
        label: "backlog".into(),
        kind: PolicyKind::Ours(
            PolicySettings::Backlog {
                list_length: sc.policies.backlog_list_length,
                activation_list_length: sc.policies.backlog_activation,
            },
            Signals::Real,
        ),
    }];
    for signals in &sc.policies.signals {
        ours.push(PolicyRun {
            label: match signals {
                Signals::Real => LATENCY_REAL.into(),
                Signals::Oracle => LATENCY_ORACLE.into(),
            },
            kind: PolicyKind::Ours(latency_settings(sc), *signals),
        });
    }
    let mut summaries = Vec::new();
    let mut outcomes = Vec::new();
    let grid_summaries: Vec<Summary> = grid.iter().map(|(_, s, _)| s.clone()).collect();
    let grid_list_lengths = grid.iter().map(|(l, _, _)| *l).collect();
    if let Some((_, s, o)) = grid.into_iter().next() {
        summaries.push(s);
        outcomes.push(o);
    }
    for run in &ours {
        let mut o = simulate(sc, run)?;
        summaries.push(report::summarize(sc, &mut o));
        outcomes.push(o);
    }
    Ok(Comparison {
        summaries,
        outcomes,
        grid: grid_summaries,
        grid_list_lengths,
        static_best,
    })
}

/// Runs `celery-scaler simulate` and returns what it prints.
pub fn run(args: &SimulateArgs) -> Result<String, SimError> {
    let mut sc = Scenario::load(&args.scenario)?;
    if let Some(seed) = args.seed {
        sc.seed = seed;
    }
    let cmp = compare(&sc)?;
    let mut rows = cmp.summaries.clone();
    if args.all_grid {
        rows.extend(cmp.grid.iter().skip(1).cloned());
    }
    let mut text_rows = rows.clone();
    text_rows.push(cmp.static_best.summary.clone());
    if let Some(path) = &args.csv {
        write(path, &report::csv(&cmp.outcomes))?;
    }
    if let Some(path) = &args.svg {
        write(path, &report::svg(&sc, &cmp.outcomes))?;
    }
    if args.json {
        let doc = serde_json::json!({
            "scenario": sc.name,
            "seed": sc.seed,
            "target_latency": sc.target_latency,
            "policies": rows,
            "keda_redis_grid": cmp.grid,
            "baselines": report::baselines_json(&sc, &cmp),
        });
        Ok(serde_json::to_string_pretty(&doc)? + "\n")
    } else {
        Ok(report::table(&sc, &text_rows) + &report::baselines_text(&sc, &cmp))
    }
}

fn write(path: &Path, text: &str) -> Result<(), SimError> {
    std::fs::write(path, text).map_err(|source| SimError::Output {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests;
