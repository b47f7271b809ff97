//! One queue's live state and its tick: arrival and dequeue counting (keyspace events, `LPOS`
//! anchors, or conservation with a debt), the wait clocks, residence and Little's law, from
//! one tick's observations (list lengths, heads and positions, `unacked` churn, what the
//! pub/sub connection heard) with the time passed in. Pure: [`super::book`] calls
//! [`QueueLive::tick`] for every watched queue and describes the modes.

use std::collections::HashMap;

use super::events::EventState;
pub(crate) use super::keys::{KeyLive, KeysTick, Keyspace};
use super::{
    QueueEstimates, SizingService, CONSERVATION, KEYSPACE, LIST_POSITION, OCCUPANCY, RESIDENCE,
    TAIL_TAG,
};
use crate::celery::Layout;
use crate::signals::estimate::{Occupancy, RateEstimator, Residence, TailClock};
use crate::signals::visibility::{TickSight, Visibility};
use crate::signals::Estimate;

/// How long arrivals counted by conservation may still be found to have been restores (a
/// restored copy is pushed to the end consumed next: fetched again within seconds while
/// any worker runs).
pub(crate) const RESTORE_HORIZON: f64 = 60.0;

/// One queue's live state.
pub(crate) struct QueueLive {
    pub keys: Vec<KeyLive>,
    pub arrivals: RateEstimator,
    pub dequeues: RateEstimator,
    pub arrived: u64,
    pub dequeued: u64,
    /// Negative conservation arrivals not yet offset by later ticks.
    pub debt: u64,
    /// Arrivals conservation counted in its latest ticks (at most [`RESTORE_HORIZON`] ago)
    /// while entries left `unacked`: the most restores it can have read as new tasks, so the
    /// most re-fetched copies a tick counted from anchors may discount (anchors never count
    /// a restore).
    pub restorable: (f64, u64),
    /// Re-fetched copies discounted in ticks counted from anchors, not yet taken off their
    /// arrivals (a tick may count none to take them from).
    pub owed: u64,
    /// New `unacked` tags minus dequeues counted from anchors, over anchored ticks with a
    /// key empty at both ends (floored at minus one tick's count: tags may show a tick late).
    pub surplus: i128,
    pub prev: Option<(f64, u64)>,
    /// Seconds between the previous tick and the one before it.
    pub gap: Option<f64>,
    pub residence: Residence,
    pub occupancy: Occupancy,
    /// The service time over `SIZING_SERVICE_WINDOW`, weighted by starts, and its source.
    pub sizing: SizingService,
    /// Whether the queue's traffic can be seen from Redis at all (see `signals::visibility`).
    pub visibility: Visibility,
    pub exact: bool,
}

/// What one tick read besides backlog and in-flight, for the live state.
#[derive(Default)]
pub(crate) struct TickExtras {
    /// `LLEN` of each list key.
    pub llen: HashMap<Vec<u8>, u64>,
    /// Delivery tags at the head (`LINDEX 0`) and tail (`LINDEX -1`) of keys read for it.
    pub ends: HashMap<Vec<u8>, (Option<String>, Option<String>)>,
    /// The head message of keys read for it (at most `broker::live::MAX_ANCHOR` bytes): next tick's anchor.
    pub heads: HashMap<Vec<u8>, Vec<u8>>,
    /// Where the previous tick's anchor of a key is now (`None`: consumed, or not found
    /// within [`super::book::LPOS_MAXLEN`] messages).
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
    /// Of those, copies kombu restored to the list and a worker fetched again (marked
    /// `redelivered`): their restore showed as a push, so conservation discounts them once.
    pub redelivered: u64,
    /// Scores (delivery times) of the new entries without ETA.
    pub new_scores: Vec<f64>,
    /// Scores of the entries without ETA that left.
    pub left: Vec<f64>,
    /// Entries that left, ETA or not (acked, or restored to the list).
    pub gone: u64,
}

