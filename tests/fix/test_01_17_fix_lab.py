"""`nectar-audit fix` for checks 01 and 17 on chroot hosts with a real sshd: the daemon decides.

A host where passwords and root login are on (cloud-init's drop-in, a Match block) is fixed through the
host's shell and over SSH (sudo); afterwards real sshd refuses the password and root, a key login still
works, a second run changes nothing, and undo puts every file back byte for byte. The lock-out guard is
shown both ways: refused where no sudo account has a key, rolled back where the key login fails after
the change.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from nectar_audit.catalog import entry
from nectar_audit.config import Config
from nectar_audit.fix import render
from nectar_audit.fix.run import HostFix, apply_all, apply_host, list_runs, plan_host, undo_host
from nectar_audit.remedy import FileChange, drop_in
from nectar_audit.targets.script_runner import ScriptTarget
from nectar_audit.targets.ssh import SshOptions, SshTarget
from tests import REPO, lab

pytestmark = pytest.mark.lab

ENTRIES = [entry("01"), entry("17")]
NAMED = {"Check-Security-01", "Check-Security-17"}
PASSWORD = "lab-Password-42"
WATCHED = ("/etc/ssh", "/etc/cloud")


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(text)


def prepare(root: Path, pub: str, *, admin_key: bool = True) -> None:
    """Passwords on through cloud-init's drop-in and a Match block, root login on, an admin `debian`."""
    _append(root / "etc/passwd", "debian:x:1000:1000:Debian:/home/debian:/bin/bash\n")
    _append(root / "etc/group", "debian:x:1000:\n")
    _append(root / "etc/shadow", "debian:!:19000:0:99999:7:::\n")
    (root / "etc/sudoers.d/90-debian").write_text("debian ALL=(ALL) NOPASSWD:ALL\n")
    (root / "etc/sudoers.d/90-debian").chmod(0o440)
    home = root / "home/debian/.ssh"
    home.mkdir(parents=True)
    if admin_key:
        (home / "authorized_keys").write_text(pub + "\n")
    subprocess.run(["chown", "-R", "1000:1000", str(root / "home/debian")], check=True)
    _append(root / "etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n")
    _append(root / "etc/ssh/sshd_config",
            "\nPermitRootLogin yes\n\nMatch User debian\n    PasswordAuthentication yes\n")
    (root / "etc/cloud/cloud.cfg.d").mkdir(parents=True, exist_ok=True)


def checksums(host: lab.ChrootHost) -> dict[str, str]:
    out = {}
    for top in WATCHED:
        for path in sorted(host.path(top).rglob("*")):
            if path.is_file() and not path.name.startswith("ssh_host_"):
                st = path.stat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[str(path.relative_to(host.root))] = f"{digest} {st.st_mode:o} {st.st_uid}:{st.st_gid}"
            elif path.is_dir():
                out[str(path.relative_to(host.root)) + "/"] = "dir"
    return out


async def _login(addr: str, user: str, *, key: Path | None = None, password: str | None = None,
                 port: int = 22) -> str:
    import asyncssh

    try:
        conn = await asyncssh.connect(
            addr, port, username=user, known_hosts=None, agent_path=None,
            client_keys=[str(key)] if key else None, password=password,
            preferred_auth="publickey" if key else "password,keyboard-interactive", connect_timeout=10)
    except asyncssh.PermissionDenied:
        return "denied"
    async with conn:
        result = await conn.run("id -un", check=False)
    return f"ok {str(result.stdout).strip()}"


