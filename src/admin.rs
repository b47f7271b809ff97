//! Admin HTTP port: `/metrics`, `/healthz`, `/readyz`.
//!
//! Served on its own listener, separate from gRPC, and kept up through the drain so that
//! `/readyz` can report 503 while the gRPC server finishes in-flight work.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::PortSettings;
use crate::telemetry::Metrics;

/// Where the service is in its life: drives `/readyz` (and the gRPC health status).
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const DRAINING: u8 = 2;

impl Readiness {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// The gRPC server is bound and serving.
    pub fn set_serving(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, SERVING, Ordering::SeqCst, Ordering::SeqCst);
    }
    /// Shutdown began; never ready again.
    pub fn set_draining(&self) {
        self.0.store(DRAINING, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst) == SERVING
    }
    fn state_name(&self) -> &'static str {
        match self.0.load(Ordering::SeqCst) {
            STARTING => "starting",
            SERVING => "ready",
            _ => "draining",
        }
    }
}

/// The admin routes; `/metrics` encodes `metrics`.
pub fn router(readiness: Arc<Readiness>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { encode(&m) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let r = readiness.clone();
                async move {
                    let code = if r.is_ready() {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (code, format!("{}\n", r.state_name()))
                }
            }),
        )
}

fn encode(metrics: &Metrics) -> impl IntoResponse {
    match metrics.encode_text() {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, Metrics::TEXT_FORMAT.to_string())],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_string())],
            e.to_string().into_bytes(),
        ),
    }
}

/// Serves the admin routes on `listener` with the default port settings until `shutdown` is
/// cancelled.
pub async fn run(
    listener: TcpListener,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    run_with(
        listener,
        readiness,
        metrics,
        PortSettings::default(),
        shutdown,
    )
    .await
}

/// Serves the admin routes on `listener` until `shutdown` is cancelled, with the connection
/// limit, header-read timeout and TCP keepalive of `ports` (HTTP/1.1 only: probes and
/// Prometheus need nothing else).
pub async fn run_with(
    listener: TcpListener,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    ports: PortSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let port_metrics = metrics.ports().clone();
    let routes = router(readiness, metrics);
    serve::serve(listener, routes, &ports, port_metrics, shutdown).await
}

mod serve;
