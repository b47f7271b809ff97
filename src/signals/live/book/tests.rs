//! Tests of the live core with synthetic ticks and a fake clock: counting modes, wait
//! clocks, heartbeats credited to queues, lower bounds and their warning.

use super::*;
use crate::signals::estimate::FifoClock;
use crate::signals::heartbeat::{HeartbeatBook, WorkerSummary};
use crate::signals::live::events::KeyEvents;
use crate::signals::live::queue::QueueChurn;
use crate::signals::live::{
    live_signals, QueueEstimates, CONSERVATION, HEARTBEAT, KEYSPACE, LIST_POSITION, OCCUPANCY,
    RESIDENCE, TAIL_TAG,
};
use crate::signals::Estimate;
use crate::signals::{LiveSignals, SignalMode};

pub(crate) fn watch(queues: &[&str]) -> WatchSet {
    WatchSet {
        layout: Layout {
            priority_steps: vec![0],
            ..Layout::default()
        },
        queues: queues.iter().map(|q| q.to_string()).collect(),
        visibility_timeout_ms: 3_600_000,
        worker_hostnames: None,
    }
}

pub(crate) fn tick(
    book: &mut LiveBook,
    now: f64,
    w: &WatchSet,
    backlog: u64,
    new_tags: u64,
    state: &mut EventState,
) -> QueueEstimates {
    let churn = QueueChurn {
        new: new_tags,
        ..QueueChurn::default()
    };
    tick_churn(book, now, w, backlog, churn, state).0
}

/// One tick of queue `celery` with `backlog` ready messages and this `unacked` churn; also
/// returns how many queues the tick warned about.
pub(crate) fn tick_churn(
    book: &mut LiveBook,
    now: f64,
    w: &WatchSet,
    backlog: u64,
    churn: QueueChurn,
    state: &mut EventState,
) -> (QueueEstimates, usize) {
    let mut extras = TickExtras::default();
    extras.llen.insert(b"celery".to_vec(), backlog);
    extras
        .churn
        .insert((w.layout.clone(), "celery".into()), churn);
    let data = book.update(
        now,
        std::slice::from_ref(w),
        &mut extras,
        state,
        |_, _| backlog,
        |_, _| 0,
    );
    let e = data.queues[&(w.layout.clone(), "celery".to_string())].clone();
    (e, data.unobservable.len())
}

/// Two workers with 4 tasks running, 3 starts/s (1/s over their window, 4 busy slots) and
/// 16 slots, whose starts are not quiet: what the heartbeat-credit tests vary.
fn two_workers() -> WorkerSummary {
    WorkerSummary {
        workers: 2,
        running: 4,
        start_rate: Some(3.0),
        busy: 4.0,
        busy_start_rate: 1.0,
        window_start_rate: 1.0,
        capacity: 16.0,
        starts_quiet_for: 0.0,
        starts_longest_gap: 0.0,
        rates_as_of: 0.0,
    }
}

/// Heartbeats credited against the list's steady dequeue rate as read now.
fn credit_now(est: &mut QueueEstimates, workers: &WorkerSummary) {
    let listed = est.dequeue_rate_steady;
    crate::signals::live::credit_heartbeats(est, workers, listed);
}

#[test]
fn restored_copies_fetched_again_are_not_new_arrivals() {
    // 5 tasks/s arrive and are taken, the backlog stays at 10; in every other tick a
    // scaled-down pod's 4 held messages are restored (backlog +4), and the next tick a worker
    // fetches them again under the same tags (4 new entries marked `redelivered`).
    let w = watch(&["celery"]);
    let run = |marked: bool| {
        let (mut book, mut st) = (LiveBook::new(10.0), EventState::default());
        let mut last = QueueEstimates::default();
        for t in 0..21u32 {
            let restoring = t % 2 == 1;
            let backlog = if restoring { 14 } else { 10 };
            let refetched = if t > 0 && !restoring { 4 } else { 0 };
            let churn = QueueChurn {
                new: if t == 0 { 0 } else { 5 + refetched },
                redelivered: if marked { refetched } else { 0 },
                gone: if restoring { 4 } else { 0 },
                ..QueueChurn::default()
            };
            last = tick_churn(&mut book, f64::from(t), &w, backlog, churn, &mut st).0;
        }
        last.arrival_rate.expect("a rate").value
    };
    // Unmarked (before kombu's mark was read): every restore counted as 4 new tasks.
    assert!((run(false) - 7.0).abs() < 0.5, "{}", run(false));
    assert!((run(true) - 5.0).abs() < 0.5, "{}", run(true));
}

#[test]
fn estimated_mode_conserves_backlog_and_new_tags() {
    let mut book = LiveBook::new(10.0);
    let w = watch(&["celery"]);
    let mut st = EventState::default();
    // 10 tasks/s arrive, 6/s are taken: backlog grows by 4/s.
    let mut backlog = 0;
    let mut last = QueueEstimates::default();
    for t in 0..12 {
        last = tick(
            &mut book,
            f64::from(t),
            &w,
            backlog,
            if t == 0 { 0 } else { 6 },
            &mut st,
        );
        backlog += 4;
    }
    let a = last.arrival_rate.unwrap();
    assert_eq!(a.source, CONSERVATION);
    assert!((a.value - 10.0).abs() < 1e-9, "{a:?}");
    assert!((last.dequeue_rate.unwrap().value - 6.0).abs() < 1e-9);
    // A dip (restored later) is carried as a debt, not counted twice.
    let mut book = LiveBook::new(100.0);
    tick(&mut book, 0.0, &w, 10, 0, &mut st);
    tick(&mut book, 1.0, &w, 5, 0, &mut st);
    let e = tick(&mut book, 2.0, &w, 10, 0, &mut st);
    assert_eq!(e.arrival_rate.unwrap().value, 0.0);
    let e = tick(&mut book, 3.0, &w, 12, 0, &mut st);
    // 2 arrivals in 3 s, nothing double-counted (2/s in the last tick is under the burst
    // factor, so the smoothed rate stands).
    assert!(
        (e.arrival_rate.unwrap().value - 2.0 / 3.0).abs() < 1e-9,
        "{e:?}"
    );
}

#[test]
fn exact_mode_counts_events_once_continuous() {
    let mut book = LiveBook::new(10.0);
    book.keyspace = Keyspace::Enabled;
    let w = watch(&["celery"]);
    let mut st = EventState {
        generation: 1,
        up: true,
        ..EventState::default()
    };
    st.keys.insert(
        b"celery".to_vec(),
        KeyEvents {
            generation: 1,
            ..KeyEvents::default()
        },
    );
    // First tick: no baseline yet, no rate.
    let e = tick(&mut book, 0.0, &w, 0, 0, &mut st);
    assert_eq!(e.arrival_rate, None);
    let k = st.keys.get_mut(b"celery".as_slice()).unwrap();
    for i in 0..5 {
        k.lpush += 1;
        k.clock.arrive(0.5 + f64::from(i) * 0.01);
    }
    k.rpop += 1;
    k.clock.dequeue();
    k.rpush += 1;
    k.clock.restore(0.9);
    let e = tick(&mut book, 1.0, &w, 5, 99, &mut st);
    assert_eq!(e.arrival_rate.unwrap(), Estimate::new(5.0, KEYSPACE));
    assert_eq!(e.dequeue_rate.unwrap(), Estimate::new(1.0, KEYSPACE));
    let wait = e.wait.unwrap();
    assert_eq!(wait.source, KEYSPACE);
    assert!((wait.value - 0.49).abs() < 1e-9, "{wait:?}");
    assert!(book.plan(std::slice::from_ref(&w)).tail_keys.is_empty());
    // The subscription dropped: estimated again, and LINDEX is planned.
    st.up = false;
    st.keys.clear();
    let e = tick(&mut book, 2.0, &w, 5, 0, &mut st);
    assert_eq!(e.arrival_rate.unwrap().source, CONSERVATION);
    assert_eq!(
        book.plan(std::slice::from_ref(&w)).tail_keys,
        vec![b"celery".to_vec()]
    );
}

