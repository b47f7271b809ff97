//! Metrics of the gRPC boundary: requests by RPC and status code, latency, open streams.

use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// The gRPC families; cheap to clone (the prometheus vectors are shared handles).
#[derive(Clone)]
pub struct GrpcMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    streams_open: IntGauge,
}

impl GrpcMetrics {
    pub(crate) fn new(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "celery_scaler_grpc_requests_total",
                "gRPC requests answered, by RPC and status code (streams: counted when opened).",
            ),
            &["rpc", "code"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "celery_scaler_grpc_request_duration_seconds",
                "Time to answer a unary RPC (for StreamIsActive: time to open the stream).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["rpc"],
        )?;
        let streams_open = IntGauge::with_opts(Opts::new(
            "celery_scaler_grpc_streams_open",
            "StreamIsActive streams currently open.",
        ))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(streams_open.clone()))?;
        Ok(Self {
            requests,
            duration,
            streams_open,
        })
    }

    /// Records one finished request of `rpc` that started at `started`, answered with the
    /// status code named `code`.
    pub fn observe(&self, rpc: &'static str, started: Instant, code: &'static str) {
        self.requests.with_label_values(&[rpc, code]).inc();
        self.duration
            .with_label_values(&[rpc])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts one open `StreamIsActive` stream while the guard lives.
    pub fn stream_guard(&self) -> StreamGuard {
        self.streams_open.inc();
        StreamGuard(self.streams_open.clone())
    }

    /// The number of open `StreamIsActive` streams.
    pub fn streams_open(&self) -> i64 {
        self.streams_open.get()
    }
}

/// One open `StreamIsActive` stream, counted until dropped.
pub struct StreamGuard(IntGauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
