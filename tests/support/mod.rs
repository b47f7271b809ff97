//! Shared test support: private `redis-server` processes on free loopback ports.
//!
//! Never uses port 6379 or a server the test did not start. Every child is killed on drop,
//! so a failing test cannot leave one behind.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a `harness = false` bench runs as a benchmark (`cargo bench` passes `--bench`)
/// rather than as a smoke run under `cargo test --all-targets`, where it uses small sizes:
/// the test suite only checks that it still runs, the numbers come from `cargo bench`.
pub fn full_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A free TCP port on 127.0.0.1 (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Path of `redis-server`; the test command installs it (scripts/setup.sh).
pub fn redis_server_bin() -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join("redis-server");
        if p.exists() {
            return p;
        }
    }
    panic!("redis-server not found: run scripts/setup.sh (apt-get install redis-server)");
}

/// One private redis-server.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl RedisServer {
    /// A plain server on a free port, no persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra command-line arguments (e.g. `["--requirepass", "x"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            match Self::try_start(port, extra) {
                Ok(server) => return server,
                Err(e) => last_err = e,
            }
        }
        panic!("could not start redis-server: {last_err}");
    }

    /// A server on a given port (e.g. to restart one that was stopped).
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let mut last_err = String::new();
        for _ in 0..20 {
            match Self::try_start(port, extra) {
                Ok(server) => return server,
                Err(e) => last_err = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not start redis-server on {port}: {last_err}");
    }

    fn try_start(port: u16, extra: &[&str]) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port_s = port.to_string();
        let mut args: Vec<&str> = vec![
            "--port",
            &port_s,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ];
        let dir_s = dir.path().to_string_lossy().to_string();
        args.push(&dir_s);
        args.extend_from_slice(extra);
        let child = Command::new(redis_server_bin())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut server = RedisServer { port, child, dir };
        let ping_port = if extra.contains(&"--tls-port") {
            None
        } else {
            Some(port)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("redis-server exited: {status}"));
            }
            let up = match ping_port {
                Some(p) => std::net::TcpStream::connect(("127.0.0.1", p)).is_ok(),
                None => true,
            };
            if up {
                std::thread::sleep(Duration::from_millis(50));
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err("redis-server did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `host:port` for trigger metadata.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A synchronous client to write test data (DB `db`).
    pub fn conn(&self, db: i64) -> redis::Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/{db}", self.port))
            .expect("client url");
        client.get_connection().expect("connect to test redis")
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} failed");
    }

    /// Stops the server (to test an unreachable broker).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `celery_scaler_signal_mode{broker, queue, signal, mode}`.
pub fn signal_mode(
    registry: &celery_scaler::broker::Registry,
    broker: &str,
    queue: &str,
    signal: &str,
    mode: &str,
) -> Option<f64> {
    registry
        .metrics()
        .gather()
        .iter()
        .filter(|f| f.name() == "celery_scaler_signal_mode")
        .flat_map(|f| f.get_metric().to_vec())
        .find(|m| {
            let has = |k: &str, v: &str| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == k && l.value() == v)
            };
            has("broker", broker)
                && has("queue", queue)
                && has("signal", signal)
                && has("mode", mode)
        })
        .map(|m| m.get_gauge().value())
}

pub mod celery_data;
pub mod monitor;
pub mod sentinel;
pub mod tls;

/// Sampler settings for a test against its own redis-server: a tick every `interval`, short
/// timeouts, and no reconciliation within the test (an hour) unless the test sets one.
pub fn fast_sampler(interval: Duration) -> celery_scaler::broker::SamplerSettings {
    celery_scaler::broker::SamplerSettings {
        interval,
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(2),
        first_sample_timeout: Duration::from_secs(10),
        max_sample_age: Duration::from_secs(10),
        idle_expiry: Duration::from_secs(60),
        reconcile_period: Duration::from_secs(3600),
        ..celery_scaler::broker::SamplerSettings::default()
    }
}

/// A watch set of `queues` under the default layout, with an hour's visibility timeout and
/// no worker hostnames.
pub fn default_watch(queues: &[&str]) -> celery_scaler::broker::WatchSet {
    celery_scaler::broker::WatchSet {
        layout: celery_scaler::celery::Layout::default(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        visibility_timeout_ms: 3_600_000,
        worker_hostnames: None,
    }
}
