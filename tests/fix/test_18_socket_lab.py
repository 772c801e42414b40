"""Lab tests of fix 18 (issue 19) on the hosts test_18_08_fix_lab.py does not cover: an sshd started by
``ssh.socket`` (socket activation as Ubuntu 22.10 and 23.04 lay it out; 24.04's generator, offline)
and a host without SELinux.

The lab hosts have no systemd as PID 1, so what systemd would do with the socket cannot run here. What
can be proven is proven with the real tools: the audit reads the unit files and names ``ssh.socket`` as
deciding the port; the plan drops a ``ListenStream`` drop-in next to sshd's (22 and the new port in phase
1, only the new port in phase 2); ``systemd-analyze verify`` accepts the unit with that drop-in; applying
both phases' file edits to a copy of the root makes an offline scan pass 18; and the real apply over SSH
(real sshd answering on each port, its socket's activation skipped without systemd) succeeds and is
undone byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nectar_audit import catalog, engine
from nectar_audit.checks.ssh_port_fix import SOCKET_DROPIN, SSHD_DROPIN
from nectar_audit.config import Config
from nectar_audit.fix.run import plan_host
from nectar_audit.remedy import FileChange, Remedy
from nectar_audit.targets.rootfs import RootFsTarget
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab
from tests.fix.test_18_08_fix_lab import NEW, _answers, _cli, _env, _fix_argv, _prepare_root, moved_host  # noqa: F401

pytestmark = pytest.mark.lab

CHECK = "Check-Security-18"
CONFIG = Config(extra={"fix": {"ssh_port": NEW}})
SOCKET = SOCKET_DROPIN.format(unit="ssh.socket")
# ssh.socket as Ubuntu's openssh-server ships it (24.04).
UBUNTU_SSH_SOCKET = """[Unit]
Description=OpenBSD Secure Shell server socket
Before=sockets.target ssh.service
ConditionPathExists=!/etc/ssh/sshd_not_to_be_run

[Socket]
ListenStream=22
Accept=no
FreeBind=yes

[Install]
WantedBy=sockets.target
RequiredBy=ssh.service
"""
UNIT = "/usr/lib/systemd/system/ssh.socket"
# `systemctl enable ssh.socket` makes these two links; ssh.service itself is disabled (the socket starts it).
ENABLE_LINKS = ("/etc/systemd/system/sockets.target.wants/ssh.socket",
                "/etc/systemd/system/ssh.service.requires/ssh.socket")
GENERATOR = "/usr/lib/systemd/system-generators/sshd-socket-generator"
SERVICE_LINK = "/etc/systemd/system/multi-user.target.wants/ssh.service"
# Every file a run may touch on this host: byte-identical (or absent) again after the undo.
TOUCHED = ("/etc/nftables.conf", "/etc/ssh/sshd_config", SSHD_DROPIN, SOCKET,
           "/etc/fail2ban/jail.d/zz-nectar-audit-18.local")


def _socket_activated(root: Path) -> None:
    """Ubuntu's socket-activation layout in ``root``: ssh.socket enabled, ssh.service not."""
    unit = root / UNIT.lstrip("/")
    unit.write_text(UBUNTU_SSH_SOCKET)
    (root / SERVICE_LINK.lstrip("/")).unlink(missing_ok=True)
    for link in ENABLE_LINKS:
        p = root / link.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.unlink(missing_ok=True)
        p.symlink_to(UNIT)


def _entries() -> list[catalog.Entry]:
    return [e for e in catalog.entries() if e.id == CHECK]


def _remedy(target: Any) -> Remedy:
    fix = plan_host(target, _entries(), CONFIG)
    assert fix.error is None, fix.error
    [remedy] = fix.remedies
    assert remedy.refused is None, remedy.refused
    return remedy


def _change(remedy: Remedy, path: str) -> FileChange:
    [change] = [c for c in remedy.changes if c.path == path]
    return change


def _write_changes(root: Path, remedy: Remedy) -> None:
    """The plan's file edits, as the host's script leaves them (whole files and line edits alike)."""
    for change in remedy.changes:
        p = root / change.path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(change.after)
        p.chmod(change.mode)


def _scan_18(root: Path) -> dict[str, Any]:
    proc = subprocess.run(_cli("scan", f"root:{root}", "--checks", "18", "--format", "json", "--config",
                               os.devnull), capture_output=True, text=True, timeout=300, env=_env(), check=False)
    [check] = json.loads(proc.stdout)["hosts"][0]["checks"]
    assert check["id"] == CHECK
    return dict(check)


