//! The `ExternalScaler` implementation: protobuf in, [`Scaler`] calls, protobuf out.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

use super::proto::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use super::proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use super::status::{code_label, to_status};
use super::stream::{self, ActiveStream, StreamSpec};
use crate::broker::{BrokerError, Requester};
use crate::policy::decide;
use crate::scaler::{Scaler, ScalerError};
use crate::trigger::limits::check_scaled_object;

/// KEDA's external scaler, backed by one shared [`Scaler`].
#[derive(Clone)]
pub struct ScalerService {
    scaler: Arc<Scaler>,
    /// Cancelled when the server drains: open streams end with status OK.
    shutdown: CancellationToken,
    /// Slots for open `StreamIsActive` streams (`grpc_max_streams`), over all connections.
    streams: Arc<Semaphore>,
    max_streams: u32,
}

impl ScalerService {
    pub fn new(scaler: Arc<Scaler>, shutdown: CancellationToken) -> Self {
        let max_streams = crate::config::Config::default().ports.grpc_max_streams;
        Self {
            scaler,
            shutdown,
            streams: Arc::new(Semaphore::new(max_streams as usize)),
            max_streams,
        }
    }

    /// Bounds the `StreamIsActive` streams open at once (at least 1).
    pub fn with_max_streams(mut self, max: u32) -> Self {
        self.max_streams = max.max(1);
        self.streams = Arc::new(Semaphore::new(self.max_streams as usize));
        self
    }

    /// Records one finished request of `rpc` that started at `started`.
    fn observe<T>(&self, rpc: &'static str, started: Instant, result: &Result<T, Status>) {
        let code = match result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        let grpc = self.scaler.metrics().grpc();
        grpc.observe(rpc, started, code_label(code));
    }

    /// The tonic service, ready to add to a router.
    pub fn into_server(self) -> ExternalScalerServer<Self> {
        ExternalScalerServer::new(self)
    }

    fn get_metric_spec_inner(&self, so: &ScaledObjectRef) -> Result<GetMetricSpecResponse, Status> {
        check_ref(so)?;
        let settings = self
            .scaler
            .settings(&so.scaler_metadata, Requester::Namespace(&so.namespace))
            .map_err(|e| fail(so, e))?;
        // The target depends on the settings only: no Redis here.
        let target = decide(&settings.policy, &[]).target;
        Ok(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: settings.metric_name.clone(),
                target_size: target.ceil() as i64,
                target_size_float: target,
            }],
        })
    }

    async fn get_metrics_inner(
        &self,
        req: GetMetricsRequest,
    ) -> Result<GetMetricsResponse, Status> {
        let so = req
            .scaled_object_ref
            .ok_or_else(|| Status::invalid_argument("scaledObjectRef: missing"))?;
        check_ref(&so)?;
        let settings = self
            .scaler
            .settings(&so.scaler_metadata, Requester::Namespace(&so.namespace))
            .map_err(|e| fail(&so, e))?;
        Scaler::check_metric_name(&settings, &req.metric_name).map_err(|e| fail(&so, e))?;
        let eval = self
            .scaler
            .evaluate_settings(settings)
            .await
            .map_err(|e| fail(&so, e))?;
        self.scaler.record(&so.namespace, &so.name, &eval.decision);
        let value = finite_non_negative(eval.decision.metric_value);
        Ok(GetMetricsResponse {
            metric_values: vec![MetricValue {
                // KEDA ignores this field; echo the name it asked for.
                metric_name: req.metric_name,
                metric_value: value.round() as i64,
                metric_value_float: value,
            }],
        })
    }

    async fn is_active_inner(&self, so: &ScaledObjectRef) -> Result<IsActiveResponse, Status> {
        check_ref(so)?;
        let settings = self
            .scaler
            .settings(&so.scaler_metadata, Requester::Namespace(&so.namespace))
            .map_err(|e| fail(so, e))?;
        let eval = self
            .scaler
            .evaluate_settings(settings)
            .await
            .map_err(|e| fail(so, e))?;
        self.scaler.record(&so.namespace, &so.name, &eval.decision);
        Ok(IsActiveResponse {
            result: eval.decision.active,
        })
    }

    fn stream_is_active_inner(&self, so: ScaledObjectRef) -> Result<ActiveStream, Status> {
        if self.shutdown.is_cancelled() {
            return Err(Status::unavailable("the scaler is shutting down; retry"));
        }
        check_ref(&so)?;
        let settings = self
            .scaler
            .settings(&so.scaler_metadata, Requester::Namespace(&so.namespace))
            .map_err(|e| fail(&so, e))?;
        let Ok(permit) = self.streams.clone().try_acquire_owned() else {
            debug!(namespace = %so.namespace, scaled_object = %so.name, max = self.max_streams, "StreamIsActive refused: grpc_max_streams streams are open");
            return Err(Status::resource_exhausted(format!(
                "{} StreamIsActive streams are open (grpc_max_streams); retry later",
                self.max_streams
            )));
        };
        Ok(stream::open(
            StreamSpec {
                scaler: self.scaler.clone(),
                scaled_object: format!("{}/{}", so.namespace, so.name),
                settings,
                shutdown: self.shutdown.clone(),
            },
            permit,
        ))
    }
}

/// Refuses a `ScaledObjectRef` whose namespace or name is not a Kubernetes name, before
/// either is logged or used as a label (a newline in one could forge a text log line).
fn check_ref(so: &ScaledObjectRef) -> Result<(), Status> {
    check_scaled_object(&so.namespace, &so.name).map_err(|e| to_status(&ScalerError::Metadata(e)))
}

/// Logs a failed request (without secrets) and maps it to its status.
fn fail(so: &ScaledObjectRef, e: ScalerError) -> Status {
    let status = to_status(&e);
    match e {
        ScalerError::Denied(denied) => {
            warn!(namespace = %so.namespace, scaled_object = %so.name, reason = %denied.reason, "refused by broker_policy")
        }
        ScalerError::Broker(BrokerError::Hidden { id, .. }) => {
            warn!(namespace = %so.namespace, scaled_object = %so.name, id = %id, "inline broker unavailable")
        }
        ScalerError::Broker(_) => {
            warn!(namespace = %so.namespace, scaled_object = %so.name, error = %status.message(), "broker unavailable")
        }
        _ => {
            debug!(namespace = %so.namespace, scaled_object = %so.name, error = %status.message(), "request rejected")
        }
    }
    status
}

/// KEDA turns NaN, ±Inf and negatives into 0 anyway; never send them.
fn finite_non_negative(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

#[tonic::async_trait]
impl ExternalScaler for ScalerService {
    type StreamIsActiveStream = ActiveStream;

    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let started = Instant::now();
        let result = self.is_active_inner(request.get_ref()).await;
        self.observe("IsActive", started, &result);
        result.map(Response::new)
    }

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let started = Instant::now();
        let result = self.stream_is_active_inner(request.into_inner());
        self.observe("StreamIsActive", started, &result);
        result.map(Response::new)
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let started = Instant::now();
        let result = self.get_metric_spec_inner(request.get_ref());
        self.observe("GetMetricSpec", started, &result);
        result.map(Response::new)
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let started = Instant::now();
        let result = self.get_metrics_inner(request.into_inner()).await;
        self.observe("GetMetrics", started, &result);
        result.map(Response::new)
    }
}
