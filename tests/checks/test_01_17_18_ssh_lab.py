"""Lab tests for checks 01, 17 and 18: real Debian roots and real sshd answering.

(a) Offline: ``nectar-audit scan root:<overlay> --checks 01,17,18 --format json`` on an overlay of the
    cached Debian root, configured into known states.
(b) Live: the gather script runs inside a network namespace whose /etc/ssh, /etc/passwd and /etc/group
    are the test's own (``ip netns exec`` bind-mounts them), so real ``sshd -T`` answers per user, and a
    real sshd listens; and inside a chroot host booted on the Debian root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.catalog import entries
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.facts import Facts
from nectar_audit.facts.ssh.sshd import sshd_config
from nectar_audit.model import CheckResult, HostResult
from nectar_audit.targets.script_runner import ScriptTarget
from tests import REPO, SAMPLES, lab

pytestmark = pytest.mark.lab

SAMPLES = SAMPLES / "sshd"
IDS = ("Check-Security-01", "Check-Security-17", "Check-Security-18")
REFUSAL = (SAMPLES / "authorized_keys" / "root-cloud-init-refusal").read_text()
PLAIN = (SAMPLES / "authorized_keys" / "root-plain").read_text()


# --------------------------------------------------------------------------------------------------
# (a) offline root:PATH
# --------------------------------------------------------------------------------------------------
def scan_root(root: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "NO_COLOR": "1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nectar_audit",
            "scan",
            f"root:{root}",
            "--checks",
            "01,17,18",
            "--format",
            "json",
            "--config",
            os.devnull,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    host = doc["hosts"][0]
    assert host["error"] is None
    return proc.returncode, {c["id"]: c for c in host["checks"]}


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(text)


def _add_user(root: Path, name: str, uid: int, groups: tuple[str, ...] = ()) -> None:
    _append(root / "etc/passwd", f"{name}:x:{uid}:{uid}:{name}:/home/{name}:/bin/bash\n")
    _append(root / "etc/group", f"{name}:x:{uid}:\n")
    if groups:
        text = (root / "etc/group").read_text().splitlines()
        out = []
        for line in text:
            parts = line.split(":")
            if parts[0] in groups:
                members = [m for m in parts[3].split(",") if m] + [name]
                parts[3] = ",".join(members)
            out.append(":".join(parts))
        (root / "etc/group").write_text("\n".join(out) + "\n")


def _root_keys(root: Path, text: str) -> None:
    d = root / "root/.ssh"
    d.mkdir(mode=0o700, exist_ok=True)
    (d / "authorized_keys").write_text(text)


def state_pristine(root: Path) -> None:
    pass


def state_cloud_init_dropin(root: Path) -> None:
    dropins = root / "etc/ssh/sshd_config.d"
    _append(dropins / "50-cloud-init.conf", "PasswordAuthentication yes\n")
    _append(dropins / "60-cloudimg-settings.conf", "PasswordAuthentication no\n")


def state_match_user(root: Path) -> None:
    _add_user(root, "alice", 1001)
    _append(root / "etc/ssh/sshd_config.d/10-no-passwords.conf", "PasswordAuthentication no\n")
    _append(root / "etc/ssh/sshd_config", "\nMatch User alice\n    PasswordAuthentication yes\n")


def state_root_refusal_keys(root: Path) -> None:
    _append(root / "etc/ssh/sshd_config.d/10-no-passwords.conf", "PasswordAuthentication no\n")
    _root_keys(root, REFUSAL)


def state_root_plain_key(root: Path) -> None:
    _root_keys(root, REFUSAL + PLAIN)


def state_permit_root_yes(root: Path) -> None:
    _append(root / "etc/ssh/sshd_config.d/00-root.conf", "PermitRootLogin yes\n")


def state_port_2222(root: Path) -> None:
    _append(root / "etc/ssh/sshd_config.d/00-port.conf", "Port 2222\n")


MATCH_LINE = 124  # the Debian 12 sshd_config has 122 lines; a blank line, then the Match line


OFFLINE: dict[str, tuple[Callable[[Path], None], dict[str, tuple[str, str]]]] = {
    # state: (setup, {check id: (status, summary prefix)})
    "pristine": (
        state_pristine,
        {
            "Check-Security-01": (
                "fail",
                "password login is on: PasswordAuthentication is not set anywhere, so "
                "OpenSSH's default 'yes' applies (affects any account created later)",
            ),
            "Check-Security-17": (
                "warn",
                "root can log in over SSH with a key (PermitRootLogin is not set anywhere, "
                "so OpenSSH's default 'prohibit-password' applies); root has no authorized "
                "key now",
            ),
            "Check-Security-18": (
                "fail",
                "SSH listens on port 22: 22 is the default port every scanner tries",
            ),
        },
    ),
    "cloud_init_dropin": (
        state_cloud_init_dropin,
        {
            "Check-Security-01": (
                "fail",
                "password login is on: PasswordAuthentication yes in "
                "/etc/ssh/sshd_config.d/50-cloud-init.conf:1 (written by cloud-init",
            ),
        },
    ),
    "match_user": (
        state_match_user,
        {
            "Check-Security-01": (
                "fail",
                f"Match User alice (/etc/ssh/sshd_config:{MATCH_LINE}) turns on password "
                f"login for alice: PasswordAuthentication yes in "
                f"/etc/ssh/sshd_config:{MATCH_LINE + 1}",
            ),
        },
    ),
    "root_refusal_keys": (
        state_root_refusal_keys,
        {
            "Check-Security-01": (
                "pass",
                "password and keyboard-interactive login are off for every account",
            ),
            "Check-Security-17": (
                "pass",
                "root's SSH login is refused by cloud-init: every key in "
                "/root/.ssh/authorized_keys (1 key) is forced to print",
            ),
        },
    ),
    "root_plain_key": (
        state_root_plain_key,
        {
            "Check-Security-17": (
                "warn",
                "root can log in over SSH with 1 key (PermitRootLogin is not set anywhere",
            ),
        },
    ),
    "permit_root_yes": (
        state_permit_root_yes,
        {
            "Check-Security-17": (
                "fail",
                "root can log in over SSH with a password or a key: PermitRootLogin yes "
                "in /etc/ssh/sshd_config.d/00-root.conf:1",
            ),
        },
    ),
    "port_2222": (
        state_port_2222,
        {
            "Check-Security-18": (
                "pass",
                "SSH listens on port 2222, not 22 and not below 1024; remember: the Nectar security group",
            ),
        },
    ),
}


@pytest.mark.parametrize("state", sorted(OFFLINE))
def test_offline_states(state: str, lab_root: Path) -> None:
    setup, expected = OFFLINE[state]
    assert len((lab_root / "etc/ssh/sshd_config").read_text().splitlines()) == MATCH_LINE - 2
    setup(lab_root)
    rc, checks = scan_root(lab_root)
    assert set(checks) == set(IDS)
    for cid, (status, prefix) in expected.items():
        assert (checks[cid]["status"], checks[cid]["summary"][: len(prefix)]) == (status, prefix), checks[cid]
    assert rc == (1 if any(c["status"] == "fail" for c in checks.values()) else 0)


# --------------------------------------------------------------------------------------------------
# (b) live: real sshd -T inside a namespace host
# --------------------------------------------------------------------------------------------------
LIVE_PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:"
    "/usr/sbin/nologin\nalice:x:1001:1001::/home/alice:/bin/bash\nbob:x:1002:1002::/home/bob:/bin/sh\n"
)
LIVE_GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\nalice:x:1001:\nbob:x:1002:\nsftp:x:1003:bob\n"


def _ssh_dir(tmp: Path, config: str, extra: dict[str, str] | None = None) -> Path:
    """The host's /etc/ssh. Its host key stays outside it (under tmp), so no private key is ever copied
    into /etc/netns/, where other audits running on this machine could come across it."""
    d = tmp / "ssh"
    (d / "sshd_config.d").mkdir(parents=True)
    keydir = tmp / "hostkey"
    keydir.mkdir(mode=0o700)
    key = keydir / "ssh_host_ed25519_key"
    lab.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], timeout=30)
    (d / "sshd_config").write_text(
        f"HostKey {key}\nPidFile none\nInclude /etc/ssh/sshd_config.d/*.conf\n" + config
    )
    for rel, text in (extra or {}).items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def _judge(target: ScriptTarget) -> tuple[HostResult, dict[str, CheckResult], Any]:
    chosen = [e for e in entries() if e.id in IDS]
    result, bundle = audit(target, chosen, Config())
    assert result.error is None, result.error
    return result, {c.id: c for c in result.checks}, bundle


@pytest.fixture
def live_prereqs() -> None:
    lab.require_netns()
    lab.require_binary("sshd")
    lab.require_binary("ssh-keygen")
    lab.require(Path("/run/sshd").is_dir() or os.geteuid() == 0, "sshd needs /run/sshd")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


@pytest.fixture
def netns_ssh(tmp_path: Path, live_prereqs: None) -> Iterator[Callable[..., Any]]:
    """Factory: a netns host whose /etc/ssh, passwd and group are the test's."""
    stack: list[Any] = []

    def make(config: str, extra: dict[str, str] | None = None) -> Any:
        d = _ssh_dir(tmp_path / f"h{len(stack)}", config, extra)
        cm = lab.netns_host(etc={"ssh": d, "passwd": LIVE_PASSWD, "group": LIVE_GROUP})
        host = cm.__enter__()
        stack.append(cm)
        return host

    try:
        yield make
    finally:
        while stack:
            stack.pop().__exit__(None, None, None)


