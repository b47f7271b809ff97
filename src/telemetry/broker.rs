//! Series of the broker module: what each sampler read, how much it cost, and how it
//! failed. Every series carries the broker's credential-free label; a broker's series are
//! removed when its sampler stops ([`BrokerMetrics::remove`]).
//!
//! [`BrokerFamilies`] holds the families (registered once per [`super::Metrics`]);
//! [`BrokerMetrics`] is one sampler's handle on them, with its label bound.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, Result as PromResult,
};

use super::budget::SeriesBudget;
use crate::signals::heartbeat::Implausible;

/// Broker data handled by a documented fallback instead of being trusted: the `kind` of
/// `celery_scaler_broker_suspect_data_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspect {
    /// An `unacked` ETA that does not parse (counted as reserved).
    BadEta,
    /// An `unacked_index` score that is not a delivery time.
    BadScore,
    /// A binding member over the length limit.
    BindingTooLong,
    /// Binding members of one exchange over the count limit.
    TooManyBindings,
    /// Exchanges named by `unacked` entries over the limit.
    TooManyExchanges,
    /// An `unacked` routing key over the length limit.
    RoutingKeyTooLong,
}

impl Suspect {
    pub const ALL: [Suspect; 6] = [
        Suspect::BadEta,
        Suspect::BadScore,
        Suspect::BindingTooLong,
        Suspect::TooManyBindings,
        Suspect::TooManyExchanges,
        Suspect::RoutingKeyTooLong,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Suspect::BadEta => "bad_eta",
            Suspect::BadScore => "bad_score",
            Suspect::BindingTooLong => "binding_too_long",
            Suspect::TooManyBindings => "too_many_bindings",
            Suspect::TooManyExchanges => "too_many_exchanges",
            Suspect::RoutingKeyTooLong => "routing_key_too_long",
        }
    }
}

/// Kinds of `celery_scaler_redis_errors_total` (`BrokerError::kind`).
const ERROR_KINDS: [&str; 7] = [
    "connect", "auth", "timeout", "command", "sentinel", "stale", "shutdown",
];

fn gauges(registry: &Registry, opts: Opts, labels: &[&str]) -> PromResult<GaugeVec> {
    let v = GaugeVec::new(opts, labels)?;
    registry.register(Box::new(v.clone()))?;
    Ok(v)
}

fn counters(registry: &Registry, opts: Opts, labels: &[&str]) -> PromResult<IntCounterVec> {
    let v = IntCounterVec::new(opts, labels)?;
    registry.register(Box::new(v.clone()))?;
    Ok(v)
}