#[test]
fn pushes_the_clock_missed_are_dated_when_known_to_be_recent() {
    // Keyspace events on, but the key's subscription came up after a task was pushed: the
    // FIFO clock reconciles the task in. The list was empty at the tick before, so the task
    // came since: dated from the mid-point of the two ticks (it read as a lower bound, and
    // a queue nothing consumes kept that mode for good). A list first seen holding a task
    // stays a lower bound.
    let subscribed = |st: &mut EventState| {
        st.keys.insert(
            b"celery".to_vec(),
            KeyEvents {
                generation: 1,
                ..KeyEvents::default()
            },
        );
    };
    let fresh = || {
        let mut book = LiveBook::new(10.0);
        book.keyspace = Keyspace::Enabled;
        let st = EventState {
            generation: 1,
            up: true,
            ..EventState::default()
        };
        (book, st)
    };
    let w = watch(&["celery"]);
    let mut waits = Vec::new();
    for seen_empty in [true, false] {
        let (mut book, mut st) = fresh();
        if seen_empty {
            tick(&mut book, -1.0, &w, 0, 0, &mut st);
            tick(&mut book, 0.0, &w, 0, 0, &mut st);
        }
        subscribed(&mut st);
        tick(&mut book, 1.0, &w, 1, 0, &mut st);
        let e = tick(&mut book, 2.0, &w, 1, 0, &mut st);
        assert_eq!(e.wait.map(|w| w.source), Some(KEYSPACE), "{e:?}");
        waits.push(e.wait.expect("a wait"));
    }
    assert!(!waits[0].is_lower_bound(), "{:?}", waits[0]);
    assert!((waits[0].value - 1.5).abs() < 1e-9, "{:?}", waits[0]);
    assert!(waits[1].is_lower_bound(), "{:?}", waits[1]);

    // Within one subscription, pushes whose events lag the `LLEN` read two ticks running
    // are reconciled in behind the oldest, which was heard: its age stays the wait's.
    let (mut book, mut st) = fresh();
    subscribed(&mut st);
    tick(&mut book, 0.0, &w, 0, 0, &mut st);
    let k = st.keys.get_mut(b"celery".as_slice()).expect("subscribed");
    k.lpush += 1;
    k.clock.arrive(0.5);
    tick(&mut book, 1.0, &w, 1, 0, &mut st);
    tick(&mut book, 2.0, &w, 3, 0, &mut st);
    let wait = tick(&mut book, 3.0, &w, 3, 0, &mut st)
        .wait
        .expect("a wait");
    assert_eq!(wait.source, KEYSPACE);
    assert!(!wait.is_lower_bound(), "{wait:?}");
    assert!((wait.value - 2.5).abs() < 1e-9, "{wait:?}");
}

/// One tick of queue `celery` with `backlog` messages and, when read, its (head, tail)
/// delivery tags: the wait the tick reports.
fn wait_at(
    book: &mut LiveBook,
    st: &mut EventState,
    now: f64,
    backlog: u64,
    ends: Option<(&str, &str)>,
) -> Option<Estimate> {
    let w = watch(&["celery"]);
    let mut extras = TickExtras::default();
    extras.llen.insert(b"celery".to_vec(), backlog);
    if let Some((head, tail)) = ends {
        extras.ends.insert(
            b"celery".to_vec(),
            (Some(head.to_string()), Some(tail.to_string())),
        );
    }
    let d = book.update(
        now,
        std::slice::from_ref(&w),
        &mut extras,
        st,
        |_, _| backlog,
        |_, _| 0,
    );
    d.queues[&(w.layout.clone(), "celery".to_string())].wait
}

#[test]
fn tail_tags_give_the_wait_in_estimated_mode() {
    let mut book = LiveBook::new(10.0);
    let mut st = EventState::default();
    let mut at = |now: f64, backlog: u64, head: &str, tail: &str, book: &mut LiveBook| {
        wait_at(book, &mut st, now, backlog, Some((head, tail))).unwrap()
    };
    assert_eq!(at(10.0, 1, "a", "a", &mut book).value, 0.0);
    assert_eq!(at(11.0, 2, "b", "a", &mut book).value, 1.0);
    let e = at(12.0, 2, "c", "b", &mut book);
    assert_eq!(e, Estimate::new(1.0, TAIL_TAG));
}

#[test]
fn heartbeats_add_running_and_service_time() {
    use crate::signals::heartbeat::Heartbeat;
    let mut hb = HeartbeatBook::new(10.0);
    for (t, processed) in [(0.0, 0), (2.0, 8)] {
        hb.record(
            t,
            &Heartbeat {
                hostname: "celery@w-1".into(),
                active: 4,
                processed,
                freq: 2.0,
            },
        );
    }
    let sampled = vec![
        QueueEstimates {
            dequeue_rate: Some(Estimate::new(3.0, CONSERVATION)),
            arrival_rate: Some(Estimate::new(3.0, CONSERVATION)),
            ..QueueEstimates::default()
        }
        .signals("a"),
        QueueEstimates {
            dequeue_rate: Some(Estimate::new(1.0, CONSERVATION)),
            ..QueueEstimates::default()
        }
        .signals("b"),
    ];
    let out = live_signals(2.0, &sampled, Some(&hb), Some("celery@w-*"));
    assert_eq!(out[0].running, Some(Estimate::new(3.0, HEARTBEAT)));
    assert_eq!(out[1].running, Some(Estimate::new(1.0, HEARTBEAT)));
    assert_eq!(out[0].service_time, Some(Estimate::new(1.0, HEARTBEAT)));
    // No pattern or no match: untouched.
    assert_eq!(live_signals(2.0, &sampled, Some(&hb), None), sampled);
    assert_eq!(live_signals(2.0, &sampled, Some(&hb), Some("x@*")), sampled);
    // A service time the sampler already credited from heartbeats is kept.
    let mut credited = sampled.clone();
    credited[0].service_time = Some(Estimate::new(0.3, HEARTBEAT));
    let out = live_signals(2.0, &credited, Some(&hb), Some("celery@w-*"));
    assert_eq!(out[0].service_time, Some(Estimate::new(0.3, HEARTBEAT)));
    assert_eq!(out[1].service_time, Some(Estimate::new(1.0, HEARTBEAT)));
}

/// Heartbeats of `celery@w-1`: 2 busy slots, 50 starts per second, every 2 s from 0 to `end`.
pub(crate) fn busy_worker(end: u32) -> EventState {
    let mut st = EventState::default();
    let book = st
        .heartbeats
        .entry(Vec::new())
        .or_insert_with(|| HeartbeatBook::new(10.0));
    for beat in 0..=end / 2 {
        book.record(
            f64::from(2 * beat),
            &crate::signals::heartbeat::Heartbeat {
                hostname: "celery@w-1".into(),
                active: 2,
                processed: u64::from(100 * beat),
                freq: 2.0,
            },
        );
    }
    st
}

