"""``nectar-audit fix --format ansible``: the playbook applied by real ``ansible-playbook`` (ansible-core)
over SSH to lab chroot hosts running real sshd.

01 and 17 on two hosts with the same plan: one play; ``--check --diff`` shows the plan's edits and changes
nothing; the run fixes both (a fresh scan passes them, real sshd refuses the password); a second run
reports changed=0.

18 (the SSH port, under the host's dead-man timer) on three hosts of an inventory group with the same
plan: one play for the group. On the third, the host's own firewall drops the new port (a legacy
iptables rule the plan did not see): the new connection fails, the play fails for that host only, and its
timer puts every file back. The other two move to the new port (real sshd: a key login works there, not
on 22) and a second run there changes nothing."""

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
from tests.fix.test_18_08_fix_lab import NEW, USER, _answers, _digests, _prepare_root

pytestmark = pytest.mark.lab
CHECKS = "01,08,17"  # 08 under the dead-man timer: no firewall is loaded on the hosts


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


def _plays(book: str) -> list[dict[str, Any]]:
    """The playbook's plays (its comment lines first, then JSON)."""
    return list(json.loads("\n".join(line for line in book.splitlines() if not line.startswith("#"))))


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
    assert {c for _t, c in edits} == {"Check-Security-01", "Check-Security-08", "Check-Security-17"}, plan.stdout
    book = _nectar(tmp_path, "fix", *targets, "--checks", CHECKS, "--format", "ansible", *ssh)
    assert book.returncode == 0, book.stderr
    playbook = tmp_path / "fix.yml"
    playbook.write_text(book.stdout)
    # The two hosts have the same plan: one play for both.
    plays = _plays(book.stdout)
    assert [p["hosts"] for p in plays] == [[h.addr for h in hosts]], book.stdout[:2000]
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
        if remedy["check"] == "Check-Security-08":  # shown by a debug task (tabs escaped), applied by its script
            continue
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
            ("Check-Security-01", "pass"), ("Check-Security-08", "pass"), ("Check-Security-17", "pass")], h
    # 08: the kernel drops what the firewall does not let in, and the run was confirmed (not undone).
    for host in hosts:
        assert "policy drop" in host.exec(["nft", "list", "ruleset"], text=True, check=True).stdout, host.addr
        [run_dir] = host.path("/var/lib/nectar-audit/fix").iterdir()
        assert (run_dir / "confirmed").exists() and not (run_dir / "undone").exists()
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


TIMER = 20  # the dead-man timer's seconds (the blocked host waits for it)


@pytest.fixture
def three_hosts(tmp_path: Path, debian_root: Path) -> Iterator[tuple[list[lab.ChrootHost], Path, Path]]:
    """Three hosts alike: sshd on 22, an nftables ruleset letting 22 in (input policy drop)."""
    lab.require_netns()
    lab.require_binary("ansible-playbook")
    key, pub = lab.make_ssh_keypair(tmp_path)
    lines = []
    with ExitStack() as stack:
        hosts = []
        for name in ("port-a", "port-b", "port-c"):
            (tmp_path / name).mkdir()
            root = stack.enter_context(lab.overlay_root(tmp_path / name, debian_root))
            _prepare_root(root, pub)
            host = stack.enter_context(lab.chroot_host(root, hostname=name))
            host.exec(["nft", "-f", "/etc/nftables.conf"], check=True)
            host.start(["/usr/sbin/sshd", "-D", "-e"])
            lab.wait_for_tcp(host.addr, 22)
            hk = host.path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"{host.addr} {hk[0]} {hk[1]}\n[{host.addr}]:{NEW} {hk[0]} {hk[1]}\n")
            hosts.append(host)
        known = tmp_path / "known_hosts"
        known.write_text("".join(lines))
        yield hosts, key, known


def _inventory(path: Path, hosts: list[lab.ChrootHost], key: Path, known: Path, port: int = 22) -> Path:
    path.write_text("[lab]\n" + "".join(f"{h.hostname} ansible_host={h.addr} ansible_port={port}\n" for h in hosts)
                    + f"[lab:vars]\nansible_user={USER}\nansible_ssh_private_key_file={key}\n"
                      "ansible_python_interpreter=/usr/bin/python3\n"
                      f"ansible_ssh_common_args='-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes "
                      f"-o IdentitiesOnly=yes -F /dev/null'\n")
    return path


