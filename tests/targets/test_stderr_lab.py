"""Standard error carries nectar-audit's own messages only: a real SSH scan (OpenSSH in a lab namespace)
prints no library warning (asyncssh made cryptography print a CryptographyDeprecationWarning about DSA,
about ten lines, before every remote scan), while other warnings still reach the user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO
from tests.lab import sshd_hosts as S

pytestmark = pytest.mark.lab

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "PYTHONWARNINGS": ""}


def test_a_remote_scan_prints_no_library_warning(tmp_path: Path) -> None:
    S.require_ssh_lab()
    key, pub = S.client_key(tmp_path / "client")
    with S.ssh_host(tmp_path / "host", {"root": pub}, hostname="lab-quiet") as host:
        known = tmp_path / "known_hosts"
        known.write_text(host.known_hosts_line())
        for targets in ([f"root@{host.addr}"], [f"root@{host.addr}", f"ssh://root@{host.addr}", "--jobs", "2"]):
            # one host, and a fleet judged in worker processes
            argv = [sys.executable, "-m", "nectar_audit", "scan", *targets, "-i", str(key), "--known-hosts",
                    str(known), "--checks", "01", "--format", "json", "--no-progress"]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=ENV, check=False)
            assert proc.returncode in (0, 1), proc.stderr
            assert proc.stdout.count('"hostname": "lab-quiet"') == len(targets) - 2 * ("--jobs" in targets)
            assert proc.stderr == "", proc.stderr
        # The library does warn when imported without our filter (so the test shows the filter at work).
        raw = subprocess.run([sys.executable, "-c", "import asyncssh"], capture_output=True, text=True,
                             timeout=60, env=ENV, check=False)
        assert "CryptographyDeprecationWarning" in raw.stderr


def test_other_warnings_still_show() -> None:
    code = ("import warnings\nfrom nectar_audit.cli import quiet_library_warnings\n"
            "quiet_library_warnings()\nimport asyncssh\nwarnings.warn('ours', UserWarning)\n"
            "from cryptography.utils import CryptographyDeprecationWarning as C\n"
            "warnings.warn('crypto, from elsewhere', C)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=ENV,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "UserWarning: ours" in proc.stderr
    # the category is silenced only where asyncssh/cryptography raise it, not everywhere
    assert proc.stderr.count("CryptographyDeprecationWarning") == 1 and "from elsewhere" in proc.stderr
