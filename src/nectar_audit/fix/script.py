"""A fix plan as one POSIX shell script: what ``fix --format sh`` prints and ``fix --apply`` sends.

Each remedy runs as a transaction: verify that every file is as the audit saw it, back each one up
(content, mode, owner) in the run directory, change it, run the daemon's own checker, activate; any
failure restores that remedy's backups (and re-activates) before the next one starts. The run directory
also gets ``undo.sh``, which restores every applied remedy in reverse order: ``fix --undo`` runs it.
The host reports on stdout only through lines that start with the run's tag.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from nectar_audit.remedy import RUN_BASE, FileChange, Remedy, Step, edit_command

q = shlex.quote

_HELPERS = r"""
na_say() {
    printf '%s %s %s %s\n' "$NA_TAG" "$1" "$2" \
        "$(printf '%s' "$3" | tr '\n\t' '  ' | tr -d '\000-\037\177' | cut -c1-1500)"
}
na_backup() {  # remedy, slot, path: the file as it is now, or the mark that it did not exist
    if [ -e "$3" ] || [ -L "$3" ]; then
        cp -p "$3" "$NA_RUN/$1/$2"
    else
        : > "$NA_RUN/$1/$2.absent"
    fi
}
na_restore() {  # remedy, slot, path
    if [ -f "$NA_RUN/$1/$2" ]; then
        cp -p "$NA_RUN/$1/$2" "$3.na-tmp" && mv -f "$3.na-tmp" "$3"
    elif [ -e "$NA_RUN/$1/$2.absent" ]; then
        rm -f "$3"
    fi
    if [ -e "$NA_RUN/$1/$2.dir" ]; then
        rmdir "$(cat "$NA_RUN/$1/$2.dir")" 2>/dev/null || :
    fi
}
"""

# Only what applying needs beyond the above.
_APPLY_HELPERS = r"""
na_state() {  # path, sha256 or "absent": is the file as the audit saw it?
    if [ "$2" = absent ]; then
        [ ! -e "$1" ] && [ ! -L "$1" ]
    else
        [ -f "$1" ] && [ ! -L "$1" ] && [ "$(sha256sum < "$1" | cut -d' ' -f1)" = "$2" ]
    fi
}
na_mkdir() {  # remedy, slot, directory: created if missing, and remembered so an undo removes it
    [ -d "$3" ] && return 0
    mkdir -p "$3" && printf '%s' "$3" > "$NA_RUN/$1/$2.dir"
}
na_write() {  # path, mode, content: a new file gets mode, an existing one keeps its mode and owner
    if [ -e "$1" ]; then
        cp -p "$1" "$1.na-tmp" || return 1
    else
        : > "$1.na-tmp" && chmod "$2" "$1.na-tmp" || return 1
    fi
    if ! { printf '%s' "$3" > "$1.na-tmp" && mv -f "$1.na-tmp" "$1"; }; then
        rm -f "$1.na-tmp"
        return 1
    fi
    if command -v restorecon >/dev/null 2>&1; then restorecon "$1" 2>/dev/null || :; fi
}
na_run() {  # command text: its output is kept for the report, never mixed into ours
    na_out=$( (eval "$1") 2>&1 < /dev/null )
}
"""


@dataclass(frozen=True)
class Script:
    run_id: str
    tag: str
    text: str


def new_run_id(now: str) -> str:
    """``20261207T160000Z-1a2b3c``: sorts by time, unique across concurrent runs."""
    return f"{now}-{secrets.token_hex(3)}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _paths(remedy: Remedy) -> list[str]:
    out: list[str] = []
    for path in [c.path for c in remedy.changes] + [p for s in remedy.commands for p in s.backs_up]:
        if path not in out:
            out.append(path)
    return out


def _fail(n: int, status: str, message: str, rollback: bool = True, reactivate: bool = False,
          first: str = "") -> str:
    steps = [first] if first else []
    if rollback:
        steps.append(f"na_rollback_{n}")
    if reactivate:
        steps.append(f"na_activate_{n} || :")
    steps.append(f'na_say "$na_c" {status} {message}')
    steps.append("return 0")
    return "{ " + "; ".join(steps) + "; }"


def _change(n: int, slot: int, change: FileChange) -> list[str]:
    out: list[str] = []
    directory = change.path.rsplit("/", 1)[0] or "/"
    if change.before is None:
        out.append(f"    na_mkdir {n} {slot} {q(directory)} || "
                   + _fail(n, "error", q(f"cannot create {directory}")))
    if change.whole:
        out.append(f"    na_write {q(change.path)} {change.mode:04o} {q(change.after)} || "
                   + _fail(n, "error", q(f"cannot write {change.path}")))
    else:
        for edit in change.edits:
            missing = f"{change.path} changed since the audit: no line {edit.expected!r} to edit"
            out.append(f"    ( {edit_command(change.path, edit)} ) || "
                       + _fail(n, "error", q(missing), first="rm -f " + q(change.path + ".na-tmp")))
    return out


def _steps(n: int, steps: Sequence[Step], label: str, reactivate: bool = False) -> list[str]:
    out = []
    for step in steps:
        out.append(f"    na_step={q(step.sh)}")
        out.append('    na_run "$na_step" || '
                   + _fail(n, "error", f'"{label} failed: $na_step: $na_out"', reactivate=reactivate))
    return out


def _remedy_function(n: int, remedy: Remedy) -> list[str]:
    paths = _paths(remedy)
    lines = [f"na_fix_{n}() {{", f"    na_c={q(remedy.check)}"]
    for change in remedy.changes:
        lines.append(f"    [ ! -L {q(change.path)} ] || "
                     + _fail(n, "refused", q(f"{change.path} is a symbolic link: not edited"), rollback=False))
        if change.whole:
            state = "absent" if change.before is None else sha256(change.before)
            lines.append(f"    na_state {q(change.path)} {state} || "
                         + _fail(n, "refused", q(f"{change.path} changed since the audit"), rollback=False))
    lines.append(f'    mkdir "$NA_RUN/{n}" || ' + _fail(n, "error", '"cannot create the backup directory"',
                                                       rollback=False))
    for slot, path in enumerate(paths):
        lines.append(f"    na_backup {n} {slot} {q(path)} || "
                     + _fail(n, "error", q(f"cannot back up {path}"), rollback=False))
    # From here on the host may differ from the backups: a dead-man undo restores "started" remedies too.
    lines.append(f'    echo {n} >> "$NA_RUN/started"')
    for change in remedy.changes:
        lines.extend(_change(n, paths.index(change.path), change))
    lines.extend(_steps(n, remedy.commands, "command"))
    lines.extend(_steps(n, remedy.validate, "validation"))
    lines.extend(_steps(n, remedy.activate, "activation", reactivate=True))
    lines.append(f'    echo {n} >> "$NA_RUN/applied"')
    lines.append('    na_say "$na_c" applied ""')
    lines.append("}")
    lines.append(f"na_rollback_{n}() {{")
    lines.extend(f"    na_restore {n} {slot} {q(path)}" for slot, path in enumerate(paths))
    lines.append("    :")
    lines.append("}")
    lines.append(f"na_activate_{n}() {{")
    lines.extend(f"    ( {step.sh} ) >/dev/null 2>&1 < /dev/null || :" for step in remedy.activate)
    lines.append("    :")
    lines.append("}")
    return lines


def _undo_script(remedies: Sequence[Remedy], tag: str) -> str:
    """Restores every applied remedy, newest first, then re-activates what it restored."""
    lines = ["#!/bin/sh", "# Undo of a nectar-audit fix run: restores the files as they were before it.",
             "set -u", 'NA_RUN=$(cd "$(dirname "$0")" && pwd)', f"NA_TAG={q(tag)}",
             _HELPERS.strip(),
             '[ -e "$NA_RUN/undone" ] && { na_say run undone "this run was already undone"; exit 0; }']
    for n, remedy in reversed(list(enumerate(remedies))):
        paths = _paths(remedy)
        lines.append(f'if grep -qx {n} "$NA_RUN/applied" "$NA_RUN/started" 2>/dev/null; then')
        lines.extend(f"    na_restore {n} {slot} {q(path)}" for slot, path in enumerate(paths))
        lines.extend(f"    ( {step.sh} ) >/dev/null 2>&1 < /dev/null || :" for step in remedy.activate)
        lines.append(f"    na_say {q(remedy.check)} undone \"\"")
        lines.append("fi")
    lines.append('date -u +%Y-%m-%dT%H:%M:%SZ > "$NA_RUN/undone"')
    lines.append('na_say run "done" ""')
    return "\n".join(lines) + "\n"


DEFAULT_CONFIRM_TIMEOUT = 120
CONFIRM_TAG = "NA-FIX-" + "0" * 16  # the confirmation's records (parse_records reads any run's tag)


def deadman_unit(run_id: str) -> str:
    return f"nectar-audit-deadman-{run_id}"


def _arm_deadman(run_id: str, timeout: int, base: str = RUN_BASE) -> list[str]:
    """Arm, before anything changes, a timer that runs undo.sh unless the run is confirmed in time.

    Whoever first creates ``$NA_RUN/decided`` (the timer or the confirmation; mkdir is atomic) wins, so a
    late confirmation never races an undo already under way. systemd-run where systemd is PID 1, else a
    background ``sleep`` in its own session (setsid, nohup): both outlive the SSH session."""
    run = f"{base}/{run_id}"
    fire = (f"mkdir {q(run + '/decided')} 2>/dev/null && "
            f"sh {q(run + '/undo.sh')} > {q(run + '/deadman.log')} 2>&1")
    unit = deadman_unit(run_id)
    return [
        "trap '' HUP PIPE  # a dropped connection must not stop the run half-way: the dead-man timer decides",
        "na_arm() {",
        "    if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1 && "
        f"systemd-run --quiet --collect --unit={q(unit)} --on-active={timeout}s "
        f"--timer-property=AccuracySec=1s /bin/sh -c {q(fire)} >/dev/null 2>&1; then",
        '        echo systemd > "$NA_RUN/deadman"; return 0',
        "    fi",
        "    if command -v setsid >/dev/null 2>&1; then na_detach=setsid; else na_detach=; fi",
        f"    $na_detach nohup sh -c {q(f'sleep {timeout}; {fire}')} </dev/null >/dev/null 2>&1 &",
        '    echo "$!" > "$NA_RUN/deadman.pid" && echo sleep > "$NA_RUN/deadman"',
        "}",
        'na_arm || { na_say run error "cannot arm the dead-man timer: nothing was changed"; exit 1; }',
        f'na_say run armed "$(cat "$NA_RUN/deadman") {timeout}"',
    ]


def confirm_command(run_id: str) -> str:
    """What the controller sends once a new connection works: the run stays, the timer is stopped.
    Prints ``run confirmed``, or ``run expired`` when the timer already fired (the run is being undone)."""
    run = q(f"{RUN_BASE}/{run_id}")
    unit = q(deadman_unit(run_id))
    return "\n".join([
        f"[ -d {run} ] || {{ echo 'no such fix run: {run_id}' >&2; exit 3; }}",
        f"if mkdir {run}/decided 2>/dev/null; then",
        f"    date -u +%Y-%m-%dT%H:%M:%SZ > {run}/confirmed",
        f'    if [ "$(cat {run}/deadman 2>/dev/null)" = systemd ]; then',
        f"        systemctl stop {unit}.timer >/dev/null 2>&1 || :",
        f"    elif [ -s {run}/deadman.pid ]; then",
        f'        p=$(cat {run}/deadman.pid); kill -TERM -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || :',
        "    fi",
        f"    echo '{CONFIRM_TAG} run confirmed'",
        "else",
        f"    echo '{CONFIRM_TAG} run expired the dead-man timer fired first: the run was undone'",
        "fi",
    ]) + "\n"


def build(remedies: Sequence[Remedy], run_id: str, plan_text: str = "", base: str = RUN_BASE,
          confirm_timeout: int = DEFAULT_CONFIRM_TIMEOUT) -> Script:
    """The apply script of ``remedies`` (each must be ``applicable``) as run ``run_id``; when one of them
    is a ``deadman`` remedy, the run is undone after ``confirm_timeout`` s unless confirmed."""
    tag = f"NA-FIX-{secrets.token_hex(8)}"
    run = f"{base}/{run_id}"
    lines = [
        "#!/bin/sh",
        f"# nectar-audit fix, run {run_id}. Run as root: sh THIS-FILE. Each fix is verified, backed up in",
        f"# {run}, changed, checked by the daemon's own checker and activated; a failure restores it.",
        f"# Undo the whole run with: sh {run}/undo.sh",
    ]
    lines.extend(f"#   {line}" for line in plan_text.splitlines())
    lines += [
        "set -u",
        "umask 077",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL=C",
        "export PATH LC_ALL",
        f"NA_TAG={q(tag)}",
        f"NA_RUN={q(run)}",
        _HELPERS.strip(),
        _APPLY_HELPERS.strip(),
        '[ "$(id -u)" = 0 ] || { na_say run error "must run as root"; exit 1; }',
        f"if ! {{ mkdir -p {q(base)} && chmod 700 {q(base.rsplit('/', 1)[0])} {q(base)}; }}; then "
        'na_say run error "cannot create the run directory"; exit 1; fi',
        'mkdir "$NA_RUN" || { na_say run error "cannot create $NA_RUN"; exit 1; }',
        ': > "$NA_RUN/applied"',
        f'printf \'%s\' {q(_undo_script(remedies, tag))} > "$NA_RUN/undo.sh" || '
        '{ na_say run error "cannot write the undo script"; exit 1; }',
        f'printf \'%s\\n\' {q(plan_text)} > "$NA_RUN/plan.txt"',
    ]
    if any(r.deadman for r in remedies):
        lines.extend(_arm_deadman(run_id, confirm_timeout, base))
    for n, remedy in enumerate(remedies):
        lines.extend(_remedy_function(n, remedy))
    lines.extend(f"na_fix_{n}" for n in range(len(remedies)))
    lines.append('na_say run "done" "$NA_RUN"')
    return Script(run_id, tag, "\n".join(lines) + "\n")


def undo_command(run_id: str | None, base: str = RUN_BASE) -> str:
    """The script ``fix --undo`` sends: the run's own undo.sh (the newest run when none is named)."""
    if run_id is not None:
        run = q(f"{base}/{run_id}")
        return f"[ -f {run}/undo.sh ] || {{ echo 'no such fix run: {run_id}' >&2; exit 3; }}\nsh {run}/undo.sh\n"
    where = q(base)
    # The newest run not undone yet: runs sort by their UTC start time.
    return (f"na_last=$(ls -1 {where} 2>/dev/null | grep -E '^[0-9]{{8}}T[0-9]{{6}}Z-[0-9a-f]+$' | sort -r | "
            f"while read -r r; do [ -e {where}/\"$r\"/undone ] || {{ echo \"$r\"; break; }}; done)\n"
            "[ -n \"$na_last\" ] || { echo 'no fix run to undo on this host' >&2; exit 3; }\n"
            f"sh {where}/\"$na_last\"/undo.sh\n")


LIST_RUNS = (
    f"for d in {q(RUN_BASE)}/*/; do [ -f \"$d/undo.sh\" ] || continue; "
    "n=$(basename \"$d\"); s=applied; [ -e \"$d/undone\" ] && s=undone; "
    "[ $s = applied ] && [ -e \"$d/deadman\" ] && [ ! -d \"$d/decided\" ] && s=pending; "
    "printf '%s %s %s\\n' \"$n\" \"$s\" \"$(wc -l < \"$d/applied\" | tr -d ' ')\"; done\n"
)
