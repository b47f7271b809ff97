//! Hostile or broken broker data against a real redis-server (issue 11 items 6 and 9): keys of
//! the wrong type are skipped, reported and counted while everything else is still served;
//! unparseable ETAs count as reserved; index scores that cannot be delivery times turn stale
//! one visibility timeout after the scaler first saw them.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::time::{Duration, Instant};

use celery_scaler::broker::{
    BrokerSpec, KeyKind, Registry, SamplerSettings, UnreadableKey, WatchSet, WatchView,
};
use celery_scaler::celery::Layout;
use celery_scaler::signals::QueueSignals;
use support::celery_data::{bind, deliver, now, push, unacked_value, SEP};
use support::RedisServer;

fn fast() -> SamplerSettings {
    support::fast_sampler(Duration::from_millis(200))
}

fn q(name: &str, backlog: u64, reserved: u64, scheduled: u64, stale: u64) -> QueueSignals {
    QueueSignals {
        name: name.into(),
        backlog,
        reserved,
        scheduled,
        stale,
    }
}

/// A series of the registry's metrics for `broker` (and `label=value` when given).
fn metric(registry: &Registry, name: &str, broker: &str, label: Option<(&str, &str)>) -> f64 {
    registry
        .metrics()
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| {
            let has = |k: &str, v: &str| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k && l.value() == v)
            };
            has("broker", broker) && label.is_none_or(|(k, v)| has(k, v))
        })
        .map(|m| m.get_counter().value() + m.get_gauge().value())
        .sum()
}

fn raw(c: &mut redis::Connection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query(c).unwrap();
}

/// The healthy data of one DB: `celery` 3 ready + 1 reserved (default exchange), `qa` 2
/// ready + 1 reserved through exchange `myex` (binding `rk.a`).
fn healthy(c: &mut redis::Connection) {
    let t = now();
    push(c, b"celery", 3);
    push(c, b"qa", 2);
    deliver(
        c,
        "",
        "r1",
        t - 1.0,
        &unacked_value("r1", None, "", "celery"),
    );
    deliver(
        c,
        "",
        "x1",
        t - 1.0,
        &unacked_value("x1", None, "myex", "rk.a"),
    );
    bind(c, "", "myex", "rk.a", "qa", SEP);
}

fn watch(vt_ms: u64) -> WatchSet {
    WatchSet {
        layout: Layout::default(),
        queues: vec!["celery".into(), "qa".into()],
        visibility_timeout_ms: vt_ms,
        worker_hostnames: None,
    }
}

fn spec(server: &RedisServer, db: i64) -> BrokerSpec {
    let mut spec = BrokerSpec::direct("127.0.0.1", server.port);
    spec.db = db;
    spec
}

/// Polls `registry.view` (bounded) until `done` holds; returns the last view.
async fn view_until(
    registry: &Registry,
    spec: &BrokerSpec,
    watch: &WatchSet,
    done: impl Fn(&WatchView) -> bool,
) -> std::sync::Arc<WatchView> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = registry.view(spec, watch).await.expect("view is served");
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The three wrong-type cases of issue 11 item 6, one DB each: (db, break it, queues then,
/// the unreadable key).
fn cases() -> Vec<(
    i64,
    &'static [&'static str],
    [QueueSignals; 2],
    UnreadableKey,
)> {
    vec![
        (
            1,
            &["SET", "unacked", "not a hash"],
            [q("celery", 3, 0, 0, 0), q("qa", 2, 0, 0, 0)],
            UnreadableKey {
                kind: KeyKind::Unacked,
                key: "unacked".into(),
            },
        ),
        (
            2,
            &["HSET", "unacked_index", "f", "v"],
            [q("celery", 3, 0, 0, 0), q("qa", 2, 0, 0, 0)],
            UnreadableKey {
                kind: KeyKind::UnackedIndex,
                key: "unacked_index".into(),
            },
        ),
        (
            3,
            &["SET", "_kombu.binding.myex", "not a set"],
            [q("celery", 3, 1, 0, 0), q("qa", 2, 0, 0, 0)],
            UnreadableKey {
                kind: KeyKind::Binding,
                key: "_kombu.binding.myex".into(),
            },
        ),
    ]
}

/// Writes the healthy data on `db`, then replaces the case's key with another type.
fn break_db(server: &RedisServer, db: i64, breaker: &[&str]) {
    let mut c = server.conn(db);
    healthy(&mut c);
    raw(&mut c, &["DEL", breaker[1]]);
    raw(&mut c, breaker);
}

#[tokio::test]
async fn a_key_of_the_wrong_type_is_skipped_reported_and_counted() {
    let server = RedisServer::start();
    let registry = Registry::new(fast());
    for (db, breaker, want, unreadable) in cases() {
        break_db(&server, db, breaker);
        let spec = spec(&server, db);
        let v = registry.view(&spec, &watch(3_600_000)).await;
        let v = v.unwrap_or_else(|e| panic!("db {db}: {e}"));
        assert_eq!(v.queues, want, "db {db}");
        assert_eq!(v.unreadable, vec![unreadable.clone()], "db {db}");
        let gauge = metric(
            &registry,
            "celery_scaler_broker_unreadable_keys",
            &spec.label(),
            Some(("key_kind", unreadable.kind.as_str())),
        );
        assert_eq!(gauge, 1.0, "db {db}");
    }
    registry.shutdown().await;
}

