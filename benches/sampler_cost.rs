//! Cost of the background sampler against a private local Redis, each figure reported as a
//! ratio to a baseline measured in the same run; asserts nothing:
//!
//! 1. sampler time per tick vs `unacked` size (1k / 10k / 100k entries; baseline: empty);
//! 2. Redis commands per tick vs number of watch sets over the same 10 queues (1 vs 1,000);
//! 3. RSS before and after churning watch sets (register, let expire, repeat).
//!
//! `cargo bench --bench sampler_cost` (env `CHURN_SECS`, default 60). Under `cargo test` it
//! runs a smoke version (1k entries, 100 watch sets, 3 s of churn).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use celery_scaler::broker::{BrokerSpec, Registry, SamplerSettings, WatchSet};
use celery_scaler::celery::Layout;
use support::celery_data::{key, unacked_value};
use support::RedisServer;

fn metric(registry: &Registry, name: &str, broker: &str) -> (f64, f64) {
    for f in registry.metrics().gather() {
        if f.name() != name {
            continue;
        }
        for m in f.get_metric() {
            if m.get_label().iter().any(|l| l.value() == broker) {
                if let Some(h) = m.get_histogram().as_ref() {
                    if h.get_sample_count() > 0 {
                        return (h.get_sample_sum(), h.get_sample_count() as f64);
                    }
                }
                return (m.get_counter().value(), 1.0);
            }
        }
    }
    (0.0, 0.0)
}

fn settings() -> SamplerSettings {
    SamplerSettings {
        interval: Duration::from_millis(250),
        first_sample_timeout: Duration::from_secs(120),
        max_sample_age: Duration::from_secs(120),
        reconcile_period: Duration::from_secs(3600),
        ..SamplerSettings::default()
    }
}

fn watch(queues: &[String], vt_ms: u64) -> WatchSet {
    WatchSet {
        layout: Layout::default(),
        queues: queues.to_vec(),
        visibility_timeout_ms: vt_ms,
        worker_hostnames: None,
    }
}

fn fill_unacked(c: &mut redis::Connection, from: usize, to: usize) {
    let now = support::celery_data::now() - 10.0;
    for chunk in (from..to).collect::<Vec<_>>().chunks(2000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let tag = format!("tag-{i}");
            pipe.cmd("ZADD")
                .arg(key("", "unacked_index"))
                .arg(now - *i as f64 * 1e-4)
                .arg(&tag)
                .ignore();
            pipe.cmd("HSET")
                .arg(key("", "unacked"))
                .arg(&tag)
                .arg(unacked_value(&tag, None, "", "celery"))
                .ignore();
        }
        let _: () = pipe.query(c).expect("fill");
    }
}

