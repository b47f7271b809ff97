//! Accepting connections on the two ports, bounded: a connection limit per port (over it, a
//! new connection is closed at once), TCP keepalive, and for gRPC a handshake deadline: a
//! connection that has not finished TLS and sent the HTTP/2 preface in time is closed.
//!
//! The gRPC side does its own TLS (rustls, ALPN `h2`) so that the deadline can count the
//! decrypted preface; the accepted, handshaken connections are handed to tonic as a stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, warn};

use crate::telemetry::PortMetrics;

/// The HTTP/2 client preface (24 bytes) plus the header of the SETTINGS frame that must
/// follow it (9 bytes): what a gRPC client sends first.
const PREFACE_LEN: usize = 24 + 9;
/// Pause after a failed `accept` (e.g. out of file descriptors) so it is no busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one "connection limit reached" warning per port this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The connection limit of one port.
#[derive(Clone)]
pub struct Limiter {
    port: &'static str,
    max: u32,
    slots: Arc<Semaphore>,
    last_warning: Arc<Mutex<Option<Instant>>>,
    metrics: PortMetrics,
}

impl Limiter {
    /// The limit of `port`, counted in `metrics`.
    pub fn new(port: &'static str, max: u32, metrics: PortMetrics) -> Self {
        Self {
            port,
            max,
            slots: Arc::new(Semaphore::new(max as usize)),
            last_warning: Arc::new(Mutex::new(None)),
            metrics,
        }
    }

    /// A slot for a new connection, or `None` (counted, warned about) when the port is full:
    /// the caller drops the connection, which closes it.
    pub fn admit(&self) -> Option<Slot> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.metrics.opened(self.port, 1);
                Some(Slot {
                    port: self.port,
                    metrics: self.metrics.clone(),
                    _permit: permit,
                })
            }
            Err(_) => {
                self.metrics.refused(self.port, "limit");
                self.warn_full();
                None
            }
        }
    }

    fn warn_full(&self) {
        let Ok(mut last) = self.last_warning.lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
            *last = Some(now);
            warn!(
                port = self.port,
                max = self.max,
                "connection limit reached: new connections are closed at once"
            );
        }
    }
}

/// One admitted connection; frees its slot when dropped.
pub struct Slot {
    port: &'static str,
    metrics: PortMetrics,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    /// Counts this connection as closed by the server for `reason`.
    pub fn refused(&self, reason: &'static str) {
        self.metrics.refused(self.port, reason);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.opened(self.port, -1);
    }
}

/// TCP_NODELAY and keepalive probes after `idle`, then every 10 s (at most `idle`), 3 tries.
pub fn set_socket_options(tcp: &TcpStream, idle: Duration) {
    let _ = tcp.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(idle.min(Duration::from_secs(10)))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive) {
        debug!(error = %e, "cannot set TCP keepalive");
    }
}

/// Waits after a failed `accept`; the error is usually transient (a peer that reset, or no
/// file descriptor left).
pub async fn accept_failed(port: &'static str, e: io::Error) {
    debug!(port, error = %e, "accept failed");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// What the gRPC acceptor needs.
pub struct GrpcAccept {
    pub limiter: Limiter,
    pub tls: Option<TlsAcceptor>,
    pub handshake_timeout: Duration,
    pub tcp_keepalive: Duration,
}

/// The accepted gRPC connections, each admitted by the limiter and through TLS (if any),
/// for tonic's `serve_with_incoming_shutdown`. Dropping the stream stops accepting and
/// closes the listener.
pub fn grpc_incoming(
    listener: TcpListener,
    accept: GrpcAccept,
) -> impl Stream<Item = io::Result<Guarded>> + Send + 'static {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(grpc_accept_loop(listener, accept, tx));
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|io| (Ok(io), rx))
    })
}

async fn grpc_accept_loop(listener: TcpListener, a: GrpcAccept, tx: mpsc::Sender<Guarded>) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        accept_failed("grpc", e).await;
                        continue;
                    }
                };
                let Some(slot) = a.limiter.admit() else {
                    continue;
                };
                set_socket_options(&tcp, a.tcp_keepalive);
                let deadline = Instant::now() + a.handshake_timeout;
                handshakes.spawn(handshake(tcp, slot, a.tls.clone(), deadline, tx.clone()));
            }
        }
    }
}