/// Repairing `unacked` or `unacked_index` brings the in-flight counts back.
#[tokio::test]
async fn a_repaired_key_is_read_again() {
    let server = RedisServer::start();
    let registry = Registry::new(fast());
    for (db, breaker, _, _) in cases().into_iter().take(2) {
        break_db(&server, db, breaker);
        let spec = spec(&server, db);
        let broken = registry.view(&spec, &watch(3_600_000)).await.unwrap();
        assert_eq!(broken.unreadable.len(), 1, "db {db}");
        let mut c = server.conn(db);
        raw(&mut c, &["DEL", "unacked", "unacked_index"]);
        healthy(&mut c);
        let v = view_until(&registry, &spec, &watch(3_600_000), |v| {
            v.unreadable.is_empty() && v.queues[0].reserved == 1
        })
        .await;
        assert!(v.unreadable.is_empty(), "db {db}: {:?}", v.unreadable);
        assert_eq!(
            v.queues,
            vec![q("celery", 6, 1, 0, 0), q("qa", 4, 1, 0, 0)],
            "db {db}"
        );
    }
    registry.shutdown().await;
}

#[tokio::test]
async fn rpcs_and_inspect_still_answer_on_a_broken_db() {
    use celery_scaler::grpc::proto::GetMetricsRequest;
    use service_support::{so, TestServer};
    let server = RedisServer::start();
    let addr = server.address();
    let app = TestServer::start(service_support::test_config()).await;
    let mut client = app.client().await;
    // Metric = backlog + reserved (+ stale) over celery and qa.
    for ((db, breaker, _, _), want) in cases().into_iter().zip([5.0, 5.0, 6.0]) {
        break_db(&server, db, breaker);
        let db = db.to_string();
        let meta = [
            ("address", addr.as_str()),
            ("databaseIndex", db.as_str()),
            ("queues", "celery,qa"),
        ];
        let spec = client
            .get_metric_spec(so(&meta))
            .await
            .unwrap()
            .into_inner();
        let name = spec.metric_specs[0].metric_name.clone();
        let resp = client
            .get_metrics(GetMetricsRequest {
                scaled_object_ref: Some(so(&meta)),
                metric_name: name,
            })
            .await
            .unwrap_or_else(|e| panic!("db {db}: {e}"))
            .into_inner();
        assert_eq!(resp.metric_values[0].metric_value_float, want, "db {db}");
        let active = client.is_active(so(&meta)).await.unwrap().into_inner();
        assert!(active.result, "db {db}");
    }
    app.stop(Duration::from_secs(15)).await.unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_celery-scaler"))
        .args(["inspect", "--json", "--metadata"])
        .arg(format!("address={addr}"))
        .args([
            "--metadata",
            "databaseIndex=2",
            "--metadata",
            "queues=celery,qa",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["unreadable_keys"],
        serde_json::json!([{"kind": "unacked_index", "key": "unacked_index"}])
    );
}

/// Issue 11 item 9: ETAs Celery would never write still count, as reserved (due now).
#[tokio::test]
async fn unparseable_etas_count_as_reserved() {
    let server = RedisServer::start();
    let mut c = server.conn(4);
    let t = now();
    let etas = [
        r#""1700000000""#,
        "1700000000",
        r#""2026-12-01T06:00:00+25:00""#,
        r#""garbage""#,
    ];
    for (i, eta) in etas.iter().enumerate() {
        let tag = format!("e{i}");
        let value = unacked_value(&tag, Some("ETA"), "", "celery").replace(r#""ETA""#, eta);
        deliver(&mut c, "", &tag, t - 1.0, &value);
    }
    let future = unacked_value(
        "later",
        Some("2999-01-01T00:00:00.123456+00:00"),
        "",
        "celery",
    );
    deliver(&mut c, "", "later", t - 1.0, &future);
    let registry = Registry::new(fast());
    let spec = spec(&server, 4);
    let v = registry.view(&spec, &watch(3_600_000)).await.unwrap();
    assert_eq!(v.queues[0], q("celery", 0, 4, 1, 0));
    let label = spec.label();
    let bad = metric(
        &registry,
        "celery_scaler_broker_suspect_data_total",
        &label,
        Some(("kind", "bad_eta")),
    );
    assert_eq!(bad, 4.0);
    assert_eq!(
        metric(
            &registry,
            "celery_scaler_unacked_malformed_total",
            &label,
            None
        ),
        0.0
    );
    registry.shutdown().await;
}

/// Issue 11 item 9: scores no worker writes (`+inf`, `-inf`, `1e300`, negative) count as
/// reserved when first seen and turn stale one visibility timeout later, instead of staying
/// reserved forever (`+inf`, `1e300`) or being stale at once (`-inf`, negative). Redis
/// refuses `nan` as a score; the unit tests cover it.
#[tokio::test]
async fn out_of_range_index_scores_turn_stale_after_the_visibility_timeout() {
    let server = RedisServer::start();
    let mut c = server.conn(5);
    let t = now();
    for (tag, score) in [
        ("inf", "+inf"),
        ("ninf", "-inf"),
        ("big", "1e300"),
        ("neg", "-5"),
    ] {
        raw(&mut c, &["ZADD", "unacked_index", score, tag]);
        raw(
            &mut c,
            &[
                "HSET",
                "unacked",
                tag,
                &unacked_value(tag, None, "", "celery"),
            ],
        );
    }
    deliver(
        &mut c,
        "",
        "ok",
        t - 1.0,
        &unacked_value("ok", None, "", "qa"),
    );
    let registry = Registry::new(fast());
    let spec = spec(&server, 5);
    // Visibility timeout 3 s: the sane entry of qa turns stale after ~2 s as well.
    let w = watch(3_000);
    let first = registry.view(&spec, &w).await.unwrap();
    assert_eq!(first.queues[0], q("celery", 0, 4, 0, 0));
    let later = view_until(&registry, &spec, &w, |v| v.queues[0].stale == 4).await;
    assert_eq!(later.queues[0], q("celery", 0, 0, 0, 4));
    assert_eq!(later.queues[1], q("qa", 0, 0, 0, 1));
    let bad = metric(
        &registry,
        "celery_scaler_broker_suspect_data_total",
        &spec.label(),
        Some(("kind", "bad_score")),
    );
    assert_eq!(bad, 4.0);
    registry.shutdown().await;
}

/// Issue 11 item 4: the planted binding `#.#.…(20×).z` and an entry with a 30-word routing
/// key through that exchange. Backtracking took seconds per tick at 10 `#`s and froze the
/// process at 16; now the first sample answers and routes the entry by the other bindings.
#[tokio::test]
async fn a_pathological_binding_does_not_stall_the_sample() {
    let server = RedisServer::start();
    let mut c = server.conn(6);
    let t = now();
    let pattern = format!("{}z", "#.".repeat(20));
    bind(&mut c, "", "topic", &pattern, "qa", SEP);
    bind(&mut c, "", "topic", "w.#", "celery", SEP);
    let routing_key = vec!["w"; 30].join(".");
    let value = unacked_value("deep", None, "topic", &routing_key);
    deliver(&mut c, "", "deep", t - 1.0, &value);
    let registry = Registry::new(fast());
    let v = registry.view(&spec(&server, 6), &watch(3_600_000)).await;
    let v = v.expect("the first sample answers within first_sample_timeout");
    assert_eq!(v.queues, vec![q("celery", 0, 1, 0, 0), q("qa", 0, 0, 0, 0)]);
    registry.shutdown().await;
}

/// A binding set of 20,000 members (anyone who can write to the broker can make one) is never
/// read whole: one `SCARD` and one `SRANDMEMBER key 1024`, the unread members counted. It was
/// read with `SMEMBERS` (the whole set in one reply) and cut to 1,024 afterwards. The queues
/// routed through a small binding set are still counted.
#[tokio::test]
async fn a_huge_binding_set_is_never_read_whole() {
    let server = RedisServer::start();
    let mut c = server.conn(7);
    healthy(&mut c);
    let members: Vec<Vec<u8>> = (0..20_000)
        .map(|i| {
            let mut m = format!("rk.{i}").into_bytes();
            m.extend_from_slice(SEP);
            m.extend_from_slice(SEP);
            m.extend_from_slice(format!("q{i}").as_bytes());
            m
        })
        .collect();
    let _: i64 = redis::cmd("SADD")
        .arg("_kombu.binding.huge")
        .arg(&members)
        .query(&mut c)
        .unwrap();
    let t = now();
    deliver(
        &mut c,
        "",
        "h1",
        t - 1.0,
        &unacked_value("h1", None, "huge", "rk.x"),
    );

    let monitor = support::monitor::Monitor::start(server.port, None);
    let registry = Registry::new(fast());
    let spec = spec(&server, 7);
    let v = registry.view(&spec, &watch(3_600_000)).await.unwrap();
    assert_eq!(v.queues, vec![q("celery", 3, 1, 0, 0), q("qa", 2, 1, 0, 0)]);
    let unread = metric(
        &registry,
        "celery_scaler_broker_suspect_data_total",
        &spec.label(),
        Some(("kind", "too_many_bindings")),
    );
    assert_eq!(unread, 20_000.0 - 1024.0);
    registry.shutdown().await;
    let sent = monitor.stop();
    let reads: Vec<&String> = sent
        .iter()
        .filter(|l| l.contains("_kombu.binding.huge"))
        .collect();
    assert!(
        !reads.is_empty(),
        "the huge set was not read at all: {sent:?}"
    );
    for line in &reads {
        let cmd = support::monitor::command_of(line).unwrap_or_default();
        assert!(
            cmd == "SCARD" || (cmd == "SRANDMEMBER" && line.ends_with("\"1024\"")),
            "the binding set was read with an unbounded command: {line}"
        );
    }
}
