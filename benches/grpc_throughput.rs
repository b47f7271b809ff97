//! Throughput of the gRPC service under 64 concurrent callers: `GetMetrics` per second
//! against the no-op baseline `grpc.health.v1.Health/Check` per second, measured in the same
//! run, on 1 and on 4 HTTP/2 connections (KEDA multiplexes everything over one).
//!
//! The server is the real release binary (`celery-scaler serve`, its default 2-worker
//! runtime) on loopback, backed by a private `redis-server` with Celery-shaped queues. The
//! client runs in this process on a 2-worker runtime: client, server and Redis share the
//! machine's cores, so the numbers are a lower bound on what the server alone could do.
//!
//! Per connection count: 1 s mixed warm-up, then blocks of `BLOCK` seconds in the order
//! health, GetMetrics, GetMetrics, health (ABBA, so drift in machine load cancels). Prints
//! calls/s, latency under load, CPU per call of the server and of the client (from
//! `/proc/<pid>/stat`), and the ratio GetMetrics/health; asserts nothing.
//!
//! `cargo bench --bench grpc_throughput` (env `BLOCK` seconds, default 2.5; `CALLERS`,
//! default 64; `CHANNELS`, default `1,4`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "grpc_support/mod.rs"]
mod grpc_support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use celery_scaler::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use grpc_support::{clock_ticks, cpu_seconds, machine, metadata, seed, us, Summary};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Upper bound on calls per caller per block (keeps the sample vectors bounded).
const MAX_CALLS_PER_CALLER: usize = 200_000;
/// Latencies kept per caller per block for the percentiles (every call up to this many).
const MAX_SAMPLES_PER_CALLER: usize = 20_000;

/// The release binary, killed on drop.
struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Rpc {
    Health,
    Metrics,
}

#[derive(Clone)]
struct Clients {
    health: HealthClient<Channel>,
    scaler: ExternalScalerClient<Channel>,
}

/// What one block measured.
#[derive(Default)]
struct Block {
    calls: u64,
    errors: u64,
    seconds: f64,
    server_cpu: f64,
    client_cpu: f64,
    latencies: Vec<Duration>,
}

async fn caller(
    mut c: Clients,
    rpc: Rpc,
    req: Arc<GetMetricsRequest>,
    end: Instant,
) -> (u64, u64, Vec<Duration>) {
    let (mut ok, mut err) = (0u64, 0u64);
    let mut lat = Vec::with_capacity(4096);
    for _ in 0..MAX_CALLS_PER_CALLER {
        if Instant::now() >= end {
            break;
        }
        let t = Instant::now();
        let r = match rpc {
            Rpc::Health => c
                .health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| ()),
            Rpc::Metrics => c.scaler.get_metrics((*req).clone()).await.map(|_| ()),
        };
        let d = t.elapsed();
        match r {
            Ok(()) => ok += 1,
            Err(_) => err += 1,
        }
        if lat.len() < MAX_SAMPLES_PER_CALLER {
            lat.push(d);
        }
    }
    (ok, err, lat)
}

/// Runs `callers` concurrent callers of `rpc` (or both, alternating, for warm-up) for `secs`.
async fn block(
    clients: &[Clients],
    callers: usize,
    rpc: Option<Rpc>,
    req: &Arc<GetMetricsRequest>,
    secs: f64,
    server_pid: &str,
    ticks: f64,
) -> Block {
    let cpu0 = (cpu_seconds(server_pid, ticks), cpu_seconds("self", ticks));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let r = rpc.unwrap_or(if i % 2 == 0 {
                Rpc::Health
            } else {
                Rpc::Metrics
            });
            tokio::spawn(caller(
                clients[i % clients.len()].clone(),
                r,
                req.clone(),
                end,
            ))
        })
        .collect();
    let mut out = Block::default();
    for t in tasks {
        let (ok, err, lat) = t.await.expect("caller task");
        out.calls += ok;
        out.errors += err;
        out.latencies.extend(lat);
    }
    out.seconds = start.elapsed().as_secs_f64();
    let cpu1 = (cpu_seconds(server_pid, ticks), cpu_seconds("self", ticks));
    out.server_cpu = cpu1.0.zip(cpu0.0).map_or(f64::NAN, |(a, b)| a - b);
    out.client_cpu = cpu1.1.zip(cpu0.1).map_or(f64::NAN, |(a, b)| a - b);
    out
}

