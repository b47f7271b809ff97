//! The admin port in-process: `/readyz` is 503 while starting, 200 once serving, 503 again
//! while draining; `/healthz` is 200 throughout; `/metrics` is Prometheus text.
#![allow(clippy::unwrap_used)]

mod service_support;

use celery_scaler::admin::{self, Readiness};
use celery_scaler::telemetry::Metrics;
use service_support::http_get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn readyz_follows_the_lifecycle() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let readiness = Readiness::new();
    let stop = CancellationToken::new();
    let metrics = Metrics::new();
    let task = tokio::spawn(admin::run(
        listener,
        readiness.clone(),
        metrics,
        stop.clone(),
    ));

    assert_eq!(http_get(addr, "/readyz").await.unwrap().0, 503);
    assert_eq!(http_get(addr, "/healthz").await.unwrap().0, 200);
    readiness.set_serving();
    assert_eq!(
        http_get(addr, "/readyz").await.unwrap(),
        (200, "ready\n".into())
    );
    readiness.set_draining();
    assert_eq!(
        http_get(addr, "/readyz").await.unwrap(),
        (503, "draining\n".into())
    );
    // Draining is final.
    readiness.set_serving();
    assert_eq!(http_get(addr, "/readyz").await.unwrap().0, 503);
    assert_eq!(http_get(addr, "/healthz").await.unwrap().0, 200);

    let (code, body) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("# TYPE celery_scaler_build_info gauge"),
        "{body}"
    );
    assert_eq!(http_get(addr, "/nope").await.unwrap().0, 404);

    stop.cancel();
    task.await.unwrap().unwrap();
}
