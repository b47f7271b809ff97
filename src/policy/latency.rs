//! `latency` mode: the fewest busy worker slots whose predicted p95 wait stays within
//! `targetLatency`, from the queue's backlog and in-flight counts and the sampler's live
//! estimates (steady arrival rate λ, service time S and its p95, running tasks, oldest wait).
//!
//! ```text
//! metric = max(in_flight, steady, drain)                target = concurrency
//! steady = the fewest slots c > a = Σ a_q with ErlangC(c, a)·e^{−(c−a)·T/θ} ≤ 5 %
//!          a_q = S_q·r_q + (λ_q − r_q)·S̄_q  (occupancy; λ_q·S_q without S̄_q or r_q),
//!                at most λ_q·S̄_q in one pool of slots (not with private buffers)
//!          θ = Σ λ_q·max(S̄_q, S95_q/3) / Σ λ_q   (the tail's time scale; S̄ = S without it)
//! drain  = Σ_q waiting_q · D_q / (D_q + B_q)      B_q = max(T − wait_q, T/2)
//!          D_q = min(S_q, 2.25·S̄_q)  (S_q without S̄_q), plus the start-up premium of
//!          the slots not up yet with `podStartup` (`startup.rs`)
//! ```
//!
//! When each pod holds a private buffer of prefetched tasks (`buffers.rs`), `steady` is
//! instead N·concurrency for the fewest pods N whose own M/M/c queue, offered a/N, meets the
//! same rule. Under early ack `unacked` holds only tasks waiting in those buffers: its
//! residence is no service time, and its p95 gives θ_q = max(S̄_q or S_q, w95_q·(c − a/pods)/ln 20)
//! with the worker pods now (`buffers::tail_from_buffer_waits`).
//!
//! `steady` is 0 when the rate rests on at most three arrivals in its window with at most
//! three tasks present (`in_flight` and `drain` size them), or when nothing waits or runs and
//! fewer than one task arrives per target (a cold start serves it). Derivation and fallbacks:
//! `docs/scaling.md`. Pure: no I/O, no clock; time is only the wait age the sampler measured.

use super::decision::{Component, Decision};
use crate::signals::{LiveSignals, QueueSignals};
use arrivals::arrival_rate;
pub use arrivals::STOPPED_FLOW;
pub use buffers::Prefetch;
pub use erlang::{steady_slots, ERLANG_EXACT_MAX_LOAD, P95_FACTOR, TAIL_SHARE};

/// Default minimum headroom, in slots.
pub const DEFAULT_MIN_HEADROOM: f64 = 0.0;
/// Service times are clamped to at least this (seconds), so arrivals always ask for capacity.
pub const MIN_SERVICE_TIME: f64 = 0.001;
/// A rate resting on fewer arrivals than this in its window is no evidence of a flow: n
/// arrivals read λ·window ≈ n (the window's span wobbles around its length), so up to three
/// arrivals are quiet; with as few tasks present, `in_flight` and `drain` size them.
pub const LONE_ARRIVALS: f64 = 3.5;
/// The drain term's service time is at most this many times the long-window S̄: above it
/// the window's S reads long tasks filling the slots, not the backlog's tasks. Fitted on the
/// library (`docs/scaling.md`, "The drain's S capped at 2.25·S̄"): 2 takes on-off-waves over
/// its target (a wave's first starts read S ≈ 2·S̄ and the start-up lag needs that margin),
/// 2.5 leaves markov-trace over keda-redis.
pub const DRAIN_SERVICE_CAP: f64 = 2.25;
/// Settings of `latency` mode (trigger metadata `concurrency`, `targetLatency`,
/// `taskDuration`, `minHeadroom`, `activationListLength`, `prefetchMultiplier`, `acksLate`,
/// `podStartup`).
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
    /// How the workers prefetch (`prefetchMultiplier`, `acksLate`): whether each pod holds
    /// a private buffer, which changes the steady sizing (`buffers.rs`).
    pub prefetch: Prefetch,
    /// Seconds from activation to a new worker taking tasks (`podStartup`): tasks may wait at
    /// zero (`cold.rs`), and the drain sizes slots not up yet on it (`startup.rs`).
    pub pod_startup: Option<f64>,
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
            prefetch: Prefetch::default(),
            pod_startup: None,
        }
    }
}

