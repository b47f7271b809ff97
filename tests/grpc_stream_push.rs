//! `StreamIsActive` pushes: `true` within one sampling interval of work appearing, re-sent
//! while active, never `false`. Needs Redis and the broker sampler.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::time::{Duration, Instant};

use service_support::*;

#[tokio::test]
async fn pushes_true_when_work_appears_and_resends_while_active() {
    let redis = support::RedisServer::start();
    let config = test_config();
    let interval = config.sample_interval;
    let resend = config.stream_resend;
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let md = [("address", addr.as_str()), ("queues", "jobs")];
    let mut stream = client.stream_is_active(so(&md)).await.unwrap().into_inner();

    // Idle: nothing is pushed (in particular no `false`).
    let quiet = tokio::time::timeout(interval * 4, stream.message()).await;
    assert!(quiet.is_err(), "idle stream pushed {quiet:?}");

    let mut conn = redis.conn(0);
    let _: () = redis::cmd("LPUSH")
        .arg("jobs")
        .arg("t1")
        .query(&mut conn)
        .unwrap();
    let pushed_at = Instant::now();
    // Within one sampling interval, plus the sampler's own round trip (hang guard only).
    let msg = tokio::time::timeout(interval * 3 + Duration::from_secs(1), stream.message())
        .await
        .expect("true pushed after work appeared")
        .unwrap()
        .unwrap();
    assert!(msg.result);
    let first = pushed_at.elapsed();

    // Still active: re-sent after `resend`.
    let again = tokio::time::timeout(resend * 3, stream.message())
        .await
        .expect("true re-sent while active")
        .unwrap()
        .unwrap();
    assert!(again.result);
    eprintln!("first push after {first:?}");

    server.shutdown.cancel();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test]
async fn sends_true_on_open_when_already_active() {
    let redis = support::RedisServer::start();
    let mut conn = redis.conn(0);
    let _: () = redis::cmd("LPUSH")
        .arg("celery")
        .arg("t1")
        .query(&mut conn)
        .unwrap();
    let server = TestServer::start(test_config()).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let mut stream = client
        .stream_is_active(so(&[("address", addr.as_str())]))
        .await
        .unwrap()
        .into_inner();
    let msg = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(msg.result);
    server.stop(Duration::from_secs(10)).await.unwrap();
}
