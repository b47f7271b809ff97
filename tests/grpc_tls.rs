//! gRPC over TLS and mTLS with certificates generated in-process (rcgen, X.509 v3): a client
//! that trusts the CA (and, for mTLS, presents a client certificate) connects; others are
//! refused; the server negotiates ALPN `h2`, which grpc-go ≥ 1.67 (KEDA) requires.
#![allow(clippy::unwrap_used)]

mod service_support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use celery_scaler::config::{self, Flags};
use celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use service_support::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const LIMIT: Duration = Duration::from_secs(10);

/// PEMs of one test PKI.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "celery-scaler test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        vec!["keda-operator".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    Pki {
        ca: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_string_lossy().to_string()
}

/// Starts a TLS server through the real config path (`--tls-cert`, `--tls-key`, …).
async fn tls_server(pki: &Pki, mtls: bool) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let flags = Flags {
        tls_cert: Some(write(dir.path(), "tls.crt", &pki.server_cert)),
        tls_key: Some(write(dir.path(), "tls.key", &pki.server_key)),
        tls_client_ca: mtls.then(|| write(dir.path(), "ca.crt", &pki.ca)),
        ..Flags::default()
    };
    let loaded = config::load(None, &HashMap::new(), &flags).unwrap();
    let config = config::Config {
        tls: loaded.tls,
        ..test_config()
    };
    (TestServer::start(config).await, dir)
}

/// Calls GetMetricSpec over a channel built from `tls`; `Err` if connecting or the call fails.
async fn call(server: &TestServer, tls: Option<ClientTlsConfig>) -> Result<(), String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://127.0.0.1:{}", server.grpc.port()))
        .unwrap()
        .connect_timeout(LIMIT);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let channel = tokio::time::timeout(LIMIT, endpoint.connect())
        .await
        .map_err(|_| "connect hung".to_string())?
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut client = ExternalScalerClient::new(channel);
    tokio::time::timeout(
        LIMIT,
        client.get_metric_spec(so(&[("address", "127.0.0.1:1")])),
    )
    .await
    .map_err(|_| "call hung".to_string())?
    .map(|_| ())
    .map_err(|s| format!("call: {s:?}"))
}

fn trusting(ca: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost")
}

#[tokio::test]
async fn tls_accepts_clients_that_trust_the_ca_and_refuses_others() {
    let pki = pki();
    let other = self::pki();
    let (server, _dir) = tls_server(&pki, false).await;
    call(&server, Some(trusting(&pki.ca))).await.unwrap();
    assert!(call(&server, Some(trusting(&other.ca))).await.is_err());
    assert!(
        call(&server, None).await.is_err(),
        "plaintext must be refused"
    );
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_ca() {
    let pki = pki();
    let other = self::pki();
    let (server, _dir) = tls_server(&pki, true).await;
    let with_cert =
        trusting(&pki.ca).identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    call(&server, Some(with_cert)).await.unwrap();
    assert!(
        call(&server, Some(trusting(&pki.ca))).await.is_err(),
        "a client without a certificate must be refused"
    );
    let wrong =
        trusting(&pki.ca).identity(Identity::from_pem(&other.client_cert, &other.client_key));
    assert!(
        call(&server, Some(wrong)).await.is_err(),
        "a certificate from another CA must be refused"
    );
    server.stop(LIMIT).await.unwrap();
}

#[tokio::test]
async fn tls_negotiates_alpn_h2() {
    let pki = pki();
    let (server, _dir) = tls_server(&pki, false).await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.grpc).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(LIMIT, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);
    server.stop(LIMIT).await.unwrap();
}
