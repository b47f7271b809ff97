//! `StreamIsActive` pushes: `true` within one sampling interval of work appearing, then
//! nothing while the trigger stays active (no periodic re-send: each `true` makes KEDA write
//! the ScaledObject's status), `true` again on the next inactive → active transition, never
//! `false`. Needs Redis and the broker sampler.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::time::{Duration, Instant};

use service_support::*;

/// The period at which the stream used to re-send `true` while active.
const OLD_RESEND: Duration = Duration::from_secs(5);

fn redis_cmd(conn: &mut redis::Connection, args: &[&str]) {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    let _: redis::Value = c.query(conn).unwrap();
}

#[tokio::test]
async fn pushes_true_only_on_transitions_to_active() {
    let redis = support::RedisServer::start();
    let config = test_config();
    let interval = config.sample_interval;
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let md = [("address", addr.as_str()), ("queues", "jobs")];
    let mut stream = client.stream_is_active(so(&md)).await.unwrap().into_inner();

    // Idle: nothing is pushed (in particular no `false`).
    let quiet = tokio::time::timeout(interval * 4, stream.message()).await;
    assert!(quiet.is_err(), "idle stream pushed {quiet:?}");

    let mut conn = redis.conn(0);
    redis_cmd(&mut conn, &["LPUSH", "jobs", "t1"]);
    let pushed_at = Instant::now();
    // Within one sampling interval, plus the sampler's own round trip (hang guard only).
    let msg = tokio::time::timeout(interval * 3 + Duration::from_secs(1), stream.message())
        .await
        .expect("true pushed after work appeared")
        .unwrap()
        .unwrap();
    assert!(msg.result);
    eprintln!("first push after {:?}", pushed_at.elapsed());

    // Active for longer than the old re-send period: exactly one message so far.
    let more = tokio::time::timeout(OLD_RESEND + Duration::from_secs(2), stream.message()).await;
    assert!(more.is_err(), "pushed again while still active: {more:?}");

    // Active → idle → active: a second message.
    redis_cmd(&mut conn, &["DEL", "jobs"]);
    let quiet = tokio::time::timeout(interval * 10, stream.message()).await;
    assert!(quiet.is_err(), "pushed on turning idle: {quiet:?}");
    redis_cmd(&mut conn, &["LPUSH", "jobs", "t2"]);
    let again = tokio::time::timeout(interval * 3 + Duration::from_secs(1), stream.message())
        .await
        .expect("true pushed on the second transition")
        .unwrap()
        .unwrap();
    assert!(again.result);

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
