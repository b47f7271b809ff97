//! Tests of the simulated sampler: it reads what the real one would read from Redis.

use super::*;

fn task(id: u64, fetched: f64, eta: bool) -> Task {
    Task {
        queue: 0,
        step: 0,
        arrival: 0.0,
        due: if eta { 60.0 } else { 0.0 },
        duration: 1.0,
        started: false,
        id,
        fetched,
        redelivered: false,
    }
}

fn sampler(notifications: bool, heartbeats: bool) -> SimSampler {
    let spec = SamplerSpec {
        notifications,
        heartbeats,
        ..SamplerSpec::default()
    };
    SimSampler::new(&["celery".to_string()], &[0], &spec, None)
}

fn queue(backlog: u64) -> Vec<QueueSignals> {
    vec![QueueSignals {
        name: "celery".into(),
        backlog,
        ..QueueSignals::default()
    }]
}

#[test]
fn reads_give_lengths_ends_and_where_the_previous_head_is() {
    let mut s = sampler(false, false);
    let key = b"celery".to_vec();
    // LPUSH puts the newest at the head (LINDEX 0); workers take the tail.
    let mut list: VecDeque<Task> = (1..=3).map(|i| task(i, 0.0, false)).collect();
    let x = s.reads(&[vec![list.clone()]]);
    assert_eq!(x.llen[&key], 3);
    assert_eq!(x.ends[&key], (Some("3".into()), Some("1".into())));
    assert_eq!(x.heads[&key], b"3".to_vec());
    assert!(x.positions.is_empty(), "no anchor before the first tick");
    s.tick(1.0, &queue(3), &[vec![list.clone()]], std::iter::empty());
    // Two pushes and one pop: the old head is now at index 2 from the head.
    list.push_back(task(4, 0.0, false));
    list.push_back(task(5, 0.0, false));
    list.pop_front();
    let x = s.reads(&[vec![list.clone()]]);
    assert_eq!(x.positions[&key], Some(2));
    assert_eq!(x.ends[&key], (Some("5".into()), Some("2".into())));
    s.tick(2.0, &queue(4), &[vec![list.clone()]], std::iter::empty());
    // The anchor consumed: LPOS finds nothing.
    list.clear();
    list.push_back(task(6, 0.0, false));
    let x = s.reads(&[vec![list]]);
    assert_eq!(x.positions[&key], None);
}

#[test]
fn churn_counts_entries_that_came_and_went_between_two_ticks_only_once_seen() {
    let mut s = sampler(false, false);
    let first = s.churn(
        [task(1, 0.5, false), task(2, 0.7, true)]
            .iter()
            .map(Unacked::of),
    );
    let c = &first[&0];
    assert_eq!(c.new, 2, "an ETA entry is a new tag too");
    assert_eq!(c.new_scores, vec![0.5], "but its score is no delivery time");
    assert!(c.left.is_empty());
    // Entry 1 left, 3 arrived; an entry that came and went in between is never seen.
    let second = s.churn(
        [task(2, 0.7, true), task(3, 1.5, false)]
            .iter()
            .map(Unacked::of),
    );
    let c = &second[&0];
    assert_eq!(
        (c.new, c.new_scores.clone(), c.left.clone()),
        (1, vec![1.5], vec![0.5])
    );
    // A re-delivery (restored, fetched again later) is a new entry.
    let third = s.churn(
        [task(2, 0.7, true), task(3, 9.0, false)]
            .iter()
            .map(Unacked::of),
    );
    let c = &third[&0];
    assert_eq!((c.new, c.left.clone()), (1, vec![1.5]));
    assert_eq!(s.seen.unacked_new, 4);
}

#[test]
fn keyspace_events_are_heard_only_with_notifications() {
    for notifications in [false, true] {
        let mut s = sampler(notifications, false);
        s.key_event(0, 0, b"lpush", 1.0);
        s.key_event(0, 0, b"rpop", 1.5);
        assert_eq!(s.seen.keyspace_events, if notifications { 2 } else { 0 });
        let live = s.tick(2.0, &queue(0), &[vec![VecDeque::new()]], std::iter::empty());
        s.key_event(0, 0, b"lpush", 2.5);
        let live2 = s.tick(
            3.0,
            &queue(1),
            &[vec![[task(9, 0.0, false)].into()]],
            std::iter::empty(),
        );
        let source = live2[0].arrival_rate.map(|e| e.source);
        if notifications {
            assert_eq!(
                source,
                Some(crate::signals::Source::Keyspace),
                "{live:?} {live2:?}"
            );
        } else {
            assert_ne!(source, Some(crate::signals::Source::Keyspace), "{live2:?}");
        }
    }
}

#[test]
fn heartbeats_are_heard_only_when_the_workers_are_named() {
    for named in [false, true] {
        let mut s = sampler(false, named);
        let beat = Beat {
            pod: 0,
            active: 1,
            processed: 3,
            online: true,
        };
        s.beat(0.0, &[beat]);
        s.beat(
            2.0,
            &[Beat {
                processed: 5,
                online: false,
                ..beat
            }],
        );
        let live = s.tick(2.5, &queue(0), &[vec![VecDeque::new()]], std::iter::empty());
        assert_eq!(s.seen.heartbeats, if named { 2 } else { 0 });
        assert_eq!(live[0].running.map(|e| e.value), named.then_some(1.0));
    }
}

#[test]
fn every_priority_sub_queue_is_read_under_its_own_key() {
    let spec = SamplerSpec::default();
    let s = SimSampler::new(&["celery".to_string()], &[0, 3, 6], &spec, None);
    let lists = vec![vec![
        VecDeque::new(),
        [task(1, 0.0, false), task(2, 0.0, false)].into(),
        [task(3, 0.0, false)].into(),
    ]];
    let x = s.reads(&lists);
    let key = |suffix: &str| format!("celery{suffix}").into_bytes();
    assert_eq!(x.llen[&key("")], 0);
    assert_eq!(x.llen[&key("\x06\x163")], 2);
    assert_eq!(x.llen[&key("\x06\x166")], 1);
    // Before the first tick every key's ends are read; an empty key has none.
    assert_eq!(x.ends[&key("")], (None, None));
    assert_eq!(
        x.ends[&key("\x06\x163")],
        (Some("2".into()), Some("1".into()))
    );
}

#[test]
fn churn_lists_scores_in_one_order_whatever_the_maps_iterate() {
    // The estimators fold these lists in order (the residence tail keeps the last 128): an
    // order that followed the hash maps' would make two runs of one scenario differ.
    let mut s = sampler(false, false);
    let scores: Vec<f64> = (0..64u32).map(|i| f64::from((i * 37) % 64)).collect();
    let tasks: Vec<Task> = (0..64u32)
        .map(|i| task(u64::from(i), scores[i as usize], false))
        .collect();
    let first = s.churn(tasks.iter().map(Unacked::of));
    let mut sorted = scores.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(first[&0].new_scores, sorted);
    let second = s.churn(std::iter::empty());
    assert_eq!(second[&0].left, sorted);
}
