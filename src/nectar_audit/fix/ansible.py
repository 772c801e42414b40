"""Fix plans as an Ansible playbook (``fix --format ansible``): ansible-core's own modules, idempotent.

One play per group of hosts whose plan is the same (their task blocks are identical): ``hosts:`` is the
inventory group when ``fix`` read an Ansible inventory and that group has exactly those members, else
the list of hosts. What differs per host only in data (the sha256 a whole file must have) is in the
play's ``vars`` keyed by ``inventory_hostname``, so it does not split a group.

Per remedy, one block: the preconditions as asserts (each file is as audited, or already as fixed),
whole files with ``copy``, line edits with ``lineinfile`` (an insertion next to its anchor line) or
``replace`` (a line replaced), each with ``validate:`` where the daemon's checker takes a file, and
``backup: true``; then the remedy's commands and validation, and its activation, only when a file
changed. A failure restores the backups in ``rescue``.

Remedies with the dead-man timer (18 moves the SSH port, 08 turns the host firewall on) run the very
script ``fix --apply`` sends for them (``script.build``): it arms the host's timer before anything
changes, backs up into the run directory the timer's ``undo.sh`` restores from, changes, validates,
activates. Ansible then opens a NEW connection (``reset_connection``; for 18 on the new port), proves a
login with become, and only then sends the confirmation over it. Without it the host restores itself.
The run id is fixed in the playbook: a run already confirmed is not applied again (a second run
changes nothing). 18's second phase (22 removed) is planned from the facts as the first phase leaves
them, and applied the same way once the first is confirmed. The output is JSON, which is YAML too.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nectar_audit.catalog import entry
from nectar_audit.evidence.bundle import FileRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.fix import script as fix_script
from nectar_audit.fix.run import HostFix, now_id
from nectar_audit.fix.script import sha256
from nectar_audit.remedy import RUN_BASE, FileChange, LineEdit, Remedy

# The daemon's own checker for a file, where it takes the file's path (ansible's ``validate``).
_VALIDATORS: tuple[tuple[str, str], ...] = (
    ("/etc/ssh/sshd_config", "sshd -t -f %s"),
    ("/etc/nftables.conf", "nft -c -f %s"),
    ("/etc/iptables/rules.v4", "iptables-restore --test %s"),
    ("/etc/iptables/rules.v6", "ip6tables-restore --test %s"),
    ("/etc/sudoers", "visudo -c -f %s"),
)
SUMS = "na_sha256"  # the play's per-host checksums: {inventory_hostname: {"N_K": [sha256, ...]}}
# What the evidence says about the running host, which a phase applied by the playbook changes: planning
# the next phase judges from the files instead (sshd -T, the listening sockets).
_LIVE_COMMANDS = ("sshd.T", "sockets.ss")


def _validator(path: str) -> str | None:
    for prefix, command in _VALIDATORS:
        if path == prefix or (prefix == "/etc/sudoers" and path.startswith("/etc/sudoers.d/")):
            return command
    return None


def _anchor(expected: str) -> str:
    return "^" + re.escape(expected) + "$"


def _edit_tasks(change: FileChange, edit: LineEdit, check: str) -> list[dict[str, Any]]:
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


def _remedy_block(remedy: Remedy, n: int, sums: dict[str, list[str]]) -> dict[str, Any]:
    """The block of a remedy applied with modules; the checksums its asserts accept go into ``sums``
    (this host's entry of the play's ``na_sha256``), so the block itself is the same on every host."""
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
            key = f"{n}_{k}"
            sums[key] = [sha256(change.after)] + ([] if change.before is None else [sha256(change.before)])
            allowed = f"{stat_var}.stat.checksum | default('') in {SUMS}[inventory_hostname]['{key}']"
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
                for t in _edit_tasks(change, edit, check):
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


def _deadman_block(remedy: Remedy, n: int, run_id: str, timeout: int) -> dict[str, Any]:
    """A remedy under the host's dead-man timer: the fix script of that remedy alone (arm, back up, change,
    validate, activate), then a NEW connection (on ``confirm_port``) with become, then the confirmation
    over it. Skipped where this run was confirmed before."""
    check = remedy.check
    built = fix_script.build([remedy], run_id, remedy.text(), confirm_timeout=timeout)
    run = f"{RUN_BASE}/{run_id}"
    done, seen, out, become = f"na_confirmed_{n}", f"na_rundir_{n}", f"na_script_{n}", f"na_become_{n}"
    todo = f"not {done}.stat.exists and not ansible_check_mode"
    applied = f"{built.tag} {check} applied"
    # A third of the timer for the new connection (each attempt bounded too): the confirmation must still
    # arrive before the timer fires.
    wait, attempt = max(5, timeout // 3), max(5, min(10, timeout // 6))
    tasks: list[dict[str, Any]] = [
        {"name": f"{check}: was run {run_id} confirmed on this host already",
         "ansible.builtin.stat": {"path": f"{run}/confirmed"}, "register": done},
        {"name": f"{check}: does run {run_id} exist on this host",
         "ansible.builtin.stat": {"path": run}, "register": seen},
        {"name": f"{check}: run {run_id} was started before and never confirmed",
         "ansible.builtin.fail": {"msg": f"run {run_id} was started on this host and not confirmed: its "
                                         f"dead-man timer undid it (or is about to); plan again with "
                                         f"nectar-audit fix --format ansible"},
         "when": f"{seen}.stat.exists and not {done}.stat.exists"},
        {"name": f"{check}: the plan (check mode shows it; the run needs the dead-man timer)",
         "ansible.builtin.debug": {"msg": remedy.text().splitlines()
                                   + [line for c in remedy.changes for line in c.diff().splitlines()]},
         "when": "ansible_check_mode"},
        {"name": f"{check}: arm the dead-man timer ({timeout} s), back up, change, validate, activate "
                 f"(the fix script of run {run_id})",
         "ansible.builtin.command": {"argv": ["/bin/sh", "-s"], "stdin": built.text},
         "register": out, "when": todo, "changed_when": True,
         "failed_when": f"'{built.tag} run armed' not in {out}.stdout or '{applied}' not in {out}.stdout"},
    ]
    if remedy.confirm_port is not None:
        # Set also where the run was confirmed before: the host is then reached on the new port.
        tasks.append({"name": f"{check}: from now on, SSH on port {remedy.confirm_port}",
                      "ansible.builtin.set_fact": {"ansible_port": remedy.confirm_port},
                      "when": f"{done}.stat.exists or not ansible_check_mode"})
    where = f" on port {remedy.confirm_port}" if remedy.confirm_port is not None else ""
    tasks += [
        {"name": f"{check}: drop the connection: the next task opens a new one",
         "ansible.builtin.meta": "reset_connection"},
        {"name": f"{check}: a new SSH connection{where} works",
         "ansible.builtin.wait_for_connection": {"timeout": wait, "connect_timeout": attempt, "sleep": 1},
         "vars": {"ansible_ssh_timeout": attempt}, "when": todo},
        {"name": f"{check}: and become works over it",
         "ansible.builtin.command": {"cmd": "id -u"}, "register": become, "changed_when": False,
         "failed_when": f"{become}.stdout != '0'", "when": todo},
        {"name": f"{check}: confirm run {run_id} (the dead-man timer is stopped, the change stays)",
         "ansible.builtin.shell": {"cmd": fix_script.confirm_command(run_id)},
         "register": f"na_confirm_{n}", "when": todo, "changed_when": False,
         "failed_when": f"'run confirmed' not in na_confirm_{n}.stdout"},
    ]
    rescue = [{"name": f"{check}: not confirmed: the host restores itself",
               "ansible.builtin.fail": {
                   "msg": f"{check} (run {run_id}) was not confirmed over a new connection{where}: "
                          f"the host's dead-man timer restores every file it changed within {timeout} s "
                          "of the start. {{ ansible_failed_task.name | default('') }}: "
                          "{{ ansible_failed_result.msg | default('') }} "
                          "{{ ansible_failed_result.stdout | default('') }}"}}]
    return {"name": f"{check}: {remedy.summary} (under the dead-man timer)", "block": tasks, "rescue": rescue}


def next_phase(facts: Facts, remedy: Remedy) -> Remedy | None:
    """The remedy the check's planner gives once ``remedy`` is applied: planned from ``facts`` with each
    changed file as ``remedy`` leaves it, judged from the files (not from the running daemons)."""
    bundle = copy.copy(facts.bundle)
    bundle.files = dict(bundle.files)
    bundle.stats = dict(bundle.stats)
    bundle.commands = {k: v for k, v in bundle.commands.items() if k not in _LIVE_COMMANDS}
    bundle.errors = list(bundle.errors)
    for change in remedy.changes:
        bundle.files[change.path] = FileRecord(change.after)
        if change.path not in bundle.stats:
            size = len(change.after.encode("utf-8", "surrogateescape"))
            bundle.stats[change.path] = StatRecord(0o100000 | change.mode, 0, 0, size, 0)
    check = entry(remedy.check).check
    if check is None or check.plan is None:
        return None
    return check.plan(Facts(bundle, facts.config))


@dataclass
class _Host:
    """One host's part of the playbook, before hosts with the same plan are grouped."""

    fix: HostFix
    host: str  # as named in the play's hosts (the inventory hostname, else the address)
    steps: list[tuple[Remedy, int]]  # remedy and its number in the blocks
    blocks: list[dict[str, Any] | None] = field(default_factory=list)  # None: a dead-man block, made later
    sums: dict[str, list[str]] = field(default_factory=dict)
    key: str = ""


