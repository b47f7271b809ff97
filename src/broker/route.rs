//! Routing `unacked` entries to queues through kombu's `_kombu.binding.<exchange>` sets, with
//! bounds on what anyone who can write to the broker can make a tick do.
//!
//! Limits (documented in docs/accuracy.md; what exceeds them is skipped and counted in
//! `celery_scaler_broker_suspect_data_total`):
//!
//! * at most [`MAX_EXCHANGES`] exchanges' binding sets are read per key prefix;
//! * at most [`MAX_BINDINGS_PER_EXCHANGE`] members of one set are read (`SRANDMEMBER` with
//!   that count, never the whole set: a set of millions costs the broker and the scaler no
//!   more than one of a thousand), each kept if at most [`MAX_MEMBER_LEN`] bytes; `SCARD`
//!   counts what was left unread;
//! * wildcard matching is limited to AMQP's 255-byte keys ([`crate::celery::MAX_TOPIC_LEN`])
//!   and costs at most (pattern words) × (key words + 1) steps;
//! * each distinct (exchange, routing key) is matched once per tick (memoised).
//!
//! A binding key of another type than a set (`WRONGTYPE`) routes nothing and is reported as
//! unreadable; the rest of the broker is still served.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::conn::Link;
use super::error::BrokerError;
use super::reply::{self, KeyKind, UnreadableKey};
use crate::celery::{parse_binding_member, Binding, Layout, UnackedEntry};
use crate::telemetry::{BrokerMetrics, Suspect};

/// How long a binding set once read is trusted.
pub(crate) const BINDINGS_TTL: Duration = Duration::from_secs(30);
/// Most exchanges whose binding sets are read for one key prefix.
pub(crate) const MAX_EXCHANGES: usize = 256;
/// Most members of one binding set that take part in routing.
pub(crate) const MAX_BINDINGS_PER_EXCHANGE: usize = 1024;
/// Longest binding member kept: three AMQP short strings and two separators.
pub(crate) const MAX_MEMBER_LEN: usize = 3 * 255 + 16;

/// One exchange's binding set as last read.
struct BindingSet {
    members: Vec<Vec<u8>>,
    read_at: Instant,
    /// The key was not a set: routes nothing until it is read again.
    unreadable: bool,
}

/// Parsed bindings by exchange, for one separator.
type Parsed = Arc<HashMap<String, Vec<Binding>>>;

/// The binding sets of one key prefix, read for the exchanges its entries name.
pub(crate) struct Bindings {
    label: String,
    metrics: BrokerMetrics,
    prefix: Vec<u8>,
    sets: HashMap<String, BindingSet>,
    /// The sets parsed per separator, until the next change of `sets`.
    parsed: Mutex<HashMap<Vec<u8>, Parsed>>,
}

impl Bindings {
    pub(crate) fn new(metrics: &BrokerMetrics, prefix: &[u8]) -> Self {
        Self {
            label: metrics.label().to_string(),
            metrics: metrics.clone(),
            prefix: prefix.to_vec(),
            sets: HashMap::new(),
            parsed: Mutex::new(HashMap::new()),
        }
    }

