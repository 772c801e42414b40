"""Lab: a real Postfix in a network namespace with its own /etc/postfix, audited live (Check-Security-02, 13).

Debian's main.cf as installed here (inet_interfaces = all) against the same with
inet_interfaces = loopback-only. The verdict is cross-checked with a real TCP connection to port 25 from
the root namespace. Each Postfix gets a private queue and data directory (Postfix's own lock files
live there), so it never touches the machine's mail system.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nectar_audit import catalog, engine
from nectar_audit.config import Config
from nectar_audit.model import CheckResult, Status
from nectar_audit.targets.script_runner import ScriptTarget
from tests import REPO, lab

pytestmark = pytest.mark.lab


def audit(host: lab.NetnsHost, check_id: str) -> CheckResult:
    entries = [e for e in catalog.entries() if e.id == check_id]
    result, _ = engine.audit(
        ScriptTarget(host.name, ["ip", "netns", "exec", host.name, "sh", "-s"]), entries, Config()
    )
    assert result.error is None
    [check] = result.checks
    return check


def smtp_banner(addr: str) -> str | None:
    assert addr.startswith("10.200."), "lab traffic only"
    try:
        with socket.create_connection((addr, 25), timeout=3) as s:
            s.settimeout(3)
            return s.recv(200).decode("ascii", "replace")
    except OSError:
        return None


@contextlib.contextmanager
def postfix_host(inet_interfaces: str) -> Iterator[lab.NetnsHost]:
    lab.require_netns()
    lab.require_binary("postfix")
    # Postfix (user postfix) must traverse the path of its data directory: not under pytest's 0700 tmp.
    work = Path(tempfile.mkdtemp(prefix="nalab-postfix-"))
    try:
        work.chmod(0o755)
        etc = work / "postfix"
        shutil.copytree("/etc/postfix", etc)
        for sub in ("spool", "data"):
            (work / sub).mkdir()
        shutil.chown(work / "data", "postfix")
        main = etc / "main.cf"
        text = main.read_text()
        assert "inet_interfaces = all\n" in text  # Debian's debconf-generated main.cf
        text = text.replace("inet_interfaces = all\n", f"inet_interfaces = {inet_interfaces}\n")
        main.write_text(text + f"queue_directory = {work}/spool\ndata_directory = {work}/data\n")
        with lab.netns_host(etc={"postfix": etc}) as host:
            host.run(["postconf", "-F", "*/*/chroot = n"], check=True)
            proc = host.spawn(["postfix", "start-fg"])

            def up() -> bool:
                if proc.poll() is not None:
                    raise lab.LabError(f"postfix exited: {host.log(proc)[-1000:]}")
                return ":25 " in str(host.run(["ss", "-tlnH"], text=True).stdout)

            lab.wait_until(up, 30, "postfix master")
            yield host
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_postfix_on_all_interfaces_fails() -> None:
    with postfix_host("all") as host:
        banner = smtp_banner(host.addr)
        assert banner is not None and banner.startswith("220 ")
        check = audit(host, "Check-Security-02")
        assert check.status is Status.FAIL
        # The namespace shares this machine's files: other MTAs installed here (dovecot for the probe
        # tests) add findings of their own.
        [f] = [x for x in check.findings if x.message.startswith("Postfix")]
        assert f.message.startswith("Postfix (master (pid ")
        assert f.message.endswith(
            ", user root)) listens on 0.0.0.0:25/tcp, [::]:25/tcp: reachable from other "
            "hosts, not only localhost"
        )
        assert "inet_interfaces = loopback-only" in (f.remediation or "")
        assert any(e.detail == "inet_interfaces = all" for e in f.evidence)
        # The same listener is plaintext SMTP for check 13 (Debian's main.cf sets no certificate here).
        enc = audit(host, "Check-Security-13")
        assert enc.status is Status.FAIL
        assert any(
            x.message.startswith("SMTP (master (pid ")
            and "no TLS: smtpd_tls_security_level is none" in x.message
            for x in enc.findings
        )


def test_postfix_loopback_only_passes() -> None:
    with postfix_host("loopback-only") as host:
        assert smtp_banner(host.addr) is None
        check = audit(host, "Check-Security-02")
        # Only Postfix's finding: the namespace shares this machine's files, where other mail daemons
        # (dovecot, for the probe tests) may be installed and get findings of their own.
        assert [(f.status, f.message) for f in check.findings if f.message.startswith("Postfix")] == [
            (Status.PASS, "Postfix listens on localhost only (127.0.0.1:25/tcp, [::1]:25/tcp)")
        ]


def _scan_offline(root: Path) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    src = REPO / "src"
    res = lab.run(
        [
            sys.executable,
            "-m",
            "nectar_audit",
            "scan",
            f"root:{root}",
            "--checks",
            "02,05,06,13",
            "--format",
            "json",
        ],
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    doc = json.loads(res.stdout)
    return {
        c["id"][-2:]: (c["status"], [(f["status"], f["message"]) for f in c["findings"]])
        for c in doc["hosts"][0]["checks"]
    }


def test_offline_debian_root_exim_and_chrony(lab_root: Path) -> None:
    """`scan root:PATH` of the lab's Debian root: exim4-daemon-light and chrony, debconf defaults."""
    out = _scan_offline(lab_root)
    assert out["02"] == (
        "pass",
        [
            (
                "pass",
                "Exim is installed (offline image); configured for localhost only "
                "(127.0.0.1/::1 port 25 (smtp))",
            )
        ],
    )
    assert out["05"][0] == "not_applicable"
    assert out["06"] == (
        "pass",
        [("pass", "chronyd is a client only: no allow directive: chronyd does not serve time")],
    )
    assert out["13"][0] == "pass"  # sshd is its only network service (tests/checks/test_13_15_image_lab.py)
    conf = lab_root / "etc/exim4/update-exim4.conf.conf"
    conf.write_text(
        conf.read_text().replace("dc_local_interfaces='127.0.0.1 ; ::1'", "dc_local_interfaces=''")
    )
    chrony = lab_root / "etc/chrony/chrony.conf"
    chrony.write_text(chrony.read_text() + "allow\n")
    out = _scan_offline(lab_root)
    assert out["02"] == (
        "warn",
        [
            (
                "warn",
                "Exim is installed (offline image), but its configuration makes it "
                "listen beyond localhost when started: all port 25 (smtp)",
            )
        ],
    )
    status, findings = out["06"]
    assert status == "warn"
    assert findings[0] == (
        "warn",
        "chronyd serves time to any host (allow), configured to listen on every "
        "address (no bindaddress): access to the NTP server is not limited",
    )
