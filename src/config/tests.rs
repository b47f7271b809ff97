//! Unit tests of configuration layering and validation.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::validate::parse_host_port;
use super::*;
use crate::broker::{Endpoint, Secret};
use std::path::PathBuf;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn defaults_without_any_layer() {
    let c = load(None, &HashMap::new(), &Flags::default()).unwrap();
    assert_eq!(c.grpc_listen.to_string(), DEFAULT_GRPC_LISTEN);
    assert_eq!(c.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.sample_interval, Duration::from_secs(1));
    assert_eq!(c.stream_resend, Duration::from_secs(5));
    assert!(c.tls.is_none() && c.connections.is_empty());
    let s = c.sampler_settings();
    assert_eq!(s.first_sample_timeout, Duration::from_secs(5));
    assert_eq!(s.max_sample_age, Duration::from_secs(10));
}

#[test]
fn file_then_env_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let pw = write(&dir, "pw", "s3cret-from-file\n");
    let file = write(
        &dir,
        "c.yaml",
        &format!(
            r#"
grpc_listen: "127.0.0.1:1000"
admin_listen: "127.0.0.1:2000"
log_format: json
sample_interval_seconds: 0.5
shutdown_grace_seconds: 3
connections:
  app:
    address: "redis.example:6380"
    database: 2
    username: scaler
    password_file: {}
  ha:
    sentinel_master: mymaster
    sentinels: ["s1:26379", "s2:26379"]
    sentinel_password_env: SENT_PW
"#,
            pw.display()
        ),
    );
    let e = env(&[
        ("CELERY_SCALER_ADMIN_LISTEN", "127.0.0.1:2001"),
        ("CELERY_SCALER_GRPC_LISTEN", "127.0.0.1:1001"),
        ("CELERY_SCALER_CONNECTIONS__APP__DATABASE", "5"),
        ("CELERY_SCALER_CONFIG", "ignored.yaml"),
        ("SENT_PW", "sentinel-pw"),
        ("UNRELATED", "x"),
    ]);
    let flags = Flags {
        grpc_listen: Some("127.0.0.1:1002".into()),
        ..Flags::default()
    };
    let c = load(Some(&file), &e, &flags).unwrap();
    assert_eq!(c.grpc_listen.to_string(), "127.0.0.1:1002");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:2001");
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.sample_interval, Duration::from_millis(500));
    assert_eq!(c.shutdown_grace, Duration::from_secs(3));
    let app = &c.connections["app"];
    assert_eq!(app.label(), "redis.example:6380/5");
    assert_eq!(app.username.as_deref(), Some("scaler"));
    assert_eq!(
        app.password.as_ref().map(Secret::expose),
        Some("s3cret-from-file")
    );
    match &c.connections["ha"].endpoint {
        Endpoint::Sentinel {
            master,
            sentinels,
            password,
            ..
        } => {
            assert_eq!(master, "mymaster");
            assert_eq!(sentinels.len(), 2);
            assert_eq!(password.as_ref().map(Secret::expose), Some("sentinel-pw"));
        }
        other => panic!("expected sentinel, got {other:?}"),
    }
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret-from-file") && !debug.contains("sentinel-pw"));
}

#[test]
fn toml_file_and_env_only_connection() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "c.toml",
        "sample_interval_seconds = 2\n[connections.app]\naddress = \"h:1\"\n",
    );
    let e = env(&[
        ("CELERY_SCALER_CONNECTIONS__OTHER__ADDRESS", "o:2"),
        ("CELERY_SCALER_CONNECTIONS__OTHER__PASSWORD_ENV", "OTHER_PW"),
        ("OTHER_PW", "pw"),
    ]);
    let c = load(Some(&file), &e, &Flags::default()).unwrap();
    assert_eq!(c.sample_interval, Duration::from_secs(2));
    assert_eq!(c.connections["app"].label(), "h:1/0");
    assert_eq!(c.connections["other"].label(), "o:2/0");
}

#[test]
fn every_problem_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "bad.yaml",
        r#"
grpc_listen: "nope"
log_format: xml
sample_interval_seconds: 50
tls_key: /does/not/exist.key
tls_client_ca: /does/not/exist.ca
typo_setting: 1
connections:
  both:
    address: "h:1"
    sentinel_master: m
  none:
    username: u
  pw:
    address: "h:1"
    password_env: SURELY_UNSET_VARIABLE_123
  pwfile:
    address: "h:1"
    password_file: /does/not/exist.pw
    ca_file: /does/not/exist.ca
"#,
    );
    let e = env(&[
        ("CELERY_SCALER_ADMIN_LISTEN", "bad"),
        ("CELERY_SCALER_REDIS_COMMAND_TIMEOUT_SECONDS", "0"),
    ]);
    let err = load(Some(&file), &e, &Flags::default()).unwrap_err();
    let text = err.to_string();
    for needle in [
        "grpc_listen",
        "log_format",
        "sample_interval_seconds",
        "tls_key",
        "tls_client_ca",
        "typo_setting",
        "connections.both",
        "connections.none.address",
        "SURELY_UNSET_VARIABLE_123",
        "connections.pwfile.password_file",
        "connections.pwfile.ca_file",
        "CELERY_SCALER_ADMIN_LISTEN",
        "CELERY_SCALER_REDIS_COMMAND_TIMEOUT_SECONDS",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    assert!(err.problems.len() >= 13, "{text}");
}

