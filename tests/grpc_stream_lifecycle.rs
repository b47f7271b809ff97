//! `StreamIsActive` lifecycle against the real in-process server: a client cancel frees its
//! stream at once; on shutdown the remaining streams end with status OK (so KEDA reconnects
//! after ~2 s instead of backing off) and the server returns within the grace period.
//!
//! The open-streams gauge is read from the server's own metrics.
#![allow(clippy::unwrap_used)]

mod service_support;

use std::time::Duration;

use celery_scaler::telemetry::Metrics;
use service_support::*;

async fn wait_for_open_streams(metrics: &Metrics, n: i64) {
    let open = || metrics.grpc().streams_open();
    for _ in 0..200 {
        if open() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("open streams: {} (wanted {n})", open());
}

#[tokio::test]
async fn cancel_frees_the_stream_and_shutdown_ends_the_rest_with_ok() {
    let server = TestServer::start(test_config()).await;
    let metrics = server.metrics.clone();
    let mut client = server.client().await;
    // The broker is unreachable: the streams stay open (errors are logged, not fatal).
    let dead = dead_address();
    let md = [("address", dead.as_str())];
    let a = client.stream_is_active(so(&md)).await.unwrap().into_inner();
    let mut b = client.stream_is_active(so(&md)).await.unwrap().into_inner();
    // Streams are driven by the connection: they count as open once polled.
    wait_for_open_streams(&metrics, 2).await;

    drop(a);
    wait_for_open_streams(&metrics, 1).await;

    let grace = test_config().shutdown_grace;
    server.shutdown.cancel();
    let end = tokio::time::timeout(grace, b.message())
        .await
        .expect("the stream ends within the grace period");
    assert!(
        matches!(end, Ok(None)),
        "stream must end with OK, got {end:?}"
    );
    tokio::time::timeout(grace, server.handle)
        .await
        .expect("server returns within the grace period")
        .unwrap()
        .unwrap();
    wait_for_open_streams(&metrics, 0).await;
}
