//! Broker access: the only module that talks to Redis.
//!
//! One sampler per distinct [`BrokerSpec`], with no connection pool: the sampler owns one
//! multiplexed Redis connection (plus one to a sentinel when the broker is found through
//! Sentinel), and the event task one pub/sub connection. Triggers register [`WatchSet`]s and
//! read [`WatchView`]s from the latest sample.
//!
//! Design (ARCHITECTURE.md): one sampler task per broker reads the union of that
//! broker's watch sets each tick (`sampler`), tracks kombu's `unacked` hash incrementally
//! (`tracker`, `index`), and publishes a snapshot; requests answer from the latest snapshot
//! and never touch Redis themselves. Only the first request for a new watch set waits (for a
//! tick that includes it). Connections, TLS, Sentinel and error mapping live in `conn`.
//!
//! Architecture Invariant: nothing outside this module opens a Redis connection, and nothing
//! here writes to Redis (the scaler is read-only on the broker).

mod allow;
mod clock;
mod conn;
mod error;
mod events;
mod index;
mod limits;
mod live;
mod reply;
mod route;
mod sampler;
mod settings;
mod shared;
mod supervise;
mod test_hook;
mod tracker;
mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use limits::{normalised, watched_lists};
use shared::{Shared, Snapshot, WatchEntry};

use crate::telemetry::Metrics;

pub use crate::spec::{
    BrokerSpec, Endpoint, HostPort, NamedConnections, Secret, TlsSpec, WatchSet,
};
pub use allow::{
    AccessDenied, AccessPolicy, BrokerMode, BrokerRule, ConnectionAccess, Requester,
    ACCESS_DENIED_TEXT,
};
pub use error::BrokerError;
pub use limits::{
    BrokerLimits, DEFAULT_MAX_BROKERS, DEFAULT_MAX_BROKERS_PER_ENDPOINT,
    DEFAULT_MAX_WATCHED_LISTS_PER_BROKER,
};
pub use reply::{KeyKind, UnreadableKey};
pub use settings::SamplerSettings;
#[doc(hidden)]
pub use test_hook::{set_test_events_panics, set_test_sampler_panics, set_test_tick_burn};
pub use view::{Heartbeats, LiveCounts, WatchView};

/// The samplers by broker, plus the handles of samplers that retired themselves.
#[derive(Default)]
struct Samplers {
    running: HashMap<BrokerSpec, SamplerHandle>,
    retired: Vec<JoinHandle<()>>,
    shut_down: bool,
}

struct SamplerHandle {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Worker threads of the samplers' own runtime.
const SAMPLER_THREADS: usize = 2;

/// The runtime the samplers (and their pub/sub tasks) run on, apart from the one serving
/// gRPC, `/healthz` and signals: a sampler busy with CPU-heavy work can slow other samplers,
/// never the server. Shut down in the background when dropped (dropping a runtime inside an
/// async context would panic; the samplers are stopped first by [`Registry::shutdown`]).
struct SamplerRuntime(Option<tokio::runtime::Runtime>);

impl SamplerRuntime {
    fn new() -> Self {
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SAMPLER_THREADS)
            .thread_name("celery-scaler-sampler")
            .enable_all()
            .build();
        match built {
            Ok(rt) => Self(Some(rt)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the samplers' runtime; sharing the server's");
                Self(None)
            }
        }
    }

    fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match &self.0 {
            Some(rt) => rt.spawn(task),
            None => tokio::spawn(task),
        }
    }
}

impl Drop for SamplerRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// All brokers' samplers. Cheap to share behind an `Arc`.
pub struct Registry {
    settings: SamplerSettings,
    limits: BrokerLimits,
    samplers: Arc<Mutex<Samplers>>,
    cancel: CancellationToken,
    runtime: SamplerRuntime,
    metrics: Arc<Metrics>,
}

impl Registry {
    /// Creates an empty registry with its own sampler runtime (samplers start on the first
    /// `view` of a broker) and its own [`Metrics`]. Installs rustls' ring crypto provider
    /// (idempotent).
    pub fn new(settings: SamplerSettings) -> Self {
        Self::with_limits(settings, BrokerLimits::default())
    }

