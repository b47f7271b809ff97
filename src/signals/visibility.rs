//! Whether a queue's traffic can be observed from Redis at all. A queue that a fast consumer
//! keeps empty, on a broker without keyspace notifications, shows neither a backlog at the
//! samples nor (mostly) its short-lived `unacked` entries: the tasks pushed, taken and
//! acknowledged between two samples leave no trace, so its counted rates are lower bounds.
//!
//! [`Visibility`] keeps, over a window of ticks, whether each tick was *blind* (counted by
//! conservation with the queue empty at both ends of the tick) and whether it saw *flow*
//! (new `unacked` tags, a backlog, or counted arrivals). A queue whose ticks were mostly
//! blind, that showed flow, and whose `unacked` entries live shorter than a tick (so most
//! of them go unseen) is reported as unobservable. Pure: time is passed in.

use std::collections::VecDeque;

/// Fewest ticks in the window before a verdict.
pub const MIN_TICKS: usize = 5;
/// Share of blind ticks from which the queue counts as unobservable.
pub const BLIND_SHARE: f64 = 0.5;

/// What one tick showed about a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickSight {
    /// Estimated by conservation, the queue empty at this tick and the previous one.
    pub blind: bool,
    /// Evidence of traffic: new `unacked` tags, a backlog, or counted arrivals.
    pub flow: bool,
}

/// The recent ticks of one queue.
#[derive(Clone, Debug)]
pub struct Visibility {
    window: f64,
    ticks: VecDeque<(f64, TickSight)>,
}

impl Visibility {
    pub fn new(window_secs: f64) -> Self {
        Self {
            window: window_secs,
            ticks: VecDeque::new(),
        }
    }

    /// Records one tick at `now`.
    pub fn observe(&mut self, now: f64, sight: TickSight) {
        if self.ticks.back().is_some_and(|(t, _)| now < *t) {
            self.ticks.clear();
        }
        self.ticks.push_back((now, sight));
        while self
            .ticks
            .front()
            .is_some_and(|(t, _)| *t < now - self.window)
        {
            self.ticks.pop_front();
        }
    }

    /// Whether the queue's rates are lower bounds: enough ticks, mostly blind, with flow,
    /// and `unacked` entries that live less than a tick (`short_lived`).
    pub fn lower_bound(&self, short_lived: bool) -> bool {
        let n = self.ticks.len();
        if n < MIN_TICKS || !short_lived {
            return false;
        }
        let blind = self.ticks.iter().filter(|(_, s)| s.blind).count();
        let flow = self.ticks.iter().any(|(_, s)| s.flow);
        flow && blind as f64 >= BLIND_SHARE * n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: &mut Visibility, from: u32, to: u32, sight: impl Fn(u32) -> TickSight) {
        for i in from..to {
            v.observe(f64::from(i), sight(i));
        }
    }

    #[test]
    fn blind_ticks_with_flow_and_short_entries_are_a_lower_bound() {
        let mut v = Visibility::new(30.0);
        let sight = |i: u32| TickSight {
            blind: true,
            flow: i % 4 == 0,
        };
        run(&mut v, 0, 4, sight);
        assert!(!v.lower_bound(true), "too few ticks yet");
        run(&mut v, 4, 20, sight);
        assert!(v.lower_bound(true));
        // Entries that outlive a tick are all seen: the counts are not biased.
        assert!(!v.lower_bound(false));
    }

    #[test]
    fn no_flow_or_a_visible_backlog_is_not_a_lower_bound() {
        let mut idle = Visibility::new(30.0);
        run(&mut idle, 0, 20, |_| TickSight {
            blind: true,
            flow: false,
        });
        assert!(!idle.lower_bound(true), "an idle queue is just idle");
        let mut busy = Visibility::new(30.0);
        run(&mut busy, 0, 20, |i| TickSight {
            blind: i % 3 == 0,
            flow: true,
        });
        assert!(!busy.lower_bound(true), "mostly counted ticks");
    }

    #[test]
    fn old_ticks_leave_the_window() {
        let mut v = Visibility::new(10.0);
        run(&mut v, 0, 20, |_| TickSight {
            blind: true,
            flow: true,
        });
        assert!(v.lower_bound(true));
        run(&mut v, 20, 40, |_| TickSight {
            blind: false,
            flow: true,
        });
        assert!(!v.lower_bound(true));
    }
}