def _steps(fix: HostFix, named: set[str], comments: list[str]) -> list[Remedy]:
    """The selected remedies in order, each dead-man remedy with a next phase followed by that phase."""
    out: list[Remedy] = []
    for remedy in fix.to_apply(named):
        out.append(remedy)
        if not remedy.next_phase:
            continue
        try:
            later = next_phase(fix.facts, remedy) if fix.facts is not None else None
            why = later.refused if later is not None and later.refused else "nothing to plan"
        except Exception as exc:  # a planner's problem leaves the next phase out, never the playbook
            later, why = None, f"cannot plan it: {type(exc).__name__}: {exc}"
        if later is not None and later.applicable and not later.next_phase:
            out.append(later)
        else:
            comments.append(f"# {fix.name}: {remedy.check}: the next phase is not in this playbook ({why}): once "
                            f"this one is applied, run nectar-audit fix --format ansible again")
    return out


def _pattern(hosts: Sequence[str], groups: Mapping[str, Sequence[str]] | None) -> str | list[str]:
    """The inventory group whose members are exactly ``hosts``, else the hosts themselves (a list: an IPv6
    address would break a colon-separated pattern)."""
    if groups:
        wanted = set(hosts)
        members: dict[str, set[str]] = {}
        for name, of in groups.items():
            for g in of:
                members.setdefault(g, set()).add(name)
        exact = sorted(g for g, m in members.items() if m == wanted)
        if exact:
            return exact[0]
    return list(hosts)


