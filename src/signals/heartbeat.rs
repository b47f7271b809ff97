//! Worker heartbeats of one key prefix: running tasks now, the rate at which tasks start, and
//! Little's law over the busy slots, kept within plausible bounds.
//!
//! Heartbeats come from whoever can PUBLISH on the broker, so nothing in them is trusted
//! beyond what a real Celery worker can send (see `docs/accuracy.md`, "Heartbeat bounds"):
//! `active` is clamped to the configured per-worker maximum, a `freq` outside Celery's
//! plausible range is ignored (the default interval is assumed), `processed` may grow by at
//! most what a full worker can start in the time since the previous beat, beats are dated by the scaler's own
//! clock (the event's `timestamp` is never read), and the number of workers tracked and of
//! beats kept per worker are bounded. Pure: every method takes `now` from its caller.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::estimate::{increases, rate_of};

/// Default of the config key `max_worker_concurrency`: `active` above it is clamped.
pub const DEFAULT_MAX_WORKER_CONCURRENCY: u64 = 256;
/// Default of the config key `max_tracked_workers`: workers tracked per key prefix.
pub const DEFAULT_MAX_TRACKED_WORKERS: usize = 4096;
/// Celery's default heartbeat interval, seconds: assumed when `freq` is implausible.
pub const DEFAULT_FREQ: f64 = 2.0;
/// Plausible heartbeat intervals, seconds; a `freq` outside is ignored.
pub const MIN_FREQ: f64 = 0.1;
pub const MAX_FREQ: f64 = 3600.0;
/// Most task starts per second one busy slot can make (tasks of at least 1 ms): bounds how
/// far `processed` may move between two beats. Its inverse is the policy's shortest service
/// time, so that a rate within it keeps λ·S within the slots that started it.
pub const MAX_STARTS_PER_SLOT: f64 = 1000.0;
/// Longest interval (seconds) that counts for expiry: a worker silent for three times
/// `min(freq, MAX_EXPIRY_FREQ)` is forgotten, so a forged one with `freq` 3600 lasts 3 min,
/// not 3 h.
pub const MAX_EXPIRY_FREQ: f64 = 60.0;
/// Most beats kept per worker (older ones are dropped first, shortening its window).
pub const MAX_BEATS: usize = 64;
/// Dead workers are swept at most this often (seconds) when the book is full.
const SWEEP_PERIOD: f64 = 1.0;

/// Bounds on what heartbeats may claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatLimits {
    /// Largest `active` one worker may report (its pool size at most).
    pub max_active: u64,
    /// Most workers tracked at once; a further hostname evicts the least recently heard.
    pub max_workers: usize,
}

impl Default for HeartbeatLimits {
    fn default() -> Self {
        Self {
            max_active: DEFAULT_MAX_WORKER_CONCURRENCY,
            max_workers: DEFAULT_MAX_TRACKED_WORKERS,
        }
    }
}

/// What was implausible about one heartbeat. Bounded set: doubles as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implausible {
    /// `active` above the per-worker maximum: clamped.
    Active,
    /// `freq` outside [`MIN_FREQ`, `MAX_FREQ`] (or not a number): the default assumed.
    Freq,
    /// `processed` grew faster than a full worker can start tasks: clamped.
    Processed,
    /// A new hostname while the book is full of live workers: the least recently heard one
    /// is evicted to make room.
    TooManyWorkers,
}

impl Implausible {
    pub const ALL: [Implausible; 4] = [
        Implausible::Active,
        Implausible::Freq,
        Implausible::Processed,
        Implausible::TooManyWorkers,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Implausible::Active => "active",
            Implausible::Freq => "freq",
            Implausible::Processed => "processed",
            Implausible::TooManyWorkers => "too_many_workers",
        }
    }
}

/// One worker's latest heartbeat.
#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat {
    pub hostname: String,
    /// Tasks executing now.
    pub active: u64,
    /// Tasks started since the worker started (cumulative).
    pub processed: u64,
    /// Heartbeat interval in seconds.
    pub freq: f64,
}

#[derive(Clone, Debug)]
struct WorkerState {
    freq: f64,
    /// Position in [`HeartbeatBook::heard`]: larger is more recent.
    seq: u64,
    /// (time, `active`, `processed`) of the heartbeats covering the window (one at or before
    /// its start); never empty. The latest is the worker's state now, `processed` over them
    /// the start rate, and both together Little's law over one and the same interval.
    beats: VecDeque<(f64, u64, u64)>,
    /// Whether beats were dropped from the front (window, [`MAX_BEATS`]): the first kept
    /// beat is then not the worker's first.
    trimmed: bool,
    /// Whether the first kept beat is the worker's `worker-online` (sent as it starts): the
    /// book heard it from its first moment.
    born: bool,
}