#[test]
fn a_single_queue_watch_set_with_worker_hostnames_credits_their_starts() {
    // A worker that keeps up: nothing is ever waiting or seen in `unacked` at a tick, so
    // conservation alone reads 0 arrivals; the heartbeats say 50 tasks start per second.
    let mut st = busy_worker(20);
    let mut book = LiveBook::new(10.0);
    let mut w = watch(&["celery"]);
    w.worker_hostnames = Some("celery@w-*".into());
    let mut e = QueueEstimates::default();
    for t in 0..=20 {
        e = tick(&mut book, f64::from(t), &w, 0, 0, &mut st);
    }
    assert_eq!(e.arrival_rate, Some(Estimate::new(50.0, HEARTBEAT)));
    assert_eq!(e.dequeue_rate, Some(Estimate::new(50.0, HEARTBEAT)));
    // Little's law over the workers: 2 busy slots / 50 starts per second.
    let s = e.service_time.unwrap();
    assert_eq!(s.source, HEARTBEAT);
    assert!((s.value - 0.04).abs() < 1e-9, "{s:?}");
    // The sizing inputs: the starts that S was measured against, and S over the long window.
    assert_eq!(e.service_rate, Some(50.0));
    let long = e.service_time_sizing.expect("long-window service time");
    assert_eq!(long.source, HEARTBEAT);
    assert!((long.value - 0.04).abs() < 1e-9, "{long:?}");
    // Without the pattern, or over two queues (whose share of the workers is unknown),
    // the sampler credits nothing.
    for w in [watch(&["celery"]), {
        let mut two = watch(&["celery", "other"]);
        two.worker_hostnames = Some("celery@w-*".into());
        two
    }] {
        let mut st = busy_worker(20);
        let mut book = LiveBook::new(10.0);
        for t in 0..=20 {
            e = tick(&mut book, f64::from(t), &w, 0, 0, &mut st);
        }
        assert_eq!(e.arrival_rate, Some(Estimate::new(0.0, CONSERVATION)));
        assert_eq!(e.service_time, None);
    }
}

#[test]
fn a_falling_flow_the_list_counted_is_not_credited_between_beats() {
    // 400 listed tasks are taken at 20/s until t = 20, every take seen as a new `unacked`
    // tag; the worker beats every 2 s with the same starts. After the drain the list's rate
    // falls every tick, the worker's only at its beats: read against the list's rate now, a
    // beat a tick old credited 2/s the list never missed (arrivals, and the workers' quiet
    // for the list's), keeping a flow that had stopped alive.
    let mut st = EventState::default();
    let mut book = LiveBook::new(10.0);
    let mut w = watch(&["celery"]);
    w.worker_hostnames = Some("celery@w-*".into());
    for t in 0..=30u32 {
        if t % 2 == 0 {
            st.heartbeats
                .entry(Vec::new())
                .or_insert_with(|| HeartbeatBook::new(10.0))
                .record(
                    f64::from(t),
                    &crate::signals::heartbeat::Heartbeat {
                        hostname: "celery@w-1".into(),
                        active: u64::from(t < 20),
                        processed: u64::from(20 * t.min(20)),
                        freq: 2.0,
                    },
                );
        }
        let backlog = u64::from(400 - 20 * t.min(20));
        let taken = if (1..=20).contains(&t) { 20 } else { 0 };
        let e = tick(&mut book, f64::from(t), &w, backlog, taken, &mut st);
        if t == 0 {
            continue;
        }
        let steady = e.arrival_rate_steady.expect("a rate");
        assert_eq!((t, steady.value), (t, 0.0), "{steady:?}");
        if t > 20 {
            assert_eq!(e.arrivals_longest_gap, Some(0.0), "t = {t}");
        }
    }
}

#[test]
fn exact_counts_are_not_replaced_by_heartbeats() {
    let mut st = busy_worker(4);
    st.generation = 1;
    st.up = true;
    st.keys.insert(
        b"celery".to_vec(),
        KeyEvents {
            generation: 1,
            ..KeyEvents::default()
        },
    );
    let mut book = LiveBook::new(10.0);
    book.keyspace = Keyspace::Enabled;
    let mut w = watch(&["celery"]);
    w.worker_hostnames = Some("celery@w-1".into());
    tick(&mut book, 3.0, &w, 0, 0, &mut st);
    let k = st.keys.get_mut(b"celery".as_slice()).unwrap();
    k.lpush += 7;
    k.rpop += 7;
    let e = tick(&mut book, 4.0, &w, 0, 0, &mut st);
    assert_eq!(e.arrival_rate, Some(Estimate::new(7.0, KEYSPACE)));
    assert_eq!(e.dequeue_rate, Some(Estimate::new(7.0, KEYSPACE)));
    assert_eq!(e.service_time.map(|s| s.source), Some(HEARTBEAT));
}

/// One estimated-mode tick of the `celery` key: its length, the head read (`LINDEX 0`), where
/// the previous head is now (`LPOS`), and two tasks in flight.
pub(crate) fn anchored_tick(
    book: &mut LiveBook,
    now: f64,
    w: &WatchSet,
    llen: u64,
    head: Option<&str>,
    position: Option<Option<u64>>,
) -> QueueEstimates {
    let mut extras = TickExtras::default();
    let key = b"celery".to_vec();
    extras.llen.insert(key.clone(), llen);
    if let Some(h) = head {
        extras.heads.insert(key.clone(), h.as_bytes().to_vec());
        extras.ends.insert(key.clone(), (None, None));
    }
    if let Some(p) = position {
        extras.positions.insert(key, p);
    }
    let data = book.update(
        now,
        std::slice::from_ref(w),
        &mut extras,
        &mut EventState::default(),
        |_, _| llen,
        |_, _| 2,
    );
    data.queues[&(w.layout.clone(), "celery".to_string())].clone()
}

#[test]
fn the_previous_head_counts_arrivals_and_dequeues_without_notifications() {
    let mut book = LiveBook::new(10.0);
    let w = watch(&["celery"]);
    // Every second 3 messages are pushed and 4 taken (4 per second with 2 in flight: 0.5 s
    // tasks), from a backlog of 40; the head read at each tick is found 3 deep at the next.
    let mut llen = 40;
    anchored_tick(&mut book, 0.0, &w, llen, None, None);
    // Filled since the previous tick (head not read yet): the next tick reads the head.
    assert_eq!(
        book.plan(std::slice::from_ref(&w)).tail_keys,
        vec![b"celery".to_vec()]
    );
    let mut e = anchored_tick(&mut book, 1.0, &w, llen, Some("m1"), None);
    assert_eq!(e.arrival_rate.map(|a| a.source), Some(CONSERVATION));
    for t in 2..=14 {
        let plan = book.plan(std::slice::from_ref(&w));
        let want = format!("m{}", t - 1);
        assert_eq!(
            plan.anchors,
            HashMap::from([(b"celery".to_vec(), want.into_bytes())])
        );
        llen -= 1;
        e = anchored_tick(
            &mut book,
            f64::from(t),
            &w,
            llen,
            Some(&format!("m{t}")),
            Some(Some(3)),
        );
    }
    assert_eq!(e.arrival_rate, Some(Estimate::new(3.0, LIST_POSITION)));
    assert_eq!(e.dequeue_rate, Some(Estimate::new(4.0, LIST_POSITION)));
    // Little's law over counted dequeues: 2 in flight / 4 per second.
    assert_eq!(e.service_time, Some(Estimate::new(0.5, OCCUPANCY)));
    assert!(!e.exact, "counted, but not keyspace-exact");
    // The anchor was consumed (the list drained past it): back to conservation, and
    // Little's law stops until every dequeue of its window is counted again.
    let e = anchored_tick(&mut book, 15.0, &w, 2, Some("m15"), Some(None));
    assert_eq!(e.arrival_rate.map(|a| a.source), Some(CONSERVATION));
    assert_ne!(e.service_time.map(|s| s.source), Some(OCCUPANCY));
}

