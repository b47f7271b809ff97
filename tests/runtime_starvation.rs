//! A sampler stuck in CPU-heavy work must not starve the server (issue 11 item 4): with a
//! test hook that makes every tick busy-loop for seconds on two brokers (two DBs), `/healthz`,
//! gRPC health and metadata-only RPCs still answer, in-process and in the real binary, and
//! the real binary still exits on SIGTERM.
//!
//! The hook is process-wide, so this file holds only tests that want it.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use service_support::*;
use support::RedisServer;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// CPU time every tick burns: longer than any bound below.
const BURN: Duration = Duration::from_secs(8);
/// Generous bound for an answer that needs no broker (milliseconds when not starved).
const ANSWER: Duration = Duration::from_secs(4);

/// Starts one `IsActive` per DB (which registers a sampler each) without waiting for them.
fn start_samplers(grpc: SocketAddr, redis: &str) -> Vec<tokio::task::JoinHandle<()>> {
    ["0", "1"]
        .into_iter()
        .map(|db| {
            let req = so(&[("address", redis), ("databaseIndex", db)]);
            tokio::spawn(async move {
                let mut c = ExternalScalerClient::connect(format!("http://{grpc}"))
                    .await
                    .unwrap();
                // The answer depends on the burn; only the registration matters here.
                let _ = c.is_active(req).await;
            })
        })
        .collect()
}

/// `/healthz`, gRPC health and `GetMetricSpec` each answer within [`ANSWER`].
async fn assert_responsive(grpc: SocketAddr, admin: SocketAddr, redis: &str) {
    let healthz = tokio::time::timeout(ANSWER, http_get(admin, "/healthz"))
        .await
        .expect("/healthz answers while samplers burn CPU")
        .unwrap();
    assert_eq!(healthz.0, 200);
    let grpc_checks = async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let resp = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status, ServingStatus::Serving as i32);
        let spec = ExternalScalerClient::new(channel)
            .get_metric_spec(so(&[("address", redis)]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(spec.metric_specs.len(), 1);
    };
    tokio::time::timeout(ANSWER, grpc_checks)
        .await
        .expect("gRPC health and GetMetricSpec answer while samplers burn CPU");
}

/// The sum of `celery_scaler_sample_duration_seconds` for `broker`, once it has a sample.
async fn burned_seconds(admin: SocketAddr, broker: &str) -> f64 {
    let needle = format!("celery_scaler_sample_duration_seconds_sum{{broker=\"{broker}\"}} ");
    let deadline = Instant::now() + BURN * 3;
    loop {
        let (_, body) = http_get(admin, "/metrics").await.unwrap();
        let sum = body
            .lines()
            .find_map(|l| l.strip_prefix(needle.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if let Some(sum) = sum {
            return sum;
        }
        assert!(Instant::now() < deadline, "no sample of {broker}:\n{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_server_answers_while_every_sampler_burns_cpu() {
    let redis = RedisServer::start();
    let addr = redis.address();
    celery_scaler::broker::set_test_tick_burn(BURN);
    let server = TestServer::start(test_config()).await;
    let calls = start_samplers(server.grpc, &addr);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_responsive(server.grpc, server.admin, &addr).await;
    // The samplers really were burning: each first tick took at least BURN.
    for db in ["0", "1"] {
        let burned = burned_seconds(server.admin, &format!("{addr}/{db}")).await;
        assert!(burned >= BURN.as_secs_f64(), "db {db}: {burned} s");
    }
    celery_scaler::broker::set_test_tick_burn(Duration::ZERO);
    for c in calls {
        c.await.unwrap();
    }
    server.stop(Duration::from_secs(30)).await.unwrap();
}

/// Kills the child on drop so a failing test leaves nothing behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_binary_answers_and_exits_on_sigterm_while_samplers_burn_cpu() {
    let redis = RedisServer::start();
    let addr = redis.address();
    let grpc: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_celery-scaler"))
            .args([
                "serve",
                "--grpc-listen",
                &grpc.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .env("TEST_CELERY_SCALER_TICK_BURN_MS", "30000")
            .env("CELERY_SCALER_SHUTDOWN_GRACE_SECONDS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(http_get(admin, "/readyz").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "not ready in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = start_samplers(grpc, &addr);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_responsive(grpc, admin, &addr).await;
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    // Drain (grace 1 s) plus the bounded wait for the samplers (5 s), far below the burn.
    let exit_deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > exit_deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = status.expect("SIGTERM ends the process while samplers burn CPU");
    assert_eq!(status.code(), Some(0));
    for c in calls {
        c.abort();
    }
}
