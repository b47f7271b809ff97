//! Connection exhaustion (docs/security.md, "Connection bounds"): distinct broker specs are
//! bounded per endpoint and in total, so a flood of specs (other passwords for a `nopass`
//! user, host case variants) cannot use up a real Redis's `maxclients`.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::time::Duration;

use celery_scaler::config::Config;
use service_support::*;
use tonic::Code;

/// Hang guard: no RPC may take longer than this in these tests.
const LIMIT: Duration = Duration::from_secs(15);
/// Small enough that 300 specs × 2 connections would exhaust it many times over.
const MAXCLIENTS: &str = "50";

fn connected_clients(redis: &support::RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(&mut redis.conn(0))
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn three_hundred_specs_do_not_exhaust_redis() {
    let redis = support::RedisServer::start_with(&["--maxclients", MAXCLIENTS]);
    redis::cmd("LPUSH")
        .arg("celery")
        .arg("m")
        .exec(&mut redis.conn(0))
        .unwrap();
    let config = Config {
        max_brokers_per_endpoint: 8,
        max_brokers: 64,
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    let addr = redis.address();
    let legit = [("address", addr.as_str()), ("queues", "celery")];
    assert!(
        client
            .is_active(so(&legit))
            .await
            .unwrap()
            .into_inner()
            .result
    );

    // Any password works for the `nopass` default user; host case must not matter either.
    let port = redis.port.to_string();
    let hosts = ["127.0.0.1", "localhost", "LOCALHOST", "LocalHost"];
    let (mut served, mut refused) = (0, 0);
    for i in 0..300 {
        let password = format!("guess-{i}");
        let md = [
            ("host", hosts[i % hosts.len()]),
            ("port", port.as_str()),
            ("username", "default"),
            ("password", password.as_str()),
        ];
        match tokio::time::timeout(LIMIT, client.is_active(so(&md)))
            .await
            .unwrap()
        {
            Ok(_) => served += 1,
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "spec {i}: {s:?}");
                assert!(s.message().contains("max_brokers_per_endpoint"), "{s:?}");
                assert!(!s.message().contains(&password), "{s:?}");
                refused += 1;
            }
        }
    }
    let clients = connected_clients(&redis);
    eprintln!("served {served}, refused {refused}, redis connected_clients {clients}");
    // Two endpoints (127.0.0.1 and localhost in any case), 8 specs each, the legit one
    // included.
    assert!(served <= 2 * 8, "served {served}");
    assert_eq!(served + refused, 300);
    assert!(clients < 50, "connected_clients {clients}");

    // The application can still connect, and the first trigger keeps answering.
    let app = redis::Client::open(format!("redis://{addr}/0")).unwrap();
    let mut app = app.get_connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut app).unwrap();
    assert_eq!(pong, "PONG");
    for _ in 0..3 {
        let active = tokio::time::timeout(LIMIT, client.is_active(so(&legit)))
            .await
            .unwrap()
            .unwrap();
        assert!(active.into_inner().result);
    }
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn the_total_bound_holds_and_named_connections_are_exempt() {
    let redis = support::RedisServer::start();
    let addr = redis.address();
    let mut config = Config {
        max_brokers_per_endpoint: 8,
        max_brokers: 3,
        ..test_config()
    };
    config.connections.insert(
        "app".into(),
        celery_scaler::broker::BrokerSpec::direct("127.0.0.1", redis.port),
    );
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    // Three DBs fill the total bound; a fourth spec is refused.
    for db in ["1", "2", "3"] {
        let md = [("address", addr.as_str()), ("databaseIndex", db)];
        assert!(client.is_active(so(&md)).await.is_ok(), "db {db}");
    }
    let md = [("address", addr.as_str()), ("databaseIndex", "4")];
    let s = client.is_active(so(&md)).await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(s.message().contains("max_brokers"), "{s:?}");
    // The operator's connection is not counted and still starts.
    assert!(client.is_active(so(&[("connection", "app")])).await.is_ok());
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn watched_lists_are_bounded_per_broker() {
    let redis = support::RedisServer::start();
    let addr = redis.address();
    let config = Config {
        max_watched_lists_per_broker: 6,
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    // Each trigger reads 2 queues × 1 priority step = 2 lists: three fit, a fourth does not.
    let set = |queues: &'static str| {
        [
            ("address", addr.clone()),
            ("queues", queues.to_string()),
            ("prioritySteps", "0".to_string()),
        ]
    };
    let md = |pairs: &[(&'static str, String); 3]| {
        so(&pairs
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>())
    };
    for queues in ["a,b", "c,d", "e,f"] {
        let r = tokio::time::timeout(LIMIT, client.is_active(md(&set(queues))))
            .await
            .unwrap();
        assert!(r.is_ok(), "{queues}: {r:?}");
    }
    let s = tokio::time::timeout(LIMIT, client.is_active(md(&set("g,h"))))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(
        s.message().contains("max_watched_lists_per_broker"),
        "{s:?}"
    );
    // Registered sets keep working; another DB is another broker with its own budget.
    assert!(client.is_active(md(&set("a,b"))).await.is_ok());
    let other = [("address", addr.as_str()), ("databaseIndex", "1")];
    assert!(client.is_active(so(&other)).await.is_ok());
    server.stop(LIMIT).await.unwrap();
}
