#!/usr/bin/env bash
# Load benchmark of the request path, as ratios against a floor measured in the same run.
#
# Usage: scripts/bench-load.sh            (from anywhere; needs root or sudo to install wrk)
#
# For each backend (SQLite in a temp dir; PostgreSQL too when ACCESSKEYD_TEST_POSTGRES_URL is
# set, in a fresh database accesskeyd_bench_<pid> dropped at the end) it starts the daemon
# with default settings (log level warn), creates an admin, logs in, creates a key, and then
# runs with the same wrk settings, one after the other:
#   bare-1    GET /bare of examples/bare_axum.rs (a bare axum route: the floor)
#   basic     GET /api/auth/verify, Authorization: Basic base64(keyId:password) (cached key)
#   token     GET /api/auth/verify, x-sq-auth: <session token>
#   healthz   GET /healthz of the daemon (no auth, no database; a second reference)
#   bare-2    the bare route again; the floor is the mean of bare-1 and bare-2
# then (TLS=1, the default) restarts the daemon with HTTPS (server.tls_cert_file and
# tls_key_file: a P-256 certificate from a throwaway CA made here with openssl) and runs
#   tls-bare-1  GET /bare of bare_axum --tls: the bare route behind the daemon's own rustls
#               configuration (the TLS floor)
#   tls-basic   the Basic case over https
#   tls-bare-2  the TLS floor again; the TLS floor is the mean of tls-bare-1 and tls-bare-2
# and prints req/s, the ratio to the floor, p50/p99 latency and the daemon's peak RSS
# (the https case's ratio both to the plain floor and to the TLS floor).
# Any non-2xx/3xx answer fails the run (a fast benchmark of 401s is worthless).
#
# Environment:
#   ACCESSKEYD_TEST_POSTGRES_URL  e.g. postgres://postgres@127.0.0.1:5432/postgres (optional)
#   BENCH_SRC          source tree of the daemon to benchmark (default: this repository),
#                      e.g. a `git worktree` of an older commit (ACCESSKEYD_SRC is accepted
#                      too). Without examples/bare_axum.rs there, the floor is built here.
#   Other ACCESSKEYD_* variables and RUST_LOG are cleared: the daemon would read them.
#   CARGO_TARGET_DIR   default /var/tmp/accesskeyd-bench-target
#   DURATION           seconds per case (default 10)
#   WRK_ARGS           default "-t2 -c64 -d${DURATION}s" (--latency is always added)
#   WARMUP             seconds of the warm-up run per case, always -t2 -c64 (default 2;
#                      0 = the curl checks only)
#   BACKENDS           "sqlite postgres" (default; postgres only with the URL set)
#   BUILD_TIMEOUT      seconds allowed for the release build (default 3600)
#   TLS                1 (default): the https cases too; 0: plain HTTP only. Needs openssl,
#                      and a BENCH_SRC that has server.tls_cert_file.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$(cd "${BENCH_SRC:-${ACCESSKEYD_SRC:-$ROOT}}" && pwd)"
cd "$ROOT"
PG_URL="${ACCESSKEYD_TEST_POSTGRES_URL:-}"
# The daemon reads every ACCESSKEYD_* variable as a configuration key (and RUST_LOG as its
# log filter): none from the caller's shell may change what is measured.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(ACCESSKEYD_|RUST_LOG$)' || true)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/accesskeyd-bench-target}"
DURATION="${DURATION:-10}"
DURATION="${DURATION%s}"
WRK_ARGS="${WRK_ARGS:-"-t2 -c64 -d${DURATION}s"}"
WARMUP="${WARMUP:-2}"
WARMUP="${WARMUP%s}"
BACKENDS="${BACKENDS:-sqlite postgres}"
BUILD_TIMEOUT="${BUILD_TIMEOUT:-3600}"
TLS="${TLS:-1}"
# Longest a single wrk run may take: its duration (from WRK_ARGS if given there) plus slack.
wrk_secs="$(sed -nE 's/.*(-d|--duration)[ =]?([0-9]+)s?( .*|$)/\2/p' <<<"$WRK_ARGS")"
WRK_TIMEOUT="${WRK_TIMEOUT:-$(( ${wrk_secs:-$DURATION} + 60 ))}"

