//! Metrics of the two listening ports (gRPC and admin): connections open now, and
//! connections the server closed before serving them.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// The connection families; cheap to clone (the prometheus vectors are shared handles).
#[derive(Clone)]
pub struct PortMetrics {
    open: IntGaugeVec,
    refused: IntCounterVec,
}

impl PortMetrics {
    pub(crate) fn new(registry: &Registry) -> prometheus::Result<Self> {
        let open = IntGaugeVec::new(
            Opts::new(
                "celery_scaler_connections_open",
                "Connections open now, by port (grpc, admin).",
            ),
            &["port"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "celery_scaler_connections_refused_total",
                "Connections closed by the server before serving them, by port and reason \
                 (limit, handshake_timeout, header_timeout).",
            ),
            &["port", "reason"],
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        Ok(Self { open, refused })
    }

    /// One more (`+1`) or one fewer (`-1`) connection open on `port`.
    pub fn opened(&self, port: &'static str, delta: i64) {
        self.open.with_label_values(&[port]).add(delta);
    }

    /// Counts one connection of `port` closed for `reason`.
    pub fn refused(&self, port: &'static str, reason: &'static str) {
        self.refused.with_label_values(&[port, reason]).inc();
    }
}