#[test]
fn unknown_extension_and_missing_file() {
    let err = load(
        Some(Path::new("/nope/c.yaml")),
        &HashMap::new(),
        &Flags::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nope/c.yaml"));
    let err = load(Some(Path::new("c.ini")), &HashMap::new(), &Flags::default()).unwrap_err();
    assert!(err.to_string().contains("unknown format"));
}

#[test]
fn host_port_forms() {
    assert_eq!(
        parse_host_port("h:1").map(|h| h.to_string()),
        Some("h:1".into())
    );
    assert_eq!(
        parse_host_port("[::1]:6379").map(|h| h.to_string()),
        Some("[::1]:6379".into())
    );
    for bad in ["h", "h:0", ":1", "h:x", "::1:6379"] {
        assert!(parse_host_port(bad).is_none(), "{bad}");
    }
}

#[test]
fn kubernetes_service_links_are_not_settings() {
    // A Service named celery-scaler makes Kubernetes inject these into every pod.
    let links = env(&[
        ("CELERY_SCALER_SERVICE_HOST", "10.0.0.7"),
        ("CELERY_SCALER_SERVICE_PORT", "9090"),
        ("CELERY_SCALER_SERVICE_PORT_GRPC", "9090"),
        ("CELERY_SCALER_PORT", "tcp://10.0.0.7:9090"),
        ("CELERY_SCALER_PORT_9090_TCP", "tcp://10.0.0.7:9090"),
        ("CELERY_SCALER_PORT_9090_TCP_PROTO", "tcp"),
        ("CELERY_SCALER_PORT_9090_TCP_PORT", "9090"),
        ("CELERY_SCALER_PORT_9090_TCP_ADDR", "10.0.0.7"),
        ("CELERY_SCALER_METRICS_SERVICE_HOST", "10.0.0.8"),
    ]);
    let c = load(None, &links, &Flags::default()).unwrap();
    assert_eq!(c.grpc_listen.to_string(), DEFAULT_GRPC_LISTEN);
    // A real typo is still reported.
    let typo = env(&[("CELERY_SCALER_GRPC_LISTN", "0.0.0.0:1")]);
    assert!(load(None, &typo, &Flags::default()).is_err());
}

#[test]
fn live_signal_timings_are_configurable_and_bounded() {
    let c = load(
        None,
        &env(&[
            ("CELERY_SCALER_SIGNAL_WINDOW_SECONDS", "12"),
            ("CELERY_SCALER_IDLE_EXPIRY_SECONDS", "120"),
            ("CELERY_SCALER_RECONCILE_PERIOD_SECONDS", "30"),
        ]),
        &Flags::default(),
    )
    .unwrap();
    let s = c.sampler_settings();
    assert_eq!(s.signal_window, Duration::from_secs(12));
    assert_eq!(s.idle_expiry, Duration::from_secs(120));
    assert_eq!(s.reconcile_period, Duration::from_secs(30));
    let e = load(
        None,
        &env(&[
            ("CELERY_SCALER_SIGNAL_WINDOW_SECONDS", "0"),
            ("CELERY_SCALER_IDLE_EXPIRY_SECONDS", "1"),
            ("CELERY_SCALER_RECONCILE_PERIOD_SECONDS", "x"),
        ]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    for key in [
        "CELERY_SCALER_SIGNAL_WINDOW_SECONDS",
        "CELERY_SCALER_IDLE_EXPIRY_SECONDS",
        "CELERY_SCALER_RECONCILE_PERIOD_SECONDS",
    ] {
        assert!(e.contains(key), "{key} missing from: {e}");
    }
}

#[test]
fn heartbeat_bounds_are_configurable_and_validated() {
    let s = load(None, &HashMap::new(), &Flags::default())
        .unwrap()
        .sampler_settings();
    assert_eq!(s.heartbeat_limits.max_active, 256);
    assert_eq!(s.heartbeat_limits.max_workers, 4096);
    let c = load(
        None,
        &env(&[
            ("CELERY_SCALER_MAX_WORKER_CONCURRENCY", "32"),
            ("CELERY_SCALER_MAX_TRACKED_WORKERS", "100"),
        ]),
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(c.heartbeat_limits.max_active, 32);
    assert_eq!(c.heartbeat_limits.max_workers, 100);
    let e = load(
        None,
        &env(&[
            ("CELERY_SCALER_MAX_WORKER_CONCURRENCY", "0"),
            ("CELERY_SCALER_MAX_TRACKED_WORKERS", "1e9"),
        ]),
        &Flags::default(),
    )
    .unwrap_err()
    .to_string();
    for key in [
        "CELERY_SCALER_MAX_WORKER_CONCURRENCY",
        "CELERY_SCALER_MAX_TRACKED_WORKERS",
    ] {
        assert!(e.contains(key), "{key} missing from: {e}");
    }
}
