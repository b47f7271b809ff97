//! Read-only: the sampler runs as an ACL user allowed only read and connection commands, and
//! a `MONITOR` capture taken while it samples (full reconciliation, incremental ticks with
//! new, acked and explicit-exchange entries) shows no write command from its connections.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use celery_scaler::broker::{BrokerSpec, Registry, SamplerSettings, Secret, WatchSet};
use celery_scaler::celery::Layout;
use support::celery_data::{ack, bind, deliver, iso, key, now, push, sub_key, unacked_value, SEP};
use support::monitor::{client_of, command_of, Monitor};
use support::RedisServer;

const WRITES: &[&str] = &[
    "SET",
    "SETEX",
    "PSETEX",
    "SETNX",
    "GETSET",
    "GETDEL",
    "DEL",
    "UNLINK",
    "EXPIRE",
    "PEXPIRE",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "BRPOP",
    "BLPOP",
    "LREM",
    "LSET",
    "LTRIM",
    "RPOPLPUSH",
    "LMOVE",
    "HSET",
    "HMSET",
    "HDEL",
    "HSETNX",
    "HINCRBY",
    "ZADD",
    "ZREM",
    "ZINCRBY",
    "ZREMRANGEBYSCORE",
    "ZREMRANGEBYRANK",
    "SADD",
    "SREM",
    "SPOP",
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "SCRIPT",
    "CONFIG",
    "FLUSHDB",
    "FLUSHALL",
    "RENAME",
    "MULTI",
    "EXEC",
    "WATCH",
    "PUBLISH",
    "INCR",
    "INCRBY",
    "DECR",
    "APPEND",
    "COPY",
    "MOVE",
    "RESTORE",
];

#[tokio::test]
async fn runs_as_a_read_only_acl_user_and_sends_no_write() {
    let server = RedisServer::start();
    let mut admin = server.conn(0);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("scaler")
        .arg("on")
        .arg(">scaler-pw-5d2e")
        .arg("~*")
        .arg("&*")
        .arg("resetchannels")
        .arg("&*")
        .arg("-@all")
        .arg("+@read")
        .arg("+@connection")
        .arg("+ping")
        .arg("+info")
        .arg("+subscribe")
        .arg("+psubscribe")
        .arg("+unsubscribe")
        .arg("+punsubscribe")
        .query(&mut admin)
        .expect("ACL SETUSER");

    let db = 5;
    let mut c = server.conn(db);
    let p = "app:";
    push(&mut c, &key(p, "celery"), 3);
    push(&mut c, &sub_key(p, "celery", SEP, 6), 2);
    let t = now();
    for i in 0..300 {
        let tag = format!("t{i}");
        deliver(
            &mut c,
            p,
            &tag,
            t - 600.0 + f64::from(i),
            &unacked_value(&tag, None, "", "celery"),
        );
    }
    deliver(&mut c, p, "x", t, &unacked_value("x", None, "myex", "rk.x"));
    bind(&mut c, p, "myex", "rk.x", "celery", SEP);

    let monitor = Monitor::start(server.port, None);
    let registry = std::sync::Arc::new(Registry::new(SamplerSettings {
        interval: Duration::from_millis(200),
        ..SamplerSettings::default()
    }));
    let mut spec = BrokerSpec::direct("127.0.0.1", server.port);
    spec.db = db;
    spec.username = Some("scaler".into());
    spec.password = Some(Secret::new("scaler-pw-5d2e"));
    let watch = WatchSet {
        layout: Layout {
            prefix: p.as_bytes().to_vec(),
            ..Layout::default()
        },
        queues: vec!["celery".into()],
        visibility_timeout_ms: 3_600_000,
        worker_hostnames: None,
    };
    let mut sub = registry
        .subscribe(&spec, &watch)
        .await
        .expect("read-only user can sample");
    assert_eq!(sub.next().await.expect("tick").queues[0].reserved, 301);
    for i in (50..250).step_by(5) {
        ack(&mut c, p, &format!("t{i}"));
    }
    for i in 0..10 {
        let tag = format!("n{i}");
        deliver(
            &mut c,
            p,
            &tag,
            now(),
            &unacked_value(&tag, Some(&iso(now() + 60.0)), "", "celery"),
        );
    }
    let mut last = None;
    for _ in 0..15 {
        let v = sub.next().await.expect("tick");
        last = Some(v.queues[0].clone());
        if v.queues[0].reserved == 261 && v.queues[0].scheduled == 10 {
            break;
        }
    }
    let last = last.expect("ticks");
    assert_eq!((last.backlog, last.reserved, last.scheduled), (5, 261, 10));

    // The scaler's connections: the clients logged in as `scaler`.
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut admin)
        .expect("client list");
    let ours: BTreeSet<String> = clients
        .lines()
        .filter(|l| l.contains(" user=scaler "))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("addr="))
                .map(str::to_string)
        })
        .collect();
    assert!(
        !ours.is_empty(),
        "scaler connection not found in CLIENT LIST"
    );
    drop(sub);
    registry.shutdown().await;
    let lines = monitor.stop();

    let sent: Vec<String> = lines
        .iter()
        .filter(|l| client_of(l).is_some_and(|a| ours.contains(&a)))
        .filter_map(|l| command_of(l))
        .collect();
    let kinds: BTreeSet<&str> = sent.iter().map(String::as_str).collect();
    eprintln!("scaler sent {} commands: {kinds:?}", sent.len());
    for needed in [
        "LLEN",
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZCOUNT",
        "HMGET",
        "SCARD",
        "SRANDMEMBER",
        "LINDEX",
        "LPOS",
    ] {
        assert!(kinds.contains(needed), "{needed} not captured: {kinds:?}");
    }
    let writes: Vec<&String> = sent
        .iter()
        .filter(|c| WRITES.contains(&c.as_str()))
        .collect();
    assert!(
        writes.is_empty(),
        "write commands from the scaler: {writes:?}"
    );
}
