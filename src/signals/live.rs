//! The estimates of one queue as a sampler tick leaves them, and the per-trigger view of
//! them: heartbeats of the workers that consume a queue credited to its rates, running
//! tasks and service time (Little's law over the workers' busy slots), bounded by the
//! workers' capacity. Pure: time is passed in.

pub mod book;
pub mod events;
pub mod keys;
pub mod queue;

use std::collections::HashMap;
use std::sync::Arc;

use crate::celery::Layout;
use crate::signals::estimate::LongService;
use crate::signals::heartbeat::{HeartbeatBook, WorkerSummary, MAX_STARTS_PER_SLOT};
use crate::signals::{Estimate, LiveSignals, SignalMode, Source};
use crate::spec::WatchSet;

// Short names of the sources the sampler's estimates use (see `signals/source.rs`).
pub(crate) const KEYSPACE: Source = Source::Keyspace;
pub(crate) const CONSERVATION: Source = Source::Conservation;
pub(crate) const LIST_POSITION: Source = Source::ListPosition;
pub(crate) const TAIL_TAG: Source = Source::TailTag;
pub(crate) const RESIDENCE: Source = Source::UnackedResidence;
pub(crate) const OCCUPANCY: Source = Source::UnackedOccupancy;
pub(crate) const HEARTBEAT: Source = Source::Heartbeat;

/// The window of the service time latency mode sizes its steady flow on (seconds, at least
/// the signal window): long enough to hold many of a mix's long tasks, so that one of them
/// starting or ending moves it little (`docs/scaling.md`).
pub(crate) const SIZING_SERVICE_WINDOW: f64 = 600.0;

/// A queue's service time over [`SIZING_SERVICE_WINDOW`] and the source of the service
/// times it was fed: a queue idle for longer than the window keeps its last S̄ with the
/// source it was measured from.
#[derive(Clone, Debug)]
pub(crate) struct SizingService {
    long: LongService,
    source: Option<Source>,
}

impl SizingService {
    /// Over [`SIZING_SERVICE_WINDOW`], or the signal `window` when that is longer.
    pub(crate) fn new(window: f64) -> Self {
        Self {
            long: LongService::new(SIZING_SERVICE_WINDOW.max(window)),
            source: None,
        }
    }
}

/// Feeds a tick's final service time (heartbeats credited) and the start rate it was
/// measured against (the workers' starts with heartbeats, else the queue's dequeues) to the
/// queue's long-window one, and sets `est.service_time_sizing` from it.
pub(crate) fn size_service(sizing: &mut SizingService, now: f64, est: &mut QueueEstimates) {
    est.service_rate = est.service_rate.or(est.dequeue_rate_steady);
    let measured = est.service_time.filter(|e| e.usable().is_some());
    sizing
        .long
        .observe(now, measured.map(|e| e.value), est.service_rate);
    sizing.source = measured.map(|e| e.source).or(sizing.source);
    est.service_time_sizing = (sizing.long.value())
        .zip(sizing.source)
        .map(|(v, s)| Estimate::new(v, s));
}

/// One queue's estimates in a snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct QueueEstimates {
    pub arrival_rate: Option<Estimate>,
    /// The arrival rate over the window without the burst fast path (the policy's λ).
    pub arrival_rate_steady: Option<Estimate>,
    pub dequeue_rate: Option<Estimate>,
    /// The dequeue rate over the window without the burst fast path (pairs with
    /// `arrival_rate_steady` when heartbeats credit starts).
    pub dequeue_rate_steady: Option<f64>,
    /// Seconds the rates are read over (the sampler's signal window).
    pub rate_window: Option<f64>,
    /// Seconds since an arrival was last counted (where heartbeats credit the rate, the
    /// smaller of that and the workers' quiet).
    pub arrivals_quiet_for: Option<f64>,
    /// The longest gap between counted arrivals earlier in the window (where heartbeats
    /// credit the rate, at least the workers' longest gap between starts).
    pub arrivals_longest_gap: Option<f64>,
    pub wait: Option<Estimate>,
    pub service_time: Option<Estimate>,
    /// The service time's 95th percentile (residence in `unacked`).
    pub service_time_p95: Option<Estimate>,
    /// The start rate `service_time` was measured against (its Little's law), tasks/s.
    pub service_rate: Option<f64>,
    /// The service time over [`SIZING_SERVICE_WINDOW`], weighted by starts.
    pub service_time_sizing: Option<Estimate>,
    /// Arrivals and dequeues counted since the queue was first watched.
    pub arrived: u64,
    pub dequeued: u64,
    /// Whether this tick counted in exact mode.
    pub exact: bool,
    /// Seconds since the queue's previous tick.
    pub tick: Option<f64>,
}

/// The live part of one snapshot.
#[derive(Debug, Default)]
pub(crate) struct LiveData {
    pub queues: HashMap<(Layout, String), QueueEstimates>,
    pub heartbeats: HashMap<Vec<u8>, Arc<HeartbeatBook>>,
    /// Queues whose arrival rate just became (or still is, a warning period later) a lower
    /// bound: to be warned about.
    pub unobservable: Vec<(Layout, String)>,
}

