"""The process list of a live host: pid, parent, user, command name and arguments.

One ``ps`` (procps, fixed-width columns so a command name with spaces still parses), its arguments
passed through ``sed`` to blank values that look like credentials (``--password=…``, ``token=…``,
``scheme://user:secret@``) before they enter the evidence bundle. Without procps ``ps`` (minimal
images) one ``grep`` over ``/proc/*/status`` gives names, parents and uids (no arguments).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs, redact_args
from nectar_audit.facts.accounts import uid_names

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

PS_COMMAND = "processes.ps"

_KW = (
    "([Pp][Aa][Ss][Ss]|[Tt][Oo][Kk][Ee][Nn]|[Ss][Ee][Cc][Rr][Ee][Tt]|[Kk][Ee][Yy]|[Aa][Uu][Tt][Hh]"
    "|[Cc][Rr][Ee][Dd])"
)
_SED = (
    r"s#(://)[^/@ ]+@#\1<redacted>@#g; "
    r"s#([A-Za-z0-9_.-]*" + _KW + r"[A-Za-z0-9_.-]*)(=| )[^ ]+#\1\3<redacted>#g"
)
_PS_FORMAT = "pid:10=,ppid:10=,uid:10=,user:32=,comm:16=,args="
_SNIPPET = f"""
if out=$(ps -eo {_PS_FORMAT} 2>/dev/null) && [ -n "$out" ]; then
  echo '#ps'; printf '%s\\n' "$out" | sed -E '{_SED}'
else
  echo '#proc'; grep -H -e '^Name:' -e '^PPid:' -e '^Uid:' /proc/[0-9]*/status 2>/dev/null
