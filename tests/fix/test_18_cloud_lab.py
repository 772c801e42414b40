"""Lab tests of 18's cloud side (issue 19): the instance's security groups follow SSH to the new port.

Real Keystone + Neutron (tests/lab/openstack_lab.py): a network, the target's port and another instance's
port sharing one group with ``22/tcp from 203.0.113.0/24`` and ``22/tcp from ::/0``. Neutron holds the
rules: what the plan lists, what an apply creates or deletes and what an undo restores is read back from
it. The module's apply/undo are exercised directly, then once end to end with a chroot lab host (real
sshd, nft, fail2ban) moved over SSH by ``nectar-audit fix --os-cloud``.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from nectar_audit.fix import cloud_port
from tests import lab
from tests.fix.test_18_08_fix_lab import (  # noqa: F401
    NEW,
    USER,
    _answers,
    _env,
    _fix_argv,
    hanging_controller,
    moved_host,
)
from tests.lab.openstack_lab import REGION, OpenStackLab

pytestmark = pytest.mark.lab

V4 = "203.0.113.0/24"
CLOUD = "lab"


@dataclass
class Project:
    """One scenario's Neutron objects (fresh for each test: the lab's project is shared)."""

    conn: Any
    group: Any
    addr: str
    instance: str
    other: str
    port: Any
    other_port: Any


@dataclass
class Where:
    """A stand-in for a target: only its address is read."""

    host: str
    name: str = "target"


def _project(api: OpenStackLab, addr: str) -> Project:
    c = api.connect()
    tag = uuid.uuid4().hex[:8]
    net = c.network.create_network(name=f"fix18-{tag}")
    cidr = ".".join(addr.split(".")[:3]) + ".0/24"
    sub = c.network.create_subnet(network_id=net.id, cidr=cidr, ip_version=4)
    group = c.network.create_security_group(name=f"fix18-ssh-{tag}")
    c.network.create_security_group_rule(security_group_id=group.id, direction="ingress", ethertype="IPv4",
                                          protocol="tcp", port_range_min=22, port_range_max=22,
                                          remote_ip_prefix=V4)
    c.network.create_security_group_rule(security_group_id=group.id, direction="ingress", ethertype="IPv6",
                                          protocol="tcp", port_range_min=22, port_range_max=22,
                                          remote_ip_prefix="::/0")
    instance, other = str(uuid.uuid4()), str(uuid.uuid4())
    last = int(addr.rsplit(".", 1)[1])
    ports = []
    for device, ip in ((instance, addr), (other, cidr.rsplit(".", 1)[0] + f".{last % 200 + 10}")):
        ports.append(c.network.create_port(network_id=net.id, device_id=device, device_owner="compute:nova",
                                           fixed_ips=[{"subnet_id": sub.id, "ip_address": ip}],
                                           security_groups=[group.id]))
    return Project(c, group, addr, instance, other, ports[0], ports[1])


def _rules(p: Project) -> list[tuple[Any, ...]]:
    """The group's rules as Neutron holds them now, without ids (what an undo must restore)."""
    group = p.conn.network.get_security_group(p.group.id)
    return sorted((cloud_port.normalized(cloud_port.rule_of(r, group.id)) for r in group.security_group_rules),
                  key=repr)


def _for_port(p: Project, port: int) -> list[tuple[str, str | None]]:
    group = p.conn.network.get_security_group(p.group.id)
    return sorted((r["ethertype"], r["remote_ip_prefix"]) for r in group.security_group_rules
                  if r["direction"] == "ingress" and r["port_range_min"] == port and r["port_range_max"] == port)


def _clouds_yaml(api: OpenStackLab, where: Path) -> Path:
    a = api.auth()
    path = where / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {CLOUD: {
        "auth": {k: a[k] for k in ("auth_url", "username", "password", "project_name", "user_domain_name",
                                   "project_domain_name")},
        "region_name": REGION, "identity_api_version": 3}}}))
    path.chmod(0o600)
    return path


