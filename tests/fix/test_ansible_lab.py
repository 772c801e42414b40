"""``nectar-audit fix --format ansible``: the playbook applied by real ``ansible-playbook`` (ansible-core)
over SSH to two lab chroot hosts running real sshd. ``--check --diff`` shows the plan's edits and changes
nothing; the run fixes 01 and 17 (a fresh scan passes them, real sshd refuses the password); a second
run reports changed=0."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests import REPO, lab
from tests.fix.test_18_08_fix_lab import USER, _prepare_root

pytestmark = pytest.mark.lab
CHECKS = "01,17"


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "NO_COLOR": "1",
            "ANSIBLE_HOME": str(tmp / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0"}


@pytest.fixture
def two_hosts(tmp_path: Path, debian_root: Path) -> Iterator[tuple[list[lab.ChrootHost], Path, Path]]:
    lab.require_netns()
    lab.require_binary("ansible-playbook")
    key, pub = lab.make_ssh_keypair(tmp_path)
    lines = []
    with ExitStack() as stack:
        hosts = []
        for name in ("ans-a", "ans-b"):
            (tmp_path / name).mkdir()
            root = stack.enter_context(lab.overlay_root(tmp_path / name, debian_root))
            _prepare_root(root, pub)
            with (root / "etc/ssh/sshd_config").open("a") as f:
                f.write("\nPermitRootLogin yes\n")
            host = stack.enter_context(lab.chroot_host(root, hostname=name))
            host.start(["/usr/sbin/sshd", "-D", "-e"])
            lab.wait_for_tcp(host.addr, 22)
            hk = host.path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"{host.addr} {hk[0]} {hk[1]}\n")
            hosts.append(host)
        known = tmp_path / "known_hosts"
        known.write_text("".join(lines))
        yield hosts, key, known


def _nectar(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nectar_audit", *args], capture_output=True, text=True,
                          timeout=300, env=_env(tmp), check=False)


def _playbook(tmp: Path, inventory: Path, playbook: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook), *extra], capture_output=True,
                          text=True, timeout=600, env=_env(tmp), check=False, cwd=tmp)


def _recap(out: str) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    for line in out.split("PLAY RECAP", 1)[1].splitlines()[1:]:
        m = re.match(r"^(\S+)\s*:\s*(.*)$", line.strip())
        if m:
            recap[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return recap


def test_playbook_fixes_two_hosts_idempotently(two_hosts: Any, tmp_path: Path) -> None:
    hosts, key, known = two_hosts
    ssh = ["-i", str(key), "--known-hosts", str(known), "--config", os.devnull]
    targets = [f"{USER}@{h.addr}" for h in hosts]
    plan = _nectar(tmp_path, "fix", *targets, "--checks", CHECKS, "--format", "json", *ssh)
    doc = json.loads(plan.stdout)
    edits = {(h["target"], r["check"]): r for h in doc["hosts"] for r in h["remedies"]}
    assert {c for _t, c in edits} == {"Check-Security-01", "Check-Security-17"}, plan.stdout
    book = _nectar(tmp_path, "fix", *targets, "--checks", CHECKS, "--format", "ansible", *ssh)
    assert book.returncode == 0, book.stderr
    playbook = tmp_path / "fix.yml"
    playbook.write_text(book.stdout)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[lab]\n" + "".join(
        f"{h.addr} ansible_user={USER} ansible_ssh_private_key_file={key} "
        f"ansible_python_interpreter=/usr/bin/python3\n" for h in hosts)
        + f"[lab:vars]\nansible_ssh_common_args='-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes "
          f"-o IdentitiesOnly=yes -F /dev/null'\n")
    before = {h.addr: h.path("/etc/ssh/sshd_config").read_bytes() for h in hosts}

    dry = _playbook(tmp_path, inventory, playbook, "--check", "--diff")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert {h.addr: h.path("/etc/ssh/sshd_config").read_bytes() for h in hosts} == before  # nothing changed
    # The same edits as the plan: every line the plan adds shows as an added line of ansible's diff.
    for remedy in edits.values():
        for change in remedy["changes"]:
            for line in change["diff"].splitlines():
                if line.startswith("+") and not line.startswith("+++"):
                    assert line in dry.stdout, (line, dry.stdout[-4000:])

    run = _playbook(tmp_path, inventory, playbook)
    assert run.returncode == 0, run.stdout + run.stderr
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in _recap(run.stdout).values()), run.stdout
    scan = _nectar(tmp_path, "scan", *targets, "--checks", CHECKS, "--format", "json", *ssh)
    for h in json.loads(scan.stdout)["hosts"]:
        assert [(c["id"], c["status"]) for c in h["checks"]] == [
            ("Check-Security-01", "pass"), ("Check-Security-17", "pass")], h
    # Real sshd no longer offers password authentication to anyone.
    for host in hosts:
        probe = subprocess.run(
            ["ssh", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=password", "-o",
             f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", "-F", "/dev/null",
             f"{USER}@{host.addr}", "true"], capture_output=True, text=True, timeout=30, check=False)
        assert probe.returncode == 255 and "publickey" in probe.stderr and "password" not in \
            probe.stderr.split("(", 1)[-1], probe.stderr

    again = _playbook(tmp_path, inventory, playbook)
    assert again.returncode == 0, again.stdout + again.stderr
    recap = _recap(again.stdout)
    assert set(recap) == {h.addr for h in hosts}
    assert all(r["changed"] == 0 for r in recap.values()), again.stdout
