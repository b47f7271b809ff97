//! The scaler's real sampler on the simulated broker: at each tick it builds what the broker
//! module would have read from Redis at that instant (list lengths of every key, the ends and
//! head of the keys the [`Plan`] asks for, where the previous head is now as `LPOS` would
//! answer, the `unacked` entries that appeared and left since the previous tick), hears
//! keyspace events only when the scenario turns notifications on, and worker heartbeats
//! every 2 s only when the scenario names the workers; then it runs the scaler's own core
//! (`signals::live`) on them. Entries that come and go between two ticks are never seen,
//! exactly as in Redis.

use std::collections::{HashMap, VecDeque};

use crate::celery::Layout;
use crate::signals::heartbeat::{Heartbeat, HeartbeatBook};
use crate::signals::live::book::{LiveBook, Plan, LPOS_MAXLEN};
use crate::signals::live::events::{EventState, KeyEvents};
use crate::signals::live::live_signals;
use crate::signals::live::queue::{Keyspace, QueueChurn, TickExtras};
use crate::signals::{Estimate, LiveSignals, QueueSignals, Source};
use crate::simulate::outcome::Seen;
use crate::simulate::scenario::SamplerSpec;
use crate::simulate::workload::Task;
use crate::spec::WatchSet;

/// Celery's default `worker_heartbeat` interval, seconds.
pub(crate) const HEARTBEAT_FREQ: f64 = 2.0;
/// The hostname pattern of the simulated workers (`workerHostnames`).
pub(crate) const WORKER_PATTERN: &str = "celery@sim-*";

/// One `unacked` entry present at a tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Unacked {
    pub id: u64,
    pub queue: u16,
    /// Its `unacked_index` score: when it was delivered.
    pub score: f64,
    /// Sent with an ETA (the broker counts it as scheduled, and its score says nothing of
    /// the service time).
    pub eta: bool,
    /// A copy restored to its queue and fetched again (kombu's `redelivered` mark).
    pub redelivered: bool,
}

impl Unacked {
    pub(crate) fn of(t: &Task) -> Self {
        Self {
            id: t.id,
            queue: t.queue,
            score: t.fetched,
            eta: t.due > t.arrival,
            redelivered: t.redelivered,
        }
    }
}

/// One worker's heartbeat fields.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Beat {
    pub pod: u32,
    pub active: u64,
    pub processed: u64,
    /// The worker's `worker-online` (its first event), not a heartbeat.
    pub online: bool,
}

/// The real sampler of one simulated broker.
pub(crate) struct SimSampler {
    book: LiveBook,
    events: EventState,
    watch: WatchSet,
    /// List key of each queue and priority step.
    keys: Vec<Vec<Vec<u8>>>,
    plan: Plan,
    /// The `unacked` entries seen at the previous tick.
    unacked: HashMap<u64, Unacked>,
    window: f64,
    /// `taskDuration`: the service time where none was measured (source `config`).
    task_duration: Option<f64>,
    /// What it saw so far (`unacked_new`, `keyspace_events`, `heartbeats`).
    pub seen: Seen,
}

/// The hostname of pod `p`.
pub(crate) fn hostname(p: u32) -> String {
    format!("celery@sim-{p}")
}

impl SimSampler {
    /// A sampler watching `queues` (one trigger over all of them) on a broker with the
    /// priority `steps`.
    pub(crate) fn new(
        queues: &[String],
        steps: &[u8],
        spec: &SamplerSpec,
        task_duration: Option<f64>,
    ) -> Self {
        let layout = Layout {
            priority_steps: steps.iter().map(|s| u32::from(*s)).collect(),
            ..Layout::default()
        };
        let keys: Vec<Vec<Vec<u8>>> = queues.iter().map(|q| layout.queue_keys(q)).collect();
        let mut book = LiveBook::new(spec.signal_window);
        let mut events = EventState {
            generation: 1,
            up: true,
            ..EventState::default()
        };
        if spec.notifications {
            book.keyspace = Keyspace::Enabled;
            for key in keys.iter().flatten() {
                let k = KeyEvents {
                    generation: 1,
                    ..KeyEvents::default()
                };
                events.keys.insert(key.clone(), k);
            }
        } else {
            book.keyspace = Keyspace::Disabled;
        }
        let watch = WatchSet {
            layout,
            queues: queues.to_vec(),
            visibility_timeout_ms: 3_600_000,
            worker_hostnames: spec.heartbeats.then(|| WORKER_PATTERN.to_string()),
        };
        let plan = book.plan(std::slice::from_ref(&watch));
        Self {
            book,
            events,
            watch,
            keys,
            plan,
            unacked: HashMap::new(),
            window: spec.signal_window,
            task_duration,
            seen: Seen::default(),
        }
    }

