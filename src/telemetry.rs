//! Every metric of the scaler, in one place: [`Metrics`] owns a `prometheus::Registry` built
//! at start-up and every family registered in it (in the style of kube-rs' controller-rs).
//! `server::run` builds one and hands an `Arc` of it down: the broker registry (samplers,
//! pub/sub tasks), the scaler (per-ScaledObject series), the gRPC service and both ports;
//! the admin port encodes it on `/metrics`. Nothing registers in the prometheus crate's
//! default registry, and no metric is a global static (`tests/tidy.rs` fails on one), so
//! each in-process server or broker registry a test builds has its own series.
//!
//! - [`budget`]: the series budget (`max_series`) that per-ScaledObject and per-queue label
//!   sets reserve their series in;
//! - `families`: the broker families; [`broker`]: one sampler's handle on them
//!   ([`BrokerMetrics`]);
//! - [`queues`]: per-queue series (counts, live signals), removed when no longer watched;
//! - [`objects`]: per-ScaledObject series, expired with the idle expiry;
//! - [`grpc`] and [`ports`]: requests, latency, open streams; connections per port.

pub mod broker;
pub mod budget;
pub(crate) mod families;
pub mod grpc;
pub mod objects;
pub mod ports;
pub mod queues;

use std::sync::Arc;

use prometheus::proto::MetricFamily;
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

pub use broker::{BrokerMetrics, Suspect};
pub use budget::{SeriesBudget, DEFAULT_MAX_SERIES, WARN_INTERVAL};
pub use grpc::{GrpcMetrics, StreamGuard};
pub use objects::ObjectSeries;
pub use ports::PortMetrics;
pub use queues::QueueSeries;

use families::BrokerFamilies;

/// Every metric of one scaler process (or of one test's server or broker registry).
pub struct Metrics {
    registry: Registry,
    budget: Arc<SeriesBudget>,
    broker: Arc<BrokerFamilies>,
    grpc: GrpcMetrics,
    ports: PortMetrics,
    objects: ObjectSeries,
}

impl Metrics {
    /// The content type of [`Metrics::encode_text`].
    pub const TEXT_FORMAT: &'static str = prometheus::TEXT_FORMAT;

    /// A fresh registry with every family, and a series budget of [`DEFAULT_MAX_SERIES`].
    pub fn new() -> Arc<Self> {
        Self::with_max_series(DEFAULT_MAX_SERIES)
    }

    /// A fresh registry with every family, and a series budget of `max_series`.
    pub fn with_max_series(max_series: usize) -> Arc<Self> {
        match Self::build(max_series) {
            Ok(m) => Arc::new(m),
            // Only a programming error (two families of one name, a bad name) gets here.
            Err(e) => panic!("metric families do not register: {e}"),
        }
    }

    fn build(max_series: usize) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let budget = Arc::new(SeriesBudget::new(max_series, &registry)?);
        let objects = ObjectSeries::new(budget.clone());
        registry.register(Box::new(objects.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "celery_scaler_build_info",
                "Build of the running scaler (always 1).",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            broker: Arc::new(BrokerFamilies::new(&registry)?),
            grpc: GrpcMetrics::new(&registry)?,
            ports: PortMetrics::new(&registry)?,
            objects,
            budget,
            registry,
        })
    }

    /// The prometheus registry every family is registered in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every family with its current series.
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }

    /// The Prometheus text exposition of [`Metrics::gather`].
    pub fn encode_text(&self) -> prometheus::Result<Vec<u8>> {
        let mut body = Vec::new();
        TextEncoder::new().encode(&self.gather(), &mut body)?;
        Ok(body)
    }

    /// The series budget of the per-ScaledObject and per-queue series.
    pub fn budget(&self) -> &SeriesBudget {
        &self.budget
    }

    /// The handle of the broker labelled `label` (`BrokerSpec::label`).
    pub fn broker(&self, label: &str) -> BrokerMetrics {
        BrokerMetrics::new(label, self.broker.clone(), self.budget.clone())
    }

    pub fn grpc(&self) -> &GrpcMetrics {
        &self.grpc
    }

    pub fn ports(&self) -> &PortMetrics {
        &self.ports
    }

    /// The per-ScaledObject series.
    pub fn objects(&self) -> &ObjectSeries {
        &self.objects
    }
}
