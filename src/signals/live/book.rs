//! All live state of one broker and its tick: which extra reads the next tick needs (the
//! [`Plan`]), and [`LiveBook::update`], which folds one tick's observations (a
//! [`TickExtras`], the readings of backlog and in-flight, and what the pub/sub connection
//! heard) into per-queue estimates, credits heartbeats of named workers, and says which
//! queues to warn about. Pure: time is passed in; `broker` reads Redis and calls it, and
//! `simulate` builds the same observations from its model of the broker.
//!
//! Exact mode holds for a queue in a tick when the server has list keyspace notifications on
//! (`CONFIG GET notify-keyspace-events` has `K` and `l` or `A`) and every key of the queue has
//! been subscribed without interruption since the previous tick. Then arrivals are `lpush`
//! events, dequeues are `rpop` events (`rpush` restores count as neither), and the wait is the
//! oldest arrival in the key's `FifoClock`, reconciled against `LLEN` when a mismatch
//! persists for two ticks.
//!
//! Otherwise (estimated mode) a queue whose keys all kept a backlog (or stayed empty: their
//! traffic is then bounded below by new `unacked` tags) is still *counted*: the
//! head message read at the previous tick (`LINDEX 0`, the newest, unique by its delivery
//! tag) is found again with `LPOS`; its index is the number of messages pushed since, and
//! previous `LLEN` + pushed − `LLEN` is the number taken (source `list-position`). When a list
//! drained past its anchor or was empty, dequeues are the new `unacked` tags of the queue and
//! arrivals are Δbacklog + dequeues (never negative: a dip is carried as a debt; source
//! `conservation`). The wait is the `TailClock` of the tail message's delivery tag
//! (`LINDEX -1`).
//!
//! A watch set of one queue with `workerHostnames` says which workers consume that queue:
//! their heartbeats' start rate replaces an under-counted dequeue rate (and raises arrivals
//! by as much), and Little's law over their busy slots gives the service time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::events::EventState;
use super::queue::{Keyspace, QueueLive, QueueTick, TickExtras};
use super::{
    credit_heartbeats, single_queue_workers, size_service, LiveData, UNOBSERVABLE_WARN_PERIOD,
};
use crate::celery::Layout;
use crate::spec::WatchSet;

/// Most messages `LPOS` compares before giving up (bounds its cost on the server to about a
/// millisecond, see docs/benchmarks.md: a key with more arrivals per tick falls back to
/// conservation for that tick).
pub(crate) const LPOS_MAXLEN: u64 = 20_000;

/// The sampler's request for the next tick's extra reads.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Keys whose head and tail tags to read: keys of queues not in exact mode that were not
    /// empty at the previous tick (an empty list has no ends; a list that just filled is read
    /// from the next tick on, and dated until then from the mid-point of the two ticks).
    pub tail_keys: Vec<Vec<u8>>,
    /// Keys (among `tail_keys`) and the head message read at the previous tick, to find
    /// with `LPOS`.
    pub anchors: HashMap<Vec<u8>, Vec<u8>>,
}

impl Plan {
    /// The anchor to look for in `key`, if any.
    pub(crate) fn anchor(&self, key: &[u8]) -> Option<&[u8]> {
        self.anchors.get(key).map(Vec::as_slice)
    }
}

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
        // A queue watched with several visibility timeouts is restored at the shortest.
        let mut timeouts: HashMap<(&Layout, &str), f64> = HashMap::new();
        for w in watches {
            for q in &w.queues {
                let t = timeouts.entry((&w.layout, q)).or_insert(f64::INFINITY);
                *t = t.min(w.visibility_timeout_secs());
            }
        }
        let mut alive: HashSet<(Layout, String)> = HashSet::new();
        for w in watches {
            for q in &w.queues {
                let id = (w.layout.clone(), q.clone());
                if !alive.insert(id.clone()) {
                    continue;
                }
                let ql = self
                    .queues
                    .entry(id.clone())
                    .or_insert_with(|| QueueLive::new(&w.layout, q, window));
                let b = backlog(&w.layout, q);
                let flying = in_flight(w, q);
                let obs = QueueTick {
                    now,
                    backlog: b,
                    in_flight: flying,
                    churn: extras.churn.remove(&id).unwrap_or_default(),
                    reads: extras,
                    keyspace_on,
                    idle: b == 0 && flying == 0,
                    visibility_timeout: timeouts
                        .get(&(&w.layout, q.as_str()))
                        .copied()
                        .unwrap_or(w.visibility_timeout_secs()),
                };
                let mut est = ql.tick(obs, events);
                let summary = workers.get(&id).and_then(|pattern| {
                    events
                        .heartbeats
                        .get(&w.layout.prefix)
                        .and_then(|book| book.summary(now, pattern))
                });
                if let Some(summary) = summary {
                    let listed = ql.dequeues.highest_smoothed_since(summary.rates_as_of);
                    credit_heartbeats(&mut est, &summary, listed);
                }
                size_service(&mut ql.sizing, now, &mut est);
                if est.arrival_rate.is_some_and(|e| e.is_lower_bound()) && self.warn_due(&id, now) {
                    out.unobservable.push(id.clone());
                }
                out.queues.insert(id, est);
            }
        }
        self.queues.retain(|id, _| alive.contains(id));
        self.warned.retain(|id, _| alive.contains(id));
        out.heartbeats = memoised_heartbeats(events, watches);
        out
    }

    /// Whether queue `id`, whose rates are lower bounds, is due a warning (at most once per
    /// [`UNOBSERVABLE_WARN_PERIOD`]); records it when it is.
    fn warn_due(&mut self, id: &(Layout, String), now: f64) -> bool {
        let due = self
            .warned
            .get(id)
            .is_none_or(|t| now - t >= UNOBSERVABLE_WARN_PERIOD || now < *t);
        if due {
            self.warned.insert(id.clone(), now);
        }
        due
    }
}

/// The copies of the heartbeat books that RPCs read: their hostnames matched against the
/// watched patterns once.
fn memoised_heartbeats(
    events: &EventState,
    watches: &[WatchSet],
) -> HashMap<Vec<u8>, Arc<crate::signals::heartbeat::HeartbeatBook>> {
    let mut out = HashMap::new();
    for (prefix, book) in &events.heartbeats {
        let mut copy = book.clone();
        copy.memoise(
            watches
                .iter()
                .filter(|w| w.layout.prefix == *prefix)
                .filter_map(|w| w.worker_hostnames.as_deref()),
        );
        out.insert(prefix.clone(), Arc::new(copy));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
