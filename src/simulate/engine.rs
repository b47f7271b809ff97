//! The discrete-event core: a broker (FIFO lists per queue and priority step), worker pods
//! (prefetch, early ack or `acks_late`, ETA holds, start-up delay, warm shutdown and SIGKILL
//! at the end of the grace period), a stand-in for the scaler's sampler, and KEDA + the HPA
//! driving the replica count from one policy.
//!
//! The stand-in is an oracle, not the real sampler: `Sim::sample` computes the
//! signals exactly from the simulator's own state and tags them with the source the real
//! sampler would use. The scaler's estimators (`signals::estimate`, `broker::live`) do not
//! run here, so simulated results are what the policy does with perfect estimates.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use super::autoscale::{Autoscaler, MetricSample};
use super::error::SimError;
use super::rng::Rng;
use super::scenario::{Deletion, Scenario};
use super::workload::{streams, Stream, Task, TaskMaker};
use crate::policy::{decide_live, Decision, PolicySettings};
use crate::signals::{Estimate, LiveSignals, QueueSignals};

/// Which scaler drives the Deployment.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyKind {
    /// KEDA's `redis` scaler: one trigger per queue on the bare key (`LLEN` only).
    KedaRedis { list_length: f64, activation: f64 },
    /// One of our modes, fed the sampler's view.
    Ours(PolicySettings),
}

/// A policy run: a label for reports and what it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRun {
    pub label: String,
    pub kind: PolicyKind,
}

/// One row of the time series.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SeriesRow {
    pub t: f64,
    pub replicas: u32,
    pub ready: u32,
    pub backlog: u64,
    pub running: u64,
    pub oldest_wait: f64,
    pub metric: f64,
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub label: String,
    /// Wait of every task (start − due), including censored waits of tasks never started.
    pub waits: Vec<f32>,
    pub unfinished: u64,
    pub pod_seconds: f64,
    /// Σ task durations of all published tasks.
    pub work: f64,
    pub interrupted: u64,
    pub lost: u64,
    pub restored_at_shutdown: u64,
    pub scale_events: u64,
    pub cold_starts: Vec<f64>,
    pub series: Vec<SeriesRow>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ev {
    Arrive(u32),
    Ready(u32),
    Finish(u32, u64),
    EtaDue(u32, u64),
    Kill(u32),
    /// A scheduled stop (`workers.stops`): SIGTERM to one pod, not replaced.
    Stop,
    Restore(Task),
    Tick,
    Poll,
    Sync,
    Series,
}

struct Entry {
    t: f64,
    seq: u64,
    ev: Ev,
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
enum PodState {
    Starting,
    Ready,
    Terminating,
    Gone,
}

struct Pod {
    created: f64,
    ready_at: f64,
    state: PodState,
    running: Vec<(u64, Task, f64)>,
    reserved: VecDeque<Task>,
    eta: Vec<(u64, Task)>,
    waiting: bool,
    /// When its current BRPOP was issued (it re-issues every `BRPOP_TIMEOUT`).
    blocked_at: f64,
}

/// kombu's Redis `brpop_timeout`: a worker blocked on an empty queue re-issues its BRPOP
/// every second, joining the back of Redis' queue of blocked clients each time.
const BRPOP_TIMEOUT: f64 = 1.0;

#[derive(Clone, Copy, Default)]
struct Counts {
    reserved: u64,
    running: u64,
    scheduled: u64,
    orphan: u64,
}

/// Per-second buckets over a ring (sums over trailing windows).
struct Buckets {
    stamp: Vec<u64>,
    v: Vec<f64>,
}

impl Buckets {
    fn new(n: usize) -> Self {
        Self {
            stamp: vec![u64::MAX; n],
            v: vec![0.0; n],
        }
    }
    fn add(&mut self, t: f64, x: f64) {
        let s = t as u64;
        let i = (s % self.v.len() as u64) as usize;
        if self.stamp[i] != s {
            self.stamp[i] = s;
            self.v[i] = 0.0;
        }
        self.v[i] += x;
    }
    /// Sum over the `window` whole seconds before `now`.
    fn sum(&self, now: f64, window: u32) -> f64 {
        let end = now as u64;
        let n = self.v.len() as u64;
        (end.saturating_sub(u64::from(window))..end)
            .map(|s| {
                let i = (s % n) as usize;
                if self.stamp[i] == s {
                    self.v[i]
                } else {
                    0.0
                }
            })
            .sum()
    }
}

struct QueueStats {
    arrivals: Buckets,
    starts: Buckets,
    done_n: Buckets,
    done_sum: Buckets,
    /// (completion time, duration) of the tasks completed in the service window: the p95.
    done_recent: VecDeque<(f64, f64)>,
}

struct Sim<'a> {
    sc: &'a Scenario,
    policy: &'a PolicyKind,
    now: f64,
    end: f64,
    heap: BinaryHeap<Entry>,
    seq: u64,
    token: u64,
    streams: Vec<(u16, Stream)>,
    makers: Vec<TaskMaker>,
    lists: Vec<Vec<VecDeque<Task>>>,
    bare_step: usize,
    pods: Vec<Pod>,
    live: Vec<u32>,
    waiters: VecDeque<u32>,
    counts: Vec<Counts>,
    stats: Vec<QueueStats>,
    scaler: Autoscaler,
    rng: Rng,
    prefetch: usize,
    view: (Vec<QueueSignals>, Vec<LiveSignals>),
    last_metric: f64,
    idle_arrival: Option<f64>,
    out: Outcome,
}

