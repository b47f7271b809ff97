//! One broker's sampler task: each tick it reads the union of the registered watch sets
//! (every `LLEN` plus the `unacked` trackers' probes in one pipelined round trip, then the
//! trackers' follow-ups), computes per-queue signals once per distinct (prefix, queue,
//! visibility timeout), and publishes the result as the latest [`Snapshot`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::conn::{Link, Timeouts};
use super::error::BrokerError;
use super::events::Events;
use super::live::{self, LiveBook, LiveData, Plan, TickExtras};
use super::metrics::{self, QueueSeries, REDIS_ERRORS, SAMPLE_AGE, SAMPLE_DURATION, WATCH_SETS};
use super::reply::{self, KeyKind, UnreadableKey};
use super::supervise::SupervisedEvents;
use super::tracker::{Counts, Tracker};
use super::{BrokerSpec, SamplerSettings, WatchSet, WatchView};
use crate::celery::Layout;
use crate::signals::QueueSignals;

/// The scaler's wall clock, epoch seconds.
pub(crate) fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

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
    pub watches: Mutex<WatchTable>,
    pub wake: Notify,
    pub snapshots: watch::Sender<Option<Arc<Snapshot>>>,
}

impl Shared {
    /// Makes a tick's outcome the latest snapshot.
    fn publish(
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
    fn current_watches(&self, expiry: Duration) -> (Vec<WatchSet>, u64) {
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

    pub(crate) fn new(label: String) -> Self {
        Self {
            label,
            watches: Mutex::new(WatchTable::default()),
            wake: Notify::new(),
            snapshots: watch::channel(None).0,
        }
    }
}

/// In-flight counts are computed per (prefix, separator, visibility timeout) group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FlightGroup {
    prefix: Vec<u8>,
    separator: Vec<u8>,
    visibility_timeout_ms: u64,
}

impl FlightGroup {
    fn of(w: &WatchSet) -> Self {
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
    backlog: HashMap<Layout, HashMap<String, u64>>,
    in_flight: HashMap<FlightGroup, HashMap<String, Counts>>,
    /// Keys skipped for their type: (key prefix, queue for queue keys, key).
    unreadable: Vec<(Vec<u8>, Option<String>, UnreadableKey)>,
}

impl SampleData {
    /// Sets the unreadable-key gauges of `label` from this sample.
    fn export_unreadable(&self, label: &str) {
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        for (_, _, k) in &self.unreadable {
            *counts.entry(k.kind.as_str()).or_default() += 1;
        }
        metrics::set_unreadable(label, &counts);
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
                let counts = super::LiveCounts {
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
            heartbeats: super::Heartbeats(self.live.heartbeats.get(&watch.layout.prefix).cloned()),
        }))
    }
}

/// The metric label of a queue: the prefix (lossy text) followed by the name.
fn queue_label(layout: &Layout, queue: &str) -> String {
    format!("{}{queue}", String::from_utf8_lossy(&layout.prefix))
}

/// The reading side of one broker: its connection and its trackers.
struct Reader {
    label: String,
    link: Link,
    trackers: HashMap<Vec<u8>, Tracker>,
    reconcile_period: Duration,
    /// Extra reads for the live signals, set before each tick.
    plan: Plan,
    check_keyspace: bool,
    /// What the last tick read for the live signals.
    extras: TickExtras,
}

impl Reader {
    fn new(spec: BrokerSpec, label: &str, timeouts: Timeouts, reconcile_period: Duration) -> Self {
        Self {
            label: label.to_string(),
            link: Link::new(spec, label.to_string(), timeouts),
            trackers: HashMap::new(),
            reconcile_period,
            plan: Plan::default(),
            check_keyspace: true,
            extras: TickExtras::default(),
        }
    }

    async fn sample(&mut self, watches: &[WatchSet]) -> Result<SampleData, BrokerError> {
        let was_connected = self.link.is_connected();
        match self.sample_once(watches).await {
            Err(BrokerError::Connect { .. }) if was_connected => {
                debug!(broker = %self.label, "connection lost; reconnecting once");
                self.link.reset();
                self.sample_once(watches).await
            }
            other => other,
        }
    }

    /// Σ `LLEN` of one queue's keys; a key of another type counts 0 and is reported.
    fn backlog_of(
        &self,
        layout: &Layout,
        queue: &str,
        keys: &[Vec<u8>],
        replies: &[redis::Value],
        data: &mut SampleData,
    ) -> Result<u64, BrokerError> {
        let mut sum = 0;
        for (key, v) in keys.iter().zip(replies) {
            if reply::is_wrong_type(v) {
                debug!(broker = %self.label, queue, "a queue key is not a list; counted as 0");
                data.unreadable.push((
                    layout.prefix.clone(),
                    Some(queue.to_string()),
                    UnreadableKey::new(KeyKind::Queue, key),
                ));
                continue;
            }
            sum += reply::int(&self.label, v)?;
        }
        Ok(sum)
    }

