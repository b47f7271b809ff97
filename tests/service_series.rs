//! Series on `/metrics` are bounded and go away: per-ScaledObject series expire with the idle
//! expiry (200 ScaledObjects, then 20,000 hostile names on one watch set), a ScaledObject whose
//! metadata changed keeps no old components, per-queue series go when one watch set expires
//! while the broker stays up, and the live gauges follow heartbeats without any RPC.
//!
//! Each test starts its own server, whose metrics and series budget are its own, so the
//! tests run in parallel.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::time::{Duration, Instant};

use celery_scaler::config::Config;
use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use celery_scaler::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use service_support::*;
use support::RedisServer;
use tonic::transport::Channel;

const LIMIT: Duration = Duration::from_secs(15);

fn config() -> Config {
    Config {
        idle_expiry: Duration::from_secs(1),
        ..test_config()
    }
}

fn object(namespace: &str, name: &str, pairs: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        namespace: namespace.into(),
        name: name.into(),
        scaler_metadata: metadata(pairs),
    }
}

async fn scrape(server: &TestServer) -> String {
    let (code, body) = http_get(server.admin, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    body
}

/// Sample lines (not comments) of `/metrics` containing every one of `parts`.
fn lines<'a>(body: &'a str, parts: &[&str]) -> Vec<&'a str> {
    body.lines()
        .filter(|l| !l.starts_with('#') && parts.iter().all(|p| l.contains(p)))
        .collect()
}