@pytest.fixture
def cloud_env(openstack_api: OpenStackLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """clouds.yaml entry ``lab`` (alice, a member of project research) and a private record directory."""
    for name in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(_clouds_yaml(openstack_api, tmp_path)))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield tmp_path / "state" / "nectar-audit" / "fix-cloud"


def _is_instance(host: Any, p: Project) -> None:
    """The host says it is the project's instance (other tests' ports may carry the same lab address)."""
    iid = host.path("/var/lib/cloud/data/instance-id")
    iid.parent.mkdir(parents=True, exist_ok=True)
    iid.write_text(p.instance + "\n")


def _cloud_env() -> dict[str, str]:
    """The CLI's environment with the cloud_env fixture's clouds.yaml and record directory."""
    return {**_env(), **{k: v for k, v in os.environ.items() if k in ("OS_CLIENT_CONFIG_FILE", "XDG_STATE_HOME")}}


def _addr() -> str:
    return f"10.77.{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 150 + 20}"


def test_plan_lists_the_twins_and_the_shared_group(openstack_api: OpenStackLab, cloud_env: Path) -> None:
    p = _project(openstack_api, _addr())
    plan = cloud_port.plan_for(p.conn, CLOUD, Where(p.addr), None, NEW, close_old=False)
    assert plan.error is None and plan.instance == p.instance and plan.ports == [p.port.id]
    assert sorted((r["ethertype"], r["remote_ip_prefix"], r["port_range_min"]) for r in plan.add) == \
        [("IPv4", V4, NEW), ("IPv6", "::/0", NEW)]
    assert plan.remove == []  # nothing is removed without --close-old-port
    assert list(plan.shared) == [p.group.id] and p.other in plan.shared[p.group.id][0]
    text = "\n".join(plan.text())
    assert f"add: group {p.group.name}: ingress IPv4 tcp/{NEW} from {V4}" in text
    assert f"add: group {p.group.name}: ingress IPv6 tcp/{NEW} from ::/0" in text
    assert "WARNING: group" in text and p.other in text and "--close-old-port" in text
    closing = cloud_port.plan_for(p.conn, CLOUD, Where(p.addr), None, NEW, close_old=True)
    assert sorted(r["ethertype"] for r in closing.remove) == ["IPv4", "IPv6"]
    assert "lose 22 with --close-old-port" in "\n".join(closing.text())
    # The host's own instance id decides when it disagrees with the address: nothing is guessed.
    wrong = cloud_port.plan_for(p.conn, CLOUD, Where(p.addr), p.other, NEW, close_old=True)
    assert wrong.error is not None and "not touching either" in wrong.error
    by_id = cloud_port.plan_for(p.conn, CLOUD, Where("192.0.2.1"), p.instance, NEW, close_old=False)
    assert by_id.error is None and by_id.instance == p.instance and len(by_id.add) == 2


def test_apply_close_and_undo_against_neutron(openstack_api: OpenStackLab, cloud_env: Path) -> None:
    p = _project(openstack_api, _addr())
    original = _rules(p)
    plan = cloud_port.plan_for(p.conn, CLOUD, Where(p.addr), None, NEW, close_old=True)
    session = cloud_port.Session(plan, cloud_port.connect(CLOUD), "target")
    assert session.before_run("RUN-1") is None
    session.kept(True)
    # Neutron lets 2222 in from the same prefixes as 22; 22 is still there (not confirmed yet).
    assert _for_port(p, NEW) == [("IPv4", V4), ("IPv6", "::/0")]
    assert _for_port(p, 22) == [("IPv4", V4), ("IPv6", "::/0")]
    record = json.loads((cloud_env / "RUN-1.json").read_text())
    assert len(record["created"]) == 2 and record["deleted"] == []
    # A second plan and apply create nothing.
    again = cloud_port.plan_for(p.conn, CLOUD, Where(p.addr), None, NEW, close_old=False)
    assert again.add == [] and len(again.present) == 2
    second = cloud_port.Record("RUN-2", CLOUD, "target")
    assert cloud_port.open_new(p.conn, plan, second) is None and second.data["created"] == []
    assert len(_rules(p)) == len(original) + 2
    # Confirmed: 22's rules go (--close-old-port), recorded under the run.
    session.finish("RUN-1", confirmed=True)
    assert _for_port(p, 22) == [] and _for_port(p, NEW) == [("IPv4", V4), ("IPv6", "::/0")]
    record = json.loads((cloud_env / "RUN-1.json").read_text())
    assert sorted(r["ethertype"] for r in record["deleted"]) == ["IPv4", "IPv6"]
    # fix --undo's cloud half: exactly the rules of before, and a second undo does nothing.
    lines = cloud_port.undo_run("RUN-1", None)
    assert lines == ["security groups: 2 rule(s) added by run RUN-1 removed, 2 deleted rule(s) recreated"]
    assert _rules(p) == original
    assert cloud_port.undo_run("RUN-1", CLOUD) == [] and _rules(p) == original


