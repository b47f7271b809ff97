//! The pub/sub side of one broker's sampler: one connection, separate from the sampler's,
//! that only SUBSCRIBEs (keyspace channels of the watched list keys, when the server has
//! keyspace notifications for lists) and PSUBSCRIBEs (Celery's `worker.*` events).
//!
//! The task is a child of the sampler: the sampler tells it what to listen to ([`Desired`],
//! through a `watch` channel) and reads what it heard ([`EventState`], behind a short lock
//! never held across an `.await`). It reconnects with capped exponential backoff; every
//! connect, (un)subscribe and keep-alive `PING` is bounded by the broker's timeouts. While it
//! is down, [`EventState::generation`] tells the sampler that counts are not continuous, and
//! the affected queues fall back to estimated mode. Pub/sub is lossy: the sampler reconciles
//! what is heard here against each tick's `LLEN`s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::clock::epoch_now;
use super::conn::{build_client, redis_settings, Timeouts};
use super::error::{map_error, BrokerError};
use crate::celery::parse_worker_event;
use crate::signals::heartbeat::{HeartbeatLimits, Implausible};
pub(crate) use crate::signals::live::events::{EventState, KeyEvents};
use crate::spec::{BrokerSpec, HostPort};
use crate::telemetry::BrokerMetrics;

/// First reconnect delay; doubled per failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Backoff after the server refused us (ACL without pub/sub channels, bad password).
const DENIED_BACKOFF: Duration = Duration::from_secs(60);
/// A `PING` this often on an idle subscription detects a silently dead connection.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// At most one warning per kind of implausible heartbeat per broker this often.
const IMPLAUSIBLE_WARN_PERIOD: Duration = Duration::from_secs(60);

/// What the sampler wants to hear.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Desired {
    /// Where the sampler's own connection is (the master, with Sentinel); `None`: not yet.
    pub addr: Option<HostPort>,
    /// List keys whose keyspace channel to SUBSCRIBE (empty without keyspace notifications).
    pub keys: BTreeSet<Vec<u8>>,
    /// Worker-event patterns to PSUBSCRIBE, each with the key prefix it belongs to.
    pub patterns: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The keyspace channel of `key` in database `db`.
pub(crate) fn keyspace_channel(db: i64, key: &[u8]) -> Vec<u8> {
    let mut c = format!("__keyspace@{db}__:").into_bytes();
    c.extend_from_slice(key);
    c
}

/// The pattern of Celery's worker events for a key prefix: `<prefix>/<db>.celeryev/worker.*`,
/// with glob characters of the prefix escaped.
pub(crate) fn worker_pattern(prefix: &[u8], db: i64) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + 24);
    for &b in prefix {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            p.push(b'\\');
        }
        p.push(b);
    }
    p.extend_from_slice(format!("/{db}.celeryev/worker.*").as_bytes());
    p
}

/// The handle the sampler holds on its pub/sub task.
pub(crate) struct Events {
    pub state: Arc<Mutex<EventState>>,
    desired: watch::Sender<Desired>,
    task: JoinHandle<()>,
}

impl Events {
    /// Starts the task; it ends when `cancel` fires.
    pub(crate) fn spawn(
        spec: BrokerSpec,
        (metrics, wake): (BrokerMetrics, Arc<Notify>),
        timeouts: Timeouts,
        window: f64,
        limits: HeartbeatLimits,
        cancel: CancellationToken,
    ) -> Self {
        let state = Arc::new(Mutex::new(EventState::default()));
        let (desired, rx) = watch::channel(Desired::default());
        let listener = Listener {
            label: metrics.label().to_string(),
            metrics,
            spec,
            wake,
            timeouts,
            window,
            limits,
            state: state.clone(),
            warned: Mutex::new(HashMap::new()),
        };
        let task = tokio::spawn(listener.run(rx, cancel));
        Self {
            state,
            desired,
            task,
        }
    }

