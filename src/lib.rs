//! celery-scaler: a KEDA external scaler that sizes Celery worker Deployments from what the
//! Redis broker holds (queued, reserved, scheduled and stale tasks).
//!
//! The crate is a library with a thin `main.rs`. See ARCHITECTURE.md for the codemap and the
//! invariants (the Celery model and the policy are pure; only `broker` talks to Redis; only
//! `grpc` sees protobuf types).
#![forbid(unsafe_code)]

pub mod admin;
pub mod broker;
pub mod celery;
pub mod config;
pub mod grpc;
pub mod inspect;
pub mod policy;
pub mod scaler;
pub mod server;
pub mod signals;
pub mod simulate;
pub mod spec;
pub mod telemetry;
pub mod trigger;
