//! The Celery/kombu model of the Redis broker: key names and message parsing.
//!
//! Architecture Invariant: this module is pure. It does no I/O and reads no clock; times are
//! passed in as epoch seconds. The facts it encodes, and how each was established, are in
//! `docs/celery-redis.md`.

mod event;
mod keys;
mod message;

pub use event::{parse_delivery_tag, parse_worker_event, EventError, WorkerEvent, WorkerEventKind};
pub use keys::{
    parse_binding_member, Binding, Layout, DEFAULT_PRIORITY_STEPS, DEFAULT_SEPARATOR, MAX_TOPIC_LEN,
};
pub use message::{
    classify, delivery_score_ok, parse_unacked_value, EntryError, InFlightState, UnackedEntry,
    MAX_DELIVERY_AHEAD,
};
