"""Lab: Check-Security-11 on the cached Debian root, offline (root:PATH) and live with a real "
"fail2ban-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.catalog import entries
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.targets.script_runner import ScriptTarget
from tests import REPO, lab

pytestmark = pytest.mark.lab


def cli_scan(root: Path, checks: str, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nectar_audit",
            "scan",
            f"root:{root}",
            "--checks",
            checks,
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1"},
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def check(doc: dict[str, Any], cid: str) -> dict[str, Any]:
    (c,) = [c for c in doc["hosts"][0]["checks"] if c["id"] == cid]
    return c


def test_offline_root_jail_on_and_off(lab_root: Path) -> None:
    rc, doc = cli_scan(lab_root, "11")
    c = check(doc, "Check-Security-11")
    assert (rc, c["status"]) == (0, "pass")
    assert c["summary"] == "fail2ban protects sshd: jail sshd (enabled, bans with iptables-multiport)"
    ev = c["findings"][0]["evidence"]
    assert {"source": "/etc/fail2ban/jail.d/defaults-debian.conf:2", "detail": "[sshd] enabled = true"} in ev

    (lab_root / "etc/fail2ban/jail.local").write_text("[sshd]\nenabled = false\n")
    rc, doc = cli_scan(lab_root, "11")
    c = check(doc, "Check-Security-11")
    assert (rc, c["status"]) == (1, "fail")
    assert (
        c["summary"]
        == "no enabled fail2ban jail watches sshd ([sshd] enabled = false, /etc/fail2ban/jail.local:2)"
    )

    # Back on, but sshd moved to port 2222 while the jail still bans port 22.
    (lab_root / "etc/fail2ban/jail.local").unlink()
    (lab_root / "etc/ssh/sshd_config.d/port.conf").write_text("Port 2222\n")
    rc, doc = cli_scan(lab_root, "11")
    c = check(doc, "Check-Security-11")
    assert c["status"] == "fail"
    assert c["summary"] == (
        "fail2ban jail sshd blocks port ssh (/etc/fail2ban/jail.conf:280), but sshd listens on "
        "2222: banned attackers can keep trying"
    )


@pytest.fixture
def host(lab_root: Path) -> Iterator[lab.ChrootHost]:
    lab.require_netns()
    (lab_root / "etc/fail2ban/fail2ban.local").write_text("[Definition]\ndbfile = :memory:\n")
    with lab.chroot_host(lab_root, hostname="f2bhost") as h:
        yield h


def live_audit(h: lab.ChrootHost, cid: str) -> dict[str, Any]:
    target = ScriptTarget(
        "lab",
        h.sh_argv(),
        timeout=60,
    )
    result, bundle = audit(target, [e for e in entries() if e.id == cid], Config())
    assert bundle is not None and result.error is None
    return result.to_json()["checks"][0]  # type: ignore[no-any-return]


def test_live_fail2ban_server_answers(host: lab.ChrootHost) -> None:
    # Not running yet, and nothing writes /var/log/auth.log: the Debian 12 trap.
    c = live_audit(host, "Check-Security-11")
    assert c["status"] == "fail"
    assert [f["message"] for f in c["findings"] if f["status"] == "fail"] == [
        "fail2ban is installed but not running",
        "fail2ban jail sshd reads /var/log/auth.log, which does not exist and no syslog daemon runs to "
        "write it: "
        "fail2ban cannot start this jail (sshd logs only to the journal here)",
    ]

    host.path("/var/log/auth.log").touch()
    host.start(["rsyslogd", "-n"])
    server = host.start(["fail2ban-server", "-f", "-x"])
    lab.wait_until(
        lambda: host.exec(["fail2ban-client", "status"], timeout=10).returncode == 0,
        30,
        "fail2ban-server to answer",
    )
    lab.wait_until(lambda: host.exec(["test", "-S", "/dev/log"], timeout=10).returncode == 0, 10, "/dev/log")
    for i in range(3):
        host.exec(
            [
                "logger",
                "-p",
                "auth.info",
                "-t",
                f"sshd[{100 + i}]",
                f"Failed password for invalid user u{i} from 192.0.2.{10 + i} port 4000{i} ssh2",
            ],
            check=True,
        )
    lab.wait_until(
        lambda: host.path("/var/log/auth.log").read_text().count("Failed password") == 3,
        10,
        "rsyslog to write auth.log",
    )
    c = live_audit(host, "Check-Security-11")
    assert c["status"] == "pass", (c, host.log(server))
    assert c["summary"] == (
        "fail2ban protects sshd: jail sshd (active, bans with iptables-multiport) "
        "(3 failed SSH logins in the last 7 days)"
    )
    ev = c["findings"][0]["evidence"]
    assert {"source": "command: fail2ban-client status", "detail": "jails: sshd"} in ev
    assert any(
        e["source"] == "command: fail2ban-client status sshd" and "watching /var/log/auth.log" in e["detail"]
        for e in ev
    )

    # Live: the jail bans port 22 while sshd listens on 2222.
    host.path("/etc/ssh/sshd_config.d/port.conf").write_text("Port 2222\n")
    c = live_audit(host, "Check-Security-11")
    assert c["status"] == "fail"
    assert c["summary"].startswith(
        "fail2ban jail sshd blocks port ssh (/etc/fail2ban/jail.conf:280), but sshd listens on 2222"
    )
