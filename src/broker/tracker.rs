//! Incremental tracking of kombu's `unacked` hash for one key prefix of one broker.
//!
//! The hash can hold 100k entries, so it is never read whole on a tick. The tracker keeps its
//! own copy of `unacked_index` (tag → score, see [`Index`]) with each tag's parsed value, and
//! per tick sends, in the sampler's shared first round trip:
//!
//! * `ZRANGEBYSCORE idx W +inf WITHSCORES`: the *window* of recent deliveries, where `W` is
//!   `min(highest known score, now) − OVERLAP` (the overlap absorbs clock skew between worker
//!   hosts, whose clocks write the scores). New and re-delivered tags show up here.
//! * `ZCOUNT idx lo (hi` for each of at most [`MAX_RANGES`] ranges that partition
//!   `(-inf, W)` into about equal known counts.
//!
//! A range whose count differs from the known count changed (acks in the middle of the score
//! range, inserts from skewed clocks). Such a range is bisected at its median known score
//! with one more `ZCOUNT` per differing half per round trip, until a differing range holds at
//! most [`RELIST_MAX`] entries; that range is re-listed with `ZRANGEBYSCORE` and diffed.
//! New tags' values are read with `HMGET` (batches of [`HMGET_BATCH`]); a tag listed without a
//! value is read again on the next few ticks ([`super::index::MISSING_REREADS`]), then only
//! by reconciliation. `SCARD` + bounded `SRANDMEMBER` of
//! `_kombu.binding.<exchange>` runs only for exchanges seen in entries, cached and bounded
//! (see [`super::route`]).
//!
//! Hostile or broken data never fails the tick: an `unacked_index` that is not a sorted set or
//! an `unacked` that is not a hash (`WRONGTYPE`) is reported as unreadable, and this prefix's
//! in-flight counts are then 0 until it is readable again (a full reconciliation each tick
//! meanwhile). An entry whose ETA does not parse counts as reserved; an index score that
//! cannot be a delivery time ([`delivery_score_ok`]) is replaced by the time the tracker
//! first saw the entry, so it turns stale one visibility timeout later instead of staying
//! reserved forever. Both are counted in `celery_scaler_broker_suspect_data_total`.
//!
//! Commands per steady tick (nothing changed): 1 + at most [`MAX_RANGES`], whatever the hash
//! size. With changes: plus about `2·log2(N/RELIST_MAX)` per changed range, plus one `HMGET`
//! per [`HMGET_BATCH`] new tags. A full reconciliation (`ZRANGE idx 0 -1 WITHSCORES`, then
//! `HMGET` of unknown tags) runs on the first tick, every `reconcile_period`, and whenever
//! bisection did not converge within [`MAX_ROUNDS`] round trips.
//!
//! `ZRANGEBYSCORE` rather than `ZRANGE … BYSCORE` keeps Redis < 6.2 working (all commands
//! are in `@read`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use redis::Pipeline;
use tracing::{debug, warn};

use super::conn::Link;
use super::error::BrokerError;
use super::index::{Index, ScoreRange, Tag, Value};
use super::reply::{self, KeyKind, UnreadableKey};
use super::route::Bindings;
use crate::celery::{
    classify, delivery_score_ok, parse_unacked_value, InFlightState, Layout, UnackedEntry,
    MAX_TOPIC_LEN,
};
use crate::telemetry::{BrokerMetrics, Suspect};

/// Seconds below the highest known score that the window re-lists every tick.
pub(crate) const OVERLAP: f64 = 2.0;
/// Most `ZCOUNT` ranges per tick.
pub(crate) const MAX_RANGES: usize = 32;
/// Smallest range worth its own `ZCOUNT` (known entries).
const MIN_RANGE: usize = 256;
/// A differing range with at most this many entries is re-listed instead of bisected.
pub(crate) const RELIST_MAX: u64 = 256;
/// Most follow-up round trips of bisection per tick before falling back to reconciliation.
const MAX_ROUNDS: usize = 16;
/// Tags per `HMGET`.
pub(crate) const HMGET_BATCH: usize = 500;
/// `HMGET`s per round trip.
const HMGETS_PER_TRIP: usize = 8;

/// What a tick's first round trip asked, so the answers can be read back.
pub(crate) struct Probe {
    full: bool,
    window: ScoreRange,
    ranges: Vec<ScoreRange>,
    /// Index of this probe's first answer in the shared round trip.
    first: usize,
}

/// In-flight counts of one queue: reserved, scheduled, stale.
pub(crate) type Counts = [u64; 3];

