//! One definition per scaler setting, in the style of ripgrep's `flags/defs.rs`: each setting
//! is declared once here (key, scope, flag, kind with its default and bounds, one doc line).
//! The table drives the known keys, the parsing and bound checks of `validate`, the defaults of
//! [`Config::default`](super::Config), the environment names and the README's settings table
//! (a test compares README with [`markdown_table`]). Adding a setting is one entry in the
//! `settings!` block below, plus the code that uses the value.

use crate::broker::{
    DEFAULT_MAX_BROKERS, DEFAULT_MAX_BROKERS_PER_ENDPOINT, DEFAULT_MAX_WATCHED_LISTS_PER_BROKER,
};
use crate::signals::heartbeat::{DEFAULT_MAX_TRACKED_WORKERS, DEFAULT_MAX_WORKER_CONCURRENCY};
use crate::telemetry::DEFAULT_MAX_SERIES;
use crate::trigger::limits::MAX_DATABASE_INDEX;

/// Prefix of the environment variables read.
pub const ENV_PREFIX: &str = "CELERY_SCALER";

/// Where a key lives: at the top of the file, or inside `connections.<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Top,
    Connection,
}

/// What a value is, with its default and bounds where it has them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A number of seconds within `min..=max`.
    Seconds { default: f64, min: f64, max: f64 },
    /// A whole number (ASCII digits) within `min..=max`.
    Count { default: u64, min: u64, max: u64 },
    /// `IP:port` to listen on.
    Address { default: &'static str },
    /// One of a few words (any ASCII case); the first of `choices` is the default.
    Choice { choices: &'static [&'static str] },
    /// `true`/`false`.
    Bool { default: bool },
    /// Free text, a name or a path; `default` is how the README names its absence.
    Text { default: &'static str },
    /// A list (YAML/TOML list, or comma-separated in the environment).
    List { default: &'static str },
    /// Accepted with a warning and ignored.
    Deprecated,
}

/// One setting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setting {
    /// Key in the config file (inside `connections.<name>` for [`Scope::Connection`]).
    pub key: &'static str,
    pub scope: Scope,
    /// Whether `serve` also takes it as `--<key with dashes>`.
    pub flag: bool,
    pub kind: Kind,
    /// One line for the README (Markdown).
    pub doc: &'static str,
}

impl Setting {
    /// The environment variable that sets it (`<NAME>` stands for the connection's name).
    pub fn env_name(&self) -> String {
        let key = self.key.to_ascii_uppercase();
        match self.scope {
            Scope::Top => format!("{ENV_PREFIX}_{key}"),
            Scope::Connection => format!("{ENV_PREFIX}_CONNECTIONS__<NAME>__{key}"),
        }
    }

    /// The command-line flag, if it has one.
    pub fn flag_name(&self) -> Option<String> {
        self.flag
            .then(|| format!("--{}", self.key.replace('_', "-")))
    }

    /// The default of an [`Kind::Address`] or [`Kind::Choice`] setting ("" for others).
    pub const fn default_text(&self) -> &'static str {
        match self.kind {
            Kind::Address { default } => default,
            Kind::Choice {
                choices: [first, ..],
            } => first,
            _ => "",
        }
    }
}

