//! `StreamIsActive` lifecycle against the real in-process server: a client cancel frees its
//! stream at once; on shutdown the remaining streams end with status OK (so KEDA reconnects
//! after ~2 s instead of backing off) and the server returns within the grace period.
//!
//! One test per file: it reads the process-wide open-streams gauge.
#![allow(clippy::unwrap_used)]

mod service_support;

use std::time::Duration;

use celery_scaler::grpc::observe_stream_open;
use service_support::*;

async fn wait_for_open_streams(n: i64) {
    for _ in 0..200 {
        if observe_stream_open() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("open streams: {} (wanted {n})", observe_stream_open());
}

#[tokio::test]
async fn cancel_frees_the_stream_and_shutdown_ends_the_rest_with_ok() {
    let server = TestServer::start(test_config()).await;
    let mut client = server.client().await;
    // The broker is unreachable: the streams stay open (errors are logged, not fatal).
    let dead = dead_address();
    let md = [("address", dead.as_str())];
    let a = client.stream_is_active(so(&md)).await.unwrap().into_inner();
    let mut b = client.stream_is_active(so(&md)).await.unwrap().into_inner();
    // Streams are driven by the connection: they count as open once polled.
    wait_for_open_streams(2).await;

    drop(a);
    wait_for_open_streams(1).await;

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
    wait_for_open_streams(0).await;
}
