//! Table-driven tests for trigger metadata parsing.

use super::*;
use std::sync::Arc;

use crate::celery::{Layout, DEFAULT_SEPARATOR};
use crate::policy::latency::Prefetch;
use crate::policy::LatencySettings;
use crate::spec::{Endpoint, HostPort, Secret, TlsSpec};

fn md(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(pairs: &[(&str, &str)]) -> TriggerSettings {
    parse(&md(pairs), &NamedConnections::new()).expect("valid metadata")
}

fn err(pairs: &[(&str, &str)]) -> MetadataError {
    parse(&md(pairs), &NamedConnections::new()).expect_err("invalid metadata")
}

fn keys_of(e: &MetadataError) -> Vec<&str> {
    e.problems.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn defaults_follow_kombu_and_keda() {
    let s = ok(&[("address", "redis:6379")]);
    assert_eq!(s.broker, BrokerSpec::direct("redis", 6379));
    assert_eq!(s.watch.queues, vec!["celery"]);
    assert_eq!(s.watch.layout, Layout::default());
    assert_eq!(s.watch.visibility_timeout_ms, 3_600_000);
    assert_eq!(
        s.policy,
        PolicySettings::Backlog {
            list_length: 5.0,
            activation_list_length: 0.0
        }
    );
    assert_eq!(s.metric_name, "celery-celery");
}

#[test]
fn every_key_is_read() {
    let s = ok(&[
        ("host", "10.0.0.5"),
        ("port", "6380"),
        ("username", "scaler"),
        ("passwordFromEnv", "s3cret"),
        ("databaseIndex", "3"),
        ("enableTLS", "true"),
        ("unsafeSsl", "TRUE"),
        ("queues", "high, default ,low"),
        ("keyPrefix", "myapp:"),
        ("prioritySteps", "9,0,3,3"),
        ("prioritySeparator", ":"),
        ("visibilityTimeout", "7.5"),
        ("mode", "backlog"),
        ("listLength", "2.5"),
        ("activationListLength", "4"),
        ("scalerAddress", "celery-scaler.keda:9090"),
        ("metricType", "AverageValue"),
    ]);
    assert_eq!(
        s.broker.endpoint,
        Endpoint::Direct(HostPort {
            host: "10.0.0.5".into(),
            port: 6380
        })
    );
    assert_eq!(s.broker.db, 3);
    assert_eq!(s.broker.username.as_deref(), Some("scaler"));
    assert_eq!(
        s.broker.password.as_ref().map(Secret::expose),
        Some("s3cret")
    );
    assert_eq!(
        s.broker.tls,
        Some(TlsSpec {
            insecure: true,
            ca_file: None
        })
    );
    assert_eq!(s.watch.queues, vec!["high", "default", "low"]);
    assert_eq!(s.watch.layout.prefix, b"myapp:".to_vec());
    assert_eq!(s.watch.layout.priority_steps, vec![0, 3, 9]);
    assert_eq!(s.watch.layout.separator, b":".to_vec());
    assert_eq!(s.watch.visibility_timeout_ms, 7500);
    assert_eq!(
        s.policy,
        PolicySettings::Backlog {
            list_length: 2.5,
            activation_list_length: 4.0
        }
    );
    assert_eq!(s.metric_name, "celery-high-default-low");
}

#[test]
fn separator_escapes() {
    assert_eq!(unescape(r"\x06\x16").unwrap(), b"\x06\x16".to_vec());
    assert_eq!(unescape(r"a\\b").unwrap(), b"a\\b".to_vec());
    assert!(unescape(r"\x6").is_err());
    assert!(unescape(r"\q").is_err());
    let s = ok(&[("address", "r:1"), ("prioritySeparator", r"\x06\x16")]);
    assert_eq!(s.watch.layout.separator, DEFAULT_SEPARATOR.to_vec());
}

#[test]
fn sentinel_and_ipv6() {
    let s = ok(&[
        ("sentinelMaster", "mymaster"),
        ("addresses", "s1:26379, [::1]:26380"),
        ("sentinelPassword", "pw"),
        ("databaseIndex", "1"),
    ]);
    match &s.broker.endpoint {
        Endpoint::Sentinel {
            master,
            sentinels,
            password,
            ..
        } => {
            assert_eq!(master, "mymaster");
            assert_eq!(sentinels.len(), 2);
            assert_eq!(
                sentinels[1],
                HostPort {
                    host: "::1".into(),
                    port: 26380
                }
            );
            assert_eq!(password.as_ref().map(Secret::expose), Some("pw"));
        }
        other => panic!("not sentinel: {other:?}"),
    }
    assert!(s.broker.label().starts_with("sentinel:mymaster/1#"));
}

#[test]
fn list_name_is_an_alias() {
    assert_eq!(
        ok(&[("address", "r:1"), ("listName", "qa")]).watch.queues,
        vec!["qa"]
    );
    assert_eq!(
        keys_of(&err(&[
            ("address", "r:1"),
            ("listName", "qa"),
            ("queues", "qb")
        ])),
        vec!["listName"]
    );
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let e = err(&[
        ("address", "no-port"),
        ("listLength", "0"),
        ("activationListLength", "-1"),
        ("mode", "latency-ish"),
        ("prioritySteps", "1,x"),
        ("visibilityTimeout", "abc"),
        ("databaseIndex", "-2"),
        ("enableTLS", "maybe"),
        ("queue", "typo"),
    ]);
    let mut keys = keys_of(&e);
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "activationListLength",
            "address",
            "databaseIndex",
            "enableTLS",
            "listLength",
            "mode",
            "prioritySteps",
            "queue",
            "visibilityTimeout"
        ]
    );
    let text = e.to_string();
    assert!(
        text.contains("queue: unknown metadata key (did you mean queues?)"),
        "{text}"
    );
    assert!(
        text.contains("listLength: must be a number ≥ 0.001"),
        "{text}"
    );
}

