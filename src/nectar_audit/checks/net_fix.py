"""What the fix plans of the network-service checks (02 mail, 05 DNS, 06 NTP) share.

A plan changes only the daemons whose findings fail or warn (the check's own verdict decides, so a daemon
the firewall already shields is left alone), edits a user's line in place (the old text kept as a comment)
where that line is the one the daemon uses, and tells the daemon with systemd when it runs as PID 1,
else through its pid file: a stopped daemon stays stopped (``try-restart``), its next start reads the fix.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Sequence

from nectar_audit.facts import Facts
from nectar_audit.facts.net import LOOPBACK, Net, subtract
from nectar_audit.model import Finding, Status
from nectar_audit.remedy import TAG, FileChange, LineEdit, Step, apply_line_edits

q = shlex.quote



def failing_names(run: Callable[[Facts], list[Finding]], facts: Facts, names: Iterable[str]) -> set[str]:
    """Which of the daemon ``names`` have a failing or warning finding in the check's own verdict."""
    findings = facts.get(run)  # the verdict the scan already reached (the engine runs checks through facts)
    return {n for n in names if any(f.status in (Status.FAIL, Status.WARN) and f.message.startswith(n)
                                    for f in findings)}


def beyond(nets: Iterable[Net], trusted: Sequence[Net]) -> list[Net]:
    """What of ``nets`` is neither loopback nor a trusted network."""
    return subtract(list(nets), [*LOOPBACK, *trusted])


def split_where(where: str) -> tuple[str, int] | None:
    path, sep, line = where.rpartition(":")
    return (path, int(line)) if sep and line.isdigit() and path else None


class Edits:
    """Line edits and whole files collected per path, turned into ``FileChange``s at the end."""

    def __init__(self, facts: Facts, why: str) -> None:
        self.facts = facts
        self.why = why
        self.texts: dict[str, str | None] = {}
        self.edits: dict[str, list[LineEdit]] = {}
        self.wholes: list[FileChange] = []
        self.manual: list[str] = []

    def text(self, path: str) -> str | None:
        if path not in self.texts:
            self.texts[path] = self.facts.bundle.text(path)
        return self.texts[path]

    def raw(self, path: str, line: int) -> tuple[str, int] | None:
        """The exact text of 1-based ``line`` of ``path`` and which occurrence of that text it is."""
        text = self.text(path)
        if text is None:
            return None
        lines = text.split("\n")
        if not 0 < line <= len(lines):
            return None
        raw = lines[line - 1]
        return raw, lines[:line].count(raw)

    def _add(self, path: str, edit: LineEdit) -> None:
        mine = self.edits.setdefault(path, [])
        if any(e.expected == edit.expected and e.occurrence == edit.occurrence for e in mine):
            return  # the same line reached twice (two findings, two views): edited once
        mine.append(edit)

    def replace(self, path: str, line: int, new: Sequence[str], comment: str = "#", keep: bool = True) -> bool:
        """Line ``line`` of ``path`` becomes ``new`` (the old text kept as a comment above it)."""
        return self._rewrite(path, line, comment, "replaced" if keep else None, new, "change")

    def disable(self, path: str, line: int, comment: str = "#") -> bool:
        return self._rewrite(path, line, comment, "disabled", (), "remove")

    def _rewrite(self, path: str, line: int, comment: str, verb: str | None, new: Sequence[str],
                 by_hand: str) -> bool:
        """The line commented out (``verb`` says why; None: dropped), followed by ``new``."""
        got = self.raw(path, line)
        if got is None:
            self.manual.append(f"{path}:{line}: could not be read; {by_hand} it by hand")
            return False
        raw, occ = got
        indent = raw[: len(raw) - len(raw.lstrip())]
        old = (f"{indent}{comment} {raw.strip()}  {comment} {verb} by {TAG}: {self.why}",) if verb else ()
        self._add(path, LineEdit(raw, (*old, *new), occ))
        return True

    def insert_after(self, path: str, line: int, new: Sequence[str]) -> bool:
        got = self.raw(path, line)
        if got is None:
            self.manual.append(f"{path}:{line}: could not be read")
            return False
        raw, occ = got
        self._add(path, LineEdit(raw, (raw, *new), occ))
        return True

    def prepend(self, path: str, new: Sequence[str]) -> bool:
        """``new`` as the first lines of ``path`` (before its current first line)."""
        return self.insert_before(path, 1, new)

    def insert_before(self, path: str, line: int, new: Sequence[str]) -> bool:
        got = self.raw(path, line)
        if got is None:
            self.manual.append(f"{path}: could not be read")
            return False
        raw, occ = got
        self._add(path, LineEdit(raw, (*new, raw), occ))
        return True

    def whole(self, change: FileChange) -> None:
        if change.before != change.after:
            self.wholes.append(change)

    def changes(self) -> tuple[FileChange, ...]:
        out = list(self.wholes)
        for path, edits in self.edits.items():
            before = self.texts.get(path) or ""
            after = apply_line_edits(before, edits)
            if after is None:
                self.manual.append(f"{path}: the lines to change could not be located")
                continue
            out.append(FileChange(path, before, after, tuple(edits), why=self.why))
        return tuple(out)


def _alive(pidfile: str) -> str:
    return f'na_pid=$(cat {q(pidfile)} 2>/dev/null) && [ -n "$na_pid" ] && kill -0 "$na_pid" 2>/dev/null'


def start_command(init: str, daemon: str) -> str:
    """Start through the distribution's init script when there is one (it reads /etc/default), else directly.

    Its output goes to a file, shown only on failure: a daemon that keeps the inherited stderr open
    (Dovecot's master does) would otherwise hold the apply script's capture of the command open forever."""
    run = f"if [ -x /etc/init.d/{init} ]; then /etc/init.d/{init} start; else {daemon}; fi"
    return ('na_log=$(mktemp) && { ( ' + run + ' ) < /dev/null > "$na_log" 2>&1; na_rc=$?; '
            '[ "$na_rc" = 0 ] || cat "$na_log"; rm -f "$na_log"; [ "$na_rc" = 0 ]; }')


def restart(unit: str, pidfile: str, start: str, why: str) -> Step:
    """A restart of a running daemon: ``systemctl try-restart`` under systemd; else, when the pid file names
    a live process, SIGTERM, wait for it to exit (at most 30 s) and ``start``; a stopped daemon stays stopped."""
    sh = (f"if [ -d /run/systemd/system ]; then systemctl try-restart {q(unit)}; "
          f"elif {_alive(pidfile)}; then kill \"$na_pid\"; na_i=0; "
          "while kill -0 \"$na_pid\" 2>/dev/null && [ \"$na_i\" -lt 150 ]; do sleep 0.2; na_i=$((na_i + 1)); done; "
          f"{start}; fi")
    return Step(sh, why)


def reload(unit: str, pidfile: str, command: str, why: str) -> Step:
    """A reload of a running daemon (systemd, else ``command`` when the pid file names a live process)."""
    sh = (f"if [ -d /run/systemd/system ]; then systemctl try-reload-or-restart {q(unit)}; "
          f"elif {_alive(pidfile)}; then {command}; fi")
    return Step(sh, why)
