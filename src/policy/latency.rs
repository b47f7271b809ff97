//! `latency` mode: the number of busy worker slots needed so that tasks start within
//! `targetLatency`, from the queue's backlog and in-flight counts and the sampler's live
//! estimates (arrival rate λ, service time S, running tasks, oldest wait).
//!
//! ```text
//! metric = max(in_flight, flow + headroom) + drain        target = concurrency
//! flow     = Σ_q λ_q · S_q
//! drain    = Σ_q waiting_q · S_q / (S_q + T_eff,q)      T_eff,q = max(T − wait_q, T/2)
//! headroom = max(minHeadroom, min(ln 20 · S_max / T, √flow))   (0 when idle)
//! ```
//!
//! The derivation and the fallbacks are in `docs/scaling.md`. Pure: no I/O, no clock; the
//! only notion of time is the wait age the sampler measured.

use super::decision::{Component, Decision};
use crate::signals::{LiveSignals, QueueSignals};

/// Default minimum headroom, in slots.
pub const DEFAULT_MIN_HEADROOM: f64 = 0.0;
/// Service times are clamped to at least this (seconds), so arrivals always ask for capacity.
pub const MIN_SERVICE_TIME: f64 = 0.001;
/// `ln(1/0.05)`: with `N − λS` spare slots an M/M/N queue keeps P(wait > T) ≤
/// 0.05 · e^{3 − (N−λS)·T/S}, so `3·S/T` spare slots bound the p95 wait by T.
pub const P95_FACTOR: f64 = 2.995_732_273_553_991;

/// Settings of `latency` mode (trigger metadata `concurrency`, `targetLatency`,
/// `taskDuration`, `minHeadroom`, `activationListLength`).
#[derive(Clone, Debug, PartialEq)]
pub struct LatencySettings {
    /// Tasks one worker pod runs at once (> 0): the HPA target.
    pub concurrency: f64,
    /// Seconds a task may wait before it starts (> 0).
    pub target_latency: f64,
    /// Service-time fallback when the sampler has no estimate (> 0).
    pub task_duration: Option<f64>,
    /// Spare slots kept whenever the queue is not idle (≥ 0).
    pub min_headroom: f64,
    /// Backlog strictly above this activates (like KEDA's `activationListLength`).
    pub activation_list_length: f64,
}

impl LatencySettings {
    /// Settings with the defaults for the optional keys.
    pub fn new(concurrency: f64, target_latency: f64) -> Self {
        Self {
            concurrency,
            target_latency,
            task_duration: None,
            min_headroom: DEFAULT_MIN_HEADROOM,
            activation_list_length: 0.0,
        }
    }
}

/// One queue's inputs after fallbacks.
struct QueueTerms {
    service_time: f64,
    rate: f64,
    rate_source: &'static str,
    /// Slots the arrivals keep busy: λ·S, and at least `in_flight` when λ is a lower bound.
    flow: f64,
    in_flight: f64,
    in_flight_source: &'static str,
    drain: f64,
    drain_source: &'static str,
    busy: bool,
}

fn positive_or(value: f64, fallback: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        fallback
    }
}

fn terms(s: &LatencySettings, target: f64, q: &QueueSignals, live: &LiveSignals) -> QueueTerms {
    let (service_time, service_source) = match live
        .service_time
        .and_then(|e| e.usable().map(|v| (v, e.source.as_str())))
    {
        Some((v, src)) => (v, src),
        None => match s.task_duration.filter(|d| d.is_finite() && *d > 0.0) {
            Some(d) => (d, "config"),
            None => (target, "target-latency"),
        },
    };
    let service_time = service_time.max(MIN_SERVICE_TIME);
    let (rate, rate_source) = match (
        live.arrival_rate
            .and_then(|e| e.usable().map(|v| (v, e.source.as_str()))),
        live.dequeue_rate
            .and_then(|e| e.usable().map(|v| (v, e.source.as_str()))),
    ) {
        (Some(a), _) => a,
        (None, Some(d)) => d,
        (None, None) => (0.0, "none"),
    };
    // A lower-bound λ (traffic mostly unseen) only ever raises the estimate: the dequeue
    // count under-counts too, so the larger of the two is used.
    let lower_bound = live.arrival_rate.is_some_and(|e| e.is_lower_bound());
    let rate = match live.dequeue_rate.and_then(|e| e.usable()) {
        Some(d) if lower_bound => rate.max(d),
        _ => rate,
    };
    let reserved = q.reserved as f64;
    let running = live
        .running
        .and_then(|e| e.usable().map(|v| (v, e.source.as_str())));
    let (in_flight, in_flight_source, held) = match running {
        // Prefetched tasks (reserved beyond the running ones) wait for a slot: drain them.
        Some((r, src)) => (r, src, reserved),
        // Without heartbeats, reserved stands for the running tasks.
        None => (reserved, "unacked", 0.0),
    };
    let waiting = q.backlog as f64 + q.stale as f64 + held;
    let wait = live.wait.and_then(|e| e.usable()).unwrap_or(0.0);
    let budget = (target - wait).max(target / 2.0);
    let drain = waiting * service_time / (service_time + budget);
    // With a lower-bound λ the queue's own in-flight work is its evidence of flow: its flow
    // is never below it (λ·S alone, under-counted, never takes the queue below what runs).
    let flow = if lower_bound {
        (rate * service_time).max(in_flight)
    } else {
        rate * service_time
    };
    QueueTerms {
        service_time,
        rate,
        rate_source,
        flow,
        in_flight,
        in_flight_source,
        drain,
        drain_source: service_source,
        busy: waiting > 0.0 || in_flight > 0.0 || rate > 0.0,
    }
}

