//! The gRPC boundary: the only module that sees protobuf types.

/// Code generated from `proto/externalscaler.proto`.
pub mod proto {
    tonic::include_proto!("externalscaler");
}
