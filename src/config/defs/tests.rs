//! The settings table against README.md and against the defaults that live next to the code
//! that uses them.

use super::*;

/// Start and end markers of the generated table in README.md.
const BEGIN: &str = "<!-- settings table: generated from src/config/defs.rs -->";
const END: &str = "<!-- end of settings table -->";

fn readme_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")
}

/// The README's table must be exactly [`markdown_table`]. With `UPDATE_README=1` the test
/// rewrites the section instead (`UPDATE_README=1 cargo test --lib config::defs`).
#[test]
fn readme_settings_table_matches_the_definitions() {
    let path = readme_path();
    let readme = std::fs::read_to_string(&path).unwrap_or_default();
    let (Some(start), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md lacks the markers {BEGIN:?} … {END:?} around the settings table");
    };
    let section = &readme[start + BEGIN.len()..end];
    let expected = format!("\n{}", markdown_table());
    if section == expected {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!(
            "{}{expected}{}",
            &readme[..start + BEGIN.len()],
            &readme[end..]
        );
        std::fs::write(&path, updated).unwrap_or_else(|e| panic!("cannot write README.md: {e}"));
        return;
    }
    let differing: Vec<String> = expected
        .lines()
        .filter(|l| !section.lines().any(|s| s == *l))
        .map(|l| format!("  expected: {l}"))
        .chain(
            section
                .lines()
                .filter(|l| !expected.lines().any(|e| e == *l))
                .map(|l| format!("  README:   {l}")),
        )
        .collect();
    panic!(
        "README.md's settings table differs from src/config/defs.rs; regenerate it with \
         `UPDATE_README=1 cargo test --lib config::defs` (or print it with \
         `cargo run --example settings_table`):\n{}",
        differing.join("\n")
    );
}

#[test]
fn keys_are_unique_lowercase_and_documented() {
    let mut seen = std::collections::BTreeSet::new();
    for s in ALL {
        assert!(
            seen.insert((s.scope == Scope::Top, s.key)),
            "{} twice",
            s.key
        );
        assert!(
            s.key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{}",
            s.key
        );
        assert!(!s.doc.is_empty() && !s.doc.contains('|'), "{}", s.key);
        assert!(
            s.scope == Scope::Top || !s.flag,
            "{}: flags are for top keys",
            s.key
        );
    }
}

#[test]
fn bounds_hold_their_defaults_and_addresses_parse() {
    for s in ALL {
        match s.kind {
            Kind::Seconds { default, min, max } => {
                assert!(min <= default && default <= max && min >= 0.0, "{}", s.key);
            }
            Kind::Count { default, min, max } => {
                assert!(min <= default && default <= max, "{}", s.key);
            }
            Kind::Address { default } => {
                assert!(default.parse::<std::net::SocketAddr>().is_ok(), "{}", s.key);
            }
            Kind::Choice { choices } => {
                assert!(!choices.is_empty(), "{}", s.key);
                assert_eq!(s.default_text(), choices[0]);
            }
            _ => {}
        }
    }
    assert!(CONN_SENTINELS.doc.contains(&format!(
        "at most {}",
        crate::trigger::limits::MAX_SENTINELS
    )));
}

/// The counts fit the fields they fill: the bound of each is representable.
#[test]
fn count_bounds_fit_their_fields() {
    for s in [&GRPC_MAX_CONNECTIONS, &ADMIN_MAX_CONNECTIONS] {
        let Kind::Count { max, .. } = s.kind else {
            panic!("{} is a count", s.key)
        };
        assert!(u32::try_from(max).is_ok(), "{}", s.key);
    }
    for s in [
        &MAX_SERIES,
        &MAX_BROKERS,
        &MAX_BROKERS_PER_ENDPOINT,
        &MAX_TRACKED_WORKERS,
    ] {
        let Kind::Count { max, .. } = s.kind else {
            panic!("{} is a count", s.key)
        };
        assert!(usize::try_from(max).is_ok(), "{}", s.key);
    }
}

#[test]
fn broker_policy_choices_are_the_ones_the_broker_reads() {
    let Kind::Choice { choices } = BROKER_POLICY.kind else {
        panic!("broker_policy is a choice")
    };
    for c in choices {
        assert!(crate::broker::BrokerMode::parse(c).is_some(), "{c}");
    }
    assert_eq!(
        crate::broker::BrokerMode::parse(choices[0]),
        Some(crate::broker::BrokerMode::default())
    );
}

#[test]
fn environment_names_and_flags_are_derived() {
    assert_eq!(
        SAMPLE_INTERVAL.env_name(),
        "CELERY_SCALER_SAMPLE_INTERVAL_SECONDS"
    );
    assert_eq!(
        CONN_ADDRESS.env_name(),
        "CELERY_SCALER_CONNECTIONS__<NAME>__ADDRESS"
    );
    assert_eq!(GRPC_LISTEN.flag_name().as_deref(), Some("--grpc-listen"));
    assert_eq!(SAMPLE_INTERVAL.flag_name(), None);
}
