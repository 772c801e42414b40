"""Lab tests of Check-Security-09 and 16 on real Debian roots changed with the real tools.

Offline: overlays of the cached Debian root changed with useradd/usermod/passwd (run by chroot) and
audited with ``nectar-audit scan root:PATH --checks 09,16 --format json``. Live: a chroot host audited
as root and as an unprivileged user through ``ScriptTarget`` (the real gather script, real lastlog).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.catalog import entries
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.model import HostResult, Status
from nectar_audit.targets.script_runner import ScriptTarget
from tests import REPO, lab

pytestmark = pytest.mark.lab

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1"}


def chroot(root: Path, *argv: str, input: str | None = None) -> None:
    """Run one of the root's own tools (useradd, usermod, passwd …) inside it."""
    lab.run(["chroot", str(root), *argv], input=input, timeout=60, env={**lab.HOST_ENV})


def _line_of(path: Path, prefix: str) -> int:
    """1-based number of the line of path starting with prefix."""
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(prefix))


def scan(root: Path) -> dict[str, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "nectar_audit", "scan", f"root:{root}", "--checks", "09,16",
         "--format", "json"],
        capture_output=True, text=True, timeout=120, env=ENV, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(proc.stdout)
    host = data["hosts"][0]
    assert host["error"] is None
    return {c["id"][-2:]: c for c in host["checks"]}


def messages(check: dict[str, Any], status: str) -> list[str]:
    return [f["message"] for f in check["findings"] if f["status"] == status]


def test_pristine_root(lab_root: Path) -> None:
    checks = scan(lab_root)
    assert checks["09"]["status"] == "pass"
    assert checks["09"]["summary"] == "0 account(s) can log in: none"
    assert checks["16"]["status"] == "pass"


def test_sudoers_d_nopasswd_grant_fails(lab_root: Path) -> None:
    chroot(lab_root, "useradd", "-m", "-s", "/bin/bash", "deploy")
    grant = lab_root / "etc/sudoers.d/50-deploy"
    grant.write_text("# CI deploy user\ndeploy ALL=(ALL) NOPASSWD:ALL\n")
    grant.chmod(0o440)
    checks = scan(lab_root)
    c16 = checks["16"]
    assert c16["status"] == "fail"
    assert c16["summary"] == ("deploy can run any command as root without a password "
                              "(NOPASSWD:ALL at /etc/sudoers.d/50-deploy:2)")
    fail = next(f for f in c16["findings"] if f["status"] == "fail")
    assert fail["evidence"][0] == {"source": "/etc/sudoers.d/50-deploy:2",
                                   "detail": "deploy ALL=(ALL) NOPASSWD:ALL"}
    assert "visudo -f /etc/sudoers.d/50-deploy" in fail["remediation"]


def test_extra_uid0_account_fails(lab_root: Path) -> None:
    chroot(lab_root, "useradd", "-o", "-u", "0", "-g", "0", "-M", "-d", "/root", "-s", "/bin/bash", "toor")
    chroot(lab_root, "chpasswd", input="toor:Lab-only-pw-1\n")
    checks = scan(lab_root)
    c09 = checks["09"]
    assert c09["status"] == "fail"
    assert c09["summary"] == "account toor has UID 0: it is a second root account (/bin/bash)"
    ev = c09["findings"][0]["evidence"][0]
    # The line number is toor's own line: counted, since the root's system users depend on ROOT_PACKAGES
    # (systemd added systemd-network).
    assert ev["source"] == f"/etc/passwd:{_line_of(lab_root / 'etc/passwd', 'toor:')}"
    assert "password=hash (yescrypt)" in ev["detail"] or "password=hash (sha512crypt)" in ev["detail"]
    assert "Lab-only" not in json.dumps(checks) and "$y$" not in json.dumps(checks)
    # 16 too: the root's own getpwnam says toor is UID 0, the most extreme extra permission there is.
    uid = lab.run(["chroot", str(lab_root), "id", "-u", "toor"], timeout=30, text=True, env={**lab.HOST_ENV})
    assert uid.stdout.strip() == "0"
    c16 = checks["16"]
    assert c16["status"] == "fail"
    assert c16["summary"].startswith("account toor has UID 0: it holds every permission root has")
    fail16 = next(f for f in c16["findings"] if f["status"] == "fail")
    assert fail16["evidence"][0]["source"] == ev["source"]
    assert not any(f["message"].startswith("no account other than root") for f in c16["findings"])


def test_empty_password_fails(lab_root: Path) -> None:
    chroot(lab_root, "useradd", "-m", "-s", "/bin/bash", "guest")
    chroot(lab_root, "passwd", "-d", "guest")
    c09 = scan(lab_root)["09"]
    assert c09["status"] == "fail"
    assert c09["summary"] == "account guest has an empty password: anyone can log in as guest without one"
    f = next(f for f in c09["findings"] if f["status"] == "fail")
    assert f["evidence"][0]["source"] == f"/etc/shadow:{_line_of(lab_root / 'etc/shadow', 'guest:')}"
    # the guest is also a person's account that never logged in, listed as able to log in
    assert "account guest can log in (EMPTY password) but has never logged in" in messages(c09, "warn")


