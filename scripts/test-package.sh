#!/usr/bin/env bash
# The Debian package as an operator uses it: build the .deb, install it with dpkg, check what
# it put where, start the service as its unit would, log in with the first admin password,
# create and use an access key, remove the package (the data stays), install it again (the
# same password and key work), purge it (the state goes, the user stays).
# Usage: scripts/test-package.sh    (as root: it installs and purges the package `accesskeyd`;
# run by scripts/test.sh). Every step says what it checks; a failed check names it and stops,
# and the package is purged on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "test-package.sh installs a package: run it as root" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/accesskeyd-target}"

UNIT_FILE=/lib/systemd/system/accesskeyd.service
STATE=/var/lib/accesskeyd
CONF=/etc/accesskeyd/accesskeyd.toml
WORK="$(mktemp -d)"
SERVE_PID=""
DROP_IN=/run/systemd/system/accesskeyd.service.d/test-package.conf

step() { printf '\n== %s\n' "$*"; }
fail() { echo "test-package: FAILED: $*" >&2; exit 1; }
check() { # check DESCRIPTION COMMAND...: runs the command, fails naming the check if it fails
  local what="$1"; shift
  if "$@"; then echo "ok: $what"; else fail "$what"; fi
}
equal() { # equal DESCRIPTION ACTUAL EXPECTED
  if [ "$2" = "$3" ]; then echo "ok: $1 ($2)"; else fail "$1: got '$2', expected '$3'"; fi
}
systemd_runs() { [ -d /run/systemd/system ]; }

cleanup() {
  local status=$?
  # Not stop_service: a failure there would end the trap before the purge.
  if systemd_runs; then
    systemctl stop accesskeyd >/dev/null 2>&1 || true
  elif [ -n "$SERVE_PID" ]; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
  fi
  rm -f "$DROP_IN"
  if dpkg-query -W -f='${Status}' accesskeyd 2>/dev/null | grep -qv 'not-installed'; then
    [ "$status" -eq 0 ] || echo "test-package: purging the package after the failure" >&2
    dpkg -P accesskeyd >/dev/null 2>&1 || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$WORK/serve.log" ]; then
    echo "--- serve's output:" >&2; tail -n 40 "$WORK/serve.log" >&2
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

# --- tools ---------------------------------------------------------------------------------
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
dpkg-query -W -f='${Status}' dpkg-dev 2>/dev/null | grep -q 'ok installed' \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev; }
command -v lintian >/dev/null \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian; }

# A package left by an interrupted run would be purged by this test: only CI may take that
# for granted; elsewhere it is someone's installation.
if dpkg-query -W -f='${Status}' accesskeyd 2>/dev/null | grep -qv 'not-installed'; then
  [ "${CI:-}" = "true" ] || fail "the package accesskeyd is installed here; this test would purge it"
  dpkg -P accesskeyd >/dev/null
fi
[ ! -e "$STATE" ] || [ "${CI:-}" = "true" ] || fail "$STATE exists (a source install?); this test would delete it"
rm -rf "$STATE"

# --- the service, as its unit starts it ----------------------------------------------------
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
unit_value() { sed -n "s/^$1=//p" "$UNIT_FILE" | tail -n 1; }

start_service() {
  if systemd_runs; then
    # The unit itself, on a free port.
    mkdir -p "$(dirname "$DROP_IN")"
    printf '[Service]\nEnvironment=ACCESSKEYD_SERVER__LISTEN=127.0.0.1:%s ACCESSKEYD_SERVER__MANAGEMENT_LISTEN=\n' "$PORT" >"$DROP_IN"
    systemctl daemon-reload
    systemctl start accesskeyd
  else
    # No systemd: its ExecStart, as its User, in its WorkingDirectory, with its UMask.
    local exec_start user dir umask_value
    exec_start="$(unit_value ExecStart)"; user="$(unit_value User)"
    dir="$(unit_value WorkingDirectory)"; umask_value="$(unit_value UMask)"
    read -r -a argv <<<"$exec_start"
    (
      cd "$dir"
      umask "$umask_value"
      exec setpriv --reuid="$user" --regid="$user" --init-groups --reset-env \
        env ACCESSKEYD_SERVER__LISTEN="127.0.0.1:$PORT" ACCESSKEYD_SERVER__MANAGEMENT_LISTEN= \
        "${argv[@]}"
    ) >>"$WORK/serve.log" 2>&1 &
    SERVE_PID=$!
  fi
  for _ in $(seq 1 60); do
    curl -fsS "$URL/healthz" >/dev/null 2>&1 && return 0
    if [ -n "$SERVE_PID" ] && ! kill -0 "$SERVE_PID" 2>/dev/null; then fail "serve exited at start"; fi
    sleep 0.5
  done
  fail "serve did not answer $URL/healthz within 30 s"
}

