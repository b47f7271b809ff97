//! Parsing of `unacked` hash values and classification of in-flight entries.
//!
//! A value is the JSON array `[message, exchange, routing_key]` written by kombu's
//! `QoS.append`; the message is kombu's envelope, whose `headers.eta` (ISO-8601 or null) tells
//! whether the task is held for later.

use serde::Deserialize;
use serde_json::value::RawValue;

/// What the scaler needs from one `unacked` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct UnackedEntry {
    pub exchange: String,
    pub routing_key: String,
    /// The task's ETA as epoch seconds, when it has one that parses.
    pub eta: Option<f64>,
    /// `headers.eta` was present but not a timestamp Celery writes (a number, `+25:00`,
    /// garbage). The entry is then read as due now (`eta: None`), so it counts as reserved
    /// instead of vanishing; the tracker counts it as malformed.
    pub eta_malformed: bool,
    /// kombu marked the message `redelivered` (`headers.redelivered` or
    /// `properties.delivery_info.redelivered`): a copy restored to its queue (warm shutdown,
    /// visibility timeout) and fetched again, under the same delivery tag. Its restore showed
    /// as a push on the list, not as a new task.
    pub redelivered: bool,
}

/// Why an `unacked` value was skipped. Bounded set: doubles as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("value is not a JSON array [message, exchange, routing_key]")]
    NotTriple,
    #[error("message is not a kombu envelope")]
    BadEnvelope,
}

impl EntryError {
    /// A short, stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            EntryError::NotTriple => "not_triple",
            EntryError::BadEnvelope => "bad_envelope",
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    headers: Option<Headers<'a>>,
    #[serde(default, borrow)]
    properties: Option<Properties<'a>>,
}

#[derive(Deserialize)]
struct Headers<'a> {
    /// Kept raw: a number or an object here must not make the whole entry unreadable.
    #[serde(default, borrow)]
    eta: Option<&'a RawValue>,
    #[serde(default, borrow)]
    redelivered: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Properties<'a> {
    #[serde(default, borrow)]
    delivery_info: Option<DeliveryInfo<'a>>,
}

#[derive(Deserialize)]
struct DeliveryInfo<'a> {
    #[serde(default, borrow)]
    redelivered: Option<&'a RawValue>,
}

/// Whether a raw JSON value is `true` (anything else, malformed included, is not).
fn is_true(v: Option<&RawValue>) -> bool {
    v.is_some_and(|r| r.get().trim() == "true")
}

/// Parses one `unacked` value. The message body is not decoded; only `headers.eta` and the
/// `redelivered` marks are read.
/// An ETA that is not a timestamp does not fail the entry: see [`UnackedEntry::eta_malformed`].
pub fn parse_unacked_value(raw: &[u8]) -> Result<UnackedEntry, EntryError> {
    let (message, exchange, routing_key): (&RawValue, String, String) =
        serde_json::from_slice(raw).map_err(|_| EntryError::NotTriple)?;
    let envelope: Envelope<'_> =
        serde_json::from_str(message.get()).map_err(|_| EntryError::BadEnvelope)?;
    let redelivered = envelope
        .headers
        .as_ref()
        .is_some_and(|h| is_true(h.redelivered))
        || envelope
            .properties
            .as_ref()
            .and_then(|p| p.delivery_info.as_ref())
            .is_some_and(|d| is_true(d.redelivered));
    let raw_eta = envelope.headers.and_then(|h| h.eta);
    let (eta, eta_malformed) = match raw_eta.map(|r| r.get().trim()) {
        None | Some("null") => (None, false),
        Some(json) => match serde_json::from_str::<std::borrow::Cow<'_, str>>(json)
            .ok()
            .and_then(|text| parse_eta(&text))
        {
            Some(eta) => (Some(eta), false),
            None => (None, true),
        },
    };
    Ok(UnackedEntry {
        exchange,
        routing_key,
        eta,
        eta_malformed,
        redelivered,
    })
}

/// ISO-8601 with an offset (what Celery writes: `2026-12-01T06:00:00.123456+00:00`), or
/// without one (read as UTC). Anything else (epoch numbers, offsets beyond ±23:59, words) is
/// `None`.
fn parse_eta(text: &str) -> Option<f64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros() as f64 / 1e6);
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some(naive.and_utc().timestamp_micros() as f64 / 1e6)
}