/// One queue's inputs after fallbacks.
struct QueueTerms {
    /// The tail's time scale: max(S̄ or S, S95/3) (S95/3 = S for exponential service times).
    tail_scale: f64,
    /// The p95 wait of tasks delayed in a pod's buffer (early ack), for the tail scale once
    /// the load per pod is known (`buffers::tail_from_buffer_waits`).
    buffer_wait: Option<f64>,
    rate: f64,
    rate_source: &'static str,
    /// Arrivals the rate rests on (λ × the sampler's window); `None`: the window is unknown.
    counted: Option<f64>,
    /// Slots the arrivals keep busy: λ·S, and at least `in_flight` when λ is a lower bound.
    flow: f64,
    lower_bound: bool,
    in_flight: f64,
    in_flight_source: &'static str,
    drain: f64,
    /// The drain with every slot started now, `podStartup` later (`startup.rs`).
    fresh: f64,
    drain_source: &'static str,
    /// Tasks waiting, held, running or stale: something is in the system now.
    present: bool,
    /// How many: waiting (listed, stale, held) and running.
    tasks: f64,
    /// Age of the oldest waiting task now, when measured (a lower bound is not): as of the
    /// sample plus the time since, at most (it may have started since).
    wait: Option<f64>,
    /// Reserved tasks that may be waiting for a slot: reserved beyond the running count, or
    /// any reserved task when no running count is known (it cannot be told from a running one).
    held: bool,
    /// A running count is known (the held count is reserved beyond it).
    counts_running: bool,
}

fn positive_or(value: f64, fallback: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        fallback
    }
}

fn service_time(s: &LatencySettings, target: f64, live: &LiveSignals) -> (f64, &'static str) {
    let (v, src) = match live
        .service_time
        .filter(|e| buffers::is_service_time(&s.prefetch, e.source))
        .and_then(|e| e.usable().map(|v| (v, e.source.as_str())))
    {
        Some((v, src)) => (v, src),
        None => match s.task_duration.filter(|d| d.is_finite() && *d > 0.0) {
            Some(d) => (d, "config"),
            None => (target, "target-latency"),
        },
    };
    (v.max(MIN_SERVICE_TIME), src)
}

fn terms(s: &LatencySettings, target: f64, q: &QueueSignals, live: &LiveSignals) -> QueueTerms {
    let (service_time, service_source) = service_time(s, target, live);
    // The sizing inputs: S over a long window and the start rate S was measured against.
    // Under early ack an `unacked`-sourced S̄ is a buffer wait, no service time: neither it
    // nor the start rate it pairs with is used then (as for S itself).
    let long = live
        .service_time_sizing
        .filter(|e| buffers::is_service_time(&s.prefetch, e.source));
    let long_s = long
        .and_then(|e| e.usable())
        .map(|v| v.max(MIN_SERVICE_TIME));
    let started = live
        .service_rate
        .filter(|r| long.is_some() && r.is_finite() && *r >= 0.0);
    let (p95, buffer_wait) = buffers::tail_inputs(&s.prefetch, live.service_time_p95);
    let tail_scale = long_s.unwrap_or(service_time).max(p95 / 3.0);
    let (rate, rate_source, lower_bound) = arrival_rate(live);
    let reserved = q.reserved as f64;
    let running = live
        .running
        .and_then(|e| e.usable().map(|v| (v, e.source.as_str())));
    // Reserved tasks not running wait for a slot: under `acks_late` those beyond the running
    // ones (running tasks stay in `unacked` until done), under early ack all of them (a task
    // is acked as it starts).
    let not_running = |r: f64| {
        if s.prefetch.acks_late {
            (reserved - r).max(0.0)
        } else {
            reserved
        }
    };
    let (in_flight, in_flight_source, held) = match running {
        // Prefetched tasks wait for a slot: drain them.
        Some((r, src)) => (r, src, not_running(r)),
        // Without heartbeats, reserved stands for the running tasks.
        None => (reserved, "unacked", 0.0),
    };
    let waiting = q.backlog as f64 + q.stale as f64 + held;
    let wait = live.wait.and_then(|e| e.usable()).unwrap_or(0.0);
    let budget = (target - wait).max(target / 2.0);
    // The window's S while long tasks fill the slots reads several S̄ and spikes the drain
    // (the HPA's scale-down window then holds the spike as pods); a wave's first starts read
    // about 2·S̄, which the drain keeps (`DRAIN_SERVICE_CAP`).
    let drain_s = long_s.map_or(service_time, |l| service_time.min(DRAIN_SERVICE_CAP * l));
    let drain = waiting * drain_s / (drain_s + budget);
    let fresh =
        waiting * drain_s / (drain_s + startup::fresh_budget(budget, s.pod_startup, target));
    let flow = offered_load(
        s,
        rate,
        service_time,
        long_s.zip(started),
        lower_bound,
        in_flight,
    );
    QueueTerms {
        tail_scale,
        buffer_wait,
        rate,
        rate_source,
        counted: if rate > 0.0 {
            live.rate_window.filter(|w| w.is_finite()).map(|w| rate * w)
        } else {
            Some(0.0)
        },
        flow,
        lower_bound,
        in_flight,
        in_flight_source,
        drain,
        fresh,
        drain_source: service_source,
        present: waiting > 0.0 || in_flight > 0.0 || reserved > 0.0,
        tasks: waiting + in_flight,
        wait: live
            .wait
            .filter(|e| !e.is_lower_bound())
            .and_then(|e| e.usable())
            .map(|w| w + live.sampled_ago),
        held: match running {
            Some(_) => held > 0.0,
            None => reserved > 0.0,
        },
        counts_running: running.is_some(),
    }
}

