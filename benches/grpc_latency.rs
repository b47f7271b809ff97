//! Load client for the gRPC service: sequential `GetMetrics` latency against a private local
//! Redis, compared with `GetMetricSpec` (answered from metadata, no Redis) measured in the
//! same run as the baseline. Prints medians, p99 and the ratio; asserts nothing.
//!
//! `cargo bench --bench grpc_latency` (env `N` = calls per RPC, default 2000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use celery_scaler::config::Config;
use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use celery_scaler::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let median = percentile(&samples, 0.5);
    println!(
        "{name:<14} n={:<6} median {:>8.1} µs   p99 {:>8.1} µs",
        samples.len(),
        median.as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6
    );
    median
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let redis = support::RedisServer::start();
    let mut conn = redis.conn(0);
    for i in 0..100 {
        let _: () = redis::cmd("LPUSH")
            .arg("celery")
            .arg(i)
            .query(&mut conn)
            .unwrap();
    }
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(celery_scaler::server::run(
        Config::default(),
        grpc,
        admin,
        shutdown.clone(),
    ));
    let mut client = loop {
        if let Ok(c) = ExternalScalerClient::connect(format!("http://{addr}")).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let so = ScaledObjectRef {
        name: "bench".into(),
        namespace: "default".into(),
        scaler_metadata: [("address".to_string(), redis.address())]
            .into_iter()
            .collect(),
    };
    let req = GetMetricsRequest {
        scaled_object_ref: Some(so.clone()),
        metric_name: "celery-celery".into(),
    };
    // Warm up: registers the watch set and waits for its first sample.
    if let Err(status) = client.get_metrics(req.clone()).await {
        println!(
            "GetMetrics unavailable ({}): nothing to measure",
            status.message()
        );
        shutdown.cancel();
        let _ = server.await;
        return;
    }
    for _ in 0..200 {
        client.get_metric_spec(so.clone()).await.unwrap();
        client.get_metrics(req.clone()).await.unwrap();
    }
    let mut spec = Vec::with_capacity(n);
    let mut metrics = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.get_metric_spec(so.clone()).await.unwrap();
        spec.push(t.elapsed());
        let t = Instant::now();
        client.get_metrics(req.clone()).await.unwrap();
        metrics.push(t.elapsed());
    }
    let base = report("GetMetricSpec", spec);
    let m = report("GetMetrics", metrics);
    println!(
        "GetMetrics / GetMetricSpec median ratio: {:.2}",
        m.as_secs_f64() / base.as_secs_f64()
    );
    shutdown.cancel();
    let _ = server.await;
}
