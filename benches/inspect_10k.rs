//! Wall time of one `celery-scaler inspect --json` (the release binary, a fresh process each
//! time) against a private `redis-server` whose `unacked` hash holds 10,000 entries of about
//! 1 KB over 3 queues (plus their `unacked_index` scores), compared in the same run with two
//! baselines: the same `inspect` on an empty queue set (DB 1 of the same server: process
//! start, connect, one sample, no entries), and `redis-cli HGETALL unacked` of the same hash
//! (the cost of just moving the 10 MB of entries to a client).
//!
//! Runs are interleaved (one of each per round, order rotating) after 2 warm-up rounds, and
//! the output of the first run is checked to count every entry. Prints median, min, max per
//! command and the median ratios; asserts nothing.
//!
//! `cargo bench --bench inspect_10k` (env `RUNS`, default 15; `ENTRIES`, default 10000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "grpc_support/mod.rs"]
mod grpc_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use grpc_support::{machine, seed_unacked, Summary, QUEUES};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if support::full_bench() { 15 } else { 2 });
    let entries: usize = std::env::var("ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if support::full_bench() { 10_000 } else { 500 });
    println!("inspect_10k: {} (at start)", machine());

    let redis = support::RedisServer::start();
    let mut conn = redis.conn(0);
    let per_queue = entries.div_ceil(QUEUES.len());
    seed_unacked(&mut conn, "", per_queue);
    for q in QUEUES {
        support::celery_data::push(&mut conn, q.as_bytes(), 10);
    }
    let hlen: usize = redis::cmd("HLEN").arg("unacked").query(&mut conn).unwrap();
    let mem: String = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("unacked")
        .query::<i64>(&mut conn)
        .map_or_else(|_| "?".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
    println!("seeded: unacked HLEN {hlen} ({mem}), unacked_index, 10 waiting per queue");

    let bin = env!("CARGO_BIN_EXE_celery-scaler");
    let queues = QUEUES.join(",");
    let inspect = |db: u8| {
        let mut c = Command::new(bin);
        c.args([
            "inspect",
            "--json",
            "--metadata",
            &format!("address={}", redis.address()),
            "--metadata",
            &format!("queues={queues}"),
            "--metadata",
            &format!("databaseIndex={db}"),
        ])
        .env("RUST_LOG", "warn");
        c
    };
    let hgetall = || {
        let mut c = Command::new("redis-cli");
        c.args(["-p", &redis.port.to_string(), "HGETALL", "unacked"]);
        c
    };
    let mut cases: Vec<(&str, Command, Vec<Duration>)> = vec![
        ("inspect --json (10k unacked)", inspect(0), vec![]),
        ("inspect --json (empty DB 1)", inspect(1), vec![]),
        ("redis-cli HGETALL unacked", hgetall(), vec![]),
    ];

    // Check once that inspect sees every entry.
    let out = inspect(0).output().expect("run inspect");
    assert!(
        out.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    let mut seen = 0;
    for q in report["queues"].as_array().expect("queues") {
        let n = |k: &str| q[k].as_u64().unwrap_or(0);
        println!(
            "  {:<8} backlog {:>3} reserved {:>5} scheduled {:>5} stale {:>5}",
            q["name"].as_str().unwrap_or("?"),
            n("backlog"),
            n("reserved"),
            n("scheduled"),
            n("stale")
        );
        seen += n("reserved") + n("scheduled") + n("stale");
    }
    println!("inspect counted {seen} of {hlen} unacked entries");

    let k = cases.len();
    for round in 0..runs + 2 {
        for j in 0..k {
            let (name, cmd, samples) = &mut cases[(round + j) % k];
            let t = Instant::now();
            let status = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run command");
            let d = t.elapsed();
            assert!(status.success(), "{name} failed: {status}");
            if round >= 2 {
                samples.push(d);
            }
        }
    }

    println!(
        "{} (at end); {runs} interleaved runs after 2 warm-up rounds",
        machine()
    );
    println!(
        "{:<30} {:>10} {:>10} {:>10} {:>10}",
        "command", "median ms", "min ms", "max ms", "ratio"
    );
    let summaries: Vec<(&str, Summary)> = cases
        .into_iter()
        .map(|(name, _, s)| (name, Summary::new(s)))
        .collect();
    let base = summaries[1].1.median();
    for (name, s) in &summaries {
        println!(
            "{name:<30} {:>10.1} {:>10.1} {:>10.1} {:>10.2}",
            ms(s.median()),
            ms(s.pct(0.0)),
            ms(s.pct(1.0)),
            s.median().as_secs_f64() / base.as_secs_f64()
        );
    }
    let full = summaries[0].1.median();
    println!(
        "RATIO inspect(10k) / inspect(empty) = {:.2}; inspect(10k) / HGETALL = {:.2}; \
         cost of 10k entries = {:.1} ms",
        full.as_secs_f64() / base.as_secs_f64(),
        full.as_secs_f64() / summaries[2].1.median().as_secs_f64(),
        ms(full.saturating_sub(base))
    );
}
