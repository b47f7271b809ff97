//! Unit tests of the access settings (file and environment layers).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::HashMap;
use std::time::Duration;

use crate::broker::{BrokerMode, BrokerSpec, Requester};
use crate::config::{load, Flags};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_accept_any_broker_and_pin_connections_to_their_db() {
    let e = env(&[("CELERY_SCALER_CONNECTIONS__APP__ADDRESS", "redis:6379")]);
    let c = load(None, &e, &Flags::default()).unwrap();
    assert_eq!(c.access.mode, BrokerMode::Any);
    assert_eq!(c.access.connections["app"].databases, vec![0]);
    assert_eq!((c.max_brokers, c.max_brokers_per_endpoint), (64, 8));
    assert_eq!(c.rpc_timeout, Duration::from_secs(2));
    assert_eq!(c.broker_limits().exempt.len(), 1);
    let mut other_db = c.connections["app"].clone();
    other_db.db = 3;
    assert!(c
        .access
        .check(Some("app"), &other_db, Requester::Namespace("x"))
        .is_err());
}

#[test]
fn file_sets_mode_rules_pins_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        r#"
broker_policy: allow-list
allowed_brokers: ["redis-*.svc:6379/0-1", "[::1]:*"]
max_brokers: 10
max_brokers_per_endpoint: 2
max_watched_lists_per_broker: 100
rpc_timeout_seconds: 1.5
connections:
  app:
    address: "redis.svc:6379"
    database: 2
    allowed_databases: [2, 5]
    allowed_namespaces: ["team-a", "ci-*"]
"#,
    )
    .unwrap();
    let c = load(Some(&path), &HashMap::new(), &Flags::default()).unwrap();
    assert_eq!(c.access.mode, BrokerMode::AllowList);
    assert_eq!(c.access.rules.len(), 2);
    assert_eq!(c.access.connections["app"].databases, vec![2, 5]);
    assert_eq!(c.access.connections["app"].namespaces.len(), 2);
    assert_eq!((c.max_brokers, c.max_brokers_per_endpoint), (10, 2));
    assert_eq!(c.max_watched_lists_per_broker, 100);
    assert_eq!(c.broker_limits().max_watched_lists_per_broker, 100);
    assert_eq!(c.rpc_timeout, Duration::from_millis(1500));
    let ok = BrokerSpec::direct("redis-a.svc", 6379);
    assert!(c.access.check(None, &ok, Requester::Operator).is_ok());
}

#[test]
fn environment_sets_the_same_keys() {
    let e = env(&[
        ("CELERY_SCALER_BROKER_POLICY", "named-only"),
        ("CELERY_SCALER_MAX_BROKERS_PER_ENDPOINT", "3"),
        ("CELERY_SCALER_RPC_TIMEOUT_SECONDS", "2.5"),
        ("CELERY_SCALER_CONNECTIONS__APP__ADDRESS", "redis:6379"),
        ("CELERY_SCALER_CONNECTIONS__APP__ALLOWED_DATABASES", "0,4"),
        (
            "CELERY_SCALER_CONNECTIONS__APP__ALLOWED_NAMESPACES",
            "celery",
        ),
    ]);
    let c = load(None, &e, &Flags::default()).unwrap();
    assert_eq!(c.access.mode, BrokerMode::NamedOnly);
    assert_eq!(c.max_brokers_per_endpoint, 3);
    assert_eq!(c.rpc_timeout, Duration::from_millis(2500));
    assert_eq!(c.access.connections["app"].databases, vec![0, 4]);
    assert_eq!(c.access.connections["app"].namespaces, vec!["celery"]);
}

#[test]
fn bad_access_values_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        r#"
broker_policy: open
allowed_brokers: ["no-port", "h:6379/9-1"]
max_brokers: 0
max_brokers_per_endpoint: many
max_watched_lists_per_broker: 0
rpc_timeout_seconds: 100
connections:
  app:
    address: "redis:6379"
    allowed_databases: [-1, x]
    allowed_namespaces: ["bad ns"]
"#,
    )
    .unwrap();
    let err = load(Some(&path), &HashMap::new(), &Flags::default()).unwrap_err();
    let text = err.to_string();
    for needle in [
        "broker_policy",
        "\"no-port\"",
        "\"h:6379/9-1\"",
        "max_brokers (",
        "max_brokers_per_endpoint",
        "max_watched_lists_per_broker",
        "rpc_timeout_seconds",
        "connections.app.allowed_databases",
        "connections.app.allowed_namespaces",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
}

#[test]
fn allow_list_needs_rules_and_rules_need_allow_list() {
    let none = env(&[("CELERY_SCALER_BROKER_POLICY", "allow-list")]);
    let text = load(None, &none, &Flags::default())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("needs at least one allowed_brokers rule"),
        "{text}"
    );
    let stray = env(&[("CELERY_SCALER_ALLOWED_BROKERS", "h:6379")]);
    let text = load(None, &stray, &Flags::default())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("only with broker_policy: allow-list"),
        "{text}"
    );
}

#[test]
fn shipped_manifests_load_in_named_only_mode() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let e = env(&[
        ("REDIS_SCALER_PASSWORD", "pw"),
        ("REDIS_SENTINEL_PASSWORD", "spw"),
    ]);
    for file in [
        "deploy/scaler/config.yaml",
        "deploy/components/redis-sentinel/scaler-config.yaml",
    ] {
        let c = load(Some(&root.join(file)), &e, &Flags::default()).unwrap();
        assert_eq!(c.access.mode, BrokerMode::NamedOnly, "{file}");
        let app = &c.access.connections["app"];
        assert_eq!(app.namespaces, vec!["celery"], "{file}");
        let spec = &c.connections["app"];
        assert!(c
            .access
            .check(Some("app"), spec, Requester::Namespace("celery"))
            .is_ok());
        assert!(c
            .access
            .check(None, spec, Requester::Namespace("celery"))
            .is_err());
    }
}
