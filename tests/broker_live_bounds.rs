//! Live signals under hostile or blind conditions, against a real redis-server: forged worker
//! heartbeats (PUBLISHed by the test as anyone with write access to the broker could) must
//! leave the latency metric and the tracked-worker count bounded; a queue that a fast
//! early-ack consumer keeps empty, on a broker without keyspace notifications, must have its
//! arrival rate reported as a lower bound (and as exact once notifications are on); a burst
//! that is over must stop keeping latency mode active though its arrivals are still in the
//! rate window.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use celery_scaler::broker::NamedConnections;
use celery_scaler::broker::{BrokerSpec, Registry, SamplerSettings, WatchSet, WatchView};
use celery_scaler::celery::Layout;
use celery_scaler::inspect;
use celery_scaler::policy::latency::{decide, LatencySettings};
use celery_scaler::scaler::{Evaluation, Scaler};
use celery_scaler::signals::SignalMode;
use support::celery_data::{ack, deliver, envelope, now, unacked_value};
use support::{signal_mode, RedisServer};

/// Defaults of the config keys `max_worker_concurrency` and `max_tracked_workers`.
const MAX_WORKER_CONCURRENCY: u64 = 256;
const MAX_TRACKED_WORKERS: usize = 4096;

fn settings() -> SamplerSettings {
    SamplerSettings {
        interval: Duration::from_millis(200),
        first_sample_timeout: Duration::from_secs(10),
        max_sample_age: Duration::from_secs(30),
        signal_window: Duration::from_secs(30),
        ..SamplerSettings::default()
    }
}

fn watch(worker_hostnames: Option<&str>) -> WatchSet {
    WatchSet {
        layout: Layout::default(),
        queues: vec!["celery".into()],
        visibility_timeout_ms: 3_600_000,
        worker_hostnames: worker_hostnames.map(str::to_string),
    }
}

