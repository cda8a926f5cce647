# Thin aliases; the logic lives in scripts/ and in Rust.
.PHONY: setup run test bench chaos fmt lint

setup:
	scripts/setup.sh

run:
	scripts/run.sh

test:
	scripts/test.sh

bench:
	scripts/bench.sh

chaos:
	scripts/chaos.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
