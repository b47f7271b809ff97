//! Soak under hostile traffic: the real release binary (`celery-scaler serve`, a child
//! process on loopback, stopped by PID) and a private `redis-server` (`maxclients 500`) with
//! Celery-shaped data, driven for `SOAK_SECS` by ten normal ScaledObjects polling like KEDA
//! (plus a `/healthz` probe and the application's own broker traffic), first **unattacked**,
//! then **attacked**: the same plus every hostile kind of issue 11 at once, each bounded in
//! rate and count (see `soak_support/hostile.rs`, `broker_attack.rs`, `slowloris.rs`).
//!
//! Reports per phase the scaler's RSS (start, end, peak), p50/p99 of the normal `GetMetrics`
//! and `IsActive`, errors by kind, `/metrics` size, broker clients, and the ratio attacked ÷
//! unattacked; then what each hostile kind got. Hostile calls are expected to be refused and
//! are only counted. Every call is bounded, so a frozen scaler shows as timeouts; hostile
//! traffic stops if the scaler's RSS passes `SOAK_MAX_RSS_MB`. Asserts nothing.
//!
//! `cargo bench --bench soak`: env `SOAK_SECS` (per phase, default 600), `SOAK_SCALE`
//! (hostile counts, default 1), `SOAK_SKIP` (hostile kinds to leave out, comma-separated),
//! `SOAK_MAX_RSS_MB` (default 2048), `SOAK_WRITE=1` (also write `docs/benchmarks/soak.md`).
//! Under `cargo test --all-targets` it is a ~5 s smoke run at hostile scale 0.02.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "grpc_support/mod.rs"]
mod grpc_support;

#[path = "soak_support/mod.rs"]
mod soak_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use grpc_support::{machine, seed};
use soak_support::normal::{self, Normal, NormalStats};
use soak_support::process::{http_get, track_rss, Scaler};
use soak_support::report::{self, Phase, RedisInfo};
use soak_support::{app, broker_attack, hostile, slowloris, Ctx, Settings, Tallies};
use tonic::transport::Channel;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn settings() -> Settings {
    let full = support::full_bench();
    Settings {
        secs: env_or("SOAK_SECS", if full { 600.0 } else { 2.5 }),
        scale: env_or("SOAK_SCALE", if full { 1.0 } else { 0.02 }),
        call_timeout: Duration::from_secs(3),
        hostile_timeout: Duration::from_secs(5),
        rss_cap_mib: env_or("SOAK_MAX_RSS_MB", 2048.0),
        skip: std::env::var("SOAK_SKIP")
            .unwrap_or_default()
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        full,
    }
}

/// Connects to the scaler's gRPC port, waiting up to 15 s for it to listen.
async fn connect(port: u16) -> ExternalScalerClient<Channel> {
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match endpoint.connect().await {
            Ok(ch) => return ExternalScalerClient::new(ch),
            Err(e) if Instant::now() > deadline => panic!("server did not come up: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The broker's `INFO` fields the report shows, on the connection kept for it.
fn redis_info(conn: &Mutex<redis::Connection>) -> RedisInfo {
    let Ok(mut c) = conn.lock() else {
        return RedisInfo::default();
    };
    let Ok(info) = redis::cmd("INFO").query::<String>(&mut *c) else {
        return RedisInfo::default();
    };
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
    };
    RedisInfo {
        connected_clients: field("connected_clients"),
        rejected_connections: field("rejected_connections"),
        used_memory_rss_mib: field("used_memory_rss").map(|b: f64| b / 1048576.0),
    }
}

/// Bytes and sample lines (not comments) of `/metrics`.
async fn metrics_page(port: u16) -> report::MetricsPage {
    let (code, body) = http_get(port, "/metrics", Duration::from_secs(30))
        .await
        .map_err(|e| format!("{e} (bound 30 s)"))?;
    if code != 200 {
        return Err(format!("http {code}"));
    }
    let lines = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .count();
    Ok((body.len(), lines))
}

/// Starts the broker-side and port-level hostile kinds (the gRPC ones are in `hostile`).
fn start_raw_attacks(
    ctx: &Ctx,
    end: Instant,
    stop: &Arc<AtomicBool>,
    t: &Tallies,
) -> Vec<tokio::task::JoinHandle<()>> {
    let s = &ctx.settings;
    let mut tasks = Vec::new();
    if s.enabled("heartbeats") {
        let (port, count, stop, t) = (ctx.redis_port, s.count(100_000), stop.clone(), t.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let tally = broker_attack::forge_heartbeats(port, count, end, stop);
            if let Ok(mut map) = t.lock() {
                map.insert("heartbeats", tally);
            }
        }));
    }
    for (kind, port) in [
        ("slowloris_grpc", slowloris::Port::Grpc(ctx.grpc_port)),
        ("slowloris_admin", slowloris::Port::Admin(ctx.admin_port)),
    ] {
        if s.enabled(kind) {
            tasks.push(tokio::spawn(slowloris::run(
                port,
                s.count(200),
                end,
                stop.clone(),
                t.clone(),
            )));
        }
    }
    tasks
}

