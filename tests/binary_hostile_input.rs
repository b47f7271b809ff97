//! The real `celery-scaler` binary against hostile or mistaken input: a TLS key that does not
//! match its certificate, config syntax errors and credential settings that must not be
//! echoed, and a ScaledObject name that tries to forge a text log line.
#![allow(clippy::unwrap_used)]

mod service_support;
mod support;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use service_support::*;
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_celery-scaler");
const LIMIT: Duration = Duration::from_secs(20);

/// Kills the child on drop so a failing test leaves nothing behind.
struct Proc(Option<Child>);

impl Proc {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
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

/// Runs to completion: (exit code, stdout + stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Proc::spawn(args, env).wait(LIMIT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn mismatched_tls_key_exits_64_before_binding() {
    let server = support::tls::generate();
    let other = support::tls::generate();
    let grpc = format!("127.0.0.1:{}", support::free_port());
    let admin = format!("127.0.0.1:{}", support::free_port());
    let (code, out) = run(
        &[
            "serve",
            "--grpc-listen",
            &grpc,
            "--admin-listen",
            &admin,
            "--tls-cert",
            server.cert.to_str().unwrap(),
            "--tls-key",
            other.key.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("--tls-key") && out.contains("does not belong"),
        "{out}"
    );
    std::net::TcpListener::bind(&grpc).unwrap();
    std::net::TcpListener::bind(&admin).unwrap();
}

#[test]
fn config_errors_never_echo_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "Sup3r-Secret-Redis-Pw";
    let toml = dir.path().join("c.toml");
    std::fs::write(
        &toml,
        format!("[connections.app]\naddress = \"h:6379\"\npassword = \"{secret}\n"),
    )
    .unwrap();
    let (code, out) = run(&["serve", "--config", toml.to_str().unwrap()], &[]);
    assert_eq!(code, 64, "{out}");
    assert!(!out.contains(secret), "{out}");
    assert!(out.contains("line 3"), "{out}");

    let yaml = dir.path().join("c.yaml");
    std::fs::write(
        &yaml,
        format!("connections:\n  app:\n    address: \"h:6379\"\n    password_env: \"{secret}\"\n"),
    )
    .unwrap();
    let (code, out) = run(&["serve", "--config", yaml.to_str().unwrap()], &[]);
    assert_eq!(code, 64, "{out}");
    assert!(!out.contains(secret), "{out}");
    assert!(out.contains("connections.app.password_env"), "{out}");
}

/// A newline in `ScaledObjectRef.name` is refused with INVALID_ARGUMENT by every RPC, and
/// no log line of the text format starts with what followed it.
#[tokio::test]
async fn scaled_object_name_cannot_forge_a_log_line() {
    let grpc = format!("127.0.0.1:{}", support::free_port());
    let admin = format!("127.0.0.1:{}", support::free_port());
    let proc = Proc::spawn(
        &["serve", "--grpc-listen", &grpc, "--admin-listen", &admin],
        &[
            ("CELERY_SCALER_LOG_FORMAT", "text"),
            ("CELERY_SCALER_REDIS_CONNECT_TIMEOUT_SECONDS", "0.3"),
            ("CELERY_SCALER_SHUTDOWN_GRACE_SECONDS", "1"),
            ("RUST_LOG", "debug"),
            ("NO_COLOR", "1"),
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
    let forged = "FORGED-LOG-LINE INFO celery_scaler: all good";
    let dead = dead_address();
    let mut bad = so(&[("address", &dead)]);
    bad.name = format!("worker\n{forged}");
    let mut bad_ns = so(&[("address", &dead)]);
    bad_ns.namespace = format!("celery\n{forged}");
    for r in [bad, bad_ns] {
        let codes = [
            client.get_metric_spec(r.clone()).await.map(|_| ()),
            client.is_active(r.clone()).await.map(|_| ()),
            client.stream_is_active(r.clone()).await.map(|_| ()),
            client
                .get_metrics(celery_scaler::grpc::proto::GetMetricsRequest {
                    scaled_object_ref: Some(r.clone()),
                    metric_name: "celery-celery".into(),
                })
                .await
                .map(|_| ()),
        ];
        for c in codes {
            let status = c.expect_err("a name with a newline is refused");
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().contains("scaledObjectRef."), "{status:?}");
        }
    }
    // A well-formed name is still served.
    client
        .get_metric_spec(so(&[("address", &dead)]))
        .await
        .unwrap();
    let pid = proc.0.as_ref().unwrap().id();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let out = tokio::task::spawn_blocking(move || proc.wait(LIMIT))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stopped"),
        "the log was captured:\n{stderr}"
    );
    for line in stderr.lines() {
        assert!(
            !line.starts_with("FORGED-LOG-LINE"),
            "forged line in:\n{stderr}"
        );
    }
}