#[test]
fn tasks_through_a_priority_key_empty_at_both_ticks_are_not_lost() {
    // Two priority keys: `celery` keeps a backlog (anchored), the other stays empty while a
    // worker keeps up with it: 5 new `unacked` tags per tick, 1 dequeue seen by LPOS.
    let mut w = watch(&["celery"]);
    w.layout.priority_steps = vec![0, 3];
    let keys = w.layout.queue_keys("celery");
    assert_eq!(keys.len(), 2);
    let mut book = LiveBook::new(10.0);
    let mut e = QueueEstimates::default();
    let mut llen = 100;
    for t in 0..=12u32 {
        let mut extras = TickExtras::default();
        extras.llen.insert(keys[0].clone(), llen);
        extras.llen.insert(keys[1].clone(), 0);
        extras
            .heads
            .insert(keys[0].clone(), format!("m{t}").into_bytes());
        if t >= 1 {
            extras.positions.insert(keys[0].clone(), Some(0));
        }
        extras.churn.insert(
            (w.layout.clone(), "celery".into()),
            QueueChurn {
                new: if t >= 1 { 5 } else { 0 },
                ..QueueChurn::default()
            },
        );
        let data = book.update(
            f64::from(t),
            std::slice::from_ref(&w),
            &mut extras,
            &mut EventState::default(),
            |_, _| llen,
            |_, _| 2,
        );
        e = data.queues[&(w.layout.clone(), "celery".to_string())].clone();
        llen -= 1;
    }
    // 1 from the anchored key + 4 through the empty one, each taken as it came.
    assert_eq!(e.dequeue_rate, Some(Estimate::new(5.0, LIST_POSITION)));
    assert_eq!(e.arrival_rate, Some(Estimate::new(4.0, LIST_POSITION)));
    // Dequeues inferred from tags are not a count: no Little's law over them.
    assert_ne!(e.service_time.map(|s| s.source), Some(OCCUPANCY));
}

#[test]
fn heartbeats_do_not_replace_counted_rates() {
    let mut book = LiveBook::new(10.0);
    let mut w = watch(&["celery"]);
    w.worker_hostnames = Some("celery@w-*".into());
    let mut st = busy_worker(20);
    let mut e = QueueEstimates::default();
    for t in 0..=20u32 {
        let mut extras = TickExtras::default();
        extras.llen.insert(b"celery".to_vec(), 100);
        extras
            .heads
            .insert(b"celery".to_vec(), format!("m{t}").into_bytes());
        if t >= 1 {
            extras.positions.insert(b"celery".to_vec(), Some(3));
        }
        let data = book.update(
            f64::from(t),
            std::slice::from_ref(&w),
            &mut extras,
            &mut st,
            |_, _| 100,
            |_, _| 2,
        );
        e = data.queues[&(w.layout.clone(), "celery".to_string())].clone();
    }
    // LPOS counted 3 in and 3 out per second; the heartbeats' 50 starts/s do not override it.
    assert_eq!(e.arrival_rate, Some(Estimate::new(3.0, LIST_POSITION)));
    assert_eq!(e.dequeue_rate, Some(Estimate::new(3.0, LIST_POSITION)));
    assert_eq!(e.service_time.map(|s| s.source), Some(HEARTBEAT));
}

/// Every third tick one new `unacked` entry delivered `age_new` s before it, gone at the
/// next tick having been delivered `age_left` s before that one.
fn caught(t: u32, age_new: f64, age_left: f64) -> QueueChurn {
    QueueChurn {
        new: u64::from(t % 3 == 0),
        new_scores: [f64::from(t) - age_new]
            .into_iter()
            .filter(|_| t % 3 == 0)
            .collect(),
        left: [f64::from(t) - age_left]
            .into_iter()
            .filter(|_| t % 3 == 1)
            .collect(),
        ..QueueChurn::default()
    }
}

#[test]
fn a_queue_kept_empty_with_some_new_tags_is_a_lower_bound_warned_once() {
    // Every few ticks one short-lived `unacked` entry (delivered 2 ms before the tick) is
    // caught, and gone at the next tick; the list is always empty.
    let w = watch(&["celery"]);
    let mut book = LiveBook::new(30.0);
    let mut st = EventState::default();
    let mut warnings = 0;
    let mut e = QueueEstimates::default();
    for t in 0..=40 {
        let warned;
        (e, warned) = tick_churn(
            &mut book,
            f64::from(t),
            &w,
            0,
            caught(t, 0.002, 1.002),
            &mut st,
        );
        warnings += warned;
    }
    let a = e.arrival_rate.expect("rate");
    assert!(a.is_lower_bound(), "{a:?}");
    assert!(e.dequeue_rate.is_some_and(|d| d.is_lower_bound()));
    assert_eq!(warnings, 1, "warned once per period");
    // Entries that outlive a tick (long tasks, all seen) are not a sign of missed traffic.
    let mut book = LiveBook::new(30.0);
    for t in 0..=40 {
        e = tick_churn(&mut book, f64::from(t), &w, 0, caught(t, 0.5, 5.0), &mut st).0;
    }
    assert_eq!(e.arrival_rate.map(|a| a.mode), Some(SignalMode::Estimated));
    // Heartbeats of the queue's workers see every start: not a lower bound any more.
    let mut st = busy_worker(40);
    let mut book = LiveBook::new(30.0);
    let mut named = watch(&["celery"]);
    named.worker_hostnames = Some("celery@w-*".into());
    for t in 0..=40 {
        e = tick(
            &mut book,
            f64::from(t),
            &named,
            0,
            u64::from(t % 3 == 0),
            &mut st,
        );
    }
    assert_eq!(e.arrival_rate.map(|a| a.mode), Some(SignalMode::Estimated));
    assert_eq!(e.arrival_rate.map(|a| a.source), Some(HEARTBEAT));
}

#[test]
fn forged_heartbeats_cannot_credit_more_than_the_workers_capacity() {
    use crate::signals::heartbeat::Heartbeat;
    use crate::signals::heartbeat::HeartbeatLimits;
    let limits = HeartbeatLimits {
        max_active: 4,
        max_workers: 10,
    };
    let mut st = EventState::default();
    let hb = st
        .heartbeats
        .entry(Vec::new())
        .or_insert_with(|| HeartbeatBook::with_limits(10.0, limits));
    // Beats closer together than their interval, each claiming as many starts as a full
    // worker makes in a whole interval.
    for beat in 0..=6u64 {
        hb.record(
            0.5 * beat as f64,
            &Heartbeat {
                hostname: "celery@w-1".into(),
                active: u64::MAX,
                processed: beat.saturating_mul(u64::MAX / 8),
                freq: 2.0,
            },
        );
    }
    let mut book = LiveBook::new(10.0);
    let mut w = watch(&["celery"]);
    w.worker_hostnames = Some("celery@w-*".into());
    let mut e = QueueEstimates::default();
    for t in 0..=3 {
        e = tick(&mut book, f64::from(t), &w, 0, 0, &mut st);
    }
    let rate = e.arrival_rate.expect("credited").value;
    let s = e.service_time.expect("service time").value;
    // One worker of at most 4 slots: the flow its starts imply is at most 4 slots.
    assert!(rate * s.max(0.001) <= 4.0 + 1e-9, "rate {rate} × S {s}");
}

