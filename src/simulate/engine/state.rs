//! The simulation's state: the event queue, the broker's lists, the pods and what the
//! sampler last showed the policy. Shared by the engine's parts (`pods`, `observe` and the
//! event loop in `engine`).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use super::buckets::QueueStats;
use super::sampler::SimSampler;
use crate::signals::{LiveSignals, QueueSignals};
use crate::simulate::autoscale::Autoscaler;
use crate::simulate::outcome::{Outcome, PolicyKind};
use crate::simulate::rng::Rng;
use crate::simulate::scenario::Scenario;
use crate::simulate::workload::{Stream, Task, TaskMaker};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Ev {
    Arrive(u32),
    Ready(u32),
    Finish(u32, u64),
    EtaDue(u32, u64),
    Kill(u32),
    /// A scheduled stop (`workers.stops`): SIGTERM to one pod, not replaced.
    Stop,
    Restore(Task),
    /// A regular sampler tick of the given cadence (a woken tick starts a new one).
    Tick(u64),
    /// A sampler tick woken by an `lpush` on an idle queue (keyspace notifications): the
    /// sampler's next regular tick comes one interval after it, as in `broker::sampler`.
    Wake,
    /// Worker heartbeats (every `HEARTBEAT_FREQ` seconds).
    Beat,
    Poll,
    Sync,
    Series,
}

pub(crate) struct Entry {
    pub t: f64,
    pub seq: u64,
    pub ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        // Min-heap on (time, sequence).
        o.t.total_cmp(&self.t).then(o.seq.cmp(&self.seq))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PodState {
    Starting,
    Ready,
    Terminating,
    Gone,
}

pub(crate) struct Pod {
    pub created: f64,
    pub ready_at: f64,
    pub state: PodState,
    pub running: Vec<(u64, Task, f64)>,
    pub reserved: VecDeque<Task>,
    pub eta: Vec<(u64, Task)>,
    pub waiting: bool,
    /// When its current BRPOP was issued (it re-issues every `BRPOP_TIMEOUT`).
    pub blocked_at: f64,
    /// Tasks it started (a heartbeat's `processed`).
    pub processed: u64,
    /// Whether its worker has announced itself (`worker-online`, its first event).
    pub online_sent: bool,
}

/// kombu's Redis `brpop_timeout`: a worker blocked on an empty queue re-issues its BRPOP
/// every second, joining the back of Redis' queue of blocked clients each time.
pub(crate) const BRPOP_TIMEOUT: f64 = 1.0;

#[derive(Clone, Copy, Default)]
pub(crate) struct Counts {
    pub reserved: u64,
    pub running: u64,
    pub scheduled: u64,
    pub orphan: u64,
}

pub(crate) struct Sim<'a> {
    pub sc: &'a Scenario,
    pub policy: &'a PolicyKind,
    pub now: f64,
    pub end: f64,
    pub heap: BinaryHeap<Entry>,
    pub seq: u64,
    pub token: u64,
    /// The cadence of regular ticks now (older `Tick`s are stale).
    pub cadence: u64,
    /// The next task's delivery tag.
    pub next_id: u64,
    pub streams: Vec<(u16, Stream)>,
    pub makers: Vec<TaskMaker>,
    pub lists: Vec<Vec<VecDeque<Task>>>,
    pub bare_step: usize,
    pub pods: Vec<Pod>,
    pub live: Vec<u32>,
    pub waiters: VecDeque<u32>,
    pub counts: Vec<Counts>,
    pub stats: Vec<QueueStats>,
    /// Messages of killed pods left in `unacked` until the visibility timeout restores them.
    pub stranded: HashMap<u64, Task>,
    /// The scaler's sampler, when the policy runs on real signals.
    pub sampler: Option<SimSampler>,
    pub scaler: Autoscaler,
    pub rng: Rng,
    pub prefetch: usize,
    pub view: (Vec<QueueSignals>, Vec<LiveSignals>),
    /// When `view` was sampled.
    pub view_at: f64,
    pub last_metric: f64,
    pub idle_arrival: Option<f64>,
    pub out: Outcome,
}

impl Sim<'_> {
    pub(crate) fn at(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Entry {
            t,
            seq: self.seq,
            ev,
        });
    }

    /// Tells the sampler (when there is one) of a keyspace event on a list key; schedules a
    /// woken tick when it asks for one.
    pub(crate) fn key_event(&mut self, queue: usize, step: usize, event: &[u8]) {
        let now = self.now;
        let wake = self
            .sampler
            .as_mut()
            .is_some_and(|s| s.key_event(queue, step, event, now));
        if wake {
            self.at(now, Ev::Wake);
        }
    }
}
