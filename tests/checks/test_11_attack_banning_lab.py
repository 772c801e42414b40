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


# --------------------------------------------------------------------------------------------------
# A fail2ban that cannot ban: Debian's default banaction on a host with only nftables installed
# --------------------------------------------------------------------------------------------------
BANNED = "192.0.2.50"


def _remove_iptables(root: Path) -> None:
    """The root's own dpkg removes iptables (ufw depends on it: forced), leaving nft."""
    lab.run(["chroot", str(root), "dpkg", "--remove", "--force-depends", "iptables"], timeout=120,
            env={**lab.HOST_ENV})
    assert not (root / "usr/sbin/iptables").exists() and (root / "usr/sbin/nft").exists()


def _ban(h: lab.ChrootHost) -> str:
    """fail2ban bans an address in jail sshd; returns what nft then holds (the kernel's own answer)."""
    h.path("/var/log/auth.log").touch()
    h.start(["rsyslogd", "-n"])  # what writes auth.log, which the jail reads
    server = h.start(["fail2ban-server", "-f", "-x"])
    lab.wait_until(lambda: h.exec(["fail2ban-client", "status", "sshd"], timeout=10).returncode == 0, 30,
                   "fail2ban's sshd jail")
    res = h.exec(["fail2ban-client", "set", "sshd", "banip", BANNED], timeout=30, text=True)
    assert res.returncode == 0, (res.stdout, res.stderr, h.log(server))
    lab.wait_until(lambda: "banip" in h.path("/var/log/fail2ban.log").read_text() or
                   BANNED in h.path("/var/log/fail2ban.log").read_text(), 10, "fail2ban to log the ban")
    return str(h.exec(["nft", "list", "ruleset"], timeout=30, text=True).stdout)


def test_ban_action_without_its_program_fails_offline_and_live(lab_root: Path) -> None:
    lab.require_netns()
    _remove_iptables(lab_root)
    (lab_root / "etc/fail2ban/fail2ban.local").write_text("[Definition]\ndbfile = :memory:\n")
    _, doc = cli_scan(lab_root, "11")
    c = check(doc, "Check-Security-11")
    assert c["status"] == "fail"
    assert c["summary"] == ("fail2ban jail sshd bans with iptables-multiport, whose commands run iptables, which "
                            "is not installed here: every ban fails (command not found)")
    fail = c["findings"][0]
    assert "banaction = nftables-multiport" in fail["remediation"]
    assert any(e["detail"].startswith("not found; ban programs present:") and "nft (/usr/sbin/nft)" in e["detail"]
               for e in fail["evidence"])
    with lab.chroot_host(lab_root, hostname="f2b-noipt") as h:
        ruleset = _ban(h)
        log = h.path("/var/log/fail2ban.log").read_text()
        c = live_audit(h, "Check-Security-11")
    # fail2ban and the kernel decide: the ban failed (fail2ban's log), nothing blocks the address (nft).
    assert "Failed to execute ban jail 'sshd' action 'iptables-multiport'" in log, log
    assert BANNED not in ruleset, ruleset
    assert c["status"] == "fail", c
    assert c["summary"].startswith("fail2ban jail sshd bans with iptables-multiport, whose commands run iptables")
    assert "fail2ban's log records it" in c["summary"]
    assert any(e["source"] == "/var/log/fail2ban.log" and "Failed to execute ban jail 'sshd'" in e["detail"]
               for e in c["findings"][0]["evidence"]), c["findings"][0]


def test_nftables_ban_action_bans_and_passes(lab_root: Path) -> None:
    lab.require_netns()
    _remove_iptables(lab_root)
    (lab_root / "etc/fail2ban/fail2ban.local").write_text("[Definition]\ndbfile = :memory:\n")
    (lab_root / "etc/fail2ban/jail.local").write_text(
        "[DEFAULT]\nbanaction = nftables-multiport\nbanaction_allports = nftables-allports\n")
    with lab.chroot_host(lab_root, hostname="f2b-nft") as h:
        ruleset = _ban(h)
        log = h.path("/var/log/fail2ban.log").read_text()
        c = live_audit(h, "Check-Security-11")
    assert BANNED in ruleset and "Failed to execute" not in log, (ruleset, log)
    assert c["status"] == "pass", c
    assert c["summary"] == ("fail2ban protects sshd: jail sshd (active, bans with nftables-multiport) "
                            "(0 failed SSH logins in the last 7 days)")
