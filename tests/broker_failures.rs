//! Broker failures: a stopped Redis, a Redis that never answers, and wrong credentials all
//! turn into bounded, typed errors (never hangs, never leaks the password), and the sampler
//! recovers when Redis is back on the same port.

mod support;

use std::time::{Duration, Instant};

use celery_scaler::broker::{BrokerError, BrokerSpec, Registry, SamplerSettings, Secret, WatchSet};
use celery_scaler::celery::Layout;
use support::celery_data::{key, push};
use support::RedisServer;

const CONNECT: Duration = Duration::from_millis(500);
const COMMAND: Duration = Duration::from_millis(500);
const INTERVAL: Duration = Duration::from_millis(200);
/// Generous slack for a loaded 2-core machine: this is a behaviour bound, not a benchmark.
const MARGIN: Duration = Duration::from_secs(3);

fn settings() -> SamplerSettings {
    SamplerSettings {
        interval: INTERVAL,
        connect_timeout: CONNECT,
        command_timeout: COMMAND,
        first_sample_timeout: Duration::from_secs(5),
        max_sample_age: Duration::from_secs(5),
        idle_expiry: Duration::from_secs(60),
        reconcile_period: Duration::from_secs(60),
        ..SamplerSettings::default()
    }
}

fn watch() -> WatchSet {
    WatchSet {
        layout: Layout::default(),
        queues: vec!["celery".into()],
        visibility_timeout_ms: 3_600_000,
        worker_hostnames: None,
    }
}

#[tokio::test]
async fn stopped_redis_errors_within_the_timeouts_and_recovers_on_restart() {
    let mut server = RedisServer::start();
    let port = server.port;
    push(&mut server.conn(0), &key("", "celery"), 3);
    let registry = Registry::new(settings());
    let spec = BrokerSpec::direct("127.0.0.1", port);
    assert_eq!(
        registry.view(&spec, &watch()).await.expect("view").queues[0].backlog,
        3
    );

    server.stop();
    let stopped = Instant::now();
    let bound = INTERVAL + 2 * (CONNECT + COMMAND) + MARGIN;
    let err = loop {
        let call = Instant::now();
        let r = registry.view(&spec, &watch()).await;
        assert!(
            call.elapsed() < CONNECT + COMMAND + MARGIN,
            "a view call hung: {:?}",
            call.elapsed()
        );
        match r {
            Err(e) => break e,
            Ok(_) => {
                assert!(
                    stopped.elapsed() < bound,
                    "still answering {:?} after stop",
                    stopped.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    eprintln!("error {:?} after {:?}", err.kind(), stopped.elapsed());
    assert!(stopped.elapsed() < bound, "{:?}", stopped.elapsed());
    assert!(
        matches!(
            err,
            BrokerError::Connect { .. } | BrokerError::Timeout { .. }
        ),
        "{err}"
    );

    let server = RedisServer::start_on(port, &[]);
    push(&mut server.conn(0), &key("", "celery"), 5);
    let back = Instant::now();
    loop {
        if let Ok(v) = registry.view(&spec, &watch()).await {
            assert_eq!(v.queues[0].backlog, 5);
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    registry.shutdown().await;
}

#[tokio::test]
async fn a_redis_that_never_answers_times_out() {
    // Accepts TCP connections (kernel backlog) but never replies.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let registry = Registry::new(settings());
    let spec = BrokerSpec::direct("127.0.0.1", port);
    let started = Instant::now();
    let err = registry.view(&spec, &watch()).await.expect_err("no answer");
    eprintln!("black hole: {err} after {:?}", started.elapsed());
    assert!(matches!(err, BrokerError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < CONNECT + COMMAND + MARGIN);
    // Later calls keep failing fast from the snapshot.
    let again = Instant::now();
    assert!(registry.view(&spec, &watch()).await.is_err());
    assert!(again.elapsed() < CONNECT + COMMAND + MARGIN);
    registry.shutdown().await;
    drop(listener);
}

fn sample_age(registry: &Registry, broker: &str) -> Option<f64> {
    registry
        .metrics()
        .gather()
        .iter()
        .filter(|f| f.name() == "celery_scaler_sample_age_seconds")
        .flat_map(|f| f.get_metric().to_vec())
        .find(|m| m.get_label().iter().any(|l| l.value() == broker))
        .map(|m| m.get_gauge().value())
}

#[tokio::test]
async fn sample_age_grows_at_scrape_time_while_the_sampler_is_stuck() {
    let server = RedisServer::start();
    // A long command timeout: once Redis freezes, no tick completes for 4 s.
    let registry = Registry::new(SamplerSettings {
        command_timeout: Duration::from_secs(4),
        max_sample_age: Duration::from_secs(30),
        ..settings()
    });
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    registry.view(&spec, &watch()).await.expect("first view");
    let label = spec.label();
    assert!(sample_age(&registry, &label).expect("series") < 1.0);
    server.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = sample_age(&registry, &label).expect("series");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b = sample_age(&registry, &label).expect("series");
    server.resume();
    eprintln!("sample age while frozen: {a:.3} s, then {b:.3} s");
    assert!(
        b - a >= 1.4,
        "the age must grow between scrapes: {a} then {b}"
    );
    // Back to fresh once Redis answers again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample_age(&registry, &label).expect("series") > 1.0 {
        assert!(Instant::now() < deadline, "sampler never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    registry.shutdown().await;
    assert_eq!(
        sample_age(&registry, &label),
        None,
        "series removed with the sampler"
    );
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_without_the_password() {
    let server = RedisServer::start_with(&["--requirepass", "right-pass-8c1f"]);
    let registry = Registry::new(settings());
    let secret = "wrong-pass-93ab7";
    let mut spec = BrokerSpec::direct("127.0.0.1", server.port);
    spec.password = Some(Secret::new(secret));
    let err = registry
        .view(&spec, &watch())
        .await
        .expect_err("wrong password");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(err, BrokerError::Auth { .. }), "{text}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains(secret) && !format!("{err:?}").contains(secret));

    // Wrong user name with an ACL user, and no password at all.
    let mut spec_user = spec.clone();
    spec_user.username = Some("nobody".into());
    let err = registry
        .view(&spec_user, &watch())
        .await
        .expect_err("wrong user");
    assert!(matches!(err, BrokerError::Auth { .. }), "{err}");
    assert!(!err.to_string().contains(secret));
    let none = BrokerSpec::direct("127.0.0.1", server.port);
    let err = registry
        .view(&none, &watch())
        .await
        .expect_err("no password");
    assert!(matches!(err, BrokerError::Auth { .. }), "{err}");

    let mut good = spec.clone();
    good.password = Some(Secret::new("right-pass-8c1f"));
    assert!(registry.view(&good, &watch()).await.is_ok());
    registry.shutdown().await;
}
