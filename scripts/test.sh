#!/usr/bin/env bash
# Installs what the tests need (if missing) and runs every test.
# Usage: scripts/test.sh            (from anywhere; needs root or sudo for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# OpenLDAP for the LDAP tests; Samba (an AD domain controller on loopback) for the Active
# Directory tests; an MIT Kerberos KDC, GSSAPI headers (libkrb5-dev) and libclang-dev (bindgen)
# for the Windows sign-in tests; Chromium for the web UI tests; dnsmasq as the DNS server that
# names domain controllers. --no-install-recommends keeps
# libnss-winbind/libpam-winbind from editing nsswitch.conf and PAM and krb5-config from writing
# /etc/krb5.conf.
need_apt=()
for p in slapd ldap-utils samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind krb5-user \
         krb5-kdc krb5-admin-server libkrb5-dev libclang-dev chromium nginx-light dnsmasq-base; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# Services the packages may have started hold the ports the tests' own servers need.
for s in slapd samba-ad-dc smbd nmbd winbind krb5-kdc krb5-admin-server nginx; do
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true
  else
    $SUDO service "$s" stop >/dev/null 2>&1 || true
  fi
done
# The test DCs' names stay on this machine (Samba would otherwise ask the outside resolver).
grep -qE '^127\.0\.0\.1([[:space:]]+[^[:space:]]+)*[[:space:]]+dc1\.corp\.test([[:space:]]|$)' /etc/hosts \
  || echo '127.0.0.1 dc1.corp.test dc1 corp.test' | $SUDO tee -a /etc/hosts >/dev/null
grep -qE '^127\.0\.0\.2([[:space:]]+[^[:space:]]+)*[[:space:]]+dc2\.corp\.test([[:space:]]|$)' /etc/hosts \
  || echo '127.0.0.2 dc2.corp.test dc2' | $SUDO tee -a /etc/hosts >/dev/null

# Node.js deps, reinstalled when a lockfile changes: the OIDC provider (npm oidc-provider) for
# the OIDC tests, playwright-core (driving Debian's /usr/bin/chromium) for the web UI tests.
command -v node >/dev/null || { echo "node (>= 20) is required for the OIDC and UI tests" >&2; exit 1; }
for d in tests/oidc-provider tests/ui; do
  if ! cmp -s "$d/package-lock.json" "$d/node_modules/.installed-lock.json"; then
    npm ci --prefix "$d" --no-audit --no-fund || { echo "npm ci for $d failed" >&2; exit 1; }
    cp "$d/package-lock.json" "$d/node_modules/.installed-lock.json"
  fi
done

# A real SMTP server (PyPI aiosmtpd) receives the key-lapse warnings in the tests.
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet aiosmtpd \
  || { echo "pip install aiosmtpd failed" >&2; exit 1; }
# An OpenAPI 3.1 validator for docs/openapi.json (tests/api/openapi.rs; skipped without it).
python3 -c 'import openapi_spec_validator' 2>/dev/null || python3 -m pip install --quiet "openapi-spec-validator>=0.7" \
  || { echo "pip install openapi-spec-validator failed" >&2; exit 1; }
# The outside fuzzer over every operation of the OpenAPI document (tests/e2e/fuzz.rs), and a
# client generator whose client runs the key lifecycle (tests/e2e/client.rs); pinned, as the
# checks and the generated code change between their versions.
SCHEMATHESIS=4.32.5
python3 -c "import importlib.metadata as m; assert m.version('schemathesis') == '$SCHEMATHESIS'" 2>/dev/null \
  || python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS" \
  || { echo "pip install schemathesis==$SCHEMATHESIS failed" >&2; exit 1; }
OPENAPI_PYTHON_CLIENT=0.29.1
python3 -c "import importlib.metadata as m; assert m.version('openapi-python-client') == '$OPENAPI_PYTHON_CLIENT'" 2>/dev/null \
  || python3 -m pip install --quiet "openapi-python-client==$OPENAPI_PYTHON_CLIENT" \
  || { echo "pip install openapi-python-client==$OPENAPI_PYTHON_CLIENT failed" >&2; exit 1; }
# The vendor's generated Python SDK, to check our JSON against its models.
SEEQ_SDK=66.216.0.20261023
python3 -c "import importlib.metadata as m, seeq.sdk, deprecated; assert m.version('seeq') == '$SEEQ_SDK'" 2>/dev/null \
  || python3 -m pip install --quiet "seeq==$SEEQ_SDK" deprecated \
  || { echo "pip install seeq==$SEEQ_SDK failed" >&2; exit 1; }
# The SCIM conformance checker (PyPI scim2-tester, run through scim2-cli's `scim2 test`) for
# tests/e2e/scim_conformance.rs, which pools SCIM_CHECKER_RUNS runs (default 5).
SCIM2_TESTER=0.5.2
SCIM2_CLI=0.6.0
{ command -v scim2 >/dev/null && python3 -c "import importlib.metadata as m; assert m.version('scim2-tester') == '$SCIM2_TESTER' and m.version('scim2-cli') == '$SCIM2_CLI'" 2>/dev/null; } \
  || python3 -m pip install --quiet "scim2-tester==$SCIM2_TESTER" "scim2-cli==$SCIM2_CLI" \
  || { echo "pip install scim2-tester==$SCIM2_TESTER scim2-cli==$SCIM2_CLI failed" >&2; exit 1; }

# Reuse one build directory across clones (CI builds in a fresh clone each time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/accesskeyd-target}"

cargo fmt --all -- --check
cargo clippy --all-targets --all-features -- -D warnings
# The default build (no `kerberos` feature, what the README's run command builds) must
# compile and be lint-clean too: it has its own code path for Windows sign-in.
cargo clippy --lib --bins -- -D warnings
# What the README's plain `cargo test` runs, on the default build (its own code path for
# Windows sign-in, `kerberos::` included): the unit tests, the layer rule and the fast tier
# (tests/api).
cargo test
# Unit tests, the fast tier and the end-to-end suite with its real peers (`system-tests`) on
# SQLite (benches are run with `cargo bench`, see docs/performance.md), with the optional
# Kerberos sign-in built in so it is tested too.
ACCESSKEYD_TEST_BACKEND=sqlite cargo test --features kerberos,system-tests --lib --bins --tests

# The Debian package: built, installed with dpkg, started as its unit would start it, logged
# in to, removed, reinstalled and purged (it installs a package: root only).
if [ "$(id -u)" -eq 0 ]; then
  scripts/test-package.sh
else
  echo "not root: the Debian package test (scripts/test-package.sh) not run"
fi

# The fast tier and the end-to-end suite again on PostgreSQL, each test in a fresh database of
# its own, when a server is named:
# ACCESSKEYD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
if [ -n "${ACCESSKEYD_TEST_POSTGRES_URL:-}" ]; then
  ACCESSKEYD_TEST_BACKEND=postgres cargo test --features kerberos,system-tests --test api --test e2e
  # Several replicas as processes on one PostgreSQL database.
  cargo test --features kerberos,postgres-tests --test replicas
else
  echo "ACCESSKEYD_TEST_POSTGRES_URL is not set: PostgreSQL tests not run"
fi
