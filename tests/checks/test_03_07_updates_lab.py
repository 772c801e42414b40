"""Lab: checks 03 and 07 on a real Debian 12 root (debootstrap + unattended-upgrades), offline and live."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from nectar_audit.model import Status
from tests import lab
from tests.lab.patching import audit_chroot, scan_root

pytestmark = pytest.mark.lab

AUTO = "etc/apt/apt.conf.d/20auto-upgrades"
STAMP = "var/lib/apt/periodic/upgrade-stamp"


def _fresh_stamp(root: Path) -> None:
    stamp = root / STAMP
    stamp.touch()
    now = time.time()
    os.utime(stamp, (now, now))


@pytest.mark.parametrize(
    ("content", "status", "summary"),
    [
        (
            'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n',
            "pass",
            "unattended-upgrades installs security updates automatically every day (last successful run on ",
        ),
        (
            'APT::Periodic::Update-Package-Lists "0";\nAPT::Periodic::Unattended-Upgrade "0";\n',
            "fail",
            'automatic updates are off: APT::Periodic::Unattended-Upgrade is "0" '
            "(/etc/apt/apt.conf.d/20auto-upgrades:2)",
        ),
        (
            'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Download-Upgradeable-Packages "1";\n'
            'APT::Periodic::Unattended-Upgrade "0";\n',
            "fail",
            "apt downloads updates automatically but does not install them "
            "(APT::Periodic::Unattended-Upgrade is "
            '"0" (/etc/apt/apt.conf.d/20auto-upgrades:3))',
        ),
    ],
    ids=["on", "off", "download-only"],
)
def test_offline_root_unattended_upgrades(lab_root: Path, content: str, status: str, summary: str) -> None:
    (lab_root / AUTO).write_text(content)
    _fresh_stamp(lab_root)
    check = scan_root(lab_root, "03")["Check-Security-03"]
    assert check["status"] == status, check
    assert check["summary"].startswith(summary), check["summary"]


def test_offline_root_pending_security_update(lab_root: Path) -> None:
    # The root was fully upgraded when built; pretend libssl3 is older than the security archive's.
    status = lab_root / "var/lib/dpkg/status"
    text = status.read_text()
    m = re.search(r"^Package: libssl3\n(?:.+\n)*?Version: (\S+)\n", text, re.M)
    assert m is not None
    text = text[: m.start(1)] + "3.0.0-1" + text[m.end(1) :]
    status.write_text(text)
    check = scan_root(lab_root, "07")["Check-Security-07"]
    assert check["status"] == "fail", check
    assert check["summary"] == "1 security update is not installed: libssl3"
    fail = next(f for f in check["findings"] if f["status"] == "fail")
    assert fail["evidence"][0]["detail"].startswith("libssl3 3.0.0-1 → ")


def test_live_chroot_uses_apt_config_dump(lab_root: Path, tmp_path: Path) -> None:
    _fresh_stamp(lab_root)
    (lab_root / "etc/apt/apt.conf.d/99local").write_text('APT::Periodic::Unattended-Upgrade "0";\n')
    with lab.chroot_host(lab_root, hostname="uu-live", workdir=tmp_path) as host:
        result = audit_chroot(host, "Check-Security-03")
    check = result.checks[0]
    assert check.status is Status.FAIL, check.findings
    assert check.summary == (
        "apt refreshes the package lists automatically but installs no updates "
        '(APT::Periodic::Unattended-Upgrade is "0" (/etc/apt/apt.conf.d/99local:1))'
    )


def test_never_booted_image_is_not_a_warning_but_a_live_host_without_a_run_is(
    lab_root: Path, tmp_path: Path
) -> None:
    # The lab root was built, never booted: no upgrade stamp, no unattended-upgrades log.
    assert not (lab_root / STAMP).exists()
    assert not (lab_root / "var/log/unattended-upgrades/unattended-upgrades.log").exists()
    offline = scan_root(lab_root, "03")["Check-Security-03"]
    assert offline["status"] == "pass", offline
    assert offline["summary"] == (
        "unattended-upgrades installs security updates automatically every day (offline image: no run is "
        "recorded yet, as expected before its first boot; apt-daily-upgrade.timer runs it once a host boots "
        "from the image)"
    )
    # The same root running (cron runs apt's daily job without systemd) and still without a run: warned.
    with lab.chroot_host(lab_root, hostname="uu-norun", workdir=tmp_path) as host:
        host.start(["cron"])
        lab.wait_until(lambda: host.exec(["pgrep", "-x", "cron"]).returncode == 0, 10, "cron running")
        result = audit_chroot(host, "Check-Security-03")
    check = result.checks[0]
    assert check.status is Status.WARN, check.findings
    assert check.summary.startswith("no record of a successful unattended-upgrades run (no upgrade stamp"), (
        check.summary
    )
