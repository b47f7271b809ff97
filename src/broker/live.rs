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
use crate::signals::visibility::{TickSight, Visibility};
use crate::signals::Estimate;

use super::events::{worker_pattern, Desired, EventState};
use super::tracker::Tracker;
use crate::celery::parse_delivery_tag;
pub(crate) use crate::signals::live::{
    credit_heartbeats, single_queue_workers, LiveData, QueueEstimates, CONSERVATION, KEYSPACE,
    LIST_POSITION, OCCUPANCY, RESIDENCE, TAIL_TAG, UNOBSERVABLE_WARN_PERIOD,
};
use crate::spec::WatchSet;

/// Whether the server publishes list keyspace events, as far as the scaler can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keyspace {
    Unknown,
    Enabled,
    Disabled,
    /// `CONFIG GET` is not allowed (ACL, managed Redis): estimated mode.
    Denied,
}

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

/// One list key's live state.
struct KeyLive {
    key: Vec<u8>,
    tail: TailClock,
    /// (generation, lpush, rpop, rpush) heard up to the previous tick.
    seen: Option<(u64, u64, u64, u64)>,
    /// Ticks in a row the FIFO clock disagreed with `LLEN`.
    mismatch: u8,
    /// `LLEN` at the previous tick.
    llen: u64,
    /// When a list found non-empty without its ends read (it was empty the tick before) was
    /// probably filled: mid-way between the two ticks.
    filled_at: Option<f64>,
    /// The head message (newest, `LINDEX 0`) read at the previous tick: next tick, its index
    /// (`LPOS`) is the number of messages pushed since.
    anchor: Option<Vec<u8>>,
}

/// What one tick's reads of a queue's list keys add up to (see `QueueLive::observe_keys`).
struct KeysTick {
    /// Every key heard by keyspace notifications without interruption since last tick.
    continuous: bool,
    /// `lpush` and `rpop` events heard since last tick.
    pushed: u64,
    popped: u64,
    /// The oldest message's age by the FIFO clocks of the keys that hold messages.
    fifo_wait: f64,
    /// The oldest tail message's age by its delivery tag, when any key's ends were read.
    tail_wait: Option<f64>,
    /// Every key found its anchor or stayed empty; at least one found its anchor; one
    /// stayed empty.
    anchored: bool,
    any_anchor: bool,
    idle_keys: bool,
    /// Messages pushed after, and taken from, the anchors.
    pushed_after: u64,
    popped_from: u64,
}

impl KeyLive {
    /// Feeds the key's tail clock with this tick's head and tail delivery tags (`ends`, when
    /// they were read) and returns the tail message's age then; a key empty at either tick
    /// is not read, and forgets its old ends (`prev`: the previous tick's time).
    fn observe_ends(
        &mut self,
        now: f64,
        llen: u64,
        ends: Option<&(Option<String>, Option<String>)>,
        prev: Option<(f64, u64)>,
    ) -> Option<f64> {
        match ends {
            Some((head, tail)) => {
                if let Some(t) = self.filled_at.take() {
                    self.tail.observe(t, head.as_deref(), tail.as_deref());
                }
                self.tail.observe(now, head.as_deref(), tail.as_deref());
                Some(if llen > 0 {
                    self.tail.oldest_age(now)
                } else {
                    0.0
                })
            }
            None if self.llen == 0 || llen == 0 => {
                self.tail.observe(now, None, None);
                self.filled_at = (llen > 0).then(|| prev.map_or(now, |(t, _)| (t + now) / 2.0));
                None
            }
            None => None,
        }
    }
}

/// One queue's live state.
struct QueueLive {
    keys: Vec<KeyLive>,
    arrivals: RateEstimator,
    dequeues: RateEstimator,
    arrived: u64,
    dequeued: u64,
    /// Negative conservation arrivals not yet offset by later ticks.
    debt: u64,
    /// New `unacked` tags minus dequeues counted from anchors, over anchored ticks with a
    /// key empty at both ends (floored at minus one tick's count: tags may show a tick late).
    surplus: i128,
    prev: Option<(f64, u64)>,
    residence: Residence,
    occupancy: Occupancy,
    /// Whether the queue's traffic can be seen from Redis at all (see `signals::visibility`).
    visibility: Visibility,
    exact: bool,
}

/// What one tick read besides backlog and in-flight, for the live state.
#[derive(Default)]
pub(crate) struct TickExtras {
    /// `LLEN` of each list key.
    pub llen: HashMap<Vec<u8>, u64>,
    /// Delivery tags at the head (`LINDEX 0`) and tail (`LINDEX -1`) of keys read for it.
    pub ends: HashMap<Vec<u8>, (Option<String>, Option<String>)>,
    /// The head message of keys read for it (at most [`MAX_ANCHOR`] bytes): next tick's anchor.
    pub heads: HashMap<Vec<u8>, Vec<u8>>,
    /// Where the previous tick's anchor of a key is now (`None`: consumed, or not found
    /// within [`LPOS_MAXLEN`] messages).
    pub positions: HashMap<Vec<u8>, Option<u64>>,
    /// The server refused `LPOS` (Redis < 6.0.6).
    pub lpos_refused: bool,
    /// Per queue: what entered and left `unacked` since the previous tick.
    pub churn: HashMap<(Layout, String), QueueChurn>,
    /// The reply to `CONFIG GET notify-keyspace-events`, when asked this tick.
    pub keyspace: Option<Keyspace>,
}

