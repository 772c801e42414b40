"""Structured remediation: what fixing a check changes, as data.

A check's planner builds a ``Remedy`` from facts (pure, like the check itself); reports render it as text,
``nectar-audit fix`` shows it as a plan and applies it (``fix/script.py`` turns it into POSIX shell).
Edits are minimal: a file of our own written whole, or single lines of a user's file replaced where the
setting takes effect. A line edit is anchored on the line's exact text, never on what we hold of the rest
of the file (a sanitizer may have redacted other lines of our copy): the host verifies the text before it
changes anything.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Where a fix keeps backups and undo scripts on the host (0700, root only).
RUN_BASE = "/var/lib/nectar-audit/fix"
TAG = "nectar-audit"  # marks lines and files we wrote, so a reader of the host's config knows why


@dataclass(frozen=True)
class LineEdit:
    """Replace the ``occurrence``-th line whose text is exactly ``expected`` by ``new`` (zero or more
    lines). The host refuses the edit if no such line exists (the file changed since the audit)."""

    expected: str
    new: tuple[str, ...]
    occurrence: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"expected": self.expected, "new": list(self.new), "occurrence": self.occurrence}


def apply_line_edits(text: str, edits: Iterable[LineEdit]) -> str | None:
    """``text`` after ``edits`` in order, as the host's awk applies them; None when one finds no line."""
    lines = text.split("\n")
    trailing = lines[-1] == ""
    if trailing:
        lines.pop()
    for edit in edits:
        seen = 0
        for k, line in enumerate(lines):
            if line == edit.expected:
                seen += 1
                if seen == edit.occurrence:
                    lines[k:k + 1] = list(edit.new)
                    break
        else:
            return None
    # awk ends every line it prints with a newline, so the host's result always has a final one.
    return "\n".join(lines) + "\n" if lines else ""


@dataclass(frozen=True)
class FileChange:
    """One file the fix changes. ``edits`` empty: ``after`` is written whole (a new file, or one of ours
    whose content we hold exactly). ``before`` is the file as gathered (None: absent), for the diff."""

    path: str
    before: str | None
    after: str
    edits: tuple[LineEdit, ...] = ()
    mode: int = 0o644
    why: str = ""

    @property
    def whole(self) -> bool:
        return not self.edits

    def diff(self) -> str:
        import difflib  # only plans show diffs: a scan of a passing host never loads it

        old = [] if self.before is None else self.before.splitlines(keepends=True)
        new = self.after.splitlines(keepends=True)
        return "".join(difflib.unified_diff(
            old, new, "/dev/null" if self.before is None else f"a{self.path}", f"b{self.path}", n=2))

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "why": self.why, "mode": f"{self.mode:04o}", "diff": self.diff(),
                "edits": [e.to_json() for e in self.edits], "whole_file": self.whole}


@dataclass(frozen=True)
class Step:
    """One shell command (POSIX sh), built by a planner with every host-derived word quoted."""

    sh: str
    why: str = ""
    backs_up: tuple[str, ...] = ()  # files the command may change: backed up before it runs

    def to_json(self) -> dict[str, Any]:
        return {"sh": self.sh, "why": self.why, "backs_up": list(self.backs_up)}


# The lock-out guard of a fix that can cut off SSH access: after activation a new SSH connection with key
# authentication must log in and run ``sudo -n true``, or the fix is rolled back.
GUARD_KEY_LOGIN = "key-login"