    /// Tells the task what to listen to (no-op when unchanged).
    pub(crate) fn want(&self, desired: Desired) {
        self.desired.send_if_modified(|current| {
            if *current == desired {
                false
            } else {
                *current = desired;
                true
            }
        });
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, EventState> {
        lock(&self.state)
    }

    /// Waits for the task to end (after its cancellation token fired).
    pub(crate) async fn join(self) {
        let _ = self.task.await;
    }

    /// Whether the task has ended (it only ends by itself when it panicked).
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// How the task ended (a panic carries its message).
    pub(crate) async fn outcome(self) -> Result<(), tokio::task::JoinError> {
        self.task.await
    }
}

fn lock(m: &Mutex<EventState>) -> MutexGuard<'_, EventState> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

struct Listener {
    label: String,
    metrics: BrokerMetrics,
    spec: BrokerSpec,
    /// Wakes the sampler (an `lpush` on an idle queue).
    wake: Arc<Notify>,
    timeouts: Timeouts,
    window: f64,
    limits: HeartbeatLimits,
    state: Arc<Mutex<EventState>>,
    /// When each kind of implausible heartbeat was last warned about.
    warned: Mutex<HashMap<&'static str, Instant>>,
}

/// What is subscribed on the current connection.
#[derive(Default)]
struct Subscribed {
    keys: BTreeSet<Vec<u8>>,
    patterns: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Listener {
    async fn run(self, mut desired: watch::Receiver<Desired>, cancel: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        loop {
            // Wait until there is something to listen to.
            let want = desired.borrow_and_update().clone();
            let Some(addr) = want.addr.clone().filter(|_| !want.is_empty()) else {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    r = desired.changed() => if r.is_err() { break },
                }
                continue;
            };
            super::test_hook::maybe_panic_events();
            let outcome = tokio::select! {
                () = cancel.cancelled() => break,
                r = self.session(&addr, &mut desired) => r,
            };
            self.down();
            match outcome {
                Ok(()) => backoff = MIN_BACKOFF,
                Err(e) => {
                    let delay = if matches!(e, BrokerError::Auth { .. }) {
                        DENIED_BACKOFF
                    } else {
                        backoff
                    };
                    warn!(broker = %self.label, kind = e.kind(), error = %e, retry_ms = delay.as_millis() as u64, "pub/sub unavailable; estimated mode until it is back");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.down();
        debug!(broker = %self.label, "pub/sub task stopped");
    }

    fn down(&self) {
        let mut s = lock(&self.state);
        s.up = false;
        s.keys.clear();
    }

    fn timeout(&self) -> BrokerError {
        BrokerError::Timeout {
            broker: self.label.clone(),
            timeout_ms: u64::try_from(self.timeouts.command.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn count(&self, n: usize) {
        self.metrics.pubsub_commands(n as u64);
    }

    /// One connection's life: connect, follow `desired`, dispatch messages. `Ok` when the
    /// master moved (reconnect at once), `Err` on failure (reconnect after a backoff).
    async fn session(
        &self,
        addr: &HostPort,
        desired: &mut watch::Receiver<Desired>,
    ) -> Result<(), BrokerError> {
        let password = self.spec.password.as_ref();
        let redis = redis_settings(self.spec.db, self.spec.username.as_deref(), password);
        let client = build_client(&self.label, addr, redis, self.spec.tls.as_ref()).await?;
        let pubsub = tokio::time::timeout(self.timeouts.connect, client.get_async_pubsub())
            .await
            .map_err(|_| self.timeout())?
            .map_err(|e| map_error(&self.label, &e, password, self.timeouts.connect))?;
        let (mut sink, mut stream) = pubsub.split();
        {
            let mut s = lock(&self.state);
            s.generation += 1;
            s.up = true;
        }
        info!(broker = %self.label, addr = %addr, "pub/sub connected");
        let mut subscribed = Subscribed::default();
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            let want = desired.borrow_and_update().clone();
            if want.addr.as_ref() != Some(addr) || want.is_empty() {
                return Ok(());
            }
            self.apply(&mut sink, &mut subscribed, want).await?;
            loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(msg) => self.dispatch(&msg, &subscribed),
                        None => return Err(BrokerError::Connect {
                            broker: self.label.clone(),
                            detail: "pub/sub connection closed".into(),
                        }),
                    },
                    r = desired.changed() => {
                        if r.is_err() { return Ok(()) }
                        break;
                    }
                    _ = keepalive.tick() => {
                        self.count(1);
                        let pong = tokio::time::timeout(self.timeouts.command, sink.ping::<redis::Value>()).await;
                        match pong {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => return Err(map_error(&self.label, &e, password, self.timeouts.command)),
                            Err(_) => return Err(self.timeout()),
                        }
                    }
                }
            }
        }
    }

    /// Brings the subscriptions in line with `want`.
    async fn apply(
        &self,
        sink: &mut PubSubSink,
        subscribed: &mut Subscribed,
        want: Desired,
    ) -> Result<(), BrokerError> {
        let db = self.spec.db;
        let password = self.spec.password.as_ref();
        let bounded = |e: Result<redis::RedisResult<()>, _>| match e {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(map_error(&self.label, &e, password, self.timeouts.command)),
            Err(_) => Err(self.timeout()),
        };
        let t = self.timeouts.command;
        let gone: Vec<Vec<u8>> = subscribed.keys.difference(&want.keys).cloned().collect();
        if !gone.is_empty() {
            let channels: Vec<Vec<u8>> = gone.iter().map(|k| keyspace_channel(db, k)).collect();
            self.count(1);
            bounded(tokio::time::timeout(t, sink.unsubscribe(channels)).await)?;
            let mut s = lock(&self.state);
            for k in &gone {
                s.keys.remove(k);
                subscribed.keys.remove(k);
            }
        }
        let new: Vec<Vec<u8>> = want.keys.difference(&subscribed.keys).cloned().collect();
        // Subscribe in batches so one command stays small.
        for batch in new.chunks(256) {
            let channels: Vec<Vec<u8>> = batch.iter().map(|k| keyspace_channel(db, k)).collect();
            self.count(1);
            bounded(tokio::time::timeout(t, sink.subscribe(channels)).await)?;
            let mut s = lock(&self.state);
            let generation = s.generation;
            for k in batch {
                s.keys.insert(
                    k.clone(),
                    KeyEvents {
                        generation,
                        // Idleness is unknown until the next tick: one early wake is cheap.
                        wake_on_push: true,
                        ..KeyEvents::default()
                    },
                );
                subscribed.keys.insert(k.clone());
            }
        }
        let old: Vec<Vec<u8>> = subscribed
            .patterns
            .keys()
            .filter(|p| !want.patterns.contains_key(*p))
            .cloned()
            .collect();
        if !old.is_empty() {
            self.count(1);
            bounded(tokio::time::timeout(t, sink.punsubscribe(old.clone())).await)?;
            for p in &old {
                subscribed.patterns.remove(p);
            }
        }
        let add: Vec<(Vec<u8>, Vec<u8>)> = want
            .patterns
            .iter()
            .filter(|(p, _)| !subscribed.patterns.contains_key(*p))
            .map(|(p, prefix)| (p.clone(), prefix.clone()))
            .collect();
        if !add.is_empty() {
            let patterns: Vec<Vec<u8>> = add.iter().map(|(p, _)| p.clone()).collect();
            self.count(1);
            bounded(tokio::time::timeout(t, sink.psubscribe(patterns)).await)?;
            subscribed.patterns.extend(add);
        }
        let keep: BTreeSet<&Vec<u8>> = subscribed.patterns.values().collect();
        lock(&self.state)
            .heartbeats
            .retain(|prefix, _| keep.contains(prefix));
        Ok(())
    }

    fn dispatch(&self, msg: &redis::Msg, subscribed: &Subscribed) {
        let Ok(channel) = msg.get_channel::<Vec<u8>>() else {
            return;
        };
        let now = epoch_now();
        if msg.from_pattern() {
            let Ok(pattern) = msg.get_pattern::<Vec<u8>>() else {
                return;
            };
            let Some(prefix) = subscribed.patterns.get(&pattern) else {
                return;
            };
            self.worker_event(prefix, msg.get_payload_bytes(), now);
            return;
        }
        let head = keyspace_channel(self.spec.db, b"");
        let Some(key) = channel.strip_prefix(head.as_slice()) else {
            return;
        };
        let event = msg.get_payload_bytes();
        if lock(&self.state).key_event(key, event, now) {
            self.wake.notify_one();
        }
    }

    fn worker_event(&self, prefix: &[u8], payload: &[u8], now: f64) {
        let event = match parse_worker_event(payload) {
            Ok(e) => e,
            Err(e) => {
                lock(&self.state).malformed += 1;
                debug!(broker = %self.label, reason = e.label(), "undecodable worker event skipped");
                return;
            }
        };
        let odd = lock(&self.state).worker_event(prefix, event, now, self.window, self.limits);
        for reason in odd {
            self.implausible(reason);
        }
    }

    /// Counts an implausible heartbeat and warns about its kind at most once a minute.
    fn implausible(&self, reason: Implausible) {
        self.metrics.implausible(reason);
        let mut warned = match self.warned.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let due = warned
            .get(reason.label())
            .is_none_or(|t| t.elapsed() >= IMPLAUSIBLE_WARN_PERIOD);
        if due {
            warned.insert(reason.label(), Instant::now());
            let limits = self.limits;
            warn!(
                broker = %self.label,
                reason = reason.label(),
                max_worker_concurrency = limits.max_active,
                max_tracked_workers = limits.max_workers,
                "implausible worker heartbeat clamped, ignored or making room by evicting a worker (counted in celery_scaler_heartbeats_implausible_total; warned at most once a minute)"
            );
        }
    }
}

impl Desired {
    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.patterns.is_empty()
    }
}

/// Handles returned to tests of the wire format.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_db_and_prefix_aware() {
        assert_eq!(
            keyspace_channel(3, b"app:celery"),
            b"__keyspace@3__:app:celery"
        );
        assert_eq!(worker_pattern(b"", 0), b"/0.celeryev/worker.*");
        assert_eq!(
            worker_pattern(b"my*app:", 2),
            b"my\\*app:/2.celeryev/worker.*"
        );
    }
}
