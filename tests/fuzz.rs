//! Time-bounded fuzzing of the parsers that hostile input reaches (issue 11): trigger
//! metadata (through the cache, as the gRPC service calls it), kombu `unacked` values, worker
//! events (heartbeats) and the binding topic matcher.
//!
//! Each target draws structured nasty inputs from proptest strategies (huge values, many keys,
//! unicode, control characters, deep `#.#.#` patterns, huge numbers, `NaN`/`inf` strings) for
//! `FUZZ_SECONDS` seconds (default 2; CI's fuzz stage sets 60). Each input runs on a worker
//! thread: a panic fails the target, and so does an input that is not done within
//! `FUZZ_INPUT_LIMIT_MS` (default 2000): a hang detector, not a speed test. A failure prints
//! the seed (`FUZZ_SEED` replays a run) and the input. Each target ends with a line
//! `fuzz <target>: N inputs in S s, 0 failed`.
//!
//! Strength: at *full strength* (`FUZZ_FULL=1`) strings repeat up to 40,000 times and binding
//! patterns have up to 64 words, which may themselves hold dots (so patterns and routing keys
//! can be thousands of words deep). These inputs found the exponential, recursive topic
//! matcher (a hang, or a stack overflow that aborted the process) and the quadratic echo of a
//! `queues` value of tens of thousands of commas; both are fixed, so CI runs at full strength.
//! `FUZZ_FULL=0` gives the small variant (repeats up to 4,000, patterns of at most 5 dot-free
//! words against keys of at most 40 words).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::HashMap;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use celery_scaler::broker::NamedConnections;
use celery_scaler::celery::{
    classify, parse_binding_member, parse_delivery_tag, parse_unacked_value, parse_worker_event,
    Binding, DEFAULT_SEPARATOR,
};
use celery_scaler::trigger::TriggerCache;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Whether inputs are full size unless `FUZZ_FULL` (`1` or `0`) says otherwise.
const FULL_STRENGTH: bool = true;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn full_strength() -> bool {
    match std::env::var("FUZZ_FULL").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => FULL_STRENGTH,
    }
}

/// Runs `check` on inputs drawn from `strategy` until the time budget is spent.
fn fuzz<T, S>(target: &str, strategy: S, check: fn(&T))
where
    T: Clone + Debug + Send + 'static,
    S: Strategy<Value = T>,
{
    let budget = Duration::from_secs(env_number("FUZZ_SECONDS", 2));
    let limit = Duration::from_millis(env_number("FUZZ_INPUT_LIMIT_MS", 2000));
    let seed = env_number("FUZZ_SEED", u64::from(std::process::id()) ^ 0x5eed_f022);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strength = if full_strength() { "full" } else { "default" };
    eprintln!(
        "fuzz {target}: FUZZ_SEED={seed}, {budget:?}, {limit:?} per input, {strength} strength"
    );

    let (to_worker, inputs) = mpsc::channel::<T>();
    let (to_main, results) = mpsc::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        for input in inputs {
            let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
            let outcome = outcome.map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into())
            });
            if to_main.send(outcome).is_err() {
                return;
            }
        }
    });

    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < budget {
        let input = strategy.new_tree(&mut runner).unwrap().current();
        to_worker.send(input.clone()).unwrap();
        let shown = || {
            let text = format!("{input:?}");
            let cut: String = text.chars().take(2000).collect();
            format!("{cut} ({} chars of Debug output)", text.len())
        };
        match results.recv_timeout(limit) {
            Ok(Ok(())) => count += 1,
            Ok(Err(panic)) => panic!(
                "fuzz {target} (FUZZ_SEED={seed}): panic after {count} inputs: {panic}\ninput: {}",
                shown()
            ),
            Err(_) => panic!(
                "fuzz {target} (FUZZ_SEED={seed}): one input took over {limit:?} (a hang?) after \
                 {count} inputs\ninput: {}",
                shown()
            ),
        }
    }
    println!(
        "fuzz {target}: {count} inputs in {:.1} s, 0 failed (FUZZ_SEED={seed})",
        start.elapsed().as_secs_f64()
    );
    assert!(count > 0, "fuzz {target}: no input ran");
}

