//! The watch part of trigger metadata: key layout (`keyPrefix`, `prioritySeparator`,
//! `prioritySteps`), the queues, and `workerHostnames`, each within its limit.

use super::keys::DEFAULT_QUEUE;
use super::limits;
use super::reader::Reader;
use crate::celery::{Layout, DEFAULT_PRIORITY_STEPS, DEFAULT_SEPARATOR};
use crate::config::text::{parse_uint, shown};

/// Refuses a trigger whose queues × priority steps exceed [`limits::MAX_WATCHED_LISTS`]: that
/// product is the number of lists the sampler reads for it on every tick.
pub(super) fn check_watched_lists(r: &mut Reader<'_>, queues: &[String], layout: &Layout) {
    let lists = queues.len() * layout.priority_steps.len();
    if lists > limits::MAX_WATCHED_LISTS {
        r.problem(
            "queues",
            format!(
                "{} queues × {} prioritySteps = {lists} Redis lists per sample; at most {} are \
                 accepted",
                queues.len(),
                layout.priority_steps.len(),
                limits::MAX_WATCHED_LISTS
            ),
        );
    }
}

pub(super) fn parse_layout(r: &mut Reader<'_>) -> Layout {
    let prefix = r.map.get("keyPrefix").cloned().unwrap_or_default();
    if prefix.len() > limits::MAX_KEY_PREFIX_BYTES {
        r.problem(
            "keyPrefix",
            format!(
                "is {} bytes; at most {} are accepted",
                prefix.len(),
                limits::MAX_KEY_PREFIX_BYTES
            ),
        );
    } else if prefix.chars().any(char::is_control) {
        // It reaches text logs with every queue name.
        r.problem(
            "keyPrefix",
            format!("has control characters: {}", shown(&prefix)),
        );
    }
    let separator = match r.map.get("prioritySeparator").filter(|s| !s.is_empty()) {
        None => DEFAULT_SEPARATOR.to_vec(),
        Some(text) => match unescape(text) {
            Ok(sep) if !sep.is_empty() && sep.len() <= limits::MAX_SEPARATOR_BYTES => sep,
            Ok(sep) if sep.is_empty() => {
                r.problem("prioritySeparator", "must not be empty");
                DEFAULT_SEPARATOR.to_vec()
            }
            Ok(sep) => {
                r.problem(
                    "prioritySeparator",
                    format!(
                        "is {} bytes; at most {} are accepted",
                        sep.len(),
                        limits::MAX_SEPARATOR_BYTES
                    ),
                );
                DEFAULT_SEPARATOR.to_vec()
            }
            Err(msg) => {
                r.problem("prioritySeparator", msg);
                DEFAULT_SEPARATOR.to_vec()
            }
        },
    };
    let priority_steps = parse_priority_steps(r);
    Layout {
        prefix: prefix.into_bytes(),
        separator,
        priority_steps,
    }
}

/// `prioritySteps`: 1 to [`limits::MAX_PRIORITY_STEPS`] integers 0-[`limits::MAX_PRIORITY`].
fn parse_priority_steps(r: &mut Reader<'_>) -> Vec<u32> {
    let Some(text) = r.get("prioritySteps") else {
        return DEFAULT_PRIORITY_STEPS.to_vec();
    };
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.len() > limits::MAX_PRIORITY_STEPS {
        r.problem(
            "prioritySteps",
            format!(
                "lists {} steps; at most {} are accepted",
                items.len(),
                limits::MAX_PRIORITY_STEPS
            ),
        );
        return DEFAULT_PRIORITY_STEPS.to_vec();
    }
    let parsed: Option<Vec<u32>> = items
        .iter()
        .map(|s| parse_uint(s, limits::MAX_PRIORITY).and_then(|n| u32::try_from(n).ok()))
        .collect();
    match parsed {
        Some(mut steps) => {
            steps.sort_unstable();
            steps.dedup();
            steps
        }
        None => {
            r.problem(
                "prioritySteps",
                format!(
                    "must be a comma-separated list of integers 0-{}, got {}",
                    limits::MAX_PRIORITY,
                    shown(text)
                ),
            );
            DEFAULT_PRIORITY_STEPS.to_vec()
        }
    }
}

/// Turns the escaped text form (`\x06\x16`, `\\`) into bytes; other characters stand for
/// their UTF-8 bytes.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if hex.len() == 2 => out.push(b),
                    _ => {
                        return Err(format!(
                            "bad escape \\x{} in {} (want \\xHH)",
                            hex.escape_debug(),
                            shown(text)
                        ))
                    }
                }
            }
            other => {
                let shown_char = other.map(String::from).unwrap_or_default();
                return Err(format!(
                    "bad escape \\{} in {} (use \\xHH or \\\\)",
                    shown_char.escape_debug(),
                    shown(text)
                ));
            }
        }
    }
    Ok(out)
}

pub(super) fn parse_queues(r: &mut Reader<'_>) -> Vec<String> {
    let queues = r.get("queues");
    let list_name = r.get("listName");
    let text = match (queues, list_name) {
        (Some(q), Some(l)) if q != l => {
            r.problem(
                "listName",
                "is an alias for one queue; give either queues or listName",
            );
            q
        }
        (Some(q), _) => q,
        (None, Some(l)) => {
            if l.contains(',') {
                r.problem("listName", "names one queue; use queues for several");
            }
            l
        }
        (None, None) => DEFAULT_QUEUE,
    };
    let key = if queues.is_some() {
        "queues"
    } else {
        "listName"
    };
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.len() > limits::MAX_QUEUES {
        r.problem(
            key,
            format!(
                "lists {} queues; at most {} are accepted",
                items.len(),
                limits::MAX_QUEUES
            ),
        );
        return vec![DEFAULT_QUEUE.to_string()];
    }
    let mut out: Vec<String> = Vec::new();
    for name in items {
        if name.is_empty() {
            r.problem(key, format!("has an empty queue name in {}", shown(text)));
        } else if name.len() > limits::MAX_QUEUE_NAME_BYTES {
            r.problem(
                key,
                format!(
                    "has a queue name of {} bytes ({}); at most {} are accepted",
                    name.len(),
                    shown(name),
                    limits::MAX_QUEUE_NAME_BYTES
                ),
            );
        } else if name.chars().any(char::is_control) {
            r.problem(
                key,
                format!("has a queue name with control characters: {}", shown(name)),
            );
        } else if !out.iter().any(|q| q == name) {
            out.push(name.to_string());
        }
    }
    if out.is_empty() {
        out.push(DEFAULT_QUEUE.to_string());
    }
    out
}

/// `workerHostnames`: a non-empty glob or prefix of printable characters.
pub(super) fn parse_worker_hostnames(r: &mut Reader<'_>) -> Option<String> {
    let v = r.get("workerHostnames")?;
    if v.len() > limits::MAX_WORKER_HOSTNAMES_BYTES {
        r.problem(
            "workerHostnames",
            format!(
                "is {} bytes; at most {} are accepted",
                v.len(),
                limits::MAX_WORKER_HOSTNAMES_BYTES
            ),
        );
        return None;
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        r.problem(
            "workerHostnames",
            format!(
                "must be a hostname glob or prefix without spaces, got {}",
                shown(v)
            ),
        );
        return None;
    }
    Some(v.to_string())
}