#[test]
fn a_worker_claiming_busy_slots_without_starts_cannot_outweigh_its_capacity() {
    use crate::signals::heartbeat::Heartbeat;
    use crate::signals::heartbeat::HeartbeatLimits;
    // One forged worker: 4 slots (the maximum) always busy, one start in 10 s: Little's law
    // says 40 s per task. Real traffic, counted from keyspace, is 100 tasks/s.
    let limits = HeartbeatLimits {
        max_active: 4,
        max_workers: 10,
    };
    let mut book = HeartbeatBook::with_limits(30.0, limits);
    for beat in 0..=5u64 {
        book.record(
            2.0 * beat as f64,
            &Heartbeat {
                hostname: "celery@forged".into(),
                active: 4,
                processed: u64::from(beat == 5),
                freq: 2.0,
            },
        );
    }
    let sampled = [LiveSignals {
        name: "celery".into(),
        arrival_rate: Some(Estimate::new(100.0, KEYSPACE)),
        ..LiveSignals::default()
    }];
    let live = live_signals(10.0, &sampled, Some(&book), Some("celery@"));
    let s = live[0].service_time.expect("heartbeat service time");
    assert_eq!(s.source, HEARTBEAT);
    // λ·S within the 4 slots the worker may have (it was 100 × 40 = 4,000).
    assert!(100.0 * s.value <= 4.0 + 1e-9, "{s:?}");
    // The long-window S̄ a credited queue carries is held to the same bound: a worker that
    // claimed busy slots for minutes cannot size the flow on them once it forges starts.
    let credited = [LiveSignals {
        service_time: Some(Estimate::new(0.01, HEARTBEAT)),
        service_time_sizing: Some(Estimate::new(40.0, HEARTBEAT)),
        service_rate: Some(100.0),
        ..sampled[0].clone()
    }];
    let live = live_signals(10.0, &credited, Some(&book), Some("celery@"));
    let long = live[0]
        .service_time_sizing
        .expect("long-window service time");
    assert!(100.0 * long.value <= 4.0 + 1e-9, "{long:?}");
    // Without a pattern nothing changes.
    assert_eq!(
        live_signals(10.0, &sampled, Some(&book), None)[0],
        sampled[0]
    );
}

#[test]
fn starts_without_busy_slots_carry_a_service_time_that_bounds_their_flow() {
    use crate::signals::heartbeat::Heartbeat;
    use crate::signals::heartbeat::HeartbeatLimits;
    // A forged worker: never a busy slot (`active: 0`, so no Little's law), yet `processed`
    // grows as fast as the bounds allow. Without a service time of its own, the policy would
    // pair the credited rate with `taskDuration`.
    let limits = HeartbeatLimits {
        max_active: 4,
        max_workers: 10,
    };
    let mut st = EventState::default();
    let hb = st
        .heartbeats
        .entry(Vec::new())
        .or_insert_with(|| HeartbeatBook::with_limits(10.0, limits));
    for beat in 0..=300u64 {
        hb.record(
            0.01 * beat as f64,
            &Heartbeat {
                hostname: "celery@w-1".into(),
                active: 0,
                processed: beat.saturating_mul(u64::MAX / 512),
                freq: 2.0,
            },
        );
    }
    let mut book = LiveBook::new(10.0);
    let mut w = watch(&["celery"]);
    w.worker_hostnames = Some("celery@w-*".into());
    let mut e = QueueEstimates::default();
    for t in 0..=3 {
        e = tick(&mut book, f64::from(t), &w, 0, 0, &mut st);
    }
    let rate = e.arrival_rate.expect("credited").value;
    let s = e.service_time.expect("a service time paired with the rate");
    assert_eq!(s.source, HEARTBEAT);
    assert!(
        rate * s.value.max(0.001) <= 4.0 + 1e-9,
        "rate {rate} × S {s:?}"
    );
}

#[test]
fn two_patterns_on_one_queue_credit_no_heartbeats_to_it() {
    // The owner's trigger names its workers; another trigger on the same queue names `*`.
    let mut owner = watch(&["celery"]);
    owner.worker_hostnames = Some("celery@w-*".into());
    let mut other = owner.clone();
    other.worker_hostnames = Some("*".into());
    let id = (owner.layout.clone(), "celery".to_string());
    let same = [owner.clone(), owner.clone()];
    assert_eq!(single_queue_workers(&same).get(&id), Some(&"celery@w-*"));
    for watches in [
        [owner.clone(), other.clone()],
        [other.clone(), owner.clone()],
    ] {
        assert_eq!(single_queue_workers(&watches).get(&id), None);
        let mut st = busy_worker(20);
        let mut book = LiveBook::new(10.0);
        let mut e = QueueEstimates::default();
        for t in 0..=20 {
            let mut extras = TickExtras::default();
            extras.llen.insert(b"celery".to_vec(), 0);
            let data = book.update(
                f64::from(t),
                &watches,
                &mut extras,
                &mut st,
                |_, _| 0,
                |_, _| 0,
            );
            e = data.queues[&id].clone();
        }
        assert_eq!(e.arrival_rate.map(|a| a.source), Some(CONSERVATION));
        assert_eq!(e.service_time, None);
    }
}

#[test]
fn the_steady_rate_credits_the_workers_smoothed_starts() {
    // The workers' summed burst fast paths read 3 starts/s; over their window they started
    // 1 per second. The exported λ keeps the fast path, the policy's steady λ does not.
    use crate::signals::live::QueueEstimates;
    let mut est = QueueEstimates::default();
    let workers = two_workers();
    credit_now(&mut est, &workers);
    let value = |e: Option<Estimate>| e.map(|e| e.value);
    assert_eq!(value(est.arrival_rate), Some(3.0));
    assert_eq!(value(est.arrival_rate_steady), Some(1.0));
    assert_eq!(value(est.service_time), Some(4.0));
    // Conservation's own dequeues are subtracted window for window: the steady starts
    // beyond the queue's smoothed dequeues, not beyond its one-tick burst.
    let mut est = QueueEstimates {
        arrival_rate: Some(Estimate::new(2.0, CONSERVATION)),
        arrival_rate_steady: Some(Estimate::new(0.5, CONSERVATION)),
        dequeue_rate: Some(Estimate::new(2.0, CONSERVATION)),
        dequeue_rate_steady: Some(0.5),
        ..QueueEstimates::default()
    };
    credit_now(&mut est, &workers);
    assert_eq!(value(est.arrival_rate), Some(3.0));
    assert_eq!(value(est.arrival_rate_steady), Some(1.0));
}

#[test]
fn the_service_time_tail_comes_from_unacked_departures() {
    // One entry leaves each tick, last seen 1, 2, …, 40 s after its delivery.
    let w = watch(&["celery"]);
    let (mut book, mut st) = (LiveBook::new(30.0), EventState::default());
    let mut p95 = Vec::new();
    for t in 0..=40u32 {
        let age = f64::from(t);
        let churn = QueueChurn {
            left: [f64::from(t) - 1.0 - age]
                .into_iter()
                .filter(|_| t > 0)
                .collect(),
            gone: u64::from(t > 0),
            ..QueueChurn::default()
        };
        let est = tick_churn(&mut book, f64::from(t), &w, 0, churn, &mut st).0;
        p95.push(est.signals("celery").service_time_p95.map(|e| e.value));
    }
    // No quantile from fewer than 20 departures; then the nearest-rank p95 plus half a tick.
    assert!(p95[..20].iter().all(Option::is_none), "{p95:?}");
    assert_eq!(p95[40], Some(38.5));
}

