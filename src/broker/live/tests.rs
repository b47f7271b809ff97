//! Tests of the broker side of the live state: the notification flags and the decoding of
//! the extra reads (the core's own tests are in `signals/live/book/tests.rs`).

use std::collections::HashMap;

use super::*;
use crate::signals::live::book::tests::{anchored_tick, watch};
use crate::signals::live::events::EventState;

#[test]
fn keyspace_flags() {
    assert!(flags_enable_lists("Kl"));
    assert!(flags_enable_lists("KEA"));
    assert!(!flags_enable_lists("El"));
    assert!(!flags_enable_lists("Kh"));
    assert!(!flags_enable_lists(""));
    let reply = redis::Value::Array(vec![
        redis::Value::BulkString(b"notify-keyspace-events".to_vec()),
        redis::Value::BulkString(b"lK".to_vec()),
    ]);
    assert_eq!(Keyspace::from_reply(&reply), Keyspace::Enabled);
    let off = redis::Value::Array(vec![
        redis::Value::BulkString(b"notify-keyspace-events".to_vec()),
        redis::Value::BulkString(Vec::new()),
    ]);
    assert_eq!(Keyspace::from_reply(&off), Keyspace::Disabled);
}

#[test]
fn a_server_without_lpos_is_not_asked_again() {
    let mut book = LiveBook::new(10.0);
    let w = watch(&["celery"]);
    anchored_tick(&mut book, 0.0, &w, 5, Some("m0"), None);
    anchored_tick(&mut book, 1.0, &w, 5, Some("m1"), None);
    assert_eq!(book.plan(std::slice::from_ref(&w)).anchors.len(), 1);
    // The reply to LPOS was an error: no more LPOS for this broker.
    let plan = book.plan(std::slice::from_ref(&w));
    let mut extras = TickExtras::default();
    let m2 = br#"{"body": "", "properties": {"delivery_tag": "m2"}}"#.to_vec();
    let error = |e: &[u8]| redis::parse_redis_value(e).unwrap();
    // Per key: LPOS of the anchor, then LINDEX 0 and -1. A key that changed type is no
    // reason to stop asking.
    let wrongtype =
        error(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    let answers = [wrongtype, redis::Value::Nil, redis::Value::Nil];
    read_answers(&mut extras, &plan, false, &answers);
    assert!(!extras.lpos_refused);
    assert_eq!(extras.positions[b"celery".as_slice()], None);
    let answers = [
        error(b"-ERR unknown command 'LPOS'\r\n"),
        redis::Value::BulkString(m2.clone()),
        redis::Value::Nil,
    ];
    read_answers(&mut extras, &plan, false, &answers);
    assert!(extras.lpos_refused);
    assert_eq!(extras.heads[b"celery".as_slice()], m2);
    // A head that is not a kombu message (no delivery tag: maybe not unique) is no anchor.
    let mut other = TickExtras::default();
    let plain = [redis::Value::BulkString(b"m2".to_vec()), redis::Value::Nil];
    read_answers(
        &mut other,
        &Plan {
            tail_keys: plan.tail_keys.clone(),
            anchors: HashMap::new(),
        },
        false,
        &plain,
    );
    assert!(other.heads.is_empty());
    extras.llen.insert(b"celery".to_vec(), 5);
    book.update(
        2.0,
        std::slice::from_ref(&w),
        &mut extras,
        &mut EventState::default(),
        |_, _| 5,
        |_, _| 0,
    );
    assert!(book.plan(std::slice::from_ref(&w)).anchors.is_empty());
}
