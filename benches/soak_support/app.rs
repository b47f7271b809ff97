//! The Celery application's own broker traffic during both phases, so the queues move and
//! the broker's capacity is shared as in production: a producer pushing and a worker taking
//! one message per queue every 200 ms (backlogs stay level), a worker heartbeat every 2 s
//! from `celery@soak-w1`, and a fresh client connection every second (a web process
//! connecting), whose refusals show when the scaler has used up the broker's `maxclients`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use redis::ConnectionLike as _;

use crate::grpc_support::QUEUES;
use crate::support::celery_data::envelope;

use super::broker_attack::{heartbeat, HEARTBEAT_CHANNEL};

/// What the application did and what the broker refused it.
#[derive(Debug, Default)]
pub struct AppStats {
    pub ops: u64,
    pub errors: BTreeMap<String, u64>,
}

impl AppStats {
    fn note<T>(&mut self, what: &str, r: redis::RedisResult<T>) {
        match r {
            Ok(_) => self.ops += 1,
            Err(e) => {
                let kind = redis_error_kind(&e);
                *self.errors.entry(format!("{what}: {kind}")).or_default() += 1;
            }
        }
    }
}

/// A short, bounded name for a Redis error.
pub fn redis_error_kind(e: &redis::RedisError) -> String {
    if e.to_string().contains("max number of clients") {
        "maxclients".into()
    } else if e.is_timeout() {
        "timeout".into()
    } else if let Some(code) = e.code() {
        code.to_string()
    } else {
        format!("{:?}", e.kind())
    }
}

fn client(port: u16) -> redis::RedisResult<redis::Client> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
}

fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let c = client(port)?.get_connection_with_timeout(Duration::from_secs(1))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    c.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(c)
}

/// Runs the application's traffic on the broker at `port` until `end` (blocking).
pub fn run(port: u16, end: Instant) -> AppStats {
    let mut stats = AppStats::default();
    let mut conn: Option<redis::Connection> = None;
    let (mut tick, mut processed) = (0u64, 0u64);
    while Instant::now() < end {
        let t = Instant::now();
        if conn.is_none() {
            match connect(port) {
                Ok(c) => conn = Some(c),
                Err(e) => stats.note::<()>("connect", Err(e)),
            }
        }
        if let Some(c) = conn.as_mut() {
            for q in QUEUES {
                let msg = envelope(&format!("app-{tick}"), None, "", q);
                let r: redis::RedisResult<i64> = redis::cmd("LPUSH").arg(q).arg(msg).query(c);
                stats.note("lpush", r);
                let r: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("RPOP").arg(q).query(c);
                stats.note("rpop", r);
            }
            if tick % 10 == 0 {
                processed += 4;
                let beat = heartbeat("celery@soak-w1", 2u64.into(), processed, 2.0);
                let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                    .arg(HEARTBEAT_CHANNEL)
                    .arg(beat)
                    .query(c);
                stats.note("publish", r);
            }
            if !c.is_open() {
                conn = None;
            }
        }
        if tick % 5 == 0 {
            let r = connect(port).and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            stats.note("new connection", r);
        }
        tick += 1;
        let pause = Duration::from_millis(200).saturating_sub(t.elapsed());
        std::thread::sleep(pause.min(end.saturating_duration_since(Instant::now())));
    }
    stats
}