/// The ordered priority steps of a scenario (always including 0, the bare key).
pub fn steps_of(sc: &Scenario) -> Vec<u8> {
    let mut steps: Vec<u8> = sc
        .queues
        .iter()
        .flat_map(|q| q.priorities.iter().map(|(s, _)| *s))
        .collect();
    steps.push(0);
    steps.sort_unstable();
    steps.dedup();
    steps
}

/// Runs `policy` on `sc` and measures it.
pub fn simulate(sc: &Scenario, policy: &PolicyRun) -> Result<Outcome, SimError> {
    let steps = steps_of(sc);
    let end = sc.duration + sc.drain;
    let mut all_streams = Vec::new();
    let mut makers = Vec::new();
    for (qi, q) in sc.queues.iter().enumerate() {
        for s in streams(q, qi, sc.seed, sc.duration, &sc.base_dir)? {
            all_streams.push((qi as u16, s));
        }
        makers.push(TaskMaker::new(q, qi, sc.seed, &steps));
    }
    let window = sc
        .sampler
        .rate_window
        .max(sc.sampler.fast_window)
        .max(sc.sampler.service_window) as usize
        + 2;
    let nq = sc.queues.len();
    let w = &sc.workers;
    let prefetch = if w.prefetch_multiplier == 0 {
        usize::MAX
    } else {
        (w.prefetch_multiplier * w.concurrency) as usize
    };
    let mut sim = Sim {
        sc,
        policy: &policy.kind,
        now: 0.0,
        end,
        heap: BinaryHeap::new(),
        seq: 0,
        token: 0,
        streams: all_streams,
        makers,
        lists: vec![vec![VecDeque::new(); steps.len()]; nq],
        bare_step: steps.iter().position(|s| *s == 0).unwrap_or(0),
        pods: Vec::new(),
        live: Vec::new(),
        waiters: VecDeque::new(),
        counts: vec![Counts::default(); nq],
        stats: (0..nq)
            .map(|_| QueueStats {
                arrivals: Buckets::new(window),
                starts: Buckets::new(window),
                done_n: Buckets::new(window),
                done_sum: Buckets::new(window),
                done_recent: VecDeque::new(),
            })
            .collect(),
        scaler: Autoscaler::new(sc.keda.clone()),
        rng: Rng::derive(sc.seed, 0x3000),
        prefetch,
        view: (Vec::new(), Vec::new()),
        last_metric: 0.0,
        idle_arrival: None,
        out: Outcome {
            label: policy.label.clone(),
            ..Outcome::default()
        },
    };
    sim.run();
    Ok(sim.out)
}