#[test]
fn missing_broker_is_an_error() {
    assert_eq!(keys_of(&err(&[("queues", "a")])), vec!["address"]);
    assert_eq!(keys_of(&err(&[("address", "a:1,b:2")])), vec!["address"]);
    assert_eq!(
        keys_of(&err(&[("host", "h"), ("port", "99999")])),
        vec!["port"]
    );
    assert_eq!(keys_of(&err(&[("sentinelMaster", "m")])), vec!["addresses"]);
}

#[test]
fn secrets_are_never_echoed() {
    let e = err(&[
        ("address", "r:1"),
        ("password", "hunter2-pass"),
        ("passwordFromEnv", "other-secret"),
        ("connection", "nope"),
    ]);
    let text = e.to_string();
    assert!(
        !text.contains("hunter2-pass") && !text.contains("other-secret"),
        "{text}"
    );
    assert!(format!("{e:?}").find("hunter2").is_none());
}

#[test]
fn named_connections() {
    let mut conns = NamedConnections::new();
    let mut spec = BrokerSpec::direct("redis.app", 6379);
    spec.password = Some(Secret::new("from-the-scaler-secret"));
    conns.insert("app".into(), spec.clone());
    let s = parse(
        &md(&[("connection", "app"), ("databaseIndex", "2")]),
        &conns,
    )
    .unwrap();
    assert_eq!(s.broker.db, 2);
    assert_eq!(s.broker.password, spec.password);
    let e = parse(
        &md(&[("connection", "app"), ("password", "x"), ("address", "a:1")]),
        &conns,
    )
    .unwrap_err();
    let mut keys = keys_of(&e);
    keys.sort_unstable();
    assert_eq!(keys, vec!["address", "password"]);
    let e = parse(&md(&[("connection", "other")]), &conns).unwrap_err();
    assert!(e.to_string().contains("known: app"), "{e}");
}

#[test]
fn metric_names_are_lowercase_path_safe_and_stable() {
    assert_eq!(
        metric_name(&["High".into()]),
        "celery-high-2d5a9c3c".replace("2d5a9c3c", &format!("{:08x}", fnv1a(b"High") as u32))
    );
    let odd = metric_name(&["a/b%c".into()]);
    assert!(odd.starts_with("celery-a-b-c-") && !odd.contains('/') && !odd.contains('%'));
    assert_eq!(metric_name(&["a".into(), "b".into()]), "celery-a-b");
    let long = metric_name(&["x".repeat(300)]);
    assert!(long.len() < 130);
    assert_ne!(metric_name(&["a/b".into()]), metric_name(&["a%b".into()]));
}