stop_service() {
  if systemd_runs; then
    systemctl stop accesskeyd
  elif [ -n "$SERVE_PID" ]; then
    kill -TERM "$SERVE_PID"
    local status=0
    wait "$SERVE_PID" || status=$?
    SERVE_PID=""
    [ "$status" -eq 0 ] || fail "serve exited with status $status after SIGTERM"
  fi
}

login() { # login PASSWORD -> prints the session token, fails unless 200
  local code
  code="$(curl -sS -o "$WORK/login.json" -D "$WORK/login.headers" -w '%{http_code}' \
    -H 'content-type: application/json' \
    --data "$(python3 -c 'import json,sys; print(json.dumps({"username": "admin", "password": sys.argv[1]}))' "$1")" \
    "$URL/api/auth/login")"
  [ "$code" = 200 ] || fail "admin login answered $code: $(cat "$WORK/login.json")"
  sed -n 's/^x-sq-auth: *//Ip' "$WORK/login.headers" | tr -d '\r'
}

key_works() { # key_works KEY_ID KEY_PASSWORD: the key authenticates as admin
  local me
  me="$(curl -fsS -u "$1:$2" "$URL/api/users/me")" || return 1
  [ "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["username"])' <<<"$me")" = admin ]
}

mode_owner() { stat -c '%a %U:%G' "$1"; }

# --- 1. build --------------------------------------------------------------------------------
step "build the package (cargo deb)"
cargo deb --output "$WORK/" -- --locked
DEB="$(ls "$WORK"/accesskeyd_*.deb)"
echo "built $(basename "$DEB")"
dpkg-deb --info "$DEB" | sed -n 's/^ \(Package\|Version\|Depends\):/  &/p'

step "lintian finds no errors"
lintian --fail-on error --suppress-tags no-manual-page "$DEB" || fail "lintian reports errors (above)"

step "the unit is valid and hardened (systemd-analyze)"
# --threshold counts in tenths: 17 is the 1.7 systemd-analyze prints.
systemd-analyze security --offline=yes --threshold=17 --no-pager systemd/accesskeyd.service \
  >"$WORK/security.txt" 2>&1 \
  || { cat "$WORK/security.txt"; fail "systemd-analyze security: exposure above 1.7"; }
echo "ok: $(tail -n 1 "$WORK/security.txt" | sed 's/^→ //')"

# --- 2. install ------------------------------------------------------------------------------
step "dpkg -i: installed, user and directories made, unit enabled, service not started"
dpkg -i "$DEB" | tee "$WORK/install.log"
check "postinst says where the first admin password will be" \
  grep -q "$STATE/initial-admin-password" "$WORK/install.log"
check "systemd-analyze verify on the installed unit" systemd-analyze verify "$UNIT_FILE"
check "the binary is /usr/bin/accesskeyd" test -x /usr/bin/accesskeyd
check "the system user accesskeyd exists" getent passwd accesskeyd
uid="$(id -u accesskeyd)"
check "accesskeyd is a system user (uid $uid)" test "$uid" -lt 1000
equal "its shell" "$(getent passwd accesskeyd | cut -d: -f7)" /usr/sbin/nologin
equal "its home" "$(getent passwd accesskeyd | cut -d: -f6)" "$STATE"
equal "$STATE" "$(mode_owner "$STATE")" "750 accesskeyd:accesskeyd"
equal "/etc/accesskeyd" "$(mode_owner /etc/accesskeyd)" "750 root:accesskeyd"
equal "$CONF" "$(mode_owner "$CONF")" "640 root:accesskeyd"
check "$CONF is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}\n' accesskeyd | grep -q ' $CONF '"
check "$CONF is the sample configuration" cmp -s "$CONF" config/accesskeyd.toml
check "docs and copyright under /usr/share/doc/accesskeyd" \
  test -f /usr/share/doc/accesskeyd/copyright -a -f /usr/share/doc/accesskeyd/install.md
