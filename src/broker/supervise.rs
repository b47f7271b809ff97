//! Supervision of the samplers and their pub/sub tasks (issue 9 item 4): a task that panics
//! is logged with its panic message, counted in `celery_scaler_task_restarts_total{task}`
//! (`sampler`, `events`) and restarted after a doubling backoff bounded by [`MAX_BACKOFF`]. The broker's shared state
//! (watch sets, latest snapshot) survives the restart, so requests keep waiting on it and the
//! restarted sampler answers them. Cancelling the registry's token ends the supervisor and
//! its sampler; dropping the supervisor aborts the sampler.
//!
//! This module holds the shared parts (backoff bounds, panic text, abort-on-drop) and the
//! supervised pub/sub task; the sampler's own restart loop is `sampler::supervised`, so that
//! the sampler depends on its supervision and not the other way round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::error;

use super::conn::Timeouts;
use super::events::Events;
use crate::signals::heartbeat::HeartbeatLimits;
use crate::spec::BrokerSpec;
use crate::telemetry::BrokerMetrics;

/// Wait before the first restart.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two restarts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A sampler that ran this long before failing restarts after [`FIRST_BACKOFF`] again.
pub(crate) const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Aborts the task when dropped (the supervisor itself was dropped or aborted).
pub(crate) struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of a panic, or what else ended the task.
pub(crate) fn reason(e: JoinError) -> String {
    if !e.is_panic() {
        return "task aborted".into();
    }
    let payload = e.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".into());
    text.chars().take(500).collect()
}

/// A sampler's pub/sub task, restarted (on the sampler's tick, after the backoff) when it
/// ended by a panic. Its state (subscriptions, heartbeats) starts over.
pub(crate) struct SupervisedEvents {
    events: Events,
    spec: BrokerSpec,
    /// The broker's series (and label) and its sampler's wake-up.
    owner: (BrokerMetrics, Arc<Notify>),
    timeouts: Timeouts,
    window: f64,
    limits: HeartbeatLimits,
    cancel: CancellationToken,
    backoff: Duration,
    retry_at: Option<Instant>,
    started: Instant,
}

impl SupervisedEvents {
    pub(crate) fn spawn(
        spec: BrokerSpec,
        owner: (BrokerMetrics, Arc<Notify>),
        timeouts: Timeouts,
        window: f64,
        limits: HeartbeatLimits,
        cancel: CancellationToken,
    ) -> Self {
        let events = Events::spawn(
            spec.clone(),
            owner.clone(),
            timeouts,
            window,
            limits,
            cancel.clone(),
        );
        Self {
            events,
            spec,
            owner,
            timeouts,
            window,
            limits,
            cancel,
            backoff: FIRST_BACKOFF,
            retry_at: None,
            started: Instant::now(),
        }
    }

    pub(crate) fn get(&self) -> &Events {
        &self.events
    }

    /// Restarts the task when it has ended and its backoff has passed.
    pub(crate) async fn check(&mut self) {
        if self.cancel.is_cancelled() || !self.events.is_finished() {
            return;
        }
        let now = Instant::now();
        let Some(at) = self.retry_at else {
            if self.started.elapsed() >= HEALTHY_AFTER {
                self.backoff = FIRST_BACKOFF;
            }
            self.retry_at = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            return;
        };
        if now < at {
            return;
        }
        let fresh = Events::spawn(
            self.spec.clone(),
            self.owner.clone(),
            self.timeouts,
            self.window,
            self.limits,
            self.cancel.clone(),
        );
        let old = std::mem::replace(&mut self.events, fresh);
        let why = match old.outcome().await {
            Ok(()) => "ended".to_string(),
            Err(e) => reason(e),
        };
        self.retry_at = None;
        self.started = now;
        self.owner.0.restarted("events");
        error!(broker = %self.owner.0.label(), panic = %why, "pub/sub task failed; restarted it");
    }

    pub(crate) async fn join(self) {
        self.events.join().await;
    }
}
