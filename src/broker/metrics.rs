//! Prometheus series owned by the broker module: what each sampler read, how much it cost,
//! and how it failed. Every series carries the broker's credential-free label; a broker's
//! series are removed when its sampler stops.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use prometheus::{
    register_gauge_vec, register_histogram_vec, register_int_counter_vec, GaugeVec, HistogramVec,
    IntCounterVec,
};

use crate::celery::InFlightState;
use crate::signals::live::{single_queue_workers, LiveData, QueueEstimates};
use crate::signals::Estimate;
use crate::spec::WatchSet;
use crate::telemetry::series_budget;

pub(crate) static QUEUE_BACKLOG: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_queue_backlog",
        "Ready messages of a queue: sum of LLEN over its key and priority sub-keys.",
        &["broker", "queue"]
    )
    .expect("metric registers once")
});

pub(crate) static QUEUE_IN_FLIGHT: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_queue_in_flight",
        "unacked entries attributed to a queue, by state (reserved, scheduled, stale).",
        &["broker", "queue", "state"]
    )
    .expect("metric registers once")
});

pub(crate) static REDIS_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "celery_scaler_redis_errors_total",
        "Failed samples by error kind (connect, auth, timeout, command, sentinel).",
        &["broker", "kind"]
    )
    .expect("metric registers once")
});

pub(crate) static REDIS_COMMANDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "celery_scaler_redis_commands_total",
        "Redis commands sent, pipelined ones included.",
        &["broker"]
    )
    .expect("metric registers once")
});

pub(crate) static UNACKED_MALFORMED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "celery_scaler_unacked_malformed_total",
        "unacked values that could not be parsed and were skipped.",
        &["broker"]
    )
    .expect("metric registers once")
});

pub(crate) static SAMPLE_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "celery_scaler_sample_duration_seconds",
        "Time one sample of a broker took (all round trips).",
        &["broker"],
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
    )
    .expect("metric registers once")
});

/// `celery_scaler_sample_age_seconds`, computed when scraped: a sampler that stopped
/// ticking (stuck, or its runtime starved) still shows its sample getting older.
pub(crate) static SAMPLE_AGE: LazyLock<SampleAge> = LazyLock::new(|| {
    let age = SampleAge::new();
    prometheus::register(Box::new(age.clone())).expect("metric registers once");
    age
});

/// When each broker's latest good sample was taken; ages are computed at collection.
#[derive(Clone)]
pub(crate) struct SampleAge {
    desc: prometheus::core::Desc,
    last_good: std::sync::Arc<Mutex<HashMap<String, Instant>>>,
}

impl SampleAge {
    fn new() -> Self {
        let desc = prometheus::core::Desc::new(
            "celery_scaler_sample_age_seconds".into(),
            "Age of the latest good sample of a broker, at scrape time.".into(),
            vec!["broker".into()],
            HashMap::new(),
        )
        .expect("valid metric description");
        Self {
            desc,
            last_good: std::sync::Arc::default(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.last_good.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A good sample of `broker` was taken at `at`.
    pub(crate) fn sampled(&self, broker: &str, at: Instant) {
        self.map().insert(broker.to_string(), at);
    }

    pub(crate) fn remove(&self, broker: &str) {
        self.map().remove(broker);
    }
}

impl prometheus::core::Collector for SampleAge {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut family = prometheus::proto::MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(prometheus::proto::MetricType::GAUGE);
        let mut brokers: Vec<(String, Instant)> =
            self.map().iter().map(|(b, t)| (b.clone(), *t)).collect();
        brokers.sort();
        for (broker, at) in brokers {
            let mut label = prometheus::proto::LabelPair::default();
            label.set_name("broker".into());
            label.set_value(broker);
            let mut gauge = prometheus::proto::Gauge::default();
            gauge.set_value(at.elapsed().as_secs_f64());
            let mut metric = prometheus::proto::Metric::default();
            metric.set_label(vec![label]);
            metric.set_gauge(gauge);
            family.mut_metric().push(metric);
        }
        vec![family]
    }
}

pub(crate) static WATCH_SETS: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_watch_sets",
        "Watch sets (trigger queue sets) registered on a broker.",
        &["broker"]
    )
    .expect("metric registers once")
});

