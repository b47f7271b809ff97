//! The loader follows the settings table (`config::defs`): every key it declares is known,
//! bounded as declared, echoed only in short form, and defaults agree everywhere.

use super::*;
use crate::config::defs::{self, Kind, Scope};

/// Every declared top key is accepted (never "unknown setting"), from the environment.
#[test]
fn every_declared_key_is_known() {
    for s in defs::ALL.iter().filter(|s| s.scope == Scope::Top) {
        let name = s.env_name();
        let text = match load(None, &env(&[(&name, "x")]), &Flags::default()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        assert!(!text.contains("unknown setting"), "{name}: {text}");
    }
    for s in defs::ALL.iter().filter(|s| s.scope == Scope::Connection) {
        let name = s.env_name().replace("<NAME>", "APP");
        let text = match load(None, &env(&[(&name, "x")]), &Flags::default()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        assert!(!text.contains("unknown"), "{name}: {text}");
    }
    let e = load(
        None,
        &env(&[("CELERY_SCALER_NOT_A_KEY", "1")]),
        &Flags::default(),
    );
    assert!(e.is_err_and(|e| e.to_string().contains("unknown setting")));
}

/// Seconds and counts accept their bounds and refuse just outside, naming the variable and
/// the bounds the table declares.
#[test]
fn every_bounded_setting_uses_the_declared_bounds() {
    for s in defs::ALL.iter().filter(|s| s.scope == Scope::Top) {
        let (ok, bad, range): (Vec<String>, Vec<String>, String) = match s.kind {
            Kind::Seconds { min, max, .. } => (
                vec![min.to_string(), max.to_string()],
                vec![format!("{}", max * 1.01), "-1".into(), "NaN".into()],
                format!("from {min} to {max}"),
            ),
            Kind::Count { min, max, .. } => {
                let mut bad = vec![(max + 1).to_string(), "+1".into(), "1.0".into()];
                if min > 0 {
                    bad.push((min - 1).to_string());
                }
                (
                    vec![min.to_string(), max.to_string()],
                    bad,
                    format!("from {min} to {max}"),
                )
            }
            _ => continue,
        };
        let name = s.env_name();
        for v in &ok {
            let r = load(None, &env(&[(&name, v)]), &Flags::default());
            assert!(r.is_ok(), "{name}={v}: {:?}", r.err());
        }
        for v in &bad {
            let e = load(None, &env(&[(&name, v)]), &Flags::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                e.contains(&name) && e.contains(&range),
                "{name}={v} not refused with {range:?}: {e}"
            );
        }
    }
}

/// A long bad value is shown truncated (`text::shown`), whatever the setting's kind.
#[test]
fn bad_values_are_echoed_only_in_short_form() {
    let long = "9".repeat(5000);
    for s in defs::ALL.iter().filter(|s| s.scope == Scope::Top) {
        let name = s.env_name();
        if let Err(e) = load(None, &env(&[(&name, &long)]), &Flags::default()) {
            let text = e.to_string();
            assert!(text.len() < 600, "{name} echoed {} bytes", text.len());
        }
    }
}

/// The defaults of the table, of `Config::default()`, of an empty load and of the types that
/// own them (`SamplerSettings`, `HeartbeatLimits`, `PortSettings`) are the same.
#[test]
fn defaults_agree_everywhere() {
    let loaded = load(None, &env(&[]), &Flags::default()).unwrap();
    let built = Config::default();
    assert_eq!(loaded.sampler_settings(), built.sampler_settings());
    assert_eq!(
        built.sampler_settings(),
        crate::broker::SamplerSettings::default()
    );
    assert_eq!(loaded.ports, built.ports);
    assert_eq!(loaded.heartbeat_limits, built.heartbeat_limits);
    assert_eq!(
        built.heartbeat_limits,
        crate::signals::heartbeat::HeartbeatLimits::default()
    );
    assert_eq!(
        built.broker_limits().max_brokers,
        crate::broker::BrokerLimits::default().max_brokers
    );
    assert_eq!(
        built.broker_limits().max_brokers_per_endpoint,
        crate::broker::BrokerLimits::default().max_brokers_per_endpoint
    );
    let pairs = [
        (loaded.grpc_listen, built.grpc_listen),
        (loaded.admin_listen, built.admin_listen),
    ];
    assert!(pairs.iter().all(|(a, b)| a == b), "{pairs:?}");
    assert_eq!(
        (loaded.shutdown_grace, loaded.rpc_timeout, loaded.max_series),
        (built.shutdown_grace, built.rpc_timeout, built.max_series)
    );
    assert_eq!(
        (loaded.max_brokers, loaded.max_brokers_per_endpoint),
        (built.max_brokers, built.max_brokers_per_endpoint)
    );
    assert_eq!(loaded.log_format, built.log_format);
}

/// Every setting declared with a flag is read from `Flags`, and its errors name the flag.
#[test]
fn every_declared_flag_is_read() {
    for s in defs::ALL.iter().filter(|s| s.flag) {
        let slot = Flags::default().get(s.key).cloned();
        assert_eq!(slot, Some(None), "{}: not a field of Flags", s.key);
        let mut flags = Flags::default();
        let (Some(field), Some(flag)) = (flag_field(&mut flags, s.key), s.flag_name()) else {
            panic!("{}: no flag", s.key);
        };
        *field = Some("\u{1}bad".to_string());
        let e = load(None, &env(&[]), &flags).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains(&flag)),
            "{flag}: {e:?}"
        );
    }
}

fn flag_field<'f>(flags: &'f mut Flags, key: &str) -> Option<&'f mut Option<String>> {
    Some(match key {
        "grpc_listen" => &mut flags.grpc_listen,
        "admin_listen" => &mut flags.admin_listen,
        "log_format" => &mut flags.log_format,
        "tls_cert" => &mut flags.tls_cert,
        "tls_key" => &mut flags.tls_key,
        "tls_client_ca" => &mut flags.tls_client_ca,
        _ => return None,
    })
}
