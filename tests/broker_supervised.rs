//! Supervised samplers (issue 9 item 4) against a real redis-server: a sampler whose tick
//! panics, or a pub/sub task whose session panics (through test-only hooks), is restarted,
//! counted and works again; dropping the registry ends its samplers and closes their
//! connections.
//!
//! The panic hook is process-wide: the tests of this file take turns ([`TURN`]).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use celery_scaler::broker::{BrokerSpec, Registry, SamplerSettings, WatchSet};
use celery_scaler::celery::Layout;
use support::celery_data::push;
use support::RedisServer;

/// Held by each test, so the panic hook only hits the sampler meant for it.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn fast() -> SamplerSettings {
    SamplerSettings {
        interval: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(2),
        first_sample_timeout: Duration::from_secs(10),
        max_sample_age: Duration::from_secs(10),
        ..SamplerSettings::default()
    }
}

fn watch() -> WatchSet {
    WatchSet {
        layout: Layout::default(),
        queues: vec!["celery".into()],
        visibility_timeout_ms: 3_600_000,
        worker_hostnames: None,
    }
}

fn restarts(registry: &Registry) -> f64 {
    restarts_of(registry, "sampler")
}

fn restarts_of(registry: &Registry, task: &str) -> f64 {
    registry
        .metrics()
        .gather()
        .iter()
        .filter(|f| f.name() == "celery_scaler_task_restarts_total")
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "task" && l.value() == task)
        })
        .map(|m| m.get_counter().value())
        .sum()
}

/// Client connections on `server` other than the one asking.
fn other_clients(c: &mut redis::Connection) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(c).unwrap();
    list.lines().count().saturating_sub(1)
}

#[tokio::test]
async fn a_panicking_sampler_is_restarted_and_answers_again() {
    let _turn = TURN.lock().await;
    let server = RedisServer::start();
    let mut c = server.conn(0);
    push(&mut c, b"celery", 3);
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let registry = Registry::new(fast());
    let before = restarts(&registry);
    celery_scaler::broker::set_test_sampler_panics(2);
    let v = registry
        .view(&spec, &watch())
        .await
        .expect("answers after two restarts");
    assert_eq!(v.queues[0].backlog, 3);
    assert_eq!(restarts(&registry) - before, 2.0);
    // And it keeps sampling.
    push(&mut c, b"celery", 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = registry.view(&spec, &watch()).await.unwrap();
        if v.queues[0].backlog == 5 {
            break;
        }
        assert!(Instant::now() < deadline, "sampler stopped sampling");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    registry.shutdown().await;
}

#[tokio::test]
async fn dropping_the_registry_ends_its_samplers() {
    let _turn = TURN.lock().await;
    let server = RedisServer::start();
    let mut c = server.conn(0);
    push(&mut c, b"celery", 1);
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let registry = Registry::new(fast());
    registry.view(&spec, &watch()).await.unwrap();
    assert!(other_clients(&mut c) >= 1, "the sampler is connected");
    drop(registry);
    let deadline = Instant::now() + Duration::from_secs(10);
    while other_clients(&mut c) > 0 {
        assert!(
            Instant::now() < deadline,
            "sampler connections still open after the registry was dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Client connections on `c`'s server subscribed to a pattern (the pub/sub task's).
fn pattern_subscribers(c: &mut redis::Connection) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(c).unwrap();
    list.lines().filter(|l| l.contains(" psub=1")).count()
}

#[tokio::test]
async fn a_panicking_pubsub_task_is_restarted_and_subscribes_again() {
    let _turn = TURN.lock().await;
    let server = RedisServer::start();
    let mut c = server.conn(0);
    push(&mut c, b"celery", 1);
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let registry = Registry::new(fast());
    let before = restarts_of(&registry, "events");
    celery_scaler::broker::set_test_events_panics(1);
    registry.view(&spec, &watch()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while restarts_of(&registry, "events") - before < 1.0 || pattern_subscribers(&mut c) == 0 {
        assert!(
            Instant::now() < deadline,
            "pub/sub task not back: {} restarts",
            restarts_of(&registry, "events") - before
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(restarts_of(&registry, "events") - before, 1.0);
    registry.shutdown().await;
}

fn series_reserved(registry: &Registry) -> f64 {
    registry
        .metrics()
        .gather()
        .iter()
        .filter(|f| f.name() == "celery_scaler_series_reserved")
        .flat_map(|f| f.get_metric().to_vec())
        .map(|m| m.get_gauge().value())
        .sum()
}

#[tokio::test]
async fn a_restarted_sampler_does_not_leak_series_reservations() {
    let _turn = TURN.lock().await;
    let server = RedisServer::start();
    let mut c = server.conn(0);
    push(&mut c, b"celery", 1);
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let registry = Registry::new(fast());
    registry.view(&spec, &watch()).await.unwrap();
    let reserved = series_reserved(&registry);
    assert!(reserved >= 1.0, "the queue's series are reserved");
    let before = restarts(&registry);
    celery_scaler::broker::set_test_sampler_panics(1);
    // Wait for the restart, then for a sample of the new sampler (it sets the series again).
    let deadline = Instant::now() + Duration::from_secs(10);
    while restarts(&registry) == before {
        assert!(Instant::now() < deadline, "the sampler did not panic");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    push(&mut c, b"celery", 1);
    loop {
        if let Ok(v) = registry.view(&spec, &watch()).await {
            if v.queues[0].backlog == 2 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the restarted sampler did not sample"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(series_reserved(&registry), reserved);
    registry.shutdown().await;
}
