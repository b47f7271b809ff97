//! Reading Redis replies: integers, score listings and bulk strings out of `redis::Value`s,
//! turning a per-command server error into a [`BrokerError`].

use redis::{RedisError, Value};

use super::error::{map_error, BrokerError};

/// What a reply was expected to be, for error messages.
fn unexpected(label: &str, what: &str, v: &Value) -> BrokerError {
    BrokerError::Command {
        broker: label.to_string(),
        detail: format!("expected {what}, got {}", kind_of(v)),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Int(_) => "integer",
        Value::BulkString(_) => "bulk string",
        Value::Array(_) => "array",
        Value::SimpleString(_) => "simple string",
        Value::Okay => "OK",
        Value::Map(_) => "map",
        Value::Set(_) => "set",
        Value::Double(_) => "double",
        Value::ServerError(_) => "error",
        _ => "other",
    }
}

/// The server error carried by `v`, mapped; `None` when `v` is not an error.
pub(crate) fn server_error(label: &str, v: &Value) -> Option<BrokerError> {
    match v {
        Value::ServerError(e) => {
            let e: RedisError = e.clone().into();
            Some(map_error(label, &e, None, std::time::Duration::ZERO))
        }
        _ => None,
    }
}

/// Whether `v` is a WRONGTYPE error (a key of another type where a list was expected).
pub(crate) fn is_wrong_type(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if e.code() == "WRONGTYPE")
}

pub(crate) fn int(label: &str, v: &Value) -> Result<u64, BrokerError> {
    if let Some(e) = server_error(label, v) {
        return Err(e);
    }
    match v {
        Value::Int(n) => Ok(u64::try_from(*n).unwrap_or(0)),
        _ => Err(unexpected(label, "an integer", v)),
    }
}

fn items<'a>(label: &str, v: &'a Value) -> Result<&'a [Value], BrokerError> {
    if let Some(e) = server_error(label, v) {
        return Err(e);
    }
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        _ => Err(unexpected(label, "an array", v)),
    }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn score(v: &Value) -> Option<f64> {
    match v {
        Value::Double(d) => Some(*d),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

/// A `ZRANGE … WITHSCORES` reply (RESP2 flat or RESP3 nested pairs).
pub(crate) fn scored_members(label: &str, v: &Value) -> Result<Vec<(Vec<u8>, f64)>, BrokerError> {
    let items = items(label, v)?;
    let bad = || unexpected(label, "member/score pairs", v);
    let mut out = Vec::with_capacity(items.len() / 2);
    if items.iter().all(|i| matches!(i, Value::Array(_))) {
        for pair in items {
            let Value::Array(pair) = pair else {
                return Err(bad());
            };
            match pair.as_slice() {
                [m, s] => out.push((
                    bytes(m).ok_or_else(bad)?.to_vec(),
                    score(s).ok_or_else(bad)?,
                )),
                _ => return Err(bad()),
            }
        }
        return Ok(out);
    }
    if items.len() % 2 != 0 {
        return Err(bad());
    }
    for pair in items.chunks_exact(2) {
        let member = bytes(&pair[0]).ok_or_else(bad)?.to_vec();
        let s = score(&pair[1]).ok_or_else(bad)?;
        out.push((member, s));
    }
    Ok(out)
}

/// An `HMGET` or `SRANDMEMBER` reply: one optional byte string per item.
pub(crate) fn optional_strings(
    label: &str,
    v: &Value,
) -> Result<Vec<Option<Vec<u8>>>, BrokerError> {
    Ok(items(label, v)?
        .iter()
        .map(|i| bytes(i).map(<[u8]>::to_vec))
        .collect())
}

/// A kind of key the sampler reads; a bounded metric label (`key_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// A queue list or one of its priority sub-lists.
    Queue,
    /// The `unacked` hash.
    Unacked,
    /// The `unacked_index` sorted set.
    UnackedIndex,
    /// A `_kombu.binding.<exchange>` set.
    Binding,
}

impl KeyKind {
    pub const ALL: [KeyKind; 4] = [
        KeyKind::Queue,
        KeyKind::Unacked,
        KeyKind::UnackedIndex,
        KeyKind::Binding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Queue => "queue",
            KeyKind::Unacked => "unacked",
            KeyKind::UnackedIndex => "unacked_index",
            KeyKind::Binding => "binding",
        }
    }
}

/// Longest key name kept in an [`UnreadableKey`] (the rest is cut, marked with `…`).
const MAX_KEY_SHOWN: usize = 120;

/// A key the latest sample skipped because it holds another Redis type than kombu writes
/// (`WRONGTYPE`). Everything else on the broker is still served.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UnreadableKey {
    pub kind: KeyKind,
    /// The key's name (lossy UTF-8, cut to a bounded length); never a metric label.
    pub key: String,
}

impl UnreadableKey {
    pub(crate) fn new(kind: KeyKind, key: &[u8]) -> Self {
        let text = String::from_utf8_lossy(key);
        let key = match text.char_indices().nth(MAX_KEY_SHOWN) {
            Some((at, _)) => format!("{}…", &text[..at]),
            None => text.into_owned(),
        };
        Self { kind, key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_key_names_are_bounded_and_lossy() {
        let long = vec![b'k'; 10_000];
        let k = UnreadableKey::new(KeyKind::Binding, &long);
        assert_eq!(k.key.chars().count(), MAX_KEY_SHOWN + 1);
        assert!(k.key.ends_with('…'));
        let k = UnreadableKey::new(KeyKind::Queue, b"celery\x06\x163\xff");
        assert_eq!(k.key, "celery\u{6}\u{16}3\u{fffd}");
        assert_eq!(KeyKind::UnackedIndex.as_str(), "unacked_index");
    }
}
