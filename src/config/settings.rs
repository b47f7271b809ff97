//! The validated configuration ([`Config`]) and its parts: log format, gRPC server TLS
//! material, port settings. `validate.rs` builds it; `Config::default()` is what an empty
//! configuration validates to.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::broker::{AccessPolicy, SamplerSettings};
use crate::signals::heartbeat::HeartbeatLimits;
use crate::spec::NamedConnections;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// gRPC server TLS material, read and checked at load time.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub(super) key_pem: Vec<u8>,
    /// When set, clients must present a certificate signed by one of these CAs (mTLS).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl ServerTls {
    /// The private key; hand it only to the TLS acceptor.
    pub fn key_pem(&self) -> &[u8] {
        &self.key_pem
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"***")
            .field("mtls", &self.client_ca_pem.is_some())
            .finish()
    }
}

/// Timeouts, connection limits and keepalive of the two ports.
#[derive(Clone, Debug, PartialEq)]
pub struct PortSettings {
    /// A gRPC connection that has not finished TLS and sent the HTTP/2 preface by then is
    /// closed.
    pub grpc_handshake_timeout: Duration,
    /// An admin connection that has not sent a request's headers by then is closed (also
    /// between keep-alive requests).
    pub admin_header_timeout: Duration,
    /// Connections over these are closed as soon as they are accepted.
    pub grpc_max_connections: u32,
    pub admin_max_connections: u32,
    /// `StreamIsActive` streams open at once over all connections; one more is refused
    /// (`RESOURCE_EXHAUSTED`).
    pub grpc_max_streams: u32,
    /// HTTP/2 PING interval and ack timeout on the gRPC port: dead peers are dropped.
    pub grpc_keepalive_interval: Duration,
    pub grpc_keepalive_timeout: Duration,
    /// Idle time before TCP keepalive probes start (then every 10 s, 3 probes).
    pub tcp_keepalive: Duration,
}

impl Default for PortSettings {
    fn default() -> Self {
        Config::default().ports
    }
}

/// The validated configuration of the service.
#[derive(Clone, Debug)]
pub struct Config {
    pub grpc_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub log_format: LogFormat,
    pub tls: Option<ServerTls>,
    pub sample_interval: Duration,
    pub redis_connect_timeout: Duration,
    pub redis_command_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Window over which rates and service times are smoothed.
    pub signal_window: Duration,
    /// Watch sets nobody asked about for this long are dropped.
    pub idle_expiry: Duration,
    /// Full re-read of `unacked` (and re-check of keyspace notifications) at most this often.
    pub reconcile_period: Duration,
    /// Cap on per-ScaledObject and per-queue metric series.
    pub max_series: usize,
    /// Brokers by name, for trigger metadata `connection`.
    pub connections: NamedConnections,
    /// Accepted but deprecated settings, one message each; `serve` logs them as warnings.
    pub warnings: Vec<String>,
    /// Timeouts, connection limits and keepalive of the gRPC and admin ports.
    pub ports: PortSettings,
    /// Which brokers triggers may use (`broker_policy`, `allowed_brokers`, per-connection
    /// `allowed_databases` / `allowed_namespaces`).
    pub access: AccessPolicy,
    /// Bound on brokers sampled in total (named connections not counted).
    pub max_brokers: usize,
    /// Bound on brokers sampled per endpoint (named connections not counted).
    pub max_brokers_per_endpoint: usize,
    /// Bound on Redis lists one sampler reads per tick (distinct queue × priority-step lists
    /// of all its watch sets).
    pub max_watched_lists_per_broker: usize,
    /// Every RPC answers within this bound, UNAVAILABLE if the broker has not answered.
    pub rpc_timeout: Duration,
    /// Bounds on worker heartbeats (`max_worker_concurrency`, `max_tracked_workers`).
    pub heartbeat_limits: HeartbeatLimits,
}

impl Config {
    /// Sampler timing derived from the config: the first sample of a new watch set may take a
    /// connect, a round trip and one interval; a sample is served while younger than a few
    /// ticks (at least 10 s).
    pub fn sampler_settings(&self) -> SamplerSettings {
        let first = self.redis_connect_timeout + self.redis_command_timeout + self.sample_interval;
        let max_age = (self.sample_interval * 3 + first).max(Duration::from_secs(10));
        SamplerSettings {
            interval: self.sample_interval,
            connect_timeout: self.redis_connect_timeout,
            command_timeout: self.redis_command_timeout,
            first_sample_timeout: first,
            max_sample_age: max_age,
            signal_window: self.signal_window,
            idle_expiry: self.idle_expiry,
            reconcile_period: self.reconcile_period,
            heartbeat_limits: self.heartbeat_limits,
        }
    }
}