/// TLS (if configured) within the deadline, then hands the connection over with the rest of
/// the deadline for the preface.
async fn handshake(
    tcp: TcpStream,
    slot: Slot,
    tls: Option<TlsAcceptor>,
    deadline: Instant,
    tx: mpsc::Sender<Guarded>,
) {
    let io = match tls {
        None => Io::Plain(tcp),
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Io::Tls(Box::new(tls)),
            Ok(Err(e)) => {
                debug!(error = %e, "gRPC TLS handshake failed");
                return;
            }
            Err(_) => {
                slot.refused("handshake_timeout");
                return;
            }
        },
    };
    let _ = tx.send(Guarded::new(io, slot, deadline)).await;
}

/// A gRPC connection, plain or TLS.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A gRPC connection holding its slot, closed with an error if fewer than [`PREFACE_LEN`]
/// bytes arrived before the deadline.
pub struct Guarded {
    io: Io,
    /// Armed until the preface is in; `None` afterwards.
    deadline: Option<Pin<Box<Sleep>>>,
    missing: usize,
    expired: bool,
    slot: Slot,
}

impl Guarded {
    fn new(io: Io, slot: Slot, deadline: Instant) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep_until(deadline))),
            missing: PREFACE_LEN,
            expired: false,
            slot,
        }
    }

    /// `Err` once the handshake deadline has passed without the preface.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(sleep) = &mut self.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                self.deadline = None;
                self.expired = true;
                self.slot.refused("handshake_timeout");
            }
        }
        if self.expired {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no HTTP/2 preface within the handshake timeout",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        let before = buf.filled().len();
        let polled = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = polled {
            if this.deadline.is_some() {
                this.missing = this
                    .missing
                    .saturating_sub(buf.filled().len().saturating_sub(before));
                if this.missing == 0 {
                    this.deadline = None;
                }
            }
        }
        polled
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, data),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match &self.io {
            Io::Plain(s) => s.connect_info(),
            Io::Tls(s) => s.get_ref().0.connect_info(),
        }
    }
}

/// File descriptors kept free for everything but client connections (listeners, Redis
/// connections, the runtime, logs).
const FD_RESERVE: u64 = 64;

/// `ports` with connection limits lowered (and a warning logged) to fit the open-files
/// limit; see [`fit_to_open_files`].
pub fn fitted(ports: &crate::config::PortSettings) -> crate::config::PortSettings {
    let mut ports = ports.clone();
    if let Some(n) = open_files_limit() {
        let (g, a) = (
            &mut ports.grpc_max_connections,
            &mut ports.admin_max_connections,
        );
        if fit_to_open_files(g, a, n) {
            warn!(
                open_files = n,
                grpc_max_connections = *g,
                admin_max_connections = *a,
                "connection limits lowered to fit the open-files limit (ulimit -n)"
            );
        }
    }
    ports
}

/// The soft limit on open files of this process (Linux `/proc/self/limits`), if known.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Lowers the connection limits so that both ports together leave [`FD_RESERVE`] descriptors
/// free under `open_files`: otherwise idle gRPC clients could use up the descriptors and the
/// admin port could not accept `/healthz`. The admin port keeps its limit up to half the
/// room, gRPC gets the rest; returns whether anything was lowered.
pub fn fit_to_open_files(grpc: &mut u32, admin: &mut u32, open_files: u64) -> bool {
    let room = open_files.saturating_sub(FD_RESERVE).max(2);
    let (g, a) = (u64::from(*grpc), u64::from(*admin));
    if g + a <= room {
        return false;
    }
    let new_admin = a.min(room / 2).max(1);
    let new_grpc = g.min(room - new_admin).max(1);
    *admin = u32::try_from(new_admin).unwrap_or(u32::MAX);
    *grpc = u32::try_from(new_grpc).unwrap_or(u32::MAX);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_fit_under_the_open_files_limit() {
        // (grpc, admin, open files) → (grpc, admin, lowered)
        let cases = [
            ((1024, 128, 1_048_576), (1024, 128, false)),
            ((1024, 128, 1216), (1024, 128, false)),
            ((1024, 128, 1215), (1023, 128, true)),
            ((1024, 128, 256), (96, 96, true)),
            ((1024, 128, 10), (1, 1, true)),
            ((10, 500, 300), (10, 118, true)),
        ];
        for ((g, a, n), want) in cases {
            let (mut grpc, mut admin) = (g, a);
            let lowered = fit_to_open_files(&mut grpc, &mut admin, n);
            assert_eq!((grpc, admin, lowered), want, "{g} {a} {n}");
            assert!(!lowered || u64::from(grpc + admin) <= n.saturating_sub(FD_RESERVE).max(2));
        }
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
