//! Hostile trigger metadata against the real gRPC server in-process: huge values and huge
//! queue lists are refused with a short `INVALID_ARGUMENT` naming the key, on every RPC.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::time::Duration;

use service_support::*;
use tonic::Code;

const LIMIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn huge_values_are_refused_with_a_short_message() {
    let server = TestServer::start(test_config()).await;
    let mut client = server.client().await;
    let dead = dead_address();
    let mega = "x".repeat(1_000_000);
    let near_limit = "y".repeat(3_000);
    let queues_10k: String = (0..10_000)
        .map(|i| format!("q{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("address", &dead), ("keyPrefix", &mega)],
            "scalerMetadata",
        ),
        (vec![("address", &mega)], "scalerMetadata"),
        (vec![("address", &dead), ("queues", &queues_10k)], "queues"),
        (
            vec![("address", &dead), ("keyPrefix", &near_limit)],
            "keyPrefix",
        ),
        (vec![("address", &near_limit)], "address"),
        (vec![("address", &dead), ("mode", &near_limit)], "mode"),
        (
            vec![("address", &dead), ("listLength", &near_limit)],
            "listLength",
        ),
    ];
    for (pairs, key) in cases {
        let requests = [
            client.get_metric_spec(so(&pairs)).await.map(|_| ()),
            client.is_active(so(&pairs)).await.map(|_| ()),
            client
                .get_metrics(metrics_req(&pairs, "celery-celery"))
                .await
                .map(|_| ()),
            client.stream_is_active(so(&pairs)).await.map(|_| ()),
        ];
        for r in requests {
            let status = r.expect_err("refused");
            assert_eq!(status.code(), Code::InvalidArgument, "{key}: {status:?}");
            assert!(
                status.message().contains(key),
                "{key}: {}",
                status.message()
            );
            assert!(
                status.message().len() < 1024,
                "{key}: message of {} bytes",
                status.message().len()
            );
        }
    }
    // An unknown metricName is echoed truncated too.
    let status = client
        .get_metrics(metrics_req(&[("address", &dead)], &mega))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().len() < 1024, "{}", status.message().len());
    server.stop(LIMIT).await.unwrap();
}
