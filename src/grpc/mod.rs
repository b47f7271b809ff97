//! The gRPC boundary: the only module that sees protobuf types.
//!
//! [`ScalerService`] implements KEDA's `externalscaler.ExternalScaler` on top of
//! [`crate::scaler::Scaler`]; [`status::to_status`] is the one place where errors become gRPC
//! status codes.

mod health;
mod service;
pub mod status;
mod stream;

pub use health::health_server;
pub use service::ScalerService;

/// Code generated from `proto/externalscaler.proto`.
pub mod proto {
    tonic::include_proto!("externalscaler");
}
