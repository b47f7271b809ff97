//! The real gRPC server in-process on port 0, called through the generated tonic client:
//! all four RPCs, the status-code mapping, health, and the Redis-backed exact values.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::time::Duration;

use celery_scaler::grpc::proto::GetMetricsRequest;
use service_support::*;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Hang guard: no RPC may take longer than this in these tests.
const LIMIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn get_metric_spec_comes_from_metadata_alone() {
    let server = TestServer::start(test_config()).await;
    let mut client = server.client().await;
    let dead = dead_address();
    let resp = client
        .get_metric_spec(so(&[
            ("address", &dead),
            ("queues", "Celery,QA"),
            ("listLength", "2.5"),
            ("scalerAddress", "celery-scaler:9090"),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.metric_specs.len(), 1);
    let spec = &resp.metric_specs[0];
    assert!(
        spec.metric_name.starts_with("celery-celery-qa"),
        "{}",
        spec.metric_name
    );
    assert_eq!(spec.metric_name, spec.metric_name.to_lowercase());
    assert_eq!(spec.target_size, 3);
    assert_eq!(spec.target_size_float, 2.5);

    let resp = client
        .get_metric_spec(so(&[("address", &dead)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.metric_specs[0].metric_name, "celery-celery");
    assert_eq!(resp.metric_specs[0].target_size, 5);
    assert_eq!(resp.metric_specs[0].target_size_float, 5.0);
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn bad_metadata_is_invalid_argument_naming_the_key_not_the_password() {
    let server = TestServer::start(test_config()).await;
    let mut client = server.client().await;
    let secret = "hunter2-very-secret";
    let bad = [
        ("address", "127.0.0.1:1"),
        ("password", secret),
        ("listLength", "-3"),
        ("mode", "warp"),
    ];
    let check = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let msg = status.message();
        assert!(msg.contains("listLength") && msg.contains("mode"), "{msg}");
        assert!(!msg.contains(secret), "{msg}");
    };
    check(client.get_metric_spec(so(&bad)).await.unwrap_err());
    check(client.is_active(so(&bad)).await.unwrap_err());
    check(
        client
            .get_metrics(metrics_req(&bad, "celery-celery"))
            .await
            .unwrap_err(),
    );
    check(client.stream_is_active(so(&bad)).await.unwrap_err());

    let status = client
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: None,
            metric_name: "celery-celery".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("scaledObjectRef"));
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn unknown_metric_name_is_not_found() {
    let server = TestServer::start(test_config()).await;
    let mut client = server.client().await;
    let dead = dead_address();
    let status = client
        .get_metrics(metrics_req(&[("address", &dead)], "s0-something-else"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("s0-something-else"));
    assert!(status.message().contains("celery-celery"));
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn unreachable_broker_is_unavailable_within_the_timeout() {
    let config = test_config();
    let bound = config.sampler_settings().first_sample_timeout + Duration::from_secs(2);
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    let dead = dead_address();
    let md = [("address", dead.as_str())];
    let status = tokio::time::timeout(bound, client.is_active(so(&md)))
        .await
        .expect("IsActive answers within the timeout")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // An inline broker's failure says nothing about the target (docs/security.md).
    assert!(!status.message().contains(&dead), "{status:?}");
    assert!(status.message().contains("id="), "{status:?}");
    let status = tokio::time::timeout(bound, client.get_metrics(metrics_req(&md, "celery-celery")))
        .await
        .expect("GetMetrics answers within the timeout")
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn health_serves_and_metrics_count_requests() {
    let server = TestServer::start(test_config()).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "externalscaler.ExternalScaler"] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut client = server.client().await;
    client
        .get_metric_spec(so(&[("address", "127.0.0.1:1")]))
        .await
        .unwrap();
    let (code, body) = http_get(server.admin, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    for name in [
        "celery_scaler_grpc_requests_total{code=\"OK\",rpc=\"GetMetricSpec\"}",
        "celery_scaler_grpc_request_duration_seconds_bucket{rpc=\"GetMetricSpec\"",
        "celery_scaler_grpc_streams_open",
        "celery_scaler_build_info{version=",
        "process_cpu_seconds_total",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics:\n{body}");
    }
    assert_eq!(http_get(server.admin, "/healthz").await.unwrap().0, 200);
    server.stop(LIMIT).await.unwrap();
}

/// Exact values for Celery-shaped data (see `write_celery_fixture`), on a non-zero DB.
#[tokio::test]
async fn celery_shaped_data_gives_exact_values() {
    let redis = support::RedisServer::start();
    write_celery_fixture(&mut redis.conn(3));
    let server = TestServer::start(test_config()).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let md = [
        ("address", addr.as_str()),
        ("databaseIndex", "3"),
        ("queues", "celery,qa"),
        ("listLength", "4"),
    ];
    let resp = tokio::time::timeout(
        LIMIT,
        client.get_metrics(metrics_req(&md, "celery-celery-qa")),
    )
    .await
    .unwrap()
    .unwrap()
    .into_inner();
    assert_eq!(resp.metric_values.len(), 1);
    assert_eq!(resp.metric_values[0].metric_value_float, 11.0);
    assert_eq!(resp.metric_values[0].metric_value, 11);
    let active = client.is_active(so(&md)).await.unwrap().into_inner();
    assert!(active.result);

    // An idle queue on the same broker: metric 0, inactive.
    let idle = [
        ("address", addr.as_str()),
        ("databaseIndex", "3"),
        ("queues", "nothing-here"),
    ];
    let resp = client
        .get_metrics(metrics_req(&idle, "celery-nothing-here"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.metric_values[0].metric_value_float, 0.0);
    assert!(
        !client
            .is_active(so(&idle))
            .await
            .unwrap()
            .into_inner()
            .result
    );

    let (_, body) = http_get(server.admin, "/metrics").await.unwrap();
    for name in [
        "celery_scaler_queue_backlog",
        "celery_scaler_queue_in_flight",
        "celery_scaler_metric_value{namespace=\"celery\",scaled_object=\"worker\"}",
        "celery_scaler_active{namespace=\"celery\",scaled_object=\"worker\"}",
        "celery_scaler_redis_commands_total",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics");
    }
    server.stop(LIMIT).await.unwrap();
}

/// Redis stopped → UNAVAILABLE within the timeout; back → answers again.
#[tokio::test]
async fn broker_down_then_back() {
    let mut redis = support::RedisServer::start();
    let port = redis.port;
    let server = TestServer::start(test_config()).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let md = [("address", addr.as_str())];
    assert!(!client.is_active(so(&md)).await.unwrap().into_inner().result);
    redis.stop();
    let bound = test_config().sampler_settings().max_sample_age + Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let r = tokio::time::timeout(LIMIT, client.is_active(so(&md)))
            .await
            .unwrap();
        match r {
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                break;
            }
            Ok(_) => assert!(tokio::time::Instant::now() < deadline, "still answering"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _again = RestartedRedis::on(port);
    let deadline = tokio::time::Instant::now() + bound;
    while client.is_active(so(&md)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop(LIMIT).await.unwrap();
}

/// A redis-server restarted on a given port (the support helper picks its own ports).
struct RestartedRedis {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl RestartedRedis {
    fn on(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(support::redis_server_bin())
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        RestartedRedis { child, _dir: dir }
    }
}

impl Drop for RestartedRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn health_watch_ends_on_drain_instead_of_holding_it() {
    let server = TestServer::start(test_config()).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest { service: "".into() })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    server.shutdown.cancel();
    // Either a NOT_SERVING update or the end of the stream, then the end, quickly.
    let grace = test_config().shutdown_grace;
    loop {
        match tokio::time::timeout(grace, watch.message()).await.unwrap() {
            Ok(Some(m)) => assert_eq!(m.status, ServingStatus::NotServing as i32),
            Ok(None) => break,
            Err(s) => panic!("watch ended with {s:?}"),
        }
    }
    tokio::time::timeout(grace, server.handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
