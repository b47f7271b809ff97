//! Broker sampler against a real redis-server: exact backlog and in-flight values from
//! Celery-shaped data, incremental tracking of `unacked` across ticks, and bounded Redis
//! commands per steady tick with 10k+ entries.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use celery_scaler::broker::{BrokerSpec, Registry, SamplerSettings, WatchSet};
use celery_scaler::celery::Layout;
use celery_scaler::signals::QueueSignals;
use support::celery_data::{ack, bind, deliver, iso, key, now, push, sub_key, unacked_value, SEP};
use support::RedisServer;

fn fast() -> SamplerSettings {
    support::fast_sampler(Duration::from_millis(200))
}

fn q(name: &str, backlog: u64, reserved: u64, scheduled: u64, stale: u64) -> QueueSignals {
    QueueSignals {
        name: name.into(),
        backlog,
        reserved,
        scheduled,
        stale,
    }
}

/// A counter or gauge of the registry's metrics for `broker`.
fn metric(registry: &Registry, name: &str, broker: &str) -> f64 {
    registry
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
        .sum()
}

#[tokio::test]
async fn exact_values_from_celery_shaped_data() {
    let server = RedisServer::start();
    let mut c = server.conn(3);
    let p = "myapp:";
    // Default layout: bare key + sub-keys 3, 6, 9.
    push(&mut c, &key(p, "celery"), 4);
    push(&mut c, &sub_key(p, "celery", SEP, 3), 2);
    push(&mut c, &sub_key(p, "celery", SEP, 9), 1);
    push(&mut c, &key(p, "qa"), 5);
    // A key of another queue that a SCAN celery* would wrongly count.
    push(&mut c, &key(p, "celery_high"), 7);
    // Custom layout: sep ':' and steps 0..9 (same prefix).
    push(&mut c, &key(p, "qten"), 1);
    push(&mut c, &sub_key(p, "qten", b":", 1), 2);
    push(&mut c, &sub_key(p, "qten", b":", 8), 3);
    // Not counted: another DB and no prefix.
    push(&mut server.conn(0), b"celery", 9);

    let t = now();
    let v = |tag: &str, eta: Option<f64>, ex: &str, rk: &str| {
        unacked_value(tag, eta.map(iso).as_deref(), ex, rk)
    };
    deliver(&mut c, p, "r1", t - 1.0, &v("r1", None, "", "celery"));
    deliver(
        &mut c,
        p,
        "r2",
        t - 2.0,
        &v("r2", Some(t - 100.0), "", "celery"),
    );
    deliver(
        &mut c,
        p,
        "s1",
        t - 3.0,
        &v("s1", Some(t + 600.0), "", "celery"),
    );
    deliver(&mut c, p, "old", t - 4000.0, &v("old", None, "", "celery"));
    deliver(
        &mut c,
        p,
        "oldeta",
        t - 4000.0,
        &v("oldeta", Some(t + 600.0), "", "celery"),
    );
    deliver(&mut c, p, "qa1", t - 1.0, &v("qa1", None, "", "qa"));
    deliver(&mut c, p, "x1", t - 1.0, &v("x1", None, "myex", "rk.x"));
    deliver(
        &mut c,
        p,
        "x2",
        t - 1.0,
        &v("x2", None, "myex", "rk.nobody"),
    );
    bind(&mut c, p, "myex", "rk.x", "qx", SEP);
    deliver(&mut c, p, "bad1", t - 1.0, "not json");
    deliver(
        &mut c,
        p,
        "bad2",
        t - 1.0,
        r#"[{"headers": {"eta": "tomorrow"}}, "", "celery"]"#,
    );
    deliver(
        &mut c,
        p,
        "other",
        t - 1.0,
        &v("other", None, "", "unwatched"),
    );
    // In the index but not in the hash: dropped, not counted.
    let _: i64 = redis::cmd("ZADD")
        .arg(key(p, "unacked_index"))
        .arg(t - 1.0)
        .arg("ghost")
        .query(&mut c)
        .expect("zadd");

    let registry = Registry::new(fast());
    let mut spec = BrokerSpec::direct("127.0.0.1", server.port);
    spec.db = 3;
    let layout = Layout {
        prefix: p.as_bytes().to_vec(),
        ..Layout::default()
    };
    let watch = WatchSet {
        layout: layout.clone(),
        queues: vec!["celery".into(), "qa".into(), "qx".into(), "empty".into()],
        visibility_timeout_ms: 3_600_000,
        worker_hostnames: None,
    };
    let view = registry.view(&spec, &watch).await.expect("view");
    assert_eq!(view.broker, format!("127.0.0.1:{}/3", server.port));
    assert_eq!(
        view.queues,
        vec![
            // r1, r2 and bad2 (an ETA that does not parse counts as reserved).
            q("celery", 7, 3, 2, 1),
            q("qa", 5, 1, 0, 0),
            q("qx", 0, 1, 0, 0),
            q("empty", 0, 0, 0, 0),
        ]
    );
    let ten = WatchSet {
        layout: Layout {
            prefix: p.as_bytes().to_vec(),
            separator: b":".to_vec(),
            priority_steps: (0..10).collect(),
        },
        queues: vec!["qten".into()],
        visibility_timeout_ms: 1_000,
        worker_hostnames: None,
    };
    let view = registry.view(&spec, &ten).await.expect("view");
    assert_eq!(view.queues, vec![q("qten", 6, 0, 0, 0)]);
    // A shorter visibility timeout on the same queue makes more entries stale.
    let short = WatchSet {
        visibility_timeout_ms: 1_500,
        ..watch.clone()
    };
    let view = registry.view(&spec, &short).await.expect("view");
    assert_eq!(view.queues[0], q("celery", 7, 2, 2, 2));
    let label = spec.label();
    assert_eq!(
        metric(&registry, "celery_scaler_unacked_malformed_total", &label),
        1.0
    );
    assert_eq!(
        metric(&registry, "celery_scaler_broker_suspect_data_total", &label),
        1.0
    );
    assert!(metric(&registry, "celery_scaler_watch_sets", &label) >= 2.0);
    registry.shutdown().await;
    assert_eq!(
        metric(&registry, "celery_scaler_watch_sets", &label),
        0.0,
        "series removed on stop"
    );
}

