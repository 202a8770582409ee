#!/usr/bin/env bash
# The API fuzz test (coordinator/tests/http_api.rs, `schemathesis_finds_no_server_error`)
# runs schemathesis (PyPI, pinned below) against a live `weir serve`. This installs it, when
# missing, into its own virtual environment at target/api-fuzz-venv (no system packages
# touched, no PEP 668 trouble), where the test looks for it. Fails loudly when it cannot:
# the test would fail anyway, less clearly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

VERSION="4.32.5"
VENV="target/api-fuzz-venv"

fail() {
    echo ".ci/setup.d/schemathesis.sh: error: $*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        fail "not root and no sudo; run by hand: apt-get install python3 python3-venv"
    fi
}

if [ -x "$VENV/bin/schemathesis" ] && "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION"; then
    "$VENV/bin/schemathesis" --version
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo ".ci/setup.d/schemathesis.sh: python3 with venv is missing; installing Debian's python3-venv" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q || fail "apt-get update failed"
    as_root apt-get install -y -q --no-install-recommends python3 python3-venv </dev/null ||
        fail "could not install python3-venv; run by hand: apt-get install python3 python3-venv"
fi

echo ".ci/setup.d/schemathesis.sh: installing schemathesis $VERSION into $VENV" >&2
rm -rf "$VENV"
python3 -m venv "$VENV" || fail "python3 -m venv $VENV failed"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION" ||
    fail "pip could not install schemathesis==$VERSION from PyPI"
"$VENV/bin/schemathesis" --version || fail "schemathesis installed, but $VENV/bin/schemathesis does not run"
