//! What the pub/sub connection heard, kept for the sampler: per list key the keyspace events
//! (`lpush`, `rpop`, `rpush`, `del`) with the arrival clock of the messages they imply, and
//! per key prefix the worker heartbeats. Pure bookkeeping: the broker's pub/sub task decodes
//! the messages and passes them in with the time it heard them.

use std::collections::HashMap;

use crate::celery::{WorkerEvent, WorkerEventKind};
use crate::signals::estimate::FifoClock;
use crate::signals::heartbeat::{Heartbeat, HeartbeatBook, HeartbeatLimits, Implausible};

/// What was heard about one list key since it was subscribed.
#[derive(Debug, Default)]
pub struct KeyEvents {
    /// The connection generation in which the subscription was confirmed.
    pub generation: u64,
    pub lpush: u64,
    pub rpop: u64,
    pub rpush: u64,
    /// Arrival times of the messages in the list, kept from the events.
    pub clock: FifoClock,
    /// Set by the sampler when the key's queue is idle: the next `lpush` wakes the sampler.
    pub wake_on_push: bool,
}

/// Everything the pub/sub task shares with the sampler.
#[derive(Debug, Default)]
pub struct EventState {
    /// Bumped whenever the connection is (re)established; counts of different generations
    /// are not continuous.
    pub generation: u64,
    /// Whether the connection is up now.
    pub up: bool,
    /// Keys with a confirmed keyspace subscription in the current generation.
    pub keys: HashMap<Vec<u8>, KeyEvents>,
    /// Worker heartbeats by key prefix.
    pub heartbeats: HashMap<Vec<u8>, HeartbeatBook>,
    /// Worker events that could not be decoded.
    pub malformed: u64,
}

impl EventState {
    /// Records keyspace event `event` on a subscribed `key`, heard at `now`. Returns whether
    /// the sampler asked to be woken by this key's next push (its queue was idle).
    pub fn key_event(&mut self, key: &[u8], event: &[u8], now: f64) -> bool {
        let Some(k) = self.keys.get_mut(key) else {
            return false;
        };
        match event {
            b"lpush" => {
                k.lpush += 1;
                k.clock.arrive(now);
                return std::mem::take(&mut k.wake_on_push);
            }
            b"rpop" => {
                k.rpop += 1;
                k.clock.dequeue();
            }
            b"rpush" => {
                k.rpush += 1;
                k.clock.restore(now);
            }
            b"del" => k.clock = FifoClock::default(),
            _ => {}
        }
        false
    }

    /// Records a decoded worker event of key prefix `prefix`, heard at `now`, in that
    /// prefix's heartbeat book (smoothed over `window` seconds, within `limits`). Returns
    /// what was implausible about it (clamped or refused).
    pub fn worker_event(
        &mut self,
        prefix: &[u8],
        event: WorkerEvent,
        now: f64,
        window: f64,
        limits: HeartbeatLimits,
    ) -> Vec<Implausible> {
        let book = self
            .heartbeats
            .entry(prefix.to_vec())
            .or_insert_with(|| HeartbeatBook::with_limits(window, limits));
        let beat = |e: WorkerEvent| Heartbeat {
            hostname: e.hostname,
            active: e.active,
            processed: e.processed,
            freq: e.freq,
        };
        match event.kind {
            WorkerEventKind::Heartbeat => book.record(now, &beat(event)),
            WorkerEventKind::Online => book.record_online(now, &beat(event)),
            WorkerEventKind::Offline => {
                book.forget(&event.hostname);
                Vec::new()
            }
            WorkerEventKind::Other => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_events_count_and_wake_once_after_an_idle_request() {
        let mut s = EventState::default();
        assert!(
            !s.key_event(b"q", b"lpush", 1.0),
            "unsubscribed keys are ignored"
        );
        s.keys.insert(b"q".to_vec(), KeyEvents::default());
        assert!(!s.key_event(b"q", b"lpush", 1.0));
        if let Some(k) = s.keys.get_mut(b"q".as_slice()) {
            k.wake_on_push = true;
        }
        assert!(s.key_event(b"q", b"lpush", 2.0));
        assert!(
            !s.key_event(b"q", b"lpush", 3.0),
            "the wake-up is taken once"
        );
        assert!(!s.key_event(b"q", b"rpop", 3.5));
        assert!(!s.key_event(b"q", b"rpush", 4.0));
        let k = &s.keys[b"q".as_slice()];
        assert_eq!((k.lpush, k.rpop, k.rpush), (3, 1, 1));
    }
}
