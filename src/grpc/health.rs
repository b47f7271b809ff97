//! `grpc.health.v1.Health`: tonic-health's service, with `Watch` streams that end (status OK)
//! when the server drains instead of holding the connection open until the grace period.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

/// The health service plus the drain signal.
pub struct DrainingHealth {
    inner: HealthService,
    shutdown: CancellationToken,
}

/// A health service answering from `reporter`; `Watch` streams end on `shutdown`.
pub fn health_server(
    reporter: &HealthReporter,
    shutdown: CancellationToken,
) -> HealthServer<DrainingHealth> {
    HealthServer::new(DrainingHealth {
        inner: HealthService::from_health_reporter(reporter.clone()),
        shutdown,
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for DrainingHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let inner = self.inner.watch(request).await?.into_inner();
        let stream: WatchStream =
            Box::pin(inner.take_until(self.shutdown.clone().cancelled_owned()));
        Ok(Response::new(stream))
    }
}
