//! One list key's live state (its wait clock, anchor and what keyspace events said of it)
//! and what one tick's reads of a queue's keys add up to. Pure, like [`super::queue`].

use crate::signals::estimate::{FifoClock, TailClock};

/// Whether the server publishes list keyspace events, as far as the scaler can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keyspace {
    Unknown,
    Enabled,
    Disabled,
    /// `CONFIG GET` is not allowed (ACL, managed Redis): estimated mode.
    Denied,
}

/// One list key's live state.
pub(crate) struct KeyLive {
    pub key: Vec<u8>,
    pub tail: TailClock,
    /// (generation, lpush, rpop, rpush) heard up to the previous tick.
    pub seen: Option<(u64, u64, u64, u64)>,
    /// Ticks in a row the FIFO clock disagreed with `LLEN`.
    pub mismatch: u8,
    /// `LLEN` at the previous tick.
    pub llen: u64,
    /// When a list found non-empty without its ends read (it was empty the tick before) was
    /// probably filled: mid-way between the two ticks.
    pub filled_at: Option<f64>,
    /// Whether the key was observed at an earlier tick (its `llen` is then a reading).
    pub observed: bool,
    /// The head message (newest, `LINDEX 0`) read at the previous tick: next tick, its index
    /// (`LPOS`) is the number of messages pushed since.
    pub anchor: Option<Vec<u8>>,
}

/// What one tick's reads of a queue's list keys add up to (see `super::queue::QueueLive::observe_keys`).
pub(crate) struct KeysTick {
    /// Every key heard by keyspace notifications without interruption since last tick.
    pub continuous: bool,
    /// `lpush` and `rpop` events heard since last tick.
    pub pushed: u64,
    pub popped: u64,
    /// The oldest message's age by the FIFO clocks of the keys that hold messages.
    pub fifo_wait: f64,
    /// The oldest tail message's age by its delivery tag, when any key's ends were read.
    pub tail_wait: Option<f64>,
    /// Whether the wait (FIFO clocks when `continuous`, else tail tags) is the oldest
    /// message's age and not only a lower bound: every message's arrival was seen.
    pub wait_dated: bool,
    /// Every key found its anchor or stayed empty; at least one found its anchor; one
    /// stayed empty.
    pub anchored: bool,
    pub any_anchor: bool,
    pub idle_keys: bool,
    /// Messages pushed after, and taken from, the anchors.
    pub pushed_after: u64,
    pub popped_from: u64,
}

impl KeyLive {
    /// Reconciles this key's FIFO clock with `LLEN` (`first`: on a new subscription). A key
    /// seen empty at the previous tick holds only messages pushed since: dated from
    /// `filled` (the mid-point of the two ticks, see `QueueLive::filled_since`), as a list
    /// that just filled is by its tail tags. Within
    /// one subscription, messages the clock misses came while it listened (events lagging
    /// the `LLEN` read): no older than its oldest, whose age stays the wait. Otherwise they
    /// may predate the subscription, and the age is a lower bound.
    pub(crate) fn reconcile(
        &self,
        clock: &mut FifoClock,
        llen: u64,
        now: f64,
        filled: Option<f64>,
        first: bool,
    ) {
        match filled.filter(|_| self.observed && self.llen == 0) {
            Some(t) => clock.reconcile(llen, t, true),
            None => {
                let heard = !first && !clock.is_empty() && clock.dated();
                clock.reconcile(llen, now, heard);
            }
        }
    }

    /// Feeds the key's tail clock with this tick's head and tail delivery tags (`ends`, when
    /// they were read) and returns the tail message's age then, with whether it is one
    /// (`false`: only a lower bound); a key empty at either tick is not read, and forgets its
    /// old ends. A key observed empty at the previous tick that holds messages now was
    /// filled since: its oldest message is dated from `filled` (the mid-point of the two
    /// ticks, see `QueueLive::filled_since`) at once, and its tail tag from the same instant
    /// at the next tick. The first observation of a key that holds messages (the sampler just
    /// started, or the queue was just watched) dates nothing, nor does a tail whose tag is
    /// unreadable (not a kombu message): ages that restart there are lower bounds.
    pub(crate) fn observe_ends(
        &mut self,
        now: f64,
        llen: u64,
        ends: Option<&(Option<String>, Option<String>)>,
        filled: Option<f64>,
    ) -> Option<(f64, bool)> {
        let known = std::mem::replace(&mut self.observed, true);
        match ends {
            Some(_) if llen == 0 => {
                self.filled_at = None;
                self.tail.observe_empty();
                Some((0.0, true))
            }
            Some((head, tail)) => {
                if let Some(t) = self.filled_at.take() {
                    self.tail.observe(t, head.as_deref(), tail.as_deref());
                }
                self.tail.observe(now, head.as_deref(), tail.as_deref());
                Some((self.tail.oldest_age(now), self.tail.dated()))
            }
            None if self.llen == 0 || llen == 0 => {
                // Empty now, or at the previous tick: no tail to keep (not on a first tick
                // that found messages: the list's past is unknown, not empty).
                if llen == 0 || known {
                    self.tail.observe_empty();
                }
                let fills = known && self.llen == 0 && llen > 0;
                self.filled_at = filled.filter(|_| fills);
                if fills && filled.is_none() {
                    // When it filled is not known (the clock stepped back): nothing it holds
                    // is dated until it has been consumed.
                    self.tail = TailClock::default();
                }
                self.filled_at.map(|t| (now - t, true))
            }
            None => None,
        }
    }
}