impl WorkerState {
    fn latest(&self) -> (f64, u64, u64) {
        self.beats.back().copied().unwrap_or_default()
    }

    fn last_seen(&self) -> f64 {
        self.latest().0
    }

    fn active(&self) -> u64 {
        self.latest().1
    }

    fn alive(&self, now: f64) -> bool {
        now - self.last_seen() <= 3.0 * self.freq.clamp(1.0, MAX_EXPIRY_FREQ)
    }

    /// Task starts per second (with the burst fast path), `None` before two heartbeats.
    fn start_rate(&self) -> Option<f64> {
        let n = self.beats.len();
        let point = |i: usize| self.beats.get(i).map(|&(t, _, p)| (t, p));
        rate_of(point(0)?, point(n.checked_sub(2)?)?, point(n - 1)?)
    }

    /// When this worker may last have started a task: the latest beat whose `processed` grew
    /// (the start was between it and the beat before), or the first beat kept when none did
    /// (a start before it is not known of); `None` when it never started one (`processed`
    /// 0 throughout: a pod that came up after the work was done).
    fn last_start(&self) -> Option<f64> {
        let front = self.beats.front()?;
        let (grew, _) = increases(self.processed());
        grew.or((front.2 > 0).then_some(front.0))
    }

    /// (time, `processed`) of the kept beats, oldest first.
    fn processed(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.beats.iter().map(|&(t, _, p)| (t, p))
    }

    /// The longest time between two of this worker's beats that showed starts (0 with fewer
    /// than two).
    fn longest_start_gap(&self) -> f64 {
        increases(self.processed()).1
    }

    /// When this worker's first kept beat was heard.
    fn first_seen(&self) -> f64 {
        self.beats.front().map_or(0.0, |b| b.0)
    }

    /// Task starts per second over `window` seconds: the starts of the kept beats over
    /// their span, or over `window` when they span less and the first kept beat is the
    /// worker's `worker-online` (a pod younger than the window, which started none before it
    /// came up). A worker whose start the book did not hear (heard first as the scaler
    /// started, again after the events connection was lost, or with its older beats
    /// dropped) keeps its span: it may have been starting tasks all along.
    fn window_start_rate(&self, window: f64) -> f64 {
        let (Some(&(t0, _, p0)), Some(&(t1, _, p1))) = (self.beats.front(), self.beats.back())
        else {
            return 0.0;
        };
        let young = self.born && !self.trimmed;
        let span = if young {
            (t1 - t0).max(window)
        } else {
            t1 - t0
        };
        if span > 0.0 && span.is_finite() {
            p1.saturating_sub(p0) as f64 / span
        } else {
            0.0
        }
    }

    /// Mean busy slots and task starts per second over the same heartbeats: `active` of the
    /// beats after the first (periodic, so their mean is the time-average) and `processed`
    /// from the first to the last. Smoothed on purpose: the burst fast path of the start
    /// rate would pair a one-interval rate with a window-long average.
    fn littles_law_pair(&self) -> Option<(f64, f64)> {
        let (&(t0, _, p0), &(t1, _, p1)) = (self.beats.front()?, self.beats.back()?);
        if t1 <= t0 {
            return None;
        }
        let later = self.beats.len() - 1;
        let busy = self.beats.iter().skip(1).map(|b| b.1 as f64).sum::<f64>() / later as f64;
        Some((busy, p1.saturating_sub(p0) as f64 / (t1 - t0)))
    }
}

/// Worker heartbeats of one broker prefix, filtered by hostname pattern: running tasks now and
/// the rate at which tasks start. Workers silent for more than three intervals (of at most
/// [`MAX_EXPIRY_FREQ`]) are dropped; when the book is full, a new worker evicts the least
/// recently heard.
#[derive(Clone, Debug)]
pub struct HeartbeatBook {
    window: f64,
    limits: HeartbeatLimits,
    /// By hostname, in order: sums over workers (start rates, Little's law) add in the same
    /// order every run, so the simulator's results do not depend on a hash seed.
    workers: BTreeMap<String, WorkerState>,
    /// Hostnames by the order their latest beat was heard (oldest first).
    heard: BTreeMap<u64, String>,
    /// Sequence number of the next beat heard.
    next_seq: u64,
    /// Hostnames matching each pattern, from [`HeartbeatBook::memoise`] (the sampler's copy:
    /// RPCs then match no glob); cleared by any change to the workers.
    memo: HashMap<String, Vec<String>>,
    /// When dead workers were last swept to make room.
    swept: f64,
}

