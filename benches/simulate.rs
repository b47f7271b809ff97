//! Simulator speed: one simulated day at 50 tasks/s (latency policy on real signals) against a baseline
//! measured in the same run — generating the same arrivals and pushing/popping them through
//! a binary heap, the least any event-driven simulation of that day must do. Prints the
//! ratio; the target (issue 5) is a day in under 10 s on one core. Under `cargo test
//! --all-targets` (no `--bench` argument) it simulates one hour instead of the day: a smoke
//! run of the same code, not a measurement (a debug-build day took a minute of CI).

use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use celery_scaler::simulate::rng::Rng;
use celery_scaler::simulate::{
    latency_settings, simulate, PolicyKind, PolicyRun, Scenario, Signals,
};
use criterion::{criterion_group, criterion_main, Criterion};

const DAY: &str = r#"
name = "day-50"
seed = 7
duration = 86400
drain = 600
target_latency = 10
[keda]
max_replicas = 100
[workers]
concurrency = 8
prefetch_multiplier = 1
acks_late = true
startup = { kind = "log-normal", median = 15, sigma = 0.3 }
[[queues]]
name = "celery"
duration = { kind = "exponential", mean = 0.5 }
arrivals = [{ kind = "diurnal", mean = 50, amplitude = 0.5 }]
"#;

fn baseline(n: u64) -> f64 {
    let mut rng = Rng::new(7);
    let mut heap = BinaryHeap::new();
    let mut t = 0.0f64;
    let mut acc = 0.0;
    for i in 0..n {
        t += rng.exponential(0.02);
        heap.push(std::cmp::Reverse((
            ((t + rng.exponential(0.5)) * 1e6) as u64,
            i,
        )));
        if heap.len() > 64 {
            if let Some(std::cmp::Reverse((x, _))) = heap.pop() {
                acc += x as f64;
            }
        }
    }
    acc
}

fn bench(c: &mut Criterion) {
    let sc = match Scenario::parse(DAY) {
        Ok(s) => s,
        Err(e) => panic!("bench scenario: {e}"),
    };
    let run = PolicyRun {
        label: "latency".into(),
        kind: PolicyKind::Ours(latency_settings(&sc), Signals::Real),
    };
    let (sc, span) = if std::env::args().any(|a| a == "--bench") {
        (sc, "day")
    } else {
        match Scenario::parse(&DAY.replace("duration = 86400", "duration = 3600")) {
            Ok(hour) => (hour, "hour (smoke run, not a measurement)"),
            Err(e) => panic!("bench scenario: {e}"),
        }
    };
    let started = Instant::now();
    let out = simulate(&sc, &run).map_err(|e| e.to_string());
    let day = started.elapsed();
    let tasks = out.as_ref().map_or(0, |o| o.waits.len() as u64);
    let started = Instant::now();
    std::hint::black_box(baseline(tasks));
    let base = started.elapsed();
    println!(
        "simulated {span} at 50 tasks/s: {tasks} tasks in {:.2} s; baseline (arrivals through a heap) {:.2} s; ratio {:.1}x; target < 10 s for the day",
        day.as_secs_f64(),
        base.as_secs_f64(),
        day.as_secs_f64() / base.as_secs_f64().max(1e-9)
    );
    let mut g = c.benchmark_group("simulate");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let hour = Scenario::parse(&DAY.replace("duration = 86400", "duration = 3600"))
        .map_err(|e| e.to_string());
    if let Ok(hour) = hour {
        g.bench_function("hour_at_50_per_s", |b| {
            b.iter(|| simulate(&hour, &run).map(|o| o.waits.len()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
