# Routine commands. `make run` and `make test` are the README's quick start.
.PHONY: build run test lint fmt demo bench bench-scaling validate-deploy clean

build:
	cargo build --release

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt

demo:
	bash deploy/app/demo.sh

bench:
	cargo bench

bench-scaling:
	cargo run --release --example bench_scaling

validate-deploy:
	bash deploy/validate.sh

clean:
	cargo clean
	rm -rf .work .venv .tools
