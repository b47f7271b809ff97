//! Per-queue live state of one broker's sampler: arrival and dequeue counting, queue wait and
//! `unacked` residence, in *exact* mode (keyspace notifications heard by `events`) or
//! *estimated* mode, heartbeats credited to queues whose workers are named, and the
//! per-trigger view.
//!
//! Exact mode holds for a queue in a tick when the server has list keyspace notifications on
//! (`CONFIG GET notify-keyspace-events` has `K` and `l` or `A`) and every key of the queue has
//! been subscribed without interruption since the previous tick. Then arrivals are `lpush`
//! events, dequeues are `rpop` events (`rpush` restores count as neither), and the wait is the
//! oldest arrival in the key's [`FifoClock`], reconciled against `LLEN` when a mismatch
//! persists for two ticks.
//!
//! Otherwise (estimated mode) a queue whose keys all kept a backlog (or stayed empty: their
//! traffic is then bounded below by new `unacked` tags) is still *counted*: the
//! head message read at the previous tick (`LINDEX 0`, the newest, unique by its delivery
//! tag) is found again with `LPOS`; its index is the number of messages pushed since, and
//! previous `LLEN` + pushed − `LLEN` is the number taken (source `list-position`). When a list
//! drained past its anchor or was empty, dequeues are the new `unacked` tags of the queue and
//! arrivals are Δbacklog + dequeues (never negative: a dip is carried as a debt; source
//! `conservation`). The wait is the [`TailClock`] of the tail message's delivery tag
//! (`LINDEX -1`).
//!
//! A watch set of one queue with `workerHostnames` says which workers consume that queue:
//! their heartbeats' start rate replaces an under-counted dequeue rate (and raises arrivals
//! by as much), and Little's law over their busy slots gives the service time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::celery::Layout;
use crate::signals::estimate::{Occupancy, RateEstimator, Residence, TailClock};
use crate::signals::visibility::Visibility;

use super::events::{worker_pattern, Desired, EventState};
use super::tracker::Tracker;
use crate::celery::parse_delivery_tag;
pub(crate) use crate::signals::live::queue::{KeyLive, Keyspace, QueueLive, TickExtras};
pub(crate) use crate::signals::live::{
    credit_heartbeats, single_queue_workers, LiveData, UNOBSERVABLE_WARN_PERIOD,
};
use crate::spec::WatchSet;

impl Keyspace {
    /// Reads the reply to `CONFIG GET notify-keyspace-events`.
    pub(crate) fn from_reply(v: &redis::Value) -> Self {
        let flags = match v {
            redis::Value::Array(items) => items.get(1),
            redis::Value::Map(pairs) => pairs.first().map(|(_, v)| v),
            redis::Value::ServerError(_) => return Keyspace::Denied,
            _ => None,
        };
        let text = match flags {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => return Keyspace::Disabled,
        };
        if flags_enable_lists(&text) {
            Keyspace::Enabled
        } else {
            Keyspace::Disabled
        }
    }
}

/// `K` (keyspace channel) and `l` (list commands) or `A` (all classes, `l` included).
pub(crate) fn flags_enable_lists(flags: &str) -> bool {
    flags.contains('K') && (flags.contains('l') || flags.contains('A'))
}

/// The sampler's request for the next tick's extra reads.
#[derive(Default)]
pub(crate) struct Plan {
    /// Keys whose head and tail tags to read: keys of queues not in exact mode that were not
    /// empty at the previous tick (an empty list has no ends; a list that just filled is read
    /// from the next tick on, so its wait may be short by one tick).
    pub tail_keys: Vec<Vec<u8>>,
    /// Keys (among `tail_keys`) and the head message read at the previous tick, to find
    /// with `LPOS`.
    pub anchors: HashMap<Vec<u8>, Vec<u8>>,
}

impl Plan {
    fn anchor(&self, key: &[u8]) -> Option<&[u8]> {
        self.anchors.get(key).map(Vec::as_slice)
    }
}

/// Largest head message kept as an anchor (it is sent back with `LPOS` on the next tick).
pub(crate) const MAX_ANCHOR: usize = 64 * 1024;
/// Most messages `LPOS` compares before giving up (bounds its cost on the server to about a
/// millisecond, see docs/benchmarks.md: a key with more arrivals per tick falls back to
/// conservation for that tick).
pub(crate) const LPOS_MAXLEN: u64 = 20_000;

/// All live state of one broker.
pub(crate) struct LiveBook {
    window: f64,
    pub keyspace: Keyspace,
    /// Whether the server answers `LPOS` (until it refuses once).
    pub lpos: bool,
    queues: HashMap<(Layout, String), QueueLive>,
    /// When each queue was last warned about as unobservable (epoch seconds).
    warned: HashMap<(Layout, String), f64>,
}

impl LiveBook {
    pub(crate) fn new(window: f64) -> Self {
        Self {
            window,
            keyspace: Keyspace::Unknown,
            lpos: true,
            queues: HashMap::new(),
            warned: HashMap::new(),
        }
    }

