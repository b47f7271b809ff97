//! `grpc_max_streams`: `StreamIsActive` streams open at once are bounded over all connections;
//! one more is refused with `RESOURCE_EXHAUSTED`, and closing a stream frees its slot.
#![allow(clippy::unwrap_used)]

mod service_support;

use std::time::Duration;

use celery_scaler::config::{Config, PortSettings};
use service_support::*;
use tonic::Code;

/// Hang guard for every wait here.
const LIMIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn the_stream_cap_refuses_one_more_and_frees_on_close() {
    let config = Config {
        ports: PortSettings {
            grpc_max_streams: 3,
            ..PortSettings::default()
        },
        ..test_config()
    };
    let server = TestServer::start(config).await;
    // Streams over two connections count against one bound.
    let mut one = server.client().await;
    let mut two = server.client().await;
    // The broker is unreachable: the streams stay open (errors are logged, not fatal).
    let dead = dead_address();
    let md = [("address", dead.as_str())];
    let a = one.stream_is_active(so(&md)).await.unwrap().into_inner();
    let _b = one.stream_is_active(so(&md)).await.unwrap().into_inner();
    let _c = two.stream_is_active(so(&md)).await.unwrap().into_inner();
    let s = two.stream_is_active(so(&md)).await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(s.message().contains("grpc_max_streams"), "{s:?}");
    // Unary RPCs are not streams: still answered.
    let unary = tokio::time::timeout(LIMIT, one.get_metric_spec(so(&md))).await;
    assert!(unary.unwrap().is_ok());

    // Closing one frees its slot (once the server has seen the cancel).
    drop(a);
    let reopened = tokio::time::timeout(LIMIT, async {
        loop {
            match two.stream_is_active(so(&md)).await {
                Ok(s) => return s.into_inner(),
                Err(s) => assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a slot frees after a stream closes");
    drop(reopened);
    server.stop(LIMIT).await.unwrap();
}