def _target(host: Any) -> ScriptTarget:
    return ScriptTarget(f"lab:{host.name}", ["ip", "netns", "exec", host.name, "sh", "-s"], timeout=120)


def test_live_sshd_T_runs_once_when_no_match_block_exists(netns_ssh: Callable[..., Any]) -> None:
    host = netns_ssh("PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\n")
    _, checks, bundle = _judge(_target(host))
    t = bundle.commands["sshd.T"].stdout
    # Without a Match line, -C cannot change the answer: root's run stands for every account.
    assert t.count("@@same root") == 3 and t.count("passwordauthentication no") == 1
    cfg = sshd_config(Facts(bundle, Config()))
    assert sorted(cfg.runtime) == ["alice", "bob", "nectar-new-user", "root"]
    assert all(v == cfg.runtime["root"] for v in cfg.runtime.values())
    assert checks["Check-Security-01"].status.value == "pass"


@pytest.mark.parametrize("include", ["Include {outside}", "  INCLUDE /nonexistent/x.conf {dir}/out*.conf"])
def test_live_sshd_T_per_user_when_an_include_outside_etc_ssh_has_a_match(
        netns_ssh: Callable[..., Any], tmp_path: Path, include: str) -> None:
    outside = tmp_path / "outside.conf"
    outside.write_text("Match User bob\n    PasswordAuthentication yes\n")
    line = include.format(outside=outside, dir=tmp_path)
    host = netns_ssh(f"PasswordAuthentication no\nKbdInteractiveAuthentication no\n{line}\n")
    _, checks, bundle = _judge(_target(host))
    t = bundle.commands["sshd.T"].stdout
    assert "@@same" not in t and t.count("@@rc 0") == 4
    assert checks["Check-Security-01"].status.value == "fail"
    assert "bob" in checks["Check-Security-01"].summary