    /// Which extra reads the next tick needs.
    pub(crate) fn plan(&self, watches: &[WatchSet]) -> Plan {
        let mut tail_keys = Vec::new();
        let mut anchors = HashMap::new();
        let mut seen = HashSet::new();
        for w in watches {
            for q in &w.queues {
                if !seen.insert((&w.layout, q)) {
                    continue;
                }
                match self.queues.get(&(w.layout.clone(), q.clone())) {
                    None => tail_keys.extend(w.layout.queue_keys(q)),
                    Some(ql) if !ql.exact => {
                        for k in ql.keys.iter().filter(|k| k.llen > 0) {
                            tail_keys.push(k.key.clone());
                            if let (Some(a), true) = (&k.anchor, self.lpos) {
                                anchors.insert(k.key.clone(), a.clone());
                            }
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        Plan { tail_keys, anchors }
    }

    /// What the pub/sub task should listen to.
    pub(crate) fn desired(&self, watches: &[WatchSet], db: i64) -> Desired {
        let mut d = Desired::default();
        for w in watches {
            if self.keyspace == Keyspace::Enabled {
                for q in &w.queues {
                    d.keys.extend(w.layout.queue_keys(q));
                }
            }
            d.patterns.insert(
                worker_pattern(&w.layout.prefix, db),
                w.layout.prefix.clone(),
            );
        }
        d
    }

    /// Folds one good tick into the live state and returns the snapshot's live data.
    /// `backlog(layout, queue)` and `in_flight(layout, queue)` are the tick's readings.
    pub(crate) fn update(
        &mut self,
        now: f64,
        watches: &[WatchSet],
        extras: &mut TickExtras,
        events: &mut EventState,
        backlog: impl Fn(&Layout, &str) -> u64,
        in_flight: impl Fn(&WatchSet, &str) -> u64,
    ) -> LiveData {
        let window = self.window;
        let keyspace_on = self.keyspace == Keyspace::Enabled && events.up;
        if extras.lpos_refused {
            self.lpos = false;
        }
        let mut out = LiveData::default();
        for book in events.heartbeats.values_mut() {
            book.prune(now);
        }
        let workers = single_queue_workers(watches);
        let mut alive: HashSet<(Layout, String)> = HashSet::new();
        for w in watches {
            for q in &w.queues {
                let id = (w.layout.clone(), q.clone());
                if !alive.insert(id.clone()) {
                    continue;
                }
                let ql = self.queues.entry(id.clone()).or_insert_with(|| QueueLive {
                    keys: w
                        .layout
                        .queue_keys(q)
                        .into_iter()
                        .map(|key| KeyLive {
                            key,
                            tail: TailClock::default(),
                            seen: None,
                            mismatch: 0,
                            llen: 0,
                            filled_at: None,
                            anchor: None,
                        })
                        .collect(),
                    arrivals: RateEstimator::new(window),
                    dequeues: RateEstimator::new(window),
                    arrived: 0,
                    dequeued: 0,
                    debt: 0,
                    surplus: 0,
                    prev: None,
                    residence: Residence::new(window),
                    occupancy: Occupancy::new(window),
                    visibility: Visibility::new(window),
                    exact: false,
                });
                let b = backlog(&w.layout, q);
                let churn = extras.churn.remove(&id).unwrap_or_default();
                let flying = in_flight(w, q);
                let idle = b == 0 && flying == 0;
                let mut est = ql.tick(now, b, flying, churn, extras, events, keyspace_on, idle);
                let summary = workers.get(&id).and_then(|pattern| {
                    events
                        .heartbeats
                        .get(&w.layout.prefix)
                        .and_then(|book| book.summary(now, pattern))
                });
                if let Some(summary) = summary {
                    credit_heartbeats(&mut est, &summary);
                }
                if est.arrival_rate.is_some_and(|e| e.is_lower_bound()) {
                    let due = self
                        .warned
                        .get(&id)
                        .is_none_or(|t| now - t >= UNOBSERVABLE_WARN_PERIOD || now < *t);
                    if due {
                        self.warned.insert(id.clone(), now);
                        out.unobservable.push(id.clone());
                    }
                }
                out.queues.insert(id, est);
            }
        }
        self.queues.retain(|id, _| alive.contains(id));
        self.warned.retain(|id, _| alive.contains(id));
        for (prefix, book) in &events.heartbeats {
            // The copy RPCs read: its hostnames matched against the watched patterns once.
            let mut copy = book.clone();
            copy.memoise(
                watches
                    .iter()
                    .filter(|w| w.layout.prefix == *prefix)
                    .filter_map(|w| w.worker_hostnames.as_deref()),
            );
            out.heartbeats.insert(prefix.clone(), Arc::new(copy));
        }
        out
    }
}

/// Appends the tick's extra reads to the sampler's first round trip: `CONFIG GET` of the
/// notification flags when due, and per key in estimated mode `LPOS` of its anchor (when it
/// has one) right before `LINDEX 0` / `LINDEX -1`, so that no other client's push is likely
/// to land between the old anchor's position and the new anchor (Redis runs a pipeline read
/// in one go; a push in between would be missed, never counted twice).
pub(crate) fn append_reads(pipe: &mut redis::Pipeline, plan: &Plan, check_keyspace: bool) {
    if check_keyspace {
        pipe.cmd("CONFIG").arg("GET").arg("notify-keyspace-events");
    }
    for key in &plan.tail_keys {
        if let Some(anchor) = plan.anchor(key) {
            pipe.cmd("LPOS")
                .arg(key)
                .arg(anchor)
                .arg("MAXLEN")
                .arg(LPOS_MAXLEN);
        }
        pipe.cmd("LINDEX").arg(key).arg(0);
        pipe.cmd("LINDEX").arg(key).arg(-1);
    }
}

/// Whether an error reply to `LPOS` means the server will never answer it: an unknown
/// command (Redis < 6.0.6), a syntax error (no `MAXLEN`) or an ACL refusal.
fn refuses_lpos(e: &redis::ServerError) -> bool {
    let detail = e.details().unwrap_or_default().to_ascii_lowercase();
    e.code() == "NOPERM" || detail.contains("unknown command") || detail.contains("syntax")
}

/// Reads the answers to [`append_reads`] (in the same order).
pub(crate) fn read_answers(
    extras: &mut TickExtras,
    plan: &Plan,
    check_keyspace: bool,
    answers: &[redis::Value],
) {
    let mut it = answers.iter();
    if check_keyspace {
        extras.keyspace = it.next().map(Keyspace::from_reply);
    }
    let tag = |v: Option<&redis::Value>| match v {
        Some(redis::Value::BulkString(b)) => parse_delivery_tag(b),
        _ => None,
    };
    for key in &plan.tail_keys {
        if plan.anchor(key).is_some() {
            let position = match it.next() {
                Some(redis::Value::Int(i)) => u64::try_from(*i).ok(),
                Some(redis::Value::ServerError(e)) => {
                    extras.lpos_refused |= refuses_lpos(e);
                    None
                }
                _ => None,
            };
            extras.positions.insert(key.clone(), position);
        }
        let first = it.next();
        let head = tag(first);
        // Only a kombu message is a safe anchor: its delivery tag makes it unique in the list.
        if let (Some(redis::Value::BulkString(b)), Some(_)) = (first, &head) {
            if b.len() <= MAX_ANCHOR {
                extras.heads.insert(key.clone(), b.clone());
            }
        }
        let tail = tag(it.next());
        extras.ends.insert(key.clone(), (head, tail));
    }
}

/// Attributes the `unacked` churn of one prefix's tracker to the watched queues.
pub(crate) fn attribute_churn(
    extras: &mut TickExtras,
    prefix: &[u8],
    tracker: &mut Tracker,
    watches: &[WatchSet],
) {
    let churn = tracker.take_churn();
    if churn.new.is_empty() && churn.left.is_empty() {
        return;
    }
    let mut layouts: Vec<&Layout> = Vec::new();
    for w in watches.iter().filter(|w| w.layout.prefix == prefix) {
        if !layouts.contains(&&w.layout) {
            layouts.push(&w.layout);
        }
    }
    for layout in layouts {
        let watched: HashSet<&str> = watches
            .iter()
            .filter(|w| w.layout == *layout)
            .flat_map(|w| w.queues.iter().map(String::as_str))
            .collect();
        let sep = layout.separator.as_slice();
        for (score, entry) in &churn.new {
            for q in tracker.queues_of(sep, entry) {
                if watched.contains(q.as_str()) {
                    let c = extras.churn.entry((layout.clone(), q)).or_default();
                    c.new += 1;
                    if entry.eta.is_none() {
                        c.new_scores.push(*score);
                    }
                }
            }
        }
        for (score, entry) in churn.left.iter().filter(|(_, e)| e.eta.is_none()) {
            for q in tracker.queues_of(sep, entry) {
                if watched.contains(q.as_str()) {
                    let c = extras.churn.entry((layout.clone(), q)).or_default();
                    c.left.push(*score);
                }
            }
        }
    }
}

/// Warns about queues whose rates became lower bounds (at most once per queue per
/// [`UNOBSERVABLE_WARN_PERIOD`]); the gauges themselves are set by `telemetry::queues::export_live`.
pub(crate) fn warn_unobservable(broker: &str, data: &LiveData) {
    for (layout, q) in &data.unobservable {
        let queue = format!("{}{q}", String::from_utf8_lossy(&layout.prefix));
        tracing::warn!(
            broker,
            queue = %queue,
            "arrival rate is a lower bound: the queue is kept empty between samples and the broker has no keyspace notifications, so most tasks leave no trace in Redis; enable `notify-keyspace-events Kl` on the broker, or set `workerHostnames` on a trigger of this queue alone"
        );
    }
}

#[cfg(test)]
mod tests;
