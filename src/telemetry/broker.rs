//! Series of the broker module: what each sampler read, how much it cost, and how it
//! failed. Every series carries the broker's credential-free label; a broker's series are
//! removed when its sampler stops (`queues::remove_broker`).
//!
//! The families are in `families.rs`; [`BrokerMetrics`] is one sampler's handle on them,
//! with its label bound.

use std::sync::Arc;
use std::time::Instant;

use super::budget::SeriesBudget;
use super::families::BrokerFamilies;
use crate::signals::heartbeat::Implausible;

/// Broker data handled by a documented fallback instead of being trusted: the `kind` of
/// `celery_scaler_broker_suspect_data_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspect {
    /// An `unacked` ETA that does not parse (counted as reserved).
    BadEta,
    /// An `unacked_index` score that is not a delivery time.
    BadScore,
    /// A binding member over the length limit.
    BindingTooLong,
    /// Binding members of one exchange over the count limit.
    TooManyBindings,
    /// Exchanges named by `unacked` entries over the limit.
    TooManyExchanges,
    /// An `unacked` routing key over the length limit.
    RoutingKeyTooLong,
}

impl Suspect {
    pub const ALL: [Suspect; 6] = [
        Suspect::BadEta,
        Suspect::BadScore,
        Suspect::BindingTooLong,
        Suspect::TooManyBindings,
        Suspect::TooManyExchanges,
        Suspect::RoutingKeyTooLong,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Suspect::BadEta => "bad_eta",
            Suspect::BadScore => "bad_score",
            Suspect::BindingTooLong => "binding_too_long",
            Suspect::TooManyBindings => "too_many_bindings",
            Suspect::TooManyExchanges => "too_many_exchanges",
            Suspect::RoutingKeyTooLong => "routing_key_too_long",
        }
    }
}

/// Kinds of `celery_scaler_redis_errors_total` (`BrokerError::kind`).
const ERROR_KINDS: [&str; 7] = [
    "connect", "auth", "timeout", "command", "sentinel", "stale", "shutdown",
];

/// One broker's handle on the broker families: its label, the families and the series
/// budget. Cheap to clone.
#[derive(Clone)]
pub struct BrokerMetrics {
    label: Arc<str>,
    pub(crate) families: Arc<BrokerFamilies>,
    pub(crate) budget: Arc<SeriesBudget>,
}

impl BrokerMetrics {
    pub(crate) fn new(
        label: &str,
        families: Arc<BrokerFamilies>,
        budget: Arc<SeriesBudget>,
    ) -> Self {
        Self {
            label: label.into(),
            families,
            budget,
        }
    }

    /// The broker's label (`host:port/db`, plus a keyed hash when it has credentials).
    pub fn label(&self) -> &str {
        &self.label
    }

    fn one(&self) -> [&str; 1] {
        [self.label()]
    }

    /// `n` Redis commands sent on the sampler's connection.
    pub fn commands(&self, n: u64) {
        self.families
            .sampler
            .redis_commands
            .with_label_values(&self.one())
            .inc_by(n);
    }

    /// `n` commands sent on the pub/sub connection.
    pub fn pubsub_commands(&self, n: u64) {
        self.families
            .sampler
            .pubsub_commands
            .with_label_values(&self.one())
            .inc_by(n);
    }

    /// One `unacked` value that could not be parsed.
    pub fn malformed(&self) {
        self.families
            .data
            .unacked_malformed
            .with_label_values(&self.one())
            .inc();
    }

    /// `n` pieces of broker data of `kind` handled by a fallback.
    pub fn suspect(&self, kind: Suspect, n: u64) {
        if n > 0 {
            self.families
                .data
                .suspect_data
                .with_label_values(&[self.label(), kind.as_str()])
                .inc_by(n);
        }
    }

    /// One implausible worker heartbeat.
    pub fn implausible(&self, reason: Implausible) {
        self.families
            .data
            .heartbeats_implausible
            .with_label_values(&[self.label(), reason.label()])
            .inc();
    }

    /// One failed sample of error `kind`.
    pub fn error(&self, kind: &'static str) {
        self.families
            .sampler
            .redis_errors
            .with_label_values(&[self.label(), kind])
            .inc();
    }

    /// One sample took `seconds`.
    pub fn sample_took(&self, seconds: f64) {
        self.families
            .sampler
            .sample_duration
            .with_label_values(&self.one())
            .observe(seconds);
    }

    /// A good sample was taken at `at`.
    pub fn sampled(&self, at: Instant) {
        self.families.sampler.sample_age.sampled(&self.label, at);
    }

    /// The broker has `n` watch sets.
    pub fn watch_sets(&self, n: usize) {
        self.families
            .sampler
            .watch_sets
            .with_label_values(&self.one())
            .set(n as f64);
    }

    /// A background task (`sampler`, `events`) of this broker was restarted.
    pub fn restarted(&self, task: &'static str) {
        self.families
            .sampler
            .task_restarts
            .with_label_values(&[task])
            .inc();
    }

    /// Sets the unreadable-key gauges: one count per key kind, zeros included.
    pub fn set_unreadable(&self, counts: &[(&'static str, usize)]) {
        for (kind, n) in counts {
            self.families
                .data
                .unreadable_keys
                .with_label_values(&[self.label(), kind])
                .set(*n as f64);
        }
    }

    /// Removes every per-broker series of this broker but the per-queue ones (see
    /// `queues.rs`); `key_kinds` are the kinds of the unreadable-key gauges.
    pub(crate) fn remove_fixed(&self, key_kinds: &[&str]) {
        let f = &self.families;
        let one = self.one();
        let _ = f.sampler.redis_commands.remove_label_values(&one);
        let _ = f.sampler.pubsub_commands.remove_label_values(&one);
        let _ = f.data.unacked_malformed.remove_label_values(&one);
        let _ = f.sampler.sample_duration.remove_label_values(&one);
        f.sampler.sample_age.remove(&self.label);
        let _ = f.sampler.watch_sets.remove_label_values(&one);
        for reason in Implausible::ALL {
            let _ = f
                .data
                .heartbeats_implausible
                .remove_label_values(&[self.label(), reason.label()]);
        }
        for kind in ERROR_KINDS {
            let _ = f
                .sampler
                .redis_errors
                .remove_label_values(&[self.label(), kind]);
        }
        for kind in key_kinds {
            let _ = f
                .data
                .unreadable_keys
                .remove_label_values(&[self.label(), kind]);
        }
        for kind in Suspect::ALL {
            let _ = f
                .data
                .suspect_data
                .remove_label_values(&[self.label(), kind.as_str()]);
        }
    }
}
