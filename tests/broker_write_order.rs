//! An `unacked` entry written in two steps against a real redis-server: kombu adds a
//! delivery's index entry and its value in one `MULTI`, but a writer that adds the index entry
//! first leaves a tick that lists the tag without a value. The tracker reads such a tag again
//! on the next few ticks instead of waiting for the next reconciliation (an hour here).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use celery_scaler::broker::{BrokerSpec, Registry};
use support::celery_data::{now, unacked_value};
use support::RedisServer;

#[tokio::test]
async fn a_value_written_after_its_index_entry_counts_within_a_few_ticks() {
    let server = RedisServer::start();
    let mut c = server.conn(0);
    let registry = Arc::new(Registry::new(support::fast_sampler(Duration::from_secs(1))));
    let spec = BrokerSpec::direct("127.0.0.1", server.port);
    let watch = support::default_watch(&["celery"]);
    let mut sub = registry.subscribe(&spec, &watch).await.expect("subscribe");
    assert_eq!(sub.next().await.expect("tick").queues[0].reserved, 0);

    let _: i64 = redis::cmd("ZADD")
        .arg("unacked_index")
        .arg(now())
        .arg("late")
        .query(&mut c)
        .expect("zadd");
    // Two ticks: at least one of them listed the tag and found no value.
    for _ in 0..2 {
        assert_eq!(sub.next().await.expect("tick").queues[0].reserved, 0);
    }
    let _: i64 = redis::cmd("HSET")
        .arg("unacked")
        .arg("late")
        .arg(unacked_value("late", None, "", "celery"))
        .query(&mut c)
        .expect("hset");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = sub.next().await.expect("tick");
        if view.queues[0].reserved == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the value written after its index entry never counted: {:?}",
            view.queues[0]
        );
    }
    drop(sub);
    registry.shutdown().await;
}