#[tokio::test]
async fn tracks_entries_added_and_removed_between_ticks() {
    let server = RedisServer::start();
    let mut c = server.conn(0);
    let t = now();
    // 600 entries spread over an hour so removals land in the middle of the score range.
    for i in 0..600 {
        let tag = format!("t{i}");
        let score = t - 3000.0 + f64::from(i) * 5.0;
        deliver(
            &mut c,
            "",
            &tag,
            score,
            &unacked_value(&tag, None, "", "celery"),
        );
    }
    let registry = Arc::new(Registry::new(fast()));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let watch = support::default_watch(&["celery"]);
    let mut sub = registry.subscribe(&spec, &watch).await.expect("subscribe");
    let view = registry.view(&spec, &watch).await.expect("view");
    assert_eq!(view.queues[0].reserved, 600);

    // Remove from the middle and the start, add new ones (one with an old score from a
    // worker whose clock is behind), and re-deliver one tag with a new score.
    for i in (100..400).step_by(3) {
        ack(&mut c, "", &format!("t{i}"));
    }
    ack(&mut c, "", "t0");
    for i in 0..25 {
        let tag = format!("n{i}");
        deliver(
            &mut c,
            "",
            &tag,
            now(),
            &unacked_value(&tag, Some(&iso(now() + 900.0)), "", "celery"),
        );
    }
    deliver(
        &mut c,
        "",
        "skewed",
        t - 1500.0,
        &unacked_value("skewed", None, "", "celery"),
    );
    deliver(
        &mut c,
        "",
        "t599",
        now(),
        &unacked_value("t599", Some(&iso(now() + 900.0)), "", "celery"),
    );

    let want = QueueSignals {
        name: "celery".into(),
        backlog: 0,
        reserved: 600 - 100 - 1 + 1 - 1,
        scheduled: 25 + 1,
        stale: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = sub.next().await.expect("next");
        if view.queues[0] == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never converged: {:?}",
            view.queues[0]
        );
    }
    // Stays exact on later ticks (no drift), and the hash itself agrees.
    let view = sub.next().await.expect("next");
    assert_eq!(view.queues[0], want);
    let hlen: u64 = redis::cmd("HLEN")
        .arg("unacked")
        .query(&mut c)
        .expect("hlen");
    assert_eq!(hlen, want.reserved + want.scheduled);
    drop(sub);
    registry.shutdown().await;
}

