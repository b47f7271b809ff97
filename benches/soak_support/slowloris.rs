//! Slowloris: TCP connections to the gRPC and admin ports that never finish a request. On
//! the gRPC port each sends half of the HTTP/2 preface; on the admin port each sends a
//! request line and then one header line every 10 s. At the end of the phase each
//! connection counts as `ok` if the scaler still held it (the attacker's win) or as an error
//! if the scaler closed it or refused it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{over, record, sleep_within, Tallies};

/// Time between two trickled header lines on the admin port.
const TRICKLE: Duration = Duration::from_secs(10);
/// Connections opened per second (so the attack ramps rather than arrives in one burst).
const OPEN_PER_SEC: u64 = 50;

/// Which port a slowloris connection targets.
#[derive(Clone, Copy)]
pub enum Port {
    Grpc(u16),
    Admin(u16),
}

impl Port {
    fn kind(self) -> &'static str {
        match self {
            Port::Grpc(_) => "slowloris_grpc",
            Port::Admin(_) => "slowloris_admin",
        }
    }
}

/// Opens up to `count` slowloris connections to `port` and holds them until `end`.
pub async fn run(port: Port, count: usize, end: Instant, stop: Arc<AtomicBool>, t: Tallies) {
    let mut held = Vec::new();
    for i in 0..count {
        if over(end, &stop) {
            break;
        }
        held.push(tokio::spawn(hold(port, end)));
        if (i as u64 + 1) % OPEN_PER_SEC == 0 {
            sleep_within(Duration::from_secs(1), end).await;
        }
    }
    for h in held {
        let outcome = h.await.unwrap_or_else(|_| Err("task failed".into()));
        record(&t, port.kind(), outcome);
    }
}

/// One connection: `Ok` if still open at `end`, else why it ended.
async fn hold(port: Port, end: Instant) -> Result<(), String> {
    let p = match port {
        Port::Grpc(p) | Port::Admin(p) => p,
    };
    let connect = TcpStream::connect(("127.0.0.1", p));
    let mut s = match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect: {:?}", e.kind())),
        Err(_) => return Err("connect: timeout".into()),
    };
    let first: &[u8] = match port {
        Port::Grpc(_) => b"PRI * HTTP/2.0\r\n",
        Port::Admin(_) => b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    };
    if s.write_all(first).await.is_err() {
        return Err("closed by server".into());
    }
    let mut buf = [0u8; 512];
    loop {
        let wait = TRICKLE.min(end.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            return Ok(());
        }
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            // The server closed it or answered (an error page then close).
            Ok(Ok(0)) | Ok(Err(_)) => return Err("closed by server".into()),
            Ok(Ok(_)) => {}
            Err(_) => {
                if let Port::Admin(_) = port {
                    if s.write_all(b"X-Soak: 1\r\n").await.is_err() {
                        return Err("closed by server".into());
                    }
                }
            }
        }
    }
}