/// One queue's `unacked` churn in one tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct QueueChurn {
    /// New tags (deliveries seen for the first time).
    pub new: u64,
    /// Scores (delivery times) of the new entries without ETA.
    pub new_scores: Vec<f64>,
    /// Scores of the entries without ETA that left.
    pub left: Vec<f64>,
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
            out.heartbeats
                .insert(prefix.clone(), Arc::new(book.clone()));
        }
        out
    }
}

impl QueueLive {
    #[allow(clippy::too_many_arguments)]
    fn tick(
        &mut self,
        now: f64,
        backlog: u64,
        in_flight: u64,
        churn: QueueChurn,
        extras: &TickExtras,
        events: &mut EventState,
        keyspace_on: bool,
        idle: bool,
    ) -> QueueEstimates {
        let KeysTick {
            continuous,
            pushed,
            popped,
            fifo_wait,
            tail_wait,
            anchored,
            any_anchor,
            idle_keys,
            pushed_after,
            popped_from,
        } = self.observe_keys(now, extras, events, keyspace_on, idle);
        let new_tags = churn.new;
        let anchored = !continuous && anchored && any_anchor;
        let (arrived, dequeued, missed) = self.count(
            (continuous, anchored, idle_keys),
            (pushed, popped),
            (pushed_after, popped_from),
            backlog,
            new_tags,
        );
        let since = self.prev.map_or(now, |(t, _)| t);
        let sight = TickSight {
            blind: !continuous && !anchored && backlog == 0 && self.prev.is_some_and(|p| p.1 == 0),
            flow: new_tags > 0 || backlog > 0 || arrived > 0,
        };
        if self.prev.is_some() {
            self.arrived = self.arrived.saturating_add(arrived);
            self.dequeued = self.dequeued.saturating_add(dequeued);
        }
        self.arrivals.observe(now, self.arrived);
        self.dequeues.observe(now, self.dequeued);
        // Little's law needs every dequeue of its window counted.
        let counted = continuous || (anchored && missed == 0);
        if counted {
            self.occupancy.observe(now, in_flight, self.dequeued);
        } else {
            self.occupancy.clear();
        }
        for score in churn.new_scores {
            self.residence.first_seen(now, now - score);
        }
        // Entries gone now were last seen at the previous tick.
        for score in churn.left {
            self.residence.left(now, since - score, now - since);
        }
        self.prev = Some((now, backlog));
        self.exact = continuous;
        let wait = if continuous {
            Some(Estimate::new(fifo_wait, KEYSPACE))
        } else if backlog == 0 {
            Some(Estimate::new(0.0, TAIL_TAG))
        } else {
            tail_wait.map(|w| Estimate::new(w, TAIL_TAG))
        };
        self.estimates(now, since, sight, (continuous, anchored, counted), wait)
    }

    /// The queue's estimates after a tick: rates from the counters (lower bounds when the
    /// queue's traffic cannot be seen, `signals::visibility`), the `wait` measured, and the
    /// service time (Little's law over `unacked` when every dequeue was `counted`, else the
    /// residence of the entries seen).
    fn estimates(
        &mut self,
        now: f64,
        since: f64,
        sight: TickSight,
        (continuous, anchored, counted): (bool, bool, bool),
        wait: Option<Estimate>,
    ) -> QueueEstimates {
        let source = if continuous {
            KEYSPACE
        } else if anchored {
            LIST_POSITION
        } else {
            CONSERVATION
        };
        // Entries seen to live less than a tick are mostly never seen: the counts miss them.
        // (Without a departure yet, e.g. a trickle of long tasks, nothing says so.)
        let tick = now - since;
        let short_lived = self.residence.mean(now).is_some_and(|r| r < tick);
        if self.prev.is_some() && tick > 0.0 {
            self.visibility.observe(now, sight);
        }
        let lower = !continuous && self.visibility.lower_bound(short_lived);
        let rate = |r: f64| {
            if lower {
                Estimate::lower_bound(r, source)
            } else {
                Estimate::new(r, source)
            }
        };
        QueueEstimates {
            arrival_rate: self.arrivals.rate().map(rate),
            dequeue_rate: self.dequeues.rate().map(rate),
            wait,
            // Counted dequeues make Little's law over `unacked` exact; without them the
            // residence of entries seen at ticks is the estimate.
            service_time: self
                .occupancy
                .service_time()
                .filter(|_| counted)
                .map(|s| Estimate::new(s, OCCUPANCY))
                .or_else(|| {
                    self.residence
                        .mean(now)
                        .map(|s| Estimate::new(s, RESIDENCE))
                }),
            arrived: self.arrived,
            dequeued: self.dequeued,
            exact: continuous,
        }
    }