impl Sim<'_> {
    fn at(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Entry {
            t,
            seq: self.seq,
            ev,
        });
    }

    fn run(&mut self) {
        for i in 0..self.streams.len() {
            if let Some((t, _)) = self.streams[i].1.next {
                self.at(t, Ev::Arrive(i as u32));
            }
        }
        self.at(0.0, Ev::Tick);
        self.at(0.0, Ev::Poll);
        self.at(0.0, Ev::Sync);
        self.at(0.0, Ev::Series);
        for t in &self.sc.workers.stops {
            self.at(*t, Ev::Stop);
        }
        let initial = self.scaler.replicas;
        self.reconcile(initial);
        self.out.scale_events = 0;
        while let Some(e) = self.heap.pop() {
            if e.t > self.end {
                break;
            }
            self.now = e.t;
            self.handle(e.ev);
        }
        self.now = self.end;
        self.finish();
    }

    fn handle(&mut self, ev: Ev) {
        let sc = self.sc;
        match ev {
            Ev::Arrive(i) => self.arrive(i as usize),
            Ev::Ready(p) => {
                if self.pods[p as usize].state == PodState::Starting {
                    self.pods[p as usize].state = PodState::Ready;
                    self.pump(p);
                }
            }
            Ev::Finish(p, token) => self.finish_task(p, token),
            Ev::EtaDue(p, token) => self.eta_due(p, token),
            Ev::Kill(p) => self.kill(p),
            Ev::Stop => {
                if let Some(p) = self.victim() {
                    self.terminate(p);
                }
            }
            Ev::Restore(task) => {
                self.counts[task.queue as usize].orphan -= 1;
                self.lists[task.queue as usize][task.step as usize].push_front(task);
                self.wake();
            }
            Ev::Tick => {
                self.sample();
                if sc.keda.external_push
                    && matches!(self.policy, PolicyKind::Ours(_))
                    && self.decision().active
                {
                    if let Some(r) = self.scaler.push(self.now) {
                        self.reconcile(r);
                    }
                }
                self.at(self.now + sc.sampler.tick, Ev::Tick);
            }
            Ev::Poll => {
                let active = match self.policy {
                    PolicyKind::KedaRedis { activation, .. } => (0..sc.queues.len())
                        .any(|q| self.lists[q][self.bare_step].len() as f64 > *activation),
                    PolicyKind::Ours(_) => self.decision().active,
                };
                if let Some(r) = self.scaler.poll(self.now, active) {
                    self.reconcile(r);
                }
                self.at(self.now + sc.keda.polling_interval, Ev::Poll);
            }
            Ev::Sync => {
                let metrics: Vec<MetricSample> = match self.policy {
                    PolicyKind::KedaRedis { list_length, .. } => (0..sc.queues.len())
                        .map(|q| MetricSample {
                            value: self.lists[q][self.bare_step].len() as f64,
                            target: list_length.floor().max(1.0),
                        })
                        .collect(),
                    PolicyKind::Ours(_) => {
                        let d = self.decision();
                        vec![MetricSample {
                            value: d.metric_value,
                            target: d.target,
                        }]
                    }
                };
                self.last_metric = metrics
                    .iter()
                    .map(|m| m.value / m.target)
                    .fold(0.0, f64::max);
                if let Some(r) = self.scaler.hpa_sync(self.now, &metrics) {
                    self.reconcile(r);
                }
                self.at(self.now + sc.keda.hpa_sync_period, Ev::Sync);
            }
            Ev::Series => {
                let row = self.series_row();
                self.out.series.push(row);
                self.at(self.now + sc.sampler.series_step, Ev::Series);
            }
        }
    }

    fn decision(&self) -> Decision {
        match self.policy {
            PolicyKind::Ours(s) => decide_live(s, &self.view.0, &self.view.1),
            PolicyKind::KedaRedis { .. } => Decision {
                metric_value: 0.0,
                target: 1.0,
                active: false,
                breakdown: Vec::new(),
            },
        }
    }

    fn arrive(&mut self, i: usize) {
        let (q, stream) = &mut self.streams[i];
        let q = *q;
        let Some((t, given)) = stream.next else {
            return;
        };
        stream.step();
        let next = stream.next;
        let task = self.makers[q as usize].make(q, t, given);
        self.out.work += task.duration;
        self.stats[q as usize].arrivals.add(t, 1.0);
        if self.idle_arrival.is_none()
            && !self
                .live
                .iter()
                .any(|p| self.pods[*p as usize].state == PodState::Ready)
        {
            self.idle_arrival = Some(t);
        }
        self.lists[q as usize][task.step as usize].push_back(task);
        if let Some((t2, _)) = next {
            self.at(t2, Ev::Arrive(i as u32));
        }
        self.wake();
    }

    fn broker_empty(&self) -> bool {
        self.lists.iter().all(|l| l.iter().all(VecDeque::is_empty))
    }

    /// Serves pods blocked on BRPOP: Redis serves the client blocked longest in its current
    /// BRPOP, and each re-issues its BRPOP every `BRPOP_TIMEOUT`.
    fn wake(&mut self) {
        while !self.broker_empty() {
            let now = self.now;
            let current = |b: f64| b + ((now - b) / BRPOP_TIMEOUT).floor() * BRPOP_TIMEOUT;
            let Some(i) = (0..self.waiters.len()).min_by(|a, b| {
                let (pa, pb) = (self.waiters[*a], self.waiters[*b]);
                current(self.pods[pa as usize].blocked_at)
                    .total_cmp(&current(self.pods[pb as usize].blocked_at))
            }) else {
                break;
            };
            let Some(p) = self.waiters.remove(i) else {
                break;
            };
            self.pods[p as usize].waiting = false;
            self.pump(p);
        }
    }

    fn can_fetch(&self, p: &Pod) -> bool {
        let held = if self.sc.workers.acks_late {
            p.running.len() + p.reserved.len()
        } else {
            p.reserved.len()
        };
        p.state == PodState::Ready && held < self.prefetch
    }

    /// kombu's BRPOP order: priority steps first, then queues in order.
    fn pop_task(&mut self) -> Option<Task> {
        for step in 0..self.lists.first().map_or(0, Vec::len) {
            for q in 0..self.lists.len() {
                if let Some(t) = self.lists[q][step].pop_front() {
                    return Some(t);
                }
            }
        }
        None
    }

    /// Fetches while the pod's prefetch allows, then starts what it can.
    fn pump(&mut self, p: u32) {
        loop {
            self.try_start(p);
            if !self.can_fetch(&self.pods[p as usize]) {
                return;
            }
            let Some(mut task) = self.pop_task() else {
                let pod = &mut self.pods[p as usize];
                if !pod.waiting {
                    pod.waiting = true;
                    pod.blocked_at = self.now;
                    self.waiters.push_back(p);
                }
                return;
            };
            let q = task.queue as usize;
            task.fetched = self.now;
            if task.due > self.now {
                self.token += 1;
                let token = self.token;
                self.pods[p as usize].eta.push((token, task));
                self.counts[q].scheduled += 1;
                self.at(task.due, Ev::EtaDue(p, token));
            } else {
                self.pods[p as usize].reserved.push_back(task);
                self.counts[q].reserved += 1;
            }
        }
    }

    fn try_start(&mut self, p: u32) {
        let c = self.sc.workers.concurrency as usize;
        while self.pods[p as usize].state == PodState::Ready
            && self.pods[p as usize].running.len() < c
        {
            let Some(mut task) = self.pods[p as usize].reserved.pop_front() else {
                return;
            };
            let q = task.queue as usize;
            self.counts[q].reserved -= 1;
            self.counts[q].running += 1;
            self.stats[q].starts.add(self.now, 1.0);
            if !task.started {
                task.started = true;
                self.out.waits.push((self.now - task.due).max(0.0) as f32);
            }
            if let Some(t0) = self.idle_arrival.take() {
                self.out.cold_starts.push(self.now - t0);
            }
            self.token += 1;
            let token = self.token;
            self.pods[p as usize].running.push((token, task, self.now));
            self.at(self.now + task.duration, Ev::Finish(p, token));
        }
    }

    fn finish_task(&mut self, p: u32, token: u64) {
        let pod = &mut self.pods[p as usize];
        let Some(i) = pod.running.iter().position(|(t, _, _)| *t == token) else {
            return;
        };
        let (_, task, _) = pod.running.swap_remove(i);
        let q = task.queue as usize;
        self.counts[q].running -= 1;
        self.stats[q].done_n.add(self.now, 1.0);
        self.stats[q].done_sum.add(self.now, task.duration);
        self.stats[q]
            .done_recent
            .push_back((self.now, task.duration));
        match self.pods[p as usize].state {
            PodState::Terminating if self.pods[p as usize].running.is_empty() => {
                self.restore_held(p);
                self.gone(p);
            }
            PodState::Ready => self.pump(p),
            _ => {}
        }
    }

    fn eta_due(&mut self, p: u32, token: u64) {
        let pod = &mut self.pods[p as usize];
        let Some(i) = pod.eta.iter().position(|(t, _)| *t == token) else {
            return;
        };
        let (_, task) = pod.eta.swap_remove(i);
        pod.reserved.push_back(task);
        let q = task.queue as usize;
        self.counts[q].scheduled -= 1;
        self.counts[q].reserved += 1;
        self.try_start(p);
    }

    fn gone(&mut self, p: u32) {
        let pod = &mut self.pods[p as usize];
        pod.state = PodState::Gone;
        self.out.pod_seconds += self.now - pod.created;
        self.live.retain(|x| *x != p);
    }

    /// Sets the Deployment to `target` replicas (the ReplicaSet creates or deletes pods).
    fn reconcile(&mut self, target: u32) {
        self.out.scale_events += 1;
        let current = self
            .live
            .iter()
            .filter(|p| {
                matches!(
                    self.pods[**p as usize].state,
                    PodState::Starting | PodState::Ready
                )
            })
            .count() as u32;
        for _ in current..target {
            let delay = self.sc.workers.startup.sample(&mut self.rng);
            let id = self.pods.len() as u32;
            self.pods.push(Pod {
                created: self.now,
                ready_at: self.now + delay,
                state: PodState::Starting,
                running: Vec::new(),
                reserved: VecDeque::new(),
                eta: Vec::new(),
                waiting: false,
                blocked_at: 0.0,
            });
            self.live.push(id);
            self.at(self.now + delay, Ev::Ready(id));
        }
        if target < current {
            for _ in target..current {
                if let Some(p) = self.victim() {
                    self.terminate(p);
                }
            }
        }
    }

    /// The ReplicaSet's choice: pending pods first, then by the scenario's ranking.
    fn victim(&mut self) -> Option<u32> {
        let cands: Vec<u32> = self
            .live
            .iter()
            .copied()
            .filter(|p| {
                matches!(
                    self.pods[*p as usize].state,
                    PodState::Starting | PodState::Ready
                )
            })
            .collect();
        if let Some(p) = cands
            .iter()
            .rev()
            .find(|p| self.pods[**p as usize].state == PodState::Starting)
        {
            return Some(*p);
        }
        let load = |p: &Pod| p.running.len() + p.reserved.len() + p.eta.len();
        match self.sc.workers.deletion {
            Deletion::Newest => cands.iter().copied().max_by(|a, b| {
                self.pods[*a as usize]
                    .ready_at
                    .total_cmp(&self.pods[*b as usize].ready_at)
            }),
            Deletion::Oldest => cands.iter().copied().min_by(|a, b| {
                self.pods[*a as usize]
                    .ready_at
                    .total_cmp(&self.pods[*b as usize].ready_at)
            }),
            Deletion::Random => {
                let n = cands.len();
                (n > 0).then(|| cands[(self.rng.next_u64() % n as u64) as usize])
            }
            Deletion::LeastBusy => cands
                .iter()
                .rev()
                .copied()
                .min_by_key(|p| load(&self.pods[*p as usize])),
        }
    }

    /// SIGTERM: warm shutdown. The pod stops consuming and finishes its running tasks; the
    /// messages it holds (reserved, ETA) stay in `unacked` until the channel closes as the
    /// worker exits (`restore_held`), so a SIGKILL before that strands them (`kill`).
    fn terminate(&mut self, p: u32) {
        if self.pods[p as usize].state == PodState::Starting {
            self.gone(p);
            return;
        }
        self.pods[p as usize].state = PodState::Terminating;
        if self.pods[p as usize].running.is_empty() {
            self.restore_held(p);
            self.gone(p);
        } else {
            self.at(self.now + self.sc.workers.termination_grace, Ev::Kill(p));
        }
    }

    /// The end of a completed warm shutdown: kombu restores the pod's held messages to the
    /// head of their lists.
    fn restore_held(&mut self, p: u32) {
        let pod = &mut self.pods[p as usize];
        let reserved: Vec<Task> = pod.reserved.drain(..).collect();
        let eta: Vec<Task> = pod.eta.drain(..).map(|(_, t)| t).collect();
        for task in reserved.into_iter().rev() {
            self.counts[task.queue as usize].reserved -= 1;
            self.out.restored_at_shutdown += 1;
            self.lists[task.queue as usize][task.step as usize].push_front(task);
        }
        for task in eta {
            self.counts[task.queue as usize].scheduled -= 1;
            self.out.restored_at_shutdown += 1;
            self.lists[task.queue as usize][task.step as usize].push_front(task);
        }
        self.wake();
    }

    /// SIGKILL at the end of the grace period.
    fn kill(&mut self, p: u32) {
        if self.pods[p as usize].state != PodState::Terminating {
            return;
        }
        let vt = self.sc.workers.visibility_timeout;
        let pod = &mut self.pods[p as usize];
        let running: Vec<(u64, Task, f64)> = pod.running.drain(..).collect();
        let held: Vec<Task> = pod.reserved.drain(..).collect();
        let eta: Vec<Task> = pod.eta.drain(..).map(|(_, t)| t).collect();
        for (_, task, _) in running {
            let q = task.queue as usize;
            self.counts[q].running -= 1;
            self.out.interrupted += 1;
            if self.sc.workers.acks_late {
                // Still in `unacked`: restored after the visibility timeout, then re-run.
                self.counts[q].orphan += 1;
                self.at((task.fetched + vt).max(self.now), Ev::Restore(task));
            } else {
                self.out.lost += 1;
            }
        }
        // Held messages the warm shutdown never got to restore stay in `unacked` too.
        for (task, eta) in held
            .into_iter()
            .map(|t| (t, false))
            .chain(eta.into_iter().map(|t| (t, true)))
        {
            let c = &mut self.counts[task.queue as usize];
            if eta {
                c.scheduled -= 1;
            } else {
                c.reserved -= 1;
            }
            c.orphan += 1;
            self.at((task.fetched + vt).max(self.now), Ev::Restore(task));
        }
        self.gone(p);
    }

    /// The signals at this tick, computed exactly (an oracle, not the scaler's estimators):
    /// backlog and in-flight counts from the lists and pods, λ and the dequeue rate from
    /// counted arrivals and starts over the configured windows, S from completed tasks, the
    /// wait from the oldest list head. Tags name the source the real sampler would use.
    fn sample(&mut self) {
        let sc = self.sc;
        let s = &sc.sampler;
        let mut queues = Vec::with_capacity(sc.queues.len());
        let mut live = Vec::with_capacity(sc.queues.len());
        for (qi, spec) in sc.queues.iter().enumerate() {
            let c = self.counts[qi];
            let backlog: usize = self.lists[qi].iter().map(VecDeque::len).sum();
            let in_unacked_running = if sc.workers.acks_late { c.running } else { 0 };
            queues.push(QueueSignals {
                name: spec.name.clone(),
                backlog: backlog as u64,
                reserved: c.reserved + in_unacked_running + c.orphan,
                scheduled: c.scheduled,
                stale: 0,
            });
            let p95 = self.service_p95(qi);
            let st = &self.stats[qi];
            let slow = st.arrivals.sum(self.now, s.rate_window) / f64::from(s.rate_window);
            // λ over `rate_window` only: the backlog shows a burst at once (the drain term),
            // and a fast path would hold a burst's peak rate as pods for the HPA's 5-minute
            // scale-down window. (`fast_window` no longer feeds the oracle.)
            let n = st.done_n.sum(self.now, s.service_window);
            let oldest = self.lists[qi]
                .iter()
                .filter_map(|l| l.front())
                .map(|t| t.arrival)
                .fold(f64::INFINITY, f64::min);
            live.push(LiveSignals {
                name: spec.name.clone(),
                running: s
                    .heartbeats
                    .then(|| Estimate::new(c.running as f64, "heartbeat")),
                arrival_rate: Some(Estimate::new(slow, "keyspace")),
                dequeue_rate: Some(Estimate::new(
                    st.starts.sum(self.now, s.rate_window) / f64::from(s.rate_window),
                    "keyspace",
                )),
                service_time: (n > 0.0).then(|| {
                    Estimate::new(st.done_sum.sum(self.now, s.service_window) / n, "heartbeat")
                }),
                service_time_p95: p95.map(|v| Estimate::new(v, "heartbeat")),
                wait: oldest
                    .is_finite()
                    .then(|| Estimate::new(self.now - oldest, "counters")),
            });
        }
        self.view = (queues, live);
    }

    /// The p95 duration of the tasks of queue `qi` completed in the service window.
    fn service_p95(&mut self, qi: usize) -> Option<f64> {
        let horizon = self.now - f64::from(self.sc.sampler.service_window);
        let recent = &mut self.stats[qi].done_recent;
        while recent.front().is_some_and(|(t, _)| *t <= horizon) {
            recent.pop_front();
        }
        let mut d: Vec<f64> = recent.iter().map(|(_, d)| *d).collect();
        let k = ((d.len() as f64) * 0.95).ceil() as usize;
        let k = k.checked_sub(1)?;
        Some(*d.select_nth_unstable_by(k, f64::total_cmp).1)
    }

    fn series_row(&self) -> SeriesRow {
        let backlog: usize = self
            .lists
            .iter()
            .flat_map(|l| l.iter().map(VecDeque::len))
            .sum();
        let oldest = self
            .lists
            .iter()
            .flat_map(|l| l.iter().filter_map(|x| x.front()))
            .map(|t| t.arrival)
            .fold(f64::INFINITY, f64::min);
        SeriesRow {
            t: self.now,
            replicas: self.scaler.replicas,
            ready: self
                .live
                .iter()
                .filter(|p| self.pods[**p as usize].state == PodState::Ready)
                .count() as u32,
            backlog: backlog as u64,
            running: self.counts.iter().map(|c| c.running).sum(),
            oldest_wait: if oldest.is_finite() {
                self.now - oldest
            } else {
                0.0
            },
            metric: self.last_metric,
        }
    }

    /// Closes the books at the end of the run: censored waits and the pods still alive.
    fn finish(&mut self) {
        let end = self.end;
        let mut censored = Vec::new();
        for l in self.lists.iter().flatten() {
            censored.extend(
                l.iter()
                    .filter(|t| !t.started)
                    .map(|t| (end - t.due).max(0.0)),
            );
        }
        for p in &self.live {
            let pod = &self.pods[*p as usize];
            censored.extend(
                pod.reserved
                    .iter()
                    .chain(pod.eta.iter().map(|(_, t)| t))
                    .filter(|t| !t.started)
                    .map(|t| (end - t.due).max(0.0)),
            );
            self.out.pod_seconds += end - pod.created;
        }
        // Tasks stranded in `unacked` whose restore comes after the end.
        censored.extend(self.heap.iter().filter_map(|e| match e.ev {
            Ev::Restore(t) if !t.started => Some((end - t.due).max(0.0)),
            _ => None,
        }));
        self.out.unfinished = censored.len() as u64;
        self.out
            .waits
            .extend(censored.into_iter().map(|w| w as f32));
    }
}
