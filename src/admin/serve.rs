//! The admin port's HTTP/1.1 server: hyper with a header-read timeout (also between
//! keep-alive requests), a connection limit and TCP keepalive, serving the axum router.
//! On shutdown, idle connections close at once and busy ones finish their response.

use std::pin::pin;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::PortSettings;
use crate::server::accept::{self, Limiter};
use crate::telemetry::PortMetrics;

const PORT: &str = "admin";

/// Serves `router` on `listener` until `shutdown`, then waits for open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    ports: &PortSettings,
    metrics: PortMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limiter = Limiter::new(PORT, ports.admin_max_connections, metrics);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(ports.admin_header_timeout);
    let mut conns = JoinSet::new();
    loop {
        let tcp = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept::accept_failed(PORT, e).await;
                    continue;
                }
            },
        };
        let Some(slot) = limiter.admit() else {
            continue;
        };
        accept::set_socket_options(&tcp, ports.tcp_keepalive);
        let conn =
            http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router.clone()));
        let stop = shutdown.clone();
        conns.spawn(async move {
            // Held until the connection ends: it frees the port's slot when dropped.
            let slot = &slot;
            let mut conn = pin!(conn);
            let done = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = done {
                if e.is_timeout() {
                    slot.refused("header_timeout");
                }
                debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
    Ok(())
}
