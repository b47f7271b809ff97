//! The `celery-scaler` binary: parses the command line and hands over to the library.
//!
//! Exit codes: 0 success (also after a SIGTERM drain); 2 bad command line (clap); 64 invalid
//! configuration or metadata; 69 broker unavailable (`inspect`); 70 the server failed; 71 a
//! listener could not be bound; 77 the broker is refused by `broker_policy` (`inspect`); 130 a
//! second signal aborted the drain. `simulate`: see `SimError::exit_code` (64 unreadable or
//! invalid scenario, 73 an output file that cannot be written, 70 an internal error). `serve`
//! logs every exit with its reason and code.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use celery_scaler::broker::BrokerError;
use celery_scaler::config::{self, Config, Flags, LogFormat};
use celery_scaler::scaler::{Scaler, ScalerError};
use celery_scaler::{inspect, server};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "celery-scaler",
    version,
    about = "KEDA external scaler for Celery on Redis"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve KEDA's ExternalScaler over gRPC (every flag also from CELERY_SCALER_<FLAG>).
    Serve {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_name = "ADDR")]
        grpc_listen: Option<String>,
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<String>,
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<String>,
        #[arg(long, value_name = "FILE")]
        tls_key: Option<String>,
        #[arg(long, value_name = "FILE")]
        tls_client_ca: Option<String>,
    },
    /// One-shot: what the scaler sees for this trigger metadata, and what it decides.
    Inspect {
        #[command(flatten)]
        common: Common,
        #[arg(long = "metadata", value_name = "KEY=VALUE", required = true)]
        metadata: Vec<String>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replay a workload through a model of KEDA + the HPA and compare scaling policies.
    Simulate {
        #[command(flatten)]
        args: celery_scaler::simulate::SimulateArgs,
    },
}

#[derive(Args)]
struct Common {
    #[arg(long, value_name = "FILE", env = "CELERY_SCALER_CONFIG")]
    config: Option<PathBuf>,
    /// text | json
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
}

fn load(common: &Common, flags: Flags) -> Result<Config, ExitCode> {
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let flags = Flags {
        log_format: common.log_format.clone(),
        ..flags
    };
    config::load(common.config.as_deref(), &env, &flags).map_err(|e| {
        eprint!("celery-scaler: {e}");
        ExitCode::from(64)
    })
}

fn init_tracing(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve {
            common,
            grpc_listen,
            admin_listen,
            tls_cert,
            tls_key,
            tls_client_ca,
        } => {
            let flags = Flags {
                grpc_listen,
                admin_listen,
                tls_cert,
                tls_key,
                tls_client_ca,
                ..Flags::default()
            };
            match load(&common, flags) {
                Ok(config) => serve(config).await,
                Err(code) => code,
            }
        }
        Command::Inspect {
            common,
            metadata,
            json,
        } => match load(&common, Flags::default()) {
            Ok(config) => inspect_once(config, &metadata, json).await,
            Err(code) => code,
        },
        Command::Simulate { args } => match celery_scaler::simulate::run(&args) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("celery-scaler simulate: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}

async fn serve(config: Config) -> ExitCode {
    init_tracing(config.log_format, "info");
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let bind = |addr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| exit(71, &format!("cannot listen on {addr}: {e}")))
    };
    let (grpc, admin) = match (
        bind(config.grpc_listen).await,
        bind(config.admin_listen).await,
    ) {
        (Ok(g), Ok(a)) => (g, a),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let shutdown = CancellationToken::new();
    let signals = match server::spawn_signal_handler(shutdown.clone()) {
        Ok(handle) => handle,
        Err(e) => return exit(71, &format!("cannot install signal handlers: {e}")),
    };
    let result = server::run(config, grpc, admin, shutdown).await;
    signals.abort();
    match result {
        Ok(()) => exit(0, "clean shutdown"),
        Err(e) => exit(70, &format!("the server failed: {e}")),
    }
}

/// Logs why `serve` ends and with which code (every exit of `serve` after logging starts
/// goes through here, except the second-signal exit, which logs its own line).
fn exit(code: u8, reason: &str) -> ExitCode {
    if code == 0 {
        tracing::info!(code, reason, "exiting");
    } else {
        tracing::error!(code, reason, "exiting");
    }
    ExitCode::from(code)
}

async fn inspect_once(config: Config, pairs: &[String], json: bool) -> ExitCode {
    init_tracing(config.log_format, "warn");
    server::install_crypto_provider();
    let metadata = match inspect::parse_pairs(pairs) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("celery-scaler inspect: {e}");
            return ExitCode::from(64);
        }
    };
    let scaler = Scaler::from_config(&config);
    let registry = scaler.registry().clone();
    let result = scaler.evaluate(&metadata).await;
    registry.shutdown().await;
    match result {
        Ok(eval) if json => println!("{}", inspect::to_json(&eval)),
        Ok(eval) => print!("{}", inspect::to_text(&eval)),
        Err(e) => {
            match &e {
                // The operator may see what a tenant may not.
                ScalerError::Broker(BrokerError::Hidden { detail, .. }) => {
                    eprintln!("celery-scaler inspect: {detail}")
                }
                ScalerError::Denied(d) => eprintln!("celery-scaler inspect: {e}: {}", d.reason),
                _ => eprintln!("celery-scaler inspect: {e}"),
            }
            return ExitCode::from(match e {
                ScalerError::Denied(_) => 77,
                ScalerError::Broker(_) => 69,
                ScalerError::Metadata(_) | ScalerError::UnknownMetric { .. } => 64,
            });
        }
    }
    ExitCode::SUCCESS
}
