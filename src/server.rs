//! Wiring of `serve`: bind, spawn, run until shutdown, drain.
//!
//! mini-redis style: `main` binds both listeners (so a bad address fails before anything
//! runs, and tests bind `127.0.0.1:0`), then [`run`] spawns the admin server and the gRPC
//! server and waits for `shutdown`. The drain: `/readyz` and gRPC health turn NOT_SERVING,
//! the gRPC server stops accepting, open `StreamIsActive` streams end with status OK,
//! in-flight RPCs get up to `shutdown_grace`, then the samplers stop and the admin server
//! closes. [`spawn_signal_handler`] turns the first SIGTERM/SIGINT into `shutdown` and a
//! second one into an immediate exit with code 130; SIGHUP, SIGUSR1 and SIGUSR2 are logged
//! and ignored (their default action would kill the process without a drain).
//!
//! Both ports are bounded ([`accept`]): a connection limit each, TCP keepalive, a handshake
//! deadline on gRPC (TLS + HTTP/2 preface, [`tls`]) and a header-read timeout on admin;
//! HTTP/2 keepalive PINGs drop gRPC peers that stopped answering.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::admin::{self, Readiness};
use crate::broker::Registry;
use crate::config::{Config, PortSettings};
use crate::grpc::proto::external_scaler_server::ExternalScalerServer;
use crate::grpc::{self, ScalerService};
use crate::scaler::Scaler;
use crate::telemetry::Metrics;

pub mod accept;
pub mod tls;

