#!/usr/bin/env bash
# The performance figures of docs/performance.md, in one command:
#
#   ./scripts/bench.sh                 # every workload on SQLite and PostgreSQL
#   ./scripts/bench.sh sqlite          # SQLite only
#   ./scripts/bench.sh postgres        # PostgreSQL only (one and two instances)
#
# Builds the release server and the load tool, runs W1 (20,000 triggers due at one instant),
# W2 (500/s for 30 s) and W3 (W2 over 1,000,000 pending triggers) through the HTTP API, and
# appends each run's JSON line to target/bench/results.jsonl (the tables go to the terminal).
# PostgreSQL: TIMETRIGGERS_BENCH_DATABASE_URL names a server to use (a database per run is
# created on it); unset, a throwaway one is started with scripts/pg.sh and stopped at the end.
# Each run spawns its own server(s) on a fresh database. W3 seeds its backlog through
# /schedule (about two minutes on SQLite, longer on PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."

which="${1:-all}"
out=target/bench
mkdir -p "$out"
results="$out/results.jsonl"

cargo build --release -p timetriggers-server -p example-loadtest
tool=./target/release/example-loadtest

run() {
  local label="$1"
  shift
  printf '\n==> %s: %s\n' "$label" "$*"
  "$tool" "$@" | tee "$out/last.txt"
  tail -n 1 "$out/last.txt" >>"$results"
}

if [[ "$which" == all || "$which" == sqlite ]]; then
  run "SQLite W1" --workload w1
  run "SQLite W2" --workload w2
  run "SQLite W3" --workload w3
fi

if [[ "$which" == all || "$which" == postgres ]]; then
  base="${TIMETRIGGERS_BENCH_DATABASE_URL:-}"
  if [[ -z "$base" ]]; then
    export TIMETRIGGERS_PG_STATE="$out/pg.state"
    trap './scripts/pg.sh stop || true' EXIT
    base="$(./scripts/pg.sh start)"
  fi
  server="${base%/*}"
  # A new database for every run (called in a command substitution, so no shared counter).
  fresh() {
    local db="tt_bench_$(date +%s%N)"
    psql "$base" -qc "CREATE DATABASE $db" >/dev/null
    echo "$server/$db"
  }
  run "PostgreSQL W1, 1 instance" --workload w1 --database-url "$(fresh)"
  run "PostgreSQL W1, 2 instances" --workload w1 --database-url "$(fresh)" --instances 2
  run "PostgreSQL W2, 1 instance" --workload w2 --database-url "$(fresh)"
  run "PostgreSQL W3, 1 instance" --workload w3 --database-url "$(fresh)"
fi

printf '\nJSON lines appended to %s\n' "$results"
