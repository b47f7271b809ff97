//! The series cap (`max_series`): per-ScaledObject and per-queue label sets that would pass it
//! are not created and are counted in `celery_scaler_series_refused_total{family}`; room
//! comes back when series expire. The cap and its counters are the test server's own.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use celery_scaler::config::Config;
use celery_scaler::grpc::proto::ScaledObjectRef;
use service_support::*;
use support::RedisServer;

const LIMIT: Duration = Duration::from_secs(15);
/// Leaves fewer than 4 series free once the ScaledObjects that fit are in, so a new queue
/// (4 count series first) cannot fit either.
const CAP: usize = 103;
/// Series one queue reserves: backlog + 3 in-flight states, then 6 live gauges + 18 modes
/// (arrival, dequeue and wait: exact, estimated, lower-bound, none; service time: 3
/// sources + none; running: heartbeat, none).
const PER_QUEUE: usize = 4 + 6 + 18;
/// Series one backlog-mode ScaledObject reserves: value, active, 3 components.
const PER_OBJECT: usize = 5;

fn object(name: &str, pairs: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        namespace: "cap".into(),
        name: name.into(),
        scaler_metadata: metadata(pairs),
    }
}

fn lines<'a>(body: &'a str, parts: &[&str]) -> Vec<&'a str> {
    body.lines()
        .filter(|l| !l.starts_with('#') && parts.iter().all(|p| l.contains(p)))
        .collect()
}

/// The value of the sample line that starts with `series` (0 when absent).
fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Log lines of the process, kept to read back.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn scrape(server: &TestServer) -> String {
    http_get(server.admin, "/metrics").await.unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_sets_past_the_cap_are_refused_counted_and_admitted_again_after_expiry() {
    let logs = Logs::default();
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();
    let redis = RedisServer::start();
    let server = TestServer::start(Config {
        // Long enough that none of the first 40 expires while they are asked, even under load.
        idle_expiry: Duration::from_secs(3),
        max_series: CAP,
        ..test_config()
    })
    .await;
    let mut client = server.client().await;
    let addr = redis.address();
    let meta = [("address", addr.as_str()), ("queues", "celery")];
    // Long names (200 bytes, valid Kubernetes names: labels of at most 63 characters): the
    // warning quotes a truncated sample, never a whole label value.
    let long = [
        "x".repeat(56),
        "y".repeat(63),
        "z".repeat(63),
        "w".repeat(15),
    ]
    .join(".");
    for i in 0..40 {
        client
            .is_active(object(&format!("so-{i}-{long}"), &meta))
            .await
            .unwrap();
    }
    let fit = (CAP - PER_QUEUE) / PER_OBJECT;
    let body = scrape(&server).await;
    let objects = lines(&body, &["namespace=\"cap\""]).len();
    let queues = lines(&body, &[&format!("broker=\"{addr}/0\""), "queue="]).len();
    assert_eq!(
        lines(&body, &["celery_scaler_metric_value{", "namespace=\"cap\""]).len(),
        fit,
        "{body}"
    );
    assert!(
        queues > 0 && objects + queues <= CAP,
        "{objects} + {queues}"
    );
    let refused = |body: &str, family: &str| {
        value(
            body,
            &format!("celery_scaler_series_refused_total{{family=\"{family}\"}}"),
        )
    };
    let refused_objects = (40 - fit) as f64;
    assert_eq!(
        refused(&body, "celery_scaler_metric_value"),
        refused_objects
    );
    assert_eq!(refused(&body, "celery_scaler_active"), refused_objects);
    assert_eq!(
        refused(&body, "celery_scaler_decision_slots"),
        3.0 * refused_objects
    );
    assert_eq!(
        value(&body, "celery_scaler_series_reserved"),
        (PER_QUEUE + fit * PER_OBJECT) as f64
    );

    // A new queue does not fit either: its series are refused, the rest keeps working.
    let other = object("other", &[("address", &addr), ("queues", "other")]);
    assert!(client.is_active(other.clone()).await.is_ok());
    let body = scrape(&server).await;
    assert_eq!(lines(&body, &["queue=\"other\""]), Vec::<&str>::new());
    assert!(
        refused(&body, "celery_scaler_queue_backlog") >= 1.0,
        "{body}"
    );

    // The refused ScaledObjects: one warning (once per minute per family), names cut short.
    let text = logs.text();
    let warned = |family: &str| {
        text.lines()
            .filter(|l| l.contains("series cap reached") && l.contains(family))
            .count()
    };
    assert_eq!(warned("family=\"celery_scaler_metric_value\""), 1, "{text}");
    assert_eq!(
        warned("family=\"celery_scaler_queue_backlog\""),
        1,
        "{text}"
    );
    assert!(text.contains("WARN") && !text.contains(&long), "{text}");

    // Once the first ScaledObjects expire, new ones fit again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        client.is_active(object("late", &meta)).await.unwrap();
        let body = scrape(&server).await;
        let late = lines(
            &body,
            &["celery_scaler_metric_value{", "scaled_object=\"late\""],
        );
        if !late.is_empty() || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        lines(
            &body,
            &["celery_scaler_metric_value{", "scaled_object=\"late\""]
        )
        .len(),
        1,
        "{body}"
    );
    // Nothing leaked: what is reserved now is one queue and `late`, exactly.
    assert_eq!(
        value(&body, "celery_scaler_series_reserved"),
        (PER_QUEUE + PER_OBJECT) as f64,
        "{body}"
    );
    server.stop(LIMIT).await.unwrap();
}
