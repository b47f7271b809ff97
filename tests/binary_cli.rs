//! The real `celery-scaler` binary: exit codes, config errors before binding, readiness,
//! `/metrics`, SIGTERM drain with an open stream, and `inspect`.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use service_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_celery-scaler");
const LIMIT: Duration = Duration::from_secs(20);

/// Kills the child on drop so a failing test leaves nothing behind.
struct Proc(Option<Child>);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }
    /// Waits (bounded) for the exit; returns the output.
    fn wait(mut self, limit: Duration) -> Output {
        let mut child = self.0.take().unwrap();
        let deadline = Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("process did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(Some(cmd.spawn().unwrap()))
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = spawn(args, env).wait(LIMIT);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn bad_config_exits_64_listing_every_problem_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        r#"
log_format: xml
sample_interval_seconds: 0.01
tls_client_ca: /nonexistent/ca.crt
connections:
  app:
    address: "redis:6379"
    sentinel_master: mymaster
    password_env: CELERY_SCALER_TEST_UNSET_PASSWORD
"#,
    )
    .unwrap();
    let grpc = format!("127.0.0.1:{}", support::free_port());
    let (code, stdout, stderr) = run(
        &[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--grpc-listen",
            &grpc,
        ],
        &[
            ("CELERY_SCALER_ADMIN_LISTEN", "not-an-address"),
            ("CELERY_SCALER_SHUTDOWN_GRACE_SECONDS", "-1"),
        ],
    );
    assert_eq!(code, 64, "stderr:\n{stderr}");
    for needle in [
        "log_format",
        "sample_interval_seconds",
        "tls_client_ca",
        "connections.app",
        "connections.app.password_env",
        "CELERY_SCALER_ADMIN_LISTEN",
        "CELERY_SCALER_SHUTDOWN_GRACE_SECONDS",
    ] {
        assert!(stderr.contains(needle), "{needle} missing from:\n{stderr}");
    }
    // A credential setting's value (here a variable name) is never echoed.
    assert!(
        !stderr.contains("CELERY_SCALER_TEST_UNSET_PASSWORD"),
        "{stderr}"
    );
    assert!(!stderr.contains("serving") && stdout.is_empty(), "{stderr}");
    // Nothing was bound: the gRPC address is still free.
    std::net::TcpListener::bind(&grpc).unwrap();
}

#[test]
fn bad_config_file_syntax_and_unknown_keys_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "grpc_listen = \"127.0.0.1:0\"\nsample_intervall_seconds = 1\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["serve", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 64);
    assert!(stderr.contains("sample_intervall_seconds"), "{stderr}");
    let (code, _, stderr) = run(&["serve"], &[("CELERY_SCALER_CONFIG", "/nonexistent.yaml")]);
    assert_eq!(code, 64);
    assert!(stderr.contains("/nonexistent.yaml"), "{stderr}");
}