def test_live_sshd_T_per_user_finds_match_user_block(netns_ssh: Callable[..., Any]) -> None:
    host = netns_ssh(
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\n"
        "Match User alice\n    PasswordAuthentication yes\n"
    )
    _, checks, bundle = _judge(_target(host))
    t = bundle.commands["sshd.T"].stdout
    # Real sshd -T answered for root, the probe account and every login-capable account of this passwd.
    assert [line[7:] for line in t.splitlines() if line.startswith("@@user ")] == [
        "root",
        "nectar-new-user",
        "alice",
        "bob",
    ]
    assert t.count("@@rc 0") == 4
    c01 = checks["Check-Security-01"]
    assert c01.status.value == "fail"
    assert c01.summary == (
        "Match User alice (/etc/ssh/sshd_config:7) turns on password login for alice: "
        "PasswordAuthentication yes in /etc/ssh/sshd_config:8"
    )
    sources = [e.source for e in c01.findings[0].evidence]
    assert "command: sshd -T -C user=alice,host=198.51.100.7,addr=198.51.100.7" in sources


def test_live_sshd_T_sees_what_the_files_hide(netns_ssh: Callable[..., Any]) -> None:
    # The .cfg include is not among the files the audit reads; real sshd -T reads it and wins.
    host = netns_ssh(
        "Include /etc/ssh/extra.d/*.cfg\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
        {"extra.d/a.cfg": "PasswordAuthentication yes\n"},
    )
    _, checks, _ = _judge(_target(host))
    c01 = checks["Check-Security-01"]
    assert [f.status.value for f in c01.findings] == ["fail"]
    assert c01.summary == (
        "password login is on: sshd -T reports PasswordAuthentication yes (not found in the "
        "files the audit read) (affects alice, bob, any account created later)"
    )


