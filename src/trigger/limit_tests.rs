//! Table-driven tests of strict value parsing and of the metadata limits: each bad value is
//! refused naming its key, each value at a limit is accepted, no error echoes much.

use super::limits::*;
use super::*;
use crate::grpc::status::to_status;
use crate::scaler::ScalerError;
use crate::spec::{Endpoint, HostPort};

fn md(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn s(v: &str) -> String {
    v.to_string()
}

fn keys(pairs: &[(&str, String)]) -> Vec<String> {
    match parse(&md(pairs), &NamedConnections::new()) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems.into_iter().map(|p| p.key).collect(),
    }
}

fn csv(n: usize, f: impl Fn(usize) -> String) -> String {
    (0..n).map(f).collect::<Vec<_>>().join(",")
}

#[test]
fn lax_values_are_refused_naming_their_key() {
    let a = || ("address", s("redis:6379"));
    let latency = |k: &'static str, v: &str| {
        vec![
            a(),
            ("mode", s("latency")),
            ("concurrency", s("4")),
            ("targetLatency", s("10")),
            (k, s(v)),
        ]
    };
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("address", s("127.0.0.1:+6379"))], "address"),
        (vec![("address", s("[::1]:6379,"))], "address"),
        (vec![("address", s("my host:6379"))], "address"),
        (vec![("address", s("ho\0st:6379"))], "address"),
        (vec![("address", s("ho\nst:6379"))], "address"),
        (vec![("address", s("host:６３７９"))], "address"),
        (vec![("address", s("１２７.0.0.1:6379"))], "address"),
        (vec![("host", s("h st"))], "host"),
        (vec![("host", s("h")), ("port", s("+6379"))], "port"),
        (vec![("host", s("h")), ("port", s("６３７９"))], "port"),
        (
            vec![a(), ("visibilityTimeout", s("1e-320"))],
            "visibilityTimeout",
        ),
        (
            vec![a(), ("visibilityTimeout", s("0"))],
            "visibilityTimeout",
        ),
        (
            vec![a(), ("visibilityTimeout", s("1e9"))],
            "visibilityTimeout",
        ),
        (vec![a(), ("listLength", s("1e308"))], "listLength"),
        (vec![a(), ("listLength", s("inf"))], "listLength"),
        (vec![a(), ("listLength", s("NaN"))], "listLength"),
        (
            vec![a(), ("activationListLength", s("1e300"))],
            "activationListLength",
        ),
        (vec![a(), ("databaseIndex", s("+1"))], "databaseIndex"),
        (vec![a(), ("databaseIndex", s("99999999"))], "databaseIndex"),
        (vec![a(), ("sentinelPassword", s("pw"))], "sentinelPassword"),
        (vec![a(), ("sentinelUsername", s("u"))], "sentinelUsername"),
        (
            vec![("sentinelMaster", s("m")), ("addresses", s("s1:1,,s2:2"))],
            "addresses",
        ),
        (
            vec![("sentinelMaster", s("m")), ("addresses", s("s1:1,"))],
            "addresses",
        ),
        (
            vec![
                ("sentinelMaster", s("m")),
                ("addresses", csv(17, |i| format!("s{i}:1"))),
            ],
            "addresses",
        ),
        (
            vec![("sentinelMaster", s("m\nx")), ("addresses", s("s1:1"))],
            "sentinelMaster",
        ),
        (vec![a(), ("username", s("u\nINFO forged"))], "username"),
        (
            vec![a(), ("username", "u".repeat(MAX_USERNAME_BYTES + 1))],
            "username",
        ),
        (vec![a(), ("prioritySteps", s("0,+3"))], "prioritySteps"),
        (vec![a(), ("prioritySteps", s("256"))], "prioritySteps"),
        (
            vec![
                a(),
                (
                    "prioritySteps",
                    csv(MAX_PRIORITY_STEPS + 1, |i| i.to_string()),
                ),
            ],
            "prioritySteps",
        ),
        (
            vec![a(), ("queues", csv(MAX_QUEUES + 1, |i| format!("q{i}")))],
            "queues",
        ),
        (
            vec![a(), ("queues", "q".repeat(MAX_QUEUE_NAME_BYTES + 1))],
            "queues",
        ),
        (
            vec![a(), ("listName", "q".repeat(MAX_QUEUE_NAME_BYTES + 1))],
            "listName",
        ),
        (vec![a(), ("queues", s("a,b\nc"))], "queues"),
        (
            vec![
                a(),
                ("queues", csv(MAX_QUEUES, |i| format!("q{i}"))),
                ("prioritySteps", csv(9, |i| i.to_string())),
            ],
            "queues",
        ),
        (
            vec![a(), ("keyPrefix", "p".repeat(MAX_KEY_PREFIX_BYTES + 1))],
            "keyPrefix",
        ),
        (
            vec![a(), ("keyPrefix", s("app:\nforged log line"))],
            "keyPrefix",
        ),
        (vec![a(), ("keyPrefix", s("app\u{7f}:"))], "keyPrefix"),
        (
            vec![
                a(),
                ("prioritySeparator", "\\x06".repeat(MAX_SEPARATOR_BYTES + 1)),
            ],
            "prioritySeparator",
        ),
        (
            vec![
                a(),
                (
                    "workerHostnames",
                    "w".repeat(MAX_WORKER_HOSTNAMES_BYTES + 1),
                ),
            ],
            "workerHostnames",
        ),
        (latency("concurrency", "1e9"), "concurrency"),
        (latency("targetLatency", "1e-320"), "targetLatency"),
        (latency("taskDuration", "0"), "taskDuration"),
        (latency("taskDuration", "1e300"), "taskDuration"),
        (latency("minHeadroom", "1e308"), "minHeadroom"),
        (latency("podStartup", "1e300"), "podStartup"),
        (latency("podStartup", "NaN"), "podStartup"),
    ];
    for (pairs, key) in cases {
        let got = keys(&pairs);
        assert!(
            got.iter().any(|k| k == key),
            "{pairs:?}: want {key}, got {got:?}"
        );
    }
}