def test_playbook_moves_ssh_under_the_dead_man_timer(three_hosts: Any, tmp_path: Path) -> None:
    hosts, key, known = three_hosts
    ok, blocked = hosts[:2], hosts[2]
    inventory = _inventory(tmp_path / "inventory.ini", hosts, key, known)
    book = _nectar(tmp_path, "fix", "--inventory", str(inventory), "--checks", "18", "--ssh-port", str(NEW),
                   "--confirm-timeout", str(TIMER), "--format", "ansible", "--known-hosts", str(known),
                   "--config", os.devnull)
    assert book.returncode == 0, book.stdout + book.stderr
    plays = _plays(book.stdout)
    # The same plan on the three hosts, exactly the inventory's group: one play for it. Both phases of 18.
    assert [p["hosts"] for p in plays] == ["lab"], book.stdout[:3000]
    assert [b["name"].split(":")[0] for b in plays[0]["tasks"]] == ["Check-Security-18"] * 2
    assert "phase 1 of 2" in plays[0]["tasks"][0]["name"] and "phase 2 of 2" in plays[0]["tasks"][1]["name"]
    playbook = tmp_path / "fix.yml"
    playbook.write_text(book.stdout)
    before = {h.hostname: _digests(h) for h in hosts}

    dry = _playbook(tmp_path, inventory, playbook, "--check", "--diff")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert {h.hostname: _digests(h) for h in hosts} == before
    assert "tcp dport 2222 accept  # nectar-audit 18" in dry.stdout, dry.stdout[-3000:]

    # The third host's own firewall drops the new port, in a table the fix's nft reload leaves alone.
    subprocess.run(["ip", "netns", "exec", blocked.name, "iptables-legacy", "-I", "INPUT", "-p", "tcp",
                    "--dport", str(NEW), "-j", "DROP"], check=True, timeout=30)
    run = _playbook(tmp_path, inventory, playbook)
    recap = _recap(run.stdout)
    assert run.returncode != 0 and recap[blocked.hostname]["failed"] == 1, run.stdout + run.stderr
    assert all(recap[h.hostname]["failed"] == 0 and recap[h.hostname]["unreachable"] == 0 for h in ok), run.stdout
    assert f"was not confirmed over a new connection on port {NEW}" in run.stdout, run.stdout[-3000:]
    # Real sshd: a key login with sudo works on the new port, no longer on 22.
    for host in ok:
        assert _answers(host, key, known, NEW) and not _answers(host, key, known, 22), host.hostname
        sshd_t = host.exec(["sshd", "-T"], text=True, check=True).stdout.splitlines()
        assert [line for line in sshd_t if line.startswith("port ")] == [f"port {NEW}"]
    # The blocked host: its dead-man timer restores every file (byte for byte) and sshd on 22 only.
    lab.wait_until(lambda: _digests(blocked) == before[blocked.hostname], 3 * TIMER + 30,
                   "the dead-man timer to restore the blocked host")
    lab.wait_until(lambda: _listening(blocked) == {22}, 30, "sshd to listen on 22 only again")
    assert "dport 2222" not in blocked.exec(["nft", "list", "ruleset"], text=True, check=True).stdout
    assert _answers(blocked, key, known, 22)
    runs = sorted(blocked.path("/var/lib/nectar-audit/fix").iterdir())
    assert len(runs) == 1 and (runs[0] / "undone").exists() and not (runs[0] / "confirmed").exists(), runs

    # A second run (the inventory now says the new port) changes nothing.
    moved = _inventory(tmp_path / "moved.ini", ok, key, known, NEW)
    again = _playbook(tmp_path, moved, playbook)
    assert again.returncode == 0, again.stdout + again.stderr
    recap = _recap(again.stdout)
    assert set(recap) == {h.hostname for h in ok}
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), again.stdout


def _listening(host: lab.ChrootHost) -> set[int]:
    """The TCP ports sshd listens on in the host (the kernel's answer, through ss)."""
    out = host.exec(["ss", "-Hltnp"], text=True, check=True).stdout.splitlines()
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out if "sshd" in line}
