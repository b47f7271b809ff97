//! The broker side of the live signals: the extra reads of a tick (`CONFIG GET` of the
//! notification flags, `LPOS` of the previous head, `LINDEX` of both ends) appended to the
//! sampler's pipeline and decoded from its replies, the `unacked` churn attributed to the
//! watched queues, what the pub/sub task should listen to, and the warning about queues
//! that cannot be observed. The estimation itself is the pure core in `signals::live`
//! (`signals::live::book` describes the counting modes): this module only decodes and calls it.

use std::collections::HashSet;

use super::events::{worker_pattern, Desired};
use super::tracker::Tracker;
use crate::celery::parse_delivery_tag;
use crate::celery::Layout;
pub(crate) use crate::signals::live::book::{LiveBook, Plan, LPOS_MAXLEN};
pub(crate) use crate::signals::live::queue::{Keyspace, TickExtras};
pub(crate) use crate::signals::live::LiveData;
use crate::spec::WatchSet;

impl Keyspace {
    /// Reads the reply to `CONFIG GET notify-keyspace-events`.
    pub(crate) fn from_reply(v: &redis::Value) -> Self {
        let flags = match v {
            redis::Value::Array(items) => items.get(1),
            redis::Value::Map(pairs) => pairs.first().map(|(_, v)| v),
            redis::Value::ServerError(_) => return Keyspace::Denied,
            _ => None,
        };
        let text = match flags {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => return Keyspace::Disabled,
        };
        if flags_enable_lists(&text) {
            Keyspace::Enabled
        } else {
            Keyspace::Disabled
        }
    }
}

/// `K` (keyspace channel) and `l` (list commands) or `A` (all classes, `l` included).
pub(crate) fn flags_enable_lists(flags: &str) -> bool {
    flags.contains('K') && (flags.contains('l') || flags.contains('A'))
}

/// Largest head message kept as an anchor (it is sent back with `LPOS` on the next tick).
pub(crate) const MAX_ANCHOR: usize = 64 * 1024;
impl LiveBook {
    /// What the pub/sub task should listen to.
    pub(crate) fn desired(&self, watches: &[WatchSet], db: i64) -> Desired {
        let mut d = Desired::default();
        for w in watches {
            if self.keyspace == Keyspace::Enabled {
                for q in &w.queues {
                    d.keys.extend(w.layout.queue_keys(q));
                }
            }
            d.patterns.insert(
                worker_pattern(&w.layout.prefix, db),
                w.layout.prefix.clone(),
            );
        }
        d
    }
}

/// Appends the tick's extra reads to the sampler's first round trip: `CONFIG GET` of the
/// notification flags when due, and per key in estimated mode `LPOS` of its anchor (when it
/// has one) right before `LINDEX 0` / `LINDEX -1`, so that no other client's push is likely
/// to land between the old anchor's position and the new anchor (Redis runs a pipeline read
/// in one go; a push in between would be missed, never counted twice).
pub(crate) fn append_reads(pipe: &mut redis::Pipeline, plan: &Plan, check_keyspace: bool) {
    if check_keyspace {
        pipe.cmd("CONFIG").arg("GET").arg("notify-keyspace-events");
    }
    for key in &plan.tail_keys {
        if let Some(anchor) = plan.anchor(key) {
            pipe.cmd("LPOS")
                .arg(key)
                .arg(anchor)
                .arg("MAXLEN")
                .arg(LPOS_MAXLEN);
        }
        pipe.cmd("LINDEX").arg(key).arg(0);
        pipe.cmd("LINDEX").arg(key).arg(-1);
    }
}

/// Whether an error reply to `LPOS` means the server will never answer it: an unknown
/// command (Redis < 6.0.6), a syntax error (no `MAXLEN`) or an ACL refusal.
fn refuses_lpos(e: &redis::ServerError) -> bool {
    let detail = e.details().unwrap_or_default().to_ascii_lowercase();
    e.code() == "NOPERM" || detail.contains("unknown command") || detail.contains("syntax")
}