/// Every broker family, plus the queues that have live series (by broker).
pub struct BrokerFamilies {
    pub(crate) queue_backlog: GaugeVec,
    pub(crate) queue_in_flight: GaugeVec,
    pub(crate) redis_errors: IntCounterVec,
    pub(crate) redis_commands: IntCounterVec,
    pub(crate) unacked_malformed: IntCounterVec,
    pub(crate) sample_duration: HistogramVec,
    pub(crate) sample_age: SampleAge,
    pub(crate) watch_sets: GaugeVec,
    pub(crate) pubsub_commands: IntCounterVec,
    pub(crate) queue_arrival_rate: GaugeVec,
    pub(crate) queue_dequeue_rate: GaugeVec,
    pub(crate) queue_service_time: GaugeVec,
    pub(crate) queue_wait: GaugeVec,
    pub(crate) queue_running: GaugeVec,
    pub(crate) signal_mode: GaugeVec,
    pub(crate) heartbeats_implausible: IntCounterVec,
    pub(crate) unreadable_keys: GaugeVec,
    pub(crate) suspect_data: IntCounterVec,
    pub(crate) task_restarts: IntCounterVec,
    /// Queues with live series, by broker (to remove them when no longer watched).
    pub(crate) live_queues: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl BrokerFamilies {
    /// The families, registered in `r`. Names are written out in full: the deploy checks
    /// find registered names in the source.
    pub(crate) fn new(r: &Registry) -> PromResult<Self> {
        let sample_age = SampleAge::new()?;
        r.register(Box::new(sample_age.clone()))?;
        let sample_duration = HistogramVec::new(
            HistogramOpts::new(
                "celery_scaler_sample_duration_seconds",
                "Time one sample of a broker took (all round trips).",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["broker"],
        )?;
        r.register(Box::new(sample_duration.clone()))?;
        let bq = ["broker", "queue"];
        Ok(Self {
            queue_backlog: gauges(r, Opts::new("celery_scaler_queue_backlog", "Ready messages of a queue: sum of LLEN over its key and priority sub-keys."), &bq)?,
            queue_in_flight: gauges(r, Opts::new("celery_scaler_queue_in_flight", "unacked entries attributed to a queue, by state (reserved, scheduled, stale)."), &["broker", "queue", "state"])?,
            redis_errors: counters(r, Opts::new("celery_scaler_redis_errors_total", "Failed samples by error kind (connect, auth, timeout, command, sentinel)."), &["broker", "kind"])?,
            redis_commands: counters(r, Opts::new("celery_scaler_redis_commands_total", "Redis commands sent, pipelined ones included."), &["broker"])?,
            unacked_malformed: counters(r, Opts::new("celery_scaler_unacked_malformed_total", "unacked values that could not be parsed and were skipped."), &["broker"])?,
            sample_duration,
            sample_age,
            watch_sets: gauges(r, Opts::new("celery_scaler_watch_sets", "Watch sets (trigger queue sets) registered on a broker."), &["broker"])?,
            pubsub_commands: counters(r, Opts::new("celery_scaler_pubsub_commands_total", "Commands sent on a broker's pub/sub connection (SUBSCRIBE, PSUBSCRIBE, keep-alive PING)."), &["broker"])?,
            queue_arrival_rate: gauges(r, Opts::new("celery_scaler_queue_arrival_rate", "Tasks arriving per second on a queue (smoothed over the signal window)."), &bq)?,
            queue_dequeue_rate: gauges(r, Opts::new("celery_scaler_queue_dequeue_rate", "Tasks taken from a queue per second (smoothed over the signal window)."), &bq)?,
            queue_service_time: gauges(r, Opts::new("celery_scaler_queue_service_time_seconds", "Mean task service time of a queue as the sampler estimates it (source: celery_scaler_signal_mode)."), &bq)?,
            queue_wait: gauges(r, Opts::new("celery_scaler_queue_wait_seconds", "Age of the oldest task waiting in a queue."), &bq)?,
            queue_running: gauges(r, Opts::new("celery_scaler_queue_running", "Tasks executing now for a queue, from worker heartbeats (triggers with workerHostnames)."), &bq)?,
            signal_mode: gauges(r, Opts::new("celery_scaler_signal_mode", "1 for the mode each live signal of a queue is in (exact, estimated, lower-bound, none, or its source)."), &["broker", "queue", "signal", "mode"])?,
            heartbeats_implausible: counters(r, Opts::new("celery_scaler_heartbeats_implausible_total", "Worker heartbeats outside plausible bounds, by reason (active, freq, processed: clamped or ignored; too_many_workers: refused)."), &["broker", "reason"])?,
            unreadable_keys: gauges(r, Opts::new("celery_scaler_broker_unreadable_keys", "Keys of the wrong Redis type that the latest sample skipped, by kind (queue, unacked, unacked_index, binding)."), &["broker", "key_kind"])?,
            suspect_data: counters(r, Opts::new("celery_scaler_broker_suspect_data_total", "Broker data handled by a documented fallback: unparseable ETAs (counted as reserved), out-of-range unacked_index scores, bindings and exchanges over the limits."), &["broker", "kind"])?,
            task_restarts: counters(r, Opts::new("celery_scaler_task_restarts_total", "Background tasks that panicked and were restarted, by task (sampler)."), &["task"])?,
            live_queues: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn live_queues(&self) -> MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.live_queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One broker's handle on the broker families: its label, the families and the series
/// budget. Cheap to clone.
#[derive(Clone)]
pub struct BrokerMetrics {
    label: Arc<str>,
    pub(crate) families: Arc<BrokerFamilies>,
    pub(crate) budget: Arc<SeriesBudget>,
}

impl BrokerMetrics {
    pub(crate) fn new(
        label: &str,
        families: Arc<BrokerFamilies>,
        budget: Arc<SeriesBudget>,
    ) -> Self {
        Self {
            label: label.into(),
            families,
            budget,
        }
    }

    /// The broker's label (`host:port/db`, plus a keyed hash when it has credentials).
    pub fn label(&self) -> &str {
        &self.label
    }

    fn one(&self) -> [&str; 1] {
        [self.label()]
    }

    /// `n` Redis commands sent on the sampler's connection.
    pub fn commands(&self, n: u64) {
        self.families
            .redis_commands
            .with_label_values(&self.one())
            .inc_by(n);
    }

    /// `n` commands sent on the pub/sub connection.
    pub fn pubsub_commands(&self, n: u64) {
        self.families
            .pubsub_commands
            .with_label_values(&self.one())
            .inc_by(n);
    }

    /// One `unacked` value that could not be parsed.
    pub fn malformed(&self) {
        self.families
            .unacked_malformed
            .with_label_values(&self.one())
            .inc();
    }

    /// `n` pieces of broker data of `kind` handled by a fallback.
    pub fn suspect(&self, kind: Suspect, n: u64) {
        if n > 0 {
            self.families
                .suspect_data
                .with_label_values(&[self.label(), kind.as_str()])
                .inc_by(n);
        }
    }

    /// One implausible worker heartbeat.
    pub fn implausible(&self, reason: Implausible) {
        self.families
            .heartbeats_implausible
            .with_label_values(&[self.label(), reason.label()])
            .inc();
    }

    /// One failed sample of error `kind`.
    pub fn error(&self, kind: &'static str) {
        self.families
            .redis_errors
            .with_label_values(&[self.label(), kind])
            .inc();
    }

    /// One sample took `seconds`.
    pub fn sample_took(&self, seconds: f64) {
        self.families
            .sample_duration
            .with_label_values(&self.one())
            .observe(seconds);
    }

    /// A good sample was taken at `at`.
    pub fn sampled(&self, at: Instant) {
        self.families.sample_age.sampled(&self.label, at);
    }

    /// The broker has `n` watch sets.
    pub fn watch_sets(&self, n: usize) {
        self.families
            .watch_sets
            .with_label_values(&self.one())
            .set(n as f64);
    }

    /// A background task (`sampler`, `events`) of this broker was restarted.
    pub fn restarted(&self, task: &'static str) {
        self.families.task_restarts.with_label_values(&[task]).inc();
    }

    /// Sets the unreadable-key gauges: one count per key kind, zeros included.
    pub fn set_unreadable(&self, counts: &[(&'static str, usize)]) {
        for (kind, n) in counts {
            self.families
                .unreadable_keys
                .with_label_values(&[self.label(), kind])
                .set(*n as f64);
        }
    }

    /// Removes every per-broker series of this broker but the per-queue ones (see
    /// `queues.rs`); `key_kinds` are the kinds of the unreadable-key gauges.
    pub(crate) fn remove_fixed(&self, key_kinds: &[&str]) {
        let f = &self.families;
        let one = self.one();
        let _ = f.redis_commands.remove_label_values(&one);
        let _ = f.pubsub_commands.remove_label_values(&one);
        let _ = f.unacked_malformed.remove_label_values(&one);
        let _ = f.sample_duration.remove_label_values(&one);
        f.sample_age.remove(&self.label);
        let _ = f.watch_sets.remove_label_values(&one);
        for reason in Implausible::ALL {
            let _ = f
                .heartbeats_implausible
                .remove_label_values(&[self.label(), reason.label()]);
        }
        for kind in ERROR_KINDS {
            let _ = f.redis_errors.remove_label_values(&[self.label(), kind]);
        }
        for kind in key_kinds {
            let _ = f.unreadable_keys.remove_label_values(&[self.label(), kind]);
        }
        for kind in Suspect::ALL {
            let _ = f
                .suspect_data
                .remove_label_values(&[self.label(), kind.as_str()]);
        }
    }
}

/// `celery_scaler_sample_age_seconds`, computed when scraped: a sampler that stopped
/// ticking (stuck, or its runtime starved) still shows its sample getting older.
#[derive(Clone)]
pub(crate) struct SampleAge {
    desc: Desc,
    last_good: Arc<Mutex<HashMap<String, Instant>>>,
}

impl SampleAge {
    fn new() -> PromResult<Self> {
        let desc = Desc::new(
            "celery_scaler_sample_age_seconds".into(),
            "Age of the latest good sample of a broker, at scrape time.".into(),
            vec!["broker".into()],
            HashMap::new(),
        )?;
        Ok(Self {
            desc,
            last_good: Arc::default(),
        })
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.last_good.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sampled(&self, broker: &str, at: Instant) {
        self.map().insert(broker.to_string(), at);
    }

    fn remove(&self, broker: &str) {
        self.map().remove(broker);
    }
}

impl Collector for SampleAge {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::GAUGE);
        let mut brokers: Vec<(String, Instant)> =
            self.map().iter().map(|(b, t)| (b.clone(), *t)).collect();
        brokers.sort();
        for (broker, at) in brokers {
            let mut label = LabelPair::default();
            label.set_name("broker".into());
            label.set_value(broker);
            let mut gauge = Gauge::default();
            gauge.set_value(at.elapsed().as_secs_f64());
            let mut metric = Metric::default();
            metric.set_label(vec![label]);
            metric.set_gauge(gauge);
            family.mut_metric().push(metric);
        }
        vec![family]
    }
}