def test_failed_confirmation_reverts_the_new_rules(openstack_api: OpenStackLab, cloud_env: Path) -> None:
    p = _project(openstack_api, _addr())
    original = _rules(p)
    plan = cloud_port.plan_for(p.conn, CLOUD, Where(p.addr), None, NEW, close_old=True)
    session = cloud_port.Session(plan, cloud_port.connect(CLOUD), "target")
    assert session.before_run("RUN-X") is None and len(_rules(p)) == len(original) + 2
    session.kept(False)  # the host's run was not confirmed (rolled back)
    session.finish("RUN-X", confirmed=False)
    assert _rules(p) == original
    assert "removed again" in session.messages[-1]


def test_fix_os_cloud_end_to_end(openstack_api: OpenStackLab, cloud_env: Path, moved_host: Any,  # noqa: F811
                                 tmp_path: Path) -> None:
    """`fix --os-cloud --close-old-port` on a chroot host over SSH: plan, apply (both phases), undo."""
    host, key, known, _procs = moved_host
    p = _project(openstack_api, host.addr)
    _is_instance(host, p)
    original = _rules(p)
    env = _cloud_env()
    cloud = ("--os-cloud", CLOUD, "--close-old-port")
    plan_argv = [a for a in _fix_argv(host, key, known, *cloud, "--format", "json") if a not in ("--apply", "--yes")]
    plan = subprocess.run(plan_argv, capture_output=True, text=True, timeout=300, env=env, check=False)
    doc = json.loads(plan.stdout)["hosts"][0]
    assert doc["cloud"]["instance"] == p.instance and doc["cloud"]["error"] is None, plan.stdout + plan.stderr
    assert sorted((r["ethertype"], r["remote_ip_prefix"]) for r in doc["cloud"]["add"]) == \
        [("IPv4", V4), ("IPv6", "::/0")]
    assert _rules(p) == original  # a plan changes nothing

    proc = subprocess.run(_fix_argv(host, key, known, *cloud), capture_output=True, text=True, timeout=300,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"add: group {p.group.name}: ingress IPv4 tcp/{NEW} from {V4}" in out  # the plan, before the change
    assert "WARNING: group" in out and p.other in out
    assert "2 rule(s) added" in out and "2 rule(s) for 22 removed" in out, out
    assert _for_port(p, NEW) == [("IPv4", V4), ("IPv6", "::/0")] and _for_port(p, 22) == []
    assert _answers(host, key, known, NEW) and not _answers(host, key, known, 22)

    # Undo both runs, newest first: the host listens on 22 again and Neutron holds exactly the old rules.
    at_new = f"{USER}@{host.addr}:{NEW}"
    base = [a for a in _fix_argv(host, key, known) if a not in ("--apply", "--yes", "--checks", "18",
                                                                 "--ssh-port", str(NEW))]
    base = [a for a in base if a != f"{USER}@{host.addr}"]
    first = subprocess.run([*base, "--undo", "--os-cloud", CLOUD, at_new], capture_output=True, text=True,
                           timeout=300, env=env, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "0 rule(s) added by run" in first.stdout and "2 deleted rule(s) recreated" in first.stdout, first.stdout
    assert _for_port(p, 22) == [("IPv4", V4), ("IPv6", "::/0")]
    second = subprocess.run([*base, "--undo", "--os-cloud", CLOUD, at_new], capture_output=True, text=True,
                            timeout=300, env=env, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 rule(s) added by run" in second.stdout, second.stdout
    assert _rules(p) == original
    assert _answers(host, key, known, 22)


# The real fix code, but the new login on the new port fails (as when a group or a firewall in between
# still drops it): the host's run is undone at once, and the rules made for the new port must go too.
REFUSING = """
import sys
from nectar_audit.targets import ssh
ssh.SshTarget.confirm_login = lambda self, *a, **k: "refused by the test"
from nectar_audit.cli import main
main(sys.argv[1:])
"""


def test_failed_login_on_the_new_port_reverts_the_groups(openstack_api: OpenStackLab, cloud_env: Path,
                                                         moved_host: Any) -> None:  # noqa: F811
    host, key, known, _procs = moved_host
    p = _project(openstack_api, host.addr)
    _is_instance(host, p)
    original = _rules(p)
    env = _cloud_env()
    argv = _fix_argv(host, key, known, "--os-cloud", CLOUD, "--format", "json")
    proc = subprocess.run([argv[0], "-c", REFUSING, *argv[3:]], capture_output=True, text=True, timeout=300,
                          env=env, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (outcome,) = json.loads(proc.stdout)["hosts"][0]["outcomes"]
    assert outcome["status"] == "rolled-back", outcome
    assert "the rules added were removed again" in outcome["message"], outcome
    assert _rules(p) == original  # Neutron: the twins for 2222 are gone again
    assert _answers(host, key, known, 22) and not _answers(host, key, known, NEW)


def test_controller_killed_mid_move_the_next_apply_removes_its_rules(
        openstack_api: OpenStackLab, cloud_env: Path, moved_host: Any, tmp_path: Path) -> None:  # noqa: F811
    """The controller dies after the rules for the new port were made and before the confirmation: the
    host's timer undoes its run, and the rules it cannot remove itself (it has no cloud credentials) are
    named by ``fix --runs`` and removed by the next ``fix --apply --os-cloud``."""
    host, key, known, _procs = moved_host
    p = _project(openstack_api, host.addr)
    _is_instance(host, p)
    original = _rules(p)
    env = _cloud_env()
    marker = tmp_path / "confirming"
    argv = _fix_argv(host, key, known, "--os-cloud", CLOUD, "--confirm-timeout", "10")
    with hanging_controller(argv, marker, env):
        assert _for_port(p, NEW) == [("IPv4", V4), ("IPv6", "::/0")]  # made before the host listened
    base = [a for a in argv if a not in ("--apply", "--yes", "--checks", "18", "--ssh-port", str(NEW))]

    def runs() -> str:
        out = subprocess.run([*base, "--runs"], capture_output=True, text=True, timeout=120, env=env, check=False)
        return out.stdout + out.stderr

    lab.wait_until(lambda: " undone " in runs(), 60, "the host's dead-man timer to undo the run")
    assert _answers(host, key, known, 22) and not _answers(host, key, known, NEW)
    listing = runs()
    assert "left half-way by its controller and the host undid it" in listing, listing
    assert "are still there" in listing and _for_port(p, NEW), listing  # --runs only says so

    # The next apply with --os-cloud settles it first (here with a check that has nothing to change).
    settle = subprocess.run([*[a for a in base if a != "--runs"], "--checks", "04", "--apply", "--yes"],
                            capture_output=True, text=True, timeout=300, env=env, check=False)
    assert "the 2 rule(s) it added were removed" in settle.stdout, settle.stdout + settle.stderr
    assert _rules(p) == original
    assert "left half-way" not in runs()  # settled: nothing more to say