    /// The same sampler for workers whose `visibility_timeout` is `secs`.
    pub(crate) fn with_visibility_timeout(mut self, secs: f64) -> Self {
        self.watch.visibility_timeout_ms = (secs * 1000.0).round() as u64;
        self
    }

    /// A keyspace event on the key of `queue`'s priority `step` (heard only when the key is
    /// subscribed: notifications on). Returns whether it wakes the sampler (the queue was
    /// idle at the last tick).
    pub(crate) fn key_event(&mut self, queue: usize, step: usize, event: &[u8], now: f64) -> bool {
        let key = &self.keys[queue][step];
        if self.events.keys.contains_key(key) {
            self.seen.keyspace_events += 1;
        }
        self.events.key_event(key, event, now)
    }

    /// Heartbeats of the workers up now (sent only when the scenario names the workers).
    pub(crate) fn beat(&mut self, now: f64, beats: &[Beat]) {
        if self.watch.worker_hostnames.is_none() {
            return;
        }
        let window = self.window;
        let book = self
            .events
            .heartbeats
            .entry(self.watch.layout.prefix.clone())
            .or_insert_with(|| HeartbeatBook::new(window));
        self.seen.heartbeats += beats.len() as u64;
        for b in beats {
            let hb = Heartbeat {
                hostname: hostname(b.pod),
                active: b.active,
                processed: b.processed,
                freq: HEARTBEAT_FREQ,
            };
            if b.online {
                book.record_online(now, &hb);
            } else {
                book.record(now, &hb);
            }
        }
    }

    /// `worker-offline` of pod `p` (its warm shutdown ended, or it was killed).
    pub(crate) fn offline(&mut self, p: u32) {
        if let Some(book) = self.events.heartbeats.get_mut(&self.watch.layout.prefix) {
            book.forget(&hostname(p));
        }
    }

    /// The list reads of one tick, as `broker::live::read_answers` decodes them: `LLEN` of
    /// every key, and for the keys of the plan their ends, their head and where the previous
    /// head is now.
    pub(crate) fn reads(&self, lists: &[Vec<VecDeque<Task>>]) -> TickExtras {
        let mut x = TickExtras::default();
        for (q, steps) in lists.iter().enumerate() {
            for (s, list) in steps.iter().enumerate() {
                x.llen.insert(self.keys[q][s].clone(), list.len() as u64);
            }
        }
        let find = |key: &[u8]| -> Option<&VecDeque<Task>> {
            let (q, s) =
                self.keys.iter().enumerate().find_map(|(q, ks)| {
                    ks.iter().position(|k| k.as_slice() == key).map(|s| (q, s))
                })?;
            lists.get(q)?.get(s)
        };
        for key in &self.plan.tail_keys {
            let Some(list) = find(key) else { continue };
            if let Some(anchor) = self.plan.anchor(key) {
                x.positions.insert(key.clone(), lpos(list, anchor));
            }
            // LINDEX 0 is the newest message (LPUSH), LINDEX -1 the oldest (consumed next).
            let head = list.back().map(|t| t.id.to_string());
            let tail = list.front().map(|t| t.id.to_string());
            if let Some(h) = &head {
                x.heads.insert(key.clone(), h.as_bytes().to_vec());
            }
            x.ends.insert(key.clone(), (head, tail));
        }
        x
    }