/// Polls `view` until `done` holds (at most `secs`), returning the last view.
async fn until(
    registry: &Registry,
    spec: &BrokerSpec,
    watch: &WatchSet,
    secs: u64,
    done: impl Fn(&WatchView) -> bool,
) -> Arc<WatchView> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = registry.view(spec, watch).await.expect("view");
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the scaler has PSUBSCRIBEd the worker-event pattern.
fn wait_psubscribed(server: &RedisServer) {
    let mut c = server.conn(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = redis::cmd("PUBSUB")
            .arg("NUMPAT")
            .query(&mut c)
            .expect("numpat");
        if n > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "scaler never psubscribed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// kombu's envelope of a worker event (body: base64 of the JSON event), as Celery sends it.
fn worker_event(body: serde_json::Value) -> String {
    use base64::Engine as _;
    let raw = body.to_string();
    serde_json::json!({
        "body": base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": body["hostname"]},
        "properties": {"delivery_mode": 1,
            "delivery_info": {"exchange": "celeryev", "routing_key": "worker.heartbeat"},
            "priority": 0, "body_encoding": "base64", "delivery_tag": "0f27a1f5-aa"}
    })
    .to_string()
}

/// A forged heartbeat: raw JSON numbers, so values beyond what Celery sends get through.
fn forged(host: &str, active: &str, processed: &str, freq: &str) -> String {
    let body = format!(
        r#"{{"hostname":"{host}","freq":{freq},"active":{active},"processed":{processed},"timestamp":1e300,"type":"worker-heartbeat"}}"#
    );
    worker_event(serde_json::from_str(&body).expect("forged body is JSON"))
}

fn publish(c: &mut redis::Connection, payloads: &[String]) {
    let mut pipe = redis::pipe();
    for p in payloads {
        pipe.cmd("PUBLISH")
            .arg("/0.celeryev/worker.heartbeat")
            .arg(p)
            .ignore();
    }
    let () = pipe.query(c).expect("publish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_heartbeats_leave_the_latency_metric_bounded_and_expire() {
    let server = RedisServer::start();
    let registry = Arc::new(Registry::new(settings()));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let watch = watch(Some("forged@"));
    registry.view(&spec, &watch).await.expect("first view");
    wait_psubscribed(&server);
    let mut c = server.conn(0);
    let hosts = ["forged@a", "forged@b", "forged@c"];
    let beat = |processed: &str| -> Vec<String> {
        hosts
            .iter()
            .map(|h| forged(h, "9223372036854775808", processed, "1e300"))
            .collect()
    };
    publish(&mut c, &beat("0"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    publish(&mut c, &beat("4611686018427387904"));
    let pattern = Some("forged@");
    let v = until(&registry, &spec, &watch, 10, |v| {
        let l = &v.live_signals(pattern)[0];
        l.running.is_some()
            && l.service_time
                .is_some_and(|e| e.source.as_str() == "heartbeat")
    })
    .await;
    let live = v.live_signals(pattern);
    let capacity = (hosts.len() as u64 * MAX_WORKER_CONCURRENCY) as f64;
    let running = live[0].running.expect("running").value;
    assert!(running <= capacity, "running {running} > {capacity}");
    let d = decide(&LatencySettings::new(4.0, 30.0), &v.queues, &live);
    let part = |name: &str| {
        d.breakdown
            .iter()
            .find(|c| c.component == name)
            .map_or(0.0, |c| c.value)
    };
    // In-flight and flow together within what the workers can run; headroom on top of
    // that is at most √flow.
    assert!(
        part("in_flight") + part("flow") <= capacity + 1e-9,
        "{d:?} (capacity {capacity})"
    );
    assert!(
        d.metric_value <= capacity + capacity.sqrt() + 1e-9,
        "metric {} with capacity {capacity}: {d:?}",
        d.metric_value
    );
    // freq 1e300 is ignored: the forged workers expire three default intervals (6 s) after
    // their last beat.
    let v = until(&registry, &spec, &watch, 15, |v| {
        v.live_signals(pattern)[0].running.is_none()
    })
    .await;
    assert_eq!(v.live_signals(pattern)[0].running, None, "never expired");
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_forged_beats_without_busy_slots_leave_the_latency_metric_bounded() {
    let server = RedisServer::start();
    let registry = Arc::new(Registry::new(settings()));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let watch = watch(Some("idle@"));
    registry.view(&spec, &watch).await.expect("first view");
    wait_psubscribed(&server);
    let mut c = server.conn(0);
    let hosts = ["idle@a", "idle@b"];
    // Never a busy slot (no Little's law to pair the rate with), beats 10 ms apart, each
    // claiming a full worker's starts over a whole default interval (256 × 1,000 × 2 s).
    for beat in 0..150u64 {
        let processed = (beat * 512_000).to_string();
        let payloads: Vec<String> = hosts
            .iter()
            .map(|h| forged(h, "0", &processed, "2"))
            .collect();
        publish(&mut c, &payloads);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pattern = Some("idle@");
    let v = until(&registry, &spec, &watch, 10, |v| {
        let l = &v.live_signals(pattern)[0];
        l.dequeue_rate
            .is_some_and(|e| e.source.as_str() == "heartbeat")
    })
    .await;
    let live = v.live_signals(pattern);
    assert_eq!(
        live[0].dequeue_rate.map(|e| e.source.as_str()),
        Some("heartbeat")
    );
    let capacity = (hosts.len() as u64 * MAX_WORKER_CONCURRENCY) as f64;
    // A configured task duration: the fallback a rate without a service time would meet.
    let settings = LatencySettings {
        task_duration: Some(60.0),
        ..LatencySettings::new(4.0, 30.0)
    };
    let d = decide(&settings, &v.queues, &live);
    assert!(
        d.metric_value <= capacity + capacity.sqrt() + 1e-6,
        "metric {} with capacity {capacity}: {d:?}",
        d.metric_value
    );
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_hostnames_tracks_at_most_the_bound() {
    let server = RedisServer::start();
    let registry = Arc::new(Registry::new(settings()));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let watch = watch(None);
    registry.view(&spec, &watch).await.expect("first view");
    wait_psubscribed(&server);
    let mut c = server.conn(0);
    let forged_hosts = 100_000;
    let broker = format!("127.0.0.1:{}/0", server.port);
    // Paced so that the subscriber's output buffer on the server never overflows (Redis
    // would drop the connection and the messages with it): each chunk is let through
    // before the next (bounded wait, so that a scaler that counts nothing still ends).
    let chunk = 5_000;
    for start in (0..forged_hosts).step_by(chunk) {
        let batch: Vec<String> = (start..start + chunk)
            // The longest interval Celery's range allows: none expires during the test.
            .map(|i| forged(&format!("flood@{i}"), "1", "0", "3600"))
            .collect();
        publish(&mut c, &batch);
        let expected = (start + chunk).saturating_sub(MAX_TRACKED_WORKERS) as f64;
        wait_refused(&registry, &broker, expected, 3).await;
    }
    // Wait (bounded) until the whole flood has been heard.
    let expected = (forged_hosts - MAX_TRACKED_WORKERS) as f64;
    wait_refused(&registry, &broker, expected, 30).await;
    // Every tracked worker reported one running task: running counts the tracked workers.
    let v = registry.view(&spec, &watch).await.expect("view");
    let tracked = v.live_signals(Some("flood@"))[0]
        .running
        .expect("flood workers tracked")
        .value;
    assert_eq!(
        tracked, MAX_TRACKED_WORKERS as f64,
        "the latest {} hostnames are tracked, no more",
        MAX_TRACKED_WORKERS
    );
    // Every eviction is counted.
    assert_eq!(refused(&registry, &broker), expected);
    // A new worker pod (a new hostname) is heard despite the full book of forged ones.
    publish(&mut c, &[forged("real@pod-1", "3", "0", "2")]);
    let pattern = Some("real@");
    let v = until(&registry, &spec, &watch, 10, |v| {
        v.live_signals(pattern)[0].running.is_some()
    })
    .await;
    let running = v.live_signals(pattern)[0].running.map(|e| e.value);
    assert_eq!(running, Some(3.0), "the new worker is tracked");
    registry.shutdown().await;
}

/// Waits (at most `secs`) until `refused(registry, broker)` reaches `expected`.
async fn wait_refused(registry: &Registry, broker: &str, expected: f64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while refused(registry, broker) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `celery_scaler_heartbeats_implausible_total{reason="too_many_workers"}` of `broker`: workers
/// evicted to make room for new hostnames.
fn refused(registry: &Registry, broker: &str) -> f64 {
    registry
        .metrics()
        .gather()
        .iter()
        .filter(|f| f.name() == "celery_scaler_heartbeats_implausible_total")
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| {
            let has = |k: &str, v: &str| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k && l.value() == v)
            };
            has("broker", broker) && has("reason", "too_many_workers")
        })
        .map(|m| m.get_counter().value())
        .sum()
}

/// A fast early-ack consumer, as Celery's Redis transport behaves: each task is LPUSHed by
/// the producer, taken (RPOP), put into `unacked` on delivery and acknowledged (removed) a
/// couple of milliseconds later when the pool starts it. Runs until `stop`.
fn fast_consumer(server_port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{server_port}/0")).expect("client");
        let mut c = client.get_connection().expect("connection");
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let tag = format!("fast-{n}");
            let _: i64 = redis::cmd("LPUSH")
                .arg("celery")
                .arg(envelope(&tag, None, "", "celery"))
                .query(&mut c)
                .expect("lpush");
            let _: Vec<u8> = redis::cmd("RPOP")
                .arg("celery")
                .query(&mut c)
                .expect("rpop");
            deliver(
                &mut c,
                "",
                &tag,
                now(),
                &unacked_value(&tag, None, "", "celery"),
            );
            std::thread::sleep(Duration::from_millis(2));
            ack(&mut c, "", &tag);
            std::thread::sleep(Duration::from_millis(8));
            n += 1;
        }
        n
    })
}

fn latency_trigger(port: u16) -> HashMap<String, String> {
    [
        ("address", format!("127.0.0.1:{port}")),
        ("queues", "celery".to_string()),
        ("mode", "latency".to_string()),
        ("concurrency", "4".to_string()),
        ("targetLatency", "30".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Evaluates `metadata` until `done` holds (at most `secs`), returning the last evaluation.
async fn evaluate_until(
    scaler: &Scaler,
    metadata: &HashMap<String, String>,
    secs: u64,
    done: impl Fn(&Evaluation) -> bool,
) -> Evaluation {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let e = scaler.evaluate(metadata).await.expect("evaluate");
        if done(&e) || Instant::now() > deadline {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn arrival_mode(e: &Evaluation) -> Option<SignalMode> {
    e.live[0].arrival_rate.map(|a| a.mode)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_kept_empty_without_notifications_is_a_lower_bound_until_they_are_on() {
    let server = RedisServer::start();
    let registry = Arc::new(Registry::new(SamplerSettings {
        // Re-check the notification setting often: the test turns it on half-way.
        reconcile_period: Duration::from_secs(1),
        ..settings()
    }));
    let scaler = Scaler::new(registry.clone(), NamedConnections::new());
    let metadata = latency_trigger(server.port);
    let broker = format!("127.0.0.1:{}/0", server.port);
    scaler.evaluate(&metadata).await.expect("first evaluation");

    let stop = Arc::new(AtomicBool::new(false));
    let consumer = fast_consumer(server.port, stop.clone());
    let e = evaluate_until(&scaler, &metadata, 20, |e| {
        arrival_mode(e) == Some(SignalMode::LowerBound)
    })
    .await;
    assert_eq!(
        arrival_mode(&e),
        Some(SignalMode::LowerBound),
        "{:?}",
        e.live[0]
    );
    let text = inspect::to_text(&e);
    println!("{text}");
    assert!(text.contains("lower bound"), "{text}");
    assert!(text.contains("notify-keyspace-events Kl"), "{text}");
    assert!(text.contains("workerHostnames"), "{text}");
    let json = inspect::to_json(&e);
    assert_eq!(json["queues"][0]["counting_mode"], "lower-bound", "{json}");
    assert_eq!(
        signal_mode(&registry, &broker, "celery", "arrival_rate", "lower-bound"),
        Some(1.0)
    );

    // The operator enables notifications (the test may write; the scaler never does).
    let mut admin = server.conn(0);
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Kl")
        .query(&mut admin)
        .expect("config set");
    let e = evaluate_until(&scaler, &metadata, 20, |e| {
        arrival_mode(e) == Some(SignalMode::Exact)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let sent = consumer.join().expect("consumer");
    assert_eq!(arrival_mode(&e), Some(SignalMode::Exact), "{:?}", e.live[0]);
    assert!(!inspect::to_text(&e).contains("lower bound"));
    assert_eq!(
        signal_mode(&registry, &broker, "celery", "arrival_rate", "exact"),
        Some(1.0)
    );
    assert!(sent > 0);
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_that_is_over_stops_keeping_latency_mode_active_before_its_window_ends() {
    // 120 tasks pushed at once, then taken and acknowledged by a consumer. Their arrivals
    // stay in the 30 s rate window (4 tasks/s, λ·T = 120) for 30 s, but none came since:
    // the flow has stopped, and the trigger goes inactive once the list is empty, as KEDA's
    // redis scaler does (it stayed active until the window let the burst go).
    let server = RedisServer::start();
    let registry = Arc::new(Registry::new(settings()));
    let scaler = Scaler::new(registry, NamedConnections::new());
    let metadata = latency_trigger(server.port);
    scaler.evaluate(&metadata).await.expect("first evaluation");
    let mut c = server.conn(0);
    let mut burst = redis::pipe();
    for i in 0..120 {
        burst
            .cmd("LPUSH")
            .arg("celery")
            .arg(envelope(&format!("b{i}"), None, "", "celery"))
            .ignore();
    }
    let _: () = burst.query(&mut c).expect("burst");
    let pushed = Instant::now();
    let e = evaluate_until(&scaler, &metadata, 10, |e| e.decision.active).await;
    assert!(e.decision.active, "the burst activates: {:?}", e.decision);
    for i in 0..120 {
        let _: Vec<u8> = redis::cmd("RPOP")
            .arg("celery")
            .query(&mut c)
            .expect("rpop");
        let tag = format!("b{i}");
        deliver(
            &mut c,
            "",
            &tag,
            now(),
            &unacked_value(&tag, None, "", "celery"),
        );
        ack(&mut c, "", &tag);
    }
    let e = evaluate_until(&scaler, &metadata, 40, |e| !e.decision.active).await;
    let after = pushed.elapsed();
    assert!(!e.decision.active, "still active: {:?}", e.decision);
    assert!(
        after < Duration::from_secs(15),
        "inactive {after:?} after the burst, its rate window is 30 s: {:?}",
        e.decision
    );
}
