//! The metadata keys the parser and its parts share: the defaults of absent keys, KEDA's own
//! keys, secret keys, keys that may come `<key>FromEnv`, and the inline broker keys.

/// Default queue when neither `queues` nor `listName` is given.
pub const DEFAULT_QUEUE: &str = "celery";
/// Default Redis port when `host` is given without `port`.
pub const DEFAULT_REDIS_PORT: u16 = 6379;
/// kombu's default `visibility_timeout`, in seconds.
pub const DEFAULT_VISIBILITY_TIMEOUT_SECS: f64 = 3600.0;
/// The smallest target KEDA can carry (it formats targets with `%.3f`).
pub const MIN_TARGET: f64 = 0.001;

/// Keys KEDA reads or passes through for its own use; accepted and ignored here.
pub(super) const KEDA_KEYS: &[&str] = &[
    "scalerAddress",
    "caCert",
    "tlsClientCert",
    "tlsClientKey",
    "tlsCertFile",
    "metricType",
];

/// Keys whose values are secrets: never echoed in errors.
pub(super) const SECRET_KEYS: &[&str] = &[
    "password",
    "passwordFromEnv",
    "sentinelPassword",
    "sentinelPasswordFromEnv",
];

/// Keys that may arrive as `<key>FromEnv` (KEDA resolves them against the workload's env).
pub(super) const FROM_ENV_KEYS: &[&str] = &[
    "address",
    "host",
    "port",
    "username",
    "password",
    "sentinelUsername",
    "sentinelPassword",
];

/// Broker keys that must not be combined with `connection`.
pub(super) const INLINE_BROKER_KEYS: &[&str] = &[
    "address",
    "addresses",
    "host",
    "port",
    "username",
    "password",
    "enableTLS",
    "brokerTLS",
    "unsafeSsl",
    "sentinelMaster",
    "sentinelUsername",
    "sentinelPassword",
];