    /// Arrivals and dequeues of this tick: heard events when `continuous`, else counted from
    /// the anchors when `anchored` (plus tasks both pushed and taken that only new `unacked`
    /// tags show, when a key also stayed empty: `idle_keys`), else conservation (Δbacklog +
    /// new tags, a dip carried as a debt). Returns them and the tasks only the tags showed.
    fn count(
        &mut self,
        (continuous, anchored, idle_keys): (bool, bool, bool),
        (pushed, popped): (u64, u64),
        (pushed_after, popped_from): (u64, u64),
        backlog: u64,
        new_tags: u64,
    ) -> (u64, u64, u64) {
        // A key empty at both ticks may still have carried tasks that were pushed and taken
        // in between (workers keeping up with one priority level): new `unacked` tags beyond
        // the anchored dequeues are such tasks (arrived and taken: both counts grow).
        let mut missed = 0u64;
        if anchored && idle_keys {
            let popped = i128::from(popped_from);
            self.surplus = (self.surplus + i128::from(new_tags) - popped).max(-popped);
            if self.surplus > 0 {
                missed = u64::try_from(self.surplus).unwrap_or(0);
                self.surplus = 0;
            }
        } else {
            self.surplus = 0;
        }
        let (arrived, dequeued) = if continuous {
            self.debt = 0;
            (pushed, popped)
        } else if anchored {
            self.debt = 0;
            (pushed_after + missed, popped_from + missed)
        } else {
            let delta = self.prev.map_or(0, |(_, b)| backlog as i128 - b as i128);
            let mut a = delta + i128::from(new_tags);
            if a < 0 {
                self.debt = self
                    .debt
                    .saturating_add(u64::try_from(-a).unwrap_or(u64::MAX));
                a = 0;
            } else {
                let offset = self.debt.min(u64::try_from(a).unwrap_or(u64::MAX));
                self.debt -= offset;
                a -= i128::from(offset);
            }
            (u64::try_from(a).unwrap_or(0), new_tags)
        };
        (arrived, dequeued, missed)
    }

    /// Reads one tick's observations of every list key of the queue: keyspace events since
    /// the previous tick (and whether they are continuous), where last tick's anchors are,
    /// and the wait clocks.
    fn observe_keys(
        &mut self,
        now: f64,
        extras: &TickExtras,
        events: &mut EventState,
        keyspace_on: bool,
        idle: bool,
    ) -> KeysTick {
        let generation = events.generation;
        let mut continuous = keyspace_on;
        let (mut pushed, mut popped) = (0u64, 0u64);
        let mut fifo_wait = 0.0f64;
        let mut tail_wait: Option<f64> = None;
        // Counted from anchors: every key either found its anchor or stayed empty.
        let (mut anchored, mut any_anchor, mut idle_keys) = (true, false, false);
        let (mut pushed_after, mut popped_from) = (0u64, 0u64);
        let prev = self.prev;
        for k in &mut self.keys {
            let llen = extras.llen.get(&k.key).copied().unwrap_or(0);
            match (k.anchor.take(), extras.positions.get(&k.key)) {
                (Some(_), Some(Some(i))) => {
                    any_anchor = true;
                    pushed_after += i;
                    // llen = previous llen + pushed − popped (restores, pushed to the tail,
                    // would make it negative: they are neither).
                    popped_from += (k.llen + i).saturating_sub(llen);
                }
                (None, _) if k.llen == 0 && llen == 0 => idle_keys = true,
                _ => anchored = false,
            }
            k.anchor = extras.heads.get(&k.key).cloned();
            match events
                .keys
                .get_mut(&k.key)
                .filter(|e| keyspace_on && e.generation == generation)
            {
                Some(e) => {
                    match k.seen {
                        Some((g, lp, rp, _)) if g == generation => {
                            pushed += e.lpush.saturating_sub(lp);
                            popped += e.rpop.saturating_sub(rp);
                        }
                        _ => continuous = false,
                    }
                    let first = k.seen.is_none_or(|(g, ..)| g != generation);
                    k.seen = Some((generation, e.lpush, e.rpop, e.rpush));
                    // One tick of disagreement is normally events racing the LLEN read.
                    if e.clock.len() as u64 != llen {
                        k.mismatch = k.mismatch.saturating_add(1);
                    } else {
                        k.mismatch = 0;
                    }
                    if first || k.mismatch >= 2 {
                        e.clock.reconcile(llen, now);
                        k.mismatch = 0;
                    }
                    if llen > 0 {
                        fifo_wait = fifo_wait.max(e.clock.oldest_age(now));
                    }
                    e.wake_on_push = idle;
                }
                None => {
                    k.seen = None;
                    continuous = false;
                }
            }
            if let Some(age) = k.observe_ends(now, llen, extras.ends.get(&k.key), prev) {
                tail_wait = Some(tail_wait.unwrap_or(0.0).max(age));
            }
            k.llen = llen;
        }
        KeysTick {
            continuous,
            pushed,
            popped,
            fifo_wait,
            tail_wait,
            anchored,
            any_anchor,
            idle_keys,
            pushed_after,
            popped_from,
        }
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
/// [`UNOBSERVABLE_WARN_PERIOD`]); the gauges themselves are set by `metrics::export_live`.
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
