//! `StreamIsActive` (KEDA `external-push`): push `true` when the stream opens on an active
//! watch set and on each inactive → active transition; nothing else (never `false`, no
//! periodic re-send).
//!
//! Every `true` makes KEDA re-read the ScaledObject and write its status, so a re-send while
//! active would cost one API-server write per ScaledObject each time. An idle stream is kept
//! alive by HTTP/2 keepalive on the connection, not by messages. The stream is driven by the
//! connection that carries it (no task of its own), so a client cancel drops it at once. On
//! shutdown it ends cleanly (status OK) so that KEDA reconnects after ~2 s instead of
//! backing off.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::Stream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{debug, info, warn};

use super::proto::IsActiveResponse;
use super::status::to_status;
use crate::broker::{BrokerError, Subscription};
use crate::scaler::{Scaler, ScalerError};
use crate::telemetry::StreamGuard;
use crate::trigger::TriggerSettings;

/// The response stream type of `StreamIsActive`.
pub type ActiveStream =
    Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send + 'static>>;

/// Everything one open stream needs: the parsed settings (shared with the trigger cache),
/// not the raw metadata.
pub struct StreamSpec {
    pub scaler: Arc<Scaler>,
    pub settings: Arc<TriggerSettings>,
    pub shutdown: CancellationToken,
    /// `namespace/name` of the ScaledObject, for logs.
    pub scaled_object: String,
}

struct State {
    spec: StreamSpec,
    sub: Option<Subscription>,
    opened: bool,
    ended: bool,
    was_active: bool,
    last_error: Option<String>,
    _guard: StreamGuard,
    /// The stream's slot under `grpc_max_streams`, freed when the stream ends.
    _slot: OwnedSemaphorePermit,
}

/// Opens the stream in `slot`; it yields only `true` messages.
pub fn open(spec: StreamSpec, slot: OwnedSemaphorePermit) -> ActiveStream {
    debug!(scaled_object = %spec.scaled_object, "StreamIsActive opened");
    let guard = spec.scaler.metrics().grpc().stream_guard();
    let state = State {
        spec,
        sub: None,
        opened: false,
        ended: false,
        was_active: false,
        last_error: None,
        _guard: guard,
        _slot: slot,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        let token = st.spec.shutdown.clone();
        let item = tokio::select! {
            biased;
            _ = token.cancelled() => None,
            item = st.next_push() => item,
        };
        if item.is_none() {
            debug!(scaled_object = %st.spec.scaled_object, "StreamIsActive ends");
        }
        item.map(|item| (item, st))
    }))
}

impl State {
    /// Waits until a message is due; `None` ends the stream.
    async fn next_push(&mut self) -> Option<Result<IsActiveResponse, Status>> {
        if self.ended {
            return None;
        }
        if !self.opened {
            self.opened = true;
            let settings = self.spec.settings.clone();
            match self.spec.scaler.evaluate_settings(settings).await {
                Ok(e) => {
                    self.ok();
                    if let Some(msg) = self.consider(e.decision.active) {
                        return Some(Ok(msg));
                    }
                }
                Err(e) => {
                    if let Some(end) = self.failed(e) {
                        return end;
                    }
                }
            }
        }
        let retry = self.spec.scaler.registry().settings().interval;
        loop {
            let started = Instant::now();
            let step = self.step().await;
            match step {
                Ok(Some(active)) => {
                    self.ok();
                    if let Some(msg) = self.consider(active) {
                        return Some(Ok(msg));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if let Some(end) = self.failed(e) {
                        return end;
                    }
                    // Keep a failing broker from turning this into a busy loop.
                    if let Some(rest) = retry.checked_sub(started.elapsed()) {
                        tokio::time::sleep(rest).await;
                    }
                }
            }
        }
    }

    /// One sample: `Some(active)` when a view arrived.
    async fn step(&mut self) -> Result<Option<bool>, ScalerError> {
        let sub = match &mut self.sub {
            Some(sub) => sub,
            None => {
                let sub = self.spec.scaler.subscribe_settings(&self.spec.settings);
                self.sub.insert(sub.await?)
            }
        };
        let view = sub.next().await?;
        let eval = Scaler::decide(self.spec.settings.clone(), view);
        Ok(Some(eval.decision.active))
    }

    /// Whether to push now: only on becoming active (the first evaluation counts as a
    /// transition from inactive). A failed sample changes nothing.
    fn consider(&mut self, active: bool) -> Option<IsActiveResponse> {
        let send = active && !self.was_active;
        self.was_active = active;
        send.then_some(IsActiveResponse { result: true })
    }

    fn ok(&mut self) {
        if self.last_error.take().is_some() {
            info!(scaled_object = %self.spec.scaled_object, "StreamIsActive: broker readable again");
        }
    }

    /// Handles an error: `Some(end)` ends the stream (`end` is its last item).
    fn failed(&mut self, e: ScalerError) -> Option<Option<Result<IsActiveResponse, Status>>> {
        match e {
            ScalerError::Broker(BrokerError::ShuttingDown) => Some(None),
            ScalerError::Broker(b) => {
                let text = b.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    warn!(scaled_object = %self.spec.scaled_object, error = %text, "StreamIsActive: sample failed; the stream stays open");
                    self.last_error = Some(text);
                }
                // A subscription that failed may be stale; take a fresh one next time.
                self.sub = None;
                None
            }
            other => {
                self.ended = true;
                Some(Some(Err(to_status(&other))))
            }
        }
    }
}