    /// What entered and left `unacked` since the previous tick, per queue, as
    /// `broker::live::attribute_churn` counts it; remembers `now_present` for the next tick.
    pub(crate) fn churn(
        &mut self,
        now_present: impl Iterator<Item = Unacked>,
    ) -> HashMap<usize, QueueChurn> {
        let present: HashMap<u64, Unacked> = now_present.map(|u| (u.id, u)).collect();
        let mut out: HashMap<usize, QueueChurn> = HashMap::new();
        for u in present.values() {
            // A re-delivery (restored, fetched again) has a new delivery time: a new entry.
            if self
                .unacked
                .get(&u.id)
                .is_some_and(|old| old.score == u.score)
            {
                continue;
            }
            let c = out.entry(usize::from(u.queue)).or_default();
            c.new += 1;
            c.redelivered += u64::from(u.redelivered);
            self.seen.unacked_new += 1;
            if !u.eta {
                c.new_scores.push(u.score);
            }
        }
        for old in self.unacked.values() {
            let gone = present.get(&old.id).is_none_or(|u| u.score != old.score);
            if gone {
                let c = out.entry(usize::from(old.queue)).or_default();
                c.gone += 1;
                if !old.eta {
                    c.left.push(old.score);
                }
            }
        }
        self.unacked = present;
        // The maps above iterate in a per-process order: sorted, the estimators see the
        // same sequence every run (the bench is reproducible byte for byte).
        for c in out.values_mut() {
            c.new_scores.sort_by(f64::total_cmp);
            c.left.sort_by(f64::total_cmp);
        }
        out
    }

    /// One sampler tick: the readings `queues` (exact: `LLEN` sums and `unacked` counts),
    /// the lists and the `unacked` entries present now go through the scaler's core; returns
    /// the live signals a trigger over all queues would get.
    pub(crate) fn tick(
        &mut self,
        now: f64,
        queues: &[QueueSignals],
        lists: &[Vec<VecDeque<Task>>],
        unacked: impl Iterator<Item = Unacked>,
    ) -> Vec<LiveSignals> {
        let mut extras = self.reads(lists);
        for (q, c) in self.churn(unacked) {
            let id = (self.watch.layout.clone(), self.watch.queues[q].clone());
            extras.churn.insert(id, c);
        }
        let reading = |name: &str| queues.iter().find(|s| s.name == name);
        // In flight as `broker::sampler` passes it: reserved and stale entries (ETA-held
        // ones are not work now).
        let watches = std::slice::from_ref(&self.watch);
        let data = self.book.update(
            now,
            watches,
            &mut extras,
            &mut self.events,
            |_, q| reading(q).map_or(0, |s| s.backlog),
            |_, q| reading(q).map_or(0, |s| s.reserved + s.stale),
        );
        self.plan = self.book.plan(watches);
        let sampled: Vec<LiveSignals> = self
            .watch
            .queues
            .iter()
            .map(|q| {
                let id = (self.watch.layout.clone(), q.clone());
                data.queues.get(&id).cloned().unwrap_or_default().signals(q)
            })
            .collect();
        let book = data.heartbeats.get(&self.watch.layout.prefix);
        let mut live = live_signals(
            now,
            &sampled,
            book.map(|b| b.as_ref()),
            self.watch.worker_hostnames.as_deref(),
        );
        if let Some(d) = self.task_duration.filter(|d| d.is_finite() && *d > 0.0) {
            for l in live.iter_mut().filter(|l| l.service_time.is_none()) {
                l.service_time = Some(Estimate::new(d, Source::Config));
            }
        }
        live
    }
}

/// `LPOS key anchor MAXLEN LPOS_MAXLEN`: the anchor's index from the head (newest), when it
/// is among the first `LPOS_MAXLEN` messages.
fn lpos(list: &VecDeque<Task>, anchor: &[u8]) -> Option<u64> {
    let id: u64 = std::str::from_utf8(anchor).ok()?.parse().ok()?;
    list.iter()
        .rev()
        .take(usize::try_from(LPOS_MAXLEN).unwrap_or(usize::MAX))
        .position(|t| t.id == id)
        .map(|i| i as u64)
}

#[cfg(test)]
mod tests;