def as_playbook(fixes: Sequence[HostFix], named: set[str],
                groups: Mapping[str, Sequence[str]] | None = None,
                confirm_timeout: int = fix_script.DEFAULT_CONFIRM_TIMEOUT) -> str:
    """The playbook of every host's selected remedies, one play per group of hosts with the same plan
    (a comment for what is left out, and why). ``groups``: the Ansible inventory's hostnames and the
    groups of each, when fix read one; ``confirm_timeout``: the dead-man timer's seconds."""
    comments: list[str] = ["# nectar-audit fix as an Ansible playbook: ansible-playbook -i INVENTORY THIS-FILE",
                           "# (--check --diff shows the edits first). One play per group of hosts with the "
                           "same plan.",
                           f"# Fixes under the dead-man timer (18, 08) are undone by the host unless a new "
                           f"connection confirms them within {confirm_timeout} s;",
                           "# after 18 has moved SSH, set ansible_port to the new port in your inventory. Their "
                           "plays run 5 hosts at a time (-e na_serial=N)."]
    hosts: list[_Host] = []
    for fix in fixes:
        if fix.error:
            comments.append(f"# {fix.name}: not planned: {fix.error}")
            continue
        inventory_name = groups is not None and fix.name in groups
        h = _Host(fix, fix.name if inventory_name else str(getattr(fix.target, "host", fix.name)), [])
        key: list[Any] = []
        for n, remedy in enumerate(_steps(fix, named, comments)):
            h.steps.append((remedy, n))
            if remedy.deadman:
                # What the host is told to do must be equal (the script holds every precondition); what
                # is said to a human (the host's name in a note, the account that logs in) may differ.
                remedy = dataclasses.replace(remedy, preconditions=(), manual=(), notes=())
                h.steps[-1] = (remedy, n)
                h.blocks.append(None)
                key.append(repr(remedy))
            else:
                block = _remedy_block(remedy, n, h.sums)
                h.blocks.append(block)
                key.append(block)
        if h.steps:
            h.key = json.dumps(key, sort_keys=True)
            hosts.append(h)
    by_key: dict[str, list[_Host]] = {}
    for h in hosts:
        by_key.setdefault(h.key, []).append(h)
    plays: list[dict[str, Any]] = []
    for members in by_key.values():
        first = members[0]
        blocks: list[dict[str, Any]] = []
        run_ids: set[str] = set()
        for (remedy, n), made in zip(first.steps, first.blocks):
            if made is None:  # one run id per play and phase: each host keeps its own run directory
                run_id = fix_script.new_run_id(now_id())
                while run_id in run_ids:
                    run_id = fix_script.new_run_id(now_id())
                run_ids.add(run_id)
                made = _deadman_block(remedy, n, run_id, confirm_timeout)
            blocks.append(made)
        names = [h.host for h in members]
        checks = ", ".join(dict.fromkeys(r.check for r, _n in first.steps))
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        play: dict[str, Any] = {"name": f"nectar-audit fix: {checks} on {shown}",
                                "hosts": _pattern(names, groups), "become": True, "gather_facts": False}
        if first.blocks.count(None):
            # Each host's timer runs from its own script to its own confirmation: no host may wait for
            # another (free), nor for more hosts than Ansible's default forks (serial; -e na_serial=N).
            play.update(strategy="free", serial="{{ na_serial | default(5) }}")
        if any(h.sums for h in members):
            play["vars"] = {SUMS: {h.host: h.sums for h in members}}
        play["tasks"] = blocks
        plays.append(play)
    return "\n".join(c.replace("\n", " ") for c in comments) + "\n" + json.dumps(plays, indent=2) + "\n"