equal "the unit's ExecStart" "$(unit_value ExecStart)" "/usr/bin/accesskeyd serve --config $CONF"
check "the unit is enabled" test -L /etc/systemd/system/multi-user.target.wants/accesskeyd.service
if systemd_runs; then
  check "the service was not started" sh -c '! systemctl is-active --quiet accesskeyd'
else
  check "the service was not started" sh -c '! pgrep -u accesskeyd -x accesskeyd >/dev/null'
fi
check "no first admin password yet" test ! -e "$STATE/initial-admin-password"
dpkg -i "$DEB" >/dev/null || fail "installing over itself (user creation is idempotent)"
echo "ok: installs over itself"

step "check-config as the service user"
setpriv --reuid=accesskeyd --regid=accesskeyd --init-groups --reset-env \
  /usr/bin/accesskeyd --config "$CONF" check-config | tee "$WORK/check.log" \
  || fail "check-config as accesskeyd failed"
check "check-config reads the database in $STATE" grep -q "database sqlite:///var/lib/accesskeyd/accesskeyd.db" "$WORK/check.log"

# --- 3. first start --------------------------------------------------------------------------
step "first start: the unit's ExecStart as accesskeyd (systemd: $(systemd_runs && echo yes || echo no))"
start_service
check "the database is in $STATE" test -f "$STATE/accesskeyd.db"
equal "the database file's owner" "$(stat -c '%U:%G' "$STATE/accesskeyd.db")" "accesskeyd:accesskeyd"
check "the first admin password is in $STATE/initial-admin-password" test -s "$STATE/initial-admin-password"
equal "the password file" "$(mode_owner "$STATE/initial-admin-password")" "600 accesskeyd:accesskeyd"
PASSWORD="$(cat "$STATE/initial-admin-password")"

step "log in as admin, create an access key, use it"
TOKEN="$(login "$PASSWORD")"
[ -n "$TOKEN" ] || fail "the login answer has no x-sq-auth header"
echo "ok: admin logged in"
curl -fsS -H "x-sq-auth: $TOKEN" -H 'content-type: application/json' \
  --data '{"name": "package test"}' "$URL/api/accesskeys" >"$WORK/key.json" \
  || fail "creating an access key failed"
KEY_ID="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["keyId"])' <"$WORK/key.json")"
KEY_PASSWORD="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])' <"$WORK/key.json")"
check "the access key authenticates as admin" key_works "$KEY_ID" "$KEY_PASSWORD"
stop_service
echo "ok: stopped"

# --- 4. remove, reinstall --------------------------------------------------------------------
step "dpkg -r: the program goes, the data and the configuration stay"
dpkg -r accesskeyd
check "/usr/bin/accesskeyd is gone" test ! -e /usr/bin/accesskeyd
equal "package state" "$(dpkg-query -W -f='${db:Status-Abbrev}' accesskeyd | tr -d ' ')" "rc"
check "the database stays" test -f "$STATE/accesskeyd.db"
check "the configuration stays" test -f "$CONF"

step "dpkg -i again: the same admin password and the same key work"
dpkg -i "$DEB" >/dev/null
equal "$STATE after reinstall" "$(mode_owner "$STATE")" "750 accesskeyd:accesskeyd"
start_service
login "$PASSWORD" >/dev/null
echo "ok: admin logs in with the first password"
check "the access key still works" key_works "$KEY_ID" "$KEY_PASSWORD"
stop_service
echo "ok: stopped"

# --- 5. purge --------------------------------------------------------------------------------
step "dpkg -P: state and configuration gone, the system user stays"
dpkg -P accesskeyd
state="$(dpkg-query -W -f='${db:Status-Abbrev}' accesskeyd 2>/dev/null | tr -d ' ' || true)"
check "the package is gone (state '${state:-unknown}')" test "${state:-un}" = un
check "the unit is not left masked" test ! -L /etc/systemd/system/accesskeyd.service
check "$STATE is gone" test ! -e "$STATE"
check "/etc/accesskeyd is gone" test ! -e /etc/accesskeyd
check "the unit is no longer enabled" test ! -e /etc/systemd/system/multi-user.target.wants/accesskeyd.service
check "the system user stays" getent passwd accesskeyd

step "package test passed"