/// The slots a queue's arrivals keep busy (`a_q`), from λ (`rate`), the window's S and, when
/// the sampler has them, the sizing inputs (S̄, the start rate r).
fn offered_load(
    s: &LatencySettings,
    rate: f64,
    service_time: f64,
    sizing: Option<(f64, f64)>,
    lower_bound: bool,
    in_flight: f64,
) -> f64 {
    // With a lower-bound λ the queue's own in-flight work is its evidence of flow: its flow
    // is never below it (λ·S alone, under-counted, never takes the queue below what runs).
    match (lower_bound, sizing) {
        (true, _) => (rate * service_time).max(in_flight),
        // Occupancy: the slots busy over the window (S·r, Little's law) plus what arrivals
        // beyond the starts add, at the long-window S: λ·S by conservation, without the
        // product of two short-window estimates. One pool of slots takes the smaller of that
        // and λ·S̄: slots long tasks hold beyond their share (S > S̄) are kept by `in_flight`,
        // and an arrival takes whichever slot frees first, so the headroom is sized on the
        // mean load. A pod's private buffer waits behind that pod's own running tasks: there
        // the occupancy is load its buffer sees. Never below λ × the smaller S, so that
        // arrivals always ask for capacity (a drain's starts can outrun them).
        (false, Some((long_s, r))) => {
            let occupancy = service_time * r + (rate - r) * long_s;
            let load = if s.prefetch.private_buffers() {
                occupancy
            } else {
                occupancy.min(rate * long_s)
            };
            load.max(rate * service_time.min(long_s))
        }
        _ => rate * service_time,
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

/// The tail's time scale θ of the queues `all`: their own, rate-weighted, each raised under
/// early ack to what its buffer waits imply at the load per worker pod now.
fn tail_scale(
    all: &[QueueTerms],
    live: &[LiveSignals],
    flow: f64,
    rate: f64,
    concurrency: f64,
) -> f64 {
    let pods = startup::live_workers(live);
    let pod_load = pods.filter(|n| *n >= 1.0).map(|n| flow / n);
    let theta = |t: &QueueTerms| match t.buffer_wait {
        Some(w) => t
            .tail_scale
            .max(buffers::tail_from_buffer_waits(w, concurrency, pod_load)),
        None => t.tail_scale,
    };
    if rate > 0.0 {
        all.iter().map(|t| t.rate * theta(t)).sum::<f64>() / rate
    } else {
        all.iter().map(theta).fold(0.0, f64::max)
    }
}

/// Whether a task waits for a slot: listed beyond `activationListLength`, stale, or held
/// in a pod. Under `acks_late` a task waits in a pod's buffer only while all of that pod's
/// slots run tasks (the running ones count against its prefetch limit, and a due ETA task
/// starts in a free slot): unless a pod's worth of slots (`pod_full`) run, a reserved task
/// beyond the running count has just started and the heartbeat has not said so yet.
fn task_waits(
    s: &LatencySettings,
    queues: &[QueueSignals],
    all: &[QueueTerms],
    pod_full: bool,
) -> bool {
    let may_hold = !s.prefetch.acks_late || pod_full;
    let backlog: u64 = queues.iter().map(|q| q.backlog).sum();
    backlog as f64 > s.activation_list_length
        || queues.iter().any(|q| q.stale > 0)
        || all
            .iter()
            .any(|t| t.held && (may_hold || !t.counts_running))
}

/// Whether the tasks listed now may wait at zero for their start (`podStartup`, `cold.rs`).
fn start_can_wait(
    s: &LatencySettings,
    (queues, all, live): (&[QueueSignals], &[QueueTerms], &[LiveSignals]),
    target: f64,
    concurrency: f64,
) -> bool {
    let at_zero: Vec<cold::Queue> = queues
        .iter()
        .zip(all)
        .map(|(q, t)| cold::Queue {
            listed: q.backlog,
            oldest: t.wait,
            busy: t.in_flight > 0.0 || t.held || q.stale > 0,
        })
        .collect();
    let tick = cold::longest_tick(live.iter().map(|l| l.tick));
    cold::start_can_wait((s.pod_startup, target, tick), concurrency, &at_zero)
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
    let rate = sum(|t| t.rate);
    let present = all.iter().any(|t| t.present);
    // Quiet: under one arrival per target, or a rate that rests on at most three arrivals
    // counted in the sampler's window (one arrival in a 30 s window reads λ·T = 2 for
    // T = 60 s), unless λ is a lower bound (then the quiet is not evidence). Such few
    // arrivals are no flow even while a handful of tasks (at most three) are present:
    // `in_flight` and `drain` size them. More tasks present than that on so few arrivals
    // outlast the window (or queue), and the flow sizes them. Sparse: quiet with nothing in
    // the system; a cold start serves the next task, so no pod is kept for it.
    let counted: Option<f64> = all.iter().map(|t| t.counted).sum();
    let lower_bound = all.iter().any(|t| t.lower_bound);
    let tasks = sum(|t| t.tasks);
    let few = counted.is_some_and(|n| n < LONE_ARRIVALS) && tasks < LONE_ARRIVALS && !lower_bound;
    let quiet = (rate * target < 1.0 && !lower_bound) || few;
    let sparse = (!present && quiet) || few;
    let flow = if sparse { 0.0 } else { sum(|t| t.flow) };
    let up = startup::slots_up(in_flight, live, concurrency);
    let plain_drain = sum(|t| t.drain);
    let drain = startup::drain(plain_drain, sum(|t| t.fresh), up);
    let tail = tail_scale(&all, live, flow, rate, concurrency);
    let min_headroom = if s.min_headroom.is_finite() {
        s.min_headroom.max(0.0)
    } else {
        0.0
    };
    let headroom_floor = if present || flow > 0.0 {
        flow + min_headroom
    } else {
        0.0
    };
    let model = buffers::steady(&s.prefetch, flow, tail, target, concurrency);
    let steady = model.max(headroom_floor);
    let metric_value = in_flight.max(steady).max(drain);
    let metric_value = if metric_value.is_finite() {
        metric_value
    } else {
        f64::MAX
    };
    // Active while a task waits for a slot (listed, stale, or held beyond what runs) or a
    // steady flow is counted. Tasks that only run, under one arrival per target, keep their
    // slots through the metric but not the trigger active: KEDA's cooldown then starts when
    // the last task left the list, as with its redis scaler, and a scale to zero lets them
    // finish (warm shutdown within the termination grace), like any scale-down.
    // A few tasks on an idle queue may wait at zero while they still start in time.
    let waits = task_waits(s, queues, &all, in_flight >= concurrency)
        && !start_can_wait(s, (queues, &all, live), target, concurrency);
    let active = waits || (flow > 0.0 && !quiet);

    let parts = Parts {
        in_flight,
        flow,
        steady,
        headroom_configured: headroom_floor > model,
        plain_drain,
        metric_value,
    };
    Decision {
        metric_value,
        target: concurrency,
        active,
        breakdown: breakdown(&all, &parts),
    }
}

/// What the metric is made of, in the order the breakdown adds it up.
struct Parts {
    in_flight: f64,
    flow: f64,
    steady: f64,
    /// Whether `steady` is the configured headroom's floor rather than the model's slots.
    headroom_configured: bool,
    /// The drain without the start-up premium.
    plain_drain: f64,
    metric_value: f64,
}

/// The breakdown: each component is what it adds beyond the ones before it, the drain's
/// start-up premium last, so that the components sum to the metric. The running levels are
/// taken between 0 (a NaN too) and the metric (an infinite part is answered as `f64::MAX`):
/// every component is finite and ≥ 0.
fn breakdown(all: &[QueueTerms], p: &Parts) -> Vec<Component> {
    let pick = |f: fn(&QueueTerms) -> (f64, &'static str)| {
        main_source(&all.iter().map(f).collect::<Vec<_>>())
    };
    let level = |v: f64| if v > 0.0 { v.min(p.metric_value) } else { 0.0 };
    let in_flight = level(p.in_flight);
    let with_flow = in_flight.max(level(p.flow));
    let with_headroom = with_flow.max(level(p.steady));
    let with_drain = with_headroom.max(level(p.plain_drain));
    let part = |component, value, source| Component {
        component,
        value,
        source,
    };
    let headroom_source = if p.headroom_configured {
        "config"
    } else {
        "model"
    };
    vec![
        part(
            "in_flight",
            in_flight,
            pick(|t| (t.in_flight, t.in_flight_source)),
        ),
        part(
            "flow",
            with_flow - in_flight,
            pick(|t| (t.flow, t.rate_source)),
        ),
        part("headroom", with_headroom - with_flow, headroom_source),
        part(
            "drain",
            with_drain - with_headroom,
            pick(|t| (t.drain, t.drain_source)),
        ),
        part("startup", p.metric_value - with_drain, "config"),
    ]
}

pub mod arrivals;
pub mod buffers;
pub mod cold;
pub mod erlang;
pub mod startup;
#[cfg(test)]
mod tests;
