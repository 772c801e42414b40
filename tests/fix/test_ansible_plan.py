"""``fix --format ansible`` without hosts: hosts with the same plan share one play, per-host checksums go to
the play's vars, an inventory group names a play only when its members are exactly the play's hosts, and
dead-man remedies become the fix script plus a confirmation over a new connection. Real ansible-playbook
parses the result (``--syntax-check``); the lab test applies it."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from nectar_audit.fix.ansible import as_playbook
from nectar_audit.fix.run import HostFix
from nectar_audit.remedy import FileChange, LineEdit, Remedy, Step, drop_in
from nectar_audit.targets.ssh import SshTarget
from tests import lab

SSHD = "/etc/ssh/sshd_config"
DROPIN = "/etc/ssh/sshd_config.d/00-test.conf"


def _fix(name: str, *remedies: Remedy, error: str | None = None) -> HostFix:
    return HostFix(SshTarget(f"10.0.0.{len(name)}" if name.startswith("10.") else name, user="admin", name=name),
                   remedies=list(remedies), error=error)


def _ours(before: str | None) -> Remedy:
    """A whole file of ours: the same after on every host, whatever it held before."""
    return Remedy("Check-Security-01", "password logins off",
                  changes=(drop_in(DROPIN, ["PasswordAuthentication no"], before, "01"),),
                  validate=(Step("sshd -t"),), activate=(Step("kill -HUP 1"),))


def _edit(line: str) -> Remedy:
    main = f"{line}\nUsePAM yes\n"
    edit = LineEdit(line, ("PermitRootLogin no",))
    return Remedy("Check-Security-17", "no root login",
                  changes=(FileChange(SSHD, main, "PermitRootLogin no\nUsePAM yes\n", (edit,)),))


def _plays(book: str) -> list[dict[str, Any]]:
    return list(json.loads("\n".join(line for line in book.splitlines() if not line.startswith("#"))))


def test_same_plan_one_play_checksums_per_host_in_vars() -> None:
    fixes = [_fix("a", _ours("# old a\n"), _edit("PermitRootLogin yes")),
             _fix("b", _ours("# old b\n"), _edit("PermitRootLogin yes")),
             _fix("c", _ours(None), _edit("PermitRootLogin yes")),  # the file is new there: another task list
             _fix("d", _ours("# old a\n"), _edit("PermitRootLogin prohibit-password")),
             _fix("e", error="cannot connect")]
    book = as_playbook(fixes, set())
    plays = _plays(book)
    assert [p["hosts"] for p in plays] == [["a", "b"], ["c"], ["d"]]
    assert plays[0]["name"] == "nectar-audit fix: Check-Security-01, Check-Security-17 on a, b"
    sums = plays[0]["vars"]["na_sha256"]
    assert set(sums) == {"a", "b"} and sums["a"]["0_0"][0] == sums["b"]["0_0"][0]  # the same after
    assert sums["a"]["0_0"][1] != sums["b"]["0_0"][1]  # each host's own before
    assert "na_sha256[inventory_hostname]['0_0']" in json.dumps(plays[0]["tasks"])
    assert "# e: not planned: cannot connect" in book
    assert "strategy" not in plays[0]


def test_inventory_group_names_a_play_only_when_its_members_are_exactly_the_play() -> None:
    fixes = [_fix(n, _ours("x\n")) for n in ("web1", "web2", "db1")]
    exact = {"web1": ("web", "prod"), "web2": ("web", "prod"), "db1": ("db", "prod")}
    assert [p["hosts"] for p in _plays(as_playbook(fixes, set(), exact))] == ["prod"]
    fixes[2] = _fix("db1", _ours("y\n"), _edit("PermitRootLogin yes"))
    assert [p["hosts"] for p in _plays(as_playbook(fixes, set(), exact))] == ["web", "db"]
    # web has a member this fix did not plan (e.g. left out by --limit): the play lists its hosts.
    wider = {**exact, "web3": ("web",)}
    assert [p["hosts"] for p in _plays(as_playbook(fixes, set(), wider))] == [["web1", "web2"], "db"]


def _deadman(port: int | None, note: str) -> Remedy:
    nft = "table inet filter {\n}\n"
    return Remedy("Check-Security-18" if port else "Check-Security-08", "risky", notes=(note,),
                  preconditions=(f"{note} can log in",),
                  changes=(FileChange("/etc/nftables.conf", nft, nft + "# x\n"),),
                  validate=(Step("nft -c -f /etc/nftables.conf"),), activate=(Step("nft -f /etc/nftables.conf"),),
                  deadman=True, confirm_port=port, explicit=port is not None)


def test_deadman_remedies_run_the_fix_script_then_confirm_over_a_new_connection(tmp_path: Path) -> None:
    fixes = [_fix("a", _deadman(2222, "Host a")), _fix("b", _deadman(2222, "Host b")),
             _fix("c", _deadman(None, "Host c"))]
    book = as_playbook(fixes, {"Check-Security-18"}, confirm_timeout=45)
    plays = _plays(book)
    # The notes name each host: they do not split the play.
    assert [p["hosts"] for p in plays] == [["a", "b"], ["c"]]
    for play, port in zip(plays, (2222, None)):
        assert play["strategy"] == "free" and play["serial"] == "{{ na_serial | default(5) }}"
        [block] = play["tasks"]
        [script] = [t for t in block["block"] if "ansible.builtin.command" in t and "argv" in t[
            "ansible.builtin.command"]]
        text = script["ansible.builtin.command"]["stdin"]
        assert "na_arm" in text and "--on-active=45s" in text and "sleep 45;" in text
        assert subprocess.run(["sh", "-n"], input=text.encode(), check=False).returncode == 0
        names = [t["name"] for t in block["block"]]
        order = [next(k for k, n in enumerate(names) if marker in n)
                 for marker in ("arm the dead-man timer", "drop the connection", "a new SSH connection",
                                "become works", "confirm run")]
        assert order == sorted(order), names
        ports = [t["ansible.builtin.set_fact"]["ansible_port"] for t in block["block"]
                 if "ansible_port" in t.get("ansible.builtin.set_fact", {})]
        assert ports == ([port] if port else [])
        assert "dead-man timer restores" in json.dumps(block["rescue"])
    # Real ansible-playbook parses the whole playbook.
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("a\nb\nc\n")
    playbook = tmp_path / "fix.yml"
    playbook.write_text(book)
    lab.require_binary("ansible-playbook")
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ah"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "at"),
           "ANSIBLE_NOCOLOR": "1"}
    check = subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(inventory), str(playbook)],
                           capture_output=True, text=True, timeout=120, env=env, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_next_phase_that_cannot_be_planned_is_named_in_a_comment() -> None:
    phased = dataclasses.replace(_deadman(2222, "Host a"), next_phase=True)
    book = as_playbook([_fix("a", phased)], {"Check-Security-18"})
    [play] = _plays(book)
    assert len(play["tasks"]) == 1
    assert "# a: Check-Security-18: the next phase is not in this playbook" in book
