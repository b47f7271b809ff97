//! Unit tests of configuration layering and validation.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;
use crate::spec::{Endpoint, HostPort, Secret};
use std::path::PathBuf;
use std::time::Duration;

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
    assert_eq!(c.grpc_listen.to_string(), "0.0.0.0:9090");
    assert_eq!(c.admin_listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.sample_interval, Duration::from_secs(1));
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
    assert!(
        app.label().starts_with("redis.example:6380/5#"),
        "{}",
        app.label()
    );
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
    assert!(c.connections["other"].label().starts_with("o:2/0#"));
    assert_eq!(
        c.connections["other"].password.as_ref().map(Secret::expose),
        Some("pw")
    );
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
        "connections.pw.password_env",
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
        HostPort::parse("h:1").ok().map(|h| h.to_string()),
        Some("h:1".into())
    );
    assert_eq!(
        HostPort::parse("[::1]:6379").ok().map(|h| h.to_string()),
        Some("[::1]:6379".into())
    );
    for bad in ["h", "h:0", ":1", "h:x", "::1:6379"] {
        assert!(HostPort::parse(bad).is_err(), "{bad}");
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
    assert_eq!(c.grpc_listen.to_string(), "0.0.0.0:9090");
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
fn pem_contents_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap().pem();
    let cert_path = write(&dir, "tls.crt", &cert);
    let key_path = write(&dir, "tls.key", &key.serialize_pem());
    let junk = write(&dir, "junk.pem", "-----BEGIN CERTIFICATE-----\n@@@\n");
    let good = Flags {
        tls_cert: Some(cert_path.to_string_lossy().to_string()),
        tls_key: Some(key_path.to_string_lossy().to_string()),
        ..Flags::default()
    };
    let c = load(None, &HashMap::new(), &good).unwrap();
    assert!(c.tls.is_some_and(|t| t.cert_pem == cert.as_bytes()));
    // A certificate where the key belongs holds no key; junk holds no certificate.
    let swapped = Flags {
        tls_cert: Some(junk.to_string_lossy().to_string()),
        tls_key: Some(cert_path.to_string_lossy().to_string()),
        tls_client_ca: Some(key_path.to_string_lossy().to_string()),
        ..Flags::default()
    };
    let text = load(None, &HashMap::new(), &swapped)
        .unwrap_err()
        .to_string();
    for (flag, problem) in [
        ("--tls-cert", "holds no PEM certificate"),
        ("--tls-key", "holds no PEM private key"),
        ("--tls-client-ca", "holds no PEM certificate"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(flag) && l.contains(problem)),
            "{flag}: {problem} missing in:\n{text}"
        );
    }
}

#[test]
fn the_series_cap_is_configurable_and_bounded() {
    assert_eq!(
        load(None, &env(&[]), &Flags::default()).unwrap().max_series,
        crate::telemetry::DEFAULT_MAX_SERIES
    );
    let c = load(
        None,
        &env(&[("CELERY_SCALER_MAX_SERIES", "2500")]),
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(c.max_series, 2500);
    for bad in ["0", "-1", "1e4", "99999999999"] {
        let e = load(
            None,
            &env(&[("CELERY_SCALER_MAX_SERIES", bad)]),
            &Flags::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("CELERY_SCALER_MAX_SERIES"), "{bad}: {e}");
    }
}

#[test]
fn syntax_errors_give_line_and_column_never_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hunter2-Sup3rSecret";
    let cases = [
        (
            "c.toml",
            format!("grpc_listen = \"0.0.0.0:9090\"\n[connections.app]\naddress = \"h:1\"\npassword = \"{secret}\n"),
        ),
        (
            "c.toml",
            format!("[connections.app]\naddress = \"h:1\" {secret}\n"),
        ),
        (
            "c.yaml",
            format!("connections:\n  app:\n    address: \"h:1\"\n    password_env: [\"{secret}\"\n"),
        ),
        (
            "c.yaml",
            format!("connections:\n  app:\n    address: \"h:1\"\n  \t{secret}: : x\n"),
        ),
    ];
    for (name, body) in cases {
        let file = write(&dir, name, &body);
        let err = load(Some(&file), &HashMap::new(), &Flags::default()).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains(secret), "{name} echoed the line:\n{text}");
        assert!(text.contains("line "), "{name}: no location:\n{text}");
        assert!(text.contains(&file.display().to_string()), "{text}");
    }
}

#[test]
fn credential_values_are_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "p@ssw0rd-pasted-by-mistake";
    let file = write(
        &dir,
        "c.yaml",
        &format!(
            "connections:\n  a:\n    address: \"h:1\"\n    password_env: \"{secret}\"\n  b:\n    address: \"h:1\"\n    password_file: \"/no/{secret}\"\n  c:\n    sentinel_master: m\n    sentinels: [\"s:1\"]\n    sentinel_password_env: \"{secret}\"\n"
        ),
    );
    let err = load(Some(&file), &HashMap::new(), &Flags::default()).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains(secret), "{text}");
    for key in [
        "connections.a.password_env",
        "connections.b.password_file",
        "connections.c.sentinel_password_env",
    ] {
        assert!(text.contains(key), "{key} not named:\n{text}");
    }
    // The environment layer too.
    let e = env(&[
        ("CELERY_SCALER_CONNECTIONS__X__ADDRESS", "h:1"),
        ("CELERY_SCALER_CONNECTIONS__X__PASSWORD_ENV", secret),
    ]);
    let text = load(None, &e, &Flags::default()).unwrap_err().to_string();
    assert!(!text.contains(secret), "{text}");
}

