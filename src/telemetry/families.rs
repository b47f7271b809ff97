//! The broker's metric families, built and registered once per [`super::Metrics`]: per-queue
//! counts and live signals ([`QueueFamilies`]), what each sampler costs and how it fails
//! ([`SamplerFamilies`]), and broker data the sampler could not trust ([`DataFamilies`]).
//! Names are written out in full: the deploy checks find registered names in the source.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, Result as PromResult,
};

const BROKER: [&str; 1] = ["broker"];
const BROKER_QUEUE: [&str; 2] = ["broker", "queue"];

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
pub(crate) struct BrokerFamilies {
    pub queues: QueueFamilies,
    pub sampler: SamplerFamilies,
    pub data: DataFamilies,
    /// Queues with live series, by broker (to remove them when no longer watched).
    live_queues: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl BrokerFamilies {
    pub fn new(r: &Registry) -> PromResult<Self> {
        Ok(Self {
            queues: QueueFamilies::new(r)?,
            sampler: SamplerFamilies::new(r)?,
            data: DataFamilies::new(r)?,
            live_queues: Mutex::new(HashMap::new()),
        })
    }

    pub fn live_queues(&self) -> MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.live_queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Per-queue series: counts and live signals (reserved in the series budget).
pub(crate) struct QueueFamilies {
    pub backlog: GaugeVec,
    pub in_flight: GaugeVec,
    pub arrival_rate: GaugeVec,
    pub dequeue_rate: GaugeVec,
    pub service_time: GaugeVec,
    pub service_time_p95: GaugeVec,
    pub wait: GaugeVec,
    pub running: GaugeVec,
    pub signal_mode: GaugeVec,
}

impl QueueFamilies {
    fn new(r: &Registry) -> PromResult<Self> {
        Ok(Self {
            backlog: gauges(
                r,
                Opts::new(
                    "celery_scaler_queue_backlog",
                    "Ready messages of a queue: sum of LLEN over its key and priority sub-keys.",
                ),
                &BROKER_QUEUE,
            )?,
            in_flight: gauges(
                r,
                Opts::new(
                    "celery_scaler_queue_in_flight",
                    "unacked entries attributed to a queue, by state (reserved, scheduled, stale).",
                ),
                &["broker", "queue", "state"],
            )?,
            arrival_rate: gauges(
                r,
                Opts::new(
                    "celery_scaler_queue_arrival_rate",
                    "Tasks arriving per second on a queue (smoothed over the signal window).",
                ),
                &BROKER_QUEUE,
            )?,
            dequeue_rate: gauges(
                r,
                Opts::new(
                    "celery_scaler_queue_dequeue_rate",
                    "Tasks taken from a queue per second (smoothed over the signal window).",
                ),
                &BROKER_QUEUE,
            )?,
            service_time: gauges(
                r,
                Opts::new(
                    "celery_scaler_queue_service_time_seconds",
                    "Mean task service time of a queue as the sampler estimates it \
                     (source: celery_scaler_signal_mode).",
                ),
                &BROKER_QUEUE,
            )?,
            service_time_p95: gauges(
                r,
                Opts::new(
                    "celery_scaler_queue_service_time_p95_seconds",
                    "95th percentile residence in unacked of a queue's last 128 departures \
                     within 10 minutes: the task service time's under acks_late, the wait in \
                     a worker's prefetch buffer under early ack.",
                ),
                &BROKER_QUEUE,
            )?,
            wait: gauges(
                r,
                Opts::new(
                    "celery_scaler_queue_wait_seconds",
                    "Age of the oldest task waiting in a queue.",
                ),
                &BROKER_QUEUE,
            )?,
            running: gauges(
                r,
                Opts::new(
                    "celery_scaler_queue_running",
                    "Tasks executing now for a queue, from worker heartbeats \
                     (triggers with workerHostnames).",
                ),
                &BROKER_QUEUE,
            )?,
            signal_mode: gauges(
                r,
                Opts::new(
                    "celery_scaler_signal_mode",
                    "1 for the mode each live signal of a queue is in \
                     (exact, estimated, lower-bound, none, or its source).",
                ),
                &["broker", "queue", "signal", "mode"],
            )?,
        })
    }
}

/// What each sampler costs and how it fails (one series set per broker).
pub(crate) struct SamplerFamilies {
    pub redis_errors: IntCounterVec,
    pub redis_commands: IntCounterVec,
    pub pubsub_commands: IntCounterVec,
    pub sample_duration: HistogramVec,
    pub sample_age: SampleAge,
    pub watch_sets: GaugeVec,
    pub task_restarts: IntCounterVec,
}

impl SamplerFamilies {
    fn new(r: &Registry) -> PromResult<Self> {
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
            &BROKER,
        )?;
        r.register(Box::new(sample_duration.clone()))?;
        Ok(Self {
            redis_errors: counters(
                r,
                Opts::new(
                    "celery_scaler_redis_errors_total",
                    "Failed samples by error kind (connect, auth, timeout, command, sentinel).",
                ),
                &["broker", "kind"],
            )?,
            redis_commands: counters(
                r,
                Opts::new(
                    "celery_scaler_redis_commands_total",
                    "Redis commands sent, pipelined ones included.",
                ),
                &BROKER,
            )?,
            pubsub_commands: counters(
                r,
                Opts::new(
                    "celery_scaler_pubsub_commands_total",
                    "Commands sent on a broker's pub/sub connection \
                     (SUBSCRIBE, PSUBSCRIBE, keep-alive PING).",
                ),
                &BROKER,
            )?,
            sample_duration,
            sample_age,
            watch_sets: gauges(
                r,
                Opts::new(
                    "celery_scaler_watch_sets",
                    "Watch sets (trigger queue sets) registered on a broker.",
                ),
                &BROKER,
            )?,
            task_restarts: counters(
                r,
                Opts::new(
                    "celery_scaler_task_restarts_total",
                    "Background tasks that panicked and were restarted, by task (sampler).",
                ),
                &["task"],
            )?,
        })
    }
}

/// Broker data the sampler skipped, clamped or handled by a documented fallback.
pub(crate) struct DataFamilies {
    pub unacked_malformed: IntCounterVec,
    pub heartbeats_implausible: IntCounterVec,
    pub unreadable_keys: GaugeVec,
    pub suspect_data: IntCounterVec,
}

impl DataFamilies {
    fn new(r: &Registry) -> PromResult<Self> {
        Ok(Self {
            unacked_malformed: counters(
                r,
                Opts::new(
                    "celery_scaler_unacked_malformed_total",
                    "unacked values that could not be parsed and were skipped.",
                ),
                &BROKER,
            )?,
            heartbeats_implausible: counters(
                r,
                Opts::new(
                    "celery_scaler_heartbeats_implausible_total",
                    "Worker heartbeats outside plausible bounds, by reason (active, freq, \
                     processed: clamped or ignored; too_many_workers: refused).",
                ),
                &["broker", "reason"],
            )?,
            unreadable_keys: gauges(
                r,
                Opts::new(
                    "celery_scaler_broker_unreadable_keys",
                    "Keys of the wrong Redis type that the latest sample skipped, by kind \
                     (queue, unacked, unacked_index, binding).",
                ),
                &["broker", "key_kind"],
            )?,
            suspect_data: counters(
                r,
                Opts::new(
                    "celery_scaler_broker_suspect_data_total",
                    "Broker data handled by a documented fallback: unparseable ETAs (counted \
                     as reserved), out-of-range unacked_index scores, bindings and exchanges \
                     over the limits.",
                ),
                &["broker", "kind"],
            )?,
        })
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

    pub fn sampled(&self, broker: &str, at: Instant) {
        self.map().insert(broker.to_string(), at);
    }

    pub fn remove(&self, broker: &str) {
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