/// Declares each setting as a `pub const` and lists them all in [`ALL`], in README order.
macro_rules! settings {
    ($($(#[$meta:meta])* $name:ident = $def:expr;)*) => {
        $($(#[$meta])* pub const $name: Setting = $def;)*
        /// Every setting, in the README's order.
        pub const ALL: &[Setting] = &[$($name),*];
    };
}

const fn top(key: &'static str, kind: Kind, doc: &'static str) -> Setting {
    Setting {
        key,
        scope: Scope::Top,
        flag: false,
        kind,
        doc,
    }
}

const fn flag(key: &'static str, kind: Kind, doc: &'static str) -> Setting {
    Setting {
        flag: true,
        ..top(key, kind, doc)
    }
}

const fn conn(key: &'static str, kind: Kind, doc: &'static str) -> Setting {
    Setting {
        scope: Scope::Connection,
        ..top(key, kind, doc)
    }
}

const fn secs(default: f64, min: f64, max: f64) -> Kind {
    Kind::Seconds { default, min, max }
}

const fn count(default: u64, min: u64, max: u64) -> Kind {
    Kind::Count { default, min, max }
}

const NONE: Kind = Kind::Text { default: "none" };

settings! {
    GRPC_LISTEN = flag("grpc_listen", Kind::Address { default: "0.0.0.0:9090" },
        "gRPC listen address (KEDA's external scaler port)");
    ADMIN_LISTEN = flag("admin_listen", Kind::Address { default: "0.0.0.0:8080" },
        "admin HTTP listen address (`/metrics`, `/healthz`, `/readyz`)");
    TLS_CERT = flag("tls_cert", NONE, "gRPC TLS certificate chain (PEM file; ALPN `h2`)");
    TLS_KEY = flag("tls_key", NONE, "private key of `tls_cert` (PEM file)");
    TLS_CLIENT_CA = flag("tls_client_ca", NONE,
        "CA of client certificates (PEM file): with it, mTLS is required");
    LOG_FORMAT = flag("log_format", Kind::Choice { choices: &["text", "json"] },
        "log output format (level from `RUST_LOG`, default `info`)");
    SAMPLE_INTERVAL = top("sample_interval_seconds", secs(1.0, 0.1, 10.0),
        "time between two samples of a broker");
    REDIS_CONNECT_TIMEOUT = top("redis_connect_timeout_seconds", secs(2.0, 0.1, 60.0),
        "bound on every Redis connect (TLS and AUTH included)");
    REDIS_COMMAND_TIMEOUT = top("redis_command_timeout_seconds", secs(2.0, 0.1, 60.0),
        "bound on every Redis command or pipeline round trip");
    STREAM_RESEND = top("stream_resend_seconds", Kind::Deprecated,
        "deprecated and ignored (a warning is logged): `StreamIsActive` pushes only on \
         transitions to active");
    SIGNAL_WINDOW = top("signal_window_seconds", secs(30.0, 1.0, 3600.0),
        "window over which rates and service times are smoothed");
    IDLE_EXPIRY = top("idle_expiry_seconds", secs(600.0, 10.0, 86_400.0),
        "a queue set nobody asked about for this long is no longer sampled");
    RECONCILE_PERIOD = top("reconcile_period_seconds", secs(60.0, 1.0, 86_400.0),
        "full re-read of `unacked` and re-check of keyspace notifications at most this often");
    MAX_SERIES = top("max_series", count(DEFAULT_MAX_SERIES as u64, 100, 10_000_000),
        "cap on per-ScaledObject and per-queue metric series; see [Metrics](#metrics)");
    SHUTDOWN_GRACE = top("shutdown_grace_seconds", secs(20.0, 0.0, 3600.0),
        "drain time after SIGTERM");
    GRPC_HANDSHAKE_TIMEOUT = top("grpc_handshake_timeout_seconds", secs(10.0, 0.1, 300.0),
        "a gRPC connection that has not finished TLS and sent the HTTP/2 preface by then is \
         closed");
    ADMIN_HEADER_TIMEOUT = top("admin_header_timeout_seconds", secs(10.0, 0.1, 300.0),
        "an admin connection that has not sent a request's headers by then is closed, also \
         between keep-alive requests");
    GRPC_MAX_CONNECTIONS = top("grpc_max_connections", count(1024, 1, 1_000_000),
        "connections open at once on the gRPC port; one more is closed as soon as it is \
         accepted (lowered at start to fit `ulimit -n`)");
    GRPC_MAX_STREAMS = top("grpc_max_streams", count(1024, 1, 1_000_000),
        "`StreamIsActive` streams open at once over all connections; one more is refused \
         (`RESOURCE_EXHAUSTED`)");
    ADMIN_MAX_CONNECTIONS = top("admin_max_connections", count(128, 1, 1_000_000),
        "connections open at once on the admin port; one more is closed as soon as it is \
         accepted (lowered at start to fit `ulimit -n`)");
    GRPC_KEEPALIVE_INTERVAL = top("grpc_keepalive_interval_seconds", secs(30.0, 1.0, 3600.0),
        "HTTP/2 PING interval on the gRPC port");
    GRPC_KEEPALIVE_TIMEOUT = top("grpc_keepalive_timeout_seconds", secs(10.0, 1.0, 300.0),
        "how long a PING may go unanswered before the connection is closed");
    TCP_KEEPALIVE = top("tcp_keepalive_seconds", secs(60.0, 1.0, 7200.0),
        "idle time before TCP keepalive probes start on both ports (then every 10 s, \
         3 probes)");
    BROKER_POLICY = top("broker_policy",
        Kind::Choice { choices: &["any", "allow-list", "named-only"] },
        "`any` (warns at start-up), `allow-list` (inline brokers must match `allowed_brokers`) \
         or `named-only` (only `connection`; recommended): see \
         [docs/security.md](docs/security.md)");
    ALLOWED_BROKERS = top("allowed_brokers", Kind::List { default: "none" },
        "`allow-list` rules `host-glob:port/db` (port `*`; db `*`, `N` or `N-M`), e.g. \
         `redis-*.svc:6379/0-3`");
    MAX_BROKERS = top("max_brokers", count(DEFAULT_MAX_BROKERS as u64, 1, 10_000),
        "bound on distinct brokers sampled (each up to 2 Redis connections, 3 with \
         Sentinel); named connections not counted");
    MAX_BROKERS_PER_ENDPOINT = top("max_brokers_per_endpoint",
        count(DEFAULT_MAX_BROKERS_PER_ENDPOINT as u64, 1, 10_000),
        "the same bound per `host:port`");
    MAX_WATCHED_LISTS_PER_BROKER = top("max_watched_lists_per_broker",
        count(DEFAULT_MAX_WATCHED_LISTS_PER_BROKER as u64, 1, 1_000_000),
        "bound on the distinct Redis lists (queue × priority step) one broker's sampler reads \
         per tick over all its watch sets; a new watch set past it is refused \
         (`RESOURCE_EXHAUSTED`)");
    RPC_TIMEOUT = top("rpc_timeout_seconds", secs(2.0, 0.1, 60.0),
        "`IsActive` and `GetMetrics` answer within this bound, `UNAVAILABLE` if the broker \
         has not answered");
    MAX_WORKER_CONCURRENCY = top("max_worker_concurrency",
        count(DEFAULT_MAX_WORKER_CONCURRENCY, 1, 100_000),
        "a worker heartbeat's `active` above this is clamped (and counted); also caps the \
         busy slots heartbeats can imply per worker");
    MAX_TRACKED_WORKERS = top("max_tracked_workers",
        count(DEFAULT_MAX_TRACKED_WORKERS as u64, 1, 1_000_000),
        "workers tracked per key prefix from heartbeats; a further hostname evicts the least \
         recently heard worker (counted)");
    CONN_ADDRESS = conn("address", Kind::Text { default: "—" },
        "Redis `host:port` (IPv6 as `[::1]:6379`); or `sentinel_master` with `sentinels`");
    CONN_DATABASE = conn("database", count(0, 0, MAX_DATABASE_INDEX), "Redis DB");
    CONN_USERNAME = conn("username", NONE, "Redis ACL user");
    CONN_PASSWORD_ENV = conn("password_env", NONE,
        "name of the environment variable holding the Redis password");
    CONN_PASSWORD_FILE = conn("password_file", NONE,
        "file holding the Redis password (not with `password_env`)");
    CONN_TLS = conn("tls", Kind::Bool { default: false }, "TLS to Redis");
    CONN_CA_FILE = conn("ca_file", NONE, "CA of the Redis server certificate (PEM; needs `tls`)");
    CONN_INSECURE_SKIP_VERIFY = conn("insecure_skip_verify", Kind::Bool { default: false },
        "skip verification of the Redis server certificate (needs `tls`)");
    CONN_SENTINEL_MASTER = conn("sentinel_master", Kind::Text { default: "—" },
        "Sentinel master name (instead of `address`)");
    CONN_SENTINELS = conn("sentinels", Kind::List { default: "—" },
        "Sentinels `host:port` (at most 16) for `sentinel_master`");
    CONN_SENTINEL_USERNAME = conn("sentinel_username", NONE, "Sentinel ACL user");
    CONN_SENTINEL_PASSWORD_ENV = conn("sentinel_password_env", NONE,
        "name of the environment variable holding the Sentinel password");
    CONN_SENTINEL_PASSWORD_FILE = conn("sentinel_password_file", NONE,
        "file holding the Sentinel password");
    CONN_ALLOWED_DATABASES = conn("allowed_databases", Kind::List { default: "`[database]`" },
        "DBs a trigger may pick with `databaseIndex` on this connection");
    CONN_ALLOWED_NAMESPACES = conn("allowed_namespaces", Kind::List { default: "every namespace" },
        "ScaledObject namespaces (names or `*`/`?` globs) that may use this connection");
}

/// Whether `key` is a known setting of `scope`.
pub fn is_known(scope: Scope, key: &str) -> bool {
    ALL.iter().any(|s| s.scope == scope && s.key == key)
}

/// The settings table of README.md (section "Running the scaler"), one row per setting.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| config key | environment | flag | default | range | meaning |\n\
         |---|---|---|---|---|---|\n",
    );
    for s in ALL {
        let key = match s.scope {
            Scope::Top => format!("`{}`", s.key),
            Scope::Connection => format!("`connections.<name>.{}`", s.key),
        };
        let flag = s.flag_name().map(|f| format!("`{f}`")).unwrap_or_default();
        let (default, range) = match s.kind {
            Kind::Seconds { default, min, max } => (default.to_string(), format!("{min}–{max} s")),
            Kind::Count { default, min, max } => (default.to_string(), format!("{min}–{max}")),
            Kind::Address { default } => (format!("`{default}`"), "`IP:port`".to_string()),
            Kind::Choice { choices } => (
                format!("`{}`", choices[0]),
                choices
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Kind::Bool { default } => (format!("`{default}`"), "`true`, `false`".to_string()),
            Kind::Text { default } => (default.to_string(), String::new()),
            Kind::List { default } => (default.to_string(), "list".to_string()),
            Kind::Deprecated => ("—".to_string(), String::new()),
        };
        let env = format!("`{}`", s.env_name());
        out.push_str(&format!(
            "| {key} | {env} | {flag} | {default} | {range} | {} |\n",
            s.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests;
