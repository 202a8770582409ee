#!/usr/bin/env bash
# The dashboard's browser test (coordinator/tests/browser.rs) drives Debian's chromium headless
# through playwright-core and checks each page with axe-core (tests/browser). Installs what is
# missing: the `chromium` package when /usr/bin/chromium is absent, and tests/browser's
# node_modules (`npm ci`, from the pinned package-lock.json). Fails loudly when it cannot: the test would fail anyway, less clearly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

fail() {
    echo ".ci/setup.d/browser.sh: error: $*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        fail "not root and no sudo; run by hand: apt-get install chromium"
    fi
}

if [ ! -x /usr/bin/chromium ]; then
    echo ".ci/setup.d/browser.sh: /usr/bin/chromium is missing; installing Debian's chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q || fail "apt-get update failed"
    as_root apt-get install -y -q --no-install-recommends chromium </dev/null ||
        fail "could not install chromium; run by hand: apt-get install chromium"
    [ -x /usr/bin/chromium ] || fail "chromium installed, but /usr/bin/chromium is not there"
fi
/usr/bin/chromium --version 2>/dev/null | head -n 1 || true

command -v node >/dev/null 2>&1 || fail "node is not on PATH (the browser test runs tests/browser/run.mjs with it; apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || fail "npm is not on PATH (apt-get install npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || fail "node $(node --version) is too old for playwright-core (needs 20 or newer)"

# Every dependency of package.json at the version it pins, else `npm ci` (a clean install from
# package-lock.json).
installed() {
    (cd tests/browser && node -e '
        const deps = require("./package.json").dependencies;
        for (const [name, version] of Object.entries(deps)) {
            try {
                if (require(`./node_modules/${name}/package.json`).version !== version) process.exit(1);
            } catch { process.exit(1); }
        }')
}
if ! installed; then
    echo ".ci/setup.d/browser.sh: installing tests/browser's packages: npm ci" >&2
    (cd tests/browser && npm ci --no-audit --no-fund) || fail "npm ci in tests/browser failed"
fi
installed || fail "tests/browser/node_modules does not match package.json after npm ci"
echo ".ci/setup.d/browser.sh: chromium, playwright-core and axe-core ready"