@dataclass(frozen=True)
class Remedy:
    """How to fix one check on one host."""

    check: str
    summary: str
    preconditions: tuple[str, ...] = ()  # what the planner verified before proposing the change
    changes: tuple[FileChange, ...] = ()
    commands: tuple[Step, ...] = ()  # run after the file changes (postconf -e, package installs, …)
    validate: tuple[Step, ...] = ()  # the daemon's own checker: a failure restores the backups
    activate: tuple[Step, ...] = ()  # reload/restart; also run after an undo
    manual: tuple[str, ...] = ()  # what is left for a human, each with why
    refused: str | None = None  # a precondition that does not hold: nothing is applied, and why
    guard: str | None = None
    explicit: bool = False  # applied only when the check is named with --checks (e.g. installing updates)
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. "a reboot is needed" (never done)
    # A fix that can cut off the controller (SSH port, host firewall): before anything changes the host arms
    # a timer that runs the run's undo.sh unless the controller confirms, over a NEW connection, in time.
    deadman: bool = False
    confirm_port: int | None = None  # the SSH port that new connection uses (None: the target's own)
    next_phase: bool = False  # once confirmed, plan this check again and apply what that plan says

    @property
    def applicable(self) -> bool:
        return self.refused is None and bool(self.changes or self.commands)

    def shell(self) -> str:
        """The fix as commands a user can paste (``sudo`` where root is needed), no prose."""
        out: list[str] = []
        for change in self.changes:
            if change.whole:
                directory = change.path.rsplit("/", 1)[0] or "/"
                out.append(f"sudo mkdir -p {shlex.quote(directory)}")
                out.append(f"printf '%s' {shlex.quote(change.after)} | sudo tee {shlex.quote(change.path)} >/dev/null")
            else:
                for edit in change.edits:
                    out.append(_sed_edit(change.path, edit))
        for group in (self.commands, self.validate, self.activate):
            out.extend(_sudo(step.sh) for step in group)
        return "\n".join(out)

    def text(self) -> str:
        """The plan in words, for reports and ``fix`` without ``--apply``."""
        parts: list[str] = [self.summary]
        if self.refused:
            parts.append(f"not applied automatically: {self.refused}")
        for change in self.changes:
            verb = "create" if change.before is None else ("write" if change.whole else "edit")
            parts.append(f"{verb} {change.path}" + (f" ({change.why})" if change.why else ""))
        for label, group in (("run", self.commands), ("check with", self.validate), ("then", self.activate)):
            if group:
                parts.append(f"{label}: " + "; ".join(s.sh for s in group))
        parts.extend(f"by hand: {m}" for m in self.manual)
        parts.extend(self.notes)
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "summary": self.summary,
            "applicable": self.applicable,
            "refused": self.refused,
            "guard": self.guard,
            "explicit": self.explicit,
            "preconditions": list(self.preconditions),
            "changes": [c.to_json() for c in self.changes],
            "commands": [s.to_json() for s in self.commands],
            "validate": [s.to_json() for s in self.validate],
            "activate": [s.to_json() for s in self.activate],
            "manual": list(self.manual),
            "notes": list(self.notes),
            "deadman": self.deadman,
            "confirm_port": self.confirm_port,
            "next_phase": self.next_phase,
        }


def _sudo(command: str) -> str:
    # A compound command runs whole under one root shell.
    return f"sudo sh -c {shlex.quote(command)}"


# The one line-edit program, used by the apply script and by pasted fixes alike. Texts come through the
# environment (awk -v would interpret backslashes); exit 3 when the anchor line is not there.
EDIT_AWK = (
    'BEGIN { e = ENVIRON["NA_E"]; n = ENVIRON["NA_N"] + 0; '
    # NA_R holds each new line followed by a newline, so no lines and one empty line differ.
    'm = split(ENVIRON["NA_R"], r, "\\n") - 1; if (m < 0) m = 0 } '
    '$0 == e && ++c == n { for (i = 1; i <= m; i++) print r[i]; hit = 1; next } '
    '{ print } '
    'END { exit hit ? 0 : 3 }'
)


def edit_command(path: str, edit: LineEdit) -> str:
    """A shell command making ``edit`` to ``path`` in place (mode and owner kept, atomic rename)."""
    q = shlex.quote
    return (f"NA_E={q(edit.expected)} NA_R={q(''.join(line + chr(10) for line in edit.new))} NA_N={edit.occurrence} "
            f"na_f={q(path)}; export NA_E NA_R NA_N; "
            f"cp -p \"$na_f\" \"$na_f.na-tmp\" && awk {q(EDIT_AWK)} \"$na_f\" > \"$na_f.na-tmp\" "
            f"&& mv -f \"$na_f.na-tmp\" \"$na_f\"")


def _sed_edit(path: str, edit: LineEdit) -> str:
    return _sudo(edit_command(path, edit))


def drop_in(path: str, lines: Sequence[str], before: str | None, why: str, comment: str = "#") -> FileChange:
    """A whole file of our own holding ``lines`` (with a header saying who wrote it and why)."""
    header = f"{comment} Written by {TAG} fix: {why}. Remove this file to undo.\n"
    return FileChange(path, before, header + "".join(f"{line}\n" for line in lines), why=why)


def comment_out(path: str, before: str, line: str, why: str, occurrence: int = 1, comment: str = "#",
                replacement: Sequence[str] = ()) -> FileChange:
    """``line`` of ``path`` commented out (kept for the reader), optionally followed by replacement lines."""
    edit = LineEdit(line, (f"{comment} {line}  {comment} disabled by {TAG}: {why}", *replacement), occurrence)
    after = apply_line_edits(before, [edit])
    if after is None:
        raise ValueError(f"{path}: no line {line!r} to edit")
    return FileChange(path, before, after, (edit,), why=why)


def merge_changes(changes: Sequence[FileChange]) -> tuple[FileChange, ...]:
    """One change per path: line edits of the same file applied in order (whole writes win)."""
    by_path: dict[str, FileChange] = {}
    for change in changes:
        prev = by_path.get(change.path)
        if prev is None or change.whole or prev.whole:
            by_path[change.path] = change if prev is None or change.whole else prev
            continue
        after = apply_line_edits(prev.after, change.edits)
        if after is None:
            continue
        by_path[change.path] = FileChange(change.path, prev.before, after, prev.edits + change.edits,
                                          prev.mode, "; ".join(w for w in (prev.why, change.why) if w))
    return tuple(by_path.values())
