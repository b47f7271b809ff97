//! Prometheus series owned by the broker module: what each sampler read, how much it cost,
//! and how it failed. Every series carries the broker's credential-free label; a broker's
//! series are removed when its sampler stops.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use prometheus::{
    register_gauge_vec, register_histogram_vec, register_int_counter_vec, GaugeVec, HistogramVec,
    IntCounterVec,
};

use crate::celery::InFlightState;

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

pub(crate) static SAMPLE_AGE: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_sample_age_seconds",
        "Age of the latest good sample of a broker, updated every tick.",
        &["broker"]
    )
    .expect("metric registers once")
});

pub(crate) static WATCH_SETS: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "celery_scaler_watch_sets",
        "Watch sets (trigger queue sets) registered on a broker.",
        &["broker"]
    )
    .expect("metric registers once")
});

/// The per-queue series one sampler has set, so it can remove exactly those.
#[derive(Default)]
pub(crate) struct QueueSeries {
    queues: BTreeSet<String>,
}

impl QueueSeries {
    pub(crate) fn set(&mut self, broker: &str, queue: &str, backlog: u64, counts: [u64; 3]) {
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
        }
    }
}

/// Removes every per-broker series when its sampler stops.
pub(crate) fn remove_broker(broker: &str, series: &mut QueueSeries) {
    series.retain(broker, &BTreeSet::new());
    let _ = REDIS_COMMANDS.remove_label_values(&[broker]);
    let _ = UNACKED_MALFORMED.remove_label_values(&[broker]);
    let _ = SAMPLE_DURATION.remove_label_values(&[broker]);
    let _ = SAMPLE_AGE.remove_label_values(&[broker]);
    let _ = WATCH_SETS.remove_label_values(&[broker]);
    for kind in [
        "connect", "auth", "timeout", "command", "sentinel", "stale", "shutdown",
    ] {
        let _ = REDIS_ERRORS.remove_label_values(&[broker, kind]);
    }
}
