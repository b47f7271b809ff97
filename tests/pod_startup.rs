//! Waiting at zero (`podStartup`), against a real redis-server: a lone task on an idle queue
//! keeps latency mode's trigger inactive while, started `podStartup` later, it still starts
//! within `targetLatency`; the trigger activates once its start is due, at once without
//! `podStartup`, and at once when more tasks are listed than one pod starts. The sampler must
//! date a list that just filled on the tick it first shows (else the first tick activates).

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use celery_scaler::broker::{NamedConnections, Registry, SamplerSettings};
use celery_scaler::inspect;
use celery_scaler::scaler::{Evaluation, Scaler};
use celery_scaler::signals::Source;
use support::celery_data::{ack, deliver, envelope, now, unacked_value};
use support::{signal_mode, RedisServer};

/// T = 10 s, pods up 3 s after activation: a start is due when the oldest task is
/// 0.8·10 − 3 = 5 s old.
const DUE: f64 = 5.0;

fn trigger(port: u16, pod_startup: Option<&str>) -> HashMap<String, String> {
    let mut md: HashMap<String, String> = [
        ("address", format!("127.0.0.1:{port}")),
        ("queues", "celery".to_string()),
        ("mode", "latency".to_string()),
        ("concurrency", "4".to_string()),
        ("targetLatency", "10".to_string()),
        ("acksLate", "true".to_string()),
        ("prefetchMultiplier", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(p) = pod_startup {
        md.insert("podStartup".into(), p.into());
    }
    md
}

/// A sampler ticking every 200 ms over a 30 s signal window.
fn registry() -> Arc<Registry> {
    Arc::new(Registry::new(SamplerSettings {
        interval: Duration::from_millis(200),
        first_sample_timeout: Duration::from_secs(10),
        signal_window: Duration::from_secs(30),
        ..SamplerSettings::default()
    }))
}

/// Evaluates `md` every 50 ms until `done` holds (at most `secs`); every evaluation with when
/// it began and ended, relative to `since` (an assertion on how early something happened
/// reads the end, on how late the beginning: a loaded machine can stall in between).
async fn evaluations_until(
    scaler: &Scaler,
    md: &HashMap<String, String>,
    since: Instant,
    secs: f64,
    done: impl Fn(&Evaluation) -> bool,
) -> Vec<(f64, f64, Evaluation)> {
    let mut out = Vec::new();
    loop {
        let started = since.elapsed().as_secs_f64();
        let e = scaler.evaluate(md).await.expect("evaluate");
        let at = since.elapsed().as_secs_f64();
        let stop = done(&e) || at > secs;
        out.push((started, at, e));
        if stop {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether every evaluation whose snapshot lists a task is active (what the trigger answers
/// at the first tick that lists them, however late that tick comes).
fn listed_means_active(runs: &[(f64, f64, Evaluation)]) -> bool {
    runs.iter()
        .all(|(_, _, e)| e.view.queues[0].backlog == 0 || e.decision.active)
}

fn push(c: &mut redis::Connection, tags: &[String]) {
    let mut p = redis::pipe();
    for tag in tags {
        p.cmd("LPUSH")
            .arg("celery")
            .arg(envelope(tag, None, "", "celery"))
            .ignore();
    }
    let () = p.query(c).expect("push");
}

/// A worker takes and finishes every listed task.
fn drain(c: &mut redis::Connection, tags: &[String]) {
    for tag in tags {
        let _: Vec<u8> = redis::cmd("RPOP").arg("celery").query(c).expect("rpop");
        deliver(c, "", tag, now(), &unacked_value(tag, None, "", "celery"));
        ack(c, "", tag);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_task_waits_at_zero_until_its_start_is_due() {
    lone_task_waits_at_zero(RedisServer::start(), Source::TailTag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_task_waits_at_zero_until_its_start_is_due_with_keyspace_events() {
    // The shipped stack's Redis publishes list keyspace events: the wait comes from the
    // FIFO clock of the pushes heard, not from delivery tags.
    let server = RedisServer::start_with(&["--notify-keyspace-events", "Kl"]);
    lone_task_waits_at_zero(server, Source::Keyspace).await;
}

/// The lone-task scenario on `server`, whose waits must come from `source`.
async fn lone_task_waits_at_zero(server: RedisServer, source: Source) {
    let registry = registry();
    let scaler = Scaler::new(registry.clone(), NamedConnections::new());
    let (cold, plain) = (trigger(server.port, Some("3")), trigger(server.port, None));
    scaler.evaluate(&cold).await.expect("first evaluation");
    scaler.evaluate(&plain).await.expect("first evaluation");
    // Let the sampler see the queue empty for a few ticks first.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut c = server.conn(0);

    let lone = vec!["lone".to_string()];
    push(&mut c, &lone);
    let (pushed, pushed_at) = (Instant::now(), now());
    // Without `podStartup` the first tick that lists the task activates.
    let plain_runs = evaluations_until(&scaler, &plain, pushed, 3.0, |e| e.decision.active).await;
    assert!(plain_runs.last().is_some_and(|(_, _, e)| e.decision.active));
    assert!(listed_means_active(&plain_runs));
    // With it the trigger waits while the task is younger than its due age: inactive when
    // decided before it, active when decided after it (within a tick and the task's dating;
    // read on the decision's own clock, which a stall between evaluations does not move).
    let runs = evaluations_until(&scaler, &cold, pushed, DUE + 3.0, |e| e.decision.active).await;
    let (_, _, last) = runs.last().expect("evaluated");
    assert!(last.decision.active, "never activated: {:?}", last.decision);
    let decided = |e: &Evaluation| e.view.sampled_at + e.live[0].sampled_ago - pushed_at;
    assert!(
        decided(last) >= DUE - 0.5,
        "activated {:.2} s after the push, due at {DUE} s",
        decided(last)
    );
    let late = runs
        .iter()
        .map(|(_, _, e)| (decided(e), e.decision.active))
        .filter(|(at, active)| !active && *at >= DUE + 1.5);
    assert_eq!(late.count(), 0, "still waiting past the due age");
    let waiting: Vec<&Evaluation> = runs
        .iter()
        .filter(|(_, _, e)| e.view.queues[0].backlog > 0 && !e.decision.active)
        .map(|(_, _, e)| e)
        .collect();
    assert!(waiting.len() > 10, "{} waiting evaluations", waiting.len());
    // Each was dated: the age is measured from the tick the list first showed the task.
    assert!(
        waiting.iter().all(|e| e.live[0]
            .wait
            .is_some_and(|w| !w.is_lower_bound() && w.source == source)),
        "{:?}",
        waiting.iter().map(|e| e.live[0].wait).collect::<Vec<_>>()
    );
    let text = inspect::to_text(waiting[waiting.len() / 2]);
    assert!(text.contains("wait at zero (podStartup)"), "{text}");

    // The task is taken and done; the trigger goes inactive again.
    drain(&mut c, &lone);
    let idle = evaluations_until(&scaler, &cold, pushed, 30.0, |e| !e.decision.active).await;
    assert!(idle.last().is_some_and(|(_, _, e)| !e.decision.active));

    // Five tasks at once are more than one pod (4 slots) starts: no wait.
    let five: Vec<String> = (0..5).map(|i| format!("five{i}")).collect();
    push(&mut c, &five);
    let pushed = Instant::now();
    let runs = evaluations_until(&scaler, &cold, pushed, 3.0, |e| e.decision.active).await;
    let (_, _, last) = runs.last().expect("evaluated");
    assert!(last.decision.active, "{:?}", last.decision);
    assert!(listed_means_active(&runs), "five tasks listed and inactive");
    drain(&mut c, &five);
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_listed_before_the_scaler_started_has_no_known_age_and_activates() {
    // The task was listed 1.5 s before this scaler started (a restart, a rolling update): the
    // sampler's first reading of the list cannot date it, so its age is a lower bound and
    // nothing waits on it (restarting its age at 0 kept it at zero another 5 s).
    let server = RedisServer::start();
    let mut c = server.conn(0);
    push(&mut c, &["before".to_string()]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let registry = registry();
    let scaler = Scaler::new(registry.clone(), NamedConnections::new());
    let cold = trigger(server.port, Some("3"));
    let started = Instant::now();
    let runs = evaluations_until(&scaler, &cold, started, 3.0, |e| e.decision.active).await;
    let (_, _, last) = runs.last().expect("evaluated");
    assert!(
        last.decision.active,
        "{:?} {:?}",
        last.decision, last.live[0].wait
    );
    assert!(listed_means_active(&runs), "listed and inactive");
    let wait = last.live[0].wait.expect("a wait");
    assert!(wait.is_lower_bound(), "{wait:?}");
    // ... and the metric says so (the wait had no `lower-bound` mode series: none read 1).
    let broker = format!("127.0.0.1:{}/0", server.port);
    assert_eq!(
        signal_mode(&registry, &broker, "celery", "wait", "lower-bound"),
        Some(1.0)
    );
    drain(&mut c, &["before".to_string()]);
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_is_aged_to_when_the_scaler_is_asked_not_to_the_tick() {
    // A sampler ticking every 2 s: evaluations between two ticks share one snapshot, and
    // the task found waiting has waited longer at each: the signals say how long ago they
    // were sampled, which the `podStartup` rule adds to the tick's age (it read up to a
    // tick short of the truth, spent from the reserve).
    let server = RedisServer::start();
    let registry = Arc::new(Registry::new(SamplerSettings {
        interval: Duration::from_secs(2),
        first_sample_timeout: Duration::from_secs(10),
        signal_window: Duration::from_secs(30),
        ..SamplerSettings::default()
    }));
    let scaler = Scaler::new(registry.clone(), NamedConnections::new());
    let md = trigger(server.port, None);
    scaler.evaluate(&md).await.expect("first evaluation");
    let mut c = server.conn(0);
    push(&mut c, &["aged".to_string()]);
    let pushed = Instant::now();
    let runs = evaluations_until(&scaler, &md, pushed, 7.0, |_| false).await;
    // The evaluations of each snapshot that showed the task: (began, ended, wait).
    let mut by_tick: HashMap<u64, Vec<(f64, f64, f64)>> = HashMap::new();
    for (started, at, e) in &runs {
        if let (true, Some(w)) = (e.view.queues[0].backlog > 0, e.live[0].wait) {
            // The sampler's tick reaches the rule, which keeps 1.5 ticks in reserve at least
            // (known from the sampler's second tick on; the task shows on a later one).
            let tick = e.live[0].tick;
            assert!(
                tick.is_some_and(|t| (1.5..3.0).contains(&t)),
                "tick {tick:?}"
            );
            by_tick
                .entry(e.view.sampled_at.to_bits())
                .or_default()
                .push((*started, *at, w.value + e.live[0].sampled_ago));
        }
    }
    // Between the first and the last evaluation of one snapshot the wait grew by the time
    // between them: between the last one's start minus the first one's end and the last
    // one's end minus the first one's start (a few ms for the clocks).
    let spans: Vec<(f64, f64, f64)> = by_tick
        .values()
        .filter(|v| v.len() > 1)
        .map(|v| {
            let (first, last) = (v[0], v[v.len() - 1]);
            (last.0 - first.1, last.1 - first.0, last.2 - first.2)
        })
        .collect();
    assert!(spans.iter().any(|(least, ..)| *least > 1.0), "{by_tick:?}");
    for (least, most, dw) in &spans {
        assert!(
            (least - 0.01..=most + 0.01).contains(dw),
            "waited {dw:.3} s more in {least:.3}-{most:.3} s"
        );
    }
    drain(&mut c, &["aged".to_string()]);
    registry.shutdown().await;
}
