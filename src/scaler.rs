//! The use case both the gRPC service and `inspect` run: trigger metadata → settings →
//! the broker's latest view → the policy's decision. One code path for both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::{AccessPolicy, NamedConnections, Registry, Requester, Subscription, WatchView};
use crate::config::Config;
use crate::policy::{decide_live, Decision, PolicySettings};
use crate::signals::{Estimate, LiveSignals, Source};
use crate::telemetry::Metrics;
use crate::trigger::{TriggerCache, TriggerSettings};

mod access;
mod error;

pub use error::ScalerError;

/// One answer: the settings it was computed for, what the broker showed, and the decision.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub settings: Arc<TriggerSettings>,
    pub view: Arc<WatchView>,
    /// Live signals per queue (same order as `view.queues`), heartbeats and fallbacks applied.
    pub live: Vec<LiveSignals>,
    pub decision: Decision,
}

/// The view's live signals for this trigger: heartbeats of its `workerHostnames`, and the
/// configured `taskDuration` (source `config`) where no service time was measured.
fn live_signals(settings: &TriggerSettings, view: &WatchView) -> Vec<LiveSignals> {
    let mut live = view.live_signals(settings.watch.worker_hostnames.as_deref());
    let configured = match &settings.policy {
        PolicySettings::Latency(l) => l.task_duration,
        PolicySettings::Backlog { .. } => None,
    };
    if let Some(d) = configured.filter(|d| d.is_finite() && *d > 0.0) {
        for l in live.iter_mut().filter(|l| l.service_time.is_none()) {
            l.service_time = Some(Estimate::new(d, Source::Config));
        }
    }
    live
}

/// Shared by every RPC; cheap to clone behind an `Arc`.
pub struct Scaler {
    registry: Arc<Registry>,
    triggers: TriggerCache,
    connections: NamedConnections,
    access: AccessPolicy,
    /// Bound on waiting for the broker in one evaluation (the RPC deadline); `None`: only
    /// the registry's own first-sample timeout.
    rpc_timeout: Option<Duration>,
}

impl Scaler {
    /// A scaler that accepts any inline broker and uses each named connection on its own DB
    /// only (see [`Scaler::with_access`]).
    pub fn new(registry: Arc<Registry>, connections: NamedConnections) -> Self {
        let mut access = AccessPolicy::default();
        access.fill_defaults(&connections);
        Self {
            registry,
            triggers: TriggerCache::default(),
            connections,
            access,
            rpc_timeout: None,
        }
    }

    /// The scaler of `config`: its registry (sampler timing, broker bounds), named
    /// connections and broker policy. No RPC deadline (see [`Scaler::with_rpc_timeout`]).
    pub fn from_config(config: &Config) -> Self {
        Self::from_config_with_metrics(config, Metrics::with_max_series(config.max_series))
    }

    /// [`Scaler::from_config`] exporting to `metrics` (whose series cap is the caller's).
    pub fn from_config_with_metrics(config: &Config, metrics: Arc<Metrics>) -> Self {
        let registry =
            Registry::with_metrics(config.sampler_settings(), config.broker_limits(), metrics);
        Self::new(Arc::new(registry), config.connections.clone()).with_access(config.access.clone())
    }

    /// Replaces the broker policy (connections without an entry get the default).
    pub fn with_access(mut self, mut access: AccessPolicy) -> Self {
        access.fill_defaults(&self.connections);
        self.access = access;
        self
    }

