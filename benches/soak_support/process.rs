//! The scaler under test as a child process (`celery-scaler serve` on two loopback ports,
//! stopped by PID), its resident memory from `/proc/<pid>/status`, and plain HTTP/1.0 `GET`s
//! on its admin port (`/healthz`, `/metrics`) with a bound on each.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::free_port;

/// How long `stop` waits after SIGTERM (the default drain is 20 s) before SIGKILL.
const TERM_WAIT: Duration = Duration::from_secs(25);

/// The running binary; killed on drop if `stop` was not called.
pub struct Scaler {
    child: Option<Child>,
    pub pid: u32,
    pub grpc_port: u16,
    pub admin_port: u16,
    /// Its stderr (the log), to measure how much it logs per phase.
    pub log: PathBuf,
}

impl Scaler {
    /// Starts `bin serve` with `RUST_LOG=warn` and no `CELERY_SCALER_*` from the environment.
    pub fn start(bin: &str, log_dir: &std::path::Path) -> Self {
        let grpc_port = free_port();
        let admin_port = free_port();
        let log = log_dir.join("scaler.log");
        let stderr = std::fs::File::create(&log).expect("create scaler log");
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--grpc-listen",
            &format!("127.0.0.1:{grpc_port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr);
        for (k, _) in std::env::vars() {
            if k.starts_with("CELERY_SCALER_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().expect("start celery-scaler serve");
        Scaler {
            pid: child.id(),
            child: Some(child),
            grpc_port,
            admin_port,
            log,
        }
    }

    /// Bytes logged so far.
    pub fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// SIGTERM by PID, then SIGKILL if it has not exited within [`TERM_WAIT`]; says which.
    pub fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return "already stopped".into();
        };
        if let Ok(Some(status)) = child.try_wait() {
            return format!("had already exited ({status})");
        }
        let t = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        while t.elapsed() < TERM_WAIT {
            if let Ok(Some(status)) = child.try_wait() {
                return format!(
                    "SIGTERM: exited in {:.2} s ({status})",
                    t.elapsed().as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        format!(
            "SIGTERM ignored for {} s: SIGKILL needed",
            TERM_WAIT.as_secs()
        )
    }
}

impl Drop for Scaler {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// RSS over one phase, MiB.
#[derive(Clone, Debug, Default)]
pub struct RssTrack {
    pub start: f64,
    pub end: f64,
    pub peak: f64,
    /// Seconds into the phase at which the RSS cap stopped hostile traffic.
    pub cap_hit_at: Option<f64>,
}

/// Reads the scaler's RSS every `every` until `end`; past `cap_mib` sets `stop` (once).
pub async fn track_rss(
    pid: u32,
    end: Instant,
    every: Duration,
    cap_mib: f64,
    stop: Arc<AtomicBool>,
) -> RssTrack {
    let start = Instant::now();
    let mut track = RssTrack::default();
    let mut first = true;
    loop {
        if let Some(kib) = rss_kib(pid) {
            let mib = kib as f64 / 1024.0;
            if first {
                track.start = mib;
                first = false;
            }
            track.end = mib;
            track.peak = track.peak.max(mib);
            if mib > cap_mib && track.cap_hit_at.is_none() {
                track.cap_hit_at = Some(start.elapsed().as_secs_f64());
                stop.store(true, Ordering::Relaxed);
            }
        }
        if Instant::now() >= end {
            return track;
        }
        super::sleep_within(every, end).await;
    }
}

/// `GET path` on 127.0.0.1:`port` within `limit`: the status code and the body. A timeout
/// after part of the answer says how many bytes had come.
pub async fn http_get(port: u16, path: &str, limit: Duration) -> Result<(u16, Vec<u8>), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let timeout = |n: usize| match n {
        0 => "timeout".to_string(),
        n => format!("timeout after {n} bytes"),
    };
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    let mut s = match tokio::time::timeout_at(deadline, connect).await {
        Err(_) => return Err(timeout(0)),
        Ok(Err(e)) => return Err(format!("connect: {:?}", e.kind())),
        Ok(Ok(s)) => s,
    };
    // HTTP/1.0: the body comes unchunked and the server closes after it.
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    match tokio::time::timeout_at(deadline, s.write_all(req.as_bytes())).await {
        Err(_) => return Err(timeout(0)),
        Ok(Err(e)) => return Err(format!("write: {:?}", e.kind())),
        Ok(Ok(())) => {}
    }
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return Err(timeout(buf.len())),
            Ok(Err(e)) => return Err(format!("read: {:?}", e.kind())),
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    let head = String::from_utf8_lossy(&buf[..text_end]);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status code")?;
    Ok((code, buf[text_end + 4..].to_vec()))
}