pub(crate) static PUBSUB_COMMANDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "celery_scaler_pubsub_commands_total",
        "Commands sent on a broker's pub/sub connection (SUBSCRIBE, PSUBSCRIBE, keep-alive PING).",
        &["broker"]
    )
    .expect("metric registers once")
});

pub(crate) static QUEUE_ARRIVAL_RATE: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_queue_arrival_rate",
        "Tasks arriving per second on a queue (smoothed over the signal window).",
        &["broker", "queue"]
    )
    .expect("metric registers once")
});

pub(crate) static QUEUE_DEQUEUE_RATE: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_queue_dequeue_rate",
        "Tasks taken from a queue per second (smoothed over the signal window).",
        &["broker", "queue"]
    )
    .expect("metric registers once")
});

pub(crate) static QUEUE_SERVICE_TIME: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_queue_service_time_seconds",
        "Mean task service time of a queue as the sampler estimates it (source: celery_scaler_signal_mode).",
        &["broker", "queue"]
    )
    .expect("metric registers once")
});

pub(crate) static QUEUE_WAIT: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_queue_wait_seconds",
        "Age of the oldest task waiting in a queue.",
        &["broker", "queue"]
    )
    .expect("metric registers once")
});

pub(crate) static QUEUE_RUNNING: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_queue_running",
        "Tasks executing now for a queue, from worker heartbeats (triggers with workerHostnames).",
        &["broker", "queue"]
    )
    .expect("metric registers once")
});

pub(crate) static SIGNAL_MODE: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_signal_mode",
        "1 for the mode each live signal of a queue is in (exact, estimated, lower-bound, none, or its source).",
        &["broker", "queue", "signal", "mode"]
    )
    .expect("metric registers once")
});

// --- Heartbeat bounds (issue 11 item 8) ---

pub(crate) static HEARTBEATS_IMPLAUSIBLE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "celery_scaler_heartbeats_implausible_total",
        "Worker heartbeats outside plausible bounds, by reason (active, freq, processed: clamped or ignored; too_many_workers: refused).",
        &["broker", "reason"]
    )
    .expect("metric registers once")
});

/// Removes a broker's heartbeat-bound series.
fn remove_heartbeat_series(broker: &str) {
    for reason in crate::signals::heartbeat::Implausible::ALL {
        let _ = HEARTBEATS_IMPLAUSIBLE.remove_label_values(&[broker, reason.label()]);
    }
}

// --- end of heartbeat bounds ---

/// The (signal, modes) pairs exported by the sampler.
const SAMPLER_MODES: [(&str, &[&str]); 4] = [
    (
        "arrival_rate",
        &["exact", "estimated", "lower-bound", "none"],
    ),
    (
        "dequeue_rate",
        &["exact", "estimated", "lower-bound", "none"],
    ),
    ("wait", &["exact", "estimated", "none"]),
    (
        "service_time",
        &[
            "heartbeat",
            "unacked-occupancy",
            "unacked-residence",
            "none",
        ],
    ),
];
const RUNNING_MODES: [&str; 2] = ["heartbeat", "none"];

/// The most series one queue's live signals create: four value gauges, running, and one
/// `signal_mode` series per (signal, mode) pair. Reserved in the series budget as a whole.
const LIVE_FAMILIES: [(&str, usize); 6] = [
    ("celery_scaler_queue_arrival_rate", 1),
    ("celery_scaler_queue_dequeue_rate", 1),
    ("celery_scaler_queue_wait_seconds", 1),
    ("celery_scaler_queue_service_time_seconds", 1),
    ("celery_scaler_queue_running", 1),
    ("celery_scaler_signal_mode", mode_series()),
];

/// The `signal_mode` series of one queue: one per (signal, mode) pair.
const fn mode_series() -> usize {
    let mut n = RUNNING_MODES.len();
    let mut i = 0;
    while i < SAMPLER_MODES.len() {
        n += SAMPLER_MODES[i].1.len();
        i += 1;
    }
    n
}

