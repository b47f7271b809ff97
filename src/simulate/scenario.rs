//! The scenario file (TOML): workload, workers, KEDA/HPA settings and the policies to
//! compare. Every default here is the documented default of the thing it models (KEDA,
//! the HPA, Celery); `docs/simulate.md` is the reference for the format.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::outcome::Signals;
use super::rng::Dist;

/// One simulated worker Deployment and its workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Seconds during which tasks arrive.
    pub duration: f64,
    /// Seconds simulated after the last arrival (work drains, pods scale in).
    #[serde(default = "d_drain")]
    pub drain: f64,
    /// Target queue wait, seconds: the latency policy's `targetLatency` and the threshold
    /// reported as "share over target".
    pub target_latency: f64,
    #[serde(default)]
    pub keda: KedaSpec,
    pub workers: WorkerSpec,
    pub queues: Vec<QueueSpec>,
    #[serde(default)]
    pub policies: PolicySpec,
    #[serde(default)]
    pub sampler: SamplerSpec,
    /// Directory of the scenario file (trace paths are relative to it).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// KEDA ScaledObject and HPA settings (`docs/keda.md`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KedaSpec {
    pub polling_interval: f64,
    pub cooldown_period: f64,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// `idleReplicaCount`: when set, the replicas held while no trigger is active; the first
    /// active poll (or push) scales straight to `min_replicas`, and the HPA keeps
    /// `min_replicas..=max_replicas` while active. KEDA supports only 0, below
    /// `min_replicas`. Unset: KEDA's plain 0 ↔ 1 activation when `min_replicas` is 0.
    pub idle_replica_count: Option<u32>,
    pub hpa_sync_period: f64,
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization` (used when `behavior` is unset,
    /// and as the scale-down window default when it is set).
    pub downscale_stabilization: f64,
    /// Our policies use `external-push` (activation within one sampler tick); keda-redis
    /// cannot.
    pub external_push: bool,
    /// `advanced.horizontalPodAutoscalerConfig.behavior`; unset = the HPA's `behavior: nil`.
    pub behavior: Option<Behavior>,
}

impl Default for KedaSpec {
    fn default() -> Self {
        Self {
            polling_interval: 30.0,
            cooldown_period: 300.0,
            min_replicas: 0,
            max_replicas: 100,
            idle_replica_count: None,
            hpa_sync_period: 15.0,
            tolerance: 0.1,
            downscale_stabilization: 300.0,
            external_push: true,
            behavior: None,
        }
    }
}

/// HPA `behavior`; missing parts take the API server's defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behavior {
    pub scale_up: Option<Rules>,
    pub scale_down: Option<Rules>,
}

/// One direction of `behavior`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub stabilization_window: Option<f64>,
    pub select_policy: Option<Select>,
    pub policies: Option<Vec<RatePolicy>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatePolicy {
    pub kind: RateKind,
    pub value: f64,
    pub period: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RateKind {
    Pods,
    Percent,
}

/// Which pod the ReplicaSet deletes first among ready pods (pending pods always go first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Deletion {
    /// Kubernetes' default ranking: the most recently ready pod first.
    Newest,
    Oldest,
    Random,
    /// Fewest tasks held first (what `controller.kubernetes.io/pod-deletion-cost` can give).
    LeastBusy,
}

/// The worker Deployment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    pub concurrency: u32,
    #[serde(default = "d_prefetch")]
    pub prefetch_multiplier: u32,
    #[serde(default)]
    pub acks_late: bool,
    #[serde(default = "d_startup")]
    pub startup: Dist,
    #[serde(default = "d_grace")]
    pub termination_grace: f64,
    #[serde(default = "d_deletion")]
    pub deletion: Deletion,
    #[serde(default = "d_vt")]
    pub visibility_timeout: f64,
    /// Scheduled stops, seconds: at each, one ready pod (the one `deletion` picks) gets
    /// SIGTERM as in a scale-down, and is not replaced (a node drain or a manual kill in a
    /// fixed fleet; the next replica change of the autoscaler brings the count back).
    #[serde(default)]
    pub stops: Vec<f64>,
}

/// One Celery queue consumed by the Deployment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    pub name: String,
    pub duration: Dist,
    pub arrivals: Vec<Arrival>,
    /// `[step, weight]` pairs: the share of tasks sent with each priority step (kombu: 0 is
    /// the highest and lives in the bare key).
    #[serde(default = "d_priorities")]
    pub priorities: Vec<(u8, f64)>,
    /// Share of tasks sent with an ETA/countdown.
    #[serde(default)]
    pub eta_share: f64,
    #[serde(default = "d_eta_delay")]
    pub eta_delay: Dist,
}

/// An arrival process; a queue's arrivals are the union of its processes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Arrival {
    Poisson {
        rate: f64,
        #[serde(default)]
        start: f64,
        end: Option<f64>,
    },
    /// Poisson with a rate going linearly from `from` to `to` over [start, end].
    Ramp {
        from: f64,
        to: f64,
        start: f64,
        end: f64,
    },
    /// Poisson with rate `mean · (1 + amplitude · cos(2π (t − peak) / period))`.
    Diurnal {
        mean: f64,
        amplitude: f64,
        #[serde(default = "d_day")]
        period: f64,
        #[serde(default = "d_peak")]
        peak: f64,
    },
    /// `count` tasks at `at`, spread evenly over `over` seconds.
    Burst {
        at: f64,
        count: u64,
        #[serde(default)]
        over: f64,
    },
    /// Replays a CSV of arrival timestamps (seconds; one per line, `#` comments and a
    /// non-numeric header are skipped; an optional second column is the task duration, an
    /// optional third its Celery priority 0–9).
    Trace { path: PathBuf },
}