/// Reads the answers to [`append_reads`] (in the same order).
pub(crate) fn read_answers(
    extras: &mut TickExtras,
    plan: &Plan,
    check_keyspace: bool,
    answers: &[redis::Value],
) {
    let mut it = answers.iter();
    if check_keyspace {
        extras.keyspace = it.next().map(Keyspace::from_reply);
    }
    let tag = |v: Option<&redis::Value>| match v {
        Some(redis::Value::BulkString(b)) => parse_delivery_tag(b),
        _ => None,
    };
    for key in &plan.tail_keys {
        if plan.anchor(key).is_some() {
            let position = match it.next() {
                Some(redis::Value::Int(i)) => u64::try_from(*i).ok(),
                Some(redis::Value::ServerError(e)) => {
                    extras.lpos_refused |= refuses_lpos(e);
                    None
                }
                _ => None,
            };
            extras.positions.insert(key.clone(), position);
        }
        let first = it.next();
        let head = tag(first);
        // Only a kombu message is a safe anchor: its delivery tag makes it unique in the list.
        if let (Some(redis::Value::BulkString(b)), Some(_)) = (first, &head) {
            if b.len() <= MAX_ANCHOR {
                extras.heads.insert(key.clone(), b.clone());
            }
        }
        let tail = tag(it.next());
        extras.ends.insert(key.clone(), (head, tail));
    }
}

/// Attributes the `unacked` churn of one prefix's tracker to the watched queues.
pub(crate) fn attribute_churn(
    extras: &mut TickExtras,
    prefix: &[u8],
    tracker: &mut Tracker,
    watches: &[WatchSet],
) {
    let churn = tracker.take_churn();
    if churn.new.is_empty() && churn.left.is_empty() {
        return;
    }
    let mut layouts: Vec<&Layout> = Vec::new();
    for w in watches.iter().filter(|w| w.layout.prefix == prefix) {
        if !layouts.contains(&&w.layout) {
            layouts.push(&w.layout);
        }
    }
    for layout in layouts {
        let watched: HashSet<&str> = watches
            .iter()
            .filter(|w| w.layout == *layout)
            .flat_map(|w| w.queues.iter().map(String::as_str))
            .collect();
        let sep = layout.separator.as_slice();
        for (score, entry) in &churn.new {
            for q in tracker.queues_of(sep, entry) {
                if watched.contains(q.as_str()) {
                    let c = extras.churn.entry((layout.clone(), q)).or_default();
                    c.new += 1;
                    c.redelivered += u64::from(entry.redelivered);
                    if entry.eta.is_none() {
                        c.new_scores.push(*score);
                    }
                }
            }
        }
        for (score, entry) in &churn.left {
            for q in tracker.queues_of(sep, entry) {
                if watched.contains(q.as_str()) {
                    let c = extras.churn.entry((layout.clone(), q)).or_default();
                    c.gone += 1;
                    if entry.eta.is_none() {
                        c.left.push(*score);
                    }
                }
            }
        }
    }
}

/// Warns about queues whose rates became lower bounds (at most once per queue per
/// `signals::live::UNOBSERVABLE_WARN_PERIOD`); the gauges themselves are set by `telemetry::queues::export_live`.
pub(crate) fn warn_unobservable(broker: &str, data: &LiveData) {
    for (layout, q) in &data.unobservable {
        let queue = format!("{}{q}", String::from_utf8_lossy(&layout.prefix));
        tracing::warn!(
            broker,
            queue = %queue,
            "arrival rate is a lower bound: the queue is kept empty between samples and the broker has no keyspace notifications, so most tasks leave no trace in Redis; enable `notify-keyspace-events Kl` on the broker, or set `workerHostnames` on a trigger of this queue alone"
        );
    }
}

#[cfg(test)]
mod tests;
