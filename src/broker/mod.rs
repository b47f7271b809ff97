//! Broker access: the only module that talks to Redis.
//!
//! One connection pool and one sampler per distinct [`BrokerSpec`]; triggers register
//! [`WatchSet`]s and read [`WatchView`]s from the latest sample.
//!
//! Architecture Invariant: nothing outside this module opens a Redis connection, and nothing
//! here writes to Redis (the scaler is read-only on the broker).

mod error;
mod spec;

use std::sync::Arc;
use std::time::Duration;

pub use error::BrokerError;
pub use spec::{BrokerSpec, Endpoint, HostPort, NamedConnections, Secret, TlsSpec, WatchSet};

use crate::signals::QueueSignals;

/// Timing of sampling and of every Redis round trip.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerSettings {
    /// Time between two samples of one broker.
    pub interval: Duration,
    /// Connect (incl. TLS and AUTH) timeout.
    pub connect_timeout: Duration,
    /// Timeout of one command or pipeline round trip.
    pub command_timeout: Duration,
    /// How long the first request for a new watch set waits for its first sample.
    pub first_sample_timeout: Duration,
    /// A sample older than this is not served (UNAVAILABLE instead).
    pub max_sample_age: Duration,
    /// Watch sets nobody asked about for this long are dropped.
    pub idle_expiry: Duration,
    /// Full re-read of `unacked` at most this often.
    pub reconcile_period: Duration,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            first_sample_timeout: Duration::from_secs(5),
            max_sample_age: Duration::from_secs(10),
            idle_expiry: Duration::from_secs(600),
            reconcile_period: Duration::from_secs(60),
        }
    }
}

/// What one watch set looks like in one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchView {
    /// The broker's label (`host:port/db`).
    pub broker: String,
    /// When the sample was taken, epoch seconds (scaler clock).
    pub sampled_at: f64,
    /// One entry per queue of the watch set, in its order.
    pub queues: Vec<QueueSignals>,
}

/// All brokers' samplers. Cheap to share behind an `Arc`.
pub struct Registry {
    settings: SamplerSettings,
}

impl Registry {
    pub fn new(settings: SamplerSettings) -> Self {
        Self { settings }
    }

    pub fn settings(&self) -> &SamplerSettings {
        &self.settings
    }

    /// The latest view of `watch` on `spec`'s broker. Registers the watch set on first use
    /// and waits (bounded) for its first sample.
    pub async fn view(
        &self,
        spec: &BrokerSpec,
        _watch: &WatchSet,
    ) -> Result<Arc<WatchView>, BrokerError> {
        Err(BrokerError::Connect {
            broker: spec.label(),
            detail: "not implemented yet".into(),
        })
    }

    /// Follows `watch`: every call to [`Subscription::next`] waits for the next sample.
    pub async fn subscribe(
        self: &Arc<Self>,
        spec: &BrokerSpec,
        watch: &WatchSet,
    ) -> Result<Subscription, BrokerError> {
        self.view(spec, watch).await?;
        Ok(Subscription {
            registry: self.clone(),
            spec: spec.clone(),
            watch: watch.clone(),
        })
    }

    /// Stops every sampler and waits for them to end.
    pub async fn shutdown(&self) {}
}

/// A stream handler's hold on one watch set; keeps it registered while alive.
pub struct Subscription {
    registry: Arc<Registry>,
    spec: BrokerSpec,
    watch: WatchSet,
}

impl Subscription {
    /// Waits for the next sample and returns the watch set's view in it.
    pub async fn next(&mut self) -> Result<Arc<WatchView>, BrokerError> {
        tokio::time::sleep(self.registry.settings.interval).await;
        self.registry.view(&self.spec, &self.watch).await
    }
}
