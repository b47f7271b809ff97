//! Worker pods: prefetch (early ack or `acks_late`), task starts and completions, ETA
//! holds, the ReplicaSet's scale up and down, warm shutdown (held messages restored when the
//! worker exits) and SIGKILL at the end of the grace period (messages left in `unacked`
//! until the visibility timeout restores them).

use std::collections::VecDeque;

use super::state::{Ev, Pod, PodState, Sim};
use crate::simulate::scenario::Deletion;
use crate::simulate::workload::Task;

impl Sim<'_> {
    pub(crate) fn can_fetch(&self, p: &Pod) -> bool {
        let held = if self.sc.workers.acks_late {
            p.running.len() + p.reserved.len()
        } else {
            p.reserved.len()
        };
        p.state == PodState::Ready && held < self.prefetch
    }

    /// Fetches while the pod's prefetch allows, then starts what it can.
    pub(crate) fn pump(&mut self, p: u32) {
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

    pub(crate) fn try_start(&mut self, p: u32) {
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
            let held = self.now - task.fetched.max(task.due);
            if !self.sc.workers.acks_late && held > 0.0 {
                self.stats[q].buffered.left(self.now, held, 0.0);
            }
            self.pods[p as usize].processed += 1;
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

    pub(crate) fn finish_task(&mut self, p: u32, token: u64) {
        let pod = &mut self.pods[p as usize];
        let Some(i) = pod.running.iter().position(|(t, _, _)| *t == token) else {
            return;
        };
        let (_, task, _) = pod.running.swap_remove(i);
        let q = task.queue as usize;
        self.counts[q].running -= 1;
        let window = f64::from(self.sc.sampler.service_window);
        self.stats[q].completed(self.now, task.duration, window);
        match self.pods[p as usize].state {
            PodState::Terminating if self.pods[p as usize].running.is_empty() => {
                self.restore_held(p);
                self.gone(p);
            }
            PodState::Ready => self.pump(p),
            _ => {}
        }
    }

    pub(crate) fn eta_due(&mut self, p: u32, token: u64) {
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

    pub(crate) fn gone(&mut self, p: u32) {
        let pod = &mut self.pods[p as usize];
        pod.state = PodState::Gone;
        self.out.pod_seconds += self.now - pod.created;
        self.live.retain(|x| *x != p);
        if let Some(s) = self.sampler.as_mut() {
            s.offline(p);
        }
    }

    /// Sets the Deployment to `target` replicas (the ReplicaSet creates or deletes pods).
    pub(crate) fn reconcile(&mut self, target: u32) {
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
                processed: 0,
                online_sent: false,
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
    pub(crate) fn victim(&mut self) -> Option<u32> {
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
    pub(crate) fn terminate(&mut self, p: u32) {
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
    pub(crate) fn restore_held(&mut self, p: u32) {
        let pod = &mut self.pods[p as usize];
        let reserved: Vec<Task> = pod.reserved.drain(..).collect();
        let eta: Vec<Task> = pod.eta.drain(..).map(|(_, t)| t).collect();
        for task in reserved.into_iter().rev() {
            self.counts[task.queue as usize].reserved -= 1;
            self.push_back_to_broker(task);
        }
        for task in eta {
            self.counts[task.queue as usize].scheduled -= 1;
            self.push_back_to_broker(task);
        }
        self.wake();
    }

    /// kombu's restore of a held message: `RPUSH` to the end consumed next.
    fn push_back_to_broker(&mut self, mut task: Task) {
        task.redelivered = true;
        self.out.restored_at_shutdown += 1;
        self.lists[task.queue as usize][task.step as usize].push_front(task);
        self.key_event(task.queue as usize, task.step as usize, b"rpush");
    }

    /// SIGKILL at the end of the grace period.
    pub(crate) fn kill(&mut self, p: u32) {
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
                self.stranded.insert(task.id, task);
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
            self.stranded.insert(task.id, task);
            self.at((task.fetched + vt).max(self.now), Ev::Restore(task));
        }
        self.gone(p);
    }
}
