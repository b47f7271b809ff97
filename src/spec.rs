//! Which Redis a trigger talks to, and with which credentials: the data that identifies a
//! broker's connections. Pure data; secrets never appear in `Debug` or `Display`.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::LazyLock;

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

/// Longest host name accepted (DNS allows 253 characters).
pub const MAX_HOST_LEN: usize = 253;

impl HostPort {
    /// Parses `host:port` or `[v6]:port` strictly and normalises it, so that two spellings of
    /// one endpoint compare equal: the host is lowercased and loses a trailing dot, IP
    /// addresses take their canonical form. Refused: a sign or anything but ASCII digits in
    /// the port, port 0, an empty host, a host with spaces, control or non-ASCII characters,
    /// and trailing text. The error says why, without echoing the input.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, port) = rest.split_once("]:").ok_or("want [IPv6]:port")?;
                let ip: Ipv6Addr = host.parse().map_err(|_| "not an IPv6 address in [ ]")?;
                (ip.to_string(), port)
            }
            None => {
                let (host, port) = text.rsplit_once(':').ok_or("no :port")?;
                if host.contains(':') {
                    return Err("an IPv6 address must be written [address]:port");
                }
                (host.to_string(), port)
            }
        };
        Self::from_parts(&host, port)
    }

    /// A host and a port given apart (trigger `host` and `port`), checked and normalised like
    /// [`HostPort::parse`].
    pub fn from_parts(host: &str, port: &str) -> Result<Self, &'static str> {
        let port = Self::parse_port(port)?;
        let host = normalise_host(host)?;
        Ok(Self { host, port })
    }

    /// A port: 1 to 5 ASCII digits, 1-65535 (no sign, no spaces).
    pub fn parse_port(text: &str) -> Result<u16, &'static str> {
        const WHY: &str = "the port must be a number 1-65535";
        if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WHY);
        }
        text.parse::<u16>().ok().filter(|p| *p > 0).ok_or(WHY)
    }
}

/// Lowercase ASCII name (letters, digits, `-`, `_`, `.`) or an IP address; IPv6 without
/// brackets. Trailing dot removed, IPs canonical.
fn normalise_host(host: &str) -> Result<String, &'static str> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err("the host is empty");
    }
    if host.len() > MAX_HOST_LEN {
        return Err("the host is longer than 253 characters");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !host.bytes().all(allowed) {
        return Err("the host may hold only ASCII letters, digits, '-', '_' and '.'");
    }
    if host
        .split('.')
        .any(|label| label.is_empty() || label.len() > 63)
    {
        return Err("the host has an empty label or one longer than 63 characters");
    }
    Ok(host.to_ascii_lowercase())
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

    /// The bounded, credential-free label used in metrics, logs and errors, one per sampler:
    /// `host:port/db` for a direct spec without username, password or TLS; otherwise
    /// `host:port/db#h` or `sentinel:master/db#h`, where `h` is 8 hex digits of a hash, keyed
    /// per process, of what else tells the spec apart (credentials, TLS, the sentinels and
    /// their credentials). So two credential sets on one endpoint never share a label, and the
    /// label reveals no secret.
    pub fn label(&self) -> String {
        let base = match &self.endpoint {
            Endpoint::Direct(hp) => format!("{hp}/{}", self.db),
            Endpoint::Sentinel { master, .. } => format!("sentinel:{master}/{}", self.db),
        };
        let sentinel = match &self.endpoint {
            Endpoint::Direct(_) => None,
            Endpoint::Sentinel { .. } => Some(&self.endpoint),
        };
        if sentinel.is_none()
            && self.username.is_none()
            && self.password.is_none()
            && self.tls.is_none()
        {
            return base;
        }
        let parts = (sentinel, &self.username, &self.password, &self.tls);
        format!("{base}#{:08x}", LABEL_KEY.hash_one(parts) as u32)
    }
}

impl fmt::Display for BrokerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Per-process random key of the hash in [`BrokerSpec::label`] (SipHash): the hash cannot be
/// tested against guessed passwords outside this process.
static LABEL_KEY: LazyLock<std::hash::RandomState> = LazyLock::new(std::hash::RandomState::new);

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
        let label = spec.label();
        assert!(label.starts_with("sentinel:mymaster/2#"), "{label}");
        assert_eq!(label.len(), "sentinel:mymaster/2#".len() + 8, "{label}");
        assert_eq!(BrokerSpec::direct("::1", 6379).label(), "[::1]:6379/0");
    }

    #[test]
    fn each_credential_set_gets_its_own_label() {
        let with = |user: Option<&str>, pw: &str| BrokerSpec {
            username: user.map(String::from),
            password: Some(Secret::new(pw)),
            ..BrokerSpec::direct("h", 6379)
        };
        let a = with(None, "pw-a").label();
        assert!(a.starts_with("h:6379/0#") && !a.contains("pw-a"), "{a}");
        assert_eq!(a, with(None, "pw-a").label());
        assert_ne!(a, with(None, "pw-b").label());
        assert_ne!(a, with(Some("u"), "pw-a").label());
        let tls = BrokerSpec {
            tls: Some(TlsSpec::default()),
            ..BrokerSpec::direct("h", 6379)
        };
        assert!(tls.label().starts_with("h:6379/0#"));
        assert_ne!(tls.label(), BrokerSpec::direct("h", 6379).label());
    }

    #[test]
    fn host_port_normalises_one_endpoint_to_one_value() {
        let same = [
            ("localhost:6379", "localhost:6379"),
            ("LOCALHOST:6379", "localhost:6379"),
            ("localhost.:6379", "localhost:6379"),
            ("Redis.Default.SVC.:6380", "redis.default.svc:6380"),
            ("[::1]:6379", "[::1]:6379"),
            ("[0:0:0:0:0:0:0:1]:6379", "[::1]:6379"),
            ("[2001:DB8::0:1]:1", "[2001:db8::1]:1"),
            ("10.0.0.5:6379", "10.0.0.5:6379"),
            ("redis_master:6379", "redis_master:6379"),
        ];
        for (text, want) in same {
            let hp = HostPort::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(hp.to_string(), want, "{text}");
        }
        assert_eq!(
            HostPort::parse("LOCALHOST:6379").ok(),
            HostPort::parse("localhost:6379").ok()
        );
        assert_eq!(
            HostPort::from_parts("LocalHost.", "6379").ok(),
            HostPort::parse("localhost:6379").ok()
        );
    }

    #[test]
    fn host_port_is_strict() {
        let bad = [
            "h",
            "h:0",
            ":1",
            "h:x",
            "::1:6379",
            "127.0.0.1:+6379",
            "127.0.0.1:-1",
            "127.0.0.1: 6379",
            "127.0.0.1:65536",
            "127.0.0.1:006379",
            "[::1]:6379,",
            "[::1]",
            "[nothost]:1",
            "[::1]x:6379",
            "my host:6379",
            " host:6379",
            "ho\0st:6379",
            "ho\nst:6379",
            "host:６３７９",
            "ｈｏｓｔ:6379",
            "h\u{7f}:1",
            "a..b:1",
            ".:1",
            "h:1:2",
        ];
        for text in bad {
            assert!(HostPort::parse(text).is_err(), "accepted {text:?}");
        }
        let long = format!("{}:1", "a".repeat(MAX_HOST_LEN + 1));
        assert!(HostPort::parse(&long).is_err());
        assert!(HostPort::from_parts("h", "+1").is_err());
    }
}
