//! Runs `celery-scaler simulate` until the lead wires it into `main.rs`:
//! `cargo run --example simulate -- --scenario benches/scenarios/steady.toml [--json]`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: celery_scaler::simulate::SimulateArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match celery_scaler::simulate::run(&cli.args) {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("simulate: {e}");
            std::process::ExitCode::from(64)
        }
    }
}