/// One phase of `ctx.settings.secs`: normal traffic, and hostile traffic if `attacked`.
async fn phase(
    ctx: &Ctx,
    attacked: bool,
    normals: &[Normal],
    log: &Path,
    monitor: &Arc<Mutex<redis::Connection>>,
) -> (Phase, Vec<String>) {
    let s = &ctx.settings;
    let mut planted = Vec::new();
    if attacked {
        let (port, settings) = (ctx.redis_port, s.clone());
        planted = tokio::task::spawn_blocking(move || broker_attack::plant(port, &settings))
            .await
            .expect("plant");
    }
    let log0 = std::fs::metadata(log).map_or(0, |m| m.len());
    let end = Instant::now() + Duration::from_secs_f64(s.secs);
    let stop = Arc::new(AtomicBool::new(false));
    let tallies = Tallies::default();
    let rss = tokio::spawn(track_rss(
        ctx.pid,
        end,
        s.sample_every(),
        s.rss_cap_mib,
        stop.clone(),
    ));
    let polls: Vec<_> = normals
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let offset = Duration::from_millis(1000 * i as u64 / normals.len() as u64);
            tokio::spawn(normal::poll(
                ctx.normal.clone(),
                n.clone(),
                offset,
                end,
                s.call_timeout,
            ))
        })
        .collect();
    let health = tokio::spawn(normal::healthz(
        ctx.admin_port,
        end,
        s.sample_every(),
        Duration::from_secs(2),
    ));
    let port = ctx.redis_port;
    let app = tokio::task::spawn_blocking(move || app::run(port, end));
    let mut attacks = Vec::new();
    if attacked {
        let spawner = hostile::Spawner {
            ctx,
            end,
            stop: &stop,
            tallies: &tallies,
        };
        attacks = spawner.start();
        attacks.extend(start_raw_attacks(ctx, end, &stop, &tallies));
    }
    let mut stats = NormalStats::default();
    for p in polls {
        stats.merge(p.await.expect("normal poller"));
    }
    for a in attacks {
        let _ = a.await;
    }
    let name = if attacked { "attacked" } else { "unattacked" };
    let m = monitor.clone();
    let phase = Phase {
        name,
        rss: rss.await.expect("rss tracker"),
        normal: stats,
        healthz: health.await.expect("healthz probe"),
        app: app.await.expect("app traffic"),
        metrics_page: metrics_page(ctx.admin_port).await,
        redis: tokio::task::spawn_blocking(move || redis_info(&m))
            .await
            .expect("info"),
        log_bytes: std::fs::metadata(log)
            .map_or(0, |m| m.len())
            .saturating_sub(log0),
        hostile: tallies
            .lock()
            .map(|t| t.clone())
            .unwrap_or_else(|_| BTreeMap::new()),
    };
    (phase, planted)
}

fn main() {
    let s = settings();
    let start_machine = machine();
    println!("soak: {start_machine} (at start)");
    let redis = support::RedisServer::start_with(&["--maxclients", "500"]);
    seed(&mut redis.conn(0), 20, 50);
    let monitor = Arc::new(Mutex::new(redis.conn(0)));
    let log_dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_celery-scaler");
    let mut scaler = Scaler::start(bin, log_dir.path());
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let server = format!("celery-scaler serve, {build} build (pid {})", scaler.pid);
    println!("server: {server}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (phases, mut notes) = rt.block_on(async {
        let ctx = Ctx {
            settings: s.clone(),
            redis_port: redis.port,
            grpc_port: scaler.grpc_port,
            admin_port: scaler.admin_port,
            pid: scaler.pid,
            normal: connect(scaler.grpc_port).await,
            hostile: connect(scaler.grpc_port).await,
        };
        let normals =
            normal::register(&ctx.normal, normal::definitions(&ctx.redis_address())).await;
        let (quiet, _) = phase(&ctx, false, &normals, &scaler.log, &monitor).await;
        println!("unattacked phase done; {}", machine());
        let (attacked, planted) = phase(&ctx, true, &normals, &scaler.log, &monitor).await;
        println!("attacked phase done; {}", machine());
        ([quiet, attacked], planted)
    });
    // Closes every client connection first, so a graceful drain has nothing to wait for.
    drop(rt);
    notes.push(format!(
        "shutdown after the attacked phase: {}",
        scaler.stop()
    ));
    notes.push(format!("{} (at end)", machine()));
    let header = report::header(&s, &start_machine, &server);
    let text = report::render(&header, [&phases[0], &phases[1]], &notes);
    println!("\n{text}");
    if std::env::var("SOAK_WRITE").is_ok_and(|v| v == "1") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks/soak.md");
        let doc = format!(
            "# Soak under hostile traffic\n\nOutput of `cargo bench --bench soak` (see \
             docs/benchmarks.md), written by `SOAK_WRITE=1` at {}.\n\n{text}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        std::fs::write(&path, doc).expect("write docs/benchmarks/soak.md");
        println!("wrote {}", path.display());
    }
    drop(redis);
}
