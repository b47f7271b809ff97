//! Redis Sentinel for tests: `redis-sentinel` processes on free loopback ports monitoring a
//! master started by the test. Killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sentinel {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    /// A sentinel watching `master_name` at `127.0.0.1:master_port`, quorum `quorum`.
    pub fn start(master_name: &str, master_port: u16, quorum: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = super::free_port();
        let conf = dir.path().join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\n\
             sentinel monitor {master_name} 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds {master_name} 1000\n\
             sentinel failover-timeout {master_name} 5000\n\
             sentinel parallel-syncs {master_name} 1\n",
            dir = dir.path().display()
        );
        std::fs::write(&conf, text).expect("write sentinel.conf");
        let child = Command::new("/usr/bin/redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-sentinel (apt-get install redis-sentinel)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sentinel did not listen");
            std::thread::sleep(Duration::from_millis(25));
        }
        Sentinel {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port))
            .expect("url")
            .get_connection()
            .expect("connect sentinel")
    }

    /// The master port this sentinel reports.
    pub fn master_port(&self, name: &str) -> Option<u16> {
        let mut c = self.conn();
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(name)
            .query(&mut c)
            .ok()?;
        addr.map(|(_, p)| p)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