/// Strings meant to break parsers: numbers at the edges, unicode, control characters,
/// separators, escapes and long runs.
fn nasty_string() -> BoxedStrategy<String> {
    let repeats = if full_strength() { 40_000 } else { 4_000 };
    let special = prop::sample::select(vec![
        "",
        " ",
        "0",
        "-0",
        "1",
        "-1",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "+inf",
        "infinity",
        "1e308",
        "1e309",
        "-1e308",
        "1e-320",
        "4.9e-324",
        "18446744073709551616",
        "9223372036854775807",
        "-9223372036854775809",
        "0x10",
        "1_000",
        "+6379",
        "6379 ",
        "127.0.0.1:+6379",
        "[::1]:6379,",
        "[::1]",
        "::1",
        "localhost:0",
        "h:65536",
        "a:b:c",
        ",,,",
        "celery,",
        "\\x06\\x16",
        "\\x",
        "\\xZZ",
        "\\\\",
        "\\u{0}",
        "\u{0}",
        "\u{7f}",
        "\r\n",
        "\u{feff}",
        "１２３",
        "ﬁ",
        "é",
        "🦀",
        "\u{202e}",
        "latency",
        "backlog",
        "true",
        "false",
        "TRUE",
        "yes",
        "0,3,6,9",
        "9,6,3,0",
        "0,0,0",
        "255",
        "256",
        "-3",
        "#",
        "*",
        "#.#.#",
    ])
    .prop_map(str::to_string);
    prop_oneof![
        4 => special,
        3 => "\\PC{0,40}",
        2 => "[ -~]{0,80}",
        1 => "[\\x00-\\x1f\\x7f ,:;\\\\]{0,40}",
        1 => (prop::sample::select(vec!["a", "celery", "#.", "9", ",", "\\x06", "é"]), 1usize..repeats)
            .prop_map(|(s, n)| s.repeat(n)),
        1 => prop::collection::vec("[a-z0-9_.-]{1,12}", 0..300).prop_map(|v| v.join(",")),
    ]
    .boxed()
}

fn metadata() -> impl Strategy<Value = HashMap<String, String>> {
    let key = prop_oneof![
        8 => prop::sample::select(celery_scaler::trigger::metadata_keys().collect::<Vec<_>>()),
        1 => nasty_string(),
    ];
    prop::collection::hash_map(key, nasty_string(), 0..24)
}

#[test]
fn fuzz_trigger_metadata() {
    fuzz("metadata", metadata(), |md| {
        let cache = cache();
        let connections = NamedConnections::new();
        let first = cache.get(md, &connections).map(|s| s.metric_name.clone());
        let again = cache.get(md, &connections).map(|s| s.metric_name.clone());
        assert_eq!(
            first.is_ok(),
            again.is_ok(),
            "the cache changed the outcome"
        );
        if let Err(e) = first {
            assert!(!e.to_string().is_empty(), "an error must say something");
        }
    });
}

/// One cache for the whole run, as the service has: it also sees many distinct entries.
fn cache() -> &'static TriggerCache {
    static CACHE: std::sync::OnceLock<TriggerCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(TriggerCache::default)
}

/// A JSON value of bounded size, nested up to `depth`.
fn json_value() -> BoxedStrategy<serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        nasty_string().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::hash_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// ETA texts Celery writes, almost writes, and never writes.
fn eta() -> impl Strategy<Value = serde_json::Value> {
    let text = prop_oneof![
        Just("2026-11-22T00:49:54.780330+00:00".to_string()),
        Just("1700000000".to_string()),
        Just("2026-11-22T00:49:54+25:00".to_string()),
        Just("+275760-09-13T00:00:00Z".to_string()),
        Just("9999-12-31T23:59:59.999999999".to_string()),
        (
            any::<i32>(),
            0u32..14,
            0u32..33,
            0u32..25,
            "[+-][0-9]{2}:[0-9]{2}"
        )
            .prop_map(|(y, mo, d, h, off)| format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:00:00.123456{off}"
            )),
        nasty_string(),
    ];
    prop_oneof![
        3 => text.prop_map(serde_json::Value::String),
        1 => json_value(),
    ]
}

