//! The scaler's copy of kombu's `unacked_index`: delivery tag → score (delivery time) plus the
//! parsed `unacked` value, ordered by score. Pure data structure (no I/O): the tracker
//! compares it with Redis range by range and applies what it finds.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::celery::UnackedEntry;

/// A delivery tag (the `unacked` field, a uuid4 in practice).
pub(crate) type Tag = Arc<[u8]>;

/// A score with a total order, so it can key a `BTreeSet`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Score(pub f64);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The score interval `[lo, hi)`; `None` is unbounded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ScoreRange {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

impl ScoreRange {
    pub(crate) const ALL: ScoreRange = ScoreRange { lo: None, hi: None };

    pub(crate) fn contains(&self, s: f64) -> bool {
        self.lo.is_none_or(|lo| s >= lo) && self.hi.is_none_or(|hi| s < hi)
    }

    /// `min` and `max` arguments for `ZCOUNT` / `ZRANGEBYSCORE` (Redis parses the
    /// shortest round-trip decimal of an f64 back to the same double).
    pub(crate) fn redis_args(&self) -> (String, String) {
        let lo = self
            .lo
            .map_or_else(|| "-inf".to_string(), |lo| format!("{lo}"));
        let hi = self
            .hi
            .map_or_else(|| "+inf".to_string(), |hi| format!("({hi}"));
        (lo, hi)
    }
}

/// What the scaler knows of one entry's value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// Seen in the index, value not read yet.
    Pending,
    Parsed(UnackedEntry),
    /// The value could not be parsed (counted once, when read).
    Malformed,
    /// In the index but not in the hash: ignored. Re-read on each of the next `rereads`
    /// ticks (a writer that adds the index entry before the value, unlike kombu's single
    /// `MULTI`), then only by reconciliation.
    Missing {
        rereads: u8,
    },
}

/// Ticks on which a tag first found in the index without a value is read again.
pub(crate) const MISSING_REREADS: u8 = 3;

/// Known entries ordered by score.
#[derive(Default)]
pub(crate) struct Index {
    by_score: BTreeSet<(Score, Tag)>,
    entries: HashMap<Tag, (f64, Value)>,
    /// Parsed entries removed since the last [`Index::take_departed`] (live signals).
    departed: Vec<(f64, UnackedEntry)>,
}

/// One end of a `BTreeSet<(Score, Tag)>` range.
type End = Bound<(Score, Tag)>;

fn bounds(r: ScoreRange) -> (End, End) {
    let empty: Tag = Arc::from(Vec::new());
    let lo = r.lo.map_or(Bound::Unbounded, |lo| {
        Bound::Included((Score(lo), empty.clone()))
    });
    let hi =
        r.hi.map_or(Bound::Unbounded, |hi| Bound::Excluded((Score(hi), empty)));
    (lo, hi)
}

impl Index {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn scores_in(&self, r: ScoreRange) -> impl Iterator<Item = &(Score, Tag)> {
        // An empty or inverted range would make BTreeSet::range panic.
        let valid = match (r.lo, r.hi) {
            (Some(lo), Some(hi)) => lo < hi,
            _ => true,
        };
        let iter = valid.then(|| self.by_score.range(bounds(r)));
        iter.into_iter().flatten()
    }

    /// Known entries with a score in `r`.
    pub(crate) fn count(&self, r: ScoreRange) -> u64 {
        self.scores_in(r).count() as u64
    }

    pub(crate) fn max_score(&self) -> Option<f64> {
        self.by_score.last().map(|(s, _)| s.0)
    }

