//! Strict parsing of the scalar text values shared by the scaler's config and trigger
//! metadata (booleans, bounded numbers and integers), and the one way a bad value is echoed
//! back in an error: quoted, escaped and truncated.

/// How many characters of a bad value an error message shows.
pub const MAX_SHOWN_CHARS: usize = 64;

/// `true`/`false` (also `1`/`0`, `yes`/`no`, any ASCII case); anything else is `None`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// A finite number within `min..=max`; `None` for anything else (NaN, infinities, values
/// that underflow to a subnormal or zero below `min`, values above `max`).
pub fn parse_number(text: &str, min: f64, max: f64) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= min && *n <= max)
}

/// An integer of ASCII digits only (no sign, no spaces) within `0..=max`.
pub fn parse_uint(text: &str, max: u64) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().filter(|n| *n <= max)
}

/// `value` as an error message may show it: Rust-escaped in quotes (a newline cannot start a
/// new log line), cut after [`MAX_SHOWN_CHARS`] characters with the full length appended.
pub fn shown(value: &str) -> String {
    let mut chars = value.char_indices();
    match chars.nth(MAX_SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}…({} bytes)", &value[..cut], value.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_is_short_escaped_and_says_the_length() {
        assert_eq!(shown("abc"), "\"abc\"");
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        let big = "é".repeat(1_000_000);
        let s = shown(&big);
        assert!(s.len() < 200, "{}", s.len());
        assert!(s.ends_with("…(2000000 bytes)"), "{s}");
        let exact = "x".repeat(MAX_SHOWN_CHARS);
        assert_eq!(shown(&exact), format!("{exact:?}"));
    }

    #[test]
    fn numbers_are_finite_and_bounded() {
        assert_eq!(parse_number("1.5", 0.0, 2.0), Some(1.5));
        for bad in ["1e-320", "1e308", "inf", "NaN", "-1", "", "1,5", "３"] {
            assert_eq!(parse_number(bad, 0.001, 1e6), None, "{bad}");
        }
        assert_eq!(parse_uint("15", 100), Some(15));
        for bad in ["+1", "-1", " 1", "1 ", "", "101", "１"] {
            assert_eq!(parse_uint(bad, 100), None, "{bad}");
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("no"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }
}
