#!/bin/sh
# Install nectar-audit from this checkout into /opt/nectar-audit (a virtualenv, so the system Python is
# left alone), link the command into /usr/local/bin, and audit this machine.
# Usage: sudo sh scripts/install-and-audit.sh [scan options…]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${NECTAR_AUDIT_PREFIX:-/opt/nectar-audit}
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -qq python3-venv >/dev/null
    elif command -v dnf >/dev/null 2>&1; then
        dnf install -y -q python3 >/dev/null
    fi
fi
[ -x "$prefix/bin/python" ] || python3 -m venv "$prefix"
"$prefix/bin/python" -m pip install -q --upgrade "$here"
ln -sf "$prefix/bin/nectar-audit" /usr/local/bin/nectar-audit
exec "$prefix/bin/nectar-audit" scan "$@"
