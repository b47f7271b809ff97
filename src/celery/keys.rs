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

impl Binding {
    /// Whether a message published with `routing_key` is routed to this binding's queue.
    /// Exact match for direct exchanges; AMQP topic wildcards (`*` one word, `#` zero or more
    /// words) when the binding key contains them.
    pub fn matches(&self, routing_key: &str) -> bool {
        if self.routing_key == routing_key {
            return true;
        }
        if !self.routing_key.contains(['*', '#']) {
            return false;
        }
        let pattern: Vec<&str> = self.routing_key.split('.').collect();
        let words: Vec<&str> = routing_key.split('.').collect();
        topic_match(&pattern, &words)
    }
}

fn topic_match(pattern: &[&str], words: &[&str]) -> bool {
    match pattern.split_first() {
        None => words.is_empty(),
        Some((&"#", rest)) => (0..=words.len()).any(|skip| topic_match(rest, &words[skip..])),
        Some((&head, rest)) => match words.split_first() {
            Some((word, tail)) => (head == "*" || head == *word) && topic_match(rest, tail),
            None => false,
        },
    }
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