    /// [`Registry::new`] with explicit bounds on the number of brokers sampled.
    pub fn with_limits(settings: SamplerSettings, limits: BrokerLimits) -> Self {
        Self::with_metrics(settings, limits, Metrics::new())
    }

    /// [`Registry::with_limits`] exporting its series to `metrics`.
    pub fn with_metrics(
        settings: SamplerSettings,
        limits: BrokerLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Already installed (by us or by the gRPC TLS setup) is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        test_hook::test_tick_burn_from_env();
        Self {
            settings,
            limits,
            samplers: Arc::new(Mutex::new(Samplers::default())),
            cancel: CancellationToken::new(),
            runtime: SamplerRuntime::new(),
            metrics,
        }
    }

    pub fn settings(&self) -> &SamplerSettings {
        &self.settings
    }

    /// The metrics the samplers export to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Registers `watch` on `spec`'s broker (starting its sampler if needed, within the
    /// [`BrokerLimits`]) and marks it used. Returns the broker's shared state and the watch
    /// set's registration id.
    fn register(
        &self,
        spec: &BrokerSpec,
        watch: &WatchSet,
        hold: bool,
    ) -> Result<(Arc<Shared>, u64), BrokerError> {
        let spec = &normalised(spec);
        let mut samplers = lock(&self.samplers);
        if samplers.shut_down {
            return Err(BrokerError::ShuttingDown);
        }
        samplers.retired.retain(|t| !t.is_finished());
        // A set too large for an empty broker never starts a sampler.
        let (_, alone) = watched_lists(std::iter::empty(), watch);
        self.limits.admit_watch(&spec.label(), 0, alone)?;
        let shared = match samplers.running.get(spec) {
            Some(h) => h.shared.clone(),
            None => {
                self.limits.admit(spec, samplers.running.keys())?;
                let label = spec.label();
                let shared = Arc::new(Shared::new(self.metrics.broker(&label)));
                let registry = Arc::downgrade(&self.samplers);
                let task = self.runtime.spawn(sampler::supervised(
                    spec.clone(),
                    shared.clone(),
                    self.settings.clone(),
                    self.cancel.child_token(),
                    Arc::new(move |me: &Arc<Shared>| retire(&registry, me)),
                ));
                samplers.running.insert(
                    spec.clone(),
                    SamplerHandle {
                        shared: shared.clone(),
                        task,
                    },
                );
                shared
            }
        };
        let id = {
            let mut table = lock(&shared.watches);
            let table = &mut *table;
            let now = Instant::now();
            if !table.entries.contains_key(watch) {
                let (watched, adding) = watched_lists(table.entries.keys(), watch);
                self.limits.admit_watch(&shared.label, watched, adding)?;
            }
            let next_id = &mut table.next_id;
            let entry = table.entries.entry(watch.clone()).or_insert_with(|| {
                *next_id += 1;
                WatchEntry {
                    id: *next_id,
                    last_used: now,
                    holders: 0,
                }
            });
            entry.last_used = now;
            if hold {
                entry.holders += 1;
            }
            entry.id
        };
        Ok((shared, id))
    }

    /// Waits (bounded by `first_sample_timeout`) for a snapshot that includes watch set `id`.
    async fn covering(&self, shared: &Shared, id: u64) -> Result<Arc<Snapshot>, BrokerError> {
        let mut rx = shared.snapshots.subscribe();
        let latest = rx.borrow_and_update().clone();
        if let Some(s) = latest.filter(|s| s.covers_upto >= id) {
            return Ok(s);
        }
        shared.wake.notify_one();
        let wait = async {
            loop {
                if rx.changed().await.is_err() {
                    return Err(BrokerError::ShuttingDown);
                }
                let latest = rx.borrow_and_update().clone();
                if let Some(s) = latest.filter(|s| s.covers_upto >= id) {
                    return Ok(s);
                }
            }
        };
        match tokio::time::timeout(self.settings.first_sample_timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(BrokerError::Timeout {
                broker: shared.label.clone(),
                timeout_ms: u64::try_from(self.settings.first_sample_timeout.as_millis())
                    .unwrap_or(u64::MAX),
            }),
        }
    }