/// One prefix's tracker.
pub(crate) struct Tracker {
    label: String,
    metrics: BrokerMetrics,
    index_key: Vec<u8>,
    hash_key: Vec<u8>,
    index: Index,
    last_full: Option<Instant>,
    force_full: bool,
    bindings: Bindings,
    /// The scaler's clock at this tick's probe, epoch seconds.
    now: f64,
    /// When the tracker first saw each entry whose score is not a delivery time.
    first_seen: HashMap<Tag, f64>,
    /// `unacked_index` / `unacked` held another type on their last read.
    index_unreadable: bool,
    hash_unreadable: bool,
    /// Entries first read since the last [`Tracker::take_churn`] (after the first tick).
    arrived: Vec<(f64, UnackedEntry)>,
    /// Whether the first listing is done (its entries are not new deliveries).
    baseline: bool,
}

/// What entered and left `unacked` since the last call (score, entry).
#[derive(Default)]
pub(crate) struct Churn {
    pub new: Vec<(f64, UnackedEntry)>,
    pub left: Vec<(f64, UnackedEntry)>,
}

impl Tracker {
    pub(crate) fn new(metrics: &BrokerMetrics, prefix: &[u8]) -> Self {
        let label = metrics.label();
        let layout = Layout {
            prefix: prefix.to_vec(),
            ..Layout::default()
        };
        Self {
            label: label.to_string(),
            index_key: layout.unacked_index_key(),
            hash_key: layout.unacked_key(),
            index: Index::default(),
            last_full: None,
            force_full: true,
            bindings: Bindings::new(metrics, prefix),
            metrics: metrics.clone(),
            now: 0.0,
            first_seen: HashMap::new(),
            index_unreadable: false,
            hash_unreadable: false,
            arrived: Vec::new(),
            baseline: false,
        }
    }