#[test]
fn a_pooled_heartbeat_service_time_drops_the_queue_sizing_inputs() {
    use crate::signals::heartbeat::Heartbeat;
    let mut hb = HeartbeatBook::new(10.0);
    for (t, processed) in [(0.0, 0), (2.0, 8)] {
        let beat = Heartbeat {
            hostname: "celery@w-1".into(),
            active: 4,
            processed,
            freq: 2.0,
        };
        hb.record(t, &beat);
    }
    // The queue's own (residence) S and its long-window S̄: replaced by the workers' pooled
    // S, the long-window one would size the flow on an estimate no longer shown.
    let sampled = vec![QueueEstimates {
        arrival_rate: Some(Estimate::new(3.0, CONSERVATION)),
        service_time: Some(Estimate::new(9.0, RESIDENCE)),
        service_time_sizing: Some(Estimate::new(9.0, RESIDENCE)),
        service_rate: Some(3.0),
        ..QueueEstimates::default()
    }
    .signals("a")];
    let out = live_signals(2.0, &sampled, Some(&hb), Some("celery@w-*"));
    assert_eq!(out[0].service_time, Some(Estimate::new(1.0, HEARTBEAT)));
    assert_eq!(out[0].service_time_sizing, None);
    assert_eq!(out[0].service_rate, None);
    // Without workers the queue's own are kept.
    assert_eq!(live_signals(2.0, &sampled, Some(&hb), None), sampled);
}

#[test]
fn the_live_workers_the_pattern_names_are_counted() {
    use crate::signals::heartbeat::Heartbeat;
    // Three workers beat; two match the trigger's pattern, and one of those falls silent.
    let mut book = HeartbeatBook::new(30.0);
    for (t, host) in [(0.0, "celery@a"), (0.0, "celery@b"), (0.0, "other@c")] {
        let hb = Heartbeat {
            hostname: host.into(),
            active: 1,
            processed: 0,
            freq: 2.0,
        };
        book.record(t, &hb);
    }
    let sampled = [LiveSignals {
        name: "celery".into(),
        ..LiveSignals::default()
    }];
    let live = live_signals(1.0, &sampled, Some(&book), Some("celery@*"));
    assert_eq!(live[0].workers, Some(Estimate::new(2.0, HEARTBEAT)));
    let hb = Heartbeat {
        hostname: "celery@a".into(),
        active: 1,
        processed: 1,
        freq: 2.0,
    };
    book.record(10.0, &hb);
    // celery@b is silent for over three intervals: gone.
    let live = live_signals(10.0, &sampled, Some(&book), Some("celery@*"));
    assert_eq!(live[0].workers, Some(Estimate::new(1.0, HEARTBEAT)));
    // No pattern, no worker count.
    assert_eq!(
        live_signals(10.0, &sampled, Some(&book), None)[0].workers,
        None
    );
}

#[test]
fn entries_restored_at_the_visibility_timeout_are_not_service_times() {
    // Forty entries leave 5 s after delivery, then twenty a pod left in `unacked` leave when
    // the 100 s visibility timeout restores them: the tail stays the tasks'.
    let mut w = watch(&["celery"]);
    w.visibility_timeout_ms = 100_000;
    let (mut book, mut st) = (LiveBook::new(30.0), EventState::default());
    let mut last = None;
    for t in 1..=60u32 {
        let delivered = if t <= 40 { 5.0 } else { 101.0 };
        let churn = QueueChurn {
            left: vec![f64::from(t) - delivered],
            gone: 1,
            ..QueueChurn::default()
        };
        last = Some(tick_churn(&mut book, f64::from(t), &w, 0, churn, &mut st).0);
    }
    let s = last.unwrap().signals("celery");
    assert_eq!(s.service_time_p95.map(|e| e.value), Some(4.5));
}

#[test]
fn entries_first_seen_past_the_visibility_timeout_leave_the_mean_alone() {
    // The same departures (5 s after delivery) with and without entries first seen 150 s
    // after theirs (a 100 s timeout restores those; a forged score reads the same): the
    // residence mean is the same.
    let mut w = watch(&["celery"]);
    w.visibility_timeout_ms = 100_000;
    let run = |stale: bool| {
        let (mut book, mut st) = (LiveBook::new(30.0), EventState::default());
        let mut last = None;
        for t in 1..=40u32 {
            let now = f64::from(t);
            let churn = QueueChurn {
                new_scores: vec![now - 1.0]
                    .into_iter()
                    .chain(stale.then_some(now - 150.0))
                    .collect(),
                left: vec![now - 5.0],
                gone: 1,
                ..QueueChurn::default()
            };
            last = Some(tick_churn(&mut book, now, &w, 0, churn, &mut st).0);
        }
        last.unwrap()
            .signals("celery")
            .service_time
            .map(|e| e.value)
    };
    assert!(run(false).is_some());
    assert_eq!(run(true), run(false));
}

#[test]
fn the_sizing_service_time_outlives_an_idle_queue_with_its_source() {
    use crate::signals::live::{size_service, SizingService};
    let mut sizing = SizingService::new(30.0);
    for t in 0..=100u32 {
        let mut est = QueueEstimates {
            service_time: Some(Estimate::new(2.0, OCCUPANCY)),
            service_rate: Some(1.0),
            ..QueueEstimates::default()
        };
        size_service(&mut sizing, f64::from(t), &mut est);
    }
    // Twenty idle minutes: nothing measured, the 600 s window long past its last start.
    let mut est = QueueEstimates::default();
    for t in 101..=1_300u32 {
        est = QueueEstimates::default();
        size_service(&mut sizing, f64::from(t), &mut est);
    }
    let kept = est.service_time_sizing.expect("kept");
    assert_eq!(kept.source, OCCUPANCY);
    assert!((kept.value - 2.0).abs() < 1e-9, "{kept:?}");
}

#[test]
fn a_queue_watched_with_two_visibility_timeouts_is_restored_at_the_shorter() {
    // Two triggers watch `celery`, the first with kombu's 3,600 s, the second with 100 s:
    // entries leaving 101 s after delivery are restores under the 100 s one, no task's.
    let mut long = watch(&["celery"]);
    long.visibility_timeout_ms = 3_600_000;
    let mut short = watch(&["celery"]);
    short.visibility_timeout_ms = 100_000;
    let (mut book, mut st) = (LiveBook::new(30.0), EventState::default());
    let mut p95 = None;
    for t in 1..=60u32 {
        let delivered = if t <= 40 { 5.0 } else { 101.0 };
        let mut extras = TickExtras::default();
        extras.llen.insert(b"celery".to_vec(), 0);
        let churn = QueueChurn {
            left: vec![f64::from(t) - delivered],
            gone: 1,
            ..QueueChurn::default()
        };
        extras
            .churn
            .insert((long.layout.clone(), "celery".into()), churn);
        let watches = [long.clone(), short.clone()];
        let data = book.update(
            f64::from(t),
            &watches,
            &mut extras,
            &mut st,
            |_, _| 0,
            |_, _| 0,
        );
        let e = &data.queues[&(long.layout.clone(), "celery".to_string())];
        p95 = e.signals("celery").service_time_p95.map(|e| e.value);
    }
    assert_eq!(p95, Some(4.5));
}