    /// Bounds every evaluation's wait for the broker (the gRPC answer deadline).
    pub fn with_rpc_timeout(mut self, bound: Duration) -> Self {
        self.rpc_timeout = Some(bound);
        self
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The metrics of this scaler (its registry's).
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.registry.metrics()
    }

    /// The broker policy in force.
    pub fn access(&self) -> &AccessPolicy {
        &self.access
    }

    /// Logs the broker policy at start-up; warns when any inline broker is accepted.
    pub fn log_access_policy(&self) {
        access::log_policy(&self.access);
    }

    /// Parsed settings for `metadata` (cached by content), checked against the broker policy
    /// for `who`. Never touches Redis.
    pub fn settings(
        &self,
        metadata: &HashMap<String, String>,
        who: Requester<'_>,
    ) -> Result<Arc<TriggerSettings>, ScalerError> {
        let settings = self.triggers.get(metadata, &self.connections)?;
        self.access
            .check(settings.connection.as_deref(), &settings.broker, who)
            .map_err(ScalerError::Denied)?;
        Ok(settings)
    }

    /// Checks that `asked` is the metric this trigger serves (case-insensitively: KEDA before
    /// 2.12 lowercased names on the HPA path).
    pub fn check_metric_name(settings: &TriggerSettings, asked: &str) -> Result<(), ScalerError> {
        if asked.eq_ignore_ascii_case(&settings.metric_name) {
            Ok(())
        } else {
            Err(ScalerError::UnknownMetric {
                asked: asked.to_string(),
                expected: settings.metric_name.clone(),
            })
        }
    }

    /// Evaluates `metadata` against the broker's latest sample, as the operator (`inspect`,
    /// or a stream whose ScaledObject was admitted when it opened): the broker policy applies
    /// except for namespace pins.
    pub async fn evaluate(
        &self,
        metadata: &HashMap<String, String>,
    ) -> Result<Evaluation, ScalerError> {
        let settings = self.settings(metadata, Requester::Operator)?;
        self.evaluate_settings(settings).await
    }

    /// Evaluates settings already parsed and admitted (saves a second cache look-up per
    /// RPC). Waits for the broker at most the RPC deadline, if one is set.
    pub async fn evaluate_settings(
        &self,
        settings: Arc<TriggerSettings>,
    ) -> Result<Evaluation, ScalerError> {
        let view = self.registry.view(&settings.broker, &settings.watch);
        let view = match self.rpc_timeout {
            None => view.await,
            Some(bound) => tokio::time::timeout(bound, view)
                .await
                .unwrap_or_else(|_| Err(access::deadline(&settings.broker, bound))),
        };
        let view = view.map_err(|e| access::shield(&self.connections, &settings.broker, e))?;
        Ok(Self::decide(settings, view))
    }

    /// The decision for a view already in hand (used by streams).
    pub fn decide(settings: Arc<TriggerSettings>, view: Arc<WatchView>) -> Evaluation {
        let live = live_signals(&settings, &view);
        let decision = decide_live(&settings.policy, &view.queues, &live);
        Evaluation {
            settings,
            view,
            live,
            decision,
        }
    }

    /// Follows `metadata`'s watch set sample by sample.
    pub async fn subscribe(
        &self,
        metadata: &HashMap<String, String>,
    ) -> Result<(Arc<TriggerSettings>, Subscription), ScalerError> {
        let settings = self.settings(metadata, Requester::Operator)?;
        let sub = self.subscribe_settings(&settings).await?;
        Ok((settings, sub))
    }

    /// Follows the watch set of settings already parsed and admitted (a stream keeps only
    /// these, not its metadata).
    pub async fn subscribe_settings(
        &self,
        settings: &TriggerSettings,
    ) -> Result<Subscription, ScalerError> {
        self.registry
            .subscribe(&settings.broker, &settings.watch)
            .await
            .map_err(|e| access::shield(&self.connections, &settings.broker, e))
    }

    /// Exports the decision for one ScaledObject on `/metrics`. Its series go when the
    /// ScaledObject has not been answered for the sampler's idle expiry (the time after which
    /// its watch set stops being sampled), and count against the series cap.
    pub fn record(&self, namespace: &str, scaled_object: &str, decision: &Decision) {
        self.metrics()
            .objects()
            .record(namespace, scaled_object, decision, self.series_expiry());
    }

    /// How long a ScaledObject's series outlive its latest answer.
    fn series_expiry(&self) -> Duration {
        self.registry.settings().idle_expiry
    }
}
