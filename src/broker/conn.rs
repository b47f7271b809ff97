//! The connection of one broker's sampler: connect (TCP, TLS, AUTH, SELECT) under the connect
//! timeout, Sentinel discovery of the current master, one pipelined round trip under the
//! command timeout, and the mapping of Redis errors to [`BrokerError`].
//!
//! Why one multiplexed connection and not a deadpool pool: the sampler is the only user of a
//! broker's connection and sends one pipeline at a time, so a pool would only ever hand out
//! one object. Owning the connection directly keeps reconnects explicit (the sampler decides
//! when to reconnect and, with Sentinel, when to re-resolve the master), and every error
//! surfaces to the sampler instead of being retried behind its back. The connection is built
//! from a `redis::Client` made with `Client::build_with_tls` when a CA file is given, which
//! keeps the CA (deadpool's `Config::from_connection_info` would drop it).
//!
//! With Sentinel, the sentinels are asked in order (`SENTINEL get-master-addr-by-name`, with
//! the sentinel credentials and the broker's TLS settings) on connect, after any connection
//! error, and every [`SENTINEL_RECHECK_EVERY`] round trips; when the named master changes the
//! connection moves to it.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, TlsCertificates, Value,
};
use tracing::{debug, info, warn};

use super::error::{map_error, millis, BrokerError};
use crate::spec::{BrokerSpec, Endpoint, HostPort, Secret, TlsSpec};
use crate::telemetry::BrokerMetrics;

/// Timeouts of every network step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
}

/// Re-ask the sentinels for the master every this many round trips (besides on errors).
const SENTINEL_RECHECK_EVERY: u32 = 2;

/// One broker's live connection, (re)built on demand.
pub(crate) struct Link {
    spec: BrokerSpec,
    label: String,
    metrics: BrokerMetrics,
    timeouts: Timeouts,
    conn: Option<(MultiplexedConnection, HostPort)>,
    sentinel_conn: Option<MultiplexedConnection>,
    round_trips_since_resolve: u32,
}

impl Link {
    pub(crate) fn new(spec: BrokerSpec, metrics: BrokerMetrics, timeouts: Timeouts) -> Self {
        Self {
            spec,
            label: metrics.label().to_string(),
            metrics,
            timeouts,
            conn: None,
            sentinel_conn: None,
            round_trips_since_resolve: 0,
        }
    }

    /// Whether a connection is currently open (a failure on it may be a dropped connection
    /// worth one immediate retry).
    pub(crate) fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    pub(crate) fn spec(&self) -> &BrokerSpec {
        &self.spec
    }

    /// The broker's series.
    pub(crate) fn metrics(&self) -> &BrokerMetrics {
        &self.metrics
    }

    /// The address of the open connection (the current master with Sentinel).
    pub(crate) fn addr(&self) -> Option<&HostPort> {
        self.conn.as_ref().map(|(_, addr)| addr)
    }

    /// Drops the connection; the next round trip reconnects (and re-resolves the master).
    pub(crate) fn reset(&mut self) {
        self.conn = None;
        self.sentinel_conn = None;
    }

    /// Sends `pipe` in one round trip and returns one value per command (server errors of
    /// single commands come back as `Value::ServerError`). On a connection-level error the
    /// connection is dropped.
    pub(crate) async fn round_trip(&mut self, pipe: &Pipeline) -> Result<Vec<Value>, BrokerError> {
        if pipe.is_empty() {
            return Ok(Vec::new());
        }
        self.check_master().await?;
        let mut conn = match &self.conn {
            Some((conn, _)) => conn.clone(),
            None => {
                let (conn, addr) = self.connect().await?;
                self.conn = Some((conn.clone(), addr));
                conn
            }
        };
        self.metrics.commands(pipe.len() as u64);
        let result = tokio::time::timeout(
            self.timeouts.command,
            pipe.clone()
                .ignore_errors()
                .query_async::<Vec<Value>>(&mut conn),
        )
        .await;
        match result {
            Ok(Ok(values)) => Ok(values),
            Ok(Err(e)) => {
                self.reset();
                Err(map_error(
                    &self.label,
                    &e,
                    self.spec.password.as_ref(),
                    self.timeouts.command,
                ))
            }
            Err(_) => {
                self.reset();
                Err(BrokerError::Timeout {
                    broker: self.label.clone(),
                    timeout_ms: millis(self.timeouts.command),
                })
            }
        }
    }

    /// With Sentinel, re-asks for the master every few round trips and moves to it when it
    /// changed (after a failover).
    async fn check_master(&mut self) -> Result<(), BrokerError> {
        if !matches!(self.spec.endpoint, Endpoint::Sentinel { .. }) || self.conn.is_none() {
            return Ok(());
        }
        self.round_trips_since_resolve += 1;
        if self.round_trips_since_resolve < SENTINEL_RECHECK_EVERY {
            return Ok(());
        }
        self.round_trips_since_resolve = 0;
        let master = match self.resolve_master().await {
            Ok(m) => m,
            Err(e) => {
                // The current master still answers; keep it until it fails.
                warn!(broker = %self.label, kind = e.kind(), "sentinel re-check failed; keeping the current master");
                return Ok(());
            }
        };
        if let Some((_, current)) = &self.conn {
            if *current != master {
                info!(broker = %self.label, from = %current, to = %master, "sentinel reports a new master; reconnecting");
                self.conn = None;
            }
        }
        Ok(())
    }