    async fn sample_once(&mut self, watches: &[WatchSet]) -> Result<SampleData, BrokerError> {
        let now = epoch_now();
        let mut lists: Vec<(&Layout, &str, usize)> = Vec::new();
        let mut seen: HashSet<(&Layout, &str)> = HashSet::new();
        let mut list_keys: Vec<Vec<u8>> = Vec::new();
        let mut pipe = redis::pipe();
        for w in watches {
            for q in &w.queues {
                if seen.insert((&w.layout, q.as_str())) {
                    let keys = w.layout.queue_keys(q);
                    lists.push((&w.layout, q.as_str(), keys.len()));
                    for key in keys {
                        pipe.cmd("LLEN").arg(&key);
                        list_keys.push(key);
                    }
                }
            }
        }
        let extra_at = pipe.len();
        live::append_reads(&mut pipe, &self.plan, self.check_keyspace);
        let prefixes: BTreeSet<&[u8]> =
            watches.iter().map(|w| w.layout.prefix.as_slice()).collect();
        self.trackers.retain(|p, _| prefixes.contains(p.as_slice()));
        let mut probes = Vec::with_capacity(prefixes.len());
        for prefix in &prefixes {
            let tracker = self
                .trackers
                .entry(prefix.to_vec())
                .or_insert_with(|| Tracker::new(&self.label, prefix));
            probes.push((
                prefix.to_vec(),
                tracker.probe(&mut pipe, now, self.reconcile_period),
            ));
        }
        let answers = self.link.round_trip(&pipe).await?;
        self.extras = TickExtras::default();
        for (key, v) in list_keys.iter().zip(&answers) {
            if let redis::Value::Int(n) = v {
                self.extras
                    .llen
                    .insert(key.clone(), u64::try_from(*n).unwrap_or(0));
            }
        }
        live::read_answers(
            &mut self.extras,
            &self.plan,
            self.check_keyspace,
            answers.get(extra_at..).unwrap_or_default(),
        );

        let mut data = SampleData::default();
        let mut at = 0;
        for (layout, queue, n) in lists {
            let keys = list_keys.get(at..at + n).unwrap_or_default();
            let replies = answers.get(at..at + n).unwrap_or_default();
            let sum = self.backlog_of(layout, queue, keys, replies, &mut data)?;
            at += n;
            data.backlog
                .entry(layout.clone())
                .or_default()
                .insert(queue.to_string(), sum);
        }
        for (prefix, probe) in probes {
            if let Some(tracker) = self.trackers.get_mut(&prefix) {
                tracker.finish(probe, &answers, &mut self.link).await?;
            }
        }

        for (prefix, tracker) in &mut self.trackers {
            live::attribute_churn(&mut self.extras, prefix, tracker, watches);
            for k in tracker.unreadable() {
                data.unreadable.push((prefix.clone(), None, k));
            }
        }

        let mut groups: HashMap<FlightGroup, HashSet<&str>> = HashMap::new();
        for w in watches {
            groups
                .entry(FlightGroup::of(w))
                .or_default()
                .extend(w.queues.iter().map(String::as_str));
        }
        for (group, queues) in groups {
            let Some(tracker) = self.trackers.get(&group.prefix) else {
                continue;
            };
            let vt = group.visibility_timeout_ms as f64 / 1000.0;
            let counts = tracker.count(&group.separator, vt, &queues, now);
            data.in_flight.insert(group, counts);
        }
        Ok(data)
    }
}

