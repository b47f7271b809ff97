//! Metrics of the gRPC boundary: requests by RPC and status code, latency, open streams.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, HistogramVec,
    IntCounterVec, IntGauge,
};
use tonic::Status;

use super::status::code_label;

static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "celery_scaler_grpc_requests_total",
        "gRPC requests answered, by RPC and status code (streams: counted when opened).",
        &["rpc", "code"]
    )
    .expect("metric registers once")
});

static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "celery_scaler_grpc_request_duration_seconds",
        "Time to answer a unary RPC (for StreamIsActive: time to open the stream).",
        &["rpc"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric registers once")
});

static STREAMS_OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "celery_scaler_grpc_streams_open",
        "StreamIsActive streams currently open."
    )
    .expect("metric registers once")
});

/// Registers the metrics so they show on `/metrics` before the first request.
pub fn init() {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&DURATION);
    LazyLock::force(&STREAMS_OPEN);
}

/// Records one finished request of `rpc` that started at `started`.
pub fn observe<T>(rpc: &'static str, started: Instant, result: &Result<T, Status>) {
    let code = match result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    };
    REQUESTS.with_label_values(&[rpc, code_label(code)]).inc();
    DURATION
        .with_label_values(&[rpc])
        .observe(started.elapsed().as_secs_f64());
}

/// Counts one open `StreamIsActive` stream while the guard lives.
pub struct StreamGuard(());

impl StreamGuard {
    pub fn new() -> Self {
        STREAMS_OPEN.inc();
        StreamGuard(())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        STREAMS_OPEN.dec();
    }
}

/// The number of open `StreamIsActive` streams (for tests and the drain log).
pub fn observe_stream_open() -> i64 {
    STREAMS_OPEN.get()
}
