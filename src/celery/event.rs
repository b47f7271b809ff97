//! Parsing of what Celery publishes on PUB/SUB (worker events) and of the one field the
//! sampler reads from a queued message (its delivery tag). See `docs/celery-redis.md` §3
//! (envelope, delivery tags) and §8 (worker events).
//!
//! A worker event arrives as kombu's JSON envelope whose `body` is base64 of the JSON event
//! (`hostname`, `active`, `processed`, `freq`, `type`, …). Pure code: no I/O, no clock.

use serde::Deserialize;

/// Why a published worker event was skipped. Bounded set: doubles as a metric/log label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("payload is not a kombu JSON envelope")]
    BadEnvelope,
    #[error("body is not base64")]
    BadBase64,
    #[error("body is not a JSON worker event")]
    BadBody,
    #[error("hostname is empty or longer than MAX_HOSTNAME bytes")]
    BadHostname,
}

/// Longest worker hostname accepted (Celery's `name@host`, a DNS name is at most 253 bytes):
/// every tracked hostname is matched against `workerHostnames` patterns on each RPC.
pub const MAX_HOSTNAME: usize = 255;

impl EventError {
    pub fn label(self) -> &'static str {
        match self {
            EventError::BadEnvelope => "bad_envelope",
            EventError::BadBase64 => "bad_base64",
            EventError::BadBody => "bad_body",
            EventError::BadHostname => "bad_hostname",
        }
    }
}

/// Which worker event it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerEventKind {
    Heartbeat,
    Online,
    Offline,
    Other,
}

/// A decoded `worker-*` event.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerEvent {
    pub kind: WorkerEventKind,
    pub hostname: String,
    /// Tasks executing now.
    pub active: u64,
    /// Tasks accepted (started) since the worker started.
    pub processed: u64,
    /// Heartbeat interval, seconds (Celery's default is 2).
    pub freq: f64,
}

#[derive(Deserialize)]
struct Envelope {
    body: String,
    #[serde(default)]
    properties: Option<EnvelopeProperties>,
}

#[derive(Deserialize)]
struct EnvelopeProperties {
    #[serde(default)]
    body_encoding: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    hostname: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    active: Option<u64>,
    #[serde(default)]
    processed: Option<u64>,
    #[serde(default)]
    freq: Option<f64>,
}

/// Decodes one worker event as published on `<prefix>/<db>.celeryev/worker.*`.
pub fn parse_worker_event(payload: &[u8]) -> Result<WorkerEvent, EventError> {
    let envelope: Envelope =
        serde_json::from_slice(payload).map_err(|_| EventError::BadEnvelope)?;
    let base64 = envelope
        .properties
        .and_then(|p| p.body_encoding)
        .is_none_or(|e| e == "base64");
    let raw = if base64 {
        decode_base64(envelope.body.as_bytes()).ok_or(EventError::BadBase64)?
    } else {
        envelope.body.into_bytes()
    };
    let body: Body = serde_json::from_slice(&raw).map_err(|_| EventError::BadBody)?;
    if body.hostname.is_empty() || body.hostname.len() > MAX_HOSTNAME {
        return Err(EventError::BadHostname);
    }
    let kind = match body.kind.as_deref() {
        Some("worker-heartbeat") => WorkerEventKind::Heartbeat,
        Some("worker-online") => WorkerEventKind::Online,
        Some("worker-offline") => WorkerEventKind::Offline,
        _ => WorkerEventKind::Other,
    };
    Ok(WorkerEvent {
        kind,
        hostname: body.hostname,
        active: body.active.unwrap_or(0),
        processed: body.processed.unwrap_or(0),
        freq: body
            .freq
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(2.0),
    })
}

#[derive(Deserialize)]
struct Message {
    properties: MessageProperties,
}

#[derive(Deserialize)]
struct MessageProperties {
    delivery_tag: String,
}

/// The `properties.delivery_tag` of a queued kombu message (the string in a queue list).
pub fn parse_delivery_tag(message: &[u8]) -> Option<String> {
    serde_json::from_slice::<Message>(message)
        .ok()
        .map(|m| m.properties.delivery_tag)
}

