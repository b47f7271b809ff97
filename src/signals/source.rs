//! Where a live estimate comes from ([`Source`]) and how far it can be trusted
//! ([`SignalMode`]): bounded sets, each label written once here. They are the `source` of
//! `inspect` and of the policy's breakdown, and the `mode` label of
//! `celery_scaler_signal_mode`.

use serde::{Serialize, Serializer};

/// The `mode` label of a signal that has no estimate.
pub const NO_ESTIMATE: &str = "none";

/// Where a live estimate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Counted from keyspace notifications (every push and pop seen): exact.
    Keyspace,
    /// Counted from the change of the list length and of `unacked` between samples.
    Conservation,
    /// Arrivals and dequeues counted from where last tick's head message is now (`LPOS`).
    ListPosition,
    /// Queue wait timed from the tag of the message at the list's tail.
    TailTag,
    /// Service time from how long entries stay in `unacked`.
    UnackedResidence,
    /// Service time from Little's law over `unacked` (with counted dequeues).
    UnackedOccupancy,
    /// From worker heartbeats (`active`, `processed`).
    Heartbeat,
    /// Configured (`taskDuration`), not measured.
    Config,
}

impl Source {
    /// Every source, in a fixed order.
    pub const ALL: [Source; 8] = [
        Source::Keyspace,
        Source::Conservation,
        Source::ListPosition,
        Source::TailTag,
        Source::UnackedResidence,
        Source::UnackedOccupancy,
        Source::Heartbeat,
        Source::Config,
    ];

    /// The label (on `/metrics`, in `inspect` and in the policy's breakdown).
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Keyspace => "keyspace",
            Source::Conservation => "conservation",
            Source::ListPosition => "list-position",
            Source::TailTag => "tail-tag",
            Source::UnackedResidence => "unacked-residence",
            Source::UnackedOccupancy => "unacked-occupancy",
            Source::Heartbeat => "heartbeat",
            Source::Config => "config",
        }
    }

    /// The mode an estimate from this source is in unless known to under-count: keyspace
    /// counting is exact, anything else estimated.
    pub const fn mode(self) -> SignalMode {
        match self {
            Source::Keyspace => SignalMode::Exact,
            _ => SignalMode::Estimated,
        }
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How far a live estimate can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalMode {
    /// Counted from every event (keyspace notifications).
    Exact,
    /// Counted or estimated from samples, without a known bias.
    Estimated,
    /// Known to under-count: the true value may be much higher (a rate whose events mostly
    /// happen between two samples and leave no trace in Redis).
    LowerBound,
}

impl SignalMode {
    /// Every mode, in a fixed order.
    pub const ALL: [SignalMode; 3] = [
        SignalMode::Exact,
        SignalMode::Estimated,
        SignalMode::LowerBound,
    ];

    /// The label (`mode` of `celery_scaler_signal_mode`, and in `inspect`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SignalMode::Exact => "exact",
            SignalMode::Estimated => "estimated",
            SignalMode::LowerBound => "lower-bound",
        }
    }
}

impl Serialize for SignalMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_kebab_case_and_serialize_as_themselves() {
        let mut labels: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
        labels.extend(SignalMode::ALL.iter().map(|m| m.as_str()));
        labels.push(NO_ESTIMATE);
        let n = labels.len();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), n, "labels are distinct");
        for l in &labels {
            assert!(l.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{l}");
        }
        for s in Source::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(
            serde_json::to_string(&SignalMode::LowerBound).unwrap(),
            "\"lower-bound\""
        );
        assert_eq!(Source::Keyspace.mode(), SignalMode::Exact);
        assert_eq!(Source::Heartbeat.mode(), SignalMode::Estimated);
    }
}
