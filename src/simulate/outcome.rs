//! What a simulated run is asked to do and what it measured: the policy run (which scaler,
//! on which signals) and the outcome (waits, pod-seconds, counts, the time series). Plain
//! data shared by the engine, the baselines and the reports.

use crate::policy::PolicySettings;

/// Which signals our policy is fed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signals {
    /// The scaler's own estimators (`signals::live`), fed what the real sampler would read
    /// from the simulated broker at each tick.
    #[default]
    Real,
    /// Exact values computed from the simulator's state (perfect estimates).
    Oracle,
}

impl Signals {
    pub fn as_str(self) -> &'static str {
        match self {
            Signals::Real => "real",
            Signals::Oracle => "oracle",
        }
    }
}

/// Which scaler drives the Deployment.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyKind {
    /// KEDA's `redis` scaler: one trigger per queue on the bare key (`LLEN` only).
    KedaRedis { list_length: f64, activation: f64 },
    /// One of our modes, fed the sampler's view on the given signals.
    Ours(PolicySettings, Signals),
}

/// A policy run: a label for reports and what it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRun {
    pub label: String,
    pub kind: PolicyKind,
}

/// One row of the time series.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SeriesRow {
    pub t: f64,
    pub replicas: u32,
    pub ready: u32,
    pub backlog: u64,
    pub running: u64,
    pub oldest_wait: f64,
    pub metric: f64,
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub label: String,
    /// Wait of every task (start − due), including censored waits of tasks never started.
    pub waits: Vec<f32>,
    pub unfinished: u64,
    pub pod_seconds: f64,
    /// Σ task durations of all published tasks.
    pub work: f64,
    pub interrupted: u64,
    pub lost: u64,
    pub restored_at_shutdown: u64,
    pub scale_events: u64,
    pub cold_starts: Vec<f64>,
    pub series: Vec<SeriesRow>,
    /// What the sampler saw and showed the policy.
    pub seen: Seen,
}

/// What the sampler saw over a run and what it showed the policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    /// Sampler ticks (woken ones included).
    pub ticks: u64,
    /// The arrival rate shown (summed over queues; none counts as 0) integrated over time,
    /// each tick's value held until the next tick, and the time it covers.
    pub arrival_rate_integral: f64,
    pub span: f64,
    /// The time and arrival rate of the latest tick.
    pub last: Option<(f64, f64)>,
    /// New `unacked` entries the real sampler saw (0 on oracle signals).
    pub unacked_new: u64,
    /// Keyspace events the real sampler heard.
    pub keyspace_events: u64,
    /// Worker heartbeats the real sampler heard.
    pub heartbeats: u64,
}

impl Seen {
    /// Records the arrival rate shown at a tick at `now`.
    pub fn shown(&mut self, now: f64, arrival_rate: f64) {
        if let Some((t, l)) = self.last {
            self.arrival_rate_integral += l * (now - t);
            self.span += now - t;
        }
        self.ticks += 1;
        self.last = Some((now, arrival_rate));
    }

    /// The time-weighted mean arrival rate shown to the policy, tasks/s.
    pub fn arrival_rate_mean(&self) -> f64 {
        if self.span > 0.0 {
            self.arrival_rate_integral / self.span
        } else {
            0.0
        }
    }
}
