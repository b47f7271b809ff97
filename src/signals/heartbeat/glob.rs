//! [`glob_match`]: the shell-style patterns of `workerHostnames` and of the broker policy's
//! host and namespace rules, with work bounded by the product of the two lengths.

#[cfg(test)]
thread_local! {
    /// Glob steps taken by the current test's thread (see [`glob_match`]).
    pub(super) static GLOB_STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Shell-style match with `*` (any run) and `?` (one character); a pattern without wildcards
/// is a prefix (`celery@worker-` matches `celery@worker-7f9c`). Runs on the RPC path for
/// every tracked worker, so it allocates nothing and takes at most
/// (name bytes + 1) × (pattern bytes + 1) steps (both are bounded: `MAX_HOSTNAME` and the
/// `workerHostnames` limit).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let mut steps = 0;
    let matched = glob_steps(pattern, name, &mut steps);
    #[cfg(test)]
    GLOB_STEPS.with(|c| c.set(c.get() + steps));
    matched
}

/// [`glob_match`], counting its steps into `steps`: the two-pointer matcher over bytes, which
/// backtracks only to the last `*` (`?` takes one whole UTF-8 character).
pub(super) fn glob_steps(pattern: &str, name: &str, steps: &mut u64) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.starts_with(pattern);
    }
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // One character of `n` starting at byte `i` (a char boundary).
    let width = |i: usize| match n.get(i) {
        Some(&b) if b >= 0xF0 => 4,
        Some(&b) if b >= 0xE0 => 3,
        Some(&b) if b >= 0xC0 => 2,
        _ => 1,
    };
    let (mut pi, mut ni) = (0, 0);
    // (pattern index after the last `*`, name index it is matched up to).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        *steps += 1;
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ni));
            }
            Some(b'?') => {
                pi += 1;
                ni += width(ni);
            }
            Some(&c) if c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((after, mark)) => {
                    let mark = mark + width(mark);
                    star = Some((after, mark));
                    pi = after;
                    ni = mark;
                }
                None => return false,
            },
        }
    }
    ni == n.len()
        && p.get(pi..)
            .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}