/// A queue whose rates are lower bounds is warned about at most this often (seconds).
pub(crate) const UNOBSERVABLE_WARN_PERIOD: f64 = 600.0;

/// Queues whose workers are known: watch sets of exactly that queue name them with
/// `workerHostnames`, all with the same pattern. Two different patterns on one queue are a
/// conflict and name no workers: one trigger (another tenant's, say `*`) must not change
/// which heartbeats make the rates every other trigger of the queue sees.
pub(crate) fn single_queue_workers(watches: &[WatchSet]) -> HashMap<(Layout, String), &str> {
    let mut named: HashMap<(Layout, String), Option<&str>> = HashMap::new();
    for w in watches {
        if let ([q], Some(pattern)) = (w.queues.as_slice(), w.worker_hostnames.as_deref()) {
            named
                .entry((w.layout.clone(), q.clone()))
                .and_modify(|p| {
                    if *p != Some(pattern) {
                        *p = None;
                    }
                })
                .or_insert(Some(pattern));
        }
    }
    named
        .into_iter()
        .filter_map(|(id, p)| Some((id, p?)))
        .collect()
}

/// Folds the heartbeats of the workers that consume only this queue into its estimates:
/// their start rate is the dequeue rate when conservation under-counts it (it sees only
/// entries alive at a tick, so a worker that keeps up with short tasks shows neither backlog
/// nor new tags; counted rates, keyspace or `LPOS`, are kept), arrivals grow by the same
/// amount (conservation), and Little's law
/// over their busy slots gives the service time under any acknowledgement mode.
/// `listed_steady` is the list's smoothed dequeue rate to compare the workers' with: the
/// highest it read since their earliest latest beat (`WorkerSummary::rates_as_of`), as their
/// rates are as of their beats, up to a beat interval old, and a falling flow's rate read
/// now would leave starts it counted looking unseen.
pub(crate) fn credit_heartbeats(
    est: &mut QueueEstimates,
    workers: &WorkerSummary,
    listed_steady: Option<f64>,
) {
    // Heartbeats see every task start: the counted rates are no longer the only evidence.
    if workers.start_rate.is_some() {
        let mut cleared = false;
        for rate in [
            &mut est.arrival_rate,
            &mut est.arrival_rate_steady,
            &mut est.dequeue_rate,
        ] {
            if let Some(r) = rate.as_mut().filter(|r| r.is_lower_bound()) {
                r.mode = SignalMode::Estimated;
                cleared = true;
            }
        }
        // The list's quiet said nothing of traffic it mostly could not see (the policy
        // ignores it for a lower bound): with the mark gone, the workers' starts must be
        // quiet too.
        if cleared {
            take_workers_quiet(est, workers);
        }
    }
    let service = workers.service_time();
    let uncounted = est.dequeue_rate.is_none_or(|e| e.source == CONSERVATION);
    if let (true, Some(rate)) = (uncounted, workers.start_rate) {
        // The service time the policy will pair with the credited rate: the workers' own,
        // else the queue's; starts while no beat ever saw a busy slot mean tasks shorter
        // than the beats can see, so the shortest service time stands for theirs (never the
        // `taskDuration` fallback: its product with a forged rate would have no bound).
        let paired = service.or_else(|| est.service_time.and_then(|e| e.usable()));
        let s = paired.unwrap_or(1.0 / MAX_STARTS_PER_SLOT);
        // What the workers started cannot have kept more slots busy than they have: a
        // forged heartbeat moves λ·S only within the workers' capacity.
        let starts = workers.bounded_rate(rate, s);
        let dequeued = est.dequeue_rate.and_then(|e| e.usable()).unwrap_or(0.0);
        // The steady λ takes the smoothed starts: summing each worker's burst fast path
        // (a beat with two starts on a worker that averages one per minute) biases the
        // start rate upwards, and the policy would hold that as pods. Each worker's starts
        // count over the whole window, as the list's dequeues do: a pod up for 6 s of a
        // 30 s window that started 12 tasks adds 0.4/s, not 2/s (fresh pods after a burst
        // credited a flow the list never missed).
        let steady_starts = workers.bounded_rate(workers.window_start_rate, s);
        let dequeued_steady = listed_steady
            .filter(|_| est.dequeue_rate.is_some())
            .unwrap_or(0.0);
        if steady_starts > dequeued_steady {
            let arrived = est
                .arrival_rate_steady
                .and_then(|e| e.usable())
                .unwrap_or(0.0);
            est.arrival_rate_steady = Some(Estimate::new(
                arrived + (steady_starts - dequeued_steady),
                HEARTBEAT,
            ));
            take_workers_quiet(est, workers);
        }
        if starts > dequeued {
            let arrived = est.arrival_rate.and_then(|e| e.usable()).unwrap_or(0.0);
            est.dequeue_rate = Some(Estimate::new(starts, HEARTBEAT));
            est.arrival_rate = Some(Estimate::new(arrived + (starts - dequeued), HEARTBEAT));
            if paired.is_none() {
                est.service_time = Some(Estimate::new(s, HEARTBEAT));
            }
        }
    }
    if let Some(s) = service {
        est.service_time = Some(Estimate::new(s, HEARTBEAT));
        est.service_rate = Some(workers.busy_start_rate);
    }
}

