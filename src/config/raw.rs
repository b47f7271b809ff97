//! Raw configuration values as the layers (file, environment, flags) give them: text or a
//! list, each with its origin, collected before validation.

use std::collections::BTreeMap;

/// A raw value and where it came from.
#[derive(Clone, Debug)]
pub(super) struct Raw {
    pub(super) value: RawValue,
    pub(super) origin: String,
}

#[derive(Clone, Debug)]
pub(super) enum RawValue {
    Text(String),
    List(Vec<String>),
}

/// Everything collected from all layers, before validation.
#[derive(Default)]
pub(super) struct RawConfig {
    pub(super) top: BTreeMap<String, Raw>,
    pub(super) connections: BTreeMap<String, BTreeMap<String, Raw>>,
}

/// A list value: a YAML/TOML list, or comma-separated text (environment); blank items
/// dropped, each with its origin.
pub(super) fn list_items(raw: Option<&Raw>) -> Vec<(String, String)> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let list: Vec<String> = match &raw.value {
        RawValue::List(items) => items.clone(),
        RawValue::Text(t) => t.split(',').map(str::to_string).collect(),
    };
    list.into_iter()
        .map(|s| (s.trim().to_string(), raw.origin.clone()))
        .filter(|(s, _)| !s.is_empty())
        .collect()
}
