//! Per-queue series of a broker: backlog and in-flight counts ([`QueueSeries`]) and the
//! live signals with their modes ([`export_live`]). Each queue reserves its series in the
//! series budget before they are created and gives them back when its watch set expires or
//! its sampler stops ([`remove_broker`]).

use std::collections::{BTreeSet, HashSet};

use super::broker::BrokerMetrics;
use crate::celery::InFlightState;
use crate::signals::live::{single_queue_workers, LiveData, QueueEstimates};
use crate::signals::{Estimate, SignalMode, Source, NO_ESTIMATE};
use crate::spec::WatchSet;

/// The `mode` labels of a rate: its [`SignalMode`], or none.
const RATE_MODES: [&str; 4] = [
    SignalMode::Exact.as_str(),
    SignalMode::Estimated.as_str(),
    SignalMode::LowerBound.as_str(),
    NO_ESTIMATE,
];
/// The `mode` labels of the queue wait: a lower bound where the arrivals of the waiting
/// messages were not seen (tasks listed before the scaler started).
const WAIT_MODES: [&str; 4] = [
    SignalMode::Exact.as_str(),
    SignalMode::Estimated.as_str(),
    SignalMode::LowerBound.as_str(),
    NO_ESTIMATE,
];
/// The `mode` labels of the service time: the [`Source`] the sampler measured it from.
const SERVICE_MODES: [&str; 4] = [
    Source::Heartbeat.as_str(),
    Source::UnackedOccupancy.as_str(),
    Source::UnackedResidence.as_str(),
    NO_ESTIMATE,
];
/// The `mode` labels of running tasks: from heartbeats, or none.
const RUNNING_MODES: [&str; 2] = [Source::Heartbeat.as_str(), NO_ESTIMATE];

/// The (signal, modes) pairs exported by the sampler (running apart, see [`set_running`]).
const SAMPLER_MODES: [(&str, &[&str]); 4] = [
    ("arrival_rate", &RATE_MODES),
    ("dequeue_rate", &RATE_MODES),
    ("wait", &WAIT_MODES),
    ("service_time", &SERVICE_MODES),
];

/// The most series one queue's live signals create: five value gauges, running, and one
/// `signal_mode` series per (signal, mode) pair. Reserved in the series budget as a whole.
const LIVE_FAMILIES: [(&str, usize); 7] = [
    ("celery_scaler_queue_arrival_rate", 1),
    ("celery_scaler_queue_dequeue_rate", 1),
    ("celery_scaler_queue_wait_seconds", 1),
    ("celery_scaler_queue_service_time_seconds", 1),
    ("celery_scaler_queue_service_time_p95_seconds", 1),
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

fn mode_of(e: Option<&Estimate>) -> &'static str {
    e.map_or(NO_ESTIMATE, |e| e.mode.as_str())
}

fn set_modes(m: &BrokerMetrics, queue: &str, signal: &str, modes: &[&str], active: &str) {
    for mode in modes {
        m.families
            .queues
            .signal_mode
            .with_label_values(&[m.label(), queue, signal, mode])
            .set(if *mode == active { 1.0 } else { 0.0 });
    }
}

/// Whether `queue` has live series, reserving them in the series budget if new.
fn admit_live(m: &BrokerMetrics, queue: &str) -> bool {
    let mut all = m.families.live_queues();
    let known = all.get(m.label()).is_some_and(|q| q.contains(queue));
    if known {
        return true;
    }
    if !m
        .budget
        .reserve(&LIVE_FAMILIES, &format!("{} {queue}", m.label()))
    {
        return false;
    }
    all.entry(m.label().to_string())
        .or_default()
        .insert(queue.to_string());
    true
}

/// Sets one queue's live gauges from the sampler's estimates (nothing when the queue's
/// series do not fit in the series budget).
fn set_live(m: &BrokerMetrics, queue: &str, e: &QueueEstimates) -> bool {
    if !admit_live(m, queue) {
        return false;
    }
    let f = &m.families;
    let gauges = [
        (&f.queues.arrival_rate, e.arrival_rate),
        (&f.queues.dequeue_rate, e.dequeue_rate),
        (&f.queues.wait, e.wait),
        (&f.queues.service_time, e.service_time),
        (&f.queues.service_time_p95, e.service_time_p95),
    ];
    for (gauge, est) in gauges {
        match est.and_then(|e| e.usable()) {
            Some(v) => gauge.with_label_values(&[m.label(), queue]).set(v),
            None => {
                let _ = gauge.remove_label_values(&[m.label(), queue]);
            }
        }
    }
    let rates = [e.arrival_rate, e.dequeue_rate];
    set_modes(
        m,
        queue,
        "arrival_rate",
        &RATE_MODES,
        mode_of(rates[0].as_ref()),
    );
    set_modes(
        m,
        queue,
        "dequeue_rate",
        &RATE_MODES,
        mode_of(rates[1].as_ref()),
    );
    set_modes(m, queue, "wait", &WAIT_MODES, mode_of(e.wait.as_ref()));
    let service = e.service_time.map_or(NO_ESTIMATE, |e| e.source.as_str());
    set_modes(m, queue, "service_time", &SERVICE_MODES, service);
    true
}