fn merge(a: Block, b: Block) -> Block {
    let mut latencies = a.latencies;
    latencies.extend(b.latencies);
    Block {
        calls: a.calls + b.calls,
        errors: a.errors + b.errors,
        seconds: a.seconds + b.seconds,
        server_cpu: a.server_cpu + b.server_cpu,
        client_cpu: a.client_cpu + b.client_cpu,
        latencies,
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let block_secs: f64 = env_or("BLOCK", if support::full_bench() { 2.5 } else { 0.3 });
    let callers: usize = env_or("CALLERS", 64);
    let channel_counts: Vec<usize> = std::env::var("CHANNELS")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    let ticks = clock_ticks();
    println!("grpc_throughput: {} (at start)", machine());

    let redis = support::RedisServer::start();
    seed(&mut redis.conn(0), 20, 50);

    let port = support::free_port();
    let admin_port = support::free_port();
    let bin = env!("CARGO_BIN_EXE_celery-scaler");
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--grpc-listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin_port}"),
    ])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("CELERY_SCALER_") {
            cmd.env_remove(k);
        }
    }
    let server = Binary(cmd.spawn().expect("start celery-scaler serve"));
    let server_pid = server.0.id().to_string();
    println!("server: {bin} serve (pid {server_pid})");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
        let connect = || async {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match endpoint.connect().await {
                    Ok(ch) => {
                        let mut h = HealthClient::new(ch.clone());
                        let serving = h
                            .check(HealthCheckRequest { service: String::new() })
                            .await
                            .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32);
                        if serving {
                            break Clients { health: h, scaler: ExternalScalerClient::new(ch) };
                        }
                    }
                    Err(e) if Instant::now() > deadline => panic!("server did not come up: {e:?}"),
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let first = connect().await;
        let so = ScaledObjectRef {
            name: "bench".into(),
            namespace: "default".into(),
            scaler_metadata: metadata(&redis.address()),
        };
        let metric_name = first
            .scaler
            .clone()
            .get_metric_spec(so.clone())
            .await
            .expect("GetMetricSpec")
            .into_inner()
            .metric_specs[0]
            .metric_name
            .clone();
        let req = Arc::new(GetMetricsRequest { scaled_object_ref: Some(so), metric_name });
        // Registers the watch set and waits for its first sample.
        first.scaler.clone().get_metrics((*req).clone()).await.expect("first GetMetrics");

        let mut results = Vec::new();
        for &n in &channel_counts {
            let mut clients = vec![first.clone()];
            while clients.len() < n {
                clients.push(connect().await);
            }
            let clients = &clients[..n];
            block(clients, callers, None, &req, 1.0, &server_pid, ticks).await;
            let h1 = block(clients, callers, Some(Rpc::Health), &req, block_secs, &server_pid, ticks).await;
            let m1 = block(clients, callers, Some(Rpc::Metrics), &req, block_secs, &server_pid, ticks).await;
            let m2 = block(clients, callers, Some(Rpc::Metrics), &req, block_secs, &server_pid, ticks).await;
            let h2 = block(clients, callers, Some(Rpc::Health), &req, block_secs, &server_pid, ticks).await;
            results.push((n, merge(h1, h2), merge(m1, m2)));
        }

        println!(
            "{} (at end); {callers} callers, {block_secs} s blocks ABBA (2 blocks per RPC)",
            machine()
        );
        println!(
            "{:>8} {:<14} {:>10} {:>7} {:>9} {:>9} {:>14} {:>14}",
            "channels", "rpc", "calls/s", "errors", "p50 µs", "p99 µs", "server CPU µs", "client CPU µs"
        );
        for (n, h, m) in results {
            let mut rates = [0.0; 2];
            for (i, (name, b)) in [("Health/Check", h), ("GetMetrics", m)].into_iter().enumerate() {
                let rate = b.calls as f64 / b.seconds;
                rates[i] = rate;
                let calls = b.calls.max(1) as f64;
                let s = Summary::new(b.latencies);
                println!(
                    "{n:>8} {name:<14} {rate:>10.0} {:>7} {:>9.0} {:>9.0} {:>14.1} {:>14.1}",
                    b.errors,
                    us(s.median()),
                    us(s.pct(0.99)),
                    b.server_cpu / calls * 1e6,
                    b.client_cpu / calls * 1e6,
                );
            }
            println!(
                "RATIO channels={n}: GetMetrics/s / Health/s = {:.3}; GetMetrics {:.0}/s (target >= 20000)",
                rates[1] / rates[0],
                rates[1]
            );
        }
    });
    drop(rt);
    drop(server);
}