fn live_reserved() -> usize {
    LIVE_FAMILIES.iter().map(|(_, n)| n).sum()
}

/// The series of one queue's counts: backlog and the three in-flight states.
const COUNT_FAMILIES: [(&str, usize); 2] = [
    ("celery_scaler_queue_backlog", 1),
    ("celery_scaler_queue_in_flight", 3),
];

fn count_reserved() -> usize {
    COUNT_FAMILIES.iter().map(|(_, n)| n).sum()
}

/// Queues with live series, by broker (to remove them when no longer watched).
static LIVE_SERIES: LazyLock<Mutex<HashMap<String, BTreeSet<String>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn live_series() -> std::sync::MutexGuard<'static, HashMap<String, BTreeSet<String>>> {
    LIVE_SERIES.lock().unwrap_or_else(|e| e.into_inner())
}

fn mode_of(e: Option<&Estimate>) -> &'static str {
    e.map_or("none", |e| e.mode.label())
}

fn set_modes(broker: &str, queue: &str, signal: &str, modes: &[&str], active: &str) {
    for m in modes {
        SIGNAL_MODE
            .with_label_values(&[broker, queue, signal, m])
            .set(if *m == active { 1.0 } else { 0.0 });
    }
}

/// Whether `queue` of `broker` has live series, reserving them in the series budget if new.
fn admit_live(broker: &str, queue: &str) -> bool {
    let mut all = live_series();
    let known = all.get(broker).is_some_and(|q| q.contains(queue));
    if known {
        return true;
    }
    if !series_budget().reserve(&LIVE_FAMILIES, &format!("{broker} {queue}")) {
        return false;
    }
    all.entry(broker.to_string())
        .or_default()
        .insert(queue.to_string());
    true
}

/// Sets one queue's live gauges from the sampler's estimates (nothing when the queue's
/// series do not fit in the series budget).
fn set_live(broker: &str, queue: &str, e: &QueueEstimates) -> bool {
    if !admit_live(broker, queue) {
        return false;
    }
    let gauges = [
        (&*QUEUE_ARRIVAL_RATE, e.arrival_rate),
        (&*QUEUE_DEQUEUE_RATE, e.dequeue_rate),
        (&*QUEUE_WAIT, e.wait),
        (&*QUEUE_SERVICE_TIME, e.service_time),
    ];
    for (gauge, est) in gauges {
        match est.and_then(|e| e.usable()) {
            Some(v) => gauge.with_label_values(&[broker, queue]).set(v),
            None => {
                let _ = gauge.remove_label_values(&[broker, queue]);
            }
        }
    }
    let (_, arrival) = SAMPLER_MODES[0];
    set_modes(
        broker,
        queue,
        "arrival_rate",
        arrival,
        mode_of(e.arrival_rate.as_ref()),
    );
    set_modes(
        broker,
        queue,
        "dequeue_rate",
        arrival,
        mode_of(e.dequeue_rate.as_ref()),
    );
    set_modes(
        broker,
        queue,
        "wait",
        SAMPLER_MODES[2].1,
        mode_of(e.wait.as_ref()),
    );
    let service = e.service_time.map_or("none", |e| e.source);
    set_modes(broker, queue, "service_time", SAMPLER_MODES[3].1, service);
    true
}

/// Sets every watched queue's live gauges from one tick (the first watch set wins for a
/// queue label), and removes those of queues no longer watched. Running tasks come from the
/// heartbeats of the workers credited to the queue: those named by `workerHostnames` of a
/// watch set of that queue alone (the same crediting as the sampler's start rate and
/// service time); other queues show `signal_mode{signal="running",mode="none"}`.
pub(crate) fn export_live(broker: &str, data: &LiveData, watches: &[WatchSet], now: f64) {
    let workers = single_queue_workers(watches);
    let mut done = HashSet::new();
    for w in watches {
        for q in &w.queues {
            let name = format!("{}{q}", String::from_utf8_lossy(&w.layout.prefix));
            if !done.insert(name.clone()) {
                continue;
            }
            let id = (w.layout.clone(), q.clone());
            let Some(e) = data.queues.get(&id) else {
                continue;
            };
            if !set_live(broker, &name, e) {
                continue;
            }
            let running = workers.get(&id).and_then(|pattern| {
                let book = data.heartbeats.get(&w.layout.prefix)?;
                Some(book.summary(now, pattern)?.running as f64)
            });
            set_running(broker, &name, running);
        }
    }
    retain_live(broker, &done);
}