#[test]
fn lax_values_are_refused() {
    let cases = [
        ("address", "127.0.0.1:+6379"),
        ("address", "[::1]:6379,"),
        ("address", "my host:6379"),
        ("address", "ho\u{0}st:6379"),
        ("address", "host:６３７９"),
        ("database", "+1"),
        ("database", "1e3"),
        ("tls", "maybe"),
        ("username", "u\nx"),
    ];
    for (key, value) in cases {
        let mut vars = vec![(
            format!("CELERY_SCALER_CONNECTIONS__X__{}", key.to_uppercase()),
            value.to_string(),
        )];
        if key != "address" {
            vars.push(("CELERY_SCALER_CONNECTIONS__X__ADDRESS".into(), "h:1".into()));
        }
        let e: HashMap<String, String> = vars.into_iter().collect();
        let err = load(None, &e, &Flags::default());
        let text = err.map(|_| String::new()).unwrap_or_else(|e| e.to_string());
        assert!(
            text.contains(&key.to_uppercase()),
            "{key}={value:?} accepted: {text}"
        );
    }
    let e = env(&[("CELERY_SCALER_SAMPLE_INTERVAL_SECONDS", "1e-320")]);
    assert!(load(None, &e, &Flags::default()).is_err());
    let e = env(&[("CELERY_SCALER_IDLE_EXPIRY_SECONDS", "1e308")]);
    assert!(load(None, &e, &Flags::default()).is_err());
}

#[test]
fn address_with_sentinel_master_still_checks_the_sentinels() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "c.yaml",
        "connections:\n  both:\n    address: \"h:1\"\n    sentinel_master: m\n    sentinels: [\"good:26379\", \"bad host:26379\", \"s:+1\"]\n  direct:\n    address: \"h:1\"\n    sentinel_username: u\n",
    );
    let err = load(Some(&file), &HashMap::new(), &Flags::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not both"), "{text}");
    assert!(text.contains("\"bad host:26379\""), "{text}");
    assert!(text.contains("\"s:+1\""), "{text}");
    assert!(
        text.contains("connections.direct.sentinel_username"),
        "{text}"
    );
}

#[test]
fn endpoints_are_normalised() {
    let e = env(&[
        ("CELERY_SCALER_CONNECTIONS__A__ADDRESS", "LOCALHOST.:6379"),
        ("CELERY_SCALER_CONNECTIONS__B__ADDRESS", "localhost:6379"),
    ]);
    let c = load(None, &e, &Flags::default()).unwrap();
    assert_eq!(c.connections["a"], c.connections["b"]);
}

#[test]
fn stream_resend_seconds_is_accepted_with_a_deprecation_warning() {
    let c = load(
        None,
        &env(&[("CELERY_SCALER_STREAM_RESEND_SECONDS", "5")]),
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("CELERY_SCALER_STREAM_RESEND_SECONDS")
            && c.warnings[0].contains("deprecated"),
        "{:?}",
        c.warnings
    );
    let c = load(None, &HashMap::new(), &Flags::default()).unwrap();
    assert!(c.warnings.is_empty());
}

#[test]
fn port_settings_from_env_with_ranges() {
    let c = load(
        None,
        &env(&[
            ("CELERY_SCALER_GRPC_HANDSHAKE_TIMEOUT_SECONDS", "2.5"),
            ("CELERY_SCALER_ADMIN_MAX_CONNECTIONS", "16"),
            ("CELERY_SCALER_GRPC_KEEPALIVE_INTERVAL_SECONDS", "20"),
            ("CELERY_SCALER_GRPC_MAX_STREAMS", "3"),
        ]),
        &Flags::default(),
    )
    .unwrap();
    assert_eq!(c.ports.grpc_handshake_timeout, Duration::from_millis(2500));
    assert_eq!(c.ports.admin_max_connections, 16);
    assert_eq!(c.ports.grpc_keepalive_interval, Duration::from_secs(20));
    assert_eq!(c.ports.grpc_max_connections, 1024);
    let err = load(
        None,
        &env(&[
            ("CELERY_SCALER_GRPC_MAX_CONNECTIONS", "0"),
            ("CELERY_SCALER_ADMIN_HEADER_TIMEOUT_SECONDS", "inf"),
            ("CELERY_SCALER_TCP_KEEPALIVE_SECONDS", "-1"),
        ]),
        &Flags::default(),
    )
    .unwrap_err();
    assert_eq!(err.problems.len(), 3, "{err}");
    for key in [
        "CELERY_SCALER_GRPC_MAX_CONNECTIONS",
        "CELERY_SCALER_ADMIN_HEADER_TIMEOUT_SECONDS",
        "CELERY_SCALER_TCP_KEEPALIVE_SECONDS",
    ] {
        assert!(err.to_string().contains(key), "{key}: {err}");
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

mod table;
