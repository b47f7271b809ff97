//! Tests of the live state with synthetic ticks and a fake clock.

use super::*;
use crate::broker::events::KeyEvents;

fn watch(queues: &[&str]) -> WatchSet {
    WatchSet {
        layout: Layout {
            priority_steps: vec![0],
            ..Layout::default()
        },
        queues: queues.iter().map(|q| q.to_string()).collect(),
        visibility_timeout_ms: 3_600_000,
    }
}

fn tick(
    book: &mut LiveBook,
    now: f64,
    w: &WatchSet,
    backlog: u64,
    new_tags: u64,
    state: &mut EventState,
) -> QueueEstimates {
    let mut extras = TickExtras::default();
    extras.llen.insert(b"celery".to_vec(), backlog);
    extras
        .churn
        .insert((w.layout.clone(), "celery".into()), (new_tags, Vec::new()));
    let data = book.update(
        now,
        std::slice::from_ref(w),
        &mut extras,
        state,
        |_, _| backlog,
        |_, _| 0,
    );
    data.queues[&(w.layout.clone(), "celery".to_string())].clone()
}

#[test]
fn keyspace_flags() {
    assert!(flags_enable_lists("Kl"));
    assert!(flags_enable_lists("KEA"));
    assert!(!flags_enable_lists("El"));
    assert!(!flags_enable_lists("Kh"));
    assert!(!flags_enable_lists(""));
    let reply = redis::Value::Array(vec![
        redis::Value::BulkString(b"notify-keyspace-events".to_vec()),
        redis::Value::BulkString(b"lK".to_vec()),
    ]);
    assert_eq!(Keyspace::from_reply(&reply), Keyspace::Enabled);
    let off = redis::Value::Array(vec![
        redis::Value::BulkString(b"notify-keyspace-events".to_vec()),
        redis::Value::BulkString(Vec::new()),
    ]);
    assert_eq!(Keyspace::from_reply(&off), Keyspace::Disabled);
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
fn tail_tags_give_the_wait_in_estimated_mode() {
    let mut book = LiveBook::new(10.0);
    let w = watch(&["celery"]);
    let mut st = EventState::default();
    let mut at = |now: f64, backlog: u64, head: &str, tail: &str, book: &mut LiveBook| {
        let mut extras = TickExtras::default();
        extras.llen.insert(b"celery".to_vec(), backlog);
        extras.ends.insert(
            b"celery".to_vec(),
            (Some(head.to_string()), Some(tail.to_string())),
        );
        let d = book.update(
            now,
            std::slice::from_ref(&w),
            &mut extras,
            &mut st,
            |_, _| backlog,
            |_, _| 0,
        );
        d.queues[&(w.layout.clone(), "celery".to_string())]
            .wait
            .unwrap()
    };
    assert_eq!(at(10.0, 1, "a", "a", &mut book).value, 0.0);
    assert_eq!(at(11.0, 2, "b", "a", &mut book).value, 1.0);
    let e = at(12.0, 2, "c", "b", &mut book);
    assert_eq!(e, Estimate::new(1.0, TAIL_TAG));
}

#[test]
fn heartbeats_add_running_and_service_time() {
    use crate::signals::estimate::Heartbeat;
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
    // One queue in estimated mode: the workers' start rate floors the dequeue rate.
    let one = &sampled[1..];
    let out = live_signals(2.0, one, Some(&hb), Some("celery@"));
    assert_eq!(out[0].dequeue_rate, Some(Estimate::new(4.0, HEARTBEAT)));
    assert_eq!(out[0].arrival_rate, Some(Estimate::new(3.0, HEARTBEAT)));
}
