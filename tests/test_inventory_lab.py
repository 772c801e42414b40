"""`nectar-audit scan --inventory` with Ansible INI and YAML inventories, against real sshd lab hosts.

ansible_host / ansible_port / ansible_user / ansible_ssh_private_key_file, groups, children, group vars
and --limit all decide which host is reached how; no -i and no ssh config are given on the command line.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from nectar_audit.cli import main
from tests import lab
from tests.lab import sshd_hosts as S

pytestmark = pytest.mark.lab


@dataclass
class Fleet:
    alpha: S.SshLabHost  # root with key1, port 22
    bravo: S.SshLabHost  # auditor (sudo) with key2, port 2222
    down: str  # an address where nothing listens
    key1: Path
    key2: Path
    known_hosts: Path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    S.require_ssh_lab()
    lab.require(importlib.util.find_spec("ansible") is not None,
                "ansible-core is needed for Ansible inventories (pip install ansible-core)")
    base = tmp_path_factory.mktemp("inv")
    key1, pub1 = S.client_key(base / "k1")
    key2, pub2 = S.client_key(base / "k2")
    with S.ssh_host(base / "alpha", {"root": pub1}, hostname="inv-alpha") as alpha, \
            S.ssh_host(base / "bravo", {"auditor": pub2}, hostname="inv-bravo", port=2222) as bravo, \
            lab.netns_host() as empty:
        kh = base / "known_hosts"
        kh.write_text(alpha.known_hosts_line() + bravo.known_hosts_line())
        yield Fleet(alpha, bravo, empty.addr, key1, key2, kh)


def _ini(f: Fleet) -> str:
    return (
        "# lab fleet\n"
        "[web]\n"
        f"alpha ansible_host={f.alpha.addr}\n"
        f"bravo ansible_host={f.bravo.addr} ansible_port=2222 ansible_user=auditor "
        f"ansible_ssh_private_key_file={f.key2}\n"
        "\n[db]\n"
        f"gamma ansible_host={f.down}\n"
        "\n[prod:children]\nweb\ndb\n"
        f"\n[prod:vars]\nansible_user=root\nansible_ssh_private_key_file={f.key1}\n"
    )


def _yaml(f: Fleet) -> str:
    return (
        "all:\n"
        "  children:\n"
        "    prod:\n"
        "      vars:\n"
        "        ansible_user: root\n"
        f"        ansible_ssh_private_key_file: {f.key1}\n"
        "      children:\n"
        "        web:\n"
        "          hosts:\n"
        f"            alpha: {{ansible_host: {f.alpha.addr}}}\n"
        "            bravo:\n"
        f"              ansible_host: {f.bravo.addr}\n"
        "              ansible_port: 2222\n"
        "              ansible_user: auditor\n"
        f"              ansible_ssh_private_key_file: {f.key2}\n"
        "        db:\n"
        "          hosts:\n"
        f"            gamma: {{ansible_host: {f.down}}}\n"
    )


def _scan(f: Fleet, inventory: Path, tmp_path: Path, *extra: str) -> tuple[int, dict[str, dict[str, object]]]:
    out = tmp_path / "fleet.json"
    result = CliRunner().invoke(main, [
        "scan", "--inventory", str(inventory), "--known-hosts", str(f.known_hosts), "-F", "none",
        "--connect-timeout", "5", "--format", "json", "-o", str(out), *extra,
    ])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    report = json.loads(out.read_text())
    return result.exit_code, {h["target"]: h for h in report["hosts"]}


@pytest.mark.parametrize("kind", ["ini", "yaml"])
def test_ansible_inventory_with_limit(fleet: Fleet, tmp_path: Path, kind: str) -> None:
    inventory = tmp_path / ("hosts.ini" if kind == "ini" else "hosts.yml")
    inventory.write_text(_ini(fleet) if kind == "ini" else _yaml(fleet))
    code, hosts = _scan(fleet, inventory, tmp_path, "--limit", "web")
    assert sorted(hosts) == ["alpha", "bravo"]
    assert hosts["alpha"]["error"] is None and hosts["alpha"]["hostname"] == "inv-alpha"
    # bravo: user auditor (sudo), port 2222, its own key
    assert hosts["bravo"]["error"] is None and hosts["bravo"]["hostname"] == "inv-bravo"
    assert code in (0, 1)
    code, hosts = _scan(fleet, inventory, tmp_path, "--limit", "prod:!bravo")
    assert sorted(hosts) == ["alpha", "gamma"]
    assert hosts["alpha"]["error"] is None
    assert "connection refused" in str(hosts["gamma"]["error"])
    assert code == 2  # a host could not be audited


def test_plain_inventory(fleet: Fleet, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.txt"
    inventory.write_text(f"# plain list\nroot@{fleet.alpha.addr}\nssh://auditor@{fleet.bravo.addr}:2222\n")
    code, hosts = _scan(fleet, inventory, tmp_path, "-i", str(fleet.key1), "-i", str(fleet.key2))
    assert [h["hostname"] for h in hosts.values()] == ["inv-alpha", "inv-bravo"]
    assert code in (0, 1)
