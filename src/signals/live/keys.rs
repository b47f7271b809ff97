//! One list key's live state (its wait clock, anchor and what keyspace events said of it)
//! and what one tick's reads of a queue's keys add up to. Pure, like [`super::queue`].

use crate::signals::estimate::TailClock;

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
    /// Feeds the key's tail clock with this tick's head and tail delivery tags (`ends`, when
    /// they were read) and returns the tail message's age then; a key empty at either tick
    /// is not read, and forgets its old ends (`prev`: the previous tick's time). A key that
    /// was empty at the previous tick and holds messages now was filled since: its oldest
    /// message is dated from the mid-point of the two ticks at once (at most half a tick
    /// off), and its tail tag from the same instant at the next tick; on the sampler's
    /// first tick nothing is known of its past (`None`).
    pub(crate) fn observe_ends(
        &mut self,
        now: f64,
        llen: u64,
        ends: Option<&(Option<String>, Option<String>)>,
        prev: Option<(f64, u64)>,
    ) -> Option<f64> {
        match ends {
            Some((head, tail)) => {
                if let Some(t) = self.filled_at.take() {
                    self.tail.observe(t, head.as_deref(), tail.as_deref());
                }
                self.tail.observe(now, head.as_deref(), tail.as_deref());
                Some(if llen > 0 {
                    self.tail.oldest_age(now)
                } else {
                    0.0
                })
            }
            None if self.llen == 0 || llen == 0 => {
                self.tail.observe(now, None, None);
                self.filled_at = (llen > 0).then(|| prev.map_or(now, |(t, _)| (t + now) / 2.0));
                prev.and(self.filled_at).map(|t| now - t)
            }
            None => None,
        }
    }
}