/// Runs one broker's sampler until `cancel` fires or no watch set is left (then `retire`
/// must confirm, under the registry's lock, that none was registered meanwhile).
pub(crate) async fn run(
    spec: BrokerSpec,
    shared: Arc<Shared>,
    settings: SamplerSettings,
    cancel: CancellationToken,
    retire: impl Fn(&Arc<Shared>) -> bool + Send,
) {
    let label = shared.label.clone();
    let timeouts = Timeouts {
        connect: settings.connect_timeout,
        command: settings.command_timeout,
    };
    let mut reader = Reader::new(spec, &label, timeouts, settings.reconcile_period);
    let events_cancel = cancel.child_token();
    // Ends the pub/sub task also when this task panics.
    let _events_guard = events_cancel.clone().drop_guard();
    let mut events = SupervisedEvents::spawn(
        reader.link.spec().clone(),
        shared.clone(),
        timeouts,
        settings.signal_window.as_secs_f64(),
        settings.heartbeat_limits,
        events_cancel.clone(),
    );
    let mut live = LiveBook::new(settings.signal_window.as_secs_f64());
    let mut keyspace_checked: Option<Instant> = None;
    let mut live_data = Arc::new(LiveData::default());
    let mut series = QueueSeries::default();
    let mut next = Instant::now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep_until(next.into()) => {}
            () = shared.wake.notified() => {}
        }
        let (watches, covers_upto) = shared.current_watches(settings.idle_expiry);
        WATCH_SETS
            .with_label_values(&[label.as_str()])
            .set(watches.len() as f64);
        if watches.is_empty() {
            if retire(&shared) {
                break;
            }
            next = Instant::now() + settings.interval;
            continue;
        }
        reader.plan = live.plan(&watches);
        reader.check_keyspace =
            keyspace_checked.is_none_or(|t| t.elapsed() >= settings.reconcile_period);
        let started = Instant::now();
        super::test_hook::burn();
        super::test_hook::maybe_panic();
        let outcome = tokio::select! {
            () = cancel.cancelled() => break,
            r = reader.sample(&watches) => r,
        };
        let elapsed = started.elapsed();
        SAMPLE_DURATION
            .with_label_values(&[label.as_str()])
            .observe(elapsed.as_secs_f64());
        match &outcome {
            Ok(data) => {
                SAMPLE_AGE.sampled(&label, Instant::now());
                export(&label, &watches, data, &mut series);
                data.export_unreadable(&label);
                live_data = Arc::new(update_live(
                    &mut live,
                    &mut reader,
                    events.get(),
                    &watches,
                    data,
                    &mut keyspace_checked,
                ));
                live::warn_unobservable(&label, &live_data);
                metrics::export_live(&label, &live_data, &watches, epoch_now());
                debug!(broker = %label, watch_sets = watches.len(), ms = elapsed.as_millis() as u64, "sampled");
            }
            Err(e) => {
                REDIS_ERRORS
                    .with_label_values(&[label.as_str(), e.kind()])
                    .inc();
                warn!(broker = %label, kind = e.kind(), error = %e, "sample failed");
            }
        }
        shared.publish(covers_upto, outcome, live_data.clone());
        let mut desired = live.desired(&watches, reader.link.spec().db);
        desired.addr = reader.link.addr().cloned();
        events.check().await;
        events.get().want(desired);
        next = started + settings.interval;
    }
    events_cancel.cancel();
    events.join().await;
    metrics::remove_broker(&label, &mut series);
    metrics::remove_broker_data(&label);
    debug!(broker = %label, "sampler stopped");
}

/// Sets the per-queue gauges from one sample (first watch set wins for a queue label).
fn export(label: &str, watches: &[WatchSet], data: &SampleData, series: &mut QueueSeries) {
    let mut done = BTreeSet::new();
    for w in watches {
        let flights = data.in_flight.get(&FlightGroup::of(w));
        for q in &w.queues {
            let name = queue_label(&w.layout, q);
            if done.contains(&name) {
                continue;
            }
            let backlog = data
                .backlog
                .get(&w.layout)
                .and_then(|b| b.get(q))
                .copied()
                .unwrap_or(0);
            let counts = flights.and_then(|f| f.get(q)).copied().unwrap_or_default();
            series.set(label, &name, backlog, counts);
            done.insert(name);
        }
    }
    series.retain(label, &done);
}

/// Folds a good tick into the live state (see `live`).
fn update_live(
    live: &mut LiveBook,
    reader: &mut Reader,
    events: &Events,
    watches: &[WatchSet],
    data: &SampleData,
    keyspace_checked: &mut Option<Instant>,
) -> LiveData {
    let mut extras = std::mem::take(&mut reader.extras);
    if let Some(k) = extras.keyspace {
        if k != live.keyspace {
            debug!(broker = %reader.label, keyspace = ?k, "keyspace notifications checked");
        }
        live.keyspace = k;
        *keyspace_checked = Some(Instant::now());
    }
    let backlog = |layout: &Layout, q: &str| {
        data.backlog
            .get(layout)
            .and_then(|b| b.get(q))
            .copied()
            .unwrap_or(0)
    };
    let in_flight = |w: &WatchSet, q: &str| {
        data.in_flight
            .get(&FlightGroup::of(w))
            .and_then(|f| f.get(q))
            .map_or(0, |[r, _, s]| r + s)
    };
    let mut state = events.lock();
    live.update(
        epoch_now(),
        watches,
        &mut extras,
        &mut state,
        backlog,
        in_flight,
    )
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