def _verify(root: Path) -> str:
    lab.require_binary("systemd-analyze")
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "ssh.socket"], capture_output=True,
                          text=True, timeout=120, check=False)
    return proc.stdout + proc.stderr


def _verify_unit(root: Path) -> None:
    """systemd-analyze verify: ssh.socket with our drop-in loads without a complaint about either file."""
    out = _verify(root)
    # It also checks what ssh.socket pulls in (ssh.service, in a root it cannot run): only complaints
    # about the socket or a drop-in of ours count.
    bad = [line for line in out.splitlines() if "ssh.socket" in line or "nectar-audit" in line]
    assert not bad, out
    # The control: a bad value in a sibling drop-in is reported, so verify did read that directory.
    control = root / SOCKET.lstrip("/").replace("00-nectar-audit-18.conf", "zz-control.conf")
    control.write_text("[Socket]\nListenStream=99999\n")
    try:
        assert "zz-control.conf:2: Failed to parse address value" in _verify(root)
    finally:
        control.unlink()


def _digests(root: Path) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for path in TOUCHED:
        p = root / path.lstrip("/")
        out[path] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return out


@pytest.fixture
def copy_root(tmp_path: Path) -> Iterator[Path]:
    """A place for a copy of the host's /etc: what the plan's edits make of it is scanned offline."""
    path = tmp_path / "planned"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _copy_host(host: lab.ChrootHost, dest: Path) -> Path:
    """The parts of the host's root an offline audit of 18 reads (/etc, /usr/lib/systemd, sshd, /home)."""
    for part in ("etc", "home", "root", "usr/lib/systemd/system", "usr/lib/os-release", "usr/sbin/sshd"):
        src = host.path(f"/{part}")
        if not src.exists():
            continue
        (dest / part).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest / part, symlinks=True)
        else:
            shutil.copy2(src, dest / part, follow_symlinks=False)
    for link in ("lib", "bin", "sbin"):  # merged /usr, as on the host
        if host.path(f"/{link}").is_symlink() and not (dest / link).exists():
            (dest / link).symlink_to(os.readlink(host.path(f"/{link}")))
    return dest