fi
echo "#self $$"
"""


_REDACT_URL = re.compile(r"(://)[^/@ ]+@")
# KEY=VALUE for a credential-like key, and --FLAG VALUE for a credential-like flag (a word that merely
# contains "pass", like sshpass, is not a flag: its next word is not the secret). Matched word by word:
# one expression around the stem backtracked quadratically in a long word (a 10 KB argument took 7 s).
_WORD = re.compile(r"[A-Za-z0-9_.-]+", re.IGNORECASE)  # IGNORECASE: the class also folds "K", "ſ"
_STEM = re.compile(r"pass|token|secret|key|auth|cred", re.IGNORECASE)
_KV_STEMS = ("pass", "token", "secret", "key", "auth", "cred")


def redact(args: str) -> str:
    """The blanking the gatherer's sed does, then the secret-taking flags of common commands (``sshpass -p``,
    ``mysql -pX``, ``curl -u user:pass``): for bundles gathered by other means, and for every ps line."""
    # Remembered by content: the hosts of a fleet run the same daemons with the same command lines.
    return _redact_shared(args) if len(args) <= 4096 else _redact(args)


@functools.lru_cache(maxsize=4096)
def _redact_shared(args: str) -> str:
    return _redact(args)


def _redact(args: str) -> str:
    if "://" in args:
        args = _REDACT_URL.sub(r"\1<redacted>@", args)
    # A key needs a stem: an ASCII line without one (most of a process list: kernel threads, daemons
    # without options) skips the scan; any other line is scanned (IGNORECASE also folds "K", "ſ").
    low = args.lower()
    if not args.isascii() or any(stem in low for stem in _KV_STEMS):
        args = _redact_kv(args)
    return redact_args(args)


def _redact_kv(args: str) -> str:
    """``KEY=VALUE`` (a word holding a stem, then "=") and ``-FLAG VALUE`` (such a word after whitespace,
    starting with "-", then one space): VALUE, up to the next space, becomes ``<redacted>``. Linear: each
    word is looked at once, and a value is skipped as a whole."""
    out: list[str] = []
    pos, n = 0, len(args)
    for m in _WORD.finditer(args):
        a, b = m.span()
        if a < pos or b >= n:
            continue
        sep = args[b]
        if sep != "=" and not (sep == " " and args[a] == "-" and (a == 0 or args[a - 1].isspace())):
            continue
        end = args.find(" ", b + 1)
        end = n if end < 0 else end
        if end == b + 1 or not _STEM.search(args, a, b):
            continue
        whole = args[a:end]
        out.append(args[pos:a])
        out.append(whole if whole.endswith("<redacted>") else f"{args[a:b + 1]}<redacted>")
        pos = end
    if not out:
        return args
    out.append(args[pos:])
    return "".join(out)


def sanitize_ps(data: bytes) -> str:
    """The process list as ingested: every line redacted on its own (the host's sed is only a first pass),
    so that nothing one process shows can blank another's line."""
    return "\n".join(_redact_line(line) for line in data.decode("utf-8", "backslashreplace").split("\n"))


def _redact_line(line: str) -> str:
    # The pid, ppid and uid columns differ on every host and hold no secret: the rest of a line (user,
    # comm, args), which the hosts of a fleet share, is what the general pass remembers by content.
    head = line[:_NUMBERS]
    if len(line) > _NUMBERS and head.isascii() and head.replace(" ", "").isdigit():
        return head + redact(line[_NUMBERS:])
    return redact(line)


_NUMBERS = 33  # pid:10 ppid:10 uid:10, each followed by a space


NEEDS = Needs(files=("/etc/passwd",), commands={PS_COMMAND: _SNIPPET.strip("\n")},
              command_sanitize={PS_COMMAND: sanitize_ps})


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    user: str
    comm: str
    args: str
    uid: int = -1

    @property
    def kernel_thread(self) -> bool:
        return self.pid == 2 or self.ppid == 2

    @property
    def exe_name(self) -> str:
        """Base name of argv[0] ("/usr/sbin/sshd -D" -> "sshd"); the comm when unknown."""
        first = self.args.split(" ", 1)[0] if self.args else ""
        if not first or first.startswith("["):
            return self.comm
        return first.rstrip(":").rsplit("/", 1)[-1] or self.comm

    def describe(self) -> str:
        return f"{self.comm} (pid {self.pid}, user {self.user}): {self.args[:200]}"


def parse_ps(text: str) -> list[Process]:
    """Lines of ``ps -eo pid:10=,ppid:10=,uid:10=,user:32=,comm:16=,args=``."""
    out: list[Process] = []
    for line in text.splitlines():
        if len(line) < 83:
            line = line.ljust(83)
        head = line[:33].split()
        if len(head) != 3 or not all(h.isdigit() for h in head):
            continue
        user = line[33:65].strip()
        comm = line[66:82].rstrip()
        args = line[83:].rstrip()
        if not user or not comm:
            continue
        out.append(Process(int(head[0]), int(head[1]), user, comm, redact(args), int(head[2])))
    return out


def parse_proc_status(text: str, passwd: dict[int, str]) -> list[Process]:
    """``grep -H -e ^Name: -e ^PPid: -e ^Uid: /proc/*/status`` output."""
    rows: dict[int, dict[str, str]] = {}
    for line in text.splitlines():
        m = re.match(r"/proc/(\d+)/status:(Name|PPid|Uid):\s*(.*)$", line)
        if m:
            rows.setdefault(int(m.group(1)), {})[m.group(2)] = m.group(3)
    out: list[Process] = []
    for pid, row in sorted(rows.items()):
        name = row.get("Name", "").strip()
        ppid_s = row.get("PPid", "").strip()
        uids = row.get("Uid", "").split()
        if not name or not ppid_s.isdigit():
            continue
        uid = int(uids[1]) if len(uids) > 1 and uids[1].isdigit() else -1
        out.append(Process(pid, int(ppid_s), passwd.get(uid, str(uid)), name, "", uid))
    return out


def _split_self(body: str) -> tuple[str, int | None]:
    """The gatherer's own PID, which the snippet prints last (``$$`` is the script's shell)."""
    lines = body.rstrip("\n").split("\n")
    if lines and lines[-1].startswith("#self "):
        pid = lines[-1][len("#self "):].strip()
        return "\n".join(lines[:-1]) + "\n", int(pid) if pid.isdigit() else None
    return body, None


def without_gatherer(procs: list[Process], self_pid: int) -> list[Process]:
    """The process list as it is without the audit: the gather script, its children, and the
    ``sudo`` it may run under are ours, not the host's."""
    by_pid = {p.pid: p for p in procs}
    ours = {self_pid}
    gatherer = by_pid.get(self_pid)
    sudo = by_pid.get(gatherer.ppid) if gatherer is not None else None
    if sudo is not None and sudo.comm == "sudo":
        ours.add(sudo.pid)
        # sudo mails root about some events (e.g. "unable to resolve host") through a double fork, so for
        # a moment an orphaned copy of our own sudo hangs off PID 1, where ancestry cannot tie it to us.
        ours.update(p.pid for p in procs
                    if p.comm == "sudo" and p.args == sudo.args and p.ppid in (0, 1) and p.pid > sudo.pid)
    changed = True
    while changed:
        changed = False
        for p in procs:
            if p.pid not in ours and p.ppid in ours:
                ours.add(p.pid)
                changed = True
    return [p for p in procs if p.pid not in ours]


def processes(facts: Facts) -> list[Process]:
    b = facts.bundle
    if not b.live:
        raise EvidenceError("no running processes in an offline image")
    rec = b.command(PS_COMMAND)
    if rec is None:
        raise EvidenceError("the process list was not gathered")
    head, _, body = rec.stdout.partition("\n")
    body, self_pid = _split_self(body)
    if head == "#ps":
        result = parse_ps(body)
    elif head == "#proc":
        try:
            passwd = uid_names(b.text("/etc/passwd") or "")
        except EvidenceError:
            passwd = {}
        result = parse_proc_status(body, passwd)
    else:
        result = []
    if not result:
        raise EvidenceError("cannot list processes: neither ps nor /proc/*/status gave any")
    return without_gatherer(result, self_pid) if self_pid is not None else result


def _matches(proc: Process, name: str) -> bool:
    return proc.comm == name or proc.comm == name[:15] or proc.exe_name == name


def running(facts: Facts, *names: str) -> bool:
    """A (non-kernel) process whose command name or argv[0] base name is one of ``names`` runs."""
    return any(_matches(p, n) for p in facts.get(processes) if not p.kernel_thread for n in names)


def find(facts: Facts, *names: str) -> list[Process]:
    """The processes matching ``names`` like ``running`` does."""
    return [p for p in facts.get(processes) if not p.kernel_thread and any(_matches(p, n) for n in names)]
