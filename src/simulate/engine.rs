//! The discrete-event core: a broker (FIFO lists per queue and priority step), worker pods
//! (`pods`: prefetch, early ack or `acks_late`, ETA holds, start-up delay, warm shutdown and
//! SIGKILL at the end of the grace period), the scaler's sampler, and KEDA + the HPA driving
//! the replica count from one policy.
//!
//! On signals "real" (`PolicyKind::Ours(_, Signals::Real)`) the sampler is the scaler's own:
//! `sampler` builds at each tick what the broker module would read from Redis (list lengths,
//! ends and `LPOS` anchors, the `unacked` entries present at that instant, keyspace events
//! when the scenario turns notifications on, heartbeats every 2 s when it names the
//! workers) and runs the pure core of `signals::live` on it, so the policy sees the
//! estimates the scaler would compute, noise included. On signals "oracle" the live
//! signals are computed exactly from the model (`observe`): what the policy does with
//! perfect estimates.

mod buckets;
mod observe;
mod pods;
mod sampler;
mod state;

use std::collections::{BinaryHeap, HashMap, VecDeque};

use buckets::QueueStats;
use sampler::SimSampler;
use state::{Counts, Ev, PodState, Sim, BRPOP_TIMEOUT};

use super::autoscale::{Autoscaler, MetricSample};
use super::error::SimError;
use super::outcome::{Outcome, PolicyKind, PolicyRun, SeriesRow, Signals};
use super::rng::Rng;
use super::scenario::Scenario;
use super::workload::{streams, Task, TaskMaker};
use crate::policy::{decide_live, Decision, PolicySettings};
use crate::signals::LiveSignals;

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

/// The scaler's sampler, for a run of our policy on real signals.
fn real_sampler(sc: &Scenario, kind: &PolicyKind, steps: &[u8]) -> Option<SimSampler> {
    let PolicyKind::Ours(settings, Signals::Real) = kind else {
        return None;
    };
    let task_duration = match settings {
        PolicySettings::Latency(l) => l.task_duration,
        PolicySettings::Backlog { .. } => None,
    };
    let names: Vec<String> = sc.queues.iter().map(|q| q.name.clone()).collect();
    let sampler = SimSampler::new(&names, steps, &sc.sampler, task_duration);
    Some(sampler.with_visibility_timeout(sc.workers.visibility_timeout))
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
        cadence: 0,
        next_id: 0,
        streams: all_streams,
        makers,
        lists: vec![vec![VecDeque::new(); steps.len()]; nq],
        bare_step: steps.iter().position(|s| *s == 0).unwrap_or(0),
        pods: Vec::new(),
        live: Vec::new(),
        waiters: VecDeque::new(),
        counts: vec![Counts::default(); nq],
        stats: (0..nq).map(|_| QueueStats::new(window)).collect(),
        stranded: HashMap::new(),
        sampler: real_sampler(sc, &policy.kind, &steps),
        scaler: Autoscaler::new(sc.keda.clone()),
        rng: Rng::derive(sc.seed, 0x3000),
        prefetch,
        view: (Vec::new(), Vec::new()),
        view_at: 0.0,
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
    fn run(&mut self) {
        for i in 0..self.streams.len() {
            if let Some((t, _)) = self.streams[i].1.next {
                self.at(t, Ev::Arrive(i as u32));
            }
        }
        self.at(0.0, Ev::Tick(0));
        self.at(0.0, Ev::Poll);
        self.at(0.0, Ev::Sync);
        self.at(0.0, Ev::Series);
        if self.sampler.is_some() {
            self.at(0.0, Ev::Beat);
        }
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
            Ev::Restore(mut task) => {
                task.redelivered = true;
                self.counts[task.queue as usize].orphan -= 1;
                self.stranded.remove(&task.id);
                self.lists[task.queue as usize][task.step as usize].push_front(task);
                self.key_event(task.queue as usize, task.step as usize, b"rpush");
                self.wake();
            }
            Ev::Tick(c) if c == self.cadence => {
                self.tick();
                self.at(self.now + sc.sampler.tick, Ev::Tick(c));
            }
            Ev::Tick(_) => {}
            Ev::Wake => {
                self.tick();
                self.cadence += 1;
                self.at(self.now + sc.sampler.tick, Ev::Tick(self.cadence));
            }
            Ev::Beat => {
                self.beat();
                self.at(self.now + sampler::HEARTBEAT_FREQ, Ev::Beat);
            }
            Ev::Poll => {
                let active = match self.policy {
                    PolicyKind::KedaRedis { activation, .. } => (0..sc.queues.len())
                        .any(|q| self.lists[q][self.bare_step].len() as f64 > *activation),
                    PolicyKind::Ours(..) => self.decision().active,
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
                    PolicyKind::Ours(..) => {
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

    /// A sampler tick, and KEDA's `external-push` activation when our policy is active.
    fn tick(&mut self) {
        self.sample();
        if self.sc.keda.external_push
            && matches!(self.policy, PolicyKind::Ours(..))
            && self.decision().active
        {
            if let Some(r) = self.scaler.push(self.now) {
                self.reconcile(r);
            }
        }
    }

    fn decision(&self) -> Decision {
        match self.policy {
            PolicyKind::Ours(s, _) => {
                let elapsed = self.now - self.view_at;
                let live: Vec<LiveSignals> = self
                    .view
                    .1
                    .iter()
                    .map(|l| l.clone().asked_after(elapsed))
                    .collect();
                decide_live(s, &self.view.0, &live)
            }
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
        let mut task = self.makers[q as usize].make(q, t, given);
        task.id = self.next_id;
        self.next_id += 1;
        self.out.work += task.duration;
        self.stats[q as usize].arrivals.add(t, 1.0);
        self.stats[q as usize].last_arrival = Some(t);
        if self.idle_arrival.is_none()
            && !self
                .live
                .iter()
                .any(|p| self.pods[*p as usize].state == PodState::Ready)
        {
            self.idle_arrival = Some(t);
        }
        self.lists[q as usize][task.step as usize].push_back(task);
        self.key_event(q as usize, task.step as usize, b"lpush");
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

    /// kombu's BRPOP order: priority steps first, then queues in order.
    fn pop_task(&mut self) -> Option<Task> {
        for step in 0..self.lists.first().map_or(0, Vec::len) {
            for q in 0..self.lists.len() {
                if let Some(t) = self.lists[q][step].pop_front() {
                    self.key_event(q, step, b"rpop");
                    return Some(t);
                }
            }
        }
        None
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
        if let Some(sampler) = &self.sampler {
            let seen = &mut self.out.seen;
            seen.unacked_new = sampler.seen.unacked_new;
            seen.keyspace_events = sampler.seen.keyspace_events;
            seen.heartbeats = sampler.seen.heartbeats;
        }
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
