//! Live signals against a real redis-server: exact counting from keyspace notifications,
//! fallback to estimated mode (notifications off, `CONFIG` denied by ACL), the early wake of
//! a stream on the first push, worker heartbeats from real-shaped envelopes, and queue wait.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use celery_scaler::broker::{BrokerSpec, Registry, SamplerSettings, Secret, WatchSet, WatchView};
use celery_scaler::celery::Layout;
use support::celery_data::{
    ack, deliver, envelope, now, push, redelivered, redelivered_unacked_value, unacked_value,
};
use support::RedisServer;

fn settings(interval_ms: u64) -> SamplerSettings {
    SamplerSettings {
        interval: Duration::from_millis(interval_ms),
        first_sample_timeout: Duration::from_secs(10),
        max_sample_age: Duration::from_secs(30),
        signal_window: Duration::from_secs(60),
        ..SamplerSettings::default()
    }
}

fn celery_watch() -> WatchSet {
    WatchSet {
        layout: Layout::default(),
        queues: vec!["celery".into()],
        visibility_timeout_ms: 3_600_000,
        worker_hostnames: None,
    }
}

/// A private Redis and a registry sampling it every 200 ms, already watching `celery`.
async fn watching_celery() -> (RedisServer, Arc<Registry>, BrokerSpec, WatchSet) {
    let server = RedisServer::start();
    let registry = Arc::new(Registry::new(settings(200)));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let watch = celery_watch();
    registry.view(&spec, &watch).await.expect("first view");
    (server, registry, spec, watch)
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

/// Waits until the scaler's pub/sub connection has subscribed `channel` (or any pattern).
fn wait_subscribed(server: &RedisServer, channel: Option<&str>) {
    let mut c = server.conn(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = match channel {
            Some(ch) => {
                let r: (String, i64) = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(ch)
                    .query(&mut c)
                    .expect("numsub");
                r.1
            }
            None => redis::cmd("PUBSUB")
                .arg("NUMPAT")
                .query(&mut c)
                .expect("numpat"),
        };
        if n > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "scaler never subscribed {channel:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_mode_counts_lpush_and_rpop_not_rpush() {
    let server = RedisServer::start_with(&["--notify-keyspace-events", "Kl"]);
    let registry = Arc::new(Registry::new(settings(200)));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let watch = celery_watch();
    let v = until(&registry, &spec, &watch, 10, |v| v.counts[0].exact).await;
    assert!(
        v.counts[0].exact,
        "exact mode never engaged: {:?}",
        v.counts
    );
    let base = v.counts[0].clone();

    let mut c = server.conn(0);
    push(&mut c, b"celery", 20);
    let _: Vec<u8> = redis::cmd("RPOP")
        .arg("celery")
        .query(&mut c)
        .expect("rpop");
    let _: Vec<u8> = redis::cmd("RPOP")
        .arg("celery")
        .query(&mut c)
        .expect("rpop");
    let _: Vec<u8> = redis::cmd("RPOP")
        .arg("celery")
        .query(&mut c)
        .expect("rpop");
    let _: i64 = redis::cmd("RPUSH")
        .arg("celery")
        .arg(envelope("restored", None, "", "celery"))
        .query(&mut c)
        .expect("rpush");

    let v = until(&registry, &spec, &watch, 10, |v| {
        v.counts[0].dequeued - base.dequeued >= 3 && v.queues[0].backlog == 18
    })
    .await;
    let counts = &v.counts[0];
    assert!(counts.exact);
    assert_eq!(counts.arrived - base.arrived, 20, "{counts:?}");
    assert_eq!(counts.dequeued - base.dequeued, 3, "{counts:?}");
    let live = &v.live[0];
    assert_eq!(
        live.arrival_rate.map(|e| e.source.as_str()),
        Some("keyspace")
    );
    assert_eq!(live.wait.map(|e| e.source.as_str()), Some("keyspace"));
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimated_mode_without_notifications() {
    let (server, registry, spec, watch) = watching_celery().await;
    let mut c = server.conn(0);
    push(&mut c, b"celery", 5);
    // Two deliveries show up as new unacked tags: dequeues in estimated mode.
    for tag in ["d1", "d2"] {
        let _: Vec<u8> = redis::cmd("RPOP")
            .arg("celery")
            .query(&mut c)
            .expect("rpop");
        deliver(
            &mut c,
            "",
            tag,
            now(),
            &unacked_value(tag, None, "", "celery"),
        );
    }
    let v = until(&registry, &spec, &watch, 10, |v| v.counts[0].dequeued >= 2).await;
    let counts = &v.counts[0];
    assert!(!counts.exact);
    assert_eq!((counts.arrived, counts.dequeued), (5, 2), "{counts:?}");
    let live = &v.live[0];
    assert_eq!(
        live.arrival_rate.map(|e| e.source.as_str()),
        Some("conservation")
    );
    // The wait comes from the tail message's delivery tag, and grows: the tail was dated by
    // this sample at the latest, so a sample taken a second later (the sampler may run late
    // on a loaded machine: wait for one) reads at least half a second.
    let dated = v.sampled_at;
    let v = until(&registry, &spec, &watch, 10, |v| {
        v.sampled_at >= dated + 1.0
    })
    .await;
    assert!(v.sampled_at >= dated + 1.0, "no sample a second later");
    let wait = v.live[0].wait.expect("wait");
    assert_eq!(wait.source.as_str(), "tail-tag");
    assert!(wait.value >= 0.5, "{wait:?}");
    registry.shutdown().await;
}

/// A message kombu restores (warm shutdown, visibility timeout) goes back on the list and is
/// fetched again under the same tag, marked `redelivered`. Conservation read its push as a
/// new task (the scaler over-counted arrivals on every scale-down); the re-fetch of a marked
/// copy now discounts it. 8 tasks are sent in all; the restore must not make it 9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_message_is_not_counted_as_a_new_arrival() {
    let (server, registry, spec, watch) = watching_celery().await;
    let mut c = server.conn(0);
    push(&mut c, b"celery", 5);
    let fetch = |c: &mut redis::Connection| -> String {
        redis::cmd("RPOP").arg("celery").query(c).expect("rpop")
    };
    let first = fetch(&mut c);
    deliver(
        &mut c,
        "",
        "r1",
        now(),
        &unacked_value("r1", None, "", "celery"),
    );
    until(&registry, &spec, &watch, 10, |v| v.counts[0].dequeued >= 1).await;
    // The restore: out of `unacked`, RPUSHed back marked (consumed next).
    ack(&mut c, "", "r1");
    let back = redelivered(&first);
    let _: i64 = redis::cmd("RPUSH")
        .arg("celery")
        .arg(&back)
        .query(&mut c)
        .expect("rpush");
    until(&registry, &spec, &watch, 10, |v| v.counts[0].arrived >= 6).await;
    // The re-fetch of the restored copy, then 3 genuinely new tasks.
    assert_eq!(fetch(&mut c), back);
    deliver(
        &mut c,
        "",
        "r1",
        now(),
        &redelivered_unacked_value("r1", "", "celery"),
    );
    until(&registry, &spec, &watch, 10, |v| v.counts[0].dequeued >= 2).await;
    push(&mut c, b"celery", 3);
    until(&registry, &spec, &watch, 10, |v| v.counts[0].arrived >= 8).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let v = registry.view(&spec, &watch).await.expect("view");
    let counts = &v.counts[0];
    assert!(!counts.exact);
    assert_eq!((counts.arrived, counts.dequeued), (8, 2), "{counts:?}");
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimated_mode_counts_exactly_while_the_list_has_a_backlog() {
    // No notifications, and consumers that leave nothing in `unacked` (plain RPOP): only
    // where last tick's head message is now (LPOS) tells how many came and went.
    let (server, registry, spec, watch) = watching_celery().await;
    let mut c = server.conn(0);
    // A backlog deep enough that no tick drains past the previous tick's head.
    push(&mut c, b"celery", 100);
    let v = until(&registry, &spec, &watch, 10, |v| {
        v.live[0].arrival_rate.map(|e| e.source.as_str()) == Some("list-position")
    })
    .await;
    assert_eq!(
        v.live[0].arrival_rate.map(|e| e.source.as_str()),
        Some("list-position"),
        "{:?}",
        v.live[0]
    );
    let base = v.counts[0].clone();
    let rounds = 40;
    for round in 0..rounds {
        // Unique messages, as kombu's are (each carries a fresh delivery tag).
        for i in 0..3 {
            let _: i64 = redis::cmd("LPUSH")
                .arg("celery")
                .arg(envelope(&format!("r{round}-{i}"), None, "", "celery"))
                .query(&mut c)
                .expect("lpush");
        }
        for _ in 0..2 {
            let _: Vec<u8> = redis::cmd("RPOP")
                .arg("celery")
                .query(&mut c)
                .expect("rpop");
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let backlog = 100 + rounds;
    let v = until(&registry, &spec, &watch, 10, |v| {
        v.queues[0].backlog == backlog && v.counts[0].arrived - base.arrived >= 3 * rounds
    })
    .await;
    let counts = &v.counts[0];
    assert!(!counts.exact, "no keyspace notifications here");
    assert_eq!(
        (
            counts.arrived - base.arrived,
            counts.dequeued - base.dequeued
        ),
        (3 * rounds, 2 * rounds),
        "{counts:?}"
    );
    assert_eq!(
        v.live[0].dequeue_rate.map(|e| e.source.as_str()),
        Some("list-position")
    );
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_denied_by_acl_means_estimated_mode() {
    // Notifications are on, but the scaler's user may not read CONFIG.
    let server = RedisServer::start_with(&["--notify-keyspace-events", "Kl"]);
    let mut admin = server.conn(0);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("scaler")
        .arg("on")
        .arg(">scaler-pw")
        .arg("~*")
        .arg("&*")
        .arg("+@read")
        .arg("+@connection")
        .arg("+subscribe")
        .arg("+psubscribe")
        .arg("+unsubscribe")
        .arg("+punsubscribe")
        .query(&mut admin)
        .expect("acl setuser");
    let registry = Arc::new(Registry::new(settings(200)));
    let mut spec = BrokerSpec::direct("127.0.0.1", server.port);
    spec.username = Some("scaler".into());
    spec.password = Some(Secret::new("scaler-pw"));
    let watch = celery_watch();
    registry.view(&spec, &watch).await.expect("first view");
    push(&mut admin, b"celery", 3);
    let v = until(&registry, &spec, &watch, 5, |v| v.counts[0].arrived >= 3).await;
    assert_eq!(v.queues[0].backlog, 3);
    assert!(!v.counts[0].exact, "{:?}", v.counts);
    assert_eq!(v.counts[0].arrived, 3);
    assert_eq!(
        v.live[0].arrival_rate.map(|e| e.source.as_str()),
        Some("conservation")
    );
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_push_on_an_idle_watch_set_wakes_the_stream_before_the_next_tick() {
    let server = RedisServer::start_with(&["--notify-keyspace-events", "Kl"]);
    let tick = Duration::from_secs(5);
    let registry = Arc::new(Registry::new(SamplerSettings {
        interval: tick,
        ..settings(5000)
    }));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let watch = celery_watch();
    let mut sub = registry.subscribe(&spec, &watch).await.expect("subscribe");
    wait_subscribed(&server, Some("__keyspace@0__:celery"));
    let mut c = server.conn(0);
    let pushed = Instant::now();
    push(&mut c, b"celery", 1);
    let view = tokio::time::timeout(tick * 2, sub.next())
        .await
        .expect("stream answered")
        .expect("view");
    let latency = pushed.elapsed();
    assert_eq!(view.queues[0].backlog, 1);
    // Behaviour, not speed: the stream woke on the push, not on the 5 s tick.
    assert!(latency < tick / 2, "woke after {latency:?}");
    println!("push-to-stream latency: {latency:?}");
    drop(sub);
    registry.shutdown().await;
}

/// kombu's envelope of a worker event whose body is `body` (base64 of JSON).
fn worker_event(body: serde_json::Value) -> String {
    let raw = body.to_string();
    serde_json::json!({
        "body": b64(raw.as_bytes()),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": body["hostname"]},
        "properties": {"delivery_mode": 1,
            "delivery_info": {"exchange": "celeryev", "routing_key": "worker.heartbeat"},
            "priority": 0, "body_encoding": "base64", "delivery_tag": "0f27a1f5-aa"}
    })
    .to_string()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn heartbeat(host: &str, kind: &str, active: u64, processed: u64) -> String {
    worker_event(serde_json::json!({
        "hostname": host, "utcoffset": 0.0, "pid": 15529, "clock": 2, "freq": 2.0,
        "active": active, "processed": processed, "loadavg": [0.1, 0.1, 0.1],
        "sw_ident": "py-celery", "sw_ver": "5.7.0", "sw_sys": "Linux",
        "timestamp": now(), "type": kind
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_give_running_and_service_time_for_matching_workers() {
    let (server, registry, spec, watch) = watching_celery().await;
    wait_subscribed(&server, None);
    let mut c = server.conn(0);
    let publish = |c: &mut redis::Connection, payload: String| {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("/0.celeryev/worker.heartbeat")
            .arg(payload)
            .query(c)
            .expect("publish");
    };
    publish(&mut c, heartbeat("celery@w-1", "worker-heartbeat", 3, 0));
    publish(&mut c, heartbeat("other@x", "worker-heartbeat", 9, 0));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    publish(&mut c, heartbeat("celery@w-1", "worker-heartbeat", 3, 10));
    let v = until(&registry, &spec, &watch, 5, |v| {
        v.live_signals(Some("celery@w-"))[0]
            .service_time
            .is_some_and(|e| e.source.as_str() == "heartbeat")
    })
    .await;
    let live = v.live_signals(Some("celery@w-*"));
    assert_eq!(
        live[0].running.map(|e| (e.value, e.source.as_str())),
        Some((3.0, "heartbeat"))
    );
    let s = live[0].service_time.expect("service time");
    // 3 running / ~10 starts per second.
    assert!(s.value > 0.15 && s.value < 0.6, "{s:?}");
    assert_eq!(v.live_signals(None)[0].running, None);
    assert_eq!(v.live_signals(Some("nobody@"))[0].running, None);

    publish(&mut c, heartbeat("celery@w-1", "worker-offline", 0, 10));
    let v = until(&registry, &spec, &watch, 5, |v| {
        v.live_signals(Some("celery@w-"))[0].running.is_none()
    })
    .await;
    assert_eq!(v.live_signals(Some("celery@w-"))[0].running, None);
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_wait_is_the_age_of_the_oldest_push() {
    let server = RedisServer::start_with(&["--notify-keyspace-events", "Kl"]);
    let registry = Arc::new(Registry::new(settings(200)));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let watch = celery_watch();
    until(&registry, &spec, &watch, 10, |v| v.counts[0].exact).await;
    let mut c = server.conn(0);
    // Each push between two clock readings: the true age at the sample's own time lies
    // between `sampled_at − after` and `sampled_at − before`.
    let timed_push = |c: &mut redis::Connection| {
        let before = now();
        push(c, b"celery", 1);
        (before, now())
    };
    let first = timed_push(&mut c);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = timed_push(&mut c);
    // The scaler stamps a push when it hears the notification and ages it at the tick,
    // before the snapshot's `sampled_at`: the wait is at most the age since the push (half
    // a tick more if a late notification left the push to the length check, dated from the
    // middle of two ticks), and under it by the notification's delivery (a second at most,
    // even on a loaded machine). Keeping the popped message's age would be 1.5 s over.
    let near = |wait: f64, sampled_at: f64, (before, after): (f64, f64)| {
        wait >= sampled_at - after - 1.0 && wait <= sampled_at - before + 0.15
    };
    let v = until(&registry, &spec, &watch, 5, |v| v.queues[0].backlog == 2).await;
    let wait = v.live[0].wait.expect("wait");
    assert_eq!(wait.source.as_str(), "keyspace");
    assert!(
        near(wait.value, v.sampled_at, first),
        "wait {wait:?} at {}, oldest pushed {first:?}",
        v.sampled_at
    );
    // The oldest leaves: the wait is the second message's age (1.5 s less than the first's).
    let _: Vec<u8> = redis::cmd("RPOP")
        .arg("celery")
        .query(&mut c)
        .expect("rpop");
    let v = until(&registry, &spec, &watch, 5, |v| v.queues[0].backlog == 1).await;
    let wait = v.live[0].wait.expect("wait").value;
    assert!(
        near(wait, v.sampled_at, second),
        "wait {wait} at {} after the oldest left, second pushed {second:?}",
        v.sampled_at
    );
    registry.shutdown().await;
}