def test_docker_group_member_fails(lab_root: Path) -> None:
    chroot(lab_root, "groupadd", "-r", "docker")
    chroot(lab_root, "useradd", "-m", "-s", "/bin/bash", "-G", "docker", "carol")
    c16 = scan(lab_root)["16"]
    assert c16["status"] == "fail"
    assert c16["summary"].startswith(
        "carol is in group docker, which can start a container with the host's / mounted read-write")
    f = next(f for f in c16["findings"] if f["status"] == "fail")
    assert f["remediation"] == "gpasswd -d carol docker"


def test_system_account_shell_and_world_writable_home(lab_root: Path) -> None:
    chroot(lab_root, "usermod", "-s", "/bin/bash", "www-data")
    chroot(lab_root, "useradd", "-m", "-s", "/bin/bash", "dana")
    (lab_root / "home/dana").chmod(0o777)
    checks = scan(lab_root)
    assert "system account www-data (UID 33) has login shell /bin/bash (no usable password or key yet)" in \
        messages(checks["09"], "warn")
    assert "home directory /home/dana of dana is world-writable (mode 0777)" in messages(checks["16"], "fail")


def test_symlink_loops_and_garbage_do_not_crash(lab_root: Path) -> None:
    (lab_root / "home/loop").symlink_to("loop")
    chroot(lab_root, "useradd", "-M", "-d", "/home/loop", "-s", "/bin/bash", "looper")
    (lab_root / "home/a").mkdir()
    (lab_root / "home/a/.ssh").symlink_to("/home/a/.ssh")
    sudoers = lab_root / "etc/sudoers.d/garbage"
    sudoers.write_bytes(bytes(range(256)) * 20 + b"\n")
    sudoers.chmod(0o440)
    checks = scan(lab_root)
    for c in checks.values():
        assert not any("internal error" in f["message"] for f in c["findings"])
    assert any(m.startswith("sudo skips or rejects a line") for m in messages(checks["16"], "warn"))


# -- live, inside a chroot host ---------------------------------------------------------------------
def _nsenter(host: lab.ChrootHost, *inner: str) -> list[str]:
    return ["nsenter", "--target", str(host.pid), "--mount", "--uts", "--ipc", "--net", "--pid", "--root",
            "--wd", "--", *inner]


def _audit(target: ScriptTarget) -> HostResult:
    wanted = [e for e in entries() if e.id in ("Check-Security-09", "Check-Security-16")]
    result, _bundle = audit(target, wanted, Config())
    assert result.error is None
    return result


def test_live_chroot_host_as_root_and_as_user(lab_root: Path) -> None:
    lab.require_netns()
    chroot(lab_root, "useradd", "-m", "-s", "/bin/bash", "alice")
    chroot(lab_root, "useradd", "-m", "-s", "/bin/bash", "bob")
    chroot(lab_root, "chpasswd", input="alice:Lab-only-pw-2\nbob:Lab-only-pw-3\n")
    keys = lab_root / "home/bob/.ssh"
    keys.mkdir(mode=0o700)
    (keys / "authorized_keys").write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8iTfBqa2aKq8oKVj3cK9H1Pn lab\n")
    with lab.chroot_host(lab_root, hostname="acct1") as host:
        # alice logs in now (the shadow suite's own lastlog writes the record); bob 200 days ago
        res = host.exec(["lastlog", "-S", "-u", "alice"], timeout=30)
        assert res.returncode == 0, res.stderr
        uid_bob = int(host.exec(["id", "-u", "bob"], text=True, timeout=30).stdout)
        with open(host.path("/var/log/lastlog"), "r+b") as fh:
            fh.seek(uid_bob * 292)
            fh.write(struct.pack("<i32s256s", int(time.time()) - 200 * 86400, b"pts/1", b"192.0.2.9"))

        result = _audit(ScriptTarget("acct1", host.sh_argv()))
        c09, c16 = result.checks
        assert c09.status is Status.WARN, [f.message for f in c09.findings]
        warns = [f.message for f in c09.findings if f.status is Status.WARN]
        assert len(warns) == 1
        assert warns[0].startswith("account bob has not logged in for 200 days (last login ")
        listed = next(f for f in c09.findings if f.status is Status.PASS)
        assert listed.message.startswith("2 account(s) can log in: alice [password], bob [password+SSH key]")
        alice_ev = next(e for e in listed.evidence if e.detail.startswith("alice:"))
        assert f"last login={time.strftime('%Y-%m-%d', time.gmtime())}" in alice_ev.detail
        assert c16.status is Status.WARN  # Debian's 0755 homes are readable by every user
        assert any(f.message == "home directory /home/alice of alice is readable by every user (mode 0755)"
                   for f in c16.findings)

        # the same host audited by an unprivileged user: errors with reasons, never a wrong pass
        user = _audit(ScriptTarget("acct1-nobody", _nsenter(
            host, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-s")))
        u09, u16 = user.checks
        assert [f.message for f in u09.findings if f.status is Status.ERROR] == [
            "needs root to read /etc/shadow: cannot tell which accounts have a usable or empty password"]
        assert any(f.message.startswith("account bob has not logged in for 200 days") for f in u09.findings)
        assert u16.status is Status.ERROR
        assert "needs root to read /etc/sudoers: cannot tell who may use sudo" in \
            [f.message for f in u16.findings if f.status is Status.ERROR]