    /// Splits `(-inf, below)` into at most `max_ranges` ranges of about equal known counts,
    /// each holding at least `min_size` known entries (except when fewer are known). Bounds
    /// fall on known scores, so equal scores never straddle two ranges.
    pub(crate) fn partition(
        &self,
        below: f64,
        max_ranges: usize,
        min_size: usize,
    ) -> Vec<ScoreRange> {
        let head = ScoreRange {
            lo: None,
            hi: Some(below),
        };
        let scores: Vec<f64> = self.scores_in(head).map(|(s, _)| s.0).collect();
        let n = scores.len();
        let k = n.div_ceil(min_size.max(1)).clamp(1, max_ranges.max(1));
        let mut cuts: Vec<f64> = Vec::with_capacity(k);
        for i in 1..k {
            let s = scores[i * n / k];
            if cuts.last().is_none_or(|last| s > *last) && scores.first().is_some_and(|f| s > *f) {
                cuts.push(s);
            }
        }
        let mut ranges = Vec::with_capacity(cuts.len() + 1);
        let mut lo = None;
        for cut in cuts {
            ranges.push(ScoreRange { lo, hi: Some(cut) });
            lo = Some(cut);
        }
        ranges.push(ScoreRange {
            lo,
            hi: Some(below),
        });
        ranges
    }

    /// Splits `r` at the median known score into two ranges that each hold known entries;
    /// `None` when `r` holds fewer than two distinct known scores.
    pub(crate) fn split(&self, r: ScoreRange) -> Option<(ScoreRange, ScoreRange)> {
        let scores: Vec<f64> = self.scores_in(r).map(|(s, _)| s.0).collect();
        let first = *scores.first()?;
        let median = scores[scores.len() / 2];
        let cut = if median > first {
            median
        } else {
            *scores.iter().find(|s| **s > first)?
        };
        Some((
            ScoreRange {
                lo: r.lo,
                hi: Some(cut),
            },
            ScoreRange {
                lo: Some(cut),
                hi: r.hi,
            },
        ))
    }

    /// Makes the known entries in `r` equal to `listed` (what Redis holds in `r`): drops known
    /// tags that are not listed, adds listed tags that are new, and re-scores tags that moved.
    /// New and moved tags become [`Value::Pending`]. Returns (added or moved, removed).
    pub(crate) fn apply_listing(
        &mut self,
        r: ScoreRange,
        listed: Vec<(Vec<u8>, f64)>,
    ) -> (usize, usize) {
        let listed: HashMap<Tag, f64> = listed
            .into_iter()
            .filter(|(_, s)| r.contains(*s))
            .map(|(t, s)| (Tag::from(t), s))
            .collect();
        let gone: Vec<Tag> = self
            .scores_in(r)
            .filter(|(_, t)| !listed.contains_key(t))
            .map(|(_, t)| t.clone())
            .collect();
        for tag in &gone {
            self.remove(tag);
        }
        let mut changed = 0;
        for (tag, score) in listed {
            let known = self.entries.get(&tag).map(|(s, _)| *s);
            if known == Some(score) {
                continue;
            }
            if let Some(old) = known {
                self.by_score.remove(&(Score(old), tag.clone()));
            }
            self.by_score.insert((Score(score), tag.clone()));
            self.entries.insert(tag, (score, Value::Pending));
            changed += 1;
        }
        (changed, gone.len())
    }

    fn remove(&mut self, tag: &Tag) {
        if let Some((score, value)) = self.entries.remove(tag) {
            self.by_score.remove(&(Score(score), tag.clone()));
            if let Value::Parsed(entry) = value {
                self.departed.push((score, entry));
            }
        }
    }

    /// Parsed entries (score, entry) removed since the last call.
    pub(crate) fn take_departed(&mut self) -> Vec<(f64, UnackedEntry)> {
        std::mem::take(&mut self.departed)
    }

    /// The score of `tag` when its value is still to be read (a new or re-delivered tag, or
    /// one whose value was missing on the tick that listed it and is still being re-read).
    pub(crate) fn pending_score(&self, tag: &Tag) -> Option<f64> {
        match self.entries.get(tag) {
            Some((score, Value::Pending)) => Some(*score),
            Some((score, Value::Missing { rereads })) if *rereads > 0 => Some(*score),
            _ => None,
        }
    }

