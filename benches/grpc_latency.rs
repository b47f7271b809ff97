//! Sequential unary latency of the gRPC service, side by side in one run: the no-op
//! baseline `grpc.health.v1.Health/Check`, then `GetMetricSpec`, `GetMetrics` and `IsActive`
//! against a real server on 127.0.0.1:0 backed by a private `redis-server` holding
//! Celery-shaped queues (priority sub-keys and `unacked` entries). The same pair (health,
//! `GetMetrics`) is also measured over TLS on a second server in the same run.
//!
//! Calls are interleaved: every round calls each series once, in a freshly shuffled order,
//! so machine-load drift and the position after the other connection's calls hit every
//! series alike. Prints median, p90 and
//! p99 per series and the median ratios to the health check; asserts nothing.
//!
//! `cargo bench --bench grpc_latency` (env `ROUNDS`, default 3000; `TLS=0` skips TLS).
//! The server runs in-process on its own 2-worker tokio runtime (its own threads); the
//! client is a current-thread runtime with one HTTP/2 connection per server, as KEDA uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "grpc_support/mod.rs"]
mod grpc_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use celery_scaler::config::{self, Config, Flags};
use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use celery_scaler::grpc::proto::{GetMetricsRequest, ScaledObjectRef};
use grpc_support::{machine, metadata, seed, us, Summary};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A server running on its own runtime thread until `stop`.
struct Server {
    port: u16,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(config: Config) -> Self {
        let grpc = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        grpc.set_nonblocking(true).unwrap();
        admin.set_nonblocking(true).unwrap();
        let port = grpc.local_addr().unwrap().port();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let grpc = tokio::net::TcpListener::from_std(grpc).unwrap();
                let admin = tokio::net::TcpListener::from_std(admin).unwrap();
                celery_scaler::server::run(config, grpc, admin, stop)
                    .await
                    .unwrap();
            });
        });
        Self {
            port,
            shutdown,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// One connection's clients.
#[derive(Clone)]
struct Clients {
    health: HealthClient<Channel>,
    scaler: ExternalScalerClient<Channel>,
}

async fn connect(port: u16, tls: Option<ClientTlsConfig>) -> Clients {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://127.0.0.1:{port}")).unwrap();
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let channel = loop {
        match endpoint.connect().await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => panic!("connect: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    Clients {
        health: HealthClient::new(channel.clone()),
        scaler: ExternalScalerClient::new(channel),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Rpc {
    Health,
    Spec,
    Metrics,
    IsActive,
}

struct Series {
    name: &'static str,
    rpc: Rpc,
    tls: bool,
    samples: Vec<Duration>,
}

struct Requests {
    so: ScaledObjectRef,
    metrics: GetMetricsRequest,
}

async fn call(c: &mut Clients, rpc: Rpc, req: &Requests) -> Duration {
    let t = Instant::now();
    match rpc {
        Rpc::Health => {
            c.health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .expect("Health/Check");
        }
        Rpc::Spec => {
            c.scaler
                .get_metric_spec(req.so.clone())
                .await
                .expect("GetMetricSpec");
        }
        Rpc::Metrics => {
            c.scaler
                .get_metrics(req.metrics.clone())
                .await
                .expect("GetMetrics");
        }
        Rpc::IsActive => {
            c.scaler.is_active(req.so.clone()).await.expect("IsActive");
        }
    }
    t.elapsed()
}

/// Fisher–Yates with xorshift64: a fresh order every round, so no series always follows the
/// same predecessor (an idle connection wakes slower than a busy one).
fn shuffle(order: &mut [usize], state: &mut u64) {
    for i in (1..order.len()).rev() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        order.swap(i, (*state % (i as u64 + 1)) as usize);
    }
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if support::full_bench() { 3000 } else { 100 });
    let with_tls = std::env::var("TLS").map_or(true, |v| v != "0");
    println!("grpc_latency: {} (at start)", machine());

    let redis = support::RedisServer::start();
    seed(&mut redis.conn(0), 20, 50);

    let plain = Server::start(Config::default());
    let certs = with_tls.then(support::tls::generate);
    let tls_server = certs.as_ref().map(|certs| {
        let flags = Flags {
            tls_cert: Some(certs.cert.to_string_lossy().to_string()),
            tls_key: Some(certs.key.to_string_lossy().to_string()),
            ..Flags::default()
        };
        let loaded = config::load(None, &HashMap::new(), &flags).expect("TLS config");
        Server::start(Config {
            tls: loaded.tls,
            ..Config::default()
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut plain_c = connect(plain.port, None).await;
        let mut tls_c = match (&tls_server, &certs) {
            (Some(s), Some(certs)) => {
                let ca = std::fs::read(&certs.ca).unwrap();
                let tls = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name("localhost");
                Some(connect(s.port, Some(tls)).await)
            }
            _ => None,
        };
        let so = ScaledObjectRef {
            name: "bench".into(),
            namespace: "default".into(),
            scaler_metadata: metadata(&redis.address()),
        };
        let spec = plain_c
            .scaler
            .get_metric_spec(so.clone())
            .await
            .expect("GetMetricSpec")
            .into_inner();
        let metric_name = spec.metric_specs[0].metric_name.clone();
        let req = Requests {
            metrics: GetMetricsRequest {
                scaled_object_ref: Some(so.clone()),
                metric_name: metric_name.clone(),
            },
            so,
        };
        // The first GetMetrics of a watch set waits for the sampler's first sample.
        let first = call(&mut plain_c, Rpc::Metrics, &req).await;
        let value = plain_c
            .scaler
            .get_metrics(req.metrics.clone())
            .await
            .expect("GetMetrics")
            .into_inner();
        println!(
            "metric {metric_name:?} = {} (first GetMetrics, waits for a sample: {:.1} ms)",
            value.metric_values[0].metric_value_float,
            first.as_secs_f64() * 1e3
        );

        let mut series = vec![
            Series {
                name: "Health/Check",
                rpc: Rpc::Health,
                tls: false,
                samples: vec![],
            },
            Series {
                name: "GetMetricSpec",
                rpc: Rpc::Spec,
                tls: false,
                samples: vec![],
            },
            Series {
                name: "GetMetrics",
                rpc: Rpc::Metrics,
                tls: false,
                samples: vec![],
            },
            Series {
                name: "IsActive",
                rpc: Rpc::IsActive,
                tls: false,
                samples: vec![],
            },
        ];
        if tls_c.is_some() {
            series.push(Series {
                name: "Health/Check",
                rpc: Rpc::Health,
                tls: true,
                samples: vec![],
            });
            series.push(Series {
                name: "GetMetrics",
                rpc: Rpc::Metrics,
                tls: true,
                samples: vec![],
            });
        }
        let warmup = rounds / 10 + 50;
        let k = series.len();
        let mut order: Vec<usize> = (0..k).collect();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..warmup + rounds {
            shuffle(&mut order, &mut rng);
            for &j in &order {
                let s = &mut series[j];
                let client = if s.tls {
                    tls_c.as_mut().expect("TLS client")
                } else {
                    &mut plain_c
                };
                let d = call(client, s.rpc, &req).await;
                if round >= warmup {
                    s.samples.push(d);
                }
            }
        }

        println!(
            "{} (at end); {rounds} interleaved rounds after {warmup} warm-up rounds",
            machine()
        );
        println!(
            "{:<22} {:>7} {:>10} {:>10} {:>10} {:>12}",
            "series", "n", "median µs", "p90 µs", "p99 µs", "median/health"
        );
        let mut health_median = [Duration::ZERO; 2];
        let summaries: Vec<(String, bool, Rpc, Summary)> = series
            .into_iter()
            .map(|s| {
                let label = format!("{}{}", s.name, if s.tls { " (TLS)" } else { "" });
                (label, s.tls, s.rpc, Summary::new(s.samples))
            })
            .collect();
        for (_, tls, rpc, sum) in &summaries {
            if *rpc == Rpc::Health {
                health_median[usize::from(*tls)] = sum.median();
            }
        }
        for (label, tls, _, sum) in &summaries {
            let base = health_median[usize::from(*tls)];
            println!(
                "{label:<22} {:>7} {:>10.1} {:>10.1} {:>10.1} {:>12.2}",
                sum.len(),
                us(sum.median()),
                us(sum.pct(0.9)),
                us(sum.pct(0.99)),
                sum.median().as_secs_f64() / base.as_secs_f64()
            );
        }
        let ratio = |tls: bool| {
            summaries
                .iter()
                .find(|(_, t, r, _)| *t == tls && *r == Rpc::Metrics)
                .map(|(_, _, _, s)| {
                    s.median().as_secs_f64() / health_median[usize::from(tls)].as_secs_f64()
                })
        };
        if let Some(r) = ratio(false) {
            println!("RATIO GetMetrics/Health median (plaintext): {r:.3}  (target <= 1.25)");
        }
        if let Some(r) = ratio(true) {
            println!("RATIO GetMetrics/Health median (TLS):       {r:.3}");
        }
    });
    drop(rt);
    plain.stop();
    if let Some(s) = tls_server {
        s.stop();
    }
}