#[tokio::test]
async fn commands_per_steady_tick_do_not_grow_with_the_hash() {
    let server = RedisServer::start();
    let mut c = server.conn(0);
    let t = now();
    let write = |c: &mut redis::Connection, from: usize, to: usize| {
        let mut pipe = redis::pipe();
        for i in from..to {
            let tag = format!("{i:08}-0000-4000-8000-000000000000");
            let score = t - 3500.0 + (i as f64) * 0.05;
            pipe.cmd("ZADD")
                .arg("unacked_index")
                .arg(score)
                .arg(&tag)
                .ignore();
            pipe.cmd("HSET")
                .arg("unacked")
                .arg(&tag)
                .arg(unacked_value(&tag, None, "", "celery"))
                .ignore();
        }
        let _: () = pipe.query(c).expect("bulk write");
    };
    write(&mut c, 0, 10_000);
    let settings = SamplerSettings {
        interval: Duration::from_millis(250),
        ..fast()
    };
    let registry = Arc::new(Registry::new(settings));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let label = spec.label();
    let watch = support::default_watch(&["celery"]);
    let started = Instant::now();
    let mut sub = registry.subscribe(&spec, &watch).await.expect("subscribe");
    eprintln!(
        "first sample with 10k unacked entries: {:?}",
        started.elapsed()
    );
    let measure = async |sub: &mut celery_scaler::broker::Subscription| -> (f64, f64) {
        sub.next().await.expect("tick");
        let before = metric(&registry, "celery_scaler_redis_commands_total", &label);
        let t0 = Instant::now();
        for _ in 0..4 {
            let view = sub.next().await.expect("tick");
            assert_eq!(view.queues[0].backlog, 0);
        }
        let per = (metric(&registry, "celery_scaler_redis_commands_total", &label) - before) / 4.0;
        (per, t0.elapsed().as_secs_f64() / 4.0)
    };
    let (at_10k, _) = measure(&mut sub).await;
    let view = registry.view(&spec, &watch).await.expect("view");
    assert_eq!(view.queues[0].reserved, 10_000);
    write(&mut c, 10_000, 20_000);
    let deadline = Instant::now() + Duration::from_secs(20);
    while registry.view(&spec, &watch).await.expect("view").queues[0].reserved != 20_000 {
        assert!(Instant::now() < deadline, "20k never seen");
        sub.next().await.expect("tick");
    }
    let (at_20k, _) = measure(&mut sub).await;
    eprintln!("commands per steady tick: {at_10k} at 10k entries, {at_20k} at 20k entries");
    // 4 LLENs + 1 window ZRANGE + at most 32 range ZCOUNTs.
    assert!(at_10k <= 37.0 && at_20k <= 37.0, "{at_10k} {at_20k}");
    assert_eq!(
        at_10k, at_20k,
        "commands per steady tick must not grow with the hash"
    );
    drop(sub);
    registry.shutdown().await;
}

