"""Remote audits against real OpenSSH servers: lab hosts are network namespaces (see tests/lab/sshd_hosts.py).

Covers: root and sudo logins (same results as a local audit of the same host), a sudo that wants a
password, an unprivileged audit, hosts whose own /etc differ, ProxyJump through a bastion namespace,
a wrong key, unknown/accepted/changed host keys, a host that accepts TCP and never speaks SSH, hosts
that are down, and a fleet mixing all of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.catalog import implemented
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.evidence.needs import Needs
from nectar_audit.facts.accounts.passwd import sanitize_shadow
from nectar_audit.fleet import run_fleet
from nectar_audit.targets import TargetError, parse_target
from nectar_audit.targets.script_runner import ScriptTarget
from nectar_audit.targets.ssh import HOST_KEYS_ACCEPT_NEW, SshOptions, SshTarget
from tests import lab
from tests.lab import sshd_hosts as S

pytestmark = pytest.mark.lab

VOLATILE = ("target", "started", "duration_s")
SMALL = Needs(files=("/etc/hostname", "/etc/shadow"), sanitize={"/etc/shadow": sanitize_shadow})


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    S.require_ssh_lab()
    return S.client_key(tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def hosts(keys: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[S.SshLabHost]]:
    """Two hosts with different hostnames and sshd configs."""
    _, pub = keys
    authorized = {"root": pub, "auditor": pub, "pwuser": pub}
    base = tmp_path_factory.mktemp("hosts")
    with S.ssh_host(base / "a", authorized, hostname="lab-alpha", sshd_extra="MaxAuthTries 3") as a, \
            S.ssh_host(base / "b", authorized, hostname="lab-bravo", sshd_extra="MaxAuthTries 5") as b:
        yield [a, b]


def _options(keys: tuple[Path, str], known_hosts: Path, **kw: Any) -> SshOptions:
    base: dict[str, Any] = {"identities": (str(keys[0]),), "config_files": (),
                            "known_hosts": str(known_hosts), "use_agent": False, "connect_timeout": 10,
                            "command_timeout": 60}
    base.update(kw)
    return SshOptions(**base)


@pytest.fixture
def known(hosts: list[S.SshLabHost], tmp_path: Path) -> Path:
    kh = tmp_path / "known_hosts"
    kh.write_text("".join(h.known_hosts_line() for h in hosts))
    return kh


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in VOLATILE}


def test_remote_json_equals_local_json_as_root_and_via_sudo(hosts: list[S.SshLabHost], keys: tuple[Path, str],
                                                           known: Path) -> None:
    host = hosts[0]
    entries, config = implemented(), Config()
    opts = _options(keys, known)
    as_root, root_bundle = audit(SshTarget(host.addr, user="root", options=opts), entries, config)
    via_sudo, sudo_bundle = audit(SshTarget(host.addr, user="auditor", options=opts), entries, config)
    local, local_bundle = audit(ScriptTarget("local", host.local_argv()), entries, config)
    assert as_root.error is None and via_sudo.error is None and local.error is None
    assert root_bundle is not None and sudo_bundle is not None and local_bundle is not None
    assert root_bundle.uid == 0 and sudo_bundle.uid == 0
    assert as_root.hostname == "lab-alpha"
    assert _strip(as_root.to_json()) == _strip(local.to_json())
    assert _strip(via_sudo.to_json()) == _strip(local.to_json())
    # Same evidence: every file outside /proc (uptime, counters) is byte-identical.
    for bundle in (root_bundle, sudo_bundle):
        assert {p: r for p, r in bundle.files.items() if not p.startswith("/proc/")} == \
            {p: r for p, r in local_bundle.files.items() if not p.startswith("/proc/")}
        assert bundle.stats == local_bundle.stats


def test_each_host_is_audited_with_its_own_etc(hosts: list[S.SshLabHost], keys: tuple[Path, str], known: Path,
                                               tmp_path: Path) -> None:
    opts = _options(keys, known)
    targets = [SshTarget(h.addr, user="root", name=f"root@{h.net.hostname}", options=opts) for h in hosts]
    run = run_fleet(targets, implemented(), Config(), concurrency=2, save_evidence=str(tmp_path / "ev"))
    assert [r.error for r in run.results] == [None, None]
    assert [r.hostname for r in run.results] == ["lab-alpha", "lab-bravo"]
    saved = {p.name: json.loads(p.read_text()) for p in (tmp_path / "ev").iterdir()}
    assert sorted(saved) == ["root@lab-alpha.json", "root@lab-bravo.json"]
    assert saved["root@lab-alpha.json"]["files"]["/etc/hostname"]["content"] == "lab-alpha\n"
    assert saved["root@lab-bravo.json"]["files"]["/etc/hostname"]["content"] == "lab-bravo\n"


def test_sudo_that_wants_a_password_is_a_clear_error(hosts: list[S.SshLabHost], keys: tuple[Path, str],
                                                     known: Path) -> None:
    t0 = time.monotonic()
    result, bundle = audit(SshTarget(hosts[0].addr, user="pwuser", options=_options(keys, known)),
                           implemented(), Config())
    assert bundle is None
    assert result.error is not None
    assert "sudo -n refused: a password is required for pwuser" in result.error
    assert time.monotonic() - t0 < 15


def test_unprivileged_audit_with_no_sudo(hosts: list[S.SshLabHost], keys: tuple[Path, str],
                                         known: Path) -> None:
    target = SshTarget(hosts[0].addr, user="auditor", options=_options(keys, known, sudo=False))
    bundle = target.gather(SMALL)
    assert bundle.uid == S.USERS["auditor"]
    assert not bundle.is_root
    assert bundle.files["/etc/shadow"].error is not None
    assert bundle.unreadable_reason("/etc/shadow", "Permission denied") == "needs root to read /etc/shadow"


def test_wrong_key_is_refused(hosts: list[S.SshLabHost], known: Path, tmp_path: Path) -> None:
    other, _ = S.client_key(tmp_path / "other")
    opts = SshOptions(identities=(str(other),), config_files=(), known_hosts=str(known), use_agent=False)
    result, _ = audit(SshTarget(hosts[0].addr, user="root", options=opts), implemented(), Config())
    assert (result.error or "").startswith(
        f"root@{hosts[0].addr}: authentication refused (public keys tried: {other};")


def test_host_keys_unknown_accepted_new_and_changed(hosts: list[S.SshLabHost], keys: tuple[Path, str],
                                                    tmp_path: Path) -> None:
    host = hosts[1]
    kh = tmp_path / "kh"
    kh.write_text(hosts[0].known_hosts_line())  # knows the other host only
    strict = SshTarget(host.addr, user="root", options=_options(keys, kh))
    with pytest.raises(TargetError, match=r"host key of .* is unknown"):
        strict.gather(SMALL)
    tofu = SshTarget(host.addr, user="root", options=_options(keys, kh, host_keys=HOST_KEYS_ACCEPT_NEW))
    assert tofu.gather(SMALL).uid == 0
    assert f"{host.addr} {host.bare_key}\n" in kh.read_text()
    assert SshTarget(host.addr, user="root", options=_options(keys, kh)).gather(SMALL).uid == 0
    # The host "is reinstalled": known_hosts holds host A's key under host B's address.
    changed = tmp_path / "kh_changed"
    changed.write_text(hosts[0].known_hosts_line(host.addr))
    for policy in ("strict", HOST_KEYS_ACCEPT_NEW):
        target = SshTarget(host.addr, user="root", options=_options(keys, changed, host_keys=policy))
        result, bundle = audit(target, implemented(), Config())
        assert bundle is None
        assert result.error is not None and result.error.startswith(f"HOST KEY CHANGED for {host.addr}")
    assert changed.read_text() == hosts[0].known_hosts_line(host.addr)


def test_proxyjump_through_a_bastion(keys: tuple[Path, str], tmp_path: Path) -> None:
    """root ns -> bastion ns (10.200.x.2) -> target ns, which listens only on a link the bastion has."""
    key, pub = keys
    inner_bastion, inner_target = "192.168.213.1", "192.168.213.2"
    with S.ssh_host(tmp_path / "bastion", {"root": pub, "auditor": pub}, hostname="lab-bastion") as bastion, \
            S.ssh_host(tmp_path / "inner", {"root": pub}, hostname="lab-inner", listen=inner_target,
                       before_start=lambda net: S.link_namespaces(bastion.net, net, inner_bastion,
                                                                  inner_target)) as inner:
            kh = tmp_path / "known_hosts"
            kh.write_text(bastion.known_hosts_line() + inner.known_hosts_line(inner_target))
            config = tmp_path / "ssh_config"
            config.write_text(
                f"Host jump\n  HostName {bastion.addr}\n  User auditor\n  IdentityFile {key}\n\n"
                f"Host inner\n  HostName {inner_target}\n  User root\n  ProxyJump jump\n"
                f"  IdentityFile {key}\n"
            )
            opts = SshOptions(config_files=(str(config),), known_hosts=str(kh), use_agent=False,
                              connect_timeout=5)
            result, bundle = audit(parse_target("inner", opts), implemented(), Config())
            assert result.error is None, result.error
            assert bundle is not None and result.hostname == "lab-inner"
            assert f"Accepted publickey for root from {inner_bastion}" in inner.net.log(inner.sshd)
            assert "Accepted publickey for auditor" in bastion.net.log(bastion.sshd)
            # Without the bastion the target is out of reach.
            direct, _ = audit(SshTarget(inner_target, user="root", options=opts), implemented(), Config())
            assert direct.error is not None
            # The jump host gets the same host-key policy: unknown to known_hosts -> refused, named as such.
            kh.write_text(inner.known_hosts_line(inner_target))
            refused, _ = audit(parse_target("inner", opts), implemented(), Config())
            assert refused.error is not None
            assert refused.error.startswith(f"host key of {bastion.addr} is unknown")


def test_fleet_with_hanging_and_down_hosts(hosts: list[S.SshLabHost], keys: tuple[Path, str], known: Path,
                                           tmp_path: Path) -> None:
    opts = _options(keys, known, connect_timeout=2)
    with lab.netns_host(hostname="lab-silent") as silent, lab.netns_host() as empty, \
            S.silent_tcp_server(silent):
        with lab.netns_host() as gone:
            gone_addr = gone.addr
        targets = [
            SshTarget(hosts[0].addr, user="root", name="alpha", options=opts),
            SshTarget(silent.addr, user="root", name="silent", options=opts),
            SshTarget(empty.addr, user="root", name="no-sshd", options=opts),
            SshTarget(gone_addr, user="root", name="gone", options=opts),
            SshTarget(hosts[1].addr, user="pwuser", name="bravo-pw", options=opts),
            SshTarget(hosts[1].addr, user="auditor", name="bravo", options=opts),
        ]
        t0 = time.monotonic()
        run = run_fleet(targets, implemented(), Config(), concurrency=3)
        elapsed = time.monotonic() - t0
    by_name = {r.target: r for r in run.results}
    assert [r.target for r in run.results] == [t.name for t in targets]
    assert by_name["alpha"].error is None and by_name["alpha"].hostname == "lab-alpha"
    assert by_name["bravo"].error is None and by_name["bravo"].hostname == "lab-bravo"
    assert "no SSH session within 2 s (connect timeout" in (by_name["silent"].error or "")
    assert "connection refused" in (by_name["no-sshd"].error or "")
    assert "cannot connect" in (by_name["gone"].error or "") or "timeout" in (by_name["gone"].error or "")
    assert "password is required" in (by_name["bravo-pw"].error or "")
    assert elapsed < 30
