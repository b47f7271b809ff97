//! Wiring of `serve`: bind, spawn, run until shutdown, drain.
//!
//! mini-redis style: `main` binds both listeners (so a bad address fails before anything
//! runs, and tests bind `127.0.0.1:0`), then [`run`] spawns the admin server and the gRPC
//! server and waits for `shutdown`. The drain: `/readyz` and gRPC health turn NOT_SERVING,
//! the gRPC server stops accepting, open `StreamIsActive` streams end with status OK,
//! in-flight RPCs get up to `shutdown_grace`, then the samplers stop and the admin server
//! closes. [`spawn_signal_handler`] turns the first SIGTERM/SIGINT into `shutdown` and a
//! second one into an immediate exit with code 130.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::admin::{self, Readiness};
use crate::config::{Config, ServerTls};
use crate::grpc::proto::external_scaler_server::ExternalScalerServer;
use crate::grpc::{self, ScalerService};
use crate::scaler::Scaler;

/// HTTP/2 PING interval towards idle clients (KEDA sets no client keepalive).
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a PING may go unanswered before the connection is closed.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams per connection: KEDA multiplexes every ScaledObject over one connection.
const MAX_CONCURRENT_STREAMS: u32 = 10_000;
/// Bound on stopping the samplers and the admin server after the drain.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `serve` failed after binding.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC TLS setup: {0}")]
    Tls(#[source] tonic::transport::Error),
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

fn tls_config(tls: &ServerTls) -> ServerTlsConfig {
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, tls.key_pem()));
    if let Some(ca) = &tls.client_ca_pem {
        config = config.client_ca_root(Certificate::from_pem(ca));
    }
    config
}

/// Serves gRPC on `grpc` and the admin port on `admin` until `shutdown` is cancelled, then
/// drains (see the module docs).
pub async fn run(
    config: Config,
    grpc: TcpListener,
    admin: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    install_crypto_provider();
    admin::init_metrics();
    grpc::init_metrics();
    let grpc_addr = grpc.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let admin_addr = admin
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();

    let scaler = Arc::new(Scaler::from_config(&config).with_rpc_timeout(config.rpc_timeout));
    let registry = scaler.registry().clone();
    scaler.log_access_policy();
    let readiness = Readiness::new();

    let admin_stop = CancellationToken::new();
    let mut admin_task = tokio::spawn(admin::run(admin, readiness.clone(), admin_stop.clone()));

    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS));
    if let Some(tls) = &config.tls {
        builder = builder
            .tls_config(tls_config(tls))
            .map_err(ServeError::Tls)?;
    }
    // `drain` ends streams and stops the gRPC server; it is cancelled after readiness and
    // health have turned NOT_SERVING.
    let drain = CancellationToken::new();
    let health = tonic_health::server::HealthReporter::new();
    let health_service = grpc::health_server(&health, drain.clone());
    let service = ScalerService::new(scaler, drain.clone(), config.stream_resend);
    let router = builder
        .add_service(health_service)
        .add_service(service.into_server());
    health
        .set_serving::<ExternalScalerServer<ScalerService>>()
        .await;
    health.set_service_status("", ServingStatus::Serving).await;

    let incoming = TcpIncoming::from(grpc)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let stop = drain.clone();
    let mut grpc_task = tokio::spawn(
        router.serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await }),
    );
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
        None => {
            info!(
                grace_seconds = config.shutdown_grace.as_secs_f64(),
                "draining"
            );
            match tokio::time::timeout(config.shutdown_grace, &mut grpc_task).await {
                Ok(r) => r,
                Err(_) => {
                    warn!("grace period over: closing the remaining gRPC connections");
                    grpc_task.abort();
                    Ok(Ok(()))
                }
            }
        }
    };
    if tokio::time::timeout(STOP_TIMEOUT, registry.shutdown())
        .await
        .is_err()
    {
        warn!("samplers did not stop in time");
    }
    admin_stop.cancel();
    if tokio::time::timeout(STOP_TIMEOUT, &mut admin_task)
        .await
        .is_err()
    {
        admin_task.abort();
    }
    info!("stopped");
    result?.map_err(ServeError::Grpc)
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT; exits the process with code 130 on a
/// second one (an operator asking to stop without draining).
pub fn spawn_signal_handler(shutdown: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
        shutdown.cancel();
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        warn!("second signal: exiting without draining");
        std::process::exit(130);
    }))
}
