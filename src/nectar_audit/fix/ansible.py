"""Fix plans as an Ansible playbook (``fix --format ansible``): ansible-core's own modules, idempotent.

One play per host. Per remedy, one block: the preconditions as asserts (each file is as audited, or
already as fixed), whole files with ``copy``, line edits with ``lineinfile`` (an insertion next to its
anchor line) or ``replace`` (a line replaced), each with ``validate:`` where the daemon's checker takes
a file, and ``backup: true``; then the remedy's commands and validation, and its activation, only when a
file changed. A failure restores the backups in ``rescue``. The output is JSON, which is YAML too.

Remedies with the dead-man timer (18, 08) are not emitted: a playbook cannot arm the host's timer and
confirm over a new connection; the playbook says so and names the ``nectar-audit fix`` command.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from nectar_audit.fix.run import HostFix
from nectar_audit.fix.script import sha256
from nectar_audit.remedy import FileChange, LineEdit, Remedy

# The daemon's own checker for a file, where it takes the file's path (ansible's ``validate``).
_VALIDATORS: tuple[tuple[str, str], ...] = (
    ("/etc/ssh/sshd_config", "sshd -t -f %s"),
    ("/etc/nftables.conf", "nft -c -f %s"),
    ("/etc/iptables/rules.v4", "iptables-restore --test %s"),
    ("/etc/iptables/rules.v6", "ip6tables-restore --test %s"),
    ("/etc/sudoers", "visudo -c -f %s"),
)


def _validator(path: str) -> str | None:
    for prefix, command in _VALIDATORS:
        if path == prefix or (prefix == "/etc/sudoers" and path.startswith("/etc/sudoers.d/")):
            return command
    return None


def _anchor(expected: str) -> str:
    return "^" + re.escape(expected) + "$"


def _edit_tasks(change: FileChange, edit: LineEdit, check: str, n: int) -> list[dict[str, Any]]:
    """An edit that keeps its anchor line inserts the other lines around it (lineinfile: present once);
    an edit that replaces the anchor is a ``replace`` (gone once done)."""
    base: dict[str, Any] = {"path": change.path, "backup": True}
    validate = _validator(change.path)
    if validate:
        base["validate"] = validate
    tasks: list[dict[str, Any]] = []
    if edit.expected in edit.new:
        k = edit.new.index(edit.expected)
        for line in edit.new[:k]:
            tasks.append({"name": f"{check}: {change.path}: add {line!r}",
                          "ansible.builtin.lineinfile": {**base, "line": line,
                                                         "insertbefore": _anchor(edit.expected),
                                                         "firstmatch": True}})
        for line in reversed(edit.new[k + 1:]):
            tasks.append({"name": f"{check}: {change.path}: add {line!r}",
                          "ansible.builtin.lineinfile": {**base, "line": line,
                                                         "insertafter": _anchor(edit.expected),
                                                         "firstmatch": True}})
    else:
        regexp = _anchor(edit.expected) if edit.new else "^" + re.escape(edit.expected) + r"\n"
        tasks.append({"name": f"{check}: {change.path}: replace {edit.expected!r}",
                      "ansible.builtin.replace": {**base, "regexp": regexp,
                                                  "replace": "\n".join(edit.new).replace("\\", "\\\\")}})
    return tasks


def _remedy_block(remedy: Remedy, n: int) -> dict[str, Any]:
    check = remedy.check
    changed_var = f"na_changed_{n}"
    tasks: list[dict[str, Any]] = []
    registers: list[str] = []
    for k, change in enumerate(remedy.changes):
        stat_var = f"na_stat_{n}_{k}"
        tasks.append({"name": f"{check}: {change.path} is as audited (or already fixed)",
                      "ansible.builtin.stat": {"path": change.path, "get_checksum": True,
                                               "checksum_algorithm": "sha256", "follow": False},
                      "register": stat_var})
        ok = [f"not {stat_var}.stat.islnk | default(false)"]
        if change.whole:
            states = [sha256(change.after)]
            if change.before is not None:
                states.append(sha256(change.before))
            allowed = " or ".join(f"{stat_var}.stat.checksum | default('') == '{s}'" for s in states)
            ok.append(f"(not {stat_var}.stat.exists) or {allowed}" if change.before is None else allowed)
        else:
            ok.append(f"{stat_var}.stat.exists")
        tasks.append({"name": f"{check}: precondition for {change.path}",
                      "ansible.builtin.assert": {"that": ok, "fail_msg": f"{change.path} changed since the "
                                                                         "audit: not edited"}})
    for k, change in enumerate(remedy.changes):
        if change.whole:
            reg = f"na_file_{n}_{k}"
            directory = change.path.rsplit("/", 1)[0] or "/"
            if change.before is None:
                tasks.append({"name": f"{check}: directory {directory}",
                              "ansible.builtin.file": {"path": directory, "state": "directory"}})
            args: dict[str, Any] = {"dest": change.path, "content": change.after, "backup": True}
            if change.before is None:
                args["mode"] = f"{change.mode:04o}"
            validate = _validator(change.path)
            if validate:
                args["validate"] = validate
            tasks.append({"name": f"{check}: write {change.path}" + (f" ({change.why})" if change.why else ""),
                          "ansible.builtin.copy": args, "register": reg})
            registers.append(reg)
        else:
            for edit in change.edits:
                for t in _edit_tasks(change, edit, check, n):
                    t["register"] = f"na_edit_{n}_{k}_{len(registers)}"
                    tasks.append(t)
                    registers.append(t["register"])
    changed = " or ".join(f"({r}.changed | default(false))" for r in registers) or "true"
    tasks.append({"name": f"{check}: did anything change",
                  "ansible.builtin.set_fact": {changed_var: "{{ " + changed + " }}"}})
    when = f"{changed_var} | bool"
    for label, steps, changes in (("run", remedy.commands, True), ("validate", remedy.validate, False),
                                  ("activate", remedy.activate, True)):
        for step in steps:
            tasks.append({"name": f"{check}: {label}: {step.why or step.sh}",
                          "ansible.builtin.shell": {"cmd": step.sh},
                          "when": when, "changed_when": changes})
    restore: list[dict[str, Any]] = []
    for r in registers:
        restore.append({"name": f"{check}: restore {r}",
                        "ansible.builtin.copy": {"src": f"{{{{ {r}.backup_file }}}}",
                                                 "dest": f"{{{{ {r}.dest | default({r}.path) }}}}",
                                                 "remote_src": True},
                        "when": f"{r}.backup_file is defined"})
    restore += [{"name": f"{check}: activate the restored files",
                 "ansible.builtin.shell": {"cmd": step.sh}, "failed_when": False}
                for step in remedy.activate]
    restore.append({"name": f"{check}: failed and restored",
                    "ansible.builtin.fail": {"msg": f"{check} could not be applied: files restored"}})
    return {"name": f"{check}: {remedy.summary}", "block": tasks, "rescue": restore}


def as_playbook(fixes: Sequence[HostFix], named: set[str]) -> str:
    """The playbook of every host's selected remedies (a comment for what is left out, and why)."""
    plays: list[dict[str, Any]] = []
    comments: list[str] = ["# nectar-audit fix as an Ansible playbook: ansible-playbook -i INVENTORY THIS-FILE",
                           "# (--check --diff shows the edits first). One play per host, named as given to fix."]
    for fix in fixes:
        host = str(getattr(fix.target, "host", fix.name))
        if fix.error:
            comments.append(f"# {fix.name}: not planned: {fix.error}")
            continue
        blocks = []
        for n, remedy in enumerate(fix.to_apply(named)):
            if remedy.deadman:
                comments.append(f"# {fix.name}: {remedy.check} left out: it needs the host's dead-man timer and a "
                                f"confirmation over a new connection; run nectar-audit fix --checks "
                                f"{remedy.check[-2:]} --apply {fix.name}")
                continue
            blocks.append(_remedy_block(remedy, n))
        if blocks:
            plays.append({"name": f"nectar-audit fix: {fix.name}", "hosts": host, "become": True,
                          "gather_facts": False, "tasks": blocks})
    return "\n".join(c.replace("\n", " ") for c in comments) + "\n" + json.dumps(plays, indent=2) + "\n"
