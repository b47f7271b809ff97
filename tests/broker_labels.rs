//! Broker labels are one per sampler: two credential sets on one endpoint (any password
//! works for Redis's `nopass` default user) get their own samplers and must not share a
//! label, or each sampler's bookkeeping removes the other's series every tick.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use service_support::*;

/// Hang guard for every wait here.
const LIMIT: Duration = Duration::from_secs(15);

/// The `broker` label of the `signal_mode` series of `queue` in `body`.
fn brokers_of(body: &str, queue: &str) -> BTreeSet<String> {
    let needle = format!("queue=\"{queue}\"");
    body.lines()
        .filter(|l| l.starts_with("celery_scaler_signal_mode{") && l.contains(&needle))
        .filter_map(|l| l.split("broker=\"").nth(1)?.split('"').next())
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_passwords_on_one_endpoint_keep_their_own_series() {
    let redis = support::RedisServer::start();
    let server = TestServer::start(test_config()).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let port = redis.port.to_string();
    let spec = |password: &'static str, queue: &'static str| {
        so(&[
            ("host", "127.0.0.1"),
            ("port", port.as_str()),
            ("username", "default"),
            ("password", password),
            ("queues", queue),
        ])
    };
    for (password, queue) in [("secret-a", "qa"), ("secret-b", "qb")] {
        let r = tokio::time::timeout(LIMIT, client.is_active(spec(password, queue))).await;
        assert!(r.unwrap().is_ok(), "{queue}");
    }
    // Both samplers tick every 200 ms; both queues' live series must show at once.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let body = loop {
        let (_, body) = http_get(server.admin, "/metrics").await.unwrap();
        if !brokers_of(&body, "qa").is_empty() && !brokers_of(&body, "qb").is_empty() {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "qa and qb never shown together:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (a, b) = (brokers_of(&body, "qa"), brokers_of(&body, "qb"));
    assert_ne!(a, b, "one label for two credential sets");
    for label in a.iter().chain(&b) {
        assert!(label.starts_with(&format!("{addr}/0#")), "{label}");
    }
    assert!(!body.contains("secret-a") && !body.contains("secret-b"));
    server.stop(LIMIT).await.unwrap();
}
