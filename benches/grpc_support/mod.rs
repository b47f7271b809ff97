//! Shared by the gRPC and `inspect` benchmarks: Celery-shaped seed data on a private
//! `redis-server`, trigger metadata for it, percentile summaries and CPU-time readings.
//!
//! Included with `#[path]` (not a bench target of its own); every bench uses a subset.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use crate::support::celery_data::{self, deliver, iso, now, sub_key, unacked_value, SEP};

/// The queues every benchmark watches.
pub const QUEUES: [&str; 3] = ["default", "emails", "reports"];

/// Trigger metadata for [`QUEUES`] on the broker at `address` (a `host:port`).
pub fn metadata(address: &str) -> HashMap<String, String> {
    [
        ("address", address.to_string()),
        ("queues", QUEUES.join(",")),
        ("listLength", "5".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A small, realistic broker: every queue has messages on its bare key and on two priority
/// sub-keys, and `unacked` holds `unacked_per_queue` entries per queue (one in ten with a
/// future ETA, one in ten delivered two hours ago, hence stale under the default 3600 s
/// visibility timeout; the rest reserved).
pub fn seed(conn: &mut redis::Connection, backlog_per_key: usize, unacked_per_queue: usize) {
    for q in QUEUES {
        celery_data::push(conn, q.as_bytes(), backlog_per_key);
        for step in [3, 6] {
            celery_data::push(conn, &sub_key("", q, SEP, step), backlog_per_key);
        }
    }
    seed_unacked(conn, "", unacked_per_queue);
}

/// Writes `per_queue` `unacked` entries (+ `unacked_index` scores) for each of [`QUEUES`]
/// under `prefix`, as kombu's `QoS.append` does, pipelined in batches.
pub fn seed_unacked(conn: &mut redis::Connection, prefix: &str, per_queue: usize) {
    let t = now();
    let future = iso(t + 3600.0);
    let mut pipe = redis::pipe();
    let mut pending = 0;
    for q in QUEUES {
        for i in 0..per_queue {
            let tag = format!("{q}-{i:06}");
            let (score, eta) = match i % 10 {
                0 => (t - 10.0, Some(future.as_str())),
                1 => (t - 7200.0, None),
                _ => (t - (i % 600) as f64, None),
            };
            let value = padded(&unacked_value(&tag, eta, "", q));
            pipe.cmd("ZADD")
                .arg(celery_data::key(prefix, "unacked_index"))
                .arg(score)
                .arg(&tag)
                .ignore()
                .cmd("HSET")
                .arg(celery_data::key(prefix, "unacked"))
                .arg(&tag)
                .arg(value)
                .ignore();
            pending += 1;
            if pending == 1000 {
                let _: () = pipe.query(conn).expect("seed unacked");
                pipe = redis::pipe();
                pending = 0;
            }
        }
    }
    if pending > 0 {
        let _: () = pipe.query(conn).expect("seed unacked");
    }
    // One entry through the exact kombu transaction shape, so the data is not only pipelined.
    let tag = format!("{}-tx", QUEUES[0]);
    deliver(
        conn,
        prefix,
        &tag,
        t,
        &unacked_value(&tag, None, "", QUEUES[0]),
    );
}

/// Size the `unacked` values are padded to, about a real task with a few arguments.
pub const VALUE_BYTES: usize = 1024;

/// `value` (an `unacked` JSON triple) with the message's `headers.argsrepr` padded so the
/// whole value is about [`VALUE_BYTES`] long.
pub fn padded(value: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(value).expect("unacked json");
    let missing = VALUE_BYTES.saturating_sub(value.len());
    if missing > 0 {
        v[0]["headers"]["argsrepr"] = serde_json::Value::String(format!("({:x<missing$},)", "'"));
    }
    v.to_string()
}

/// Sorted samples with percentile lookups.
pub struct Summary {
    sorted: Vec<Duration>,
}

impl Summary {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self { sorted: samples }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile, `p` in 0..=1; zero when empty.
    pub fn pct(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.sorted.len() as f64 - 1.0) * p).round() as usize;
        self.sorted[i]
    }

    pub fn median(&self) -> Duration {
        self.pct(0.5)
    }
}

/// Microseconds, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 if unknown).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds used so far by process `pid` ("self" for this one), from
/// `/proc/<pid>/stat`; `None` where that file is unavailable.
pub fn cpu_seconds(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// The 1-minute load average and the CPU count, for the report header.
pub fn machine() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cpus} CPUs, loadavg {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