#[tokio::test]
async fn serve_becomes_ready_exports_metrics_and_drains_on_sigterm() {
    let grpc = format!("127.0.0.1:{}", support::free_port());
    let admin = format!("127.0.0.1:{}", support::free_port());
    let proc = spawn(
        &["serve", "--grpc-listen", &grpc, "--admin-listen", &admin],
        &[
            ("CELERY_SCALER_SHUTDOWN_GRACE_SECONDS", "5"),
            ("CELERY_SCALER_LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
        ],
    );
    let admin_addr = admin.parse().unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        match http_get(admin_addr, "/readyz").await {
            Ok((200, _)) => break,
            Ok((503, _)) | Err(_) => {}
            Ok(other) => panic!("unexpected /readyz answer {other:?}"),
        }
        assert!(Instant::now() < deadline, "not ready in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client =
        celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient::connect(format!(
            "http://{grpc}"
        ))
        .await
        .unwrap();
    let dead = dead_address();
    let md = [("address", dead.as_str())];
    client.get_metric_spec(so(&md)).await.unwrap();
    let (code, body) = http_get(admin_addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    for name in [
        "celery_scaler_grpc_requests_total",
        "celery_scaler_grpc_request_duration_seconds",
        "celery_scaler_build_info",
        "process_resident_memory_bytes",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics");
    }

    let mut stream = client.stream_is_active(so(&md)).await.unwrap().into_inner();
    signal(proc.pid(), "-TERM");
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("stream ends within the grace period");
    assert!(matches!(end, Ok(None)), "stream must end with OK: {end:?}");
    let out = tokio::task::spawn_blocking(move || proc.wait(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with('{'), "json logs expected, got {first}");
    assert!(
        stderr.contains("draining") && stderr.contains("stopped"),
        "{stderr}"
    );
}

#[test]
fn inspect_bad_metadata_exits_64_naming_the_key_not_the_password() {
    let (code, stdout, stderr) = run(
        &[
            "inspect",
            "--metadata",
            "address=127.0.0.1:1",
            "--metadata",
            "password=hunter2-secret",
            "--metadata",
            "listLength=lots",
        ],
        &[],
    );
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("listLength"), "{stderr}");
    assert!(!stderr.contains("hunter2-secret") && !stdout.contains("hunter2-secret"));
    let (code, _, stderr) = run(&["inspect", "--metadata", "novalue"], &[]);
    assert_eq!(code, 64);
    assert!(stderr.contains("novalue"), "{stderr}");
}

#[test]
fn inspect_unreachable_broker_exits_69() {
    let dead = dead_address();
    let (code, _, stderr) = run(
        &["inspect", "--metadata", &format!("address={dead}")],
        &[("CELERY_SCALER_REDIS_CONNECT_TIMEOUT_SECONDS", "0.5")],
    );
    assert_eq!(code, 69, "{stderr}");
    assert!(stderr.contains(&dead), "{stderr}");
}

#[test]
fn inspect_json_shape() {
    let redis = support::RedisServer::start();
    write_celery_fixture(&mut redis.conn(0));
    let addr = redis.address();
    let (code, stdout, stderr) = run(
        &[
            "inspect",
            "--metadata",
            &format!("address={addr}"),
            "--metadata",
            "queues=celery,qa",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["broker"], format!("{addr}/0"));
    let q = &v["queues"][0];
    assert_eq!(q["name"], "celery");
    assert_eq!(
        (&q["backlog"], &q["reserved"], &q["scheduled"], &q["stale"]),
        (&6.into(), &1.into(), &1.into(), &1.into())
    );
    assert_eq!(v["queues"][1]["name"], "qa");
    assert_eq!(v["decision"]["metric_value"], 11.0);
    assert_eq!(v["decision"]["target"], 5.0);
    assert_eq!(v["decision"]["active"], true);
    assert_eq!(v["decision"]["metric_name"], "celery-celery-qa");
}

#[test]
fn inspect_named_connection_with_password_from_env() {
    let redis = support::RedisServer::start_with(&["--requirepass", "conn-secret-pw"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        format!(
            "connections:\n  app:\n    address: \"{}\"\n    password_env: TEST_REDIS_PW\n",
            redis.address()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(
        &[
            "inspect",
            "--config",
            file.to_str().unwrap(),
            "--metadata",
            "connection=app",
            "--json",
        ],
        &[("TEST_REDIS_PW", "conn-secret-pw")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("conn-secret-pw") && !stderr.contains("conn-secret-pw"));
    let (code, _, stderr) = run(
        &[
            "inspect",
            "--config",
            file.to_str().unwrap(),
            "--metadata",
            "connection=app",
        ],
        &[("TEST_REDIS_PW", "wrong-password")],
    );
    assert_eq!(code, 69, "{stderr}");
    assert!(stderr.contains("authentication"), "{stderr}");
    assert!(!stderr.contains("wrong-password"));
}

/// A second SIGTERM during a drain held open by an in-flight RPC exits at once with 130.
/// The RPC waits on a "broker" that accepts TCP but never answers.
#[tokio::test]
async fn second_signal_aborts_the_drain_with_130() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let grpc = format!("127.0.0.1:{}", support::free_port());
    let admin = format!("127.0.0.1:{}", support::free_port());
    let proc = spawn(
        &["serve", "--grpc-listen", &grpc, "--admin-listen", &admin],
        &[
            ("CELERY_SCALER_SHUTDOWN_GRACE_SECONDS", "60"),
            ("CELERY_SCALER_REDIS_CONNECT_TIMEOUT_SECONDS", "30"),
        ],
    );
    let admin_addr = admin.parse().unwrap();
    let deadline = Instant::now() + LIMIT;
    while !matches!(http_get(admin_addr, "/readyz").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "not ready in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client =
        celery_scaler::grpc::proto::external_scaler_client::ExternalScalerClient::connect(format!(
            "http://{grpc}"
        ))
        .await
        .unwrap();
    let request = so(&[("address", silent_addr.as_str())]);
    let in_flight = tokio::spawn(async move { client.is_active(request).await });
    // The RPC has reached the scaler once its watch set is registered (the sampler counts
    // it as it starts the tick that hangs on the silent broker).
    let registered = |body: &str| {
        body.lines()
            .any(|l| l.starts_with("celery_scaler_watch_sets{") && l.ends_with(" 1"))
    };
    let deadline = Instant::now() + LIMIT;
    while !matches!(http_get(admin_addr, "/metrics").await, Ok((200, b)) if registered(&b)) {
        assert!(
            Instant::now() < deadline,
            "the RPC never reached the scaler"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(proc.pid(), "-TERM");
    let deadline = Instant::now() + LIMIT;
    while !matches!(http_get(admin_addr, "/readyz").await, Ok((503, _))) {
        assert!(Instant::now() < deadline, "not draining in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !in_flight.is_finished(),
        "the RPC no longer holds the drain open"
    );
    signal(proc.pid(), "-TERM");
    let out = tokio::task::spawn_blocking(move || proc.wait(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130));
    in_flight.abort();
    drop(silent);
}

#[test]
fn simulate_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let (code, _, err) = run(&["simulate", "--scenario", missing.to_str().unwrap()], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("missing.toml"), "{err}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = 3\n[[queues]]\n").unwrap();
    let (code, _, err) = run(&["simulate", "--scenario", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("bad.toml"), "{err}");
    let (code, _, err) = run(&["simulate", "--no-such-flag"], &[]);
    assert_eq!(code, 2, "{err}");
}

// ---- ports: simulate limits, signals, exit log lines (issue 11 items 11 and 13) ----

/// A scenario whose numbers would exhaust memory or never end is refused at once with exit
/// 64, naming each offending key.
#[test]
fn simulate_refuses_scenarios_beyond_the_limits_with_64() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("rate = inf", "600", "arrivals[0].rate"),
        ("rate = 1e9", "600", "arrivals[0].rate"),
        ("rate = 1", "1e12", "duration"),
    ];
    for (i, (arrival, duration, needle)) in cases.iter().enumerate() {
        let body = format!(
            "name = \"hostile\"\nduration = {duration}\ntarget_latency = 10\n[workers]\n\
             concurrency = 4\n[[queues]]\nname = \"celery\"\n\
             duration = {{ kind = \"constant\", value = 1 }}\n\
             arrivals = [{{ kind = \"poisson\", {arrival} }}, \
             {{ kind = \"burst\", at = 1, count = 18446744073709551615 }}]\n"
        );
        let file = dir.path().join(format!("s{i}.toml"));
        std::fs::write(&file, body).unwrap();
        let (code, stdout, stderr) = run(&["simulate", "--scenario", file.to_str().unwrap()], &[]);
        assert_eq!(code, 64, "{arrival}: {stderr}");
        assert!(stderr.contains(needle), "{needle} missing from {stderr}");
        assert!(stderr.contains("arrivals[1].count"), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
}

/// Waits (bounded) until `/readyz` of the binary answers 200.
async fn wait_ready(admin: std::net::SocketAddr) {
    let deadline = Instant::now() + LIMIT;
    while !matches!(http_get(admin, "/readyz").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "not ready in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored: the process keeps serving. SIGTERM
/// then drains and exits 0 with an exit line naming the reason and the code.
#[tokio::test]
async fn hup_and_usr_signals_are_logged_and_ignored_and_every_exit_is_logged() {
    let grpc = format!("127.0.0.1:{}", support::free_port());
    let admin = format!("127.0.0.1:{}", support::free_port());
    let proc = spawn(
        &["serve", "--grpc-listen", &grpc, "--admin-listen", &admin],
        &[
            ("CELERY_SCALER_SHUTDOWN_GRACE_SECONDS", "2"),
            ("CELERY_SCALER_LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
        ],
    );
    let admin_addr = admin.parse().unwrap();
    wait_ready(admin_addr).await;
    for sig in ["-HUP", "-USR1", "-USR2", "-HUP"] {
        signal(proc.pid(), sig);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            http_get(admin_addr, "/healthz").await.unwrap().0,
            200,
            "not serving after {sig}"
        );
    }
    assert_eq!(http_get(admin_addr, "/readyz").await.unwrap().0, 200);
    signal(proc.pid(), "-TERM");
    let out = tokio::task::spawn_blocking(move || proc.wait(Duration::from_secs(10)))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let logged = |sig: &str| {
        lines
            .iter()
            .filter(|l| l["fields"]["signal"] == sig)
            .count()
    };
    assert_eq!(logged("SIGHUP"), 2, "{stderr}");
    assert_eq!(logged("SIGUSR1"), 1, "{stderr}");
    assert_eq!(logged("SIGUSR2"), 1, "{stderr}");
    assert_eq!(logged("SIGTERM"), 1, "{stderr}");
    let last = lines.last().expect("json log lines");
    assert_eq!(last["fields"]["message"], "exiting", "{stderr}");
    assert_eq!(last["fields"]["code"], 0, "{stderr}");
}

/// An exit on an error is logged too: a busy listen address exits 71 with its reason.
#[test]
fn a_failed_start_logs_its_exit_code_and_reason() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let admin = format!("127.0.0.1:{}", support::free_port());
    let (code, _, stderr) = run(
        &[
            "serve",
            "--grpc-listen",
            &busy_addr,
            "--admin-listen",
            &admin,
        ],
        &[("CELERY_SCALER_LOG_FORMAT", "json")],
    );
    assert_eq!(code, 71, "{stderr}");
    let exit: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "exiting")
        .unwrap_or_else(|| panic!("no exit line in {stderr}"));
    assert_eq!(exit["fields"]["code"], 71);
    let reason = exit["fields"]["reason"].as_str().unwrap();
    assert!(reason.contains(&busy_addr), "{reason}");
    drop(busy);
}

/// The port settings reach the binary: with a 1 s handshake / header timeout from the
/// environment, a peer that sends a partial request on either port is closed, and the
/// process keeps serving.
#[tokio::test]
async fn slow_peers_are_closed_by_the_configured_timeouts() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let grpc = format!("127.0.0.1:{}", support::free_port());
    let admin = format!("127.0.0.1:{}", support::free_port());
    let proc = spawn(
        &["serve", "--grpc-listen", &grpc, "--admin-listen", &admin],
        &[
            ("CELERY_SCALER_GRPC_HANDSHAKE_TIMEOUT_SECONDS", "1"),
            ("CELERY_SCALER_ADMIN_HEADER_TIMEOUT_SECONDS", "1"),
        ],
    );
    let admin_addr = admin.parse().unwrap();
    wait_ready(admin_addr).await;
    for (addr, partial) in [
        (grpc.as_str(), &b"PRI * HTTP/2.0\r\n"[..]),
        (admin.as_str(), &b"GET /healthz HTTP/1.1\r\nHost: x\r\n"[..]),
    ] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(partial).await.unwrap();
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(6), async {
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "{addr}: slow peer still open");
    }
    assert_eq!(http_get(admin_addr, "/healthz").await.unwrap().0, 200);
    signal(proc.pid(), "-TERM");
    let out = tokio::task::spawn_blocking(move || proc.wait(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn an_unusable_client_ca_exits_64_before_binding() {
    let certs = support::tls::generate();
    // PEM armour around bytes that are no certificate: readable PEM, unusable CA.
    let ca = certs.dir.path().join("garbage-ca.crt");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let grpc = format!("127.0.0.1:{}", support::free_port());
    let admin = format!("127.0.0.1:{}", support::free_port());
    let (code, stdout, stderr) = run(
        &["serve", "--grpc-listen", &grpc, "--admin-listen", &admin],
        &[
            ("CELERY_SCALER_TLS_CERT", certs.cert.to_str().unwrap()),
            ("CELERY_SCALER_TLS_KEY", certs.key.to_str().unwrap()),
            ("CELERY_SCALER_TLS_CLIENT_CA", ca.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 64, "stderr:\n{stderr}");
    assert!(stderr.contains("CELERY_SCALER_TLS_CLIENT_CA"), "{stderr}");
    assert!(!stderr.contains("serving") && stdout.is_empty(), "{stderr}");
    std::net::TcpListener::bind(&grpc).unwrap();
}