    fn parsed(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Parsed>> {
        match self.parsed.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn layout(&self) -> Layout {
        Layout {
            prefix: self.prefix.clone(),
            ..Layout::default()
        }
    }

    /// Reads the sets of `seen` exchanges whose copy is missing or older than
    /// [`BINDINGS_TTL`] (at most [`MAX_EXCHANGES`] known at a time); forgets the others.
    pub(crate) async fn refresh(
        &mut self,
        seen: BTreeSet<&str>,
        link: &mut Link,
    ) -> Result<(), BrokerError> {
        let before = self.sets.len();
        self.sets.retain(|ex, _| seen.contains(ex.as_str()));
        if self.sets.len() != before {
            self.parsed().clear();
        }
        let over = seen.len().saturating_sub(MAX_EXCHANGES);
        if over > 0 {
            self.metrics.suspect(Suspect::TooManyExchanges, over as u64);
            warn!(broker = %self.label, exchanges = seen.len(), limit = MAX_EXCHANGES, "unacked entries name too many exchanges; the rest route nowhere");
        }
        let stale: Vec<String> = seen
            .into_iter()
            .take(MAX_EXCHANGES)
            .filter(|ex| {
                self.sets
                    .get(*ex)
                    .is_none_or(|s| s.read_at.elapsed() >= BINDINGS_TTL)
            })
            .map(str::to_string)
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let layout = self.layout();
        let mut pipe = redis::pipe();
        for ex in &stale {
            let key = layout.binding_key(ex);
            pipe.cmd("SCARD").arg(&key);
            pipe.cmd("SRANDMEMBER")
                .arg(&key)
                .arg(MAX_BINDINGS_PER_EXCHANGE);
        }
        let answers = link.round_trip(&pipe).await?;
        self.parsed().clear();
        for (ex, pair) in stale.into_iter().zip(answers.chunks(2)) {
            let [size, answer] = pair else {
                return Err(BrokerError::Command {
                    broker: self.label.clone(),
                    detail: format!("a binding read answered {} of 2 replies", pair.len()),
                });
            };
            let set = if reply::is_wrong_type(size) || reply::is_wrong_type(answer) {
                debug!(broker = %self.label, "a binding key is not a set; skipped");
                BindingSet {
                    members: Vec::new(),
                    read_at: Instant::now(),
                    unreadable: true,
                }
            } else {
                let members = reply::optional_strings(&self.label, answer)?;
                let unread = reply::int(&self.label, size)?.saturating_sub(members.len() as u64);
                self.metrics.suspect(Suspect::TooManyBindings, unread);
                BindingSet {
                    members: self.bounded(members.into_iter().flatten()),
                    read_at: Instant::now(),
                    unreadable: false,
                }
            };
            self.sets.insert(ex, set);
        }
        Ok(())
    }

    /// Keeps at most [`MAX_BINDINGS_PER_EXCHANGE`] members of at most [`MAX_MEMBER_LEN`]
    /// bytes, counting what it drops.
    fn bounded(&self, members: impl Iterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
        let (mut kept, mut too_long, mut too_many) = (Vec::new(), 0u64, 0u64);
        for m in members {
            if m.len() > MAX_MEMBER_LEN {
                too_long += 1;
            } else if kept.len() >= MAX_BINDINGS_PER_EXCHANGE {
                too_many += 1;
            } else {
                kept.push(m);
            }
        }
        self.metrics.suspect(Suspect::BindingTooLong, too_long);
        self.metrics.suspect(Suspect::TooManyBindings, too_many);
        kept
    }

    /// Binding keys that could not be read as sets on their last read.
    pub(crate) fn unreadable(&self) -> Vec<UnreadableKey> {
        let layout = self.layout();
        let mut out: Vec<UnreadableKey> = self
            .sets
            .iter()
            .filter(|(_, s)| s.unreadable)
            .map(|(ex, _)| UnreadableKey::new(KeyKind::Binding, &layout.binding_key(ex)))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// A router over the current sets for one separator (parsed once per change).
    pub(crate) fn router(&self, separator: &[u8]) -> Router {
        let mut parsed = self.parsed();
        let by_exchange = parsed
            .entry(separator.to_vec())
            .or_insert_with(|| {
                let map = self
                    .sets
                    .iter()
                    .map(|(ex, set)| {
                        let bindings = set
                            .members
                            .iter()
                            .filter_map(|m| parse_binding_member(m, separator))
                            .collect();
                        (ex.clone(), bindings)
                    })
                    .collect();
                Arc::new(map)
            })
            .clone();
        Router {
            by_exchange,
            memo: HashMap::new(),
        }
    }
}

/// Routes entries to queue names; each (exchange, routing key) is matched once.
pub(crate) struct Router {
    by_exchange: Parsed,
    memo: HashMap<(String, String), Vec<String>>,
}

impl Router {
    /// The queues `entry` is attributed to: its routing key for the default exchange, else
    /// every queue whose binding matches (each once, in binding order).
    pub(crate) fn queues(&mut self, entry: &UnackedEntry) -> &[String] {
        let key = (entry.exchange.clone(), entry.routing_key.clone());
        let by_exchange = &self.by_exchange;
        self.memo.entry(key).or_insert_with(|| {
            if entry.exchange.is_empty() {
                return vec![entry.routing_key.clone()];
            }
            let mut out: Vec<String> = Vec::new();
            let mut seen: HashSet<&str> = HashSet::new();
            for b in by_exchange
                .get(entry.exchange.as_str())
                .into_iter()
                .flatten()
                .filter(|b| b.matches(&entry.routing_key))
            {
                if seen.insert(b.queue.as_str()) {
                    out.push(b.queue.clone());
                }
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(exchange: &str, routing_key: &str) -> UnackedEntry {
        UnackedEntry {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            eta: None,
            eta_malformed: false,
            redelivered: false,
        }
    }

    #[test]
    fn binding_sets_are_bounded_and_overflow_is_counted() {
        let metrics = crate::telemetry::Metrics::new();
        let b = Bindings::new(&metrics.broker("route-test/0"), b"");
        let mut members: Vec<Vec<u8>> = (0..MAX_BINDINGS_PER_EXCHANGE + 10)
            .map(|i| format!("rk{i}\x06\x16\x06\x16q").into_bytes())
            .collect();
        members.insert(0, vec![b'x'; MAX_MEMBER_LEN + 1]);
        let kept = b.bounded(members.into_iter());
        assert_eq!(kept.len(), MAX_BINDINGS_PER_EXCHANGE);
        assert!(kept.iter().all(|m| m.len() <= MAX_MEMBER_LEN));
        let count = |kind: &str| {
            b.metrics
                .families
                .data
                .suspect_data
                .with_label_values(&["route-test/0", kind])
                .get()
        };
        assert_eq!(count("too_many_bindings"), 10);
        assert_eq!(count("binding_too_long"), 1);
    }

    #[test]
    fn router_dedups_queues_and_routes_the_default_exchange_by_key() {
        let metrics = crate::telemetry::Metrics::new();
        let mut b = Bindings::new(&metrics.broker("route-test/1"), b"");
        let members = [
            "a.#\x06\x16\x06\x16q1",
            "*.b\x06\x16\x06\x16q1",
            "a.b\x06\x16\x06\x16q2",
        ];
        b.sets.insert(
            "ex".into(),
            BindingSet {
                members: members.iter().map(|m| m.as_bytes().to_vec()).collect(),
                read_at: Instant::now(),
                unreadable: false,
            },
        );
        let mut r = b.router(crate::celery::DEFAULT_SEPARATOR);
        assert_eq!(r.queues(&entry("ex", "a.b")), ["q1", "q2"]);
        assert_eq!(r.queues(&entry("ex", "c.d")), [] as [&str; 0]);
        assert_eq!(r.queues(&entry("", "celery")), ["celery"]);
        assert_eq!(r.queues(&entry("nobody", "a.b")), [] as [&str; 0]);
        assert!(b.unreadable().is_empty());
    }
}