    async fn connect(&mut self) -> Result<(MultiplexedConnection, HostPort), BrokerError> {
        let addr = match &self.spec.endpoint {
            Endpoint::Direct(hp) => hp.clone(),
            Endpoint::Sentinel { .. } => {
                self.round_trips_since_resolve = 0;
                self.resolve_master().await?
            }
        };
        let redis = redis_settings(
            self.spec.db,
            self.spec.username.as_deref(),
            self.spec.password.as_ref(),
        );
        let handshake = 1 + u64::from(self.spec.db != 0);
        let conn = open(
            &self.label,
            &addr,
            redis,
            self.spec.tls.as_ref(),
            self.timeouts,
            self.spec.password.as_ref(),
        )
        .await?;
        self.metrics.commands(handshake);
        debug!(broker = %self.label, addr = %addr, "connected");
        Ok((conn, addr))
    }

    /// Asks the sentinels, in order, for the current master address.
    async fn resolve_master(&mut self) -> Result<HostPort, BrokerError> {
        let Endpoint::Sentinel {
            master,
            sentinels,
            username,
            password,
        } = &self.spec.endpoint
        else {
            return Err(BrokerError::Sentinel {
                broker: self.label.clone(),
                detail: "not a sentinel endpoint".into(),
            });
        };
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("get-master-addr-by-name").arg(master);
        if let Some(conn) = self.sentinel_conn.as_mut() {
            self.metrics.commands(1);
            let asked = tokio::time::timeout(
                self.timeouts.command,
                cmd.query_async::<Option<(String, u16)>>(conn),
            )
            .await;
            if let Ok(Ok(Some((host, port)))) = asked {
                return Ok(HostPort { host, port });
            }
            self.sentinel_conn = None;
        }
        let mut problems = Vec::new();
        let mut auth_failed = None;
        for sentinel in sentinels {
            let redis = redis_settings(0, username.as_deref(), password.as_ref());
            let conn = open(
                &self.label,
                sentinel,
                redis,
                self.spec.tls.as_ref(),
                self.timeouts,
                password.as_ref(),
            )
            .await;
            let mut conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    if matches!(e, BrokerError::Auth { .. }) {
                        auth_failed = Some(e.clone());
                    }
                    problems.push(format!("{sentinel}: {}", e.kind()));
                    continue;
                }
            };
            self.metrics.commands(1);
            let asked = tokio::time::timeout(
                self.timeouts.command,
                cmd.query_async::<Option<(String, u16)>>(&mut conn),
            )
            .await;
            match asked {
                Ok(Ok(Some((host, port)))) => {
                    self.sentinel_conn = Some(conn);
                    return Ok(HostPort { host, port });
                }
                Ok(Ok(None)) => problems.push(format!("{sentinel}: does not know master {master}")),
                Ok(Err(e)) => {
                    let mapped =
                        map_error(&self.label, &e, password.as_ref(), self.timeouts.command);
                    if matches!(mapped, BrokerError::Auth { .. }) {
                        auth_failed = Some(mapped.clone());
                    }
                    problems.push(format!("{sentinel}: {}", mapped.kind()));
                }
                Err(_) => problems.push(format!("{sentinel}: timeout")),
            }
        }
        if let Some(auth) = auth_failed {
            return Err(auth);
        }
        warn!(broker = %self.label, problems = %problems.join("; "), "no sentinel answered");
        Err(BrokerError::Sentinel {
            broker: self.label.clone(),
            detail: format!("no sentinel named a master ({})", problems.join("; ")),
        })
    }
}

pub(crate) fn redis_settings(
    db: i64,
    username: Option<&str>,
    password: Option<&Secret>,
) -> RedisConnectionInfo {
    let mut redis = RedisConnectionInfo::default()
        .set_db(db)
        .set_skip_set_lib_name();
    if let Some(user) = username {
        redis = redis.set_username(user);
    }
    if let Some(pw) = password {
        redis = redis.set_password(pw.expose());
    }
    redis
}

/// Opens one connection (TCP, TLS, AUTH, SELECT) within the connect timeout.
async fn open(
    label: &str,
    addr: &HostPort,
    redis: RedisConnectionInfo,
    tls: Option<&TlsSpec>,
    timeouts: Timeouts,
    password: Option<&Secret>,
) -> Result<MultiplexedConnection, BrokerError> {
    let client = build_client(label, addr, redis, tls).await?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeouts.connect))
        .set_response_timeout(Some(timeouts.command));
    match tokio::time::timeout(
        timeouts.connect,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(map_error(label, &e, password, timeouts.connect)),
        Err(_) => Err(BrokerError::Timeout {
            broker: label.to_string(),
            timeout_ms: millis(timeouts.connect),
        }),
    }
}

pub(crate) async fn build_client(
    label: &str,
    addr: &HostPort,
    redis: RedisConnectionInfo,
    tls: Option<&TlsSpec>,
) -> Result<Client, BrokerError> {
    let connect_err = |detail: String| BrokerError::Connect {
        broker: label.to_string(),
        detail,
    };
    let conn_addr = match tls {
        None => ConnectionAddr::Tcp(addr.host.clone(), addr.port),
        Some(t) => ConnectionAddr::TcpTls {
            host: addr.host.clone(),
            port: addr.port,
            insecure: t.insecure,
            tls_params: None,
        },
    };
    let info: ConnectionInfo = conn_addr
        .into_connection_info()
        .map_err(|e| connect_err(e.to_string()))?
        .set_redis_settings(redis);
    match tls.and_then(|t| t.ca_file.as_ref()) {
        Some(path) => {
            let pem = tokio::fs::read(path)
                .await
                .map_err(|e| connect_err(format!("cannot read CA file {}: {e}", path.display())))?;
            Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(|e| connect_err(format!("bad CA file {}: {e}", path.display())))
        }
        None => Client::open(info).map_err(|e| connect_err(e.to_string())),
    }
}