fn unacked_value() -> impl Strategy<Value = Vec<u8>> {
    let envelope = (eta(), json_value(), nasty_string()).prop_map(|(eta, extra, rk)| {
        serde_json::json!({
            "body": "W1tdLCB7fSwge31d",
            "headers": {"eta": eta, "extra": extra, "task": "t"},
            "properties": {"delivery_info": {"exchange": "", "routing_key": rk},
                           "delivery_tag": "98ecf440"}
        })
    });
    let triple = (envelope, nasty_string(), nasty_string())
        .prop_map(|(m, ex, rk)| serde_json::json!([m, ex, rk]).to_string().into_bytes());
    prop_oneof![
        4 => triple,
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => (1usize..5_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

#[test]
fn fuzz_unacked_values() {
    let times = prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(1e300),
        Just(1.7e9)
    ];
    let input = (unacked_value(), times.clone(), times.clone(), times);
    fuzz("unacked", input, |(raw, delivered, now, vt)| {
        if let Ok(entry) = parse_unacked_value(raw) {
            let _ = classify(entry.eta, *delivered, *now, *vt);
        }
        let _ = parse_delivery_tag(raw);
    });
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn worker_event() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        Just(serde_json::json!(9_223_372_036_854_775_808u64)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(1e300)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!("NaN")),
        Just(serde_json::json!("inf")),
        json_value(),
    ]
    .boxed();
    let kind = prop_oneof![
        prop::sample::select(vec!["worker-heartbeat", "worker-online", "worker-offline"])
            .prop_map(str::to_string),
        nasty_string(),
    ];
    let body = (nasty_string(), kind, number.clone(), number.clone(), number)
        .prop_map(|(host, kind, active, processed, freq)| {
            serde_json::json!({"hostname": host, "type": kind, "active": active,
                               "processed": processed, "freq": freq, "timestamp": 1.7e9})
            .to_string()
        })
        .boxed();
    let encoded = prop_oneof![
        3 => body.clone().prop_map(|b| base64(b.as_bytes())),
        1 => body,
        1 => nasty_string(),
    ];
    let encoding = prop_oneof![Just("base64".to_string()), nasty_string()];
    let envelope = (encoded, encoding).prop_map(|(body, encoding)| {
        serde_json::json!({"body": body, "content-type": "application/json",
                           "properties": {"body_encoding": encoding, "delivery_tag": "x"}})
        .to_string()
        .into_bytes()
    });
    prop_oneof![
        4 => envelope,
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

#[test]
fn fuzz_worker_events() {
    fuzz("event", worker_event(), |payload| {
        if let Ok(event) = parse_worker_event(payload) {
            assert!(
                event.freq.is_finite() && event.freq > 0.0,
                "freq {}",
                event.freq
            );
        }
    });
}

/// `a.#.*.…` patterns, routing keys and binding members. At default strength patterns have at
/// most 5 words and no generated word holds a dot; at full strength up to 64 words, dots kept.
fn binding_case() -> impl Strategy<Value = (String, String, Vec<u8>)> {
    let full = full_strength();
    let max = if full { 64 } else { 5 };
    let nasty =
        move || nasty_string().prop_map(move |w| if full { w } else { w.replace('.', "_") });
    let word = prop_oneof![
        4 => Just("#".to_string()),
        2 => Just("*".to_string()),
        2 => prop::sample::select(vec!["a", "b", "z", "", "é", "🦀"]).prop_map(str::to_string),
        1 => nasty(),
    ];
    let pattern = prop::collection::vec(word, 1..=max).prop_map(|w| w.join("."));
    let key_word = prop::sample::select(vec!["a", "b", "c", "", "#", "*", "é"]);
    let key = prop_oneof![
        3 => prop::collection::vec(key_word, 0..40).prop_map(|w| w.join(".")),
        1 => nasty(),
    ];
    let member = (pattern.clone(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(p, b)| {
        let mut m = p.into_bytes();
        m.extend_from_slice(DEFAULT_SEPARATOR);
        m.extend_from_slice(&b);
        m
    });
    (pattern, key, member)
}

#[test]
fn fuzz_topic_matcher() {
    fuzz("matcher", binding_case(), |(pattern, key, member)| {
        let binding = Binding {
            routing_key: pattern.clone(),
            pattern: String::new(),
            queue: "q".into(),
        };
        let matched = binding.matches(key);
        if pattern == key {
            assert!(matched, "a routing key matches itself");
        }
        if let Some(b) = parse_binding_member(member, DEFAULT_SEPARATOR) {
            let _ = b.matches(key);
        }
    });
}
