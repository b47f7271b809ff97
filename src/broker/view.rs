//! What a request reads from a broker: one watch set's view of the latest sample.

use std::sync::Arc;

use super::clock::epoch_now;
use super::reply::UnreadableKey;
use crate::signals::heartbeat::HeartbeatBook;
use crate::signals::live::live_signals;
use crate::signals::{LiveSignals, QueueSignals};

/// What one watch set looks like in one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchView {
    /// The broker's label (`host:port/db`).
    pub broker: String,
    /// When the sample was taken, epoch seconds (scaler clock).
    pub sampled_at: f64,
    /// One entry per queue of the watch set, in its order.
    pub queues: Vec<QueueSignals>,
    /// The sampler's live estimates per queue, in the same order (without heartbeats, which
    /// depend on the trigger: see [`WatchView::live_signals`]).
    pub live: Vec<LiveSignals>,
    /// Arrivals and dequeues counted per queue, in the same order.
    pub counts: Vec<LiveCounts>,
    /// Worker heartbeats heard on the watch set's key prefix.
    pub heartbeats: Heartbeats,
    /// Keys of this watch set (its queues, its prefix's `unacked`, `unacked_index` and
    /// binding sets) that the sample skipped because they hold another type (`WRONGTYPE`).
    pub unreadable: Vec<UnreadableKey>,
}

/// One queue's arrival and dequeue counters (since the sampler first watched it) and the
/// counting mode of the latest tick: exact (keyspace notifications) or estimated.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LiveCounts {
    pub name: String,
    pub arrived: u64,
    pub dequeued: u64,
    pub exact: bool,
}

/// A read-only copy of one prefix's worker heartbeats (compared by identity).
#[derive(Clone, Debug, Default)]
pub struct Heartbeats(pub(crate) Option<Arc<HeartbeatBook>>);

impl PartialEq for Heartbeats {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl WatchView {
    /// Live signals for a trigger whose workers' hostnames match `worker_hostnames` (a glob,
    /// or a prefix without wildcards): the sampler's estimates (with how long ago they were
    /// sampled, [`LiveSignals::sampled_ago`]) plus running tasks, start rate and service
    /// time from those workers' heartbeats. (The running gauges on `/metrics`
    /// are the sampler's, set every tick.)
    pub fn live_signals(&self, worker_hostnames: Option<&str>) -> Vec<LiveSignals> {
        let now = epoch_now();
        live_signals(
            now,
            &self.live,
            self.heartbeats.0.as_deref(),
            worker_hostnames,
        )
        .into_iter()
        .map(|l| l.asked_after(now - self.sampled_at))
        .collect()
    }
}