def test_live_all_off_and_root_denied(netns_ssh: Callable[..., Any]) -> None:
    host = netns_ssh(
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin yes\n"
        "DenyUsers root\nPort 2222\n"
    )
    _, checks, _ = _judge(_target(host))
    assert checks["Check-Security-01"].status.value == "pass"
    assert checks["Check-Security-01"].summary.startswith(
        "password and keyboard-interactive login are off for every account (root, alice, bob, any account "
        "created later) from any address (per sshd -T)"
    )
    assert (checks["Check-Security-17"].status.value, checks["Check-Security-17"].summary) == (
        "pass",
        "root cannot log in over SSH: root is kept out by DenyUsers root in /etc/ssh/sshd_config:7",
    )
    assert checks["Check-Security-18"].status.value == "pass"
    assert checks["Check-Security-18"].summary.startswith("SSH listens on port 2222, not 22")


def test_live_running_sshd_on_old_port(netns_ssh: Callable[..., Any]) -> None:
    host = netns_ssh("PasswordAuthentication no\nKbdInteractiveAuthentication no\nPort 22\n")
    sshd = host.spawn(["/usr/sbin/sshd", "-D", "-e"])
    lab.wait_for_tcp(host.addr, 22)
    # The port is changed in the file but sshd is not restarted.
    conf = host.etc_dir / "ssh" / "sshd_config"
    conf.write_text(conf.read_text().replace("Port 22\n", "Port 2222\n"))
    _, checks, _ = _judge(_target(host))
    c18 = checks["Check-Security-18"]
    assert [f.status.value for f in c18.findings] == ["fail"], c18.findings
    assert c18.summary == (
        "the running sshd still listens on port 22, which the configuration no longer names: "
        "restart it (sudo systemctl restart ssh): 22 is the default port every scanner tries "
        "(it also listens on 2222)"
    )
    assert sshd.poll() is None


# --------------------------------------------------------------------------------------------------
# (b) live: a chroot host on the Debian root, real sshd running
# --------------------------------------------------------------------------------------------------
def test_chroot_host_debian(lab_root: Path) -> None:
    lab.require_netns()
    _add_user(lab_root, "debian", 1000, groups=("sudo",))
    _append(lab_root / "etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication no\n")
    _append(lab_root / "etc/ssh/sshd_config", "\nMatch Group sudo\n    PasswordAuthentication yes\n")
    _root_keys(lab_root, REFUSAL)
    with lab.chroot_host(lab_root, hostname="sshd-lab") as host:
        sshd = host.start(["/usr/sbin/sshd", "-D", "-e"])
        lab.wait_for_tcp(host.addr, 22)
        argv = host.sh_argv()
        t0 = time.monotonic()
        result, checks, bundle = _judge(ScriptTarget("lab:sshd-lab", argv, timeout=120))
        assert time.monotonic() - t0 < 60
        assert result.hostname == "sshd-lab"
        assert "@@user debian" in bundle.commands["sshd.T"].stdout
        c01, c17, c18 = (checks[i] for i in IDS)
        assert (c01.status.value, c01.summary) == (
            "fail",
            f"Match Group sudo (/etc/ssh/sshd_config:{MATCH_LINE}) turns on password login for debian: "
            f"PasswordAuthentication yes in /etc/ssh/sshd_config:{MATCH_LINE + 1}",
        )
        assert c17.status.value == "pass"
        assert c17.summary.startswith("root's SSH login is refused by cloud-init")
        assert (c18.status.value, c18.summary) == (
            "fail",
            "SSH listens on port 22: 22 is the default port every scanner tries",
        )
        assert any("the running sshd listens on 22" in e.detail for e in c18.findings[0].evidence)
        assert sshd.poll() is None, host.log(sshd)