impl HeartbeatBook {
    /// A book with the default [`HeartbeatLimits`].
    pub fn new(window_secs: f64) -> Self {
        Self::with_limits(window_secs, HeartbeatLimits::default())
    }

    pub fn with_limits(window_secs: f64, limits: HeartbeatLimits) -> Self {
        Self {
            window: window_secs,
            limits,
            workers: BTreeMap::new(),
            heard: BTreeMap::new(),
            next_seq: 0,
            memo: HashMap::new(),
            swept: f64::NEG_INFINITY,
        }
    }

    pub fn limits(&self) -> HeartbeatLimits {
        self.limits
    }

    /// Records one heartbeat received at `now`, within the limits; returns what was
    /// implausible about it (empty for a plausible one).
    pub fn record(&mut self, now: f64, hb: &Heartbeat) -> Vec<Implausible> {
        self.record_event(now, hb, false)
    }

    /// Records a worker's `worker-online` (the event it sends as it starts, with the same
    /// fields as a heartbeat), as [`HeartbeatBook::record`] does a heartbeat.
    pub fn record_online(&mut self, now: f64, hb: &Heartbeat) -> Vec<Implausible> {
        self.record_event(now, hb, true)
    }

    fn record_event(&mut self, now: f64, hb: &Heartbeat, online: bool) -> Vec<Implausible> {
        let mut odd = Vec::new();
        self.memo.clear();
        if !self.workers.contains_key(&hb.hostname) && !self.make_room(now) {
            odd.push(Implausible::TooManyWorkers);
            self.evict_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let freq = if (MIN_FREQ..=MAX_FREQ).contains(&hb.freq) {
            hb.freq
        } else {
            odd.push(Implausible::Freq);
            DEFAULT_FREQ
        };
        let active = if hb.active > self.limits.max_active {
            odd.push(Implausible::Active);
            self.limits.max_active
        } else {
            hb.active
        };
        let (window, max_active) = (self.window, self.limits.max_active);
        let w = self
            .workers
            .entry(hb.hostname.clone())
            .or_insert_with(|| WorkerState {
                freq,
                seq,
                beats: VecDeque::new(),
                trimmed: false,
                born: online,
            });
        w.freq = freq;
        self.heard.remove(&w.seq);
        w.seq = seq;
        self.heard.insert(seq, hb.hostname.clone());
        let mut processed = hb.processed;
        // A counter that went back (the worker restarted) or a clock that did restarts the
        // series; a second heartbeat at the same instant replaces the first.
        match w.beats.back().copied() {
            Some((t, _, p)) if processed < p || now < t => {
                w.beats.clear();
                w.trimmed = false;
                w.born = online;
            }
            Some((t, _, p)) => {
                // A full worker starts at most this many tasks in the time that really passed
                // since the last beat: no start rate exceeds the per-worker maximum. (Beats
                // held up and delivered together lose nothing: the clamped count catches up
                // on the next beats, as the worker's own counter still holds the total.)
                let most = max_active as f64 * MAX_STARTS_PER_SLOT * (now - t);
                if processed.saturating_sub(p) as f64 > most {
                    odd.push(Implausible::Processed);
                    processed = p.saturating_add(most as u64);
                }
                if now == t {
                    w.beats.pop_back();
                }
            }
            None => {}
        }
        w.beats.push_back((now, active, processed));
        while w.beats.len() > MAX_BEATS || (w.beats.len() > 2 && w.beats[1].0 <= now - window) {
            w.beats.pop_front();
            w.trimmed = true;
        }
        odd
    }

    /// Whether a new worker fits, after sweeping dead ones (at most once per
    /// [`SWEEP_PERIOD`], so a flood of new hostnames costs no more than one sweep a second).
    fn make_room(&mut self, now: f64) -> bool {
        if self.workers.len() < self.limits.max_workers {
            return true;
        }
        if now - self.swept >= SWEEP_PERIOD || now < self.swept {
            self.swept = now;
            self.expire(now);
        }
        self.workers.len() < self.limits.max_workers
    }

    /// Forgets the least recently heard worker (the book is full of live ones).
    fn evict_oldest(&mut self) {
        if let Some((_, hostname)) = self.heard.pop_first() {
            self.workers.remove(&hostname);
        }
    }

    /// A worker said goodbye (`worker-offline`).
    pub fn forget(&mut self, hostname: &str) {
        self.memo.clear();
        if let Some(w) = self.workers.remove(hostname) {
            self.heard.remove(&w.seq);
        }
    }

    fn expire(&mut self, now: f64) {
        self.memo.clear();
        let heard = &mut self.heard;
        self.workers.retain(|_, w| {
            let alive = w.alive(now);
            if !alive {
                heard.remove(&w.seq);
            }
            alive
        });
    }

    /// Live workers matching `pattern` (see [`glob_match`]).
    fn matching<'a>(
        &'a mut self,
        now: f64,
        pattern: &'a str,
    ) -> impl Iterator<Item = &'a WorkerState> + 'a {
        self.expire(now);
        self.workers
            .iter()
            .filter(move |(name, _)| glob_match(pattern, name))
            .map(|(_, w)| w)
    }

