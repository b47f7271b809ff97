//! Hostile traffic from anyone who can write to the broker: forged worker heartbeats on the
//! `celeryev` channel, a pathological `_kombu.binding.*` member with an `unacked` entry routed
//! through it, and wrongly typed kombu keys. Blocking code (a plain Redis connection); run
//! on tokio's blocking pool.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::app::redis_error_kind;
use super::{over, Settings, Tally};
use crate::support::celery_data::{self, bind, deliver, now, unacked_value, SEP};

/// Where Celery workers publish heartbeats with the default prefix and DB 0.
pub const HEARTBEAT_CHANNEL: &str = "/0.celeryev/worker.heartbeat";
/// Forged heartbeats published per batch (one pipeline), one batch per 100 ms.
const BATCH: usize = 200;
/// The exchange whose binding set holds the pathological member.
const EXCHANGE: &str = "soak.hostile";
/// DBs the pathological binding is planted in: the normal triggers' DB 0, and DB 5, which a
/// hostile trigger watches.
pub const BINDING_DBS: [i64; 2] = [0, 5];
/// DB whose `unacked` is a string, and DB whose `unacked_index` is a hash.
pub const WRONG_TYPE_DBS: [i64; 2] = [2, 3];

/// A kombu-wrapped `worker-heartbeat` event as a Celery worker publishes it.
pub fn heartbeat(host: &str, active: serde_json::Value, processed: u64, freq: f64) -> String {
    let body = serde_json::json!({
        "hostname": host, "utcoffset": 0, "pid": 4242, "clock": processed, "freq": freq,
        "active": active, "processed": processed, "loadavg": [0.1, 0.1, 0.1],
        "sw_ident": "py-celery", "sw_ver": "5.4.0", "sw_sys": "Linux",
        "timestamp": now(), "type": "worker-heartbeat"
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(body.to_string());
    serde_json::json!({
        "body": encoded,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": host},
        "properties": {"delivery_mode": 1,
            "delivery_info": {"exchange": "celeryev", "routing_key": "worker.heartbeat"},
            "priority": 0, "body_encoding": "base64", "delivery_tag": format!("hb-{processed}")}
    })
    .to_string()
}

fn conn(port: u16, db: i64) -> redis::RedisResult<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/{db}"))?
        .get_connection_with_timeout(Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(c)
}

/// The binding key of `hashes` `#` words then `z`, and a routing key of 30 words that it does
/// not match: a backtracking matcher tries every way to split 30 words among the `#`s.
pub fn pathological_keys(hashes: usize) -> (String, String) {
    let mut binding = "#.".repeat(hashes);
    binding.push('z');
    let routing = vec!["w"; 30].join(".");
    (binding, routing)
}

/// Writes the pathological binding (in [`BINDING_DBS`]) and the wrongly typed keys (in
/// [`WRONG_TYPE_DBS`]); returns one line per thing planted, for the report.
pub fn plant(port: u16, settings: &Settings) -> Vec<String> {
    let mut done = Vec::new();
    let hashes = if settings.full { 16 } else { 6 };
    if settings.enabled("binding") {
        let (binding, routing) = pathological_keys(hashes);
        for db in BINDING_DBS {
            let Ok(mut c) = conn(port, db) else {
                done.push(format!("binding: DB {db} unreachable"));
                continue;
            };
            bind(&mut c, "", EXCHANGE, &binding, "default", SEP);
            let tag = format!("soak-binding-{db}");
            let value = unacked_value(&tag, None, EXCHANGE, &routing);
            deliver(&mut c, "", &tag, now(), &value);
        }
        done.push(format!(
            "binding: `_kombu.binding.{EXCHANGE}` member `{}`… ({hashes} `#`) + one `unacked` \
             entry with a 30-word routing key, DBs {BINDING_DBS:?}",
            &binding[..8]
        ));
    }
    if settings.enabled("wrong_type") {
        let [string_db, hash_db] = WRONG_TYPE_DBS;
        let planted = conn(port, string_db).and_then(|mut c| {
            celery_data::push(&mut c, b"default", 5);
            redis::cmd("SET")
                .arg("unacked")
                .arg("not a hash")
                .query::<()>(&mut c)
        });
        let planted = planted.and_then(|()| {
            let mut c = conn(port, hash_db)?;
            celery_data::push(&mut c, b"default", 5);
            redis::cmd("HSET")
                .arg("unacked_index")
                .arg("tag")
                .arg("1")
                .query::<()>(&mut c)
        });
        done.push(match planted {
            Ok(()) => format!(
                "wrong_type: `unacked` a string in DB {string_db}, \
                 `unacked_index` a hash in DB {hash_db}"
            ),
            Err(e) => format!("wrong_type: not planted ({})", redis_error_kind(&e)),
        });
    }
    done
}

/// Publishes up to `count` forged heartbeats (`active` 2^63, `freq` 1e300, a new hostname
/// each, all matching the latency triggers' `workerHostnames`) until `end`.
pub fn forge_heartbeats(port: u16, count: usize, end: Instant, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally::default();
    let mut c = match conn(port, 0) {
        Ok(c) => c,
        Err(e) => {
            tally.record(Err(redis_error_kind(&e)));
            return tally;
        }
    };
    let mut sent = 0;
    while sent < count && !over(end, &stop) {
        let t = Instant::now();
        let n = BATCH.min(count - sent);
        let mut pipe = redis::pipe();
        for i in sent..sent + n {
            let host = format!("celery@soak-forged-{i:06}");
            let beat = heartbeat(&host, (1u64 << 63).into(), i as u64, 1e300);
            pipe.cmd("PUBLISH")
                .arg(HEARTBEAT_CHANNEL)
                .arg(beat)
                .ignore();
        }
        let r: redis::RedisResult<()> = pipe.query(&mut c);
        for _ in 0..n {
            tally.record(r.as_ref().map(|_| ()).map_err(redis_error_kind));
        }
        sent += n;
        let pause = Duration::from_millis(100).saturating_sub(t.elapsed());
        std::thread::sleep(pause.min(end.saturating_duration_since(Instant::now())));
    }
    tally
}
