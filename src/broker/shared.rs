//! State shared between one broker's sampler and the requests that read it: the registered
//! watch sets, and the latest tick's snapshot with its per-watch-set view.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::clock::epoch_now;
use super::error::BrokerError;
use super::reply::KeyKind;
use super::reply::UnreadableKey;
use super::tracker::Counts;
use super::view::{Heartbeats, LiveCounts, WatchView};
use crate::celery::Layout;
use crate::signals::live::LiveData;
use crate::signals::QueueSignals;
use crate::spec::WatchSet;
use crate::telemetry::BrokerMetrics;

/// A registered watch set.
pub(crate) struct WatchEntry {
    /// Registration order; a snapshot covers every id up to its `covers_upto`.
    pub id: u64,
    pub last_used: Instant,
    /// Live subscriptions; a held watch set never expires.
    pub holders: usize,
}

/// The watch sets of one broker.
#[derive(Default)]
pub(crate) struct WatchTable {
    pub entries: HashMap<WatchSet, WatchEntry>,
    pub next_id: u64,
}

/// State shared between one broker's sampler and the requests that read it.
pub(crate) struct Shared {
    pub label: String,
    /// The broker's series, under its label.
    pub metrics: BrokerMetrics,
    pub watches: Mutex<WatchTable>,
    pub wake: Arc<Notify>,
    pub snapshots: watch::Sender<Option<Arc<Snapshot>>>,
}

impl Shared {
    /// Makes a tick's outcome the latest snapshot.
    pub(crate) fn publish(
        &self,
        covers_upto: u64,
        outcome: Result<SampleData, BrokerError>,
        live: Arc<LiveData>,
    ) {
        let snapshot = Snapshot {
            covers_upto,
            sampled_at: epoch_now(),
            taken: Instant::now(),
            outcome: outcome.map(Arc::new),
            live,
        };
        self.snapshots.send_replace(Some(Arc::new(snapshot)));
    }

    /// Drops watch sets idle for `expiry` (and not held); returns the others and the highest
    /// registration id among them.
    pub(crate) fn current_watches(&self, expiry: Duration) -> (Vec<WatchSet>, u64) {
        let mut table = match self.watches.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        table
            .entries
            .retain(|_, e| e.holders > 0 || e.last_used.elapsed() < expiry);
        let ids = table.entries.values().map(|e| e.id).max().unwrap_or(0);
        (table.entries.keys().cloned().collect(), ids)
    }

    pub(crate) fn new(metrics: BrokerMetrics) -> Self {
        Self {
            label: metrics.label().to_string(),
            metrics,
            watches: Mutex::new(WatchTable::default()),
            wake: Arc::new(Notify::new()),
            snapshots: watch::channel(None).0,
        }
    }
}

/// In-flight counts are computed per (prefix, separator, visibility timeout) group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FlightGroup {
    pub prefix: Vec<u8>,
    pub separator: Vec<u8>,
    pub visibility_timeout_ms: u64,
}

impl FlightGroup {
    pub(crate) fn of(w: &WatchSet) -> Self {
        Self {
            prefix: w.layout.prefix.clone(),
            separator: w.layout.separator.clone(),
            visibility_timeout_ms: w.visibility_timeout_ms,
        }
    }
}

/// What one successful tick read.
#[derive(Default)]
pub(crate) struct SampleData {
    pub backlog: HashMap<Layout, HashMap<String, u64>>,
    pub in_flight: HashMap<FlightGroup, HashMap<String, Counts>>,
    /// Keys skipped for their type: (key prefix, queue for queue keys, key).
    pub unreadable: Vec<(Vec<u8>, Option<String>, UnreadableKey)>,
}

impl SampleData {
    /// Sets the unreadable-key gauges of the broker from this sample (every kind, zeros
    /// included).
    pub(crate) fn export_unreadable(&self, metrics: &BrokerMetrics) {
        let counts = KeyKind::ALL.map(|kind| {
            let n = self
                .unreadable
                .iter()
                .filter(|(_, _, k)| k.kind == kind)
                .count();
            (kind.as_str(), n)
        });
        metrics.set_unreadable(&counts);
    }
}

/// The latest tick of one broker.
pub(crate) struct Snapshot {
    /// Every watch set with an id up to this one was part of the tick.
    pub covers_upto: u64,
    pub sampled_at: f64,
    pub taken: Instant,
    pub outcome: Result<Arc<SampleData>, BrokerError>,
    /// Arrival/dequeue rates, waits and heartbeats of the tick (issue 4).
    pub live: Arc<LiveData>,
}

