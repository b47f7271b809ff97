//! Unit tests of the broker access policy.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;

fn inline(host: &str, port: u16, db: i64) -> BrokerSpec {
    let mut spec = BrokerSpec::direct(host, port);
    spec.db = db;
    spec
}

fn allow_list(rules: &[&str]) -> AccessPolicy {
    AccessPolicy {
        mode: BrokerMode::AllowList,
        rules: rules
            .iter()
            .map(|r| BrokerRule::parse(r).unwrap())
            .collect(),
        connections: BTreeMap::new(),
    }
}

#[test]
fn rules_parse_and_refuse_bad_text() {
    let r = BrokerRule::parse("Redis-*.Apps.svc:6379/0-3").unwrap();
    assert_eq!(r.host, "redis-*.apps.svc");
    assert_eq!((r.port, r.dbs), (Some(6379), Some((0, 3))));
    let r = BrokerRule::parse("[::1]:*").unwrap();
    assert_eq!((r.host.as_str(), r.port, r.dbs), ("::1", None, None));
    for bad in [
        "redis",
        "redis:0",
        "redis:+6379",
        "redis:6379/3-1",
        "redis:6379/-1",
        "redis:6379/x",
        ":6379",
        "a b:6379",
        "::1:6379",
    ] {
        assert!(BrokerRule::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn allow_list_matches_host_glob_port_and_db() {
    let p = allow_list(&["redis-*.apps.svc:6379/0-3", "cache.local:*/5"]);
    let op = Requester::Operator;
    assert!(p
        .check(None, &inline("redis-a.apps.svc", 6379, 2), op)
        .is_ok());
    assert!(p
        .check(None, &inline("REDIS-A.Apps.SVC", 6379, 0), op)
        .is_ok());
    assert!(p.check(None, &inline("cache.local", 7000, 5), op).is_ok());
    // Wrong DB, wrong port, a host that only starts like an allowed one.
    assert!(p
        .check(None, &inline("redis-a.apps.svc", 6379, 4), op)
        .is_err());
    assert!(p
        .check(None, &inline("redis-a.apps.svc", 6380, 0), op)
        .is_err());
    assert!(p
        .check(None, &inline("cache.local.evil", 7000, 5), op)
        .is_err());
    assert!(p.check(None, &inline("10.0.0.1", 6379, 0), op).is_err());
}

#[test]
fn sentinel_needs_every_sentinel_allowed() {
    let p = allow_list(&["s*.svc:26379"]);
    let sentinel = |hosts: &[&str]| BrokerSpec {
        endpoint: Endpoint::Sentinel {
            master: "m".into(),
            sentinels: hosts
                .iter()
                .map(|h| HostPort {
                    host: h.to_string(),
                    port: 26379,
                })
                .collect(),
            username: None,
            password: None,
        },
        ..BrokerSpec::direct("x", 1)
    };
    let op = Requester::Operator;
    assert!(p.check(None, &sentinel(&["s1.svc", "s2.svc"]), op).is_ok());
    assert!(p.check(None, &sentinel(&["s1.svc", "evil"]), op).is_err());
}

#[test]
fn named_only_refuses_inline_and_pins_connections() {
    let mut p = AccessPolicy {
        mode: BrokerMode::NamedOnly,
        ..AccessPolicy::default()
    };
    p.connections.insert(
        "app".into(),
        ConnectionAccess {
            databases: vec![0, 1],
            namespaces: vec!["team-a".into(), "ci-*".into()],
        },
    );
    p.connections.insert(
        "open".into(),
        ConnectionAccess {
            databases: vec![0],
            namespaces: vec![],
        },
    );
    let ns = Requester::Namespace;
    let spec = inline("redis", 6379, 0);
    assert!(p.check(None, &spec, Requester::Operator).is_err());
    assert!(p.check(Some("app"), &spec, ns("team-a")).is_ok());
    assert!(p.check(Some("app"), &spec, ns("ci-42")).is_ok());
    assert!(p
        .check(Some("app"), &inline("redis", 6379, 1), ns("team-a"))
        .is_ok());
    assert!(p
        .check(Some("app"), &inline("redis", 6379, 3), ns("team-a"))
        .is_err());
    assert!(p.check(Some("app"), &spec, ns("team-b")).is_err());
    assert!(p.check(Some("app"), &spec, ns("")).is_err());
    // The operator is not a tenant: namespace pins do not apply, DB pins do.
    assert!(p.check(Some("app"), &spec, Requester::Operator).is_ok());
    assert!(p
        .check(Some("app"), &inline("redis", 6379, 3), Requester::Operator)
        .is_err());
    assert!(p.check(Some("open"), &spec, ns("anyone")).is_ok());
    assert!(p.check(Some("missing"), &spec, ns("anyone")).is_err());
}

#[test]
fn refusals_all_read_the_same() {
    let p = allow_list(&["ok:6379/0"]);
    let a = p
        .check(None, &inline("exists", 6379, 0), Requester::Operator)
        .unwrap_err();
    let b = p
        .check(None, &inline("nothing-here", 1, 9), Requester::Operator)
        .unwrap_err();
    assert_eq!(a.to_string(), b.to_string());
    assert_eq!(a.to_string(), ACCESS_DENIED_TEXT);
    assert!(!a.to_string().contains("exists"));
}

#[test]
fn modes_parse() {
    assert_eq!(BrokerMode::parse("Named-Only"), Some(BrokerMode::NamedOnly));
    assert_eq!(BrokerMode::parse("allow-list"), Some(BrokerMode::AllowList));
    assert_eq!(BrokerMode::parse("any"), Some(BrokerMode::Any));
    assert_eq!(BrokerMode::parse("all"), None);
}