/// Arrivals now include starts the list never showed: the flow is quiet only as long as
/// both the list and the workers' starts are, and a quiet is news only beyond the longest
/// gap either left before (a producer's batches show as gaps between the workers' starts).
fn take_workers_quiet(est: &mut QueueEstimates, workers: &WorkerSummary) {
    est.arrivals_quiet_for = est
        .arrivals_quiet_for
        .map(|q| q.min(workers.starts_quiet_for));
    est.arrivals_longest_gap = Some(
        est.arrivals_longest_gap
            .unwrap_or(0.0)
            .max(workers.starts_longest_gap),
    );
}

impl QueueEstimates {
    pub(crate) fn signals(&self, name: &str) -> LiveSignals {
        LiveSignals {
            name: name.to_string(),
            running: None,
            arrival_rate: self.arrival_rate,
            arrival_rate_steady: self.arrival_rate_steady,
            rate_window: self.rate_window,
            arrivals_quiet_for: self.arrivals_quiet_for,
            arrivals_longest_gap: self.arrivals_longest_gap,
            dequeue_rate: self.dequeue_rate,
            service_time: self.service_time,
            service_time_p95: self.service_time_p95,
            service_time_sizing: self.service_time_sizing,
            service_rate: self.service_rate,
            wait: self.wait,
            workers: None,
            sampled_ago: 0.0,
            tick: self.tick,
        }
    }
}

/// The per-queue live signals of a watch set for one trigger: the sampler's estimates plus,
/// when `worker_hostnames` names workers with live heartbeats, running tasks (split over the
/// queues by dequeue rate), the number of those workers and, for queues the sampler could not credit the workers to (a
/// trigger over several queues), the workers' pooled Little's-law service time. A trigger
/// over one queue has its start rate and service time folded in by the sampler already.
pub(crate) fn live_signals(
    now: f64,
    sampled: &[LiveSignals],
    heartbeats: Option<&HeartbeatBook>,
    worker_hostnames: Option<&str>,
) -> Vec<LiveSignals> {
    let mut out = sampled.to_vec();
    let summary = match (heartbeats, worker_hostnames) {
        (Some(book), Some(pattern)) => book.summary(now, pattern),
        _ => None,
    };
    let Some(summary) = summary else {
        return out;
    };
    let rates: Vec<f64> = out
        .iter()
        .map(|l| l.dequeue_rate.and_then(|e| e.usable()).unwrap_or(0.0))
        .collect();
    let total: f64 = rates.iter().sum();
    let n = out.len().max(1) as f64;
    let service = summary.service_time();
    for (l, rate) in out.iter_mut().zip(&rates) {
        let share = if total > 0.0 { rate / total } else { 1.0 / n };
        l.running = Some(Estimate::new(summary.running as f64 * share, HEARTBEAT));
        l.workers = Some(Estimate::new(summary.workers as f64, HEARTBEAT));
        let credited = l.service_time.is_some_and(|e| e.source == HEARTBEAT);
        if let (Some(s), false) = (service, credited) {
            l.service_time = Some(Estimate::new(s, HEARTBEAT));
            // The queue's long-window S and its start rate were of the estimate replaced.
            l.service_time_sizing = None;
            l.service_rate = None;
        }
    }
    bound_heartbeat_flow(&mut out, summary.capacity);
    out
}

/// Scales the heartbeat service times of `live` down so that the slots they imply, Σ λ·S
/// over the queues whose S comes from heartbeats (S or its long-window S̄, the larger),
/// stay within the matching workers' capacity: a worker claiming busy slots while starting
/// next to nothing cannot make the queues look heavier than all the slots the workers may
/// have, now or in the long window latency mode sizes on.
fn bound_heartbeat_flow(live: &mut [LiveSignals], capacity: f64) {
    let rate = |l: &LiveSignals| {
        l.arrival_rate
            .or(l.dequeue_rate)
            .and_then(|e| e.usable())
            .unwrap_or(0.0)
    };
    let flow: f64 = live
        .iter()
        .filter_map(|l| {
            let s = l.service_time.filter(|e| e.source == HEARTBEAT)?.usable()?;
            let long = l
                .service_time_sizing
                .and_then(|e| e.usable())
                .unwrap_or(0.0);
            Some(rate(l) * s.max(long))
        })
        .sum();
    if flow.is_nan() || flow <= capacity {
        return;
    }
    let factor = capacity / flow;
    for l in live.iter_mut() {
        if let Some(e) = l.service_time.as_mut().filter(|e| e.source == HEARTBEAT) {
            e.value *= factor;
            if let Some(long) = l.service_time_sizing.as_mut() {
                long.value *= factor;
            }
        }
    }
}
