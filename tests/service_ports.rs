//! Both ports under idle and slow peers, in-process: connections that send nothing or a
//! partial header are closed after the configured handshake / header timeout, connections
//! over the limit are closed at once, a peer that stops answering HTTP/2 PINGs is dropped,
//! and `/healthz` and the gRPC health check answer once the idle peers are gone.
#![allow(clippy::unwrap_used)]

mod service_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use celery_scaler::config::{Config, PortSettings, ServerTls};
use service_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Handshake / header timeout configured for these tests.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Slack on top of a configured timeout before a test gives up (a 2-core CI under load).
const SLACK: Duration = Duration::from_secs(5);
const LIMIT: u32 = 50;
const PEERS: usize = 100;

fn ports() -> PortSettings {
    PortSettings {
        grpc_handshake_timeout: TIMEOUT,
        admin_header_timeout: TIMEOUT,
        grpc_max_connections: LIMIT,
        admin_max_connections: LIMIT,
        ..PortSettings::default()
    }
}

/// Reads until the server closes the connection (EOF or reset); `false` if it is still open
/// after `limit`.
async fn closed_within(mut s: TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.is_ok()
}

/// Opens `PEERS` connections to `addr`: every tenth sends `partial`, the others nothing.
async fn idle_peers(addr: SocketAddr, partial: &[u8]) -> Vec<TcpStream> {
    let mut peers = Vec::new();
    for i in 0..PEERS {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if i % 10 == 0 {
            // The server may already have closed one over the limit.
            let _ = s.write_all(partial).await;
        }
        peers.push(s);
    }
    peers
}

async fn all_closed(peers: Vec<TcpStream>, limit: Duration) -> usize {
    let waits = peers.into_iter().map(|s| closed_within(s, limit));
    futures_util::future::join_all(waits)
        .await
        .into_iter()
        .filter(|closed| !closed)
        .count()
}

async fn grpc_health(addr: SocketAddr) -> Result<ServingStatus, String> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .status;
    ServingStatus::try_from(status).map_err(|e| e.to_string())
}

/// The value of `name{labels}` on `/metrics` (0 when absent).
async fn metric(admin: SocketAddr, series: &str) -> f64 {
    let (_, body) = http_get(admin, "/metrics").await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn idle_and_partial_peers_are_closed_and_health_answers_afterwards() {
    let server = TestServer::start(Config {
        ports: ports(),
        ..test_config()
    })
    .await;
    let grpc = idle_peers(server.grpc, b"PRI * HTTP/2.0\r\n").await;
    let admin = idle_peers(server.admin, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let (open_grpc, open_admin) = tokio::join!(
        all_closed(grpc, TIMEOUT + SLACK),
        all_closed(admin, TIMEOUT + SLACK)
    );
    assert_eq!(
        open_grpc, 0,
        "gRPC peers still open after the handshake timeout"
    );
    assert_eq!(
        open_admin, 0,
        "admin peers still open after the header timeout"
    );

    assert_eq!(http_get(server.admin, "/healthz").await.unwrap().0, 200);
    assert_eq!(grpc_health(server.grpc).await, Ok(ServingStatus::Serving));
    let refused = |port: &str, reason: &str| {
        format!("celery_scaler_connections_refused_total{{port=\"{port}\",reason=\"{reason}\"}}")
    };
    // How many were over the limit depends on how fast they were opened compared with the
    // timeout; `connections_over_the_limit_are_closed_at_once` checks the limit exactly.
    assert!(metric(server.admin, &refused("grpc", "limit")).await >= 1.0);
    assert!(metric(server.admin, &refused("admin", "limit")).await >= 1.0);
    assert!(metric(server.admin, &refused("grpc", "handshake_timeout")).await >= 1.0);
    assert!(metric(server.admin, &refused("admin", "header_timeout")).await >= 1.0);
    server.stop(Duration::from_secs(10)).await.unwrap();
}

/// With a long handshake timeout, the connection after the limit is closed at once while
/// the admitted ones stay open; closing one frees its slot for a real client.
#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let long = Duration::from_secs(120);
    let limit = 5;
    let server = TestServer::start(Config {
        ports: PortSettings {
            grpc_handshake_timeout: long,
            admin_header_timeout: long,
            grpc_max_connections: limit,
            admin_max_connections: limit,
            ..PortSettings::default()
        },
        ..test_config()
    })
    .await;
    for addr in [server.grpc, server.admin] {
        let mut held = Vec::new();
        for _ in 0..limit {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        let extra = TcpStream::connect(addr).await.unwrap();
        assert!(
            closed_within(extra, SLACK).await,
            "{addr}: the connection over the limit must be closed at once"
        );
        let first = held.remove(0);
        assert!(
            !closed_within(first, Duration::from_millis(200)).await,
            "{addr}: admitted"
        );
        // One slot is free again once the server has seen that close.
        let mut served = false;
        for _ in 0..100 {
            served = if addr == server.admin {
                matches!(http_get(addr, "/healthz").await, Ok((200, _)))
            } else {
                matches!(
                    tokio::time::timeout(SLACK, grpc_health(addr)).await,
                    Ok(Ok(ServingStatus::Serving))
                )
            };
            if served {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(served, "{addr}: a freed slot serves a real client");
    }
    server.stop(Duration::from_secs(10)).await.unwrap();
}

/// A client that sent the preface and SETTINGS, then stopped answering: the HTTP/2 PING it
/// never acknowledges makes the server close the connection.
#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let keepalive = Duration::from_secs(1);
    let server = TestServer::start(Config {
        ports: PortSettings {
            grpc_keepalive_interval: keepalive,
            grpc_keepalive_timeout: keepalive,
            ..PortSettings::default()
        },
        ..test_config()
    })
    .await;
    let mut s = TcpStream::connect(server.grpc).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    assert!(
        closed_within(s, keepalive * 2 + SLACK).await,
        "a peer that never acknowledges PINGs must be dropped"
    );
    server.stop(Duration::from_secs(10)).await.unwrap();
}

/// With TLS: a peer that never starts TLS, and one that finishes TLS but never sends the
/// HTTP/2 preface, are both closed after the handshake timeout; real clients still work.
#[tokio::test]
async fn tls_peers_that_stall_before_or_after_the_handshake_are_closed() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let flags = celery_scaler::config::Flags {
        tls_cert: Some(cert_path.to_string_lossy().to_string()),
        tls_key: Some(key_path.to_string_lossy().to_string()),
        ..Default::default()
    };
    let tls: Option<ServerTls> = celery_scaler::config::load(None, &Default::default(), &flags)
        .unwrap()
        .tls;
    let server = TestServer::start(Config {
        tls,
        ports: ports(),
        ..test_config()
    })
    .await;

    let silent = TcpStream::connect(server.grpc).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(server.grpc).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stalled = connector.connect(name, tcp).await.unwrap();

    assert!(
        closed_within(silent, TIMEOUT + SLACK).await,
        "no TLS at all"
    );
    let mut buf = [0u8; 1024];
    let after_tls = tokio::time::timeout(TIMEOUT + SLACK, async {
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(after_tls.is_ok(), "TLS done but no HTTP/2 preface");
    server.stop(Duration::from_secs(10)).await.unwrap();
}