/// Where an in-flight entry stands at time `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InFlightState {
    /// Prefetched or (with `acks_late`) running: work for a worker slot now.
    Reserved,
    /// Held by a worker until a future ETA: not demand for capacity now.
    Scheduled,
    /// Delivered longer ago than the visibility timeout: kombu will restore it to the queue.
    Stale,
}

impl InFlightState {
    pub fn label(self) -> &'static str {
        match self {
            InFlightState::Reserved => "reserved",
            InFlightState::Scheduled => "scheduled",
            InFlightState::Stale => "stale",
        }
    }
}

/// How far ahead of the scaler's clock an `unacked_index` score may be and still be read as
/// a delivery time (worker hosts' clocks write the scores; an hour covers any sane skew).
pub const MAX_DELIVERY_AHEAD: f64 = 3600.0;

/// Whether an `unacked_index` score can be a delivery time at `now`: finite, not negative
/// (kombu's restore sweep only looks at scores from 0 up) and at most
/// [`MAX_DELIVERY_AHEAD`] ahead. Other scores (`+inf`, `-inf`, `nan`, `1e300`, `-5`) were
/// not written by a worker; kombu would never restore such an entry, so read naively it would
/// count as reserved forever (or as stale at once). The tracker measures such an entry from
/// when it first saw it instead.
pub fn delivery_score_ok(score: f64, now: f64) -> bool {
    score.is_finite() && score >= 0.0 && score <= now + MAX_DELIVERY_AHEAD
}

