//! The age of the oldest waiting task in one list: from keyspace notifications
//! ([`FifoClock`]) or from the tags sampled at a list's ends ([`TailClock`]).

use std::collections::VecDeque;

/// Arrival times of the messages in one list key, oldest first, kept from `lpush`/`rpop`
/// events (lists are FIFO per key) and reconciled against sampled lengths.
#[derive(Clone, Debug, Default)]
pub struct FifoClock {
    /// Arrival time, and whether it is one (`false`: an entry `reconcile` added, which was
    /// there by then at the latest: its time is only a bound).
    arrivals: VecDeque<(f64, bool)>,
}

impl FifoClock {
    /// A message was pushed at the head (`lpush`): the newest.
    pub fn arrive(&mut self, now: f64) {
        self.arrivals.push_back((now, true));
    }

    /// A message was popped from the tail (`rpop`/`brpop`): the oldest.
    pub fn dequeue(&mut self) {
        self.arrivals.pop_front();
    }

    /// A message was restored to the tail (`rpush`): consumed next. Its first publish time is
    /// unknown here, so its wait counts from the restore.
    pub fn restore(&mut self, now: f64) {
        self.arrivals.push_front((now, true));
    }

    /// Corrects drift from lost notifications against the sampled `LLEN`. Missing entries
    /// (present before tracking started, or lost arrivals) are assumed to be the oldest and
    /// dated `since`, or the oldest entry's time when that is earlier. With `arrived` the
    /// caller knows that makes the oldest age one (the list was seen empty just before, so
    /// they came since; or they came while the clock listened, after its oldest); else it
    /// is only a lower bound ([`FifoClock::dated`]).
    pub fn reconcile(&mut self, llen: u64, since: f64, arrived: bool) {
        let llen = usize::try_from(llen).unwrap_or(usize::MAX);
        while self.arrivals.len() > llen {
            self.arrivals.pop_front();
        }
        let oldest = self.arrivals.front().map_or(since, |e| e.0).min(since);
        while self.arrivals.len() < llen {
            self.arrivals.push_front((oldest, arrived));
        }
    }

    /// Whether every waiting message's arrival was heard, so that the oldest age is one and
    /// not only a lower bound (entries `reconcile` added were there before, by how long is
    /// not known: after the sampler starts or its subscription is re-established).
    pub fn dated(&self) -> bool {
        self.arrivals.iter().all(|e| e.1)
    }

    /// The wall clock stepped back: every time kept is late by the step, so the ages read
    /// from them are only lower bounds until those messages have left.
    pub fn undate(&mut self) {
        for e in &mut self.arrivals {
            e.1 = false;
        }
    }

    pub fn len(&self) -> usize {
        self.arrivals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.arrivals.is_empty()
    }

    /// Age of the oldest waiting message, 0 when empty.
    pub fn oldest_age(&self, now: f64) -> f64 {
        self.arrivals
            .iter()
            .fold(None::<f64>, |acc, (t, _)| {
                Some(acc.map_or(*t, |a| a.min(*t)))
            })
            .map_or(0.0, |t| (now - t).max(0.0))
    }
}

/// Queue wait without notifications: the first time each message was seen at the head of a
/// list (the newest, sampled every tick) is remembered; the age of the tail message (the
/// oldest, consumed next) is `now` minus its first sighting. A tail never seen at the head
/// arrived between two ticks after the consumed tail's sighting; it is dated by the oldest
/// remaining sighting (exact to within the gap between two sightings), and with none at all
/// it counts from the first time it was the tail. A tag that cannot be read (a message that
/// is not kombu's) dates nothing: an unreadable head leaves a sighting that dates no one
/// behind it, an unreadable tail has no age (0, a lower bound).
#[derive(Clone, Debug, Default)]
pub struct TailClock {
    /// Head sightings: tag (`None`: unreadable), when first seen, and whether that dates its
    /// arrival (the list had been observed before, so the message came since; the first
    /// observation of a list that holds messages dates nothing, nor does an unreadable head).
    heads: VecDeque<(Option<String>, f64, bool)>,
    /// The tail message: tag (`None`: unreadable), when first seen, and whether that dates it.
    tail: Option<(Option<String>, f64, bool)>,
    /// Whether the list was observed before (empty or not).
    observed: bool,
}

/// How many head sightings one list keeps.
const HEAD_SIGHTINGS: usize = 4096;

impl TailClock {
    /// The list was found empty: nothing waits, and whatever is listed next came since.
    pub fn observe_empty(&mut self) {
        self.observed = true;
        self.heads.clear();
        self.tail = None;
    }

    /// The wall clock stepped back: the sightings kept are late by the step, so the ages
    /// read from them are only lower bounds until those messages have left.
    pub fn undate(&mut self) {
        for h in &mut self.heads {
            h.2 = false;
        }
        if let Some(t) = &mut self.tail {
            t.2 = false;
        }
    }

    /// Feeds one sample of a list that holds messages: the delivery tags at its head and at
    /// its tail, `None` where a tag is unreadable.
    pub fn observe(&mut self, now: f64, head: Option<&str>, tail: Option<&str>) {
        let dates = std::mem::replace(&mut self.observed, true);
        match self.heads.back_mut() {
            Some((newest, ..)) if newest.as_deref() == head && head.is_some() => {}
            // Unreadable heads in a row: the messages they hide came before the latest.
            Some((None, seen, _)) if head.is_none() => *seen = now,
            _ => {
                self.heads
                    .push_back((head.map(str::to_string), now, dates && head.is_some()));
                if self.heads.len() > HEAD_SIGHTINGS {
                    self.heads.pop_front();
                }
            }
        }
        let current = self.tail.as_ref().map(|(tag, ..)| tag.as_deref());
        if tail.is_some() && current == Some(tail) {
            return;
        }
        // The previous tail has been consumed; so has its sighting.
        if let Some((Some(previous), ..)) = self.tail.take() {
            if let Some(i) = self
                .heads
                .iter()
                .position(|(tag, ..)| tag.as_deref() == Some(previous.as_str()))
            {
                self.heads.drain(..=i);
            }
        }
        let Some(tail) = tail else {
            self.tail = Some((None, now, false));
            return;
        };
        let position = self
            .heads
            .iter()
            .position(|(tag, ..)| tag.as_deref() == Some(tail));
        let (seen, dated) = match position {
            Some(i) => {
                let (_, t, dated) = self.heads[i];
                // Older sightings have been consumed: the list is FIFO.
                self.heads.drain(..i);
                (t, dated)
            }
            None => self
                .heads
                .front()
                .map_or((now, dates), |(_, t, d)| ((*t).min(now), *d)),
        };
        self.tail = Some((Some(tail.to_string()), seen, dated));
    }

    /// Age of the oldest waiting message: 0 when the list is empty or its tail unreadable.
    pub fn oldest_age(&self, now: f64) -> f64 {
        match &self.tail {
            Some((Some(_), t, _)) => (now - t).max(0.0),
            _ => 0.0,
        }
    }

    /// Whether [`TailClock::oldest_age`] is the age of a waiting message and not only a lower
    /// bound: a tail with a readable tag, dated by a sighting since the list was first
    /// observed (the first observation of a list that holds messages dates nothing).
    pub fn dated(&self) -> bool {
        self.tail.as_ref().is_some_and(|(_, _, d)| *d)
    }
}
