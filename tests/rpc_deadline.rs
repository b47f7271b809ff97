//! KEDA's deadline (docs/security.md, "RPC deadline"): whatever the broker does, IsActive and
//! GetMetrics answer within `rpc_timeout_seconds`, UNAVAILABLE on time rather than late. Uses
//! the default Redis timings (2 s connect, 2 s command, 1 s interval), under which a first
//! sample could otherwise take 4-6 s.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::time::{Duration, Instant};

use celery_scaler::config::Config;
use service_support::*;
use tonic::Code;

/// The configured bound.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// Generous slack for a loaded 2-core machine: this checks a behavioural timeout, not speed.
const SLACK: Duration = Duration::from_secs(1);
/// Hang guard.
const LIMIT: Duration = Duration::from_secs(20);

fn config() -> Config {
    Config {
        rpc_timeout: RPC_TIMEOUT,
        shutdown_grace: Duration::from_secs(2),
        ..Config::default()
    }
}

/// Calls IsActive and GetMetrics for `md` (each a new watch set's first call when `md` is
/// new) and checks both answer UNAVAILABLE within the bound.
async fn both_unavailable_on_time(server: &TestServer, what: &str, md: &[(&str, &str)]) {
    let mut client = server.client().await;
    let started = Instant::now();
    let s = tokio::time::timeout(LIMIT, client.is_active(so(md)))
        .await
        .unwrap()
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("{what}: IsActive {:?} after {took:?}", s.code());
    assert_eq!(s.code(), Code::Unavailable, "{what}: {s:?}");
    assert!(
        took <= RPC_TIMEOUT + SLACK,
        "{what}: IsActive took {took:?}"
    );
    let started = Instant::now();
    let s = tokio::time::timeout(LIMIT, client.get_metrics(metrics_req(md, "celery-celery")))
        .await
        .unwrap()
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("{what}: GetMetrics {:?} after {took:?}", s.code());
    assert_eq!(s.code(), Code::Unavailable, "{what}: {s:?}");
    assert!(
        took <= RPC_TIMEOUT + SLACK,
        "{what}: GetMetrics took {took:?}"
    );
}

#[tokio::test]
async fn nothing_listening() {
    let server = TestServer::start(config()).await;
    let dead = dead_address();
    both_unavailable_on_time(&server, "closed port", &[("address", &dead)]).await;
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn a_stopped_redis_server() {
    let redis = support::RedisServer::start();
    let server = TestServer::start(config()).await;
    let addr = redis.address();
    // A watch set that was answering before the broker froze...
    let mut client = server.client().await;
    let old = [("address", addr.as_str()), ("queues", "old")];
    assert!(client.is_active(so(&old)).await.is_ok());
    redis.pause();
    // Let the sampler's next tick start and hang on the frozen server (interval 1 s): a new
    // watch set must wait for it and for the tick after it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // ...and new ones on the frozen broker: a new queue, then a new DB (a new connection).
    let new_queue = [("address", addr.as_str()), ("queues", "celery")];
    both_unavailable_on_time(&server, "SIGSTOP, new queue", &new_queue).await;
    let new_db = [("address", addr.as_str()), ("databaseIndex", "2")];
    both_unavailable_on_time(&server, "SIGSTOP, new connection", &new_db).await;
    redis.resume();
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn three_dead_sentinels() {
    // Each accepts TCP connections (kernel backlog) and never answers.
    let holes: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addresses: Vec<String> = holes
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let addresses = addresses.join(",");
    let server = TestServer::start(config()).await;
    let md = [
        ("sentinelMaster", "mymaster"),
        ("addresses", addresses.as_str()),
    ];
    both_unavailable_on_time(&server, "3 dead sentinels", &md).await;
    server.stop(LIMIT).await.unwrap();
    drop(holes);
}