/// One queue's observations in one tick: what the sampler read of it (time passed in).
pub(crate) struct QueueTick<'a> {
    pub now: f64,
    /// Ready messages: Σ `LLEN` over the queue's keys.
    pub backlog: u64,
    /// `unacked` entries of the queue that are prefetched, running or held for an ETA.
    pub in_flight: u64,
    /// What entered and left `unacked` since the previous tick.
    pub churn: QueueChurn,
    /// The tick's reads of the list keys (lengths, ends, heads, anchor positions).
    pub reads: &'a TickExtras,
    /// The server publishes list keyspace events and the pub/sub connection is up.
    pub keyspace_on: bool,
    /// Nothing queued or in flight: the next `lpush` should wake the sampler.
    pub idle: bool,
    /// kombu's visibility timeout for the queue's `unacked` entries, seconds.
    pub visibility_timeout: f64,
}

impl QueueLive {
    /// Queue `q` of `layout` before its first tick (estimators over `window` seconds).
    pub(crate) fn new(layout: &Layout, q: &str, window: f64) -> Self {
        Self {
            keys: layout
                .queue_keys(q)
                .into_iter()
                .map(|key| KeyLive {
                    key,
                    tail: TailClock::default(),
                    seen: None,
                    mismatch: 0,
                    llen: 0,
                    observed: false,
                    filled_at: None,
                    anchor: None,
                })
                .collect(),
            arrivals: RateEstimator::new(window),
            dequeues: RateEstimator::new(window),
            arrived: 0,
            dequeued: 0,
            debt: 0,
            restorable: (0.0, 0),
            owed: 0,
            surplus: 0,
            prev: None,
            gap: None,
            residence: Residence::new(window),
            occupancy: Occupancy::new(window),
            sizing: SizingService::new(window),
            visibility: Visibility::new(window),
            exact: false,
        }
    }

