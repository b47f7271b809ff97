//! Key names kombu's Redis transport uses: queue lists with their priority sub-queues, the
//! `unacked` hash and index, and the `_kombu.binding.<exchange>` sets.

/// kombu's default priority separator: the two bytes ACK (0x06) and SYN (0x16).
pub const DEFAULT_SEPARATOR: &[u8] = b"\x06\x16";

/// kombu's default `priority_steps`.
pub const DEFAULT_PRIORITY_STEPS: [u32; 4] = [0, 3, 6, 9];

/// How one Celery deployment lays its keys out in one Redis database.
///
/// Producers and workers must agree on these settings; the scaler must be told them because
/// they cannot be discovered reliably from Redis.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    /// kombu's `global_keyprefix` (applies to every key, not to binding members).
    pub prefix: Vec<u8>,
    /// kombu's `sep` between a queue name and its priority step.
    pub separator: Vec<u8>,
    /// kombu's `priority_steps`, sorted and de-duplicated; step 0 never gets a suffix.
    pub priority_steps: Vec<u32>,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            prefix: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_vec(),
            priority_steps: DEFAULT_PRIORITY_STEPS.to_vec(),
        }
    }
}

impl Layout {
    /// Every list key that can hold ready messages of `queue`: the bare key (priority step 0,
    /// also used when 0 is not a listed step, because kombu clamps to it) and one key per
    /// non-zero step, in step order. This is what kombu's `Channel._size` sums.
    pub fn queue_keys(&self, queue: &str) -> Vec<Vec<u8>> {
        let mut keys = Vec::with_capacity(self.priority_steps.len().max(1));
        keys.push(self.prefixed(queue.as_bytes()));
        for step in self.priority_steps.iter().filter(|s| **s != 0) {
            let mut key = self.prefixed(queue.as_bytes());
            key.extend_from_slice(&self.separator);
            key.extend_from_slice(step.to_string().as_bytes());
            keys.push(key);
        }
        keys
    }

    /// The `unacked` hash: delivery tag → `[message, exchange, routing_key]`.
    pub fn unacked_key(&self) -> Vec<u8> {
        self.prefixed(b"unacked")
    }

    /// The `unacked_index` sorted set: delivery tag → delivery time (epoch seconds).
    pub fn unacked_index_key(&self) -> Vec<u8> {
        self.prefixed(b"unacked_index")
    }

    /// The set of bindings of `exchange`: members `routing_key sep pattern sep queue`.
    pub fn binding_key(&self, exchange: &str) -> Vec<u8> {
        let mut name = b"_kombu.binding.".to_vec();
        name.extend_from_slice(exchange.as_bytes());
        self.prefixed(&name)
    }

    fn prefixed(&self, name: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + name.len() + 4);
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(name);
        key
    }
}

/// One member of a `_kombu.binding.<exchange>` set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub routing_key: String,
    pub pattern: String,
    pub queue: String,
}

/// Longest binding key (pattern) or routing key, in bytes, that takes part in wildcard
/// matching: AMQP's limit for both (a `shortstr`). Celery's are a few words long. A longer
/// wildcard binding is never matched (the tracker skips and counts it); a longer routing key
/// can still match a binding exactly, never through a wildcard.
pub const MAX_TOPIC_LEN: usize = 255;

impl Binding {
    /// Whether this binding uses AMQP topic wildcards (`*`, `#`).
    pub fn is_wildcard(&self) -> bool {
        self.routing_key.contains(['*', '#'])
    }

    /// Whether a message published with `routing_key` is routed to this binding's queue.
    /// Exact match for direct exchanges; AMQP topic wildcards (`*` one word, `#` zero or more
    /// words) when the binding key contains them, for keys of at most [`MAX_TOPIC_LEN`]
    /// bytes. Costs at most (pattern words) × (key words + 1) steps, whatever the input.
    pub fn matches(&self, routing_key: &str) -> bool {
        if self.routing_key == routing_key {
            return true;
        }
        if !self.is_wildcard()
            || self.routing_key.len() > MAX_TOPIC_LEN
            || routing_key.len() > MAX_TOPIC_LEN
        {
            return false;
        }
        topic_match(&self.routing_key, routing_key, &mut 0)
    }
}