#[test]
fn cache_returns_the_same_settings_for_the_same_content() {
    let cache = TriggerCache::default();
    let conns = NamedConnections::new();
    let a = cache
        .get(&md(&[("address", "r:1"), ("queues", "a")]), &conns)
        .unwrap();
    let b = cache
        .get(&md(&[("queues", "a"), ("address", "r:1")]), &conns)
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(cache.get(&md(&[("queues", "a")]), &conns).is_err());
}

#[test]
fn latency_mode_reads_its_keys() {
    let table: &[(&[(&str, &str)], LatencySettings)] = &[
        (
            &[("concurrency", "4"), ("targetLatency", "30")],
            LatencySettings::new(4.0, 30.0),
        ),
        (
            &[
                ("concurrency", "8"),
                ("targetLatency", "2.5"),
                ("taskDuration", "0.25"),
                ("minHeadroom", "1"),
                ("activationListLength", "3"),
                ("prefetchMultiplier", "1"),
                ("acksLate", "true"),
                ("podStartup", "20"),
            ],
            LatencySettings {
                concurrency: 8.0,
                target_latency: 2.5,
                task_duration: Some(0.25),
                min_headroom: 1.0,
                activation_list_length: 3.0,
                prefetch: Prefetch {
                    multiplier: 1.0,
                    acks_late: true,
                },
                pod_startup: Some(20.0),
            },
        ),
        (
            &[
                ("concurrency", "4"),
                ("targetLatency", "30"),
                ("prefetchMultiplier", "0"),
            ],
            LatencySettings {
                prefetch: Prefetch {
                    multiplier: 0.0,
                    acks_late: false,
                },
                ..LatencySettings::new(4.0, 30.0)
            },
        ),
    ];
    for (pairs, want) in table {
        let mut all = vec![("address", "redis:6379"), ("mode", "latency")];
        all.extend_from_slice(pairs);
        let s = ok(&all);
        assert_eq!(s.policy, PolicySettings::Latency(want.clone()), "{pairs:?}");
        assert_eq!(s.policy.mode_name(), "latency");
    }
}

/// Metadata pairs, and the keys whose problems they must produce.
type ProblemCase<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn latency_mode_problems_name_their_keys() {
    let table: &[ProblemCase<'_>] = &[
        (&[("mode", "latency")], &["concurrency", "targetLatency"]),
        (
            &[
                ("mode", "latency"),
                ("concurrency", "0"),
                ("targetLatency", "x"),
            ],
            &["concurrency", "targetLatency"],
        ),
        (
            &[
                ("mode", "latency"),
                ("concurrency", "2"),
                ("targetLatency", "5"),
                ("taskDuration", "0"),
                ("minHeadroom", "-1"),
                ("podStartup", "-5"),
            ],
            &["minHeadroom", "podStartup", "taskDuration"],
        ),
        (
            &[
                ("mode", "latency"),
                ("concurrency", "2"),
                ("targetLatency", "5"),
                ("prefetchMultiplier", "1.5"),
                ("acksLate", "maybe"),
            ],
            &["acksLate", "prefetchMultiplier"],
        ),
        (
            &[
                ("mode", "latency"),
                ("concurrency", "2"),
                ("targetLatency", "5"),
                ("prefetchMultiplier", "10001"),
            ],
            &["prefetchMultiplier"],
        ),
        (&[("concurrency", "2")], &["concurrency"]),
        (&[("prefetchMultiplier", "1")], &["prefetchMultiplier"]),
        (
            &[("mode", "backlog"), ("targetLatency", "2")],
            &["targetLatency"],
        ),
    ];
    for (pairs, want) in table {
        let mut all = vec![("address", "redis:6379")];
        all.extend_from_slice(pairs);
        let e = err(&all);
        let mut keys = keys_of(&e);
        keys.sort_unstable();
        assert_eq!(&keys, want, "{pairs:?}");
    }
}

#[test]
fn worker_hostnames_is_optional_and_validated() {
    assert_eq!(ok(&[("address", "r:6379")]).watch.worker_hostnames, None);
    let s = ok(&[
        ("address", "r:6379"),
        ("workerHostnames", "celery@worker-*"),
    ]);
    assert_eq!(s.watch.worker_hostnames.as_deref(), Some("celery@worker-*"));
    let e = err(&[("address", "r:6379"), ("workerHostnames", "a b")]);
    assert_eq!(keys_of(&e), vec!["workerHostnames"]);
}
