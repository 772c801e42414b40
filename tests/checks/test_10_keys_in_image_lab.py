"""Lab: Check-Security-10 on the cached Debian root, as an image (root:PATH) and as a live host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.catalog import entries
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.targets.script_runner import ScriptTarget
from tests import REPO, lab

pytestmark = pytest.mark.lab
SAMPLES = REPO / "tests" / "samples" / "keys"
CLOUD_INIT_PREFIX = (
    "no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command=\"echo 'Please login as the "
    'user \\"debian\\" rather than the user \\"root\\".\';echo;sleep 10;exit 142"'
)


def fingerprint(pub: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.split()[1]


def body_lines(key: Path) -> list[str]:
    return [s for s in key.read_text().splitlines() if s and not s.startswith("-----")]


def test_image_with_keys_fails_and_evidence_holds_no_key(lab_root: Path, tmp_path: Path) -> None:
    lab.require_binary("ssh-keygen")
    ssh = lab_root / "root/.ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    key, pub = lab.make_ssh_keypair(tmp_path, "ed25519")
    (ssh / "id_ed25519").write_bytes(key.read_bytes())
    (ssh / "authorized_keys").write_text(f"{CLOUD_INIT_PREFIX} {pub}\n")
    fp = fingerprint(Path(f"{key}.pub"))
    evidence = tmp_path / "evidence.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nectar_audit",
            "scan",
            f"root:{lab_root}",
            "--checks",
            "10",
            "--format",
            "json",
            "--save-evidence",
            str(evidence),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1"},
    )
    assert proc.returncode == 1, proc.stderr
    (c,) = json.loads(proc.stdout)["hosts"][0]["checks"]
    assert c["status"] == "fail"
    fails = [f["message"] for f in c["findings"] if f["status"] == "fail"]
    assert fails == [
        f"unencrypted private key /root/.ssh/id_ed25519 (ssh-ed25519 {fp} (openssh-key-v1)): images must "
        "not ship "
        "private keys",
        "the image ships SSH host keys (/etc/ssh/ssh_host_ecdsa_key, /etc/ssh/ssh_host_ed25519_key, "
        "/etc/ssh/ssh_host_rsa_key): every VM made from it would share them",
        "the image ships /root/.ssh/authorized_keys with 1 key: every VM made from it lets these keys in",
    ]
    saved = evidence.read_text()
    for line in body_lines(key) + body_lines(lab_root / "etc/ssh/ssh_host_rsa_key"):
        assert line not in saved
    assert "PRIVATE KEY-----" not in saved
    assert fp in saved


def test_live_host_keys_older_than_first_boot(lab_root: Path, tmp_path: Path) -> None:
    lab.require_netns()
    iid = "8b1f0a9e-1234-4c2d-9e8f-0123456789ab"
    now = time.time()
    # The root's host keys were made when the image was built; age them to 30 days before first boot.
    for p in (lab_root / "etc/ssh").glob("ssh_host_*"):
        os.utime(p, (now - 30 * 86400, now - 30 * 86400))
    sem = lab_root / f"var/lib/cloud/instances/{iid}/sem"
    sem.mkdir(parents=True)
    (sem / "config_ssh").write_text("")
    (lab_root / "var/lib/cloud/data").mkdir(parents=True)
    (lab_root / "var/lib/cloud/data/instance-id").write_text(iid + "\n")
    (lab_root / "etc/cloud").mkdir(exist_ok=True)
    (lab_root / "etc/cloud/cloud.cfg").write_text("disable_root: true\n")
    with lab.chroot_host(lab_root, hostname="keyhost") as host:
        host.exec(
            ["sh", "-c", "mkdir -p /run/cloud-init && cat > /run/cloud-init/instance-data.json"],
            input=(SAMPLES / "instance-data.json").read_bytes(),
            check=True,
        )
        target = ScriptTarget(
            "lab",
            host.sh_argv(),
            timeout=60,
        )
        check10 = [e for e in entries() if e.id == "Check-Security-10"]

        def run() -> dict[str, Any]:
            result, bundle = audit(target, check10, Config())
            assert bundle is not None and result.error is None
            assert "VENDOR-SECRET-PASSWORD" not in json.dumps(bundle.to_json())
            return result.to_json()["checks"][0]  # type: ignore[no-any-return]

        c = run()
        assert c["status"] == "fail"
        assert c["summary"].startswith("SSH host key /etc/ssh/ssh_host_ecdsa_key dates from ")
        assert "before this instance's first boot" in c["summary"] and "(3 host keys)" in c["summary"]
        assert "ssh-keygen -A && systemctl restart ssh" in c["findings"][0]["remediation"]

        # Regenerated on this instance (what cloud-init's ssh module does at first boot): pass.
        host.exec(["sh", "-c", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A"], check=True)
        c = run()
        assert c["status"] == "pass", c
        assert [f["message"] for f in c["findings"]] == [
            "no unprotected private keys, stored credentials or foreign authorized keys on this VM",
            "SSH host keys were generated at this instance's first boot",
        ]