#[test]
fn credited_starts_keep_the_flow_from_looking_quiet_while_the_workers_start_tasks() {
    // The list has been quiet for 20 s, but the workers started tasks 3 s ago: the credited
    // flow (arrivals the list never showed) is quiet for 3 s only.
    use crate::signals::live::QueueEstimates;
    let workers = WorkerSummary {
        starts_quiet_for: 3.0,
        ..two_workers()
    };
    let mut est = QueueEstimates {
        arrivals_quiet_for: Some(20.0),
        ..QueueEstimates::default()
    };
    credit_now(&mut est, &workers);
    assert_eq!(est.arrival_rate_steady.map(|e| e.source), Some(HEARTBEAT));
    assert_eq!(est.arrivals_quiet_for, Some(3.0));
    assert_eq!(est.signals("celery").arrivals_quiet_for, Some(3.0));
    // Counted starts are not credited: the list's own quiet stands.
    let mut counted = QueueEstimates {
        arrival_rate_steady: Some(Estimate::new(2.0, KEYSPACE)),
        dequeue_rate: Some(Estimate::new(2.0, KEYSPACE)),
        dequeue_rate_steady: Some(2.0),
        arrivals_quiet_for: Some(20.0),
        ..QueueEstimates::default()
    };
    credit_now(&mut counted, &workers);
    assert_eq!(counted.arrivals_quiet_for, Some(20.0));
    // Credited, the quieter of the two is not taken: the list counted an arrival 1 s ago.
    let mut recent = QueueEstimates {
        arrivals_quiet_for: Some(1.0),
        ..QueueEstimates::default()
    };
    let idle_workers = WorkerSummary {
        starts_quiet_for: 10.0,
        starts_longest_gap: 0.0,
        ..workers
    };
    credit_now(&mut recent, &idle_workers);
    assert_eq!(
        recent.arrival_rate_steady.map(|e| e.source),
        Some(HEARTBEAT)
    );
    assert_eq!(recent.arrivals_quiet_for, Some(1.0));
}

#[test]
fn a_lower_bound_cleared_by_heartbeats_takes_the_workers_quiet_too() {
    // Traffic the list mostly cannot see (a lower bound, quiet for 10 s) on workers that
    // started tasks 1 s ago: heartbeats clear the lower-bound mark without crediting the
    // steady rate (the counted dequeues already cover the starts), and the list's quiet
    // must not then read as a stopped flow.
    use crate::signals::live::QueueEstimates;
    let mut est = QueueEstimates {
        arrival_rate: Some(Estimate::lower_bound(2.0, CONSERVATION)),
        arrival_rate_steady: Some(Estimate::lower_bound(2.0, CONSERVATION)),
        dequeue_rate: Some(Estimate::lower_bound(3.0, CONSERVATION)),
        dequeue_rate_steady: Some(3.0),
        arrivals_quiet_for: Some(10.0),
        ..QueueEstimates::default()
    };
    let workers = WorkerSummary {
        workers: 1,
        busy_start_rate: 3.0,
        window_start_rate: 3.0,
        starts_quiet_for: 1.0,
        ..two_workers()
    };
    credit_now(&mut est, &workers);
    let steady = est.arrival_rate_steady.expect("kept");
    assert_eq!(
        (steady.source, steady.mode),
        (CONSERVATION, SignalMode::Estimated)
    );
    assert_eq!(est.arrivals_quiet_for, Some(1.0));
}

#[test]
fn credited_starts_bring_their_gaps_so_batches_are_no_stop() {
    // A producer sends a batch every 5 s into a queue the workers keep empty: the list
    // counts nothing (gap 0), the workers' starts show the batches (gap 5 s between beats
    // with starts), and their last start was 4 s ago. A gap the flow left before is no sign
    // of a stop: the policy keeps the flow.
    use crate::policy::latency::{decide, LatencySettings};
    use crate::signals::live::QueueEstimates;
    use crate::signals::QueueSignals;
    let workers = |gap: f64| WorkerSummary {
        running: 0,
        start_rate: Some(10.0),
        busy_start_rate: 10.0,
        window_start_rate: 10.0,
        starts_quiet_for: 4.0,
        starts_longest_gap: gap,
        ..two_workers()
    };
    let decision = |gap: f64| {
        let mut est = QueueEstimates {
            arrivals_quiet_for: Some(30.0),
            arrivals_longest_gap: Some(0.0),
            rate_window: Some(30.0),
            ..QueueEstimates::default()
        };
        credit_now(&mut est, &workers(gap));
        assert_eq!(est.arrivals_quiet_for, Some(4.0));
        assert_eq!(est.arrivals_longest_gap, Some(gap));
        let queue = QueueSignals {
            name: "celery".into(),
            ..QueueSignals::default()
        };
        decide(
            &LatencySettings::new(4.0, 30.0),
            &[queue],
            &[est.signals("celery")],
        )
    };
    let batches = decision(5.0);
    assert!(batches.active && batches.metric_value > 0.0, "{batches:?}");
    // Starts that came every beat until 4 s ago: the flow has stopped.
    let over = decision(2.0);
    assert!(!over.active && over.metric_value == 0.0, "{over:?}");
}

#[test]
fn a_list_that_just_filled_has_the_age_of_half_a_tick() {
    // The list was empty at 10 s and holds a task at 11 s: its ends are read from the next
    // tick on (the plan reads only lists non-empty at the previous tick), but the task is
    // at most one tick old, so the wait is known at once: from the mid-point, 0.5 s. On
    // the sampler's very first tick nothing is known of the list's past: no wait. The next
    // tick dates the tail from the same mid-point.
    let mut book = LiveBook::new(10.0);
    let mut st = EventState::default();
    let mut at = |now: f64, backlog: u64, tag: Option<&str>, book: &mut LiveBook| {
        wait_at(book, &mut st, now, backlog, tag.map(|t| (t, t)))
    };
    assert_eq!(at(9.0, 0, None, &mut book).map(|e| e.value), Some(0.0));
    assert_eq!(at(10.0, 0, None, &mut book).map(|e| e.value), Some(0.0));
    assert_eq!(
        at(11.0, 1, None, &mut book),
        Some(Estimate::new(0.5, TAIL_TAG))
    );
    assert_eq!(
        at(12.0, 1, Some("a"), &mut book).map(|e| e.value),
        Some(1.5)
    );
    // A scaler that just started reads every key's ends: the task found there may have
    // waited any time, so its age restarts as a lower bound, not a reading.
    let mut fresh = LiveBook::new(10.0);
    let first = at(100.0, 1, Some("old"), &mut fresh).expect("a wait");
    assert!(first.is_lower_bound(), "{first:?}");
    let later = at(101.0, 1, Some("old"), &mut fresh).expect("a wait");
    assert!(later.is_lower_bound() && later.value == 1.0, "{later:?}");
    // Once the list was seen empty, what fills it is dated again.
    at(102.0, 0, None, &mut fresh);
    let dated = at(103.0, 1, None, &mut fresh).expect("a wait");
    assert!(!dated.is_lower_bound(), "{dated:?}");
}

