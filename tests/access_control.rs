//! Who may point the scaler where (docs/security.md), through the real gRPC server: the
//! broker policy (`named-only`, `allow-list`, connection DB and namespace pins) answers
//! PERMISSION_DENIED with one text, and an inline broker's failures cannot be told apart.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::collections::HashMap;
use std::time::Duration;

use celery_scaler::config::{self, Config, Flags};
use celery_scaler::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use service_support::*;
use tokio::io::AsyncWriteExt;
use tonic::Code;

/// Hang guard: no RPC may take longer than this in these tests.
const LIMIT: Duration = Duration::from_secs(15);

/// `test_config()` timings plus the access settings of a YAML snippet, loaded through the
/// real config layer.
fn config_with(yaml: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    let loaded = config::load(Some(&path), &HashMap::new(), &Flags::default()).unwrap();
    Config {
        access: loaded.access,
        connections: loaded.connections,
        max_brokers: loaded.max_brokers,
        max_brokers_per_endpoint: loaded.max_brokers_per_endpoint,
        ..test_config()
    }
}

fn so_in(namespace: &str, pairs: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        namespace: namespace.into(),
        ..so(pairs)
    }
}

fn metrics_in(namespace: &str, pairs: &[(&str, &str)]) -> GetMetricsRequest {
    GetMetricsRequest {
        scaled_object_ref: Some(so_in(namespace, pairs)),
        metric_name: "celery-celery".into(),
    }
}

