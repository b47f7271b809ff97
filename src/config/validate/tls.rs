//! Validation of the gRPC server's TLS settings: files readable and holding PEM, a key that
//! belongs to its certificate, a client CA only with a server certificate and usable by rustls
//! as a trust anchor (checked before any port is bound).

use super::check::Check;
use crate::config::defs;
use crate::config::raw::{Raw, RawConfig, RawValue};
use crate::config::settings::ServerTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use std::sync::Arc;

pub(super) fn validate_tls(c: &mut Check<'_>, raw: &RawConfig) -> Option<ServerTls> {
    let cert_raw = raw.top.get(defs::TLS_CERT.key);
    let key_raw = raw.top.get(defs::TLS_KEY.key);
    let ca_raw = raw.top.get(defs::TLS_CLIENT_CA.key);
    let has = |r: Option<&Raw>| matches!(r.map(|r| &r.value), Some(RawValue::Text(t)) if !t.trim().is_empty());
    let (has_cert, has_key, has_ca) = (has(cert_raw), has(key_raw), has(ca_raw));
    if has_key && !has_cert {
        c.problems.push(format!(
            "{}: a TLS key needs a certificate (tls_cert / --tls-cert)",
            key_raw.map(|r| r.origin.as_str()).unwrap_or("tls_key")
        ));
    }
    if has_cert && !has_key {
        c.problems.push(format!(
            "{}: a TLS certificate needs its key (tls_key / --tls-key)",
            cert_raw.map(|r| r.origin.as_str()).unwrap_or("tls_cert")
        ));
    }
    if has_ca && !has_cert {
        c.problems.push(format!(
            "{}: a client CA (mTLS) needs a server certificate and key (tls_cert, tls_key)",
            ca_raw.map(|r| r.origin.as_str()).unwrap_or("tls_client_ca")
        ));
    }
    let cert = c.cert_file(cert_raw);
    let key = c.key_file(key_raw);
    let ca = c.cert_file(ca_raw);
    if let (Some(cert_pem), Some(key_pem)) = (&cert, &key) {
        if let Err(why) = check_key_pair(cert_pem, key_pem) {
            let origin = key_raw.map(|r| r.origin.as_str()).unwrap_or("tls_key");
            c.problems.push(format!(
                "{origin}: the key does not belong to the certificate (tls_cert): {why}"
            ));
            return None;
        }
    }
    if let Some(ca_pem) = &ca {
        if let Err(why) = check_client_ca(ca_pem) {
            let origin = ca_raw.map(|r| r.origin.as_str()).unwrap_or("tls_client_ca");
            c.problems
                .push(format!("{origin}: unusable as client CA (mTLS): {why}"));
            return None;
        }
    }
    match (cert, key) {
        (Some(cert_pem), Some(key_pem)) if has_ca == ca.is_some() => Some(ServerTls {
            cert_pem,
            key_pem,
            client_ca_pem: ca,
        }),
        _ => None,
    }
}

/// Builds the client-certificate verifier from `ca_pem` as the gRPC server will, so a CA
/// file rustls cannot use (a certificate it cannot parse) is a config error before any port
/// is bound rather than a failure after binding.
fn check_client_ca(ca_pem: &[u8]) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("unreadable certificate ({e})"))?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks that the private key in `key_pem` is the one of the first certificate in
/// `cert_pem` (rustls compares the key's public half with the certificate's), so a
/// mismatched pair is a config error before any port is bound.
fn check_key_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("unreadable certificate ({e})"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| "unreadable private key")?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("unsupported private key ({e})"))?;
    match rustls::sign::CertifiedKey::new(certs, signing).keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