#[test]
fn values_at_the_limits_are_accepted() {
    let queues = csv(MAX_QUEUES, |i| {
        format!("{i:03}{}", "q".repeat(MAX_QUEUE_NAME_BYTES - 3))
    });
    let steps_for_64 = MAX_WATCHED_LISTS / MAX_QUEUES;
    let pairs = vec![
        ("address", s("LOCALHOST.:6379")),
        ("queues", queues),
        ("prioritySteps", csv(steps_for_64, |i| (i * 30).to_string())),
        ("keyPrefix", "p".repeat(MAX_KEY_PREFIX_BYTES)),
        ("prioritySeparator", "\\x06".repeat(MAX_SEPARATOR_BYTES)),
        ("workerHostnames", "w".repeat(MAX_WORKER_HOSTNAMES_BYTES)),
        ("username", "u".repeat(MAX_USERNAME_BYTES)),
        ("databaseIndex", MAX_DATABASE_INDEX.to_string()),
        ("visibilityTimeout", VISIBILITY_TIMEOUT_RANGE.1.to_string()),
        ("listLength", MAX_TASK_COUNT.to_string()),
    ];
    let settings = parse(&md(&pairs), &NamedConnections::new()).expect("at the limits");
    assert_eq!(settings.watch.queues.len(), MAX_QUEUES);
    assert_eq!(settings.watch.layout.priority_steps.len(), steps_for_64);
    assert_eq!(
        settings.broker.endpoint,
        Endpoint::Direct(HostPort::parse("localhost:6379").unwrap())
    );
    let full = csv(MAX_PRIORITY_STEPS, |i| i.to_string());
    assert!(keys(&[("address", s("r:1")), ("prioritySteps", full)]).is_empty());
}

#[test]
fn host_case_and_trailing_dot_give_one_broker_spec() {
    let spec =
        |pairs: &[(&str, String)]| parse(&md(pairs), &NamedConnections::new()).unwrap().broker;
    let a = spec(&[("address", s("localhost:6379"))]);
    assert_eq!(spec(&[("address", s("LOCALHOST:6379"))]), a);
    assert_eq!(spec(&[("address", s("LocalHost.:6379"))]), a);
    assert_eq!(spec(&[("host", s("LOCALHOST"))]), a);
    assert_eq!(
        spec(&[("address", s("[0:0::1]:6379"))]),
        spec(&[("address", s("[::1]:6379"))])
    );
}

/// A 1 MB value, or a value at the per-key limit, never makes a long status message.
#[test]
fn echoed_values_are_truncated() {
    let mega = "x".repeat(1_000_000);
    let long = "é".repeat(MAX_VALUE_BYTES / 2);
    let long_key = "k\n".repeat(MAX_KEY_BYTES / 2);
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("address", mega.clone())],
        vec![("queues", mega.clone())],
        vec![("address", format!("{long}:1"))],
        vec![("address", s("r:1")), ("listLength", long.clone())],
        vec![("address", s("r:1")), ("mode", long.clone())],
        vec![("address", s("r:1")), ("prioritySteps", long.clone())],
        vec![
            ("address", s("r:1")),
            ("prioritySeparator", format!("\\q{long}")),
        ],
        vec![
            ("address", s("r:1")),
            ("workerHostnames", format!("a {}", "b".repeat(200))),
        ],
        vec![
            ("address", s("r:1")),
            ("queues", format!("{},", "q".repeat(199)).repeat(60)),
        ],
        vec![("connection", long.clone())],
        vec![("address", s("r:1")), (&long_key, s("v"))],
    ];
    for pairs in cases {
        let e = parse(&md(&pairs), &NamedConnections::new()).expect_err("refused");
        let status = to_status(&ScalerError::Metadata(e));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let len = status.message().len();
        assert!(
            len < 1024,
            "{} bytes for {:?}",
            len,
            pairs[pairs.len() - 1].0
        );
    }
}
