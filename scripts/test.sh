#!/usr/bin/env bash
# The one test command: formatting, lints, docs, every test (unit, conformance, router, end to
# end), a smoke run of the load tool so it never rots, and the examples.
#
#   ./scripts/test.sh
#
# The PostgreSQL tests (the conformance suite on PostgreSQL, tests/postgres.rs, the server's
# pg_cluster and pg_outage end-to-end tests) use the server named by
# TIMETRIGGERS_TEST_DATABASE_URL. When it is unset, this script starts a throwaway PostgreSQL
# with scripts/pg.sh (installing the Debian package if needed) and stops it on exit, so they
# always run: without a database they fail, they are never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [[ -z "${TIMETRIGGERS_TEST_DATABASE_URL:-}" ]]; then
  step "throwaway PostgreSQL (scripts/pg.sh)"
  pg_state_dir="$(mktemp -d "${TMPDIR:-/tmp}/timetriggers-test-pg.XXXXXX")"
  export TIMETRIGGERS_PG_STATE="$pg_state_dir/pg.state"
  stop_pg() {
    ./scripts/pg.sh stop || true
    rm -rf "$pg_state_dir"
  }
  trap stop_pg EXIT
  TIMETRIGGERS_TEST_DATABASE_URL="$(./scripts/pg.sh start)"
  export TIMETRIGGERS_TEST_DATABASE_URL
  echo "TIMETRIGGERS_TEST_DATABASE_URL=$TIMETRIGGERS_TEST_DATABASE_URL"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "cargo test (workspace)"
cargo test --workspace --no-fail-fast

step "load tool smoke run (debug build)"
cargo build -p timetriggers-server -p example-loadtest -p example-embedded -p example-axum-mount \
  -p example-custom-dispatcher -p example-custom-store
./target/debug/example-loadtest --smoke --server-bin ./target/debug/timetriggers-server

step "examples"
./target/debug/example-embedded
./target/debug/example-axum-mount
./target/debug/example-custom-dispatcher
./target/debug/example-custom-store

step "all checks passed"