/// Sets every watched queue's live gauges from one tick (the first watch set wins for a
/// queue label), and removes those of queues no longer watched. Running tasks come from the
/// heartbeats of the workers credited to the queue: those named by `workerHostnames` of a
/// watch set of that queue alone (the same crediting as the sampler's start rate and
/// service time); other queues show `signal_mode{signal="running",mode="none"}`.
pub(crate) fn export_live(m: &BrokerMetrics, data: &LiveData, watches: &[WatchSet], now: f64) {
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
            if !set_live(m, &name, e) {
                continue;
            }
            let running = workers.get(&id).and_then(|pattern| {
                let book = data.heartbeats.get(&w.layout.prefix)?;
                Some(book.summary(now, pattern)?.running as f64)
            });
            set_running(m, &name, running);
        }
    }
    retain_live(m, &done);
}

/// Sets a queue's running tasks from heartbeats (`None`: no matching worker).
fn set_running(m: &BrokerMetrics, queue: &str, running: Option<f64>) {
    let gauge = &m.families.queues.running;
    match running {
        Some(v) => gauge.with_label_values(&[m.label(), queue]).set(v),
        None => {
            let _ = gauge.remove_label_values(&[m.label(), queue]);
        }
    }
    let active = if running.is_some() {
        Source::Heartbeat.as_str()
    } else {
        NO_ESTIMATE
    };
    set_modes(m, queue, "running", &RUNNING_MODES, active);
}

fn remove_live(m: &BrokerMetrics, queue: &str) {
    let f = &m.families;
    let broker = m.label();
    for g in [
        &f.queues.arrival_rate,
        &f.queues.dequeue_rate,
        &f.queues.wait,
        &f.queues.service_time,
        &f.queues.service_time_p95,
        &f.queues.running,
    ] {
        let _ = g.remove_label_values(&[broker, queue]);
    }
    for (signal, modes) in SAMPLER_MODES {
        for mode in modes {
            let _ = f
                .queues
                .signal_mode
                .remove_label_values(&[broker, queue, signal, mode]);
        }
    }
    for mode in RUNNING_MODES {
        let _ = f
            .queues
            .signal_mode
            .remove_label_values(&[broker, queue, "running", mode]);
    }
}

/// Removes the live series of this broker's queues not in `keep`.
fn retain_live(m: &BrokerMetrics, keep: &HashSet<String>) {
    let mut all = m.families.live_queues();
    let Some(queues) = all.get_mut(m.label()) else {
        return;
    };
    let mut freed = 0;
    queues.retain(|q| {
        let kept = keep.contains(q);
        if !kept {
            remove_live(m, q);
            freed += live_reserved();
        }
        kept
    });
    if queues.is_empty() {
        all.remove(m.label());
    }
    m.budget.release(freed);
}

/// The count series (backlog, in flight) one sampler has set, so it can remove exactly
/// those. Dropped with series left (the sampler's task panicked and is restarted with a
/// fresh one), it removes them and releases their reservations.
pub struct QueueSeries {
    queues: BTreeSet<String>,
    metrics: BrokerMetrics,
}

impl Drop for QueueSeries {
    fn drop(&mut self) {
        if !self.queues.is_empty() {
            self.retain(&BTreeSet::new());
        }
    }
}

impl QueueSeries {
    pub fn new(metrics: BrokerMetrics) -> Self {
        Self {
            queues: BTreeSet::new(),
            metrics,
        }
    }

    /// Sets one queue's counts (nothing when its series do not fit in the series budget).
    pub fn set(&mut self, queue: &str, backlog: u64, counts: [u64; 3]) {
        let m = &self.metrics;
        if !self.queues.contains(queue)
            && !m
                .budget
                .reserve(&COUNT_FAMILIES, &format!("{} {queue}", m.label()))
        {
            return;
        }
        m.families
            .queues
            .backlog
            .with_label_values(&[m.label(), queue])
            .set(backlog as f64);
        let states = [
            InFlightState::Reserved,
            InFlightState::Scheduled,
            InFlightState::Stale,
        ];
        for (state, n) in states.iter().zip(counts) {
            m.families
                .queues
                .in_flight
                .with_label_values(&[m.label(), queue, state.label()])
                .set(n as f64);
        }
        self.queues.insert(queue.to_string());
    }

    /// Removes the series of queues no longer watched (`keep`), or all with an empty `keep`.
    pub fn retain(&mut self, keep: &BTreeSet<String>) {
        let m = &self.metrics;
        let gone: Vec<String> = self.queues.difference(keep).cloned().collect();
        for queue in gone {
            let _ = m
                .families
                .queues
                .backlog
                .remove_label_values(&[m.label(), &queue]);
            for state in [
                InFlightState::Reserved,
                InFlightState::Scheduled,
                InFlightState::Stale,
            ] {
                let _ = m.families.queues.in_flight.remove_label_values(&[
                    m.label(),
                    &queue,
                    state.label(),
                ]);
            }
            self.queues.remove(&queue);
            m.budget.release(count_reserved());
        }
    }
}

/// Removes every series of a broker whose sampler stops: its queues' counts (`series`) and
/// live signals, and its fixed series (`key_kinds`: the kinds of its unreadable-key gauges).
pub fn remove_broker(series: &mut QueueSeries, key_kinds: &[&str]) {
    series.retain(&BTreeSet::new());
    retain_live(&series.metrics, &HashSet::new());
    series.metrics.remove_fixed(key_kinds);
}