def test_socket_activated_sshd_plans_the_listen_streams_and_applies(moved_host: Any,  # noqa: F811
                                                                    copy_root: Path) -> None:
    host, key, known, procs = moved_host
    _socket_activated(host.path("/"))
    target = ScriptTarget(host.name, host.sh_argv(), timeout=120)
    # The audit names ssh.socket as deciding the port (its ListenStream=22), from the real unit files.
    result, _ = engine.audit(target, _entries(), CONFIG)
    assert result.error is None, result.error
    [check] = result.checks
    assert check.status.value == "fail"
    text = json.dumps(check.to_json())
    assert "ssh.socket (socket activation)" in text and UNIT in text, text

    # Phase 1: sshd's drop-in and ssh.socket's, both with 22 and the new port.
    one = _remedy(target)
    assert one.next_phase and one.confirm_port == NEW
    assert _change(one, SOCKET).after.endswith(f"[Socket]\nListenStream=\nListenStream=22\nListenStream={NEW}\n")
    assert f"Port 22\nPort {NEW}\n" in _change(one, SSHD_DROPIN).after
    assert any("restart ssh.socket" in s.sh for s in one.activate)
    assert not any("semanage" in s.sh for s in (*one.commands, *one.activate))

    # The planned state, offline: systemd's own parser takes the drop-in; phase 2 planned from it closes 22.
    planned = _copy_host(host, copy_root)
    _write_changes(planned, one)
    _verify_unit(planned)
    assert _scan_18(planned)["status"] == "fail"  # 22 still open after phase 1, by design
    two = _remedy(RootFsTarget(str(planned)))
    assert not two.next_phase
    assert _change(two, SOCKET).after.endswith(f"[Socket]\nListenStream=\nListenStream={NEW}\n")
    assert f"Port {NEW}\n" in _change(two, SSHD_DROPIN).after and "Port 22\n" not in _change(two, SSHD_DROPIN).after
    _write_changes(planned, two)
    _verify_unit(planned)
    after = _scan_18(planned)
    assert after["status"] == "pass", after
    assert "ssh.socket" in json.dumps(after)  # passing because of the socket's drop-in, not sshd_config

    # The real apply over SSH: both phases; without systemd only sshd's own Port lines take effect (the
    # socket's restart is skipped, not failed), and real sshd answers on the new port only.
    before = _digests(host.path("/"))
    proc = subprocess.run(_fix_argv(host, key, known, "--format", "json"), capture_output=True, text=True,
                          timeout=300, env=_env(), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outcomes = json.loads(proc.stdout)["hosts"][0]["outcomes"]
    assert [(o["check"], o["status"], o["after"]) for o in outcomes] == [(CHECK, "applied", "pass")], outcomes
    assert host.path(SOCKET).read_text().endswith(f"ListenStream=\nListenStream={NEW}\n")
    assert _answers(host, key, known, NEW) and not _answers(host, key, known, 22)

    # fix --undo puts back the last run (phase 2), then the one before it (phase 1): every file as before.
    for port in (NEW, 22):
        undo = subprocess.run(_undo_argv(host, key, known, port), capture_output=True, text=True, timeout=300,
                              env=_env(), check=False)
        assert undo.returncode == 0, undo.stdout + undo.stderr
    assert _digests(host.path("/")) == before
    assert _answers(host, key, known, 22) and not _answers(host, key, known, NEW)
    assert procs["sshd"].poll() is None


def _undo_argv(host: lab.ChrootHost, key: Path, known: Path, port: int) -> list[str]:
    argv = _fix_argv(host, key, known)
    target = next(a for a in argv if a.endswith(f"@{host.addr}"))
    argv = [f"{target}:{port}" if a == target else a for a in argv]
    return [a for a in argv if a not in ("--apply",)] + ["--undo"]


def test_no_selinux_no_semanage_and_the_apply_succeeds(moved_host: Any, copy_root: Path) -> None:  # noqa: F811
    host, key, known, procs = moved_host
    assert not host.path("/sys/fs/selinux/enforce").exists()
    assert host.exec(["test", "-e", "/sys/fs/selinux/enforce"]).returncode != 0  # as the host sees it
    one = _remedy(ScriptTarget(host.name, host.sh_argv(), timeout=120))
    steps = (*one.commands, *one.validate, *one.activate)
    assert steps and not any("semanage" in s.sh for s in steps), [s.sh for s in steps]
    # The same host with SELinux enforcing (the file the planner reads, offline) does get the step: the
    # assertion above is about SELinux's absence, not a planner that never plans it.
    planned = _copy_host(host, copy_root)
    (planned / "sys/fs/selinux").mkdir(parents=True)
    (planned / "sys/fs/selinux/enforce").write_text("1")
    enforcing = _remedy(RootFsTarget(str(planned)))
    assert any(s.sh.startswith(f"semanage port -a -t ssh_port_t -p tcp {NEW}") for s in enforcing.commands)
    proc = subprocess.run(_fix_argv(host, key, known, "--format", "json"), capture_output=True, text=True,
                          timeout=300, env=_env(), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outcomes = json.loads(proc.stdout)["hosts"][0]["outcomes"]
    assert [(o["check"], o["status"], o["after"]) for o in outcomes] == [(CHECK, "applied", "pass")], outcomes
    assert "semanage" not in proc.stdout
    assert _answers(host, key, known, NEW) and not _answers(host, key, known, 22)
    assert procs["sshd"].poll() is None


def test_generator_image_plans_no_socket_drop_in_and_ends_passing(lab_root: Path, tmp_path: Path) -> None:
    """Ubuntu 24.04's layout: sshd-socket-generator turns sshd's Port lines into ssh.socket's ListenStream at
    boot, so the plan only changes sshd's drop-in; the audit of the image (which synthesizes what the
    generator writes) follows both phases to a pass. The generator itself (Ubuntu's binary) cannot run here."""
    _, pub = lab.make_ssh_keypair(tmp_path)
    _prepare_root(lab_root, pub)
    _socket_activated(lab_root)
    generator = lab_root / GENERATOR.lstrip("/")
    generator.parent.mkdir(parents=True, exist_ok=True)
    generator.write_text("#!/bin/sh\n# stands for Ubuntu's sshd-socket-generator (only its presence is read)\n")
    generator.chmod(0o755)
    target = RootFsTarget(str(lab_root))
    one = _remedy(target)
    assert one.next_phase and f"Port 22\nPort {NEW}\n" in _change(one, SSHD_DROPIN).after
    assert not [c for c in one.changes if "ssh.socket" in c.path]  # the generator writes the socket's ports
    assert any("systemctl restart ssh.socket" in s.sh and "/run/systemd/system" in s.sh for s in one.activate)
    _write_changes(lab_root, one)
    mid = _scan_18(lab_root)
    assert mid["status"] == "fail" and "sshd-socket-generator" in json.dumps(mid), mid
    two = _remedy(target)
    assert not two.next_phase and not [c for c in two.changes if "ssh.socket" in c.path]
    _write_changes(lab_root, two)
    after = _scan_18(lab_root)
    assert after["status"] == "pass", after
