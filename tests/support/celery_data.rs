//! Celery-shaped test data, written exactly as kombu writes it (docs/celery-redis.md):
//! JSON envelopes LPUSHed to queue keys, `unacked` values `[message, exchange, routing_key]`
//! with their `unacked_index` scores, and `_kombu.binding.<exchange>` members.

use serde_json::json;

/// kombu's default priority separator.
pub const SEP: &[u8] = b"\x06\x16";

/// A kombu message envelope (the string a producer LPUSHes).
pub fn envelope(tag: &str, eta: Option<&str>, exchange: &str, routing_key: &str) -> String {
    json!({
        "body": "W1sxXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbH1d",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": "labapp.add", "id": format!("id-{tag}"), "shadow": null,
            "eta": eta, "expires": null, "group": null, "group_index": null, "retries": 0,
            "timelimit": [null, null], "root_id": format!("id-{tag}"), "parent_id": null,
            "argsrepr": "(1,)", "kwargsrepr": "{}", "origin": "gen1@vm",
            "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}
        },
        "properties": {
            "correlation_id": format!("id-{tag}"), "reply_to": "bf5aabaf", "delivery_mode": 2,
            "delivery_info": {"exchange": exchange, "routing_key": routing_key},
            "priority": 0, "body_encoding": "base64", "delivery_tag": tag
        }
    })
    .to_string()
}

/// The `unacked` value kombu's `QoS.append` writes.
pub fn unacked_value(tag: &str, eta: Option<&str>, exchange: &str, routing_key: &str) -> String {
    let message: serde_json::Value =
        serde_json::from_str(&envelope(tag, eta, exchange, routing_key)).expect("envelope json");
    json!([message, exchange, routing_key]).to_string()
}

/// Key name with prefix.
pub fn key(prefix: &str, name: &str) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// A priority sub-key `prefix + queue + sep + step`.
pub fn sub_key(prefix: &str, queue: &str, sep: &[u8], step: u32) -> Vec<u8> {
    let mut k = key(prefix, queue);
    k.extend_from_slice(sep);
    k.extend_from_slice(step.to_string().as_bytes());
    k
}

/// LPUSHes `n` messages to `key`.
pub fn push(conn: &mut redis::Connection, key: &[u8], n: usize) {
    for i in 0..n {
        let msg = envelope(&format!("q{i}"), None, "", "q");
        let _: i64 = redis::cmd("LPUSH")
            .arg(key)
            .arg(msg)
            .query(conn)
            .expect("lpush");
    }
}

/// What `QoS.append` does: `MULTI; ZADD unacked_index score tag; HSET unacked tag value; EXEC`.
pub fn deliver(conn: &mut redis::Connection, prefix: &str, tag: &str, score: f64, value: &str) {
    let _: () = redis::pipe()
        .atomic()
        .cmd("ZADD")
        .arg(key(prefix, "unacked_index"))
        .arg(score)
        .arg(tag)
        .ignore()
        .cmd("HSET")
        .arg(key(prefix, "unacked"))
        .arg(tag)
        .arg(value)
        .ignore()
        .query(conn)
        .expect("deliver");
}

/// What `QoS.ack` does: `MULTI; ZREM unacked_index tag; HDEL unacked tag; EXEC`.
pub fn ack(conn: &mut redis::Connection, prefix: &str, tag: &str) {
    let _: () = redis::pipe()
        .atomic()
        .cmd("ZREM")
        .arg(key(prefix, "unacked_index"))
        .arg(tag)
        .ignore()
        .cmd("HDEL")
        .arg(key(prefix, "unacked"))
        .arg(tag)
        .ignore()
        .query(conn)
        .expect("ack");
}

/// What kombu's `Channel._do_restore_message` makes of a message it puts back: the same
/// envelope (same delivery tag) with `headers.redelivered` and
/// `properties.delivery_info.redelivered` set.
pub fn redelivered(envelope_json: &str) -> String {
    let mut m: serde_json::Value = serde_json::from_str(envelope_json).expect("envelope json");
    m["headers"]["redelivered"] = json!(true);
    m["properties"]["delivery_info"]["redelivered"] = json!(true);
    m.to_string()
}

/// The `unacked` value of a restored copy fetched again.
pub fn redelivered_unacked_value(tag: &str, exchange: &str, routing_key: &str) -> String {
    let message: serde_json::Value =
        serde_json::from_str(&redelivered(&envelope(tag, None, exchange, routing_key)))
            .expect("envelope json");
    json!([message, exchange, routing_key]).to_string()
}

/// Adds a `_kombu.binding.<exchange>` member `rk sep pattern sep queue`.
pub fn bind(
    conn: &mut redis::Connection,
    prefix: &str,
    exchange: &str,
    rk: &str,
    queue: &str,
    sep: &[u8],
) {
    let mut member = rk.as_bytes().to_vec();
    member.extend_from_slice(sep);
    member.extend_from_slice(sep);
    member.extend_from_slice(queue.as_bytes());
    let _: i64 = redis::cmd("SADD")
        .arg(key(prefix, &format!("_kombu.binding.{exchange}")))
        .arg(member)
        .query(conn)
        .expect("sadd");
}

/// Epoch seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// ISO-8601 UTC text of epoch seconds `t`, as Celery writes ETAs.
pub fn iso(t: f64) -> String {
    let secs = t.floor() as i64;
    let micros = ((t - t.floor()) * 1e6) as u32;
    chrono::DateTime::from_timestamp(secs, micros * 1000)
        .expect("timestamp in range")
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}