    /// Folds one tick's observations of the queue (and what the pub/sub connection heard,
    /// `events`) into its state and returns its estimates.
    pub(crate) fn tick(&mut self, obs: QueueTick<'_>, events: &mut EventState) -> QueueEstimates {
        let QueueTick {
            now,
            backlog,
            in_flight,
            churn,
            reads,
            keyspace_on,
            idle,
            visibility_timeout,
        } = obs;
        let KeysTick {
            continuous,
            pushed,
            popped,
            fifo_wait,
            tail_wait,
            wait_dated,
            anchored,
            any_anchor,
            idle_keys,
            pushed_after,
            popped_from,
        } = self.observe_keys(now, reads, events, keyspace_on, idle);
        let new_tags = churn.new;
        let anchored = !continuous && anchored && any_anchor;
        let (arrived, dequeued, missed) = self.count(
            (continuous, anchored, idle_keys),
            (pushed, popped),
            (pushed_after, popped_from),
            (now, backlog),
            (new_tags, churn.redelivered, churn.gone),
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
        // An entry first seen a visibility timeout or more after its delivery is one kombu
        // restores (or a forged score): no task's residence either.
        for score in churn.new_scores {
            if now - score < visibility_timeout {
                self.residence.first_seen(now, now - score);
            }
        }
        // Entries gone now were last seen at the previous tick. One delivered a visibility
        // timeout ago or more may have been restored to the list, not acked: its residence
        // is the timeout's, not a service time (a pod killed with tasks in `unacked` would
        // otherwise read an hour-long task an hour later).
        for score in churn.left {
            if now - score < visibility_timeout {
                self.residence.left(now, since - score, now - since);
            }
        }
        self.gap = self.prev.map(|(t, _)| now - t).filter(|g| *g > 0.0);
        self.prev = Some((now, backlog));
        self.exact = continuous;
        // An age that restarted where the messages' arrivals were not seen (the sampler's
        // first tick, a re-established subscription, unreadable tags) is a lower bound.
        let aged = |w: f64, source| {
            if wait_dated {
                Estimate::new(w, source)
            } else {
                Estimate::lower_bound(w, source)
            }
        };
        let wait = if continuous {
            Some(aged(fifo_wait, KEYSPACE))
        } else if backlog == 0 {
            Some(Estimate::new(0.0, TAIL_TAG))
        } else {
            tail_wait.map(|w| aged(w, TAIL_TAG))
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
            arrival_rate_steady: self.arrivals.smoothed_rate().map(rate),
            dequeue_rate: self.dequeues.rate().map(rate),
            dequeue_rate_steady: self.dequeues.smoothed_rate(),
            rate_window: self.arrivals.span(),
            arrivals_quiet_for: self.arrivals.quiet_for(),
            arrivals_longest_gap: Some(self.arrivals.longest_gap()),
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
            service_time_p95: self.residence.p95(now).map(|s| Estimate::new(s, RESIDENCE)),
            arrived: self.arrived,
            dequeued: self.dequeued,
            exact: continuous,
            tick: self.gap,
            ..QueueEstimates::default()
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
        (now, backlog): (f64, u64),
        (new_tags, redelivered, gone): (u64, u64, u64),
    ) -> (u64, u64, u64) {
        // Copies kombu restored and a worker fetched again (marked `redelivered`). Their
        // restore was a push on the list: conservation read it as a new task, anchors and
        // keyspace counting as none. Discounted once, against what conservation counted.
        let redelivered = redelivered.min(new_tags);
        if now - self.restorable.0 > RESTORE_HORIZON {
            self.restorable.1 = 0;
        }
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
            (self.restorable.1, self.owed) = (0, 0);
            (pushed, popped)
        } else if anchored {
            self.debt = 0;
            let discount = redelivered.min(self.restorable.1);
            self.restorable.1 -= discount;
            self.owed = self.owed.saturating_add(discount);
            let pushed = pushed_after + missed;
            let off = self.owed.min(pushed);
            self.owed -= off;
            (pushed - off, popped_from + missed)
        } else {
            self.debt = self.debt.saturating_add(std::mem::take(&mut self.owed));
            let delta = self.prev.map_or(0, |(_, b)| backlog as i128 - b as i128);
            let mut a = delta + i128::from(new_tags) - i128::from(redelivered);
            // A restore leaves `unacked` and pushes: at most `gone` of this tick's counted
            // arrivals can have been restores.
            let counted = u64::try_from(delta + i128::from(new_tags)).unwrap_or(0);
            self.restorable = (
                now,
                self.restorable
                    .1
                    .saturating_sub(redelivered)
                    .saturating_add(counted.min(gone)),
            );
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

    /// The wall clock stepped back: every age read from times before the step is short by
    /// the step, so it is only a lower bound until those messages have left.
    fn undate(&mut self, events: &mut EventState) {
        for k in &mut self.keys {
            k.tail.undate();
            k.filled_at = None;
            if let Some(e) = events.keys.get_mut(&k.key) {
                e.clock.undate();
            }
        }
    }

    /// When messages found in a list seen empty at the previous tick are dated from: the
    /// mid-point of the two ticks when they were a regular tick apart (at most twice the
    /// gap before), else the previous tick (samples failed or stalled in between: their
    /// age is then at most one gap too long, never half a long gap too short). `None` on
    /// the first tick, or when the clock stepped back.
    fn filled_since(&self, now: f64) -> Option<f64> {
        let (t, _) = self.prev.filter(|(t, _)| *t <= now)?;
        let regular = self.gap.is_some_and(|g| now - t <= 2.0 * g);
        Some(if regular { (t + now) / 2.0 } else { t })
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
        // Whether the waits are ages or only lower bounds (see `KeysTick::wait_dated`).
        let (mut fifo_dated, mut tail_dated) = (true, true);
        // Counted from anchors: every key either found its anchor or stayed empty.
        let (mut anchored, mut any_anchor, mut idle_keys) = (true, false, false);
        let (mut pushed_after, mut popped_from) = (0u64, 0u64);
        let filled = self.filled_since(now);
        if self.prev.is_some_and(|(t, _)| now < t) {
            self.undate(events);
        }
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
                        k.reconcile(&mut e.clock, llen, now, filled, first);
                        k.mismatch = 0;
                    }
                    if llen > 0 {
                        fifo_wait = fifo_wait.max(e.clock.oldest_age(now));
                        fifo_dated &= e.clock.dated();
                    }
                    e.wake_on_push = idle;
                }
                None => {
                    k.seen = None;
                    continuous = false;
                }
            }
            match k.observe_ends(now, llen, extras.ends.get(&k.key), filled) {
                Some((age, dated)) => {
                    tail_wait = Some(tail_wait.unwrap_or(0.0).max(age));
                    tail_dated &= dated;
                }
                // A key that holds messages of unknown age: the queue's oldest may be there.
                None => tail_dated &= llen == 0,
            }
            k.llen = llen;
        }
        KeysTick {
            continuous,
            pushed,
            popped,
            fifo_wait,
            tail_wait,
            wait_dated: if continuous { fifo_dated } else { tail_dated },
            anchored,
            any_anchor,
            idle_keys,
            pushed_after,
            popped_from,
        }
    }
}
