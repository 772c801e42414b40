"""Inventories: plain lists, and Ansible INI/YAML read through ansible-core's InventoryManager."""

from __future__ import annotations

import builtins
import importlib
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.inventory import (
    InventoryError,
    InventoryHost,
    UnsupportedTarget,
    detect_format,
    inventory_targets,
    load_inventory,
)
from nectar_audit.targets import LocalTarget, RootFsTarget, TargetError
from nectar_audit.targets.ssh import SshOptions, SshTarget

INI = """\
# the lab
bastion ansible_host=10.0.0.1

[web]
web1 ansible_host=10.0.0.11 ansible_user=ubuntu
web2 ansible_host=10.0.0.12 ansible_port=2222
web[03:04].example.org

[db]
db1 ansible_host=10.0.0.21 ansible_ssh_private_key_file=~/keys/db.pem

[prod:children]
web
db

[prod:vars]
ansible_user=rocky

[local]
control ansible_connection=local

[windows]
win1 ansible_connection=winrm
"""

YAML = """\
all:
  hosts:
    bastion:
      ansible_host: 10.0.0.1
  children:
    prod:
      vars:
        ansible_user: rocky
      children:
        web:
          hosts:
            web1: {ansible_host: 10.0.0.11, ansible_user: ubuntu}
            web2: {ansible_host: 10.0.0.12, ansible_port: 2222}
        db:
          hosts:
            db1:
              ansible_host: "{{ '10.0.0.' ~ (20 + 1) }}"
              ansible_ssh_private_key_file: /keys/db.pem
              ansible_ssh_user: admin
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _summary(hosts: list[InventoryHost]) -> list[tuple[Any, ...]]:
    return [(h.name, h.address, h.port, h.user, h.identity) for h in hosts]


# -- format detection -----------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "text", "kind"), [
    ("hosts", INI, "ansible"),
    ("hosts", YAML, "ansible"),
    ("hosts.yml", "", "ansible"),
    ("inv.ini", "web1\n", "ansible"),
    ("hosts", "---\n", "ansible"),
    ("hosts", "webservers:\n  hosts:\n    a:\n", "ansible"),
    ("hosts", "web1 ansible_host=10.0.0.1\n", "ansible"),
    ("hosts", "web[01:20].example.org\n", "ansible"),
    ("hosts", "[web:children]\n", "ansible"),
    ("hosts", "# fleet\nubuntu@203.0.113.5\nssh://rocky@vm2:2222  # vm2\nalias\n", "plain"),
    ("hosts", "[2001:db8::1]:2222\n[2001:db8::2]\nroot@[::1]\n", "plain"),
    ("hosts.txt", "local\nroot:/mnt/image\nevidence:vm.json\n", "plain"),
])
def test_detect_format(tmp_path: Path, name: str, text: str, kind: str) -> None:
    assert detect_format(_write(tmp_path, name, text)) == kind


def test_a_directory_is_an_ansible_inventory(tmp_path: Path) -> None:
    assert detect_format(tmp_path) == "ansible"


# -- plain files ----------------------------------------------------------------------------------
PLAIN = """\
# production
ubuntu@203.0.113.5        # web, Ubuntu 24.04
ssh://rocky@vm2:2222