impl Snapshot {
    /// `watch`'s view in this snapshot, or the tick's error, or `Stale` when too old.
    pub(crate) fn view(
        &self,
        label: &str,
        watch: &WatchSet,
        max_age: Duration,
    ) -> Result<Arc<WatchView>, BrokerError> {
        let data = self.outcome.as_ref().map_err(Clone::clone)?;
        let age = self.taken.elapsed();
        if age > max_age {
            return Err(BrokerError::Stale {
                broker: label.to_string(),
                age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                bound_ms: u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX),
            });
        }
        let backlog = data.backlog.get(&watch.layout);
        let flights = data.in_flight.get(&FlightGroup::of(watch));
        let queues = watch
            .queues
            .iter()
            .map(|q| {
                let [reserved, scheduled, stale] =
                    flights.and_then(|f| f.get(q)).copied().unwrap_or_default();
                QueueSignals {
                    name: q.clone(),
                    backlog: backlog.and_then(|b| b.get(q)).copied().unwrap_or(0),
                    reserved,
                    scheduled,
                    stale,
                }
            })
            .collect();
        let (live, counts) = watch
            .queues
            .iter()
            .map(|q| {
                let id = (watch.layout.clone(), q.clone());
                let e = self.live.queues.get(&id).cloned().unwrap_or_default();
                let counts = LiveCounts {
                    name: q.clone(),
                    arrived: e.arrived,
                    dequeued: e.dequeued,
                    exact: e.exact,
                };
                (e.signals(q), counts)
            })
            .unzip();
        let unreadable = data
            .unreadable
            .iter()
            .filter(|(prefix, queue, _)| {
                *prefix == watch.layout.prefix
                    && queue.as_ref().is_none_or(|q| watch.queues.contains(q))
            })
            .map(|(_, _, k)| k.clone())
            .collect();
        Ok(Arc::new(WatchView {
            unreadable,
            broker: label.to_string(),
            sampled_at: self.sampled_at,
            queues,
            live,
            counts,
            heartbeats: Heartbeats(self.live.heartbeats.get(&watch.layout.prefix).cloned()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> WatchSet {
        WatchSet {
            layout: Layout::default(),
            queues: vec!["a".into(), "b".into()],
            visibility_timeout_ms: 1000,
            worker_hostnames: None,
        }
    }

    fn data() -> SampleData {
        let w = watch();
        let mut data = SampleData::default();
        data.backlog
            .entry(w.layout.clone())
            .or_default()
            .insert("a".into(), 3);
        data.in_flight
            .entry(FlightGroup::of(&w))
            .or_default()
            .insert("b".into(), [1, 2, 3]);
        data
    }

    #[test]
    fn views_come_from_the_snapshot_maps() {
        let snap = Snapshot {
            covers_upto: 1,
            sampled_at: 5.0,
            taken: Instant::now(),
            outcome: Ok(Arc::new(data())),
            live: Arc::default(),
        };
        let v = snap
            .view("b/0", &watch(), Duration::from_secs(1))
            .expect("fresh");
        assert_eq!(v.broker, "b/0");
        assert_eq!((v.queues[0].backlog, v.queues[0].reserved), (3, 0));
        let b = &v.queues[1];
        assert_eq!((b.backlog, b.reserved, b.scheduled, b.stale), (0, 1, 2, 3));
        // Another visibility timeout is another group: no in-flight numbers borrowed.
        let other = WatchSet {
            visibility_timeout_ms: 2000,
            worker_hostnames: None,
            ..watch()
        };
        let v = snap
            .view("b/0", &other, Duration::from_secs(1))
            .expect("fresh");
        assert_eq!(v.queues[1].reserved, 0);
    }

    #[test]
    fn old_snapshots_are_stale_and_errors_pass_through() {
        let Some(taken) = Instant::now().checked_sub(Duration::from_secs(30)) else {
            return;
        };
        let old = Snapshot {
            covers_upto: 1,
            sampled_at: 0.0,
            taken,
            outcome: Ok(Arc::new(data())),
            live: Arc::default(),
        };
        let err = old
            .view("b/0", &watch(), Duration::from_secs(10))
            .expect_err("stale");
        assert_eq!(err.kind(), "stale");
        let failed = Snapshot {
            covers_upto: 1,
            sampled_at: 0.0,
            taken: Instant::now(),
            outcome: Err(BrokerError::Connect {
                broker: "b/0".into(),
                detail: "refused".into(),
            }),
            live: Arc::default(),
        };
        let err = failed
            .view("b/0", &watch(), Duration::from_secs(10))
            .expect_err("error");
        assert_eq!(err.kind(), "connect");
    }
}