/// HTTP/2 streams per connection beyond `grpc_max_streams`, for unary RPCs. KEDA multiplexes
/// every ScaledObject over one connection, so one connection may need every stream slot.
const UNARY_STREAMS_PER_CONNECTION: u32 = 256;
/// Bound on stopping the samplers and the admin server after the drain.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `serve` failed after binding.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC TLS setup: {0}")]
    Tls(#[source] tls::TlsError),
    #[error("gRPC server: {0}")]
    Grpc(#[source] tonic::transport::Error),
    #[error("admin server: {0}")]
    Admin(#[source] std::io::Error),
    #[error("server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Installs rustls' ring provider as the process default (Redis TLS needs one). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves gRPC on `grpc` and the admin port on `admin` until `shutdown` is cancelled, then
/// drains (see the module docs). Every metric goes to a fresh [`Metrics`].
pub async fn run(
    config: Config,
    grpc: TcpListener,
    admin: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let metrics = Metrics::new();
    run_with_metrics(config, metrics, grpc, admin, shutdown).await
}

/// [`run`] exporting to `metrics` (its series cap is set to `max_series`), which the caller
/// can read too.
pub async fn run_with_metrics(
    config: Config,
    metrics: Arc<Metrics>,
    grpc: TcpListener,
    admin: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    install_crypto_provider();
    metrics.budget().set_cap(config.max_series);
    let addr = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let (grpc_addr, admin_addr) = (addr(&grpc), addr(&admin));

    let scaler = Scaler::from_config_with_metrics(&config, metrics.clone());
    let scaler = Arc::new(scaler.with_rpc_timeout(config.rpc_timeout));
    let registry = scaler.registry().clone();
    scaler.log_access_policy();
    let readiness = Readiness::new();

    let ports = accept::fitted(&config.ports);
    let tls = config.tls.as_ref().map(tls::acceptor).transpose();
    let tls = tls.map_err(ServeError::Tls)?;
    let admin_stop = CancellationToken::new();
    let mut admin_task = tokio::spawn(admin::run_with(
        admin,
        readiness.clone(),
        metrics.clone(),
        ports.clone(),
        admin_stop.clone(),
    ));

    // `drain` ends streams and stops the gRPC server; it is cancelled after readiness and
    // health have turned NOT_SERVING.
    let drain = CancellationToken::new();
    let health = tonic_health::server::HealthReporter::new();
    let mut grpc_task = start_grpc(grpc, &ports, tls, scaler, &health, drain.clone()).await;
    readiness.set_serving();
    info!(
        grpc = %grpc_addr,
        admin = %admin_addr,
        tls = config.tls.is_some(),
        mtls = config.tls.as_ref().is_some_and(|t| t.client_ca_pem.is_some()),
        "serving"
    );

    let early = tokio::select! {
        _ = shutdown.cancelled() => None,
        r = &mut grpc_task => Some(r),
        r = &mut admin_task => {
            // The admin server must not end first; treat it as fatal.
            drain.cancel();
            let err = match r {
                Ok(Ok(())) => ServeError::Admin(std::io::Error::other("admin server stopped")),
                Ok(Err(e)) => ServeError::Admin(e),
                Err(e) => ServeError::Join(e),
            };
            grpc_task.abort();
            registry.shutdown().await;
            return Err(err);
        }
    };

    readiness.set_draining();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_not_serving::<ExternalScalerServer<ScalerService>>()
        .await;
    drain.cancel();
    let result = match early {
        Some(r) => r,
        None => drain_grpc(&mut grpc_task, config.shutdown_grace).await,
    };
    stop_background(&registry, &admin_stop, &mut admin_task).await;
    info!("stopped");
    result?.map_err(ServeError::Grpc)
}

/// After the drain: stops the samplers, then the admin server, each within [`STOP_TIMEOUT`]
/// (an admin server still running then is aborted).
async fn stop_background(
    registry: &Registry,
    admin_stop: &CancellationToken,
    admin_task: &mut JoinHandle<std::io::Result<()>>,
) {
    if tokio::time::timeout(STOP_TIMEOUT, registry.shutdown())
        .await
        .is_err()
    {
        warn!("samplers did not stop in time");
    }
    admin_stop.cancel();
    if tokio::time::timeout(STOP_TIMEOUT, &mut *admin_task)
        .await
        .is_err()
    {
        admin_task.abort();
    }
}

/// How the gRPC server task ended.
type GrpcOutcome = Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>;

/// Waits up to `grace` for the draining gRPC server, then closes what is left.
async fn drain_grpc(
    task: &mut JoinHandle<Result<(), tonic::transport::Error>>,
    grace: Duration,
) -> GrpcOutcome {
    info!(grace_seconds = grace.as_secs_f64(), "draining");
    match tokio::time::timeout(grace, &mut *task).await {
        Ok(r) => r,
        Err(_) => {
            warn!("grace period over: closing the remaining gRPC connections");
            task.abort();
            Ok(Ok(()))
        }
    }
}

/// Spawns the gRPC server (health + ExternalScaler, both SERVING) on the bounded incoming
/// connections of `grpc`; it stops accepting and drains when `drain` is cancelled.
async fn start_grpc(
    grpc: TcpListener,
    ports: &PortSettings,
    tls: Option<TlsAcceptor>,
    scaler: Arc<Scaler>,
    health: &tonic_health::server::HealthReporter,
    drain: CancellationToken,
) -> JoinHandle<Result<(), tonic::transport::Error>> {
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(ports.grpc_keepalive_interval))
        .http2_keepalive_timeout(Some(ports.grpc_keepalive_timeout))
        .max_concurrent_streams(Some(
            ports
                .grpc_max_streams
                .saturating_add(UNARY_STREAMS_PER_CONNECTION),
        ));
    let limiter = accept::Limiter::new(
        "grpc",
        ports.grpc_max_connections,
        scaler.metrics().ports().clone(),
    );
    let router = builder
        .add_service(grpc::health_server(health, drain.clone()))
        .add_service(
            ScalerService::new(scaler, drain.clone())
                .with_max_streams(ports.grpc_max_streams)
                .into_server(),
        );
    health
        .set_serving::<ExternalScalerServer<ScalerService>>()
        .await;
    health.set_service_status("", ServingStatus::Serving).await;
    let incoming = accept::grpc_incoming(
        grpc,
        accept::GrpcAccept {
            limiter,
            tls,
            handshake_timeout: ports.grpc_handshake_timeout,
            tcp_keepalive: ports.tcp_keepalive,
        },
    );
    tokio::spawn(
        router.serve_with_incoming_shutdown(incoming, async move { drain.cancelled().await }),
    )
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT; exits the process with code 130 on a
/// second one (an operator asking to stop without draining). SIGHUP, SIGUSR1 and SIGUSR2 are
/// logged and ignored, before and during the drain: the configuration is read once at start
/// (restart the pod to change it), and nothing else is bound to these signals.
pub fn spawn_signal_handler(shutdown: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    Ok(tokio::spawn(async move {
        let mut stops = 0;
        loop {
            let name = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                Some(()) = hup.recv() => {
                    info!(signal = "SIGHUP", "signal ignored: the configuration is read only at start; restart to change it");
                    continue;
                }
                Some(()) = usr1.recv() => {
                    info!(signal = "SIGUSR1", "signal ignored");
                    continue;
                }
                Some(()) = usr2.recv() => {
                    info!(signal = "SIGUSR2", "signal ignored");
                    continue;
                }
                else => return,
            };
            stops += 1;
            if stops == 1 {
                info!(signal = name, "shutting down");
                shutdown.cancel();
            } else {
                warn!(
                    signal = name,
                    code = 130,
                    "second signal: exiting without draining"
                );
                std::process::exit(130);
            }
        }
    }))
}