def login(addr: str, user: str, **kw: object) -> str:
    """What the real sshd says to this login ("ok USER" or "denied"), once it listens (a reload re-executes it)."""
    lab.wait_for_tcp(addr, int(kw.get("port", 22)))  # type: ignore[call-overload]
    return asyncio.run(_login(addr, user, **kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    lab.require_root()
    lab.require_netns()
    return lab.make_ssh_keypair(tmp_path_factory.mktemp("fixkey"))


@pytest.fixture
def host(lab_root: Path, client_key: tuple[Path, str]) -> Iterator[lab.ChrootHost]:
    prepare(lab_root, client_key[1])
    with lab.chroot_host(lab_root, hostname="fix-lab") as h:
        yield _boot_sshd(h)


def _boot_sshd(h: lab.ChrootHost) -> lab.ChrootHost:
    h.exec(["sh", "-c", f"echo 'debian:{PASSWORD}' | chpasswd && echo 'root:{PASSWORD}' | chpasswd"], check=True)
    h.start(["/usr/sbin/sshd", "-D", "-e"])
    lab.wait_for_tcp(h.addr, 22)
    lab.wait_until(lambda: h.exec(["test", "-s", "/run/sshd.pid"]).returncode == 0, 10, "sshd's pid file")
    return h


def exec_target(h: lab.ChrootHost) -> ScriptTarget:
    return ScriptTarget("fix-lab", h.sh_argv(), timeout=120)


def ssh_target(h: lab.ChrootHost, key: Path, tmp: Path, user: str = "debian") -> SshTarget:
    known = tmp / "known_hosts"
    known.write_text(" ".join([h.addr, *h.path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]])
                     + "\n")
    opts = SshOptions(identities=(str(key),), config_files=(), known_hosts=str(known), use_agent=False,
                      connect_timeout=10, command_timeout=120)
    return SshTarget(h.addr, user=user, options=opts)


def test_apply_locally_then_sshd_refuses_passwords_and_root(host: lab.ChrootHost,
                                                             client_key: tuple[Path, str]) -> None:
    key = client_key[0]
    assert login(host.addr, "debian", password=PASSWORD) == "ok debian"
    assert login(host.addr, "root", password=PASSWORD) == "ok root"
    before = checksums(host)
    fix = plan_host(exec_target(host), ENTRIES, Config())
    assert fix.error is None
    assert [(r.check, r.applicable) for r in fix.remedies] == [("Check-Security-01", True),
                                                               ("Check-Security-17", True)]
    # The Match block's line is commented out, not the whole file rewritten.
    c01 = fix.remedies[0]
    edited = {c.path: c for c in c01.changes}
    assert "/etc/ssh/sshd_config" in edited and edited["/etc/ssh/sshd_config"].edits
    assert "/etc/cloud/cloud.cfg.d/99-nectar-audit-ssh.cfg" in edited

    apply_host(fix, ENTRIES, Config(), NAMED)
    assert fix.error is None, fix.error
    assert [(o.check, o.status, o.after) for o in fix.outcomes] == [
        ("Check-Security-01", "applied", "pass"), ("Check-Security-17", "applied", "pass")], fix.outcomes
    # The daemon decides: passwords and root are refused, the admin's key still works.
    lab.wait_for_tcp(host.addr, 22)
    assert login(host.addr, "debian", password=PASSWORD) == "denied"
    assert login(host.addr, "root", password=PASSWORD) == "denied"
    assert login(host.addr, "debian", key=key) == "ok debian"
    run_dir = host.path(f"/var/lib/nectar-audit/fix/{fix.run_id}")
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"

    # Idempotent: a new plan has nothing to do, and the files stay as they are.
    after = checksums(host)
    again = plan_host(exec_target(host), ENTRIES, Config())
    assert again.remedies == [] and again.error is None
    assert checksums(host) == after

    # Undo: every file byte-identical (content, mode, owner), sshd back to accepting passwords.
    records, error = undo_host(exec_target(host), fix.run_id)
    assert error is None and ("Check-Security-01", "undone", "") in records
    assert checksums(host) == before
    lab.wait_for_tcp(host.addr, 22)
    assert login(host.addr, "debian", password=PASSWORD) == "ok debian"
    runs, _ = list_runs(exec_target(host))
    assert runs == [(fix.run_id, "undone", "2")]


def test_over_ssh_with_sudo_and_the_guard_confirms(host: lab.ChrootHost, client_key: tuple[Path, str],
                                                   tmp_path: Path) -> None:
    target = ssh_target(host, client_key[0], tmp_path)
    fix = plan_host(target, ENTRIES, Config())
    apply_host(fix, ENTRIES, Config(), NAMED)
    assert [(o.status, o.after) for o in fix.outcomes] == [("applied", "pass"), ("applied", "pass")], fix.outcomes
    lab.wait_for_tcp(host.addr, 22)
    assert login(host.addr, "debian", password=PASSWORD) == "denied"
    assert target.confirm_login() is None


def test_guard_rolls_back_when_the_new_key_login_fails(host: lab.ChrootHost, client_key: tuple[Path, str],
                                                       tmp_path: Path) -> None:
    """A change that breaks key login (here: a remedy that also turns public keys off) is undone at once."""
    before = checksums(host)
    target = ssh_target(host, client_key[0], tmp_path)
    fix = plan_host(target, ENTRIES[:1], Config())
    breaking = drop_in("/etc/ssh/sshd_config.d/00-aaa-lab.conf", ["PubkeyAuthentication no"], None, "lab")
    fix.remedies[0] = replace(fix.remedies[0], changes=(breaking, *fix.remedies[0].changes))
    apply_host(fix, ENTRIES[:1], Config(), NAMED)
    [outcome] = fix.outcomes
    assert outcome.status == "rolled-back", outcome
    assert "a new key login with sudo failed" in outcome.message
    assert checksums(host) == before
    assert login(host.addr, "debian", password=PASSWORD) == "ok debian"
    assert login(host.addr, "debian", key=client_key[0]) == "ok debian"


def test_validation_failure_restores_byte_identical(host: lab.ChrootHost) -> None:
    before = checksums(host)
    fix = plan_host(exec_target(host), ENTRIES[:1], Config())
    bad = FileChange("/etc/ssh/sshd_config.d/00-nectar-audit-01.conf", None, "PasswordAuthentication maybe\n")
    fix.remedies[0] = replace(fix.remedies[0], changes=(bad, *fix.remedies[0].changes[1:]))
    apply_host(fix, ENTRIES[:1], Config(), NAMED)
    [outcome] = fix.outcomes
    assert outcome.status == "error"
    assert outcome.message.startswith("validation failed: sshd -t")
    assert "maybe" in outcome.message  # sshd's own complaint
    assert checksums(host) == before
    assert login(host.addr, "debian", password=PASSWORD) == "ok debian"


def test_refused_without_a_sudo_account_with_a_key(lab_root: Path, client_key: tuple[Path, str]) -> None:
    prepare(lab_root, client_key[1], admin_key=False)
    with lab.chroot_host(lab_root, hostname="fix-nokey") as h:
        _boot_sshd(h)
        before = checksums(h)
        fix = plan_host(exec_target(h), ENTRIES, Config())
        assert all(not r.applicable for r in fix.remedies)
        assert "no account other than root has an authorized SSH key" in (fix.remedies[0].refused or "")
        apply_host(fix, ENTRIES, Config(), NAMED)
        assert fix.outcomes == [] and fix.run_id is None
        assert checksums(h) == before
        assert login(h.addr, "debian", password=PASSWORD) == "ok debian"


def test_the_sh_plan_run_by_hand_equals_apply(lab_root: Path, tmp_path: Path,
                                              client_key: tuple[Path, str]) -> None:
    """`fix --format sh` piped to sh on one host leaves the same files as `--apply` on its twin."""
    prepare(lab_root, client_key[1])
    twin = tmp_path / "twin"
    subprocess.run(["cp", "-a", str(lab_root), str(twin)], check=True)
    with lab.chroot_host(lab_root, hostname="fix-sh") as a, lab.chroot_host(twin, hostname="fix-sh") as b:
        _boot_sshd(a)
        _boot_sshd(b)
        fix_a = plan_host(exec_target(a), ENTRIES, Config())
        text = render.as_shell([fix_a], NAMED)
        ran = a.exec(["sh", "-s"], input=text.encode(), timeout=60)
        assert ran.returncode == 0, ran.stderr
        assert [s for _c, s, _m in fix_script_records(ran.stdout)] == ["applied", "applied", "done"]
        fix_b = plan_host(exec_target(b), ENTRIES, Config())
        apply_host(fix_b, ENTRIES, Config(), NAMED)
        assert checksums(a) == checksums(b)
        assert login(a.addr, "debian", password=PASSWORD) == "denied"


def fix_script_records(stdout: bytes) -> list[tuple[str, str, str]]:
    from nectar_audit.fix.run import parse_records

    return parse_records(stdout)


def test_fleet_one_refuses_one_unreachable_the_other_is_fixed(lab_root: Path, tmp_path: Path,
                                                              client_key: tuple[Path, str]) -> None:
    prepare(lab_root, client_key[1])
    bare = tmp_path / "nokey"
    subprocess.run(["cp", "-a", str(lab_root), str(bare)], check=True)
    (bare / "home/debian/.ssh/authorized_keys").unlink()
    with lab.chroot_host(lab_root, hostname="fleet-ok") as good, lab.chroot_host(bare, hostname="fleet-nokey") as nokey:
        _boot_sshd(good)
        _boot_sshd(nokey)
        targets = [exec_target(good), ScriptTarget("fleet-nokey", nokey.sh_argv(), timeout=120),
                   ssh_target(good, client_key[0], tmp_path, user="nobody-here")]
        targets[2].host = "10.200.255.254"  # a lab address nobody answers on
        targets[2].options = replace(targets[2].options, connect_timeout=2)
        fixes: list[HostFix] = [plan_host(t, ENTRIES, Config()) for t in targets]
        apply_all(fixes, ENTRIES, Config(), NAMED, concurrency=3)
        ok, refused, down = fixes
        assert ok.ok and [o.after for o in ok.outcomes] == ["pass", "pass"]
        assert refused.outcomes == [] and all(r.refused for r in refused.remedies)
        assert down.error is not None and down.outcomes == []
        text = "\n".join(render.outcome_text(f) for f in fixes)
        assert "fleet-nokey" in text
        assert login(nokey.addr, "debian", password=PASSWORD) == "ok debian"


def test_cli_plan_apply_runs_undo_over_ssh(host: lab.ChrootHost, client_key: tuple[Path, str],
                                           tmp_path: Path) -> None:
    """The command line end to end against the host over SSH: plan, apply, list runs, undo."""
    before = checksums(host)
    target = ssh_target(host, client_key[0], tmp_path)
    base = [sys.executable, "-m", "nectar_audit", "fix", f"debian@{host.addr}", "-i", str(client_key[0]),
            "-F", "none", "--known-hosts", str(target.options.known_hosts), "--config", "/dev/null"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1", "SSH_AUTH_SOCK": ""}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=180)

    plan = cli("--checks", "01,17")
    assert plan.returncode == 0, plan.stderr
    assert "Nothing was changed" in plan.stdout and "+PasswordAuthentication no" in plan.stdout
    assert checksums(host) == before
    script = cli("--checks", "01", "--format", "sh")
    assert script.returncode == 0 and script.stdout.startswith("#!/bin/sh")
    applied = cli("--checks", "01,17", "--apply", "--yes", "--format", "json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    doc = json.loads(applied.stdout)
    [h] = doc["hosts"]
    assert [(o["check"], o["status"], o["after"]) for o in h["outcomes"]] == [
        ("Check-Security-01", "applied", "pass"), ("Check-Security-17", "applied", "pass")]
    assert login(host.addr, "debian", password=PASSWORD) == "denied"
    runs = cli("--runs")
    assert runs.returncode == 0 and f"{h['run']}  applied  (2 fixes applied)" in runs.stdout
    undone = cli("--undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "Check-Security-01: undone" in undone.stdout
    assert checksums(host) == before
    assert login(host.addr, "debian", password=PASSWORD) == "ok debian"
    again = cli("--undo", h["run"])
    assert "already undone" in again.stdout