/// Scrapes until `done` holds (at most `secs`); returns the last body.
async fn scrape_until(server: &TestServer, secs: u64, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let body = scrape(server).await;
        if done(&body) || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn is_active(client: &mut ExternalScalerClient<Channel>, so: ScaledObjectRef) {
    client.is_active(so).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_object_series_expire_and_keep_only_current_components() {
    let redis = RedisServer::start();
    let server = TestServer::start(config()).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let backlog = [("address", addr.as_str()), ("queues", "celery")];
    let latency = [
        ("address", addr.as_str()),
        ("queues", "celery"),
        ("mode", "latency"),
        ("concurrency", "4"),
        ("targetLatency", "30"),
    ];
    for i in 0..200 {
        let name = format!("so-{i}");
        if i % 2 == 0 {
            is_active(&mut client, object("expiry-a", &name, &backlog)).await;
        } else {
            let req = GetMetricsRequest {
                scaled_object_ref: Some(object("expiry-a", &name, &latency)),
                metric_name: "celery-celery".into(),
            };
            client.get_metrics(req).await.unwrap();
        }
    }
    let body = scrape(&server).await;
    let ns = "namespace=\"expiry-a\"";
    assert_eq!(
        lines(&body, &["celery_scaler_metric_value{", ns]).len(),
        200
    );
    assert_eq!(lines(&body, &["celery_scaler_active{", ns]).len(), 200);
    // 100 × 3 backlog components + 100 × 5 latency components.
    assert_eq!(
        lines(&body, &["celery_scaler_decision_slots{", ns]).len(),
        800
    );

    // Nobody asks any more: after the idle expiry nothing of them is left.
    let body = scrape_until(&server, 10, |b| {
        lines(b, &["expiry-a"]).is_empty() && lines(b, &["queue=\"celery\"", &addr]).is_empty()
    })
    .await;
    assert_eq!(lines(&body, &["expiry-a"]), Vec::<&str>::new());
    // The watch set expired too, and with it the per-queue series.
    assert_eq!(
        lines(&body, &["queue=\"celery\"", &addr]),
        Vec::<&str>::new()
    );
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_object_whose_metadata_changed_keeps_only_its_current_components() {
    let redis = RedisServer::start();
    let server = TestServer::start(config()).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let backlog = [("address", addr.as_str()), ("queues", "celery")];
    let latency = [
        ("address", addr.as_str()),
        ("queues", "celery"),
        ("mode", "latency"),
        ("concurrency", "4"),
        ("targetLatency", "30"),
    ];
    // Metadata changed from latency to backlog mode: only the backlog components remain.
    is_active(&mut client, object("expiry-b", "changer", &latency)).await;
    let body = scrape(&server).await;
    assert_eq!(
        lines(
            &body,
            &["celery_scaler_decision_slots{", "expiry-b", "flow"]
        )
        .len(),
        1,
        "{body}"
    );
    is_active(&mut client, object("expiry-b", "changer", &backlog)).await;
    let body = scrape(&server).await;
    let slots = lines(&body, &["celery_scaler_decision_slots{", "expiry-b"]);
    let components: Vec<&str> = slots
        .iter()
        .filter_map(|l| l.split("component=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(components, ["backlog", "reserved", "stale"], "{body}");

    server.stop(LIMIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_hostile_names_leave_nothing_after_expiry() {
    let redis = RedisServer::start();
    let server = TestServer::start(config()).await;
    let client = server.client().await;
    let addr = redis.address();
    const NAMES: usize = 20_000;
    const TASKS: usize = 8;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mut client = client.clone();
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let meta = [("address", addr.as_str()), ("queues", "celery")];
            for i in (t..NAMES).step_by(TASKS) {
                let so = object("hostile", &format!("name-{i}"), &meta);
                client.is_active(so).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!("20,000 IsActive calls: {:?}", started.elapsed());
    let body = scrape(&server).await;
    let held = lines(&body, &["namespace=\"hostile\""]).len();
    // Without expiry and the cap this would be 20,000 × 5 lines.
    assert!(held > 0 && held <= 10_000, "{held} hostile series");
    println!("hostile series held right after 20,000 names: {held}");

    let body = scrape_until(&server, 10, |b| lines(b, &["hostile"]).is_empty()).await;
    assert_eq!(lines(&body, &["hostile"]), Vec::<&str>::new());
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_series_go_when_their_watch_set_expires_and_the_broker_stays() {
    let redis = RedisServer::start();
    let server = TestServer::start(config()).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let kept = object("q", "kept", &[("address", &addr), ("queues", "qkeep")]);
    // With a key prefix and workerHostnames: every live series, running included, must go.
    let gone = object(
        "q",
        "gone",
        &[
            ("address", &addr),
            ("queues", "qgone"),
            ("keyPrefix", "app:"),
            ("workerHostnames", "celery@w-*"),
        ],
    );
    is_active(&mut client, kept.clone()).await;
    is_active(&mut client, gone).await;
    let body = scrape_until(&server, 10, |b| {
        !lines(b, &["celery_scaler_signal_mode{", "queue=\"app:qgone\""]).is_empty()
    })
    .await;
    for family in [
        "celery_scaler_queue_backlog{",
        "celery_scaler_queue_in_flight{",
        "celery_scaler_signal_mode{",
    ] {
        assert!(
            !lines(&body, &[family, &addr, "queue=\"app:qgone\""]).is_empty(),
            "{family} missing: {body}"
        );
    }
    // Only `kept` is asked about; `gone`'s watch set expires while the broker stays up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        is_active(&mut client, kept.clone()).await;
        let body = scrape(&server).await;
        if lines(&body, &["qgone\""]).is_empty() || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(lines(&body, &["qgone\""]), Vec::<&str>::new());
    assert!(
        !lines(
            &body,
            &["celery_scaler_queue_backlog{", &addr, "queue=\"qkeep\""]
        )
        .is_empty(),
        "{body}"
    );
    server.stop(LIMIT).await.unwrap();
}

/// kombu's envelope of a worker heartbeat (body: base64 of the event's JSON).
fn heartbeat(host: &str, kind: &str, active: u64) -> String {
    use base64::Engine as _;
    let body = serde_json::json!({
        "hostname": host, "utcoffset": 0.0, "pid": 15529, "clock": 2, "freq": 2.0,
        "active": active, "processed": 10, "loadavg": [0.1, 0.1, 0.1],
        "sw_ident": "py-celery", "sw_ver": "5.7.0", "sw_sys": "Linux",
        "timestamp": now(), "type": kind
    });
    serde_json::json!({
        "body": base64::engine::general_purpose::STANDARD.encode(body.to_string()),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": host},
        "properties": {"delivery_mode": 1,
            "delivery_info": {"exchange": "celeryev", "routing_key": "worker.heartbeat"},
            "priority": 0, "body_encoding": "base64", "delivery_tag": "0f27a1f5-aa"}
    })
    .to_string()
}

fn publish(c: &mut redis::Connection, payload: String) {
    let _: i64 = redis::cmd("PUBLISH")
        .arg("/0.celeryev/worker.heartbeat")
        .arg(payload)
        .query(c)
        .unwrap();
}

/// Waits until the scaler's pub/sub connection has subscribed a pattern.
async fn wait_subscribed(c: &mut redis::Connection) {
    for _ in 0..100 {
        let n: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query(c).unwrap();
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the scaler never subscribed to worker events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_gauge_follows_heartbeats_without_any_rpc() {
    let redis = RedisServer::start();
    let server = TestServer::start(Config {
        idle_expiry: Duration::from_secs(60),
        ..test_config()
    })
    .await;
    let mut client = server.client().await;
    let addr = redis.address();
    let meta = [
        ("address", addr.as_str()),
        ("queues", "celery"),
        ("workerHostnames", "celery@w-*"),
    ];
    // The only RPC: registers the watch set.
    is_active(&mut client, object("live", "worker", &meta)).await;
    let mut c = redis.conn(0);
    wait_subscribed(&mut c).await;
    let running = format!("celery_scaler_queue_running{{broker=\"{addr}/0\",queue=\"celery\"}}");
    let mode = |m: &str| {
        format!(
            "celery_scaler_signal_mode{{broker=\"{addr}/0\",mode=\"{m}\",queue=\"celery\",signal=\"running\"}} 1"
        )
    };

    publish(&mut c, heartbeat("celery@w-1", "worker-heartbeat", 2));
    publish(&mut c, heartbeat("other@x", "worker-heartbeat", 9));
    let want = format!("{running} 2\n");
    let body = scrape_until(&server, 10, |b| b.contains(&want)).await;
    assert!(body.contains(&want), "{body}");
    assert!(body.contains(&mode("heartbeat")), "{body}");

    publish(&mut c, heartbeat("celery@w-1", "worker-heartbeat", 1));
    let want = format!("{running} 1\n");
    let body = scrape_until(&server, 10, |b| b.contains(&want)).await;
    assert!(body.contains(&want), "{body}");

    // The worker goes offline: the gauge goes, and the mode says so.
    publish(&mut c, heartbeat("celery@w-1", "worker-offline", 0));
    let body = scrape_until(&server, 10, |b| !b.contains(&running)).await;
    assert!(!body.contains(&running), "{body}");
    assert!(body.contains(&mode("none")), "{body}");
    server.stop(LIMIT).await.unwrap();
}
