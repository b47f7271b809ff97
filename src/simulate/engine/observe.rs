//! What the policy is shown at each sampler tick. The readings the real sampler takes
//! exactly (backlog: Σ `LLEN`; `unacked` counts) come from the model's state either way; the
//! live signals come from the scaler's own estimators fed the sampler's observations
//! (`sampler`, signals "real") or are computed exactly from the model (signals "oracle":
//! rates from counted arrivals and starts, S from completed tasks, the wait from the oldest
//! list head, tagged with the source the real sampler would use).

use std::collections::VecDeque;

use super::sampler::{Beat, Unacked};
use super::state::{PodState, Sim};
use crate::signals::{Estimate, LiveSignals, QueueSignals, Source};

impl Sim<'_> {
    /// One sampler tick: refreshes `view`.
    pub(crate) fn sample(&mut self) {
        let queues = self.queue_signals();
        let live = if self.sampler.is_some() {
            let unacked = self.unacked_entries();
            let now = self.now;
            match self.sampler.as_mut() {
                Some(s) => s.tick(now, &queues, &self.lists, unacked.into_iter()),
                None => Vec::new(),
            }
        } else {
            self.oracle_live()
        };
        let shown: f64 = live
            .iter()
            .filter_map(|l| l.arrival_rate)
            .map(|e| e.value)
            .sum();
        self.out.seen.shown(self.now, shown);
        self.view = (queues, live);
        self.view_at = self.now;
    }

    /// The readings of each queue: backlog over its priority keys, and its `unacked`
    /// entries (prefetched, running under `acks_late`, stranded by a kill; held for an ETA).
    fn queue_signals(&self) -> Vec<QueueSignals> {
        let acks_late = self.sc.workers.acks_late;
        self.sc
            .queues
            .iter()
            .enumerate()
            .map(|(qi, spec)| {
                let c = self.counts[qi];
                let backlog: usize = self.lists[qi].iter().map(VecDeque::len).sum();
                let in_unacked_running = if acks_late { c.running } else { 0 };
                QueueSignals {
                    name: spec.name.clone(),
                    backlog: backlog as u64,
                    reserved: c.reserved + in_unacked_running + c.orphan,
                    scheduled: c.scheduled,
                    stale: 0,
                }
            })
            .collect()
    }

    /// The `unacked` entries present now: what pods hold (prefetched, held for an ETA,
    /// running under `acks_late`: early ack removes a task as it starts) and what killed pods
    /// left behind.
    pub(crate) fn unacked_entries(&self) -> Vec<Unacked> {
        let acks_late = self.sc.workers.acks_late;
        let mut out: Vec<Unacked> = self.stranded.values().map(Unacked::of).collect();
        for p in &self.live {
            let pod = &self.pods[*p as usize];
            out.extend(pod.reserved.iter().map(Unacked::of));
            out.extend(pod.eta.iter().map(|(_, t)| Unacked::of(t)));
            if acks_late {
                out.extend(pod.running.iter().map(|(_, t, _)| Unacked::of(t)));
            }
        }
        out
    }

    /// Worker heartbeats: every pod whose worker is up (ready, or finishing its tasks in a
    /// warm shutdown) reports its running tasks and the tasks it started; a worker's first
    /// event is its `worker-online`.
    pub(crate) fn beat(&mut self) {
        let mut beats = Vec::new();
        for p in &self.live {
            let pod = &mut self.pods[*p as usize];
            if matches!(pod.state, PodState::Ready | PodState::Terminating) {
                beats.push(Beat {
                    pod: *p,
                    active: pod.running.len() as u64,
                    processed: pod.processed,
                    online: !std::mem::replace(&mut pod.online_sent, true),
                });
            }
        }
        let now = self.now;
        if let Some(s) = self.sampler.as_mut() {
            s.beat(now, &beats);
        }
    }

    /// Pods whose worker is up (ready, or finishing its tasks in a warm shutdown): the ones
    /// that send heartbeats.
    fn workers_up(&self) -> usize {
        self.live
            .iter()
            .filter(|p| {
                matches!(
                    self.pods[**p as usize].state,
                    PodState::Ready | PodState::Terminating
                )
            })
            .count()
    }

    /// The oracle's live signals: exact, from the model's own counters.
    fn oracle_live(&mut self) -> Vec<LiveSignals> {
        let now = self.now;
        let buffered: Vec<Option<f64>> = self
            .stats
            .iter_mut()
            .map(|st| st.buffered.p95(now))
            .collect();
        let sc = self.sc;
        let s = &sc.sampler;
        let mut live = Vec::with_capacity(sc.queues.len());
        for (qi, spec) in sc.queues.iter().enumerate() {
            let c = self.counts[qi];
            let st = &self.stats[qi];
            let slow = st.arrivals.sum(self.now, s.rate_window) / f64::from(s.rate_window);
            // λ over `rate_window` only: the backlog shows a burst at once (the drain term),
            // and a fast path would hold a burst's peak rate as pods for the HPA's 5-minute
            // scale-down window. (`fast_window` no longer feeds the oracle.)
            // Under early ack the real sampler's p95 is that of the waits in pods' buffers
            // (`unacked` holds only tasks not started): the oracle gives the exact one.
            let p95 = if sc.workers.acks_late {
                st.service_p95(self.now, f64::from(s.service_window))
                    .map(|v| Estimate::new(v, Source::Heartbeat))
            } else {
                buffered[qi].map(|v| Estimate::new(v, Source::UnackedResidence))
            };
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
                    .then(|| Estimate::new(c.running as f64, Source::Heartbeat)),
                arrival_rate: Some(Estimate::new(slow, Source::Keyspace)),
                arrival_rate_steady: Some(Estimate::new(slow, Source::Keyspace)),
                rate_window: Some(f64::from(s.rate_window)),
                arrivals_quiet_for: Some(
                    st.last_arrival
                        .map_or(f64::from(s.rate_window), |t| self.now - t),
                ),
                arrivals_longest_gap: Some(st.arrivals.longest_gap(self.now, s.rate_window)),
                dequeue_rate: Some(Estimate::new(
                    st.starts.sum(self.now, s.rate_window) / f64::from(s.rate_window),
                    Source::Keyspace,
                )),
                service_time: (n > 0.0).then(|| {
                    Estimate::new(
                        st.done_sum.sum(self.now, s.service_window) / n,
                        Source::Heartbeat,
                    )
                }),
                service_time_sizing: None,
                service_rate: None,
                service_time_p95: p95,
                wait: oldest
                    .is_finite()
                    .then(|| Estimate::new(self.now - oldest, Source::Keyspace)),
                workers: s
                    .heartbeats
                    .then(|| Estimate::new(self.workers_up() as f64, Source::Heartbeat)),
                sampled_ago: 0.0,
                // Exact ages, but the policy still looks only at ticks.
                tick: Some(s.tick),
            });
        }
        live
    }
}
