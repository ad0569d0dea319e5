#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and benchmarks: data in a temporary directory, a free port
# on 127.0.0.1, its unix socket in that directory, trust authentication for the `postgres`
# user. Durability is switched off for speed (fsync=off, synchronous_commit=off,
# full_page_writes=off): a crash of the *machine* may lose its data, which is fine for a
# database that is deleted afterwards, and never for a real one.
#
#   ./scripts/pg.sh start    # start one (if none is running), print its URL
#   ./scripts/pg.sh url      # print the URL of the running one
#   ./scripts/pg.sh stop     # stop it and delete its data
#   ./scripts/pg.sh down     # stop the server but keep its data (to simulate an outage)
#   ./scripts/pg.sh up       # start it again on the same port and data after `down`
#
# TIMETRIGGERS_PG_DURABLE=1 keeps PostgreSQL's durable defaults (fsync, synchronous commits),
# for benchmarks whose numbers should resemble production's.
#
# State (the data directory, the port) is kept in $TIMETRIGGERS_PG_STATE, by default
# ${TMPDIR:-/tmp}/timetriggers-pg-$UID.state: point it elsewhere to run several at once.
#
# The PostgreSQL server binaries are taken from /usr/lib/postgresql/<newest>/bin, else from
# PATH; if there are none and this runs as root, the Debian package `postgresql` is installed.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
set -euo pipefail

state="${TIMETRIGGERS_PG_STATE:-${TMPDIR:-/tmp}/timetriggers-pg-$(id -u).state}"

die() { echo "pg.sh: $*" >&2; exit 1; }

find_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [[ -n "$dir" && -x "$dir/pg_ctl" && -x "$dir/initdb" ]]; then
    echo "$dir"
    return
  fi
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return
  fi
  return 1
}

ensure_bin() {
  local bin
  if bin="$(find_bin)"; then
    echo "$bin"
    return
  fi
  if [[ "$(id -u)" -ne 0 ]]; then
    die "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and PATH); install the Debian package postgresql, or run as root to have it installed"
  fi
  echo "pg.sh: installing PostgreSQL (apt-get install postgresql)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  find_bin || die "PostgreSQL was installed but its binaries were not found"
}

# Runs a command as the user that owns the data: `postgres` when we are root, else ourselves.
as_owner() {
  if [[ "$(id -u)" -eq 0 ]]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

load_state() {
  [[ -f "$state" ]] || return 1
  # shellcheck disable=SC1090
  source "$state"
  [[ -n "${PGSH_DIR:-}" && -n "${PGSH_PORT:-}" && -n "${PGSH_BIN:-}" ]]
}

url() {
  echo "postgres://postgres@127.0.0.1:${PGSH_PORT}/postgres"
}

running() {
  as_owner "$PGSH_BIN/pg_ctl" -D "$PGSH_DIR/data" status >/dev/null 2>&1
}

settings="-c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB"
if [[ "${TIMETRIGGERS_PG_DURABLE:-0}" != 1 ]]; then
  settings="$settings -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi

server_start() {
  # -w waits until it accepts connections.
  as_owner "$PGSH_BIN/pg_ctl" -D "$PGSH_DIR/data" -l "$PGSH_DIR/server.log" -w -t 60 \
    -o "-p $PGSH_PORT -k $PGSH_DIR/sock $settings" start >/dev/null
}

start() {
  if load_state && running; then
    url
    return
  fi
  rm -f "$state"
  PGSH_BIN="$(ensure_bin)"
  PGSH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/timetriggers-pg.XXXXXX")"
  mkdir -p "$PGSH_DIR/sock"
  if [[ "$(id -u)" -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "the user postgres does not exist (install the Debian package postgresql)"
    chown -R postgres: "$PGSH_DIR"
  fi
  chmod 700 "$PGSH_DIR"
  as_owner "$PGSH_BIN/initdb" -D "$PGSH_DIR/data" -U postgres -A trust -E UTF8 \
    --locale=C --no-sync >"$PGSH_DIR/initdb.log" 2>&1 \
    || { cat "$PGSH_DIR/initdb.log" >&2; die "initdb failed"; }
  local tries=0
  while :; do
    PGSH_PORT=$((20000 + RANDOM % 40000))
    if ! port_in_use "$PGSH_PORT" && server_start; then
      break
    fi
    tries=$((tries + 1))
    if [[ $tries -ge 10 ]]; then
      tail -n 20 "$PGSH_DIR/server.log" >&2 || true
      die "could not start PostgreSQL"
    fi
  done
  printf 'PGSH_DIR=%q\nPGSH_PORT=%q\nPGSH_BIN=%q\n' "$PGSH_DIR" "$PGSH_PORT" "$PGSH_BIN" >"$state"
  url
}

stop() {
  load_state || return 0
  as_owner "$PGSH_BIN/pg_ctl" -D "$PGSH_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PGSH_DIR"
  rm -f "$state"
}

case "${1:-}" in
  start) start ;;
  url)
    load_state && running || die "no PostgreSQL started by pg.sh is running (state: $state)"
    url
    ;;
  stop) stop ;;
  down)
    load_state || die "nothing to stop (state: $state)"
    as_owner "$PGSH_BIN/pg_ctl" -D "$PGSH_DIR/data" -m fast -w stop >/dev/null
    ;;
  up)
    load_state || die "nothing to start (state: $state)"
    running || server_start
    ;;
  *)
    echo "usage: $0 start|url|stop|down|up" >&2
    exit 2
    ;;
esac