    /// What the value of `tag` becomes when a read finds no value: a first miss keeps
    /// [`MISSING_REREADS`] re-reads, each later miss one fewer.
    pub(crate) fn missed(&self, tag: &Tag) -> Value {
        let rereads = match self.entries.get(tag) {
            Some((_, Value::Missing { rereads })) => rereads.saturating_sub(1),
            _ => MISSING_REREADS,
        };
        Value::Missing { rereads }
    }

    /// Tags whose value must be read: pending ones and missing ones with re-reads left, plus
    /// every missing one when `with_missing`.
    pub(crate) fn to_fetch(&self, with_missing: bool) -> Vec<Tag> {
        self.entries
            .iter()
            .filter(|(_, (_, v))| match v {
                Value::Pending => true,
                Value::Missing { rereads } => with_missing || *rereads > 0,
                _ => false,
            })
            .map(|(t, _)| t.clone())
            .collect()
    }

    pub(crate) fn set_value(&mut self, tag: &Tag, value: Value) {
        if let Some(entry) = self.entries.get_mut(tag) {
            entry.1 = value;
        }
    }

    /// Whether `tag` is in the index.
    pub(crate) fn contains(&self, tag: &Tag) -> bool {
        self.entries.contains_key(tag)
    }

    /// Every parsed entry with its tag and score.
    pub(crate) fn parsed_tagged(&self) -> impl Iterator<Item = (&Tag, f64, &UnackedEntry)> {
        self.entries.iter().filter_map(|(t, (s, v))| match v {
            Value::Parsed(e) => Some((t, *s, e)),
            _ => None,
        })
    }