#[tokio::test]
async fn named_only_refuses_inline_brokers_and_pins_connections() {
    let redis = support::RedisServer::start();
    redis::cmd("LPUSH")
        .arg("celery")
        .arg("m")
        .exec(&mut redis.conn(1))
        .unwrap();
    let config = config_with(&format!(
        r#"
broker_policy: named-only
connections:
  app:
    address: "{}"
    allowed_databases: [0, 1]
    allowed_namespaces: ["celery", "ci-*"]
"#,
        redis.address()
    ));
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let dead = dead_address();

    // Inline brokers: refused before any connection, the same text for a live Redis and a
    // closed port, on every RPC.
    let mut texts = Vec::new();
    for target in [addr.as_str(), dead.as_str()] {
        let md = [("address", target)];
        let s = client.is_active(so_in("celery", &md)).await.unwrap_err();
        assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
        texts.push(s.message().to_string());
        let s = client
            .get_metric_spec(so_in("celery", &md))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
        texts.push(s.message().to_string());
        let s = client
            .get_metrics(metrics_in("celery", &md))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
        texts.push(s.message().to_string());
        let s = client
            .stream_is_active(so_in("celery", &md))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
        texts.push(s.message().to_string());
    }
    assert!(texts.iter().all(|t| *t == texts[0]), "{texts:?}");
    assert!(!texts[0].contains(&addr) && !texts[0].contains(&dead));

    // The named connection: its DBs, from its namespaces.
    let app = [("connection", "app"), ("databaseIndex", "1")];
    let resp = tokio::time::timeout(LIMIT, client.get_metrics(metrics_in("celery", &app)))
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(resp.metric_values[0].metric_value_float, 1.0);
    assert!(client.is_active(so_in("ci-7", &app)).await.is_ok());
    let other_db = [("connection", "app"), ("databaseIndex", "3")];
    let s = client
        .is_active(so_in("celery", &other_db))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert_eq!(s.message(), texts[0]);
    let s = client.is_active(so_in("tenant-b", &app)).await.unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn a_connection_reads_only_its_own_db_by_default() {
    let redis = support::RedisServer::start();
    let config = config_with(&format!(
        "connections:\n  app:\n    address: \"{}\"\n",
        redis.address()
    ));
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    let own = [("connection", "app")];
    assert!(client.is_active(so(&own)).await.is_ok());
    let s = client
        .is_active(so(&[("connection", "app"), ("databaseIndex", "3")]))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn allow_list_admits_matching_endpoints_and_dbs_only() {
    let redis = support::RedisServer::start();
    let config = config_with(&format!(
        "broker_policy: allow-list\nallowed_brokers: [\"127.0.0.*:{}/0-1\"]\n",
        redis.port
    ));
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    let addr = redis.address();
    assert!(client.is_active(so(&[("address", &addr)])).await.is_ok());
    let db1 = [("address", addr.as_str()), ("databaseIndex", "1")];
    assert!(client.is_active(so(&db1)).await.is_ok());
    let dead = dead_address();
    for md in [
        vec![("address", addr.as_str()), ("databaseIndex", "2")],
        vec![("address", dead.as_str())],
        vec![("host", "localhost"), ("port", &redis.port.to_string())],
    ] {
        let s = client.is_active(so(&md)).await.unwrap_err();
        assert_eq!(s.code(), Code::PermissionDenied, "{md:?}: {s:?}");
    }
    server.stop(LIMIT).await.unwrap();
}

/// A TCP server that is not Redis: answers every connection with an SSH banner and closes.
async fn not_redis() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn inline_broker_failures_cannot_be_told_apart() {
    let locked = support::RedisServer::start_with(&["--requirepass", "right-pw-123"]);
    let (banner, banner_task) = not_redis().await;
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole = black_hole.local_addr().unwrap().to_string();
    let dead = dead_address();
    let server = TestServer::start(test_config()).await;
    let mut client = server.client().await;
    let locked_addr = locked.address();
    let targets: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("closed port", vec![("address", &dead)]),
        ("not Redis", vec![("address", &banner)]),
        ("never answers", vec![("address", &hole)]),
        (
            "wrong password",
            vec![("address", &locked_addr), ("password", "wrong-pw-456")],
        ),
        ("no password", vec![("address", &locked_addr)]),
    ];
    let mut shapes = Vec::new();
    for (what, md) in &targets {
        let s = tokio::time::timeout(LIMIT, client.is_active(so(md)))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(s.code(), Code::Unavailable, "{what}: {s:?}");
        let text = s.message().to_string();
        for secret_or_target in ["wrong-pw-456", &dead, &banner, &hole, &locked_addr] {
            assert!(!text.contains(secret_or_target), "{what}: {text}");
        }
        // The only varying part is the id (per broker).
        let (shape, id) = text.rsplit_once("id=").unwrap();
        assert!(
            id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{text}"
        );
        shapes.push(shape.to_string());
    }
    assert!(shapes.iter().all(|s| *s == shapes[0]), "{shapes:?}");
    // The right password works: the target itself is fine.
    let right = [
        ("address", locked_addr.as_str()),
        ("password", "right-pw-123"),
    ];
    assert!(client.is_active(so(&right)).await.is_ok());
    server.stop(LIMIT).await.unwrap();
    banner_task.abort();
    drop(black_hole);
}

/// `celery-scaler inspect` with `args`; returns (exit code, stderr).
fn inspect(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_celery-scaler"))
        .arg("inspect")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn inspect_applies_the_policy_but_not_namespace_pins() {
    let redis = support::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "broker_policy: named-only\nconnections:\n  app:\n    address: \"{}\"\n    allowed_namespaces: [\"celery\"]\n",
            redis.address()
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let inline = format!("address={}", redis.address());
    let (code, stderr) = inspect(&["--config", config, "--metadata", &inline]);
    assert_eq!(code, Some(77), "{stderr}");
    assert!(
        stderr.contains("named-only"),
        "the operator sees the reason: {stderr}"
    );
    let (code, stderr) = inspect(&[
        "--config",
        config,
        "--metadata",
        "connection=app",
        "--metadata",
        "databaseIndex=2",
    ]);
    assert_eq!(code, Some(77), "{stderr}");
    let (code, stderr) = inspect(&["--config", config, "--metadata", "connection=app"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn the_policy_checks_the_connection_name_the_parser_used() {
    let dead = dead_address();
    let config = config_with(&format!(
        r#"
broker_policy: named-only
connections:
  app:
    address: "{dead}"
    allowed_namespaces: ["celery"]
"#
    ));
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    // The parser trims `connection`: " app " is the connection app, allowed in `celery`,
    // pinned out of `other` (GetMetricSpec never touches the broker).
    for name in ["app", " app "] {
        let md = [("connection", name)];
        let r = client.get_metric_spec(so_in("celery", &md)).await;
        assert!(r.is_ok(), "{name:?}: {r:?}");
        let s = client
            .get_metric_spec(so_in("other", &md))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::PermissionDenied, "{name:?}: {s:?}");
    }
    server.stop(LIMIT).await.unwrap();
}