#[tokio::test]
async fn reconciliation_catches_what_counts_cannot() {
    let server = RedisServer::start();
    let mut c = server.conn(0);
    let t = now();
    for i in 0..50 {
        let tag = format!("t{i}");
        deliver(
            &mut c,
            "",
            &tag,
            t - 500.0 + f64::from(i),
            &unacked_value(&tag, None, "", "celery"),
        );
    }
    let registry = Arc::new(Registry::new(SamplerSettings {
        reconcile_period: Duration::from_millis(800),
        ..fast()
    }));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let watch = WatchSet {
        layout: Layout::default(),
        queues: vec!["celery".into(), "qa".into()],
        visibility_timeout_ms: 3_600_000,
        worker_hostnames: None,
    };
    let mut sub = registry.subscribe(&spec, &watch).await.expect("subscribe");
    // One removal and one insertion (old score, from a worker whose clock lags) in the same
    // score range between two ticks: every range count stays equal.
    ack(&mut c, "", "t10");
    deliver(
        &mut c,
        "",
        "lagging",
        t - 489.5,
        &unacked_value("lagging", None, "", "qa"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = sub.next().await.expect("tick");
        if v.queues[0].reserved == 49 && v.queues[1].reserved == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reconciliation never caught it: {:?}",
            v.queues
        );
    }
    drop(sub);
    registry.shutdown().await;
}

fn histogram_sum(registry: &Registry, name: &str, broker: &str) -> f64 {
    registry
        .metrics()
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| m.get_label().iter().any(|l| l.value() == broker))
        .map(|m| m.get_histogram().get_sample_sum())
        .sum()
}

/// Measurement, not a behaviour test: `cargo test --test broker_sampler -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn measure_sampling_with_100k_unacked_entries() {
    let server = RedisServer::start();
    let mut c = server.conn(0);
    let t = now();
    for chunk in 0..100 {
        let mut pipe = redis::pipe();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            let tag = format!("{i:08}-0000-4000-8000-000000000000");
            pipe.cmd("ZADD")
                .arg("unacked_index")
                .arg(t - 3000.0 + (i as f64) * 0.03)
                .arg(&tag)
                .ignore();
            pipe.cmd("HSET")
                .arg("unacked")
                .arg(&tag)
                .arg(unacked_value(&tag, None, "", "celery"))
                .ignore();
        }
        let _: () = pipe.query(&mut c).expect("bulk write");
    }
    let registry = Arc::new(Registry::new(SamplerSettings {
        first_sample_timeout: Duration::from_secs(60),
        command_timeout: Duration::from_secs(10),
        ..fast()
    }));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let label = spec.label();
    let watch = support::default_watch(&["celery"]);
    let started = Instant::now();
    let mut sub = registry.subscribe(&spec, &watch).await.expect("subscribe");
    eprintln!(
        "first sample (full read of 100k entries): {:?}",
        started.elapsed()
    );
    sub.next().await.expect("tick");
    let before = metric(&registry, "celery_scaler_redis_commands_total", &label);
    let sum_before = histogram_sum(&registry, "celery_scaler_sample_duration_seconds", &label);
    let mut ticks = 0.0;
    for i in 0..5u64 {
        ack(
            &mut c,
            "",
            &format!("{:08}-0000-4000-8000-000000000000", i * 17_000 + 3),
        );
        loop {
            ticks += 1.0;
            if sub.next().await.expect("tick").queues[0].reserved == 100_000 - i - 1 {
                break;
            }
        }
    }
    let sum_after = histogram_sum(&registry, "celery_scaler_sample_duration_seconds", &label);
    let per = (metric(&registry, "celery_scaler_redis_commands_total", &label) - before) / ticks;
    eprintln!(
        "100k entries, one ack in the middle per tick: {per} commands per tick, {:.1} ms per sample",
        (sum_after - sum_before) / ticks * 1000.0
    );
    drop(sub);
    registry.shutdown().await;
}
