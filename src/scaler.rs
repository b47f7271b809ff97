//! The use case both the gRPC service and `inspect` run: trigger metadata → settings →
//! the broker's latest view → the policy's decision. One code path for both.

mod series;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::{BrokerError, NamedConnections, Registry, Subscription, WatchView};
use crate::policy::{decide_live, Decision, PolicySettings};
use crate::signals::{Estimate, LiveSignals};
use crate::trigger::{MetadataError, TriggerCache, TriggerSettings};

/// Errors of one evaluation; the gRPC module maps them to status codes.
#[derive(Debug, thiserror::Error)]
pub enum ScalerError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("unknown metricName {asked:?}: this trigger serves {expected:?}")]
    UnknownMetric { asked: String, expected: String },
}

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
            l.service_time = Some(Estimate::new(d, "config"));
        }
    }
    live
}

/// Shared by every RPC; cheap to clone behind an `Arc`.
pub struct Scaler {
    registry: Arc<Registry>,
    triggers: TriggerCache,
    connections: NamedConnections,
}

impl Scaler {
    pub fn new(registry: Arc<Registry>, connections: NamedConnections) -> Self {
        series::init();
        Self {
            registry,
            triggers: TriggerCache::default(),
            connections,
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Parsed settings for `metadata` (cached by content). Never touches Redis.
    pub fn settings(
        &self,
        metadata: &HashMap<String, String>,
    ) -> Result<Arc<TriggerSettings>, ScalerError> {
        Ok(self.triggers.get(metadata, &self.connections)?)
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

    /// Evaluates `metadata` against the broker's latest sample.
    pub async fn evaluate(
        &self,
        metadata: &HashMap<String, String>,
    ) -> Result<Evaluation, ScalerError> {
        let settings = self.settings(metadata)?;
        self.evaluate_settings(settings).await
    }

    /// Evaluates settings already parsed (saves a second cache look-up per RPC).
    pub async fn evaluate_settings(
        &self,
        settings: Arc<TriggerSettings>,
    ) -> Result<Evaluation, ScalerError> {
        let view = self
            .registry
            .view(&settings.broker, &settings.watch)
            .await?;
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
        let settings = self.settings(metadata)?;
        let sub = self
            .registry
            .subscribe(&settings.broker, &settings.watch)
            .await?;
        Ok((settings, sub))
    }

    /// Exports the decision for one ScaledObject on `/metrics`. Its series go when the
    /// ScaledObject has not been answered for the sampler's idle expiry (the time after which
    /// its watch set stops being sampled), and count against the series cap.
    pub fn record(&self, namespace: &str, scaled_object: &str, decision: &Decision) {
        series::record(namespace, scaled_object, decision, self.series_expiry());
    }

    /// How long a ScaledObject's series outlive its latest answer.
    fn series_expiry(&self) -> Duration {
        self.registry.settings().idle_expiry
    }
}
