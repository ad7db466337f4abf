#!/usr/bin/env bash
# Installs what the tests need (if missing) and runs every test.
# Usage: scripts/test.sh            (from anywhere; needs root or sudo for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need_apt+=(slapd)
command -v ldapadd >/dev/null 2>&1 || need_apt+=(ldap-utils)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# Debian starts a system slapd on install; the tests run their own and do not need it.

# Reuse one build directory across clones (CI builds in a fresh clone each time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/accesskeyd-target}"

cargo fmt --all -- --check
cargo clippy --all-targets --all-features -- -D warnings
# Unit and end-to-end tests on SQLite (benches are run with `cargo bench`, see
# docs/performance.md).
ACCESSKEYD_TEST_BACKEND=sqlite cargo test --lib --bins --tests

# The end-to-end suite again on PostgreSQL, each test in a fresh database of its own, when a
# server is named: ACCESSKEYD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
if [ -n "${ACCESSKEYD_TEST_POSTGRES_URL:-}" ]; then
  ACCESSKEYD_TEST_BACKEND=postgres cargo test --test e2e
  # Several replicas as processes on one PostgreSQL database.
  cargo test --features postgres-tests --test replicas
else
  echo "ACCESSKEYD_TEST_POSTGRES_URL is not set: PostgreSQL tests not run"
fi