/// Sets a queue's running tasks from heartbeats (`None`: no matching worker).
fn set_running(broker: &str, queue: &str, running: Option<f64>) {
    match running {
        Some(v) => QUEUE_RUNNING.with_label_values(&[broker, queue]).set(v),
        None => {
            let _ = QUEUE_RUNNING.remove_label_values(&[broker, queue]);
        }
    }
    let active = if running.is_some() {
        "heartbeat"
    } else {
        "none"
    };
    set_modes(broker, queue, "running", &RUNNING_MODES, active);
}

fn remove_live(broker: &str, queue: &str) {
    for g in [
        &*QUEUE_ARRIVAL_RATE,
        &*QUEUE_DEQUEUE_RATE,
        &*QUEUE_WAIT,
        &*QUEUE_SERVICE_TIME,
        &*QUEUE_RUNNING,
    ] {
        let _ = g.remove_label_values(&[broker, queue]);
    }
    for (signal, modes) in SAMPLER_MODES {
        for m in modes {
            let _ = SIGNAL_MODE.remove_label_values(&[broker, queue, signal, m]);
        }
    }
    for m in RUNNING_MODES {
        let _ = SIGNAL_MODE.remove_label_values(&[broker, queue, "running", m]);
    }
}

/// Removes the live series of queues of `broker` not in `keep`.
fn retain_live(broker: &str, keep: &HashSet<String>) {
    let mut all = live_series();
    let Some(queues) = all.get_mut(broker) else {
        return;
    };
    let mut freed = 0;
    queues.retain(|q| {
        let kept = keep.contains(q);
        if !kept {
            remove_live(broker, q);
            freed += live_reserved();
        }
        kept
    });
    if queues.is_empty() {
        all.remove(broker);
    }
    series_budget().release(freed);
}

/// The per-queue series one sampler has set, so it can remove exactly those. Dropped with
/// series left (the sampler's task panicked and is restarted with a fresh one), it removes
/// them and releases their reservations.
#[derive(Default)]
pub(crate) struct QueueSeries {
    queues: BTreeSet<String>,
    /// The broker label the series were set under.
    broker: String,
}

impl Drop for QueueSeries {
    fn drop(&mut self) {
        if !self.queues.is_empty() {
            let broker = std::mem::take(&mut self.broker);
            self.retain(&broker, &BTreeSet::new());
        }
    }
}

impl QueueSeries {
    /// Sets one queue's counts (nothing when its series do not fit in the series budget).
    pub(crate) fn set(&mut self, broker: &str, queue: &str, backlog: u64, counts: [u64; 3]) {
        if !self.queues.contains(queue)
            && !series_budget().reserve(&COUNT_FAMILIES, &format!("{broker} {queue}"))
        {
            return;
        }
        QUEUE_BACKLOG
            .with_label_values(&[broker, queue])
            .set(backlog as f64);
        let states = [
            InFlightState::Reserved,
            InFlightState::Scheduled,
            InFlightState::Stale,
        ];
        for (state, n) in states.iter().zip(counts) {
            QUEUE_IN_FLIGHT
                .with_label_values(&[broker, queue, state.label()])
                .set(n as f64);
        }
        if self.broker != broker {
            self.broker = broker.to_string();
        }
        self.queues.insert(queue.to_string());
    }