/// Mean sample duration (s) and commands per tick over `ticks` steady ticks.
async fn steady(
    registry: &Arc<Registry>,
    spec: &BrokerSpec,
    w: &WatchSet,
    ticks: usize,
) -> (f64, f64) {
    let label = spec.label();
    let mut sub = registry.subscribe(spec, w).await.expect("subscribe");
    sub.next().await.expect("tick");
    sub.next().await.expect("tick");
    let (s0, n0) = metric(registry, "celery_scaler_sample_duration_seconds", &label);
    let (c0, _) = metric(registry, "celery_scaler_redis_commands_total", &label);
    for _ in 0..ticks {
        sub.next().await.expect("tick");
    }
    let (s1, n1) = metric(registry, "celery_scaler_sample_duration_seconds", &label);
    let (c1, _) = metric(registry, "celery_scaler_redis_commands_total", &label);
    let n = (n1 - n0).max(1.0);
    ((s1 - s0) / n, (c1 - c0) / n)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = support::full_bench();
    let churn_secs: u64 = std::env::var("CHURN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 60 } else { 3 });
    let sizes: &[usize] = if full {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000]
    };
    let queues: Vec<String> = (0..10).map(|i| format!("q{i}")).collect();

    println!("## sampler time per tick vs unacked size");
    let server = RedisServer::start();
    let mut c = server.conn(0);
    let registry = Arc::new(Registry::new(settings()));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let w = watch(&queues, 3_600_000);
    let (base_t, base_c) = steady(&registry, &spec, &w, 12).await;
    println!(
        "unacked {:>7}: {:>8.3} ms/tick  {:>5.1} commands/tick  (baseline)",
        0,
        base_t * 1e3,
        base_c
    );
    let mut filled = 0;
    for &size in sizes {
        fill_unacked(&mut c, filled, size);
        filled = size;
        // Let the tracker read the new entries, then measure steady ticks.
        let started = Instant::now();
        let deadline = started + Duration::from_secs(300);
        while registry
            .view(&spec, &w)
            .await
            .expect("view")
            .queues
            .is_empty()
            || Instant::now() < started + Duration::from_secs(2)
        {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (t, cmds) = steady(&registry, &spec, &w, 12).await;
        println!(
            "unacked {:>7}: {:>8.3} ms/tick  {:>5.1} commands/tick  ratio {:.2}x time, {:.2}x commands",
            size,
            t * 1e3,
            cmds,
            t / base_t.max(1e-9),
            cmds / base_c.max(1e-9)
        );
    }
    registry.shutdown().await;
    drop(server);

    let sets: u64 = if full { 1000 } else { 100 };
    println!("## commands per tick vs watch sets over the same 10 queues");
    let server = RedisServer::start();
    let registry = Arc::new(Registry::new(settings()));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let (_, one) = steady(&registry, &spec, &watch(&queues, 1000), 12).await;
    let mut subs = Vec::new();
    for i in 0..sets - 1 {
        // Distinct watch sets (another visibility timeout) over the same keys.
        subs.push(
            registry
                .subscribe(&spec, &watch(&queues, 2000 + i))
                .await
                .expect("subscribe"),
        );
    }
    let (_, many) = steady(&registry, &spec, &watch(&queues, 1000), 12).await;
    println!(
        "1 watch set: {one:.1} commands/tick; {sets} watch sets: {many:.1} commands/tick; ratio {:.3}",
        many / one.max(1e-9)
    );
    drop(subs);
    registry.shutdown().await;

    println!("## RSS while churning watch sets ({churn_secs} s)");
    let registry = Arc::new(Registry::new(SamplerSettings {
        idle_expiry: Duration::from_secs(2),
        ..settings()
    }));
    // Warm up: one round of churn so allocator pools exist before the baseline.
    let mut vt = 10_000u64;
    for _ in 0..200 {
        vt += 1;
        registry
            .view(&spec, &watch(&queues, vt))
            .await
            .expect("view");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = rss_kib();
    let end = Instant::now() + Duration::from_secs(churn_secs);
    let mut registered = 0u64;
    while Instant::now() < end {
        for _ in 0..50 {
            vt += 1;
            let q: Vec<String> = (0..10).map(|i| format!("q{}", (vt + i) % 40)).collect();
            registry.view(&spec, &watch(&q, vt)).await.expect("view");
            registered += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib();
    println!(
        "registered {registered} watch sets (expiring after 2 s idle): RSS {before} KiB before, {after} KiB after; ratio {:.3}",
        after as f64 / before.max(1) as f64
    );
    registry.shutdown().await;
    drop(server);

    lpos_cost(if full { 100_000 } else { 1_000 });
}

/// Median microseconds of `n` round trips of `cmd`.
fn median_us(c: &mut redis::Connection, cmd: &redis::Cmd, n: usize) -> f64 {
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let started = Instant::now();
            let _: redis::Value = cmd.query(c).unwrap();
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[n / 2]
}

/// What estimated-mode counting costs the server: `LPOS` of last tick's head message, which
/// lies as deep as the number of messages pushed since, vs an `LLEN` round trip.
fn lpos_cost(len: usize) {
    println!("## LPOS of the previous head vs messages pushed since ({len} queued messages)");
    let server = RedisServer::start();
    let mut c = server.conn(0);
    for chunk in (0..len).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("LPUSH")
                .arg("q")
                .arg(support::celery_data::envelope(
                    &format!("tag-{i:08}"),
                    None,
                    "",
                    "q",
                ))
                .ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }
    let llen = median_us(&mut c, redis::cmd("LLEN").arg("q"), 200);
    println!("LLEN baseline: {llen:.1} us");
    for depth in [0usize, 100, 1_000, 10_000, len - 1] {
        if depth >= len {
            continue;
        }
        let anchor: Vec<u8> = redis::cmd("LINDEX")
            .arg("q")
            .arg(depth)
            .query(&mut c)
            .unwrap();
        let mut lpos = redis::cmd("LPOS");
        lpos.arg("q").arg(anchor).arg("MAXLEN").arg(100_000);
        let found: Option<u64> = lpos.query(&mut c).unwrap();
        assert_eq!(found, Some(depth as u64));
        let us = median_us(&mut c, &lpos, if depth >= 10_000 { 20 } else { 200 });
        println!(
            "pushed since last tick {depth:>6}: LPOS {us:>9.1} us  ratio {:.2}x LLEN",
            us / llen.max(1e-9)
        );
    }
}
