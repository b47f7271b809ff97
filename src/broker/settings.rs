//! How one broker's sampler runs: its timing and every Redis round trip's bound.

use std::time::Duration;

use crate::signals::heartbeat::HeartbeatLimits;

/// Timing of sampling and of every Redis round trip.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerSettings {
    /// Time between two samples of one broker.
    pub interval: Duration,
    /// Connect (incl. TLS and AUTH) timeout.
    pub connect_timeout: Duration,
    /// Timeout of one command or pipeline round trip.
    pub command_timeout: Duration,
    /// How long the first request for a new watch set waits for its first sample.
    pub first_sample_timeout: Duration,
    /// A sample older than this is not served (UNAVAILABLE instead).
    pub max_sample_age: Duration,
    /// Watch sets nobody asked about for this long are dropped.
    pub idle_expiry: Duration,
    /// Full re-read of `unacked` at most this often (and re-check of the keyspace setting).
    pub reconcile_period: Duration,
    /// Window over which arrival/dequeue rates and service times are smoothed.
    pub signal_window: Duration,
    /// Bounds on what worker heartbeats may claim (config `max_worker_concurrency`,
    /// `max_tracked_workers`).
    pub heartbeat_limits: HeartbeatLimits,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            first_sample_timeout: Duration::from_secs(5),
            max_sample_age: Duration::from_secs(10),
            idle_expiry: Duration::from_secs(600),
            reconcile_period: Duration::from_secs(60),
            signal_window: Duration::from_secs(30),
            heartbeat_limits: HeartbeatLimits::default(),
        }
    }
}
