#!/usr/bin/env bash
# The TLS test (tests/tests/redis_tls.rs) makes its CA and certificates with the `openssl`
# command. Installs Debian's openssl when it is missing; fails loudly when it cannot.
set -euo pipefail

if command -v openssl >/dev/null 2>&1; then
    openssl version
    exit 0
fi
echo ".ci/setup.d/openssl.sh: openssl is missing; installing it: apt-get install openssl" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo ".ci/setup.d/openssl.sh: error: not root and no sudo; run by hand: apt-get install openssl" >&2
        exit 1
    }
    sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends openssl </dev/null
openssl version
