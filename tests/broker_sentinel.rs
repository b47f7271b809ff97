//! Sentinel: a master, a replica and three `redis-sentinel` processes on loopback. The
//! sampler finds the master through the sentinels and, after a forced failover (and the old
//! master gone), answers from the new master within 5 s.

mod support;

use std::time::{Duration, Instant};

use celery_scaler::broker::{BrokerSpec, Endpoint, HostPort, Registry, SamplerSettings, WatchSet};
use celery_scaler::celery::Layout;
use support::celery_data::{key, push};
use support::sentinel::Sentinel;
use support::RedisServer;

const MASTER: &str = "mymaster";

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn info(server: &RedisServer) -> String {
    redis::cmd("INFO")
        .arg("replication")
        .query(&mut server.conn(0))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_master_after_a_failover() {
    let mut master = RedisServer::start();
    let master_port = master.port.to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master_port]);
    wait_for("replica link", Duration::from_secs(15), || {
        info(&replica).contains("master_link_status:up")
    });
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::start(MASTER, master.port, 2))
        .collect();
    wait_for(
        "sentinels to see the replica and each other",
        Duration::from_secs(20),
        || {
            sentinels.iter().all(|s| {
                let mut c = s.conn();
                let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg("replicas")
                    .arg(MASTER)
                    .query(&mut c)
                    .unwrap_or_default();
                let peers: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg("sentinels")
                    .arg(MASTER)
                    .query(&mut c)
                    .unwrap_or_default();
                replicas.len() == 1 && peers.len() == 2
            })
        },
    );

    push(&mut master.conn(0), &key("", "celery"), 2);
    let spec = BrokerSpec {
        endpoint: Endpoint::Sentinel {
            master: MASTER.into(),
            sentinels: sentinels
                .iter()
                .map(|s| HostPort {
                    host: "127.0.0.1".into(),
                    port: s.port,
                })
                .collect(),
            username: None,
            password: None,
        },
        db: 0,
        username: None,
        password: None,
        tls: None,
    };
    let watch = WatchSet {
        layout: Layout::default(),
        queues: vec!["celery".into()],
        visibility_timeout_ms: 3_600_000,
        worker_hostnames: None,
    };
    let registry = Registry::new(SamplerSettings {
        interval: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
        ..SamplerSettings::default()
    });
    let view = registry
        .view(&spec, &watch)
        .await
        .expect("view via sentinel");
    assert!(
        view.broker.starts_with("sentinel:mymaster/0#"),
        "{}",
        view.broker
    );
    assert_eq!(view.queues[0].backlog, 2);

    let _: redis::Value = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(MASTER)
        .query(&mut sentinels[0].conn())
        .expect("SENTINEL FAILOVER");
    wait_for(
        "the sentinels to name the replica",
        Duration::from_secs(30),
        || {
            sentinels
                .iter()
                .all(|s| s.master_port(MASTER) == Some(replica.port))
        },
    );
    wait_for(
        "the replica to become master",
        Duration::from_secs(15),
        || info(&replica).contains("role:master"),
    );
    // Periodic re-resolution moves the sampler even while the old master still answers
    // (as a replica): the new master soon sees the sampler's reads.
    wait_for(
        "the sampler to read from the new master",
        Duration::from_secs(5),
        || {
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query(&mut replica.conn(0))
                .unwrap_or_default();
            clients.lines().any(|l| {
                ["cmd=llen", "cmd=zrange", "cmd=zcount"]
                    .iter()
                    .any(|c| l.contains(c))
            })
        },
    );
    // The old master is gone for good: only the new master can answer now.
    master.stop();
    push(&mut replica.conn(0), &key("", "celery"), 5);
    let written = Instant::now();
    loop {
        let backlog = registry
            .view(&spec, &watch)
            .await
            .ok()
            .map(|v| v.queues[0].backlog);
        if backlog == Some(7) {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(5),
            "new master's data not seen within 5 s (last {backlog:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "new master's data seen {:?} after the write",
        written.elapsed()
    );
    registry.shutdown().await;
}