/// AMQP topic matching of `routing_key` against the binding key `pattern`, both split on
/// `.`: `*` matches exactly one word, `#` zero or more words, any other word itself.
///
/// Dynamic programming over the words (no backtracking): `reach[j]` says whether the pattern
/// words seen so far can match the first `j` key words. Each pattern word updates the row
/// once, so the work is at most (pattern words) × (key words + 1) cells, added to `steps`.
pub(crate) fn topic_match(pattern: &str, routing_key: &str, steps: &mut u64) -> bool {
    let words: Vec<&str> = routing_key.split('.').collect();
    let n = words.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    for p in pattern.split('.') {
        *steps += (n + 1) as u64;
        if p == "#" {
            // Zero or more words: every prefix at or after a reachable one is reachable.
            let mut any = false;
            for r in reach.iter_mut() {
                any |= *r;
                *r = any;
            }
        } else {
            // Exactly one word: shift right where the word matches.
            for j in (1..=n).rev() {
                reach[j] = reach[j - 1] && (p == "*" || p == words[j - 1]);
            }
            reach[0] = false;
        }
        if !reach.contains(&true) {
            return false;
        }
    }
    reach[n]
}

/// Parses a binding member `routing_key sep pattern sep queue`; `None` if it does not have
/// exactly three fields or is not UTF-8.
pub fn parse_binding_member(member: &[u8], separator: &[u8]) -> Option<Binding> {
    if separator.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(member).ok()?;
    let sep = std::str::from_utf8(separator).ok()?;
    let mut fields = text.splitn(3, sep);
    let routing_key = fields.next()?.to_string();
    let pattern = fields.next()?.to_string();
    let queue = fields.next()?.to_string();
    if queue.is_empty() {
        return None;
    }
    Some(Binding {
        routing_key,
        pattern,
        queue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_names_every_priority_key() {
        let keys = Layout::default().queue_keys("celery");
        assert_eq!(
            keys,
            vec![
                b"celery".to_vec(),
                b"celery\x06\x163".to_vec(),
                b"celery\x06\x166".to_vec(),
                b"celery\x06\x169".to_vec(),
            ]
        );
    }

    #[test]
    fn custom_separator_steps_and_prefix() {
        let layout = Layout {
            prefix: b"myapp:".to_vec(),
            separator: b":".to_vec(),
            priority_steps: (0..10).collect(),
        };
        let keys = layout.queue_keys("qa");
        assert_eq!(keys.len(), 10);
        assert_eq!(keys[0], b"myapp:qa".to_vec());
        assert_eq!(keys[1], b"myapp:qa:1".to_vec());
        assert_eq!(keys[9], b"myapp:qa:9".to_vec());
        assert_eq!(layout.unacked_key(), b"myapp:unacked".to_vec());
        assert_eq!(layout.unacked_index_key(), b"myapp:unacked_index".to_vec());
        assert_eq!(
            layout.binding_key("myex"),
            b"myapp:_kombu.binding.myex".to_vec()
        );
    }

    #[test]
    fn steps_without_zero_still_count_the_bare_key() {
        let layout = Layout {
            priority_steps: vec![5],
            ..Layout::default()
        };
        assert_eq!(
            layout.queue_keys("q"),
            vec![b"q".to_vec(), b"q\x06\x165".to_vec()]
        );
    }

    /// The matcher this module used to have: plain backtracking, exponential in the number
    /// of `#`s. Kept as the reference semantics on small inputs.
    fn reference(pattern: &[&str], words: &[&str]) -> bool {
        match pattern.split_first() {
            None => words.is_empty(),
            Some((&"#", rest)) => (0..=words.len()).any(|skip| reference(rest, &words[skip..])),
            Some((&head, rest)) => match words.split_first() {
                Some((word, tail)) => (head == "*" || head == *word) && reference(rest, tail),
                None => false,
            },
        }
    }

    fn reference_match(pattern: &str, key: &str) -> bool {
        let p: Vec<&str> = pattern.split('.').collect();
        let w: Vec<&str> = key.split('.').collect();
        reference(&p, &w)
    }

    #[test]
    fn topic_match_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("#", "", true),
            ("#", "a", true),
            ("#", "a.b.c", true),
            ("*", "", true),
            ("*", "a", true),
            ("*", "a.b", false),
            ("#.#", "", true),
            ("#.#", "a.b", true),
            ("a.#.b", "a.b", true),
            ("a.#.b", "a.x.y.b", true),
            ("a.#.b", "a.x.y", false),
            ("a.#.b", "b", false),
            ("*.#", "", true),
            ("*.#", "a", true),
            ("*.#", "a.b.c", true),
            ("#.*", "", true),
            ("a.*", "a.", true),
            ("a.*", "a", false),
            (".#", ".a", true),
            (".#", "a", false),
            ("#.", "a.", true),
            ("#.", "a", false),
            ("a.#", "a", true),
            ("a.#", "ab", false),
            ("*.*", "a.b", true),
            ("*.*", "a", false),
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("", "", true),
            ("", "a", false),
            ("#.a.#", "x.a.y", true),
            ("#.a.#", "x.b.y", false),
        ];
        for (pattern, key, want) in cases {
            assert_eq!(
                topic_match(pattern, key, &mut 0),
                *want,
                "{pattern:?} vs {key:?}"
            );
            assert_eq!(
                reference_match(pattern, key),
                *want,
                "reference {pattern:?} vs {key:?}"
            );
        }
    }

    #[test]
    fn pathological_pattern_costs_pattern_times_key_steps() {
        // The binding from issue 11: sixteen or more `#`s before a word that never matches,
        // against a 30-word key. Backtracking explores ~C(46, 16) paths; the table is 33 × 31.
        for hashes in [16usize, 40] {
            let pattern = format!("{}z", "#.".repeat(hashes));
            let key = vec!["w"; 30].join(".");
            let mut steps = 0;
            assert!(!topic_match(&pattern, &key, &mut steps));
            let bound = ((hashes + 1) * 31) as u64;
            assert!(steps <= bound, "{hashes} hashes: {steps} steps > {bound}");
            let hit = format!("{}w", "#.".repeat(hashes));
            let mut steps = 0;
            assert!(topic_match(&hit, &key, &mut steps));
            assert!(steps <= bound, "{hashes} hashes: {steps} steps > {bound}");
        }
    }

    #[test]
    fn over_long_keys_never_match_a_wildcard() {
        let b = Binding {
            routing_key: "a.#".into(),
            pattern: String::new(),
            queue: "q".into(),
        };
        let long = format!("a.{}", "x".repeat(MAX_TOPIC_LEN));
        assert!(!b.matches(&long));
        assert!(b.matches("a.x"));
        let exact = Binding {
            routing_key: long.clone(),
            ..b.clone()
        };
        assert!(exact.matches(&long), "exact matches have no length limit");
        let long_pattern = Binding {
            routing_key: format!("{}#", "x.".repeat(200)),
            ..b
        };
        assert!(!long_pattern.matches(&format!("{}y", "x.".repeat(200))));
    }

    proptest::proptest! {
        #[test]
        fn dynamic_programming_agrees_with_backtracking(
            pattern in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("#"),
                    proptest::strategy::Just("*"),
                    proptest::strategy::Just("a"),
                    proptest::strategy::Just("b"),
                    proptest::strategy::Just(""),
                ],
                0..7,
            ),
            key in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("a"),
                    proptest::strategy::Just("b"),
                    proptest::strategy::Just(""),
                ],
                0..8,
            ),
        ) {
            let pattern = pattern.join(".");
            let key = key.join(".");
            proptest::prop_assert_eq!(
                topic_match(&pattern, &key, &mut 0),
                reference_match(&pattern, &key),
                "{:?} vs {:?}", pattern, key
            );
        }
    }

    #[test]
    fn binding_members_parse_and_match() {
        let b = parse_binding_member(b"rk.x\x06\x16\x06\x16qx", DEFAULT_SEPARATOR).unwrap();
        assert_eq!(b.queue, "qx");
        assert!(b.matches("rk.x"));
        assert!(!b.matches("rk.y"));
        let t = parse_binding_member(b"worker.#::q", b":").unwrap();
        assert!(t.matches("worker.heartbeat"));
        assert!(t.matches("worker"));
        assert!(!t.matches("task.sent"));
        let star = Binding {
            routing_key: "a.*.c".into(),
            pattern: String::new(),
            queue: "q".into(),
        };
        assert!(star.matches("a.b.c"));
        assert!(!star.matches("a.b.b.c"));
        assert!(parse_binding_member(b"only-one-field", DEFAULT_SEPARATOR).is_none());
        assert!(parse_binding_member(b"rk\x06\x16\x06\x16", DEFAULT_SEPARATOR).is_none());
    }
}
