//! Sampler lifecycle: many watch sets over the same queues cost no more Redis work than one;
//! idle watch sets expire, an empty sampler stops and its series disappear; a subscription
//! keeps its watch set alive; shutdown ends everything.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use celery_scaler::broker::{BrokerError, BrokerSpec, Registry, SamplerSettings, WatchSet};
use celery_scaler::celery::Layout;
use futures_util::future::join_all;
use support::celery_data::{deliver, key, now, push, unacked_value};
use support::RedisServer;

fn metric(registry: &Registry, name: &str, broker: &str) -> Option<f64> {
    let values: Vec<f64> = registry
        .metrics()
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "broker" && l.value() == broker)
        })
        .map(|m| m.get_counter().value() + m.get_gauge().value())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn watch(queues: &[&str], vt_secs: u64) -> WatchSet {
    WatchSet {
        layout: Layout::default(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        visibility_timeout_ms: vt_secs * 1000,
        worker_hostnames: None,
    }
}

/// All ordered arrangements of non-empty subsets of `items`.
fn arrangements(items: &[&'static str]) -> Vec<Vec<&'static str>> {
    let mut out = Vec::new();
    for (i, first) in items.iter().enumerate() {
        out.push(vec![*first]);
        let rest: Vec<&'static str> = items
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, x)| *x)
            .collect();
        for mut tail in arrangements(&rest) {
            tail.insert(0, *first);
            out.push(tail);
        }
    }
    out
}

async fn commands_per_tick(registry: &Arc<Registry>, spec: &BrokerSpec, w: &WatchSet) -> f64 {
    let label = spec.label();
    let mut sub = registry.subscribe(spec, w).await.expect("subscribe");
    sub.next().await.expect("tick");
    let before = metric(registry, "celery_scaler_redis_commands_total", &label).unwrap_or(0.0);
    for _ in 0..3 {
        sub.next().await.expect("tick");
    }
    (metric(registry, "celery_scaler_redis_commands_total", &label).unwrap_or(0.0) - before) / 3.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watch_sets_cost_what_one_costs() {
    let server = RedisServer::start();
    let mut c = server.conn(0);
    let queues = ["celery", "qa", "qb", "qc"];
    for q in queues {
        push(&mut c, &key("", q), 2);
    }
    let t = now();
    for i in 0..2000 {
        let tag = format!("t{i}");
        let q = queues[i % 4];
        deliver(
            &mut c,
            "",
            &tag,
            t - 2000.0 + i as f64,
            &unacked_value(&tag, None, "", q),
        );
    }
    let settings = SamplerSettings {
        interval: Duration::from_millis(300),
        first_sample_timeout: Duration::from_secs(20),
        ..SamplerSettings::default()
    };
    let registry = Arc::new(Registry::new(settings));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let all = watch(&queues, 3600);
    let one = commands_per_tick(&registry, &spec, &all).await;

    let mut sets = Vec::new();
    for arrangement in arrangements(&queues) {
        for vt in 0..16 {
            sets.push(watch(&arrangement, 3600 + vt));
        }
    }
    assert!(sets.len() >= 1000, "{}", sets.len());
    let started = Instant::now();
    let views = join_all(sets.iter().map(|w| registry.view(&spec, w))).await;
    eprintln!(
        "{} watch sets registered and answered in {:?}",
        sets.len(),
        started.elapsed()
    );
    for (w, v) in sets.iter().zip(&views) {
        let v = v.as_ref().expect("view");
        for (name, s) in w.queues.iter().zip(&v.queues) {
            assert_eq!((&s.name, s.backlog, s.reserved), (name, 2, 500));
        }
    }
    let many = commands_per_tick(&registry, &spec, &all).await;
    eprintln!(
        "commands per tick: {one} with 1 watch set, {many} with {}",
        sets.len() + 1
    );
    assert_eq!(one, many);
    let views_at = Instant::now();
    for w in &sets {
        registry.view(&spec, w).await.expect("cached view");
    }
    eprintln!(
        "{} snapshot answers in {:?}",
        sets.len(),
        views_at.elapsed()
    );
    registry.shutdown().await;
}

#[tokio::test]
async fn idle_watch_sets_expire_and_the_sampler_stops() {
    let server = RedisServer::start();
    let settings = SamplerSettings {
        interval: Duration::from_millis(100),
        idle_expiry: Duration::from_millis(500),
        ..SamplerSettings::default()
    };
    let registry = Arc::new(Registry::new(settings));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let label = spec.label();
    let held = watch(&["held"], 3600);
    registry
        .view(&spec, &watch(&["celery"], 3600))
        .await
        .expect("view");
    let sub = registry.subscribe(&spec, &held).await.expect("subscribe");
    assert_eq!(
        metric(&registry, "celery_scaler_watch_sets", &label),
        Some(2.0)
    );
    // The unheld set expires; the subscribed one stays.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&registry, "celery_scaler_watch_sets", &label) != Some(1.0) {
        assert!(Instant::now() < deadline, "idle watch set never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        metric(&registry, "celery_scaler_watch_sets", &label),
        Some(1.0),
        "held set expired"
    );
    assert!(metric(&registry, "celery_scaler_queue_backlog", &label).is_some());
    // Without holders or requests the sampler stops and removes its series.
    drop(sub);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&registry, "celery_scaler_watch_sets", &label).is_some() {
        assert!(Instant::now() < deadline, "sampler never stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(&registry, "celery_scaler_queue_backlog", &label).is_none());
    // A new request starts a fresh sampler.
    push(&mut server.conn(0), &key("", "celery"), 1);
    let v = registry
        .view(&spec, &watch(&["celery"], 3600))
        .await
        .expect("view");
    assert_eq!(v.queues[0].backlog, 1);
    registry.shutdown().await;
    let err = registry
        .view(&spec, &watch(&["celery"], 3600))
        .await
        .expect_err("shut down");
    assert_eq!(err, BrokerError::ShuttingDown);
}
