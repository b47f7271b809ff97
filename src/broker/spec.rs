//! Which Redis a trigger talks to, and with which credentials: the data that identifies a
//! broker's connections. Pure data; secrets never appear in `Debug` or `Display`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::celery::Layout;

/// A secret string (password). `Debug`/`Display` print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret value; call only where it is handed to Redis.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How to reach the Redis master.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A standalone server (or a proxy in front of one).
    Direct(HostPort),
    /// Ask these sentinels for the current master of `master`.
    Sentinel {
        master: String,
        sentinels: Vec<HostPort>,
        username: Option<String>,
        password: Option<Secret>,
    },
}

/// TLS towards Redis.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TlsSpec {
    /// Skip certificate verification (`unsafeSsl`).
    pub insecure: bool,
    /// A PEM bundle of CAs to trust instead of the system roots (from the scaler's config).
    pub ca_file: Option<PathBuf>,
}

/// Everything that identifies one broker. Two triggers with equal specs share one sampler,
/// hence its one multiplexed connection and its one pub/sub connection (there is no pool).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokerSpec {
    pub endpoint: Endpoint,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: Option<TlsSpec>,
}

impl BrokerSpec {
    /// A plain-TCP spec for `host:port`, db 0, no credentials.
    pub fn direct(host: impl Into<String>, port: u16) -> Self {
        Self {
            endpoint: Endpoint::Direct(HostPort {
                host: host.into(),
                port,
            }),
            db: 0,
            username: None,
            password: None,
            tls: None,
        }
    }

    /// The bounded, credential-free label used in metrics, logs and errors:
    /// `host:port/db`, or `sentinel:master/db`.
    pub fn label(&self) -> String {
        match &self.endpoint {
            Endpoint::Direct(hp) => format!("{hp}/{}", self.db),
            Endpoint::Sentinel { master, .. } => format!("sentinel:{master}/{}", self.db),
        }
    }
}

impl fmt::Display for BrokerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Brokers defined in the scaler's own config, by name (trigger metadata `connection`).
pub type NamedConnections = BTreeMap<String, BrokerSpec>;

/// What one trigger asks the sampler to watch on its broker.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchSet {
    pub layout: Layout,
    /// Celery queue names, in the order the trigger gave them; never empty.
    pub queues: Vec<String>,
    /// kombu's `visibility_timeout`, in milliseconds (an integer so the set can be hashed).
    pub visibility_timeout_ms: u64,
    /// `workerHostnames`: glob (`*`, `?`) or prefix of the Celery hostnames of the workers
    /// that consume these queues; their heartbeats give running tasks and start rate. With one
    /// queue, the sampler also credits their starts and Little's-law service time to that
    /// queue. `None`: heartbeats are not used for this set.
    pub worker_hostnames: Option<String>,
}

impl WatchSet {
    pub fn visibility_timeout_secs(&self) -> f64 {
        self.visibility_timeout_ms as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_label_never_show_secrets() {
        let spec = BrokerSpec {
            endpoint: Endpoint::Sentinel {
                master: "mymaster".into(),
                sentinels: vec![HostPort {
                    host: "s1".into(),
                    port: 26379,
                }],
                username: None,
                password: Some(Secret::new("sentinel-pw-123")),
            },
            db: 2,
            username: Some("scaler".into()),
            password: Some(Secret::new("hunter2-secret")),
            tls: None,
        };
        let debug = format!("{spec:?}");
        assert!(!debug.contains("hunter2-secret") && !debug.contains("sentinel-pw-123"));
        assert_eq!(spec.label(), "sentinel:mymaster/2");
        assert_eq!(BrokerSpec::direct("::1", 6379).label(), "[::1]:6379/0");
    }
}