    /// Removes the series of queues no longer watched (`keep`), or all with an empty `keep`.
    pub(crate) fn retain(&mut self, broker: &str, keep: &BTreeSet<String>) {
        let gone: Vec<String> = self.queues.difference(keep).cloned().collect();
        for queue in gone {
            let _ = QUEUE_BACKLOG.remove_label_values(&[broker, &queue]);
            for state in ["reserved", "scheduled", "stale"] {
                let _ = QUEUE_IN_FLIGHT.remove_label_values(&[broker, &queue, state]);
            }
            self.queues.remove(&queue);
            series_budget().release(count_reserved());
        }
    }
}

/// Removes every per-broker series when its sampler stops.
pub(crate) fn remove_broker(broker: &str, series: &mut QueueSeries) {
    series.retain(broker, &BTreeSet::new());
    retain_live(broker, &HashSet::new());
    let _ = REDIS_COMMANDS.remove_label_values(&[broker]);
    let _ = PUBSUB_COMMANDS.remove_label_values(&[broker]);
    let _ = UNACKED_MALFORMED.remove_label_values(&[broker]);
    let _ = SAMPLE_DURATION.remove_label_values(&[broker]);
    SAMPLE_AGE.remove(broker);
    let _ = WATCH_SETS.remove_label_values(&[broker]);
    remove_heartbeat_series(broker);
    for kind in [
        "connect", "auth", "timeout", "command", "sentinel", "stale", "shutdown",
    ] {
        let _ = REDIS_ERRORS.remove_label_values(&[broker, kind]);
    }
}

// --- Hostile or broken broker data (issue 11 items 4, 6, 9; owned by the tracker) ---

/// Keys skipped by the latest sample because they hold the wrong Redis type.
pub(crate) static UNREADABLE_KEYS: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_broker_unreadable_keys",
        "Keys of the wrong Redis type that the latest sample skipped, by kind (queue, unacked, unacked_index, binding).",
        &["broker", "key_kind"]
    )
    .expect("metric registers once")
});

/// Kinds of [`SUSPECT_DATA`], a bounded label set.
pub(crate) const SUSPECT_KINDS: [&str; 6] = [
    "bad_eta",
    "bad_score",
    "binding_too_long",
    "too_many_bindings",
    "too_many_exchanges",
    "routing_key_too_long",
];

/// Broker data kept or skipped under a documented rule instead of being trusted.
pub(crate) static SUSPECT_DATA: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "celery_scaler_broker_suspect_data_total",
        "Broker data handled by a documented fallback: unparseable ETAs (counted as reserved), out-of-range unacked_index scores, bindings and exchanges over the limits.",
        &["broker", "kind"]
    )
    .expect("metric registers once")
});

/// Adds `n` to `celery_scaler_broker_suspect_data_total{broker, kind}` (`kind` from
/// [`SUSPECT_KINDS`]).
pub(crate) fn suspect(broker: &str, kind: &'static str, n: u64) {
    if n > 0 {
        SUSPECT_DATA.with_label_values(&[broker, kind]).inc_by(n);
    }
}

/// Sets the unreadable-key gauges of `broker` (every kind, zeros included).
pub(crate) fn set_unreadable(broker: &str, counts: &HashMap<&'static str, usize>) {
    for kind in super::reply::KeyKind::ALL {
        let n = counts.get(kind.as_str()).copied().unwrap_or(0);
        UNREADABLE_KEYS
            .with_label_values(&[broker, kind.as_str()])
            .set(n as f64);
    }
}

/// Background tasks restarted by their supervisor after a panic, by task.
pub(crate) static TASK_RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "celery_scaler_task_restarts_total",
        "Background tasks that panicked and were restarted, by task (sampler).",
        &["task"]
    )
    .expect("metric registers once")
});

/// Removes the series of this block for a stopped broker.
pub(crate) fn remove_broker_data(broker: &str) {
    for kind in super::reply::KeyKind::ALL {
        let _ = UNREADABLE_KEYS.remove_label_values(&[broker, kind.as_str()]);
    }
    for kind in SUSPECT_KINDS {
        let _ = SUSPECT_DATA.remove_label_values(&[broker, kind]);
    }
}