    /// Every parsed entry with its score.
    pub(crate) fn parsed(&self) -> impl Iterator<Item = (f64, &UnackedEntry)> {
        self.entries.values().filter_map(|(s, v)| match v {
            Value::Parsed(e) => Some((*s, e)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(scores: &[(&str, f64)]) -> Index {
        let mut idx = Index::default();
        let listed = scores
            .iter()
            .map(|(t, s)| (t.as_bytes().to_vec(), *s))
            .collect();
        idx.apply_listing(ScoreRange::ALL, listed);
        idx
    }

    fn r(lo: Option<f64>, hi: Option<f64>) -> ScoreRange {
        ScoreRange { lo, hi }
    }

    #[test]
    fn ranges_are_half_open_and_format_for_redis() {
        let x = r(Some(1.5), Some(2.0));
        assert!(x.contains(1.5) && !x.contains(2.0) && !x.contains(1.0));
        assert_eq!(x.redis_args(), ("1.5".to_string(), "(2".to_string()));
        assert_eq!(ScoreRange::ALL.redis_args(), ("-inf".into(), "+inf".into()));
        let precise = r(Some(1_795_308_568.962_592), None);
        assert_eq!(precise.redis_args().0, "1795308568.962592");
    }

    #[test]
    fn listing_adds_removes_and_moves() {
        let mut idx = index(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 10.0)]);
        assert_eq!(idx.len(), 4);
        assert_eq!(idx.to_fetch(false).len(), 4);
        for t in idx.to_fetch(false) {
            idx.set_value(&t, Value::Malformed);
        }
        // Range [1.5, 5): b removed, c kept, e new, a moved in from outside.
        let (changed, gone) = idx.apply_listing(
            r(Some(1.5), Some(5.0)),
            vec![
                (b"c".to_vec(), 3.0),
                (b"e".to_vec(), 4.0),
                (b"a".to_vec(), 4.5),
            ],
        );
        assert_eq!((changed, gone), (2, 1));
        assert_eq!(idx.len(), 4);
        assert_eq!(idx.count(r(None, Some(1.5))), 0);
        assert_eq!(idx.count(r(Some(1.5), Some(5.0))), 3);
        let mut fetch: Vec<String> = idx
            .to_fetch(false)
            .iter()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect();
        fetch.sort();
        assert_eq!(fetch, vec!["a", "e"]);
        // Listed members outside the range are ignored.
        idx.apply_listing(
            r(Some(9.0), None),
            vec![(b"d".to_vec(), 10.0), (b"z".to_vec(), 1.0)],
        );
        assert_eq!(idx.len(), 4);
    }

    #[test]
    fn partition_balances_counts_and_covers_everything_below() {
        let scores: Vec<(String, f64)> =
            (0..1000).map(|i| (format!("t{i}"), f64::from(i))).collect();
        let pairs: Vec<(&str, f64)> = scores.iter().map(|(t, s)| (t.as_str(), *s)).collect();
        let idx = index(&pairs);
        let parts = idx.partition(900.0, 8, 64);
        assert_eq!(parts.len(), 8);
        assert_eq!(parts[0].lo, None);
        assert_eq!(parts.last().and_then(|p| p.hi), Some(900.0));
        for w in parts.windows(2) {
            assert_eq!(w[0].hi, w[1].lo, "contiguous");
        }
        let counts: Vec<u64> = parts.iter().map(|p| idx.count(*p)).collect();
        assert_eq!(counts.iter().sum::<u64>(), 900);
        assert!(counts.iter().all(|c| (100..=125).contains(c)), "{counts:?}");
        // Few entries: one range; none: still one range (catches inserts from skewed clocks).
        assert_eq!(idx.partition(30.0, 8, 64).len(), 1);
        assert_eq!(
            Index::default().partition(5.0, 8, 64),
            vec![r(None, Some(5.0))]
        );
    }

    #[test]
    fn partition_never_splits_equal_scores() {
        let pairs: Vec<(String, f64)> = (0..100)
            .map(|i| (format!("t{i}"), if i < 90 { 7.0 } else { 8.0 }))
            .collect();
        let pairs: Vec<(&str, f64)> = pairs.iter().map(|(t, s)| (t.as_str(), *s)).collect();
        let idx = index(&pairs);
        let parts = idx.partition(100.0, 10, 1);
        let counts: Vec<u64> = parts.iter().map(|p| idx.count(*p)).collect();
        assert_eq!(counts.iter().sum::<u64>(), 100);
        assert!(counts.contains(&90), "{parts:?} {counts:?}");
    }

    #[test]
    fn split_halves_at_the_median_or_refuses() {
        let idx = index(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]);
        let (left, right) = idx.split(ScoreRange::ALL).expect("splittable");
        assert_eq!((idx.count(left), idx.count(right)), (2, 2));
        let same = index(&[("a", 5.0), ("b", 5.0)]);
        assert!(same.split(ScoreRange::ALL).is_none());
        let skew = index(&[("a", 5.0), ("b", 5.0), ("c", 5.0), ("d", 6.0)]);
        let (left, right) = skew.split(ScoreRange::ALL).expect("splittable");
        assert_eq!((skew.count(left), skew.count(right)), (3, 1));
        assert!(idx.split(r(Some(10.0), None)).is_none());
        assert_eq!(
            idx.count(r(Some(5.0), Some(1.0))),
            0,
            "inverted range is empty"
        );
    }

    #[test]
    fn missing_values_are_reread_a_few_ticks_then_only_on_request() {
        let mut idx = index(&[("a", 1.0)]);
        let a: Tag = Arc::from(b"a".to_vec());
        for left in (0..=MISSING_REREADS).rev() {
            idx.set_value(&a, idx.missed(&a));
            assert_eq!(idx.entries[&a].1, Value::Missing { rereads: left });
            assert_eq!(idx.to_fetch(false).len(), usize::from(left > 0), "{left}");
            assert_eq!(idx.pending_score(&a), (left > 0).then_some(1.0));
        }
        idx.set_value(&a, idx.missed(&a));
        assert_eq!(idx.entries[&a].1, Value::Missing { rereads: 0 });
        assert!(idx.to_fetch(false).is_empty());
        assert_eq!(idx.to_fetch(true), vec![a]);
        assert_eq!(idx.parsed().count(), 0);
    }
}