myvm-alias
[2001:db8::1]:2222
local
"""


def test_plain_inventory(tmp_path: Path) -> None:
    hosts = load_inventory(str(_write(tmp_path, "hosts.txt", PLAIN)))
    assert [h.spec for h in hosts] == ["ubuntu@203.0.113.5", "ssh://rocky@vm2:2222", "myvm-alias",
                                       "[2001:db8::1]:2222", "local"]
    assert [h.line for h in hosts] == [2, 3, 5, 6, 7]
    targets = inventory_targets(hosts, SshOptions(config_files=()))
    assert [type(t).__name__ for t in targets] == ["SshTarget"] * 4 + ["LocalTarget"]
    ssh = targets[1]
    assert isinstance(ssh, SshTarget) and (ssh.user, ssh.host, ssh.port) == ("rocky", "vm2", 2222)
    assert ssh.options.config_files == ()


@pytest.mark.parametrize(("limit", "names"), [
    ("vm2", ["ssh://rocky@vm2:2222"]),
    ("203.0.113.*", ["ubuntu@203.0.113.5"]),
    ("ubuntu@*,myvm-alias", ["ubuntu@203.0.113.5", "myvm-alias"]),
    ("!local", ["ubuntu@203.0.113.5", "ssh://rocky@vm2:2222", "myvm-alias", "[2001:db8::1]:2222"]),
])
def test_plain_limit(tmp_path: Path, limit: str, names: list[str]) -> None:
    hosts = load_inventory(str(_write(tmp_path, "hosts.txt", PLAIN)), limit)
    assert [h.name for h in hosts] == names


def test_plain_errors(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="lists no host"):
        load_inventory(str(_write(tmp_path, "empty.txt", "# nothing\n\n")))
    with pytest.raises(InventoryError, match="matches no host"):
        load_inventory(str(_write(tmp_path, "one.txt", "a\n")), "b")
    with pytest.raises(InventoryError, match=r"two.txt:2: one target per line"):
        load_inventory(str(_write(tmp_path, "two.txt", "a\nb c\n")))
    with pytest.raises(InventoryError, match="does not exist"):
        load_inventory(str(tmp_path / "nope"))
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_inventory(str(tmp_path / "bin.txt"))
    with pytest.raises(InventoryError, match="line 1:"):
        inventory_targets(load_inventory(str(_write(tmp_path, "bad.txt", "u@h:0\n"))))


# -- Ansible --------------------------------------------------------------------------------------
needs_ansible = pytest.mark.skipif(
    importlib.util.find_spec("ansible") is None,
    reason="ansible-core (the optional extra nectar-audit[ansible]) is not installed")


@needs_ansible
def test_ansible_ini(tmp_path: Path) -> None:
    hosts = load_inventory(str(_write(tmp_path, "hosts", INI)))
    home = str(Path("~").expanduser())
    assert sorted(_summary(hosts)) == sorted([
        ("bastion", "10.0.0.1", None, None, None),
        ("web1", "10.0.0.11", None, "ubuntu", None),  # host var beats the group var
        ("web2", "10.0.0.12", 2222, "rocky", None),
        ("web03.example.org", None, None, "rocky", None),
        ("web04.example.org", None, None, "rocky", None),
        ("db1", "10.0.0.21", None, "rocky", f"{home}/keys/db.pem"),
        ("control", None, None, None, None),
        ("win1", None, None, None, None),
    ])
    by_name = {h.name: h for h in hosts}
    assert set(by_name["web1"].groups) == {"web", "prod"}
    assert by_name["bastion"].groups == ("ungrouped",)
    targets = {t.name: t for t in inventory_targets(hosts)}
    web2, db1 = targets["web2"], targets["db1"]
    assert isinstance(web2, SshTarget) and (web2.name, web2.host, web2.port, web2.user) == \
        ("web2", "10.0.0.12", 2222, "rocky")
    web3 = targets["web03.example.org"]
    assert isinstance(web3, SshTarget) and web3.host == "web03.example.org"
    assert isinstance(db1, SshTarget) and db1.identity == f"{home}/keys/db.pem"
    assert isinstance(targets["control"], LocalTarget)
    win = targets["win1"]
    assert isinstance(win, UnsupportedTarget)
    with pytest.raises(TargetError, match="ansible_connection=winrm is not supported"):
        win.gather(None)  # type: ignore[arg-type]


@needs_ansible
def test_ansible_yaml_with_templated_user(tmp_path: Path) -> None:
    hosts = load_inventory(str(_write(tmp_path, "hosts.yml", YAML)))
    assert sorted(_summary(hosts)) == sorted([
        ("bastion", "10.0.0.1", None, None, None),
        ("web1", "10.0.0.11", None, "ubuntu", None),
        ("web2", "10.0.0.12", 2222, "rocky", None),
        # templated ansible_host; ansible_user (a group var) beats ansible_ssh_user
        ("db1", "10.0.0.21", None, "rocky", "/keys/db.pem"),
    ])


@needs_ansible
@pytest.mark.parametrize(("limit", "names"), [
    ("web", ["web1", "web2", "web03.example.org", "web04.example.org"]),
    ("prod:!web", ["db1"]),
    ("web:&prod", ["web1", "web2", "web03.example.org", "web04.example.org"]),
    ("db1,bastion", ["bastion", "db1"]),
    ("web0*", ["web03.example.org", "web04.example.org"]),
    ("~web[12]", ["web1", "web2"]),
])
def test_ansible_limit(tmp_path: Path, limit: str, names: list[str]) -> None:
    hosts = load_inventory(str(_write(tmp_path, "hosts", INI)), limit)
    assert sorted(h.name for h in hosts) == sorted(names)


@needs_ansible
def test_ansible_group_vars_and_host_vars_directories(tmp_path: Path) -> None:
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    (inv / "hosts").write_text("[web]\nweb1\nweb2\n")  # older Ansible skips *.ini inside a directory
    (inv / "group_vars" / "web.yml").write_text("ansible_user: deploy\nansible_port: 2200\n")
    (inv / "host_vars" / "web2.yml").write_text("ansible_host: 192.0.2.2\n")
    hosts = load_inventory(str(inv))
    assert sorted(_summary(hosts)) == [("web1", None, 2200, "deploy", None),
                                       ("web2", "192.0.2.2", 2200, "deploy", None)]


@needs_ansible
def test_ansible_errors(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="matches no host"):
        load_inventory(str(_write(tmp_path, "hosts", INI)), "nosuchgroup")
    with pytest.raises(InventoryError, match="cannot read Ansible inventory"):
        load_inventory(str(_write(tmp_path, "broken.yml", "all: [unclosed\n")))
    with pytest.raises(InventoryError, match="is not a port number"):
        load_inventory(str(_write(tmp_path, "badport", "[web]\nweb1 ansible_port=http\n")))


def test_without_ansible_core_the_error_says_what_to_install(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_ansible(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ansible" or name.startswith("ansible."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    real_import_module = importlib.import_module

    def no_ansible_module(name: str, package: str | None = None) -> Any:
        if name == "ansible" or name.startswith("ansible."):
            raise ImportError(f"No module named {name!r}")
        return real_import_module(name, package)

    monkeypatch.setattr(builtins, "__import__", no_ansible)
    monkeypatch.setattr(importlib, "import_module", no_ansible_module)
    with pytest.raises(InventoryError, match=r"needs ansible-core \(pip install 'nectar-audit\[ansible\]'"):
        load_inventory(str(_write(tmp_path, "hosts", INI)))
    # A plain inventory still works without Ansible.
    plain = load_inventory(str(_write(tmp_path, "plain.txt", "root:/mnt\n")))
    assert [h.name for h in plain] == ["root:/mnt"]
    assert isinstance(inventory_targets(load_inventory(str(tmp_path / "plain.txt")))[0], RootFsTarget)
