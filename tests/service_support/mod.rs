//! Test harness for the service shell: the real server in-process on `127.0.0.1:0`, a
//! generated tonic client, a tiny HTTP/1.1 GET for the admin port, and Celery-shaped data.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use celery_scaler::config::Config;
use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use celery_scaler::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use celery_scaler::server::{self, ServeError};
use celery_scaler::telemetry::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Fast timings for tests.
pub fn test_config() -> Config {
    Config {
        sample_interval: Duration::from_millis(200),
        redis_connect_timeout: Duration::from_millis(500),
        redis_command_timeout: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(5),
        ..Config::default()
    }
}

/// The real server, running in this process.
pub struct TestServer {
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), ServeError>>,
    /// The server's metrics (what its `/metrics` shows).
    pub metrics: Arc<Metrics>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = grpc_listener.local_addr().unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let metrics = Metrics::new();
        let handle = tokio::spawn(server::run_with_metrics(
            config,
            metrics.clone(),
            grpc_listener,
            admin_listener,
            shutdown.clone(),
        ));
        let server = TestServer {
            grpc,
            admin,
            shutdown,
            handle,
            metrics,
        };
        server.wait_ready().await;
        server
    }

    /// Waits (bounded) until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok((200, _)) = http_get(self.admin, "/readyz").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become ready");
    }

    pub async fn client(&self) -> ExternalScalerClient<Channel> {
        ExternalScalerClient::connect(format!("http://{}", self.grpc))
            .await
            .unwrap()
    }

    /// Cancels and waits for `run` to return (bounded by `limit`).
    pub async fn stop(self, limit: Duration) -> Result<(), ServeError> {
        self.shutdown.cancel();
        tokio::time::timeout(limit, self.handle)
            .await
            .expect("server stops within the limit")
            .expect("server task joins")
    }
}

/// `GET path` over HTTP/1.1; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

pub fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn so(pairs: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: "worker".into(),
        namespace: "celery".into(),
        scaler_metadata: metadata(pairs),
    }
}

pub fn metrics_req(pairs: &[(&str, &str)], metric: &str) -> GetMetricsRequest {
    GetMetricsRequest {
        scaled_object_ref: Some(so(pairs)),
        metric_name: metric.into(),
    }
}

/// An address where nothing listens.
pub fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

/// Epoch seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One kombu `unacked` value: `[message, exchange, routing_key]` (docs/celery-redis.md §4).
pub fn unacked_value(tag: &str, exchange: &str, routing_key: &str, eta: Option<&str>) -> String {
    let eta = eta
        .map(|e| format!("\"{e}\""))
        .unwrap_or_else(|| "null".into());
    format!(
        r#"[{{"body": "W1tdLCB7fSwge31d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {{"lang": "py", "task": "app.t", "id": "{tag}-id", "eta": {eta}, "expires": null, "retries": 0}}, "properties": {{"correlation_id": "{tag}-id", "delivery_mode": 2, "delivery_info": {{"exchange": "{exchange}", "routing_key": "{routing_key}"}}, "priority": 0, "body_encoding": "base64", "delivery_tag": "{tag}"}}}}, "{exchange}", "{routing_key}"]"#
    )
}

/// Writes the Celery-shaped fixture used by the Redis-backed tests, on `db`:
///
/// | queue | backlog | reserved | scheduled | stale |
/// |---|---|---|---|---|
/// | `celery` | 3 (`celery`) + 2 (`celery\x06\x163`) + 1 (`celery\x06\x169`) = 6 | 1 | 1 | 1 |
/// | `qa` | 2 | 1 (through exchange `myex`, binding `rk.a`) | 0 | 0 |
///
/// plus one malformed `unacked` entry (skipped). Metric = 6+1+1 + 2+1 = 11.
pub fn write_celery_fixture(conn: &mut redis::Connection) {
    let now = now();
    let mut cmd = |args: &[&[u8]]| {
        let mut c = redis::cmd(std::str::from_utf8(args[0]).unwrap());
        for a in &args[1..] {
            c.arg(*a);
        }
        let _: redis::Value = c.query(conn).unwrap();
    };
    for i in 0..3 {
        cmd(&[b"LPUSH", b"celery", format!("m{i}").as_bytes()]);
    }
    for i in 0..2 {
        cmd(&[b"LPUSH", b"celery\x06\x163", format!("p3-{i}").as_bytes()]);
    }
    cmd(&[b"LPUSH", b"celery\x06\x169", b"p9"]);
    cmd(&[b"LPUSH", b"qa", b"a1"]);
    cmd(&[b"LPUSH", b"qa", b"a2"]);
    cmd(&[b"SADD", b"_kombu.binding.myex", b"rk.a\x06\x16\x06\x16qa"]);
    let future_eta = "2999-01-01T00:00:00+00:00";
    let entries: Vec<(&str, String, f64)> = vec![
        (
            "t-res",
            unacked_value("t-res", "", "celery", None),
            now - 1.0,
        ),
        (
            "t-sched",
            unacked_value("t-sched", "", "celery", Some(future_eta)),
            now - 1.0,
        ),
        (
            "t-stale",
            unacked_value("t-stale", "", "celery", None),
            now - 7200.0,
        ),
        (
            "t-qa",
            unacked_value("t-qa", "myex", "rk.a", None),
            now - 1.0,
        ),
        ("t-bad", "not json at all".to_string(), now - 1.0),
    ];
    for (tag, value, score) in entries {
        cmd(&[b"HSET", b"unacked", tag.as_bytes(), value.as_bytes()]);
        cmd(&[
            b"ZADD",
            b"unacked_index",
            score.to_string().as_bytes(),
            tag.as_bytes(),
        ]);
    }
}