    /// Appends this tick's first-round commands to `pipe`.
    pub(crate) fn probe(
        &mut self,
        pipe: &mut Pipeline,
        now: f64,
        reconcile_period: Duration,
    ) -> Probe {
        let first = pipe.len();
        self.now = now;
        let due = self
            .last_full
            .is_none_or(|t| t.elapsed() >= reconcile_period);
        if self.force_full || due {
            pipe.cmd("ZRANGE")
                .arg(&self.index_key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES");
            return Probe {
                full: true,
                window: ScoreRange::ALL,
                ranges: Vec::new(),
                first,
            };
        }
        let top = self.index.max_score().map_or(now, |m| m.min(now));
        let w = top - OVERLAP;
        let window = ScoreRange {
            lo: Some(w),
            hi: None,
        };
        let (lo, hi) = window.redis_args();
        pipe.cmd("ZRANGEBYSCORE")
            .arg(&self.index_key)
            .arg(lo)
            .arg(hi)
            .arg("WITHSCORES");
        let ranges = self.index.partition(w, MAX_RANGES, MIN_RANGE);
        for r in &ranges {
            let (lo, hi) = r.redis_args();
            pipe.cmd("ZCOUNT").arg(&self.index_key).arg(lo).arg(hi);
        }
        Probe {
            full: false,
            window,
            ranges,
            first,
        }
    }

    /// Reads the first-round answers of `probe`, then runs the follow-up round trips:
    /// bisection, re-lists, `HMGET` of new tags and `SCARD` + bounded `SRANDMEMBER` of unseen exchanges.
    pub(crate) async fn finish(
        &mut self,
        probe: Probe,
        answers: &[redis::Value],
        link: &mut Link,
    ) -> Result<(), BrokerError> {
        let answer = |i: usize| {
            answers
                .get(probe.first + i)
                .ok_or_else(|| BrokerError::Command {
                    broker: self.label.clone(),
                    detail: "short pipeline reply".into(),
                })
        };
        if (0..=probe.ranges.len()).any(|i| answer(i).is_ok_and(reply::is_wrong_type)) {
            self.index_is_unreadable();
            return Ok(());
        }
        self.index_unreadable = false;
        let listed = reply::scored_members(&self.label, answer(0)?)?;
        let (changed, gone) = self.index.apply_listing(probe.window, listed);
        let mut pending = Vec::new();
        for (i, r) in probe.ranges.iter().enumerate() {
            let actual = reply::int(&self.label, answer(1 + i)?)?;
            if actual != self.index.count(*r) {
                pending.push((*r, actual));
            }
        }
        let converged = self.bisect(pending, link).await?;
        if probe.full {
            self.last_full = Some(Instant::now());
            self.force_full = false;
            debug!(broker = %self.label, entries = self.index.len(), changed, gone, "unacked reconciled");
        } else if !converged {
            warn!(broker = %self.label, "unacked counts did not converge; reconciling next tick");
            self.force_full = true;
        }
        self.fetch_values(link, probe.full).await?;
        if !self.baseline {
            self.baseline = true;
            self.arrived.clear();
            self.index.take_departed();
        }
        let index = &self.index;
        self.first_seen.retain(|tag, _| index.contains(tag));
        let seen: BTreeSet<&str> = self
            .index
            .parsed()
            .filter(|(_, e)| !e.exchange.is_empty())
            .map(|(_, e)| e.exchange.as_str())
            .collect();
        self.bindings.refresh(seen, link).await
    }

    /// `unacked_index` is not a sorted set: nothing of this prefix is in flight as far as the
    /// scaler can tell. Forgets the index (without reporting acks) and re-reads it in full
    /// next tick.
    fn index_is_unreadable(&mut self) {
        if !self.index_unreadable {
            warn!(broker = %self.label, "unacked_index is not a sorted set; in-flight counts of its prefix are 0 until it is");
        }
        self.index_unreadable = true;
        self.force_full = true;
        self.index.apply_listing(ScoreRange::ALL, Vec::new());
        self.index.take_departed();
        self.arrived.clear();
        self.first_seen.clear();
    }

    /// Keys of this prefix that the last tick could not read (wrong type).
    pub(crate) fn unreadable(&self) -> Vec<UnreadableKey> {
        let mut out = Vec::new();
        if self.index_unreadable {
            out.push(UnreadableKey::new(KeyKind::UnackedIndex, &self.index_key));
        }
        if self.hash_unreadable {
            out.push(UnreadableKey::new(KeyKind::Unacked, &self.hash_key));
        }
        out.extend(self.bindings.unreadable());
        out
    }

    /// Entries delivered (new or re-delivered tags) and acked since the last call. An entry
    /// that left with a score that is not a delivery time is left out (its residence is
    /// unknown); one that arrived with such a score carries the time it was first seen.
    pub(crate) fn take_churn(&mut self) -> Churn {
        let now = self.now;
        let mut left = self.index.take_departed();
        left.retain(|(score, _)| delivery_score_ok(*score, now));
        Churn {
            new: std::mem::take(&mut self.arrived),
            left,
        }
    }

    /// The queues `entry` is attributed to (as in [`Tracker::count`]).
    pub(crate) fn queues_of(&self, separator: &[u8], entry: &UnackedEntry) -> Vec<String> {
        self.bindings.router(separator).queues(entry).to_vec()
    }

    /// Narrows differing ranges down and re-lists them. Returns whether it converged.
    async fn bisect(
        &mut self,
        mut pending: Vec<(ScoreRange, u64)>,
        link: &mut Link,
    ) -> Result<bool, BrokerError> {
        for _ in 0..MAX_ROUNDS {
            if pending.is_empty() {
                return Ok(true);
            }
            let mut pipe = redis::pipe();
            let mut plan = Vec::with_capacity(pending.len());
            for (r, actual) in pending.drain(..) {
                let split = if actual <= RELIST_MAX || self.index.count(r) <= RELIST_MAX {
                    None
                } else {
                    self.index.split(r)
                };
                match split {
                    None => {
                        let (lo, hi) = r.redis_args();
                        pipe.cmd("ZRANGEBYSCORE")
                            .arg(&self.index_key)
                            .arg(lo)
                            .arg(hi)
                            .arg("WITHSCORES");
                    }
                    Some((left, _)) => {
                        let (lo, hi) = left.redis_args();
                        pipe.cmd("ZCOUNT").arg(&self.index_key).arg(lo).arg(hi);
                    }
                }
                plan.push((r, actual, split));
            }
            let answers = link.round_trip(&pipe).await?;
            for ((r, actual, split), answer) in plan.into_iter().zip(answers.iter()) {
                match split {
                    None => {
                        let listed = reply::scored_members(&self.label, answer)?;
                        self.index.apply_listing(r, listed);
                    }
                    Some((left, right)) => {
                        let left_actual = reply::int(&self.label, answer)?;
                        let right_actual = actual.saturating_sub(left_actual);
                        for (half, n) in [(left, left_actual), (right, right_actual)] {
                            if n != self.index.count(half) {
                                pending.push((half, n));
                            }
                        }
                    }
                }
            }
        }
        Ok(pending.is_empty())
    }

    /// Reads and parses the values of new tags (and of missing ones on reconciliation).
    async fn fetch_values(
        &mut self,
        link: &mut Link,
        with_missing: bool,
    ) -> Result<(), BrokerError> {
        let tags = self.index.to_fetch(with_missing);
        if tags.is_empty() {
            // Nothing to read: whatever `unacked` holds cannot matter.
            self.hash_unreadable = false;
        }
        let mut wrong_type = false;
        for trip in tags.chunks(HMGET_BATCH * HMGETS_PER_TRIP) {
            let mut pipe = redis::pipe();
            for batch in trip.chunks(HMGET_BATCH) {
                pipe.cmd("HMGET").arg(&self.hash_key);
                for tag in batch {
                    pipe.arg(&tag[..]);
                }
            }
            let answers = link.round_trip(&pipe).await?;
            for (batch, answer) in trip.chunks(HMGET_BATCH).zip(answers.iter()) {
                if reply::is_wrong_type(answer) {
                    wrong_type = true;
                    for tag in batch {
                        self.index.set_value(tag, Value::Missing { rereads: 0 });
                    }
                    continue;
                }
                let values = reply::optional_strings(&self.label, answer)?;
                for (tag, raw) in batch.iter().zip(values) {
                    self.store(tag, raw);
                }
            }
        }
        if !tags.is_empty() {
            if wrong_type && !self.hash_unreadable {
                warn!(broker = %self.label, "unacked is not a hash; its entries are not counted until it is");
            }
            self.hash_unreadable = wrong_type;
        }
        if wrong_type {
            // Re-read the (missing) values every tick until the hash is readable again.
            self.force_full = true;
        }
        Ok(())
    }

    fn store(&mut self, tag: &Tag, raw: Option<Vec<u8>>) {
        let value = match raw {
            None => self.index.missed(tag),
            Some(raw) => match parse_unacked_value(&raw) {
                Ok(entry) => {
                    self.check(tag, &entry);
                    if let Some(score) = self.index.pending_score(tag) {
                        let delivered = self.delivered_at(tag, score);
                        self.arrived.push((delivered, entry.clone()));
                    }
                    Value::Parsed(entry)
                }
                Err(e) => {
                    self.metrics.malformed();
                    debug!(broker = %self.label, tag = %String::from_utf8_lossy(tag), reason = e.label(), "malformed unacked value skipped");
                    Value::Malformed
                }
            },
        };
        self.index.set_value(tag, value);
    }

    /// Counts what a newly read entry carries that cannot be trusted as written: an ETA that
    /// does not parse, a score that is not a delivery time (remembering when it was first
    /// seen), a routing key too long for wildcard bindings.
    fn check(&mut self, tag: &Tag, entry: &UnackedEntry) {
        if entry.eta_malformed {
            self.metrics.suspect(Suspect::BadEta, 1);
            debug!(broker = %self.label, tag = %String::from_utf8_lossy(tag), "unparseable ETA; counted as reserved");
        }
        if !entry.exchange.is_empty() && entry.routing_key.len() > MAX_TOPIC_LEN {
            self.metrics.suspect(Suspect::RoutingKeyTooLong, 1);
        }
        match self.index.pending_score(tag) {
            Some(score) if !delivery_score_ok(score, self.now) => {
                self.metrics.suspect(Suspect::BadScore, 1);
                debug!(broker = %self.label, tag = %String::from_utf8_lossy(tag), score, "unacked_index score is not a delivery time; timed from first sighting");
                self.first_seen.entry(tag.clone()).or_insert(self.now);
            }
            Some(_) => {
                self.first_seen.remove(tag);
            }
            None => {}
        }
    }

    /// The delivery time the classification uses: the score when it can be one, else when
    /// the tracker first saw the entry.
    fn delivered_at(&self, tag: &Tag, score: f64) -> f64 {
        if delivery_score_ok(score, self.now) {
            score
        } else {
            self.first_seen.get(tag).copied().unwrap_or(self.now)
        }
    }

    /// In-flight counts of `queues` for one separator and visibility timeout at `now`.
    pub(crate) fn count(
        &self,
        separator: &[u8],
        visibility_timeout: f64,
        queues: &HashSet<&str>,
        now: f64,
    ) -> HashMap<String, Counts> {
        let mut router = self.bindings.router(separator);
        let mut out: HashMap<&str, Counts> = HashMap::new();
        for (tag, score, entry) in self.index.parsed_tagged() {
            let delivered = self.delivered_at(tag, score);
            let state = classify(entry.eta, delivered, now, visibility_timeout);
            let slot = match state {
                InFlightState::Reserved => 0,
                InFlightState::Scheduled => 1,
                InFlightState::Stale => 2,
            };
            for q in router.queues(entry) {
                if let Some(name) = queues.get(q.as_str()) {
                    out.entry(*name).or_default()[slot] += 1;
                }
            }
        }
        out.into_iter().map(|(q, c)| (q.to_string(), c)).collect()
    }
}
