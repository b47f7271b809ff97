//! Runs the scenario library and writes `docs/benchmarks/scaling.md`
//! (`cargo run --release --example bench_scaling [-- SCENARIO_DIR OUT_FILE]`).

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "benches/scenarios".into()));
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "docs/benchmarks/scaling.md".into()),
    );
    match celery_scaler::simulate::bench::bench_scaling(&dir) {
        Ok(md) => match std::fs::write(&out, md) {
            Ok(()) => {
                println!("wrote {}", out.display());
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench_scaling: {}: {e}", out.display());
                std::process::ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("bench_scaling: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