die() { echo "bench-load: $*" >&2; exit 1; }

# --- wrk ---------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian's wrk"
  timeout --foreground 600 $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout --foreground 600 $SUDO apt-get install -y -qq wrk
fi
command -v curl >/dev/null 2>&1 || die "curl is required"
[ "$TLS" != 1 ] || command -v openssl >/dev/null 2>&1 || die "openssl is required for the TLS cases (or TLS=0)"

# --- state and cleanup -------------------------------------------------------------------
WORK="$(mktemp -d /tmp/accesskeyd-bench.XXXXXX)"
PIDS=()
PG_DB=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    # Bounded: SIGKILL whatever did not stop within 5 seconds.
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [ -n "$PG_DB" ]; then
    timeout --foreground 30 psql "$PG_URL" -q -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 \
      || echo "bench-load: could not drop database $PG_DB" >&2
  fi
  rm -rf "$WORK"
  [ "$rc" -eq 0 ] || echo "bench-load: stopped (exit status $rc); servers stopped, temporary data removed" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop_pid() { # pid: stop one process we started, bounded
  local p="$1"
  kill "$p" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- build -------------------------------------------------------------------------------
BIN="$WORK/bin"
mkdir -p "$BIN"
# The daemon from BENCH_SRC; the floor from there if it has it, else from this repository
# (an older commit may predate the example). Binaries are copied out at once: two trees
# share one target dir (and its dependency builds) but write the same output paths.
bare_src="$SRC"
[ -f "$SRC/examples/bare_axum.rs" ] || bare_src="$ROOT"
echo "building (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
if [ "$bare_src" = "$SRC" ]; then
  (cd "$SRC" && timeout --foreground "$BUILD_TIMEOUT" cargo build --release --quiet --bin accesskeyd --example bare_axum) \
    || die "release build of $SRC failed"
  cp "$CARGO_TARGET_DIR/release/examples/bare_axum" "$BIN/"
else
  (cd "$bare_src" && timeout --foreground "$BUILD_TIMEOUT" cargo build --release --quiet --example bare_axum) \
    || die "release build of the bare_axum example in $bare_src failed"
  cp "$CARGO_TARGET_DIR/release/examples/bare_axum" "$BIN/"
  (cd "$SRC" && timeout --foreground "$BUILD_TIMEOUT" cargo build --release --quiet --bin accesskeyd) \
    || die "release build of $SRC failed"
fi
cp "$CARGO_TARGET_DIR/release/accesskeyd" "$BIN/"
COMMIT="$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY=""
[ -z "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ] || DIRTY=" + uncommitted changes"

# --- the floor ---------------------------------------------------------------------------
: >"$WORK/bare.out"
"$BIN/bare_axum" 127.0.0.1:0 >"$WORK/bare.out" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
BARE_URL=""
for _ in $(seq 100); do
  BARE_URL="$(sed -nE 's#^bare_axum listening on (http://[0-9.:]+)$#\1#p' "$WORK/bare.out")"
  [ -n "$BARE_URL" ] && break
  kill -0 "$BARE_PID" 2>/dev/null || { cat "$WORK/bare.out" >&2; die "bare_axum did not start"; }
  sleep 0.1
done
[ -n "$BARE_URL" ] || die "bare_axum did not report its address within 10 s"
BARE_URL="$BARE_URL/bare"

# --- the TLS certificate and the TLS floor -------------------------------------------------
TLS_DIR="$WORK/tls"
TLS_BARE_URL=""
if [ "$TLS" = 1 ]; then
  mkdir -p "$TLS_DIR"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=accesskeyd bench CA" -keyout ca.key -out ca.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.pem
  ) >"$WORK/openssl.out" 2>&1 || { cat "$WORK/openssl.out" >&2; die "openssl could not make the test certificate"; }
  "$BIN/bare_axum" 127.0.0.1:0 --tls "$TLS_DIR/server.pem" "$TLS_DIR/server.key" >"$WORK/tls-bare.out" 2>&1 &
  TLS_BARE_PID=$!
  PIDS+=("$TLS_BARE_PID")
  for _ in $(seq 100); do
    TLS_BARE_URL="$(sed -nE 's#^bare_axum listening on (https://[0-9.:]+)$#\1#p' "$WORK/tls-bare.out")"
    [ -n "$TLS_BARE_URL" ] && break
    kill -0 "$TLS_BARE_PID" 2>/dev/null || { cat "$WORK/tls-bare.out" >&2; die "bare_axum --tls did not start"; }
    sleep 0.1
  done
  [ -n "$TLS_BARE_URL" ] || die "bare_axum --tls did not report its address within 10 s"
  TLS_BARE_URL="$TLS_BARE_URL/bare"
fi

# --- helpers -----------------------------------------------------------------------------
# run_wrk NAME URL [HEADER]: one wrk run; output in $WORK/NAME.wrk.
run_wrk() {
  local name="$1" url="$2" header="${3:-}"
  local -a cmd
  # shellcheck disable=SC2206  # WRK_ARGS is split into words on purpose
  cmd=(wrk $WRK_ARGS --latency)
  [ -z "$header" ] || cmd+=(-H "$header")
  cmd+=("$url")
  timeout --foreground "$WRK_TIMEOUT" "${cmd[@]}" >"$WORK/$name.wrk" 2>&1 \
    || { cat "$WORK/$name.wrk" >&2; die "wrk failed for $name"; }
  grep -q '^Requests/sec:' "$WORK/$name.wrk" \
    || { cat "$WORK/$name.wrk" >&2; die "no Requests/sec from wrk for $name"; }
  printf '  %-8s %12s req/s\n' "$name" "$(rps "$name")"
}
rps() { awk '/^Requests\/sec:/ {print $2}' "$WORK/$1.wrk"; }
pct() { awk -v p="$2%" '$1 == p {print $2; exit}' "$WORK/$1.wrk"; }
non2xx() { awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$WORK/$1.wrk"; }
sockerr() { sed -nE 's/^ *Socket errors: *//p' "$WORK/$1.wrk"; }
total_req() { sed -nE 's/^ *([0-9]+) requests in .*/\1/p' "$WORK/$1.wrk"; }

# warm NAME URL [HEADER]: a short unmeasured run.
warm() {
  [ "$WARMUP" -gt 0 ] || return 0
  local name="$1" url="$2" header="${3:-}"
  local -a cmd=(wrk -t2 -c64 "-d${WARMUP}s")
  [ -z "$header" ] || cmd+=(-H "$header")
  cmd+=("$url")
  timeout --foreground $((WARMUP + 30)) "${cmd[@]}" >"$WORK/warm-$name.wrk" 2>&1 \
    || { cat "$WORK/warm-$name.wrk" >&2; die "warm-up wrk failed for $name"; }
}

# expect_200 WHAT URL HEADER: one request, must be 200 with x-auth-user: benchadmin (https
# URLs are checked against the bench CA).
expect_200() {
  local what="$1" url="$2" header="$3" out
  out="$(curl -sS --max-time 30 --cacert "$TLS_DIR/ca.pem" -o /dev/null -D - -H "$header" "$url")" \
    || die "$what: request failed"
  head -n1 <<<"$out" | grep -q ' 200' || { echo "$out" >&2; die "$what: not 200"; }
  tr -d '\r' <<<"$out" | grep -qi '^x-auth-user: benchadmin$' \
    || { echo "$out" >&2; die "$what: no x-auth-user: benchadmin"; }
}

SUMMARY="$WORK/summary"
: >"$SUMMARY"

# --- one backend -------------------------------------------------------------------------
bench_backend() {
  local backend="$1" db_url dir="$WORK/$1"
  mkdir -p "$dir"
  case "$backend" in
    sqlite) db_url="sqlite://$dir/bench.db" ;;
    postgres)
      PG_DB="accesskeyd_bench_$$"
      timeout --foreground 30 psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >/dev/null \
        || { PG_DB=""; die "cannot create database accesskeyd_bench_$$ at $PG_URL"; }
      # Same server and credentials, the new database, the query string kept.
      db_url="$(sed -E "s#^(postgres(ql)?://[^/?]*)(/[^?]*)?(\\?.*)?\$#\\1/$PG_DB\\4#" <<<"$PG_URL")"
      ;;
  esac
  local port
  port="$(free_port)"
  local cfg="$dir/accesskeyd.toml" url="http://127.0.0.1:$port"
  cat >"$cfg" <<EOF
# Written by scripts/bench-load.sh: defaults (argon2 included) except the address, the
# database and the log level.
[server]
listen = "127.0.0.1:$port"
# No management listener: it would collide with a daemon running on 127.0.0.1:9464.
management_listen = ""

[database]
url = "$db_url"

[log]
level = "warn"
EOF
  local pw
  pw="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
  printf '%s\n' "$pw" | timeout --foreground 120 "$BIN/accesskeyd" --config "$cfg" local-user add benchadmin --admin \
    >"$dir/local-user.out" 2>&1 || { cat "$dir/local-user.out" >&2; die "$backend: local-user add failed"; }

  "$BIN/accesskeyd" --config "$cfg" serve >"$dir/daemon.log" 2>&1 &
  local daemon_pid=$!
  PIDS+=("$daemon_pid")
  local up=""
  for _ in $(seq 300); do
    if curl -sf --max-time 2 -o /dev/null "$url/healthz"; then up=1; break; fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$up" ] || { cat "$dir/daemon.log" >&2; die "$backend: the daemon did not answer /healthz within 30 s"; }

  local token
  token="$(curl -sS --max-time 30 -o /dev/null -D - -H 'content-type: application/json' \
      -d "{\"username\":\"benchadmin\",\"password\":\"$pw\"}" "$url/api/auth/login" \
    | awk -F': ' 'tolower($1)=="x-sq-auth" {print $2}' | tr -d '\r')"
  [ -n "$token" ] || die "$backend: login gave no x-sq-auth token"
  local key key_id key_pw
  key="$(curl -sS --max-time 30 -H "x-sq-auth: $token" -H 'content-type: application/json' \
    -d '{"name":"bench"}' "$url/api/accesskeys")"
  key_id="$(sed -nE 's/.*"keyId" *: *"([^"]+)".*/\1/p' <<<"$key")"
  key_pw="$(sed -nE 's/.*"password" *: *"([^"]+)".*/\1/p' <<<"$key")"
  [ -n "$key_id" ] && [ -n "$key_pw" ] || { echo "$key" >&2; die "$backend: key creation failed"; }
  local basic="Authorization: Basic $(printf '%s:%s' "$key_id" "$key_pw" | base64 -w0)"
  local sq="x-sq-auth: $token"

  # Warm-up: the first Basic use pays argon2 and fills the credential cache; the short runs
  # open the database pool's connections and grow the allocators.
  expect_200 "$backend basic" "$url/api/auth/verify" "$basic"
  expect_200 "$backend token" "$url/api/auth/verify" "$sq"
  curl -sf --max-time 10 -o /dev/null "$BARE_URL" || die "bare route does not answer"
  warm bare "$BARE_URL"
  warm basic "$url/api/auth/verify" "$basic"
  warm token "$url/api/auth/verify" "$sq"
  warm healthz "$url/healthz"

  echo "$backend: wrk $WRK_ARGS --latency, one case after the other"
  local b="${backend}-"
  run_wrk "${b}bare-1" "$BARE_URL"
  run_wrk "${b}basic" "$url/api/auth/verify" "$basic"
  run_wrk "${b}token" "$url/api/auth/verify" "$sq"
  run_wrk "${b}healthz" "$url/healthz"
  run_wrk "${b}bare-2" "$BARE_URL"

  kill -0 "$daemon_pid" 2>/dev/null || { tail -n 20 "$dir/daemon.log" >&2; die "$backend: the daemon died during the run"; }
  local hwm
  hwm="$(awk '/^VmHWM:/ {printf "%.1f MiB", $2/1024}' "/proc/$daemon_pid/status")"

  local floor
  floor="$(awk -v a="$(rps "${b}bare-1")" -v c="$(rps "${b}bare-2")" 'BEGIN {printf "%.2f", (a + c) / 2}')"
  local failed=""
  {
    echo
    echo "== $backend  (accesskeyd $COMMIT$DIRTY, $(date -u +%Y-%m-%dT%H:%MZ), wrk $WRK_ARGS) =="
    printf '%-34s %12s %7s %10s %10s %s\n' case req/s ratio p50 p99 notes
    local c label n e
    for c in bare-1 basic token healthz bare-2; do
      case "$c" in
        bare-1) label="bare axum route (1st)" ;;
        basic) label="Basic cached key, /api/auth/verify" ;;
        token) label="x-sq-auth token, /api/auth/verify" ;;
        healthz) label="daemon /healthz" ;;
        bare-2) label="bare axum route (2nd)" ;;
      esac
      n="$(non2xx "$b$c")"
      e="$(sockerr "$b$c")"
      local notes=""
      [ -z "$n" ] || notes="NON-2xx: $n of $(total_req "$b$c")"
      [ -z "$e" ] || notes="${notes:+$notes; }socket errors: $e"
      printf '%-34s %12s %7s %10s %10s %s\n' "$label" "$(rps "$b$c")" \
        "$(awk -v r="$(rps "$b$c")" -v f="$floor" 'BEGIN {printf "%.2f", r / f}')" \
        "$(pct "$b$c" 50)" "$(pct "$b$c" 99)" "$notes"
      [ -z "$n" ] || failed="$failed $c"
    done
    printf '%-34s %12s %7s\n' "floor = mean of the two bare runs" "$floor" "1.00"
    echo "bare runs differ by $(awk -v a="$(rps "${b}bare-1")" -v c="$(rps "${b}bare-2")" \
      'BEGIN {d = (c - a) / ((a + c) / 2) * 100; printf "%+.1f %%", d}') (2nd vs 1st)"
    echo "daemon peak RSS (VmHWM): $hwm"
  } >"$dir/table"
  cat "$dir/table"
  cat "$dir/table" >>"$SUMMARY"

  stop_pid "$daemon_pid"

  # --- the same daemon and database over HTTPS ---
  if [ "$TLS" = 1 ]; then
    local tls_url="https://127.0.0.1:$port"
    ACCESSKEYD_SERVER__TLS_CERT_FILE="$TLS_DIR/server.pem" ACCESSKEYD_SERVER__TLS_KEY_FILE="$TLS_DIR/server.key" \
      "$BIN/accesskeyd" --config "$cfg" serve >"$dir/daemon-tls.log" 2>&1 &
    daemon_pid=$!
    PIDS+=("$daemon_pid")
    up=""
    for _ in $(seq 300); do
      if curl -sf --max-time 2 --cacert "$TLS_DIR/ca.pem" -o /dev/null "$tls_url/healthz"; then up=1; break; fi
      kill -0 "$daemon_pid" 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$up" ] || { cat "$dir/daemon-tls.log" >&2; die "$backend: the daemon did not answer https /healthz within 30 s"; }
    expect_200 "$backend basic over https" "$tls_url/api/auth/verify" "$basic"
    curl -sf --max-time 10 -k -o /dev/null "$TLS_BARE_URL" || die "bare route over https does not answer"
    warm tls-bare "$TLS_BARE_URL"
    warm tls-basic "$tls_url/api/auth/verify" "$basic"

    echo "$backend over https: wrk $WRK_ARGS --latency, one case after the other"
    run_wrk "${b}tls-bare-1" "$TLS_BARE_URL"
    run_wrk "${b}tls-basic" "$tls_url/api/auth/verify" "$basic"
    run_wrk "${b}tls-bare-2" "$TLS_BARE_URL"
    kill -0 "$daemon_pid" 2>/dev/null || { tail -n 20 "$dir/daemon-tls.log" >&2; die "$backend: the daemon died during the https run"; }
    local tls_floor
    tls_floor="$(awk -v a="$(rps "${b}tls-bare-1")" -v c="$(rps "${b}tls-bare-2")" 'BEGIN {printf "%.2f", (a + c) / 2}')"
    {
      echo
      echo "-- $backend over https (ECDSA P-256 certificate, HTTP/1.1; wrk $WRK_ARGS) --"
      printf '%-34s %12s %9s %9s %10s %10s %s\n' case req/s "/plain" "/tls" p50 p99 notes
      for c in tls-bare-1 tls-basic tls-bare-2; do
        case "$c" in
          tls-bare-1) label="bare route over https (1st)" ;;
          tls-basic) label="Basic cached key over https" ;;
          tls-bare-2) label="bare route over https (2nd)" ;;
        esac
        n="$(non2xx "$b$c")"
        e="$(sockerr "$b$c")"
        notes=""
        [ -z "$n" ] || notes="NON-2xx: $n of $(total_req "$b$c")"
        [ -z "$e" ] || notes="${notes:+$notes; }socket errors: $e"
        printf '%-34s %12s %9s %9s %10s %10s %s\n' "$label" "$(rps "$b$c")" \
          "$(awk -v r="$(rps "$b$c")" -v f="$floor" 'BEGIN {printf "%.2f", r / f}')" \
          "$(awk -v r="$(rps "$b$c")" -v f="$tls_floor" 'BEGIN {printf "%.2f", r / f}')" \
          "$(pct "$b$c" 50)" "$(pct "$b$c" 99)" "$notes"
        [ -z "$n" ] || failed="$failed $c"
      done
      printf '%-34s %12s (ratio columns: to the plain floor, to the TLS floor)\n' "TLS floor = mean of the two" "$tls_floor"
    } >"$dir/table-tls"
    cat "$dir/table-tls"
    cat "$dir/table-tls" >>"$SUMMARY"
    stop_pid "$daemon_pid"
  fi

  if [ "$backend" = postgres ]; then
    timeout --foreground 30 psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null \
      && PG_DB=""
  fi
  if [ -n "$failed" ]; then
    {
      echo
      echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
      echo "!!! FAILED ($backend): non-2xx/3xx answers during:$failed"
      echo "!!! these numbers measure refusals, not authentication. Daemon log (tail):"
      echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
      tail -n 5 "$dir/daemon.log" | cut -c1-400
    } >&2
    exit 1
  fi
}

ran=""
for backend in $BACKENDS; do
  case "$backend" in
    sqlite) bench_backend sqlite; ran="$ran sqlite" ;;
    postgres)
      if [ -n "$PG_URL" ]; then
        command -v psql >/dev/null 2>&1 || die "psql is required for the PostgreSQL run"
        bench_backend postgres; ran="$ran postgres"
      else
        echo "ACCESSKEYD_TEST_POSTGRES_URL is not set: PostgreSQL not benchmarked"
      fi
      ;;
    *) die "unknown backend $backend (sqlite, postgres)" ;;
  esac
done

echo
echo "======================================== summary ========================================"
cat "$SUMMARY"
echo
echo "bare_axum peak RSS (VmHWM): $(awk '/^VmHWM:/ {printf "%.1f MiB", $2/1024}' "/proc/$BARE_PID/status")"
echo "client and server share this machine's $(nproc) cores; backends run:$ran"
