//! Validation of one named connection (`connections.<name>.*`): its endpoint (address or
//! Sentinel), database, credentials and TLS. These keys are declared in `config::defs` but
//! checked here, field by field, because they depend on each other.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::check::Check;
use crate::broker::{BrokerSpec, Endpoint, HostPort, TlsSpec};
use crate::config::defs;
use crate::config::raw::{list_items, Raw};
use crate::config::text::{parse_uint, shown};
use crate::trigger::limits::{
    MAX_DATABASE_INDEX, MAX_NAME_BYTES, MAX_SENTINELS, MAX_USERNAME_BYTES,
};

pub(super) fn validate_connection(
    c: &mut Check<'_>,
    name: &str,
    fields: &BTreeMap<String, Raw>,
    env: &HashMap<String, String>,
) -> Option<BrokerSpec> {
    let before = c.problems.len();
    let at = |key: &str| format!("connections.{name}.{key}");
    let endpoint = endpoint(c, name, fields, env);
    let db = match c.text(fields.get(defs::CONN_DATABASE.key)) {
        None => 0,
        Some((t, origin)) => match parse_uint(t, MAX_DATABASE_INDEX) {
            Some(n) => n as i64,
            None => {
                c.problems.push(format!(
                    "{origin}: must be an integer 0-{MAX_DATABASE_INDEX}, got {}",
                    shown(t)
                ));
                0
            }
        },
    };
    let username = c
        .text(fields.get(defs::CONN_USERNAME.key))
        .map(|(u, origin)| {
            c.name(u, origin, MAX_USERNAME_BYTES);
            u.to_string()
        });
    let password = c.secret(fields, "password", env);
    let tls_on = c.bool(fields.get(defs::CONN_TLS.key));
    let insecure = c.bool(fields.get(defs::CONN_INSECURE_SKIP_VERIFY.key));
    let ca_file = c
        .text(fields.get(defs::CONN_CA_FILE.key))
        .map(|(p, o)| (p.to_string(), o.to_string()));
    if let Some((path, origin)) = &ca_file {
        if let Some(bytes) = c.file(path, origin) {
            let ok = CertificateDer::pem_slice_iter(&bytes).any(|r| r.is_ok());
            if !ok {
                c.problems.push(format!(
                    "{origin}: {} holds no PEM certificate",
                    shown(path)
                ));
            }
        }
        if !tls_on {
            c.problems
                .push(format!("{origin}: ca_file needs tls: true"));
        }
    }
    if insecure && !tls_on {
        c.problems.push(format!(
            "{}: insecure_skip_verify needs tls: true",
            at("insecure_skip_verify")
        ));
    }
    let tls = tls_on.then(|| TlsSpec {
        insecure,
        ca_file: ca_file.map(|(p, _)| PathBuf::from(p)),
    });
    if c.problems.len() > before {
        return None;
    }
    Some(BrokerSpec {
        endpoint: endpoint?,
        db,
        username,
        password,
        tls,
    })
}

/// The connection's endpoint: `address`, or `sentinel_master` with `sentinels` (each
/// checked even when the combination is wrong, so one pass reports all).
fn endpoint(
    c: &mut Check<'_>,
    name: &str,
    fields: &BTreeMap<String, Raw>,
    env: &HashMap<String, String>,
) -> Option<Endpoint> {
    let at = |key: &str| format!("connections.{name}.{key}");
    let address = c.text(fields.get(defs::CONN_ADDRESS.key));
    let master = c.text(fields.get(defs::CONN_SENTINEL_MASTER.key));
    let sentinels = list_items(fields.get(defs::CONN_SENTINELS.key));
    if sentinels.len() > MAX_SENTINELS {
        c.problems.push(format!(
            "{}: lists {} sentinels; at most {MAX_SENTINELS} are accepted",
            at("sentinels"),
            sentinels.len()
        ));
    }
    match (address, master) {
        (Some((text, origin)), Some(_)) => {
            c.problems.push(format!(
                "{origin}: give either address or sentinel_master (with sentinels), not both"
            ));
            // Check every value anyway, so one pass reports all that is wrong.
            c.host_port(text, origin);
            for (s, origin) in &sentinels {
                c.host_port(s, origin);
            }
            None
        }
        (None, None) => {
            c.problems.push(format!(
                "{}: connection {} needs address (host:port) or sentinel_master with sentinels",
                at("address"),
                shown(name)
            ));
            None
        }
        (Some((text, origin)), None) => {
            if !sentinels.is_empty() {
                c.problems.push(format!(
                    "{}: sentinels are only used with sentinel_master",
                    at("sentinels")
                ));
            }
            for key in [
                defs::CONN_SENTINEL_USERNAME.key,
                defs::CONN_SENTINEL_PASSWORD_ENV.key,
                defs::CONN_SENTINEL_PASSWORD_FILE.key,
            ] {
                if c.text(fields.get(key)).is_some() {
                    c.problems
                        .push(format!("{}: applies only with sentinel_master", at(key)));
                }
            }
            c.host_port(text, origin).map(Endpoint::Direct)
        }
        (None, Some((master, origin))) => {
            c.name(master, origin, MAX_NAME_BYTES);
            if sentinels.is_empty() {
                c.problems.push(format!(
                    "{}: sentinel_master needs at least one sentinel (host:port)",
                    at("sentinels")
                ));
            }
            let hosts: Vec<HostPort> = sentinels
                .iter()
                .filter_map(|(s, origin)| c.host_port(s, origin))
                .collect();
            let username =
                c.text(fields.get(defs::CONN_SENTINEL_USERNAME.key))
                    .map(|(u, origin)| {
                        c.name(u, origin, MAX_USERNAME_BYTES);
                        u.to_string()
                    });
            let password = c.secret(fields, "sentinel_password", env);
            Some(Endpoint::Sentinel {
                master: master.to_string(),
                sentinels: hosts,
                username,
                password,
            })
        }
    }
}
