//! Parts of the soak benchmark (`benches/soak.rs`): its settings, the per-kind tallies of
//! hostile calls, and the modules that drive each kind of traffic.
//!
//! Included with `#[path]` from `benches/soak.rs` (not a bench target of its own).
#![allow(dead_code)]

pub mod app;
pub mod broker_attack;
pub mod hostile;
pub mod normal;
pub mod process;
pub mod report;
pub mod slowloris;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use tonic::transport::Channel;

/// Every hostile kind, in the order the report lists them (names for `SOAK_SKIP`).
pub const HOSTILE_KINDS: [&str; 11] = [
    "huge_prefix",
    "many_queues",
    "priority_steps",
    "so_names",
    "broker_specs",
    "heartbeats",
    "binding",
    "wrong_type",
    "slowloris_grpc",
    "slowloris_admin",
    "streams",
];

/// What the run was asked to do (environment, with smoke-mode defaults under `cargo test`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Length of each phase, seconds (`SOAK_SECS`).
    pub secs: f64,
    /// Multiplies every hostile count (`SOAK_SCALE`; 1 in a benchmark run, small in smoke).
    pub scale: f64,
    /// Bound on each normal call, as KEDA's HPA path allows about 3 s for both.
    pub call_timeout: Duration,
    /// Bound on each hostile call.
    pub hostile_timeout: Duration,
    /// Scaler RSS (MiB) past which hostile traffic stops, so the shared machine survives
    /// unfixed code (`SOAK_MAX_RSS_MB`).
    pub rss_cap_mib: f64,
    /// Hostile kinds left out (`SOAK_SKIP`, comma-separated).
    pub skip: Vec<String>,
    /// Whether this is a `cargo bench` run (else the `cargo test` smoke run).
    pub full: bool,
}

impl Settings {
    /// `full` scaled by [`Settings::scale`], at least 1.
    pub fn count(&self, full: usize) -> usize {
        ((full as f64 * self.scale).round() as usize).max(1)
    }

    pub fn enabled(&self, kind: &str) -> bool {
        !self.skip.iter().any(|s| s == kind)
    }

    /// How often the samplers (RSS, `/healthz`) look.
    pub fn sample_every(&self) -> Duration {
        if self.full {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(250)
        }
    }
}

/// What the phases share: the addresses, the two client connections and the settings.
#[derive(Clone)]
pub struct Ctx {
    pub settings: Settings,
    pub redis_port: u16,
    pub grpc_port: u16,
    pub admin_port: u16,
    pub pid: u32,
    /// The normal triggers' connection (KEDA multiplexes on one).
    pub normal: ExternalScalerClient<Channel>,
    /// The hostile clients' connection (another client, not KEDA's).
    pub hostile: ExternalScalerClient<Channel>,
}

impl Ctx {
    pub fn redis_address(&self) -> String {
        format!("127.0.0.1:{}", self.redis_port)
    }
}

/// Outcome counts of one hostile kind.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub ok: u64,
    /// Refusals and failures by kind: a gRPC code name, `timeout`, or an I/O error.
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    pub fn record(&mut self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.ok += 1,
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Tallies of every hostile kind of one phase.
pub type Tallies = Arc<Mutex<BTreeMap<&'static str, Tally>>>;

pub fn record(tallies: &Tallies, kind: &'static str, outcome: Result<(), String>) {
    if let Ok(mut t) = tallies.lock() {
        t.entry(kind).or_default().record(outcome);
    }
}

/// Runs one gRPC call under `limit`: `Err` holds the code name or `timeout`.
pub async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(status)) => Err(format!("{:?}", status.code())),
        Err(_) => Err("timeout".into()),
    }
}

/// Sleeps `d`, but not past `end`.
pub async fn sleep_within(d: Duration, end: Instant) {
    let until = (Instant::now() + d).min(end);
    tokio::time::sleep_until(until.into()).await;
}

/// Whether a sender of hostile traffic should stop: the phase is over or the RSS cap was hit.
pub fn over(end: Instant, stop: &AtomicBool) -> bool {
    Instant::now() >= end || stop.load(Ordering::Relaxed)
}

/// Sums error maps.
pub fn add_errors(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}