    /// Σ `active` over live matching workers, `None` when no worker matches.
    pub fn running(&mut self, now: f64, pattern: &str) -> Option<u64> {
        let mut any = false;
        let total = self.matching(now, pattern).fold(0u64, |acc, w| {
            any = true;
            acc.saturating_add(w.active())
        });
        any.then_some(total)
    }

    /// Σ task starts per second over live matching workers that have a rate yet.
    pub fn start_rate(&mut self, now: f64, pattern: &str) -> Option<f64> {
        let rates: Vec<f64> = self
            .matching(now, pattern)
            .filter_map(WorkerState::start_rate)
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum())
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Forgets workers silent for more than three heartbeat intervals.
    pub fn prune(&mut self, now: f64) {
        self.expire(now);
    }

    /// Running tasks and start rate of the live workers matching `pattern` at `now`, without
    /// forgetting anyone (for read-only copies). `None` when no live worker matches.
    /// Uses the hostnames [`HeartbeatBook::memoise`] found for `pattern` when it has them.
    pub fn summary(&self, now: f64, pattern: &str) -> Option<WorkerSummary> {
        match self.memo.get(pattern) {
            Some(names) => self.summarise(
                now,
                names.iter().filter_map(|n| self.workers.get(n.as_str())),
            ),
            None => self.summarise(
                now,
                self.workers
                    .iter()
                    .filter(|(name, _)| glob_match(pattern, name))
                    .map(|(_, w)| w),
            ),
        }
    }

    /// Finds the hostnames matching each of `patterns` once, for later [`summary`] calls on
    /// this (read-only) copy: the glob work is done here, not on every RPC.
    ///
    /// [`summary`]: HeartbeatBook::summary
    pub fn memoise<'a>(&mut self, patterns: impl IntoIterator<Item = &'a str>) {
        self.memo.clear();
        for pattern in patterns {
            if !self.memo.contains_key(pattern) {
                let names = self
                    .workers
                    .keys()
                    .filter(|name| glob_match(pattern, name))
                    .cloned()
                    .collect();
                self.memo.insert(pattern.to_string(), names);
            }
        }
    }

    fn summarise<'a>(
        &self,
        now: f64,
        matching: impl Iterator<Item = &'a WorkerState>,
    ) -> Option<WorkerSummary> {
        let mut out = WorkerSummary::default();
        let mut rates = None::<f64>;
        let (mut started, mut heard) = (None::<f64>, f64::INFINITY);
        let mut first = f64::INFINITY;
        for w in matching.filter(|w| w.alive(now)) {
            out.workers += 1;
            started = match (started, w.last_start()) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            heard = heard.min(w.last_seen());
            first = first.min(w.first_seen());
            out.starts_longest_gap = out.starts_longest_gap.max(w.longest_start_gap());
            out.running = out.running.saturating_add(w.active());
            if let Some(r) = w.start_rate() {
                rates = Some(rates.unwrap_or(0.0) + r);
            }
            if let Some((busy, rate)) = w.littles_law_pair() {
                out.busy += busy;
                out.busy_start_rate += rate;
            }
            out.window_start_rate += w.window_start_rate(self.window);
        }
        out.start_rate = rates;
        out.rates_as_of = heard;
        // No worker ever started a task: quiet for as long as their beats go back.
        out.starts_quiet_for = (heard - started.unwrap_or(first)).max(0.0);
        out.capacity = out.workers as f64 * self.limits.max_active as f64;
        (out.workers > 0).then_some(out)
    }
}

mod glob;
mod summary;

pub use summary::WorkerSummary;

pub use glob::glob_match;
#[cfg(test)]
use glob::{glob_steps, GLOB_STEPS};

#[cfg(test)]
mod tests;
