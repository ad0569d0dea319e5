#!/usr/bin/env bash
# The one test command: formatting, lints, every test (unit, conformance, router, end to end),
# and a smoke run of the load tool so it never rots.
#
#   ./scripts/test.sh
#
# Later: when TIMETRIGGERS_TEST_DATABASE_URL is unset, a throwaway PostgreSQL is started with
# scripts/pg.sh so the PostgreSQL tests always run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (workspace)"
cargo test --workspace --no-fail-fast

step "load tool smoke run (debug build)"
cargo build -p timetriggers-server -p example-loadtest -p example-embedded
./target/debug/example-loadtest --smoke --server-bin ./target/debug/timetriggers-server

step "examples"
./target/debug/example-embedded

step "all checks passed"
