//! The scaling decision: a pure function of the trigger's policy settings and the per-queue
//! signals. It returns the metric value KEDA hands to the HPA, the per-replica target, the
//! activation flag, and a breakdown that explains the number.
//!
//! Architecture Invariant: no I/O, no clock, no async. Time, when a mode needs it, is passed in.
use crate::signals::{LiveSignals, QueueSignals};

mod decision;
pub mod latency;

pub use decision::{Component, Decision};
pub use latency::LatencySettings;

/// Default per-replica target in `backlog` mode (KEDA redis scaler's `listLength`).
pub const DEFAULT_LIST_LENGTH: f64 = 5.0;
/// Default activation threshold in `backlog` mode (KEDA's `activationListLength`).
pub const DEFAULT_ACTIVATION_LIST_LENGTH: f64 = 0.0;

/// The policy part of a trigger's settings.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicySettings {
    /// KEDA-compatible: metric = Σ(backlog + reserved + stale), target = `list_length`.
    Backlog {
        list_length: f64,
        activation_list_length: f64,
    },
    /// Busy slots needed to keep queue wait under a target: target = `concurrency`.
    Latency(LatencySettings),
}

impl PolicySettings {
    pub fn mode_name(&self) -> &'static str {
        match self {
            PolicySettings::Backlog { .. } => "backlog",
            PolicySettings::Latency(_) => "latency",
        }
    }
}

/// Decides for `queues` under `settings`, with no live signals (every live estimate falls
/// back as `docs/scaling.md` describes).
pub fn decide(settings: &PolicySettings, queues: &[QueueSignals]) -> Decision {
    decide_live(settings, queues, &[])
}

/// Decides for `queues` with the sampler's live estimates. `live` is matched to `queues` by
/// queue name; a queue without an entry has no live signals. `backlog` mode ignores `live`.
pub fn decide_live(
    settings: &PolicySettings,
    queues: &[QueueSignals],
    live: &[LiveSignals],
) -> Decision {
    match settings {
        PolicySettings::Backlog {
            list_length,
            activation_list_length,
        } => backlog(*list_length, *activation_list_length, queues),
        PolicySettings::Latency(s) => latency::decide(s, queues, live),
    }
}

fn backlog(list_length: f64, activation: f64, queues: &[QueueSignals]) -> Decision {
    let sum =
        |f: fn(&QueueSignals) -> u64| queues.iter().fold(0u64, |acc, q| acc.saturating_add(f(q)));
    let waiting = sum(|q| q.backlog);
    let reserved = sum(|q| q.reserved);
    let stale = sum(|q| q.stale);
    let metric_value = waiting as f64 + reserved as f64 + stale as f64;
    let active = waiting as f64 > activation || reserved > 0 || stale > 0;
    Decision {
        metric_value,
        target: sanitize_target(list_length),
        active,
        breakdown: vec![
            Component {
                component: "backlog",
                value: waiting as f64,
                source: "llen",
            },
            Component {
                component: "reserved",
                value: reserved as f64,
                source: "unacked",
            },
            Component {
                component: "stale",
                value: stale as f64,
                source: "unacked",
            },
        ],
    }
}

/// Targets are validated at parse time; this keeps the invariant even if a caller did not.
fn sanitize_target(target: f64) -> f64 {
    if target.is_finite() && target > 0.0 {
        target
    } else {
        DEFAULT_LIST_LENGTH
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(name: &str, backlog: u64, reserved: u64, scheduled: u64, stale: u64) -> QueueSignals {
        QueueSignals {
            name: name.into(),
            backlog,
            reserved,
            scheduled,
            stale,
        }
    }

    fn backlog_mode(list_length: f64, activation: f64) -> PolicySettings {
        PolicySettings::Backlog {
            list_length,
            activation_list_length: activation,
        }
    }

    #[test]
    fn sums_backlog_reserved_and_stale_but_not_scheduled() {
        let d = decide(
            &backlog_mode(5.0, 0.0),
            &[q("a", 10, 2, 100, 1), q("b", 3, 0, 0, 0)],
        );
        assert_eq!(d.metric_value, 16.0);
        assert_eq!(d.target, 5.0);
        assert!(d.active);
        let parts: Vec<_> = d.breakdown.iter().map(|c| (c.component, c.value)).collect();
        assert_eq!(
            parts,
            vec![("backlog", 13.0), ("reserved", 2.0), ("stale", 1.0)]
        );
    }

    #[test]
    fn only_scheduled_is_idle() {
        let d = decide(&backlog_mode(5.0, 0.0), &[q("a", 0, 0, 7, 0)]);
        assert_eq!(d.metric_value, 0.0);
        assert!(!d.active);
    }

    #[test]
    fn activation_threshold_is_strict_and_in_flight_always_activates() {
        let s = backlog_mode(5.0, 3.0);
        assert!(!decide(&s, &[q("a", 3, 0, 0, 0)]).active);
        assert!(decide(&s, &[q("a", 4, 0, 0, 0)]).active);
        assert!(decide(&s, &[q("a", 0, 1, 0, 0)]).active);
        assert!(decide(&s, &[q("a", 0, 0, 0, 1)]).active);
    }

    #[test]
    fn no_queues_is_idle_and_finite() {
        let d = decide(&backlog_mode(0.5, 0.0), &[]);
        assert_eq!((d.metric_value, d.target, d.active), (0.0, 0.5, false));
    }

    fn arb_queue() -> impl Strategy<Value = QueueSignals> {
        (0u64..1_000_000, 0u64..10_000, 0u64..10_000, 0u64..10_000)
            .prop_map(|(b, r, sc, st)| q("q", b, r, sc, st))
    }

    proptest! {
        #[test]
        fn metric_is_finite_non_negative_and_zero_only_when_idle(
            queues in proptest::collection::vec(arb_queue(), 0..6),
            list_length in 0.001f64..1000.0,
        ) {
            let d = decide(&backlog_mode(list_length, 0.0), &queues);
            prop_assert!(d.metric_value.is_finite() && d.metric_value >= 0.0);
            prop_assert!(d.target.is_finite() && d.target > 0.0);
            let work: u64 = queues.iter().map(|q| q.backlog + q.reserved + q.stale).sum();
            prop_assert_eq!(d.metric_value == 0.0, work == 0);
            prop_assert_eq!(d.active, work > 0);
            // Never fewer slots than tasks reserved (running under acks_late) now.
            let reserved: u64 = queues.iter().map(|q| q.reserved).sum();
            prop_assert!(d.metric_value >= reserved as f64);
        }

        #[test]
        fn metric_is_monotone_in_every_input(
            base in arb_queue(),
            which in 0usize..4,
            extra in 1u64..1000,
        ) {
            let s = backlog_mode(5.0, 0.0);
            let before = decide(&s, std::slice::from_ref(&base));
            let mut more = base.clone();
            match which {
                0 => more.backlog += extra,
                1 => more.reserved += extra,
                2 => more.scheduled += extra,
                _ => more.stale += extra,
            }
            let after = decide(&s, &[more]);
            prop_assert!(after.metric_value >= before.metric_value);
            prop_assert!(after.active || !before.active);
        }
    }
}
