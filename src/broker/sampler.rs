//! One broker's sampler task: each tick it reads the union of the registered watch sets
//! (every `LLEN` plus the `unacked` trackers' probes in one pipelined round trip, then the
//! trackers' follow-ups), computes per-queue signals once per distinct (prefix, queue,
//! visibility timeout), and publishes the result as the latest snapshot (`shared.rs`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::clock::epoch_now;
use super::conn::{Link, Timeouts};
use super::error::BrokerError;
use super::events::Events;
use super::live::{self, LiveBook, LiveData, Plan, TickExtras};
use super::reply::{self, KeyKind, UnreadableKey};
use super::settings::SamplerSettings;
use super::shared::{FlightGroup, SampleData, Shared};
use super::supervise::{
    reason, AbortOnDrop, SupervisedEvents, FIRST_BACKOFF, HEALTHY_AFTER, MAX_BACKOFF,
};
use super::tracker::Tracker;
use crate::celery::Layout;
use crate::spec::{BrokerSpec, WatchSet};
use crate::telemetry::queues::{export_live, remove_broker};
use crate::telemetry::{BrokerMetrics, QueueSeries};

/// The registry's retire check, shared by every incarnation of one sampler.
pub(crate) type Retire = Arc<dyn Fn(&Arc<Shared>) -> bool + Send + Sync>;

/// Runs one broker's sampler until it ends normally (cancelled, or retired for want of watch
/// sets), restarting it when it panics.
pub(crate) async fn supervised(
    spec: BrokerSpec,
    shared: Arc<Shared>,
    settings: SamplerSettings,
    cancel: CancellationToken,
    retire: Retire,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let retire = retire.clone();
        let mut task = AbortOnDrop(tokio::spawn(run(
            spec.clone(),
            shared.clone(),
            settings.clone(),
            cancel.child_token(),
            move |s: &Arc<Shared>| retire(s),
        )));
        let why = match (&mut task.0).await {
            Ok(()) => return,
            Err(e) => reason(e),
        };
        if cancel.is_cancelled() {
            return;
        }
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
        }
        shared.metrics.restarted("sampler");
        let backoff_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
        error!(broker = %shared.label, panic = %why, backoff_ms, "sampler task failed; restarting it");
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
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
    fn new(
        spec: BrokerSpec,
        metrics: &BrokerMetrics,
        timeouts: Timeouts,
        reconcile_period: Duration,
    ) -> Self {
        Self {
            label: metrics.label().to_string(),
            link: Link::new(spec, metrics.clone(), timeouts),
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
                .or_insert_with(|| Tracker::new(self.link.metrics(), prefix));
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
    let metrics = shared.metrics.clone();
    let mut reader = Reader::new(spec, &metrics, timeouts, settings.reconcile_period);
    let events_cancel = cancel.child_token();
    // Ends the pub/sub task also when this task panics.
    let _events_guard = events_cancel.clone().drop_guard();
    let mut events = SupervisedEvents::spawn(
        reader.link.spec().clone(),
        (metrics.clone(), shared.wake.clone()),
        timeouts,
        settings.signal_window.as_secs_f64(),
        settings.heartbeat_limits,
        events_cancel.clone(),
    );
    let mut live = LiveBook::new(settings.signal_window.as_secs_f64());
    let mut keyspace_checked: Option<Instant> = None;
    let mut live_data = Arc::new(LiveData::default());
    let mut series = QueueSeries::new(metrics.clone());
    let mut next = Instant::now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep_until(next.into()) => {}
            () = shared.wake.notified() => {}
        }
        let (watches, covers_upto) = shared.current_watches(settings.idle_expiry);
        metrics.watch_sets(watches.len());
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
        metrics.sample_took(elapsed.as_secs_f64());
        match &outcome {
            Ok(data) => {
                metrics.sampled(Instant::now());
                export(&watches, data, &mut series);
                data.export_unreadable(&metrics);
                live_data = Arc::new(update_live(
                    &mut live,
                    &mut reader,
                    events.get(),
                    &watches,
                    data,
                    &mut keyspace_checked,
                ));
                live::warn_unobservable(&label, &live_data);
                export_live(&metrics, &live_data, &watches, epoch_now());
                debug!(broker = %label, watch_sets = watches.len(), ms = elapsed.as_millis() as u64, "sampled");
            }
            Err(e) => {
                metrics.error(e.kind());
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
    remove_broker(&mut series, &KeyKind::ALL.map(KeyKind::as_str));
    debug!(broker = %label, "sampler stopped");
}

/// Sets the per-queue gauges from one sample (first watch set wins for a queue label).
fn export(watches: &[WatchSet], data: &SampleData, series: &mut QueueSeries) {
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
            series.set(&name, backlog, counts);
            done.insert(name);
        }
    }
    series.retain(&done);
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