    /// The latest view of `watch` on `spec`'s broker. Registers the watch set on first use
    /// and waits (bounded) for its first sample; later calls answer from the latest snapshot.
    pub async fn view(
        &self,
        spec: &BrokerSpec,
        watch: &WatchSet,
    ) -> Result<Arc<WatchView>, BrokerError> {
        let (shared, id) = self.register(spec, watch, false)?;
        let snapshot = self.covering(&shared, id).await?;
        snapshot.view(&shared.label, watch, self.settings.max_sample_age)
    }

    /// Follows `watch`: every call to [`Subscription::next`] waits for the next sample.
    pub async fn subscribe(
        self: &Arc<Self>,
        spec: &BrokerSpec,
        watch: &WatchSet,
    ) -> Result<Subscription, BrokerError> {
        let (shared, id) = self.register(spec, watch, true)?;
        let mut sub = Subscription {
            registry: self.clone(),
            rx: shared.snapshots.subscribe(),
            shared,
            watch: watch.clone(),
        };
        let snapshot = self.covering(&sub.shared, id).await?;
        snapshot.view(&sub.shared.label, watch, self.settings.max_sample_age)?;
        // `next` waits for the sample after this one.
        sub.rx.borrow_and_update();
        Ok(sub)
    }

    /// Stops every sampler and waits for them to end.
    pub async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut samplers = lock(&self.samplers);
            samplers.shut_down = true;
            let running = std::mem::take(&mut samplers.running);
            let mut tasks: Vec<_> = running.into_values().map(|h| h.task).collect();
            tasks.append(&mut samplers.retired);
            tasks
        };
        self.cancel.cancel();
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Registry {
    /// Cancels every sampler (their runtime is then shut down in the background).
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Called by a sampler that found no watch set: removes it from the registry unless a watch
/// set was registered meanwhile (checked under both locks, in the registry → table order).
fn retire(registry: &std::sync::Weak<Mutex<Samplers>>, me: &Arc<Shared>) -> bool {
    let Some(samplers) = registry.upgrade() else {
        return true;
    };
    let mut samplers = lock(&samplers);
    let table = lock(&me.watches);
    if !table.entries.is_empty() {
        return false;
    }
    let spec = samplers
        .running
        .iter()
        .find(|(_, h)| Arc::ptr_eq(&h.shared, me))
        .map(|(s, _)| s.clone());
    if let Some(handle) = spec.and_then(|s| samplers.running.remove(&s)) {
        samplers.retired.push(handle.task);
    }
    true
}

/// A stream handler's hold on one watch set; keeps it registered while alive.
pub struct Subscription {
    registry: Arc<Registry>,
    shared: Arc<Shared>,
    rx: watch::Receiver<Option<Arc<Snapshot>>>,
    watch: WatchSet,
}

impl Subscription {
    /// Waits for the next sample and returns the watch set's view in it (or the tick's
    /// error). Waits at most `max_sample_age`, then reports the data as stale.
    pub async fn next(&mut self) -> Result<Arc<WatchView>, BrokerError> {
        let settings = &self.registry.settings;
        if let Some(e) = lock(&self.shared.watches).entries.get_mut(&self.watch) {
            e.last_used = Instant::now();
        }
        match tokio::time::timeout(settings.max_sample_age, self.rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(BrokerError::ShuttingDown),
            Err(_) => {}
        }
        let latest = self.rx.borrow_and_update().clone();
        match latest {
            Some(s) => s.view(&self.shared.label, &self.watch, settings.max_sample_age),
            None => Err(BrokerError::Stale {
                broker: self.shared.label.clone(),
                age_ms: u64::try_from(settings.max_sample_age.as_millis()).unwrap_or(u64::MAX),
                bound_ms: u64::try_from(settings.max_sample_age.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(e) = lock(&self.shared.watches).entries.get_mut(&self.watch) {
            e.holders = e.holders.saturating_sub(1);
            e.last_used = Instant::now();
        }
    }
}