#[test]
fn a_list_filled_across_failed_samples_is_dated_from_the_last_good_tick() {
    // Ticks every second, then 30 s without a good sample (broker unreachable): a list seen
    // empty before and holding a task after may hold it since just after the last good
    // tick. Dated from the mid-point, it read 15 s too young, and with `podStartup` a lone
    // task could be held past its due start; dated from that tick it is at most one gap
    // too old. Regular ticks again: the mid-point.
    let mut book = LiveBook::new(10.0);
    let mut st = EventState::default();
    for now in [8.0, 9.0, 10.0] {
        wait_at(&mut book, &mut st, now, 0, None);
    }
    let after_gap = wait_at(&mut book, &mut st, 40.0, 1, None).expect("a wait");
    assert!(!after_gap.is_lower_bound(), "{after_gap:?}");
    assert!((after_gap.value - 30.0).abs() < 1e-9, "{after_gap:?}");
    wait_at(&mut book, &mut st, 41.0, 0, None);
    let regular = wait_at(&mut book, &mut st, 42.0, 1, None).expect("a wait");
    assert!((regular.value - 0.5).abs() < 1e-9, "{regular:?}");
}

#[test]
fn ages_read_after_the_clock_stepped_back_are_lower_bounds() {
    // A task waits since 10.5 s (tail tags, then keyspace events); the wall clock steps
    // back 20 s. Ages read from times before the step are 20 s short (or 0): lower bounds,
    // which `podStartup` never waits on, until the task leaves; what is listed after it
    // leaves is dated again.
    let mut book = LiveBook::new(10.0);
    let mut st = EventState::default();
    for now in [9.0, 10.0] {
        wait_at(&mut book, &mut st, now, 0, None);
    }
    wait_at(&mut book, &mut st, 11.0, 1, None);
    let before = wait_at(&mut book, &mut st, 12.0, 1, Some(("a", "a"))).expect("a wait");
    assert!(!before.is_lower_bound() && (before.value - 1.5).abs() < 1e-9);
    let stepped = wait_at(&mut book, &mut st, -8.0, 1, Some(("a", "a"))).expect("a wait");
    assert!(stepped.is_lower_bound(), "{stepped:?}");
    let still = wait_at(&mut book, &mut st, -7.0, 1, Some(("b", "a"))).expect("a wait");
    assert!(still.is_lower_bound(), "{still:?}");
    let next = wait_at(&mut book, &mut st, -6.0, 1, Some(("b", "b"))).expect("a wait");
    assert!(
        !next.is_lower_bound() && (next.value - 1.0).abs() < 1e-9,
        "{next:?}"
    );
    // A list empty before the step and filled after it: when it filled is not known.
    let mut filled = LiveBook::new(10.0);
    let mut fst = EventState::default();
    for now in [9.0, 10.0] {
        wait_at(&mut filled, &mut fst, now, 0, None);
    }
    assert_eq!(wait_at(&mut filled, &mut fst, -8.0, 1, None), None);
    let after = wait_at(&mut filled, &mut fst, -7.0, 1, Some(("a", "a"))).expect("a wait");
    assert!(after.is_lower_bound(), "{after:?}");

    let mut fifo = FifoClock::default();
    fifo.arrive(100.0);
    fifo.undate();
    assert!(!fifo.dated());
    fifo.dequeue();
    fifo.arrive(90.0);
    assert!(fifo.dated());
}

#[test]
fn a_lone_task_whose_start_came_due_since_the_sample_activates() {
    // T = 60 s, podStartup 30 s: a lone task's start is due at 18 s. Sampled at 17 s old and
    // asked 2 s later it is 19 s old: active (read as of the sample it waited a tick
    // more). The metric stays the sample's: the backlog it pairs with was read then.
    use crate::policy::latency::{decide, LatencySettings};
    use crate::signals::QueueSignals;
    let s = LatencySettings {
        pod_startup: Some(30.0),
        ..LatencySettings::new(4.0, 60.0)
    };
    let q = QueueSignals {
        name: "celery".into(),
        backlog: 1,
        ..QueueSignals::default()
    };
    let live = LiveSignals {
        name: "celery".into(),
        wait: Some(Estimate::new(17.0, TAIL_TAG)),
        ..LiveSignals::default()
    };
    let at_sample = decide(&s, std::slice::from_ref(&q), std::slice::from_ref(&live));
    assert!(!at_sample.active, "{at_sample:?}");
    let asked = decide(
        &s,
        std::slice::from_ref(&q),
        &[live.clone().asked_after(2.0)],
    );
    assert!(asked.active, "{asked:?}");
    assert_eq!(asked.metric_value, at_sample.metric_value);
    // A clock that stepped back between the sample and the question adds nothing.
    assert!(!decide(&s, &[q], &[live.asked_after(-5.0)]).active);
}

#[test]
fn messages_without_readable_tags_have_no_known_age() {
    // A list holding a message that is not kombu's (no delivery tag at either end): the tail
    // clock dates nothing, so the wait is a lower bound on every tick, never an age that
    // keeps reading 0 (with `podStartup` that held the trigger inactive forever).
    use crate::policy::latency::{decide, LatencySettings};
    use crate::signals::QueueSignals;
    let w = watch(&["celery"]);
    let mut book = LiveBook::new(10.0);
    let mut st = EventState::default();
    let mut wait = None;
    for (now, backlog) in [(0.0, 0), (1.0, 2), (2.0, 2), (600.0, 2)] {
        let mut extras = TickExtras::default();
        extras.llen.insert(b"celery".to_vec(), backlog);
        extras.ends.insert(b"celery".to_vec(), (None, None));
        let d = book.update(
            now,
            std::slice::from_ref(&w),
            &mut extras,
            &mut st,
            |_, _| backlog,
            |_, _| 0,
        );
        wait = d.queues[&(w.layout.clone(), "celery".to_string())].wait;
        if backlog > 0 && now > 1.0 {
            assert!(wait.is_some_and(|e| e.is_lower_bound()), "{now}: {wait:?}");
        }
    }
    let s = LatencySettings {
        pod_startup: Some(30.0),
        ..LatencySettings::new(4.0, 60.0)
    };
    let q = QueueSignals {
        name: "celery".into(),
        backlog: 2,
        ..QueueSignals::default()
    };
    let live = LiveSignals {
        name: "celery".into(),
        wait,
        ..LiveSignals::default()
    };
    assert!(decide(&s, &[q], &[live]).active);
}

#[test]
fn one_arrival_in_the_samplers_first_ticks_is_a_few_arrivals_not_a_flow() {
    // The sampler started 0.6 s ago and a task was listed since: λ reads 1/0.6 s. Over the
    // 30 s window that was 50 arrivals and a flow of λ·S = 16.6 slots for T = 10 s (the
    // scaler's first seconds after a restart sized a lone task as five pods); it rests on
    // one, so the steady term is 0 and the task asks for one pod.
    use crate::policy::latency::{decide, LatencySettings};
    use crate::signals::QueueSignals;
    let w = watch(&["celery"]);
    let mut book = LiveBook::new(30.0);
    let mut st = EventState::default();
    for (now, backlog) in [(0.0, 0), (0.2, 0), (0.4, 0), (0.6, 1)] {
        tick(&mut book, now, &w, backlog, 0, &mut st);
    }
    let e = tick(&mut book, 0.6, &w, 1, 0, &mut st);
    let steady = e.arrival_rate_steady.expect("a rate").value;
    let counted = steady * e.rate_window.expect("a span");
    assert!((counted - 1.0).abs() < 1e-9, "{e:?}");
    let q = QueueSignals {
        name: "celery".into(),
        backlog: 1,
        ..QueueSignals::default()
    };
    let d = decide(
        &LatencySettings::new(4.0, 10.0),
        &[q],
        &[e.signals("celery")],
    );
    assert!(d.metric_value <= 4.0, "{d:?}");
}