/// Picks one label for a sum: the source of its largest contributor.
fn main_source(parts: &[(f64, &'static str)]) -> &'static str {
    parts
        .iter()
        .filter(|(v, _)| *v > 0.0)
        .fold(
            (0.0, "none"),
            |best, (v, s)| if *v > best.0 { (*v, *s) } else { best },
        )
        .1
}

/// Decides for `queues` (with `live` matched by name) under `s`.
pub fn decide(s: &LatencySettings, queues: &[QueueSignals], live: &[LiveSignals]) -> Decision {
    let target = positive_or(s.target_latency, 1.0);
    let concurrency = positive_or(s.concurrency, 1.0);
    let none = LiveSignals::default();
    let all: Vec<QueueTerms> = queues
        .iter()
        .map(|q| {
            let l = live.iter().find(|l| l.name == q.name).unwrap_or(&none);
            terms(s, target, q, l)
        })
        .collect();
    let sum = |f: fn(&QueueTerms) -> f64| all.iter().map(f).sum::<f64>();
    let in_flight = sum(|t| t.in_flight);
    let flow = sum(|t| t.flow);
    let drain = sum(|t| t.drain);
    let busy = all.iter().any(|t| t.busy);
    let s_max = all.iter().map(|t| t.service_time).fold(0.0, f64::max);
    let min_headroom = if s.min_headroom.is_finite() {
        s.min_headroom.max(0.0)
    } else {
        0.0
    };
    let headroom = if busy {
        min_headroom.max((P95_FACTOR * s_max / target).min(flow.sqrt()))
    } else {
        0.0
    };
    let base = in_flight.max(flow + headroom);
    let flow_extra = (flow - in_flight).max(0.0);
    let headroom_extra = (base - in_flight - flow_extra).max(0.0);
    let metric_value = base + drain;
    let metric_value = if metric_value.is_finite() {
        metric_value
    } else {
        f64::MAX
    };

    let backlog: u64 = queues.iter().map(|q| q.backlog).sum();
    let in_unacked = queues.iter().any(|q| q.reserved > 0 || q.stale > 0);
    let active = backlog as f64 > s.activation_list_length
        || in_unacked
        || in_flight > 0.0
        || all.iter().any(|t| t.rate > 0.0);

    let pick = |f: fn(&QueueTerms) -> (f64, &'static str)| {
        main_source(&all.iter().map(f).collect::<Vec<_>>())
    };
    Decision {
        metric_value,
        target: concurrency,
        active,
        breakdown: vec![
            Component {
                component: "in_flight",
                value: in_flight,
                source: pick(|t| (t.in_flight, t.in_flight_source)),
            },
            Component {
                component: "flow",
                value: flow_extra,
                source: pick(|t| (t.flow, t.rate_source)),
            },
            Component {
                component: "headroom",
                value: headroom_extra,
                source: if min_headroom >= headroom && busy {
                    "config"
                } else {
                    "model"
                },
            },
            Component {
                component: "drain",
                value: drain,
                source: pick(|t| (t.drain, t.drain_source)),
            },
        ],
    }
}

#[cfg(test)]
mod tests;