/// kombu's base64 body (`base64.b64encode`: standard alphabet, padded). Line breaks and
/// spaces are ignored, padding may be missing, and the URL-safe alphabet is accepted too;
/// `None` on anything else.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::{alphabet, Engine as _};
    const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|c| !matches!(c, b'\n' | b'\r' | b' '))
        .collect();
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEARTBEAT_BODY: &str = r#"{"hostname":"w1@vm","utcoffset":0.0,"pid":15529,"clock":2,"freq":2.0,"active":3,"processed":17,"loadavg":[1.95,0.75,0.28],"sw_ident":"py-celery","sw_ver":"5.7.0","sw_sys":"Linux","timestamp":1795308570.9603913,"type":"worker-heartbeat"}"#;

    /// Reference encoder (an independent implementation) for the decoder's tests.
    fn encode(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn envelope(body: &str) -> String {
        serde_json::json!({
            "body": encode(body.as_bytes()),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": "w1@vm"},
            "properties": {"delivery_mode": 1,
                "delivery_info": {"exchange": "celeryev", "routing_key": "worker.heartbeat"},
                "priority": 0, "body_encoding": "base64", "delivery_tag": "0f27a1f5"}
        })
        .to_string()
    }

    #[test]
    fn decodes_a_real_shaped_heartbeat() {
        let e = parse_worker_event(envelope(HEARTBEAT_BODY).as_bytes()).unwrap();
        assert_eq!(e.kind, WorkerEventKind::Heartbeat);
        assert_eq!(e.hostname, "w1@vm");
        assert_eq!((e.active, e.processed, e.freq), (3, 17, 2.0));
    }

    #[test]
    fn offline_and_other_kinds() {
        let off = r#"{"hostname":"w2@vm","freq":2.0,"type":"worker-offline"}"#;
        let e = parse_worker_event(envelope(off).as_bytes()).unwrap();
        assert_eq!((e.kind, e.active), (WorkerEventKind::Offline, 0));
        let other = r#"{"hostname":"w2@vm","type":"task-sent"}"#;
        let e = parse_worker_event(envelope(other).as_bytes()).unwrap();
        assert_eq!(e.kind, WorkerEventKind::Other);
    }

    #[test]
    fn rejects_malformed_payloads() {
        assert_eq!(
            parse_worker_event(b"not json"),
            Err(EventError::BadEnvelope)
        );
        assert_eq!(
            parse_worker_event(br#"{"body":"@@@"}"#),
            Err(EventError::BadBase64)
        );
        let bad = format!(r#"{{"body":"{}"}}"#, encode(b"[1,2]"));
        assert_eq!(parse_worker_event(bad.as_bytes()), Err(EventError::BadBody));
    }

    #[test]
    fn empty_and_oversized_hostnames_are_refused() {
        let long = "w".repeat(MAX_HOSTNAME + 1);
        for host in ["", long.as_str()] {
            let body = serde_json::json!({"hostname": host, "type": "worker-heartbeat"});
            assert_eq!(
                parse_worker_event(envelope(&body.to_string()).as_bytes()),
                Err(EventError::BadHostname)
            );
        }
        // A DNS name is at most 253 bytes: 255 covers `name@` with a short node name, and
        // keeps the glob over every tracked hostname cheap.
        let dns_plus = "w".repeat(256);
        let body = serde_json::json!({"hostname": dns_plus, "type": "worker-heartbeat"});
        assert_eq!(
            parse_worker_event(envelope(&body.to_string()).as_bytes()),
            Err(EventError::BadHostname)
        );
        let fits = "w".repeat(MAX_HOSTNAME);
        let body = serde_json::json!({"hostname": fits, "type": "worker-heartbeat"});
        assert!(parse_worker_event(envelope(&body.to_string()).as_bytes()).is_ok());
    }

    #[test]
    fn base64_round_trips_every_length() {
        for n in 0..10 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode_base64(encode(&data).as_bytes()).unwrap(), data);
        }
    }

    #[test]
    fn base64_tolerates_what_python_writes() {
        // Unpadded, wrapped at any column, or in the URL-safe alphabet: same bytes.
        assert_eq!(decode_base64(b"aGk").unwrap(), b"hi");
        assert_eq!(decode_base64(b"aG\r\nk=").unwrap(), b"hi");
        assert_eq!(decode_base64(b"-_8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64(b"+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64(b"").unwrap(), b"");
        assert!(decode_base64(b"aGk@").is_none());
    }

    #[test]
    fn delivery_tag_of_a_queued_message() {
        let m =
            r#"{"body":"x","headers":{},"properties":{"delivery_tag":"98ecf440","priority":0}}"#;
        assert_eq!(
            parse_delivery_tag(m.as_bytes()).as_deref(),
            Some("98ecf440")
        );
        assert_eq!(parse_delivery_tag(b"{}"), None);
        assert_eq!(parse_delivery_tag(b"garbage"), None);
    }
}
