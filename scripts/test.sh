#!/usr/bin/env bash
# The test command of the README: installs what the tests need (apt + pip + the cached lab root)
# and runs ruff, mypy and the whole pytest suite. Root is required (namespaces, mounts, debootstrap).
# Idempotent: skips apt when every package is present and reuses the cached lab root.
set -euo pipefail

cd "$(dirname "$0")/.."
export CI="${CI:-true}"
export DEBIAN_FRONTEND=noninteractive
START=$SECONDS

section() { printf '\n===== %s  [+%ss] =====\n' "$*" "$((SECONDS - START))"; }

# Packages the machine itself needs (daemons the tests run in network namespaces, debootstrap for the
# lab root, tools). postfix and exim4 conflict, and so do ntpsec and chrony: exim4 and chrony live in
# the lab's debootstrap root instead (tests/lab/rootfs.py ROOT_PACKAGES).
HOST_PACKAGES=(
    openssh-server openssh-client fail2ban postfix bind9 bind9-utils bind9-dnsutils unbound dnsmasq
    ntpsec ntpsec-ntpdig nftables iptables ufw rsyslog unattended-upgrades debootstrap sudo
    lynis hyperfine iproute2 procps iputils-ping util-linux mount coreutils python3 python3-venv
    rpm rsyslog-gnutls openssl dnf createrepo-c
    chromium postgresql
    dovecot-imapd dovecot-pop3d vsftpd redis-server inetutils-telnetd nginx-light
    cron faketime systemd shellcheck
)

section "machine"
echo "kernel $(uname -r), $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), euid $(id -u)"
if [ "$(id -u)" -ne 0 ]; then
    echo "error: .ci/run must run as root (network namespaces, mounts, debootstrap)" >&2
    exit 1
fi

section "apt packages"
missing=()
for pkg in "${HOST_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    [ "${status:0:2}" = "ii" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "all ${#HOST_PACKAGES[@]} packages already installed"
else
    echo "missing: ${missing[*]}"
    apt-get update
    printf '%s\n' "postfix postfix/main_mailer_type select Internet Site" \
        "postfix postfix/mailname string lab.example.test" | debconf-set-selections
    apt-get install -y --no-install-recommends "${HOST_PACKAGES[@]}"
fi

section "python environment"
PY=python3
stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
if [ -e "$stdlib/EXTERNALLY-MANAGED" ] || ! python3 -m pip --version >/dev/null 2>&1; then
    # Debian's own python3 refuses system-wide pip installs: use a venv in the clone.
    [ -x .venv/bin/python ] || python3 -m venv .venv
    PY=.venv/bin/python
fi
"$PY" --version
"$PY" -m pip install --disable-pip-version-check -q -e '.[test]'

section "lab root (debootstrap bookworm + packages, cached in /var/cache/nectar-audit-lab)"
"$PY" -m tests.lab build-root
"$PY" -m tests.lab sweep

section "OpenStack lab (Keystone + Neutron virtualenv, cached in /var/cache/nectar-audit-lab)"
"$PY" -m tests.lab build-openstack

section "wheels for the README's install command in a lab host (cached in /var/cache/nectar-audit-lab)"
"$PY" -m tests.lab build-wheels

section "ruff check src tests"
"$PY" -m ruff check src tests

section "mypy src"
"$PY" -m mypy src

section "pytest"
set +e
"$PY" -m pytest -q --durations=25  # the slowest tests in every CI log: the suite must stay well under 30 minutes
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
section "done (pytest exit $rc)"
exit "$rc"