/// Classifies an entry delivered at `delivered_at` (the `unacked_index` score). A future ETA
/// wins over staleness: a restored ETA task is only held again, never run early.
pub fn classify(
    eta: Option<f64>,
    delivered_at: f64,
    now: f64,
    visibility_timeout: f64,
) -> InFlightState {
    match eta {
        Some(eta) if eta > now => InFlightState::Scheduled,
        _ if now - delivered_at > visibility_timeout => InFlightState::Stale,
        _ => InFlightState::Reserved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = r#"[{"body": "W1szLCA0XSwge31d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "labapp.add", "id": "2fc4f5df", "eta": "2026-11-22T00:49:54.780330+00:00", "expires": null, "retries": 0}, "properties": {"delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "98ecf440"}}, "", "celery"]"#;

    #[test]
    fn parses_a_real_entry_with_eta() {
        let e = parse_unacked_value(REAL.as_bytes()).unwrap();
        assert_eq!(e.exchange, "");
        assert_eq!(e.routing_key, "celery");
        let eta = e.eta.unwrap();
        assert!((eta - 1_795_308_594.780_33).abs() < 1e-3, "{eta}");
    }

    #[test]
    fn null_or_missing_eta_is_none() {
        let v = r#"[{"headers": {"eta": null}}, "myex", "rk.x"]"#;
        let e = parse_unacked_value(v.as_bytes()).unwrap();
        assert_eq!(
            (
                e.exchange.as_str(),
                e.routing_key.as_str(),
                e.eta,
                e.eta_malformed
            ),
            ("myex", "rk.x", None, false)
        );
        let v = r#"[{"body": "x"}, "", "q"]"#;
        assert_eq!(parse_unacked_value(v.as_bytes()).unwrap().eta, None);
    }

    #[test]
    fn a_restored_copy_is_marked_redelivered() {
        assert!(!parse_unacked_value(REAL.as_bytes()).unwrap().redelivered);
        // What kombu's restore writes: both marks.
        let restored = REAL
            .replace(r#""retries": 0}"#, r#""retries": 0, "redelivered": true}"#)
            .replace(
                r#""routing_key": "celery"}"#,
                r#""routing_key": "celery", "redelivered": true}"#,
            );
        assert!(
            parse_unacked_value(restored.as_bytes())
                .unwrap()
                .redelivered
        );
        // Either mark alone is enough; anything but `true` is not a mark.
        for v in [
            r#"[{"headers": {"redelivered": true}}, "", "q"]"#,
            r#"[{"properties": {"delivery_info": {"redelivered": true}}}, "", "q"]"#,
        ] {
            assert!(
                parse_unacked_value(v.as_bytes()).unwrap().redelivered,
                "{v}"
            );
        }
        for v in [
            r#"[{"headers": {"redelivered": false}}, "", "q"]"#,
            r#"[{"headers": {"redelivered": "true"}}, "", "q"]"#,
            r#"[{"headers": {"redelivered": {"x": 1}}}, "", "q"]"#,
            r#"[{"properties": {"delivery_info": null}}, "", "q"]"#,
        ] {
            let e = parse_unacked_value(v.as_bytes()).unwrap();
            assert!(!e.redelivered, "{v}");
        }
    }

    #[test]
    fn naive_eta_is_utc() {
        let v = r#"[{"headers": {"eta": "1970-01-01T00:01:40"}}, "", "q"]"#;
        assert_eq!(parse_unacked_value(v.as_bytes()).unwrap().eta, Some(100.0));
    }

    #[test]
    fn unparseable_etas_are_due_now_and_flagged() {
        for eta in [
            r#""1700000000""#,
            "1700000000",
            "1700000000.5",
            r#""2026-12-01T06:00:00+25:00""#,
            r#""2026-13-01T06:00:00+00:00""#,
            r#""tomorrow""#,
            r#""""#,
            "true",
            r#"{"a": 1}"#,
            "[1]",
        ] {
            let v = format!(r#"[{{"headers": {{"eta": {eta}}}}}, "", "q"]"#);
            let e = parse_unacked_value(v.as_bytes()).expect(eta);
            assert_eq!((e.eta, e.eta_malformed), (None, true), "{eta}");
            assert_eq!(e.routing_key, "q");
            assert_eq!(
                classify(e.eta, 1000.0, 1001.0, 3600.0),
                InFlightState::Reserved
            );
        }
    }

    #[test]
    fn etas_celery_writes_parse() {
        for (eta, want) in [
            ("2026-12-01T06:00:00.123456+00:00", 1_796_104_800.123_456),
            ("2026-12-01T07:00:00.123456+01:00", 1_796_104_800.123_456),
            ("2026-12-01T06:00:00+00:00", 1_796_104_800.0),
            ("2026-12-01T06:00:00Z", 1_796_104_800.0),
            ("2026-12-01T06:00:00.123456", 1_796_104_800.123_456),
        ] {
            let v = format!(r#"[{{"headers": {{"eta": "{eta}"}}}}, "", "q"]"#);
            let e = parse_unacked_value(v.as_bytes()).unwrap();
            assert!(!e.eta_malformed, "{eta}");
            let got = e.eta.unwrap();
            assert!((got - want).abs() < 1e-3, "{eta}: {got}");
        }
    }

    #[test]
    fn delivery_scores_out_of_range_are_refused() {
        let now = 1_796_104_800.0;
        for ok in [now, now - 86_400.0, 0.0, now + MAX_DELIVERY_AHEAD] {
            assert!(delivery_score_ok(ok, now), "{ok}");
        }
        for bad in [
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e300,
            -1.0,
            now + MAX_DELIVERY_AHEAD + 1.0,
        ] {
            assert!(!delivery_score_ok(bad, now), "{bad}");
        }
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        let cases: [(&[u8], EntryError); 6] = [
            (b"", EntryError::NotTriple),
            (b"not json", EntryError::NotTriple),
            (b"[1, 2]", EntryError::NotTriple),
            (br#"[{}, "", "q", "extra"]"#, EntryError::NotTriple),
            (br#"["string", "", "q"]"#, EntryError::BadEnvelope),
            (br#"[{"headers": "x"}, "", "q"]"#, EntryError::BadEnvelope),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse_unacked_value(raw),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(parse_unacked_value(b"\xff\xfe"), Err(EntryError::NotTriple));
    }

    #[test]
    fn classification_table() {
        let vt = 3600.0;
        assert_eq!(classify(None, 1000.0, 1001.0, vt), InFlightState::Reserved);
        assert_eq!(
            classify(Some(900.0), 1000.0, 1001.0, vt),
            InFlightState::Reserved
        );
        assert_eq!(
            classify(Some(2000.0), 1000.0, 1001.0, vt),
            InFlightState::Scheduled
        );
        assert_eq!(
            classify(None, 1000.0, 1000.0 + vt + 1.0, vt),
            InFlightState::Stale
        );
        assert_eq!(
            classify(None, 1000.0, 1000.0 + vt, vt),
            InFlightState::Reserved
        );
        assert_eq!(classify(Some(1e12), 0.0, 1e9, vt), InFlightState::Scheduled);
    }
}