/// The policies compared in one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySpec {
    /// KEDA's redis scaler on each queue's bare key: one run per `list_lengths` entry.
    pub keda_redis_list_lengths: Vec<f64>,
    pub keda_redis_activation: f64,
    pub backlog_list_length: f64,
    pub backlog_activation: f64,
    /// `taskDuration` for the latency policy (fallback service time).
    pub latency_task_duration: Option<f64>,
    pub latency_min_headroom: f64,
    /// `podStartup` for the latency policy; unset: the 95th percentile of `workers.startup`,
    /// what an operator who measured the pods' start-ups would state.
    pub latency_pod_startup: Option<f64>,
    /// The signals latency mode is run on, one run each: `"real"` (the scaler's estimators
    /// on what its sampler would read) and/or `"oracle"` (exact values from the model).
    pub signals: Vec<Signals>,
}

impl Default for PolicySpec {
    fn default() -> Self {
        Self {
            keda_redis_list_lengths: vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0],
            keda_redis_activation: 0.0,
            backlog_list_length: 5.0,
            backlog_activation: 0.0,
            latency_task_duration: None,
            latency_min_headroom: 0.0,
            latency_pod_startup: None,
            signals: vec![Signals::Real, Signals::Oracle],
        }
    }
}

/// The scaler's sampler: how often it reads, what the broker lets it hear, and the windows
/// of its estimators (`signal_window` for the real ones, the others for the oracle).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerSpec {
    pub tick: f64,
    /// Arrival-rate window, seconds (a `fast_window` rate wins when it is higher: bursts).
    pub rate_window: u32,
    pub fast_window: u32,
    /// Service-time window (mean of tasks completed in it), seconds.
    pub service_window: u32,
    /// The workers send heartbeats and the trigger names them (`workerHostnames`): running
    /// tasks, start rate and Little's-law service time are known.
    pub heartbeats: bool,
    /// The broker publishes list keyspace events (`notify-keyspace-events Kl`): real signals
    /// count every push and pop (exact mode) instead of estimating from samples.
    pub notifications: bool,
    /// The scaler's `signal_window_seconds`: the window of its real estimators.
    pub signal_window: f64,
    /// Time-series resolution for CSV/SVG, seconds.
    pub series_step: f64,
}

impl Default for SamplerSpec {
    fn default() -> Self {
        Self {
            tick: 1.0,
            rate_window: 60,
            fast_window: 10,
            service_window: 300,
            heartbeats: true,
            notifications: false,
            signal_window: 30.0,
            series_step: 10.0,
        }
    }
}

fn d_seed() -> u64 {
    1
}
fn d_drain() -> f64 {
    900.0
}
fn d_prefetch() -> u32 {
    4
}
fn d_startup() -> Dist {
    Dist::Constant { value: 20.0 }
}
fn d_grace() -> f64 {
    30.0
}
fn d_deletion() -> Deletion {
    Deletion::Newest
}
fn d_vt() -> f64 {
    3600.0
}
fn d_priorities() -> Vec<(u8, f64)> {
    vec![(0, 1.0)]
}
fn d_eta_delay() -> Dist {
    Dist::Constant { value: 60.0 }
}
fn d_day() -> f64 {
    86_400.0
}
fn d_peak() -> f64 {
    50_400.0
}
