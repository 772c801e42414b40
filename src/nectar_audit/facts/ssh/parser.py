"""The sshd_config parser (Include, Match, quoting as sshd reads them) and the parser of ``sshd -T`` output."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nectar_audit.facts.ssh.files import MAIN_CONFIG, MAX_INCLUDE_DEPTH, SSHDIR
from nectar_audit.facts.ssh.keywords import ALIASES, GLOBAL_ONLY, MATCH_CRITERIA, VALID_VALUES, canonical
from nectar_audit.facts.ssh.match import Criterion, addr_match_list
from nectar_audit.facts.ssh.model import Directive, MatchBlock, Problem, SshdConfig


# --------------------------------------------------------------------------------------------------
# The config parser
# --------------------------------------------------------------------------------------------------
class QuoteError(ValueError):
    pass


def argv_split(text: str) -> list[str]:
    """OpenSSH's argv_split(s, terminate_on_comment=1): quotes, backslash escapes, ``#`` comments."""
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        quote = ""
        arg: list[str] = []
        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n and (text[i + 1] in "'\"\\" or (not quote and text[i + 1] == " ")):
                i += 1
                arg.append(text[i])
            elif not quote and c in " \t":
                break
            elif not quote and c in "\"'":
                quote = c
            elif quote and c == quote:
                quote = ""
            else:
                arg.append(c)
            i += 1
        if quote:
            raise QuoteError("invalid quotes")
        args.append("".join(arg))
    return args


def split_line(line: str) -> tuple[str, str]:
    """("keyword", "rest") of one line (``Keyword value``, ``Keyword=value``, ``Keyword = value``)."""
    line = line.lstrip(" \t\r").rstrip(" \t\r\n\f")
    m = re.match(r'[^ \t"=]*', line)
    keyword = m.group(0) if m else ""
    rest = line[len(keyword) :]
    rest = re.sub(r"^[ \t]*=?[ \t]*", "", rest, count=1)
    return keyword, rest


def _glob_segment_match(name: str, pattern: str) -> bool:
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def glob_paths(pattern: str, candidates: Iterable[str]) -> list[str]:
    """glob(3) over known paths: wildcards never cross ``/`` nor match a leading dot; sorted."""
    if not any(ch in pattern for ch in "*?["):
        return [pattern] if pattern in set(candidates) else []
    pparts = pattern.split("/")
    out = []
    for path in set(candidates):
        parts = path.split("/")
        if len(parts) == len(pparts) and all(_glob_segment_match(a, b) for a, b in zip(parts, pparts)):
            out.append(path)
    return sorted(out)


def _parse_match(rest: str) -> tuple[list[Criterion], str | None]:
    try:
        raw = argv_split(rest)
    except QuoteError:
        return [], "invalid quotes"
    # OpenSSH up to 9.3 splits Match arguments at "=" too (strdelim): "Match User=alice".
    words: list[str] = []
    for w in raw:
        head, eq, tail = w.partition("=")
        if eq and head.lower() in MATCH_CRITERIA:
            words += [head, tail] if tail else [head]
        else:
            words.append(w)
    crit: list[Criterion] = []
    i = 0
    while i < len(words):
        attr = words[i].lower()
        if attr in ("all", "invalid-user"):
            if attr == "all" and (crit or len(words) > i + 1):
                return crit, "'all' cannot be combined with other Match attributes"
            crit.append(Criterion(attr))
            i += 1
            continue
        if i + 1 >= len(words) or not words[i + 1]:
            return crit, f"Missing Match criteria for {words[i]}"
        value = words[i + 1]
        if attr in ("address", "localaddress") and addr_match_list(None, value) == -2:
            return crit, f"Invalid Match {words[i]} argument {value!r}"
        if attr == "localport" and not (value.isdigit() and 0 < int(value) < 65536):
            return crit, f"Invalid LocalPort {value!r} on Match line"
        crit.append(Criterion(attr, value))
        i += 2
    if not crit:
        return crit, "One or more attributes required for Match"
    return crit, None


class _Parser:
    def __init__(self, files: Mapping[str, str], unreadable: Mapping[str, str], known: Iterable[str]) -> None:
        self.files = files
        self.unreadable_all = unreadable
        self.candidates = set(files) | set(unreadable) | set(known)
        self.cfg = SshdConfig()
        self.order = 0

    def problem(self, where: str, message: str, fatal: bool = True) -> None:
        self.cfg.problems.append(Problem(where, message, fatal))

    def parse_file(self, path: str, outer: int | None, depth: int) -> None:
        text = self.files.get(path)
        if text is None:
            return
        self.cfg.files_read.append(path)
        current = outer
        for lineno, raw in enumerate(text.split("\n"), 1):
            keyword, rest = split_line(raw.split("\0", 1)[0])
            if not keyword or keyword.startswith("#"):
                continue
            where = f"{path}:{lineno}"
            kw = canonical(keyword)
            if not rest:
                self.problem(where, f'no argument after keyword "{keyword}"')
                continue
            if kw == "match":
                crit, err = _parse_match(rest)
                if err:
                    self.problem(where, f"Bad Match condition: {err}")
                block = MatchBlock(
                    len(self.cfg.match_blocks),
                    path,
                    lineno,
                    f"{keyword} {rest}".strip(),
                    tuple(crit) if not err else (Criterion("never"),),
                    parent=outer,
                )
                self.cfg.match_blocks.append(block)
                current = block.index
                continue
            try:
                args = tuple(argv_split(rest))
            except QuoteError:
                self.problem(where, "invalid quotes")
                continue
            if not args:
                self.problem(where, f'no argument after keyword "{keyword}"')
                continue
            allowed = VALID_VALUES.get(kw)
            if allowed is not None and args[0].lower() not in allowed:
                self.problem(where, f'unsupported option "{args[0]}" for {keyword}')
                continue
            d = Directive(kw, keyword, args, path, lineno, self.order, current)
            self.order += 1
            if current is not None and kw in GLOBAL_ONLY and not self._all_chain(current):
                self.problem(where, f"Directive '{keyword}' is not allowed within a Match block")
            self.cfg.directives.append(d)
            if current is not None:
                self.cfg.match_blocks[current].directives.append(d)
            if kw == "include":
                self.include(d, current, depth)

    def _all_chain(self, idx: int | None) -> bool:
        while idx is not None:
            block = self.cfg.match_blocks[idx]
            if [c.kind for c in block.criteria] != ["all"]:
                return False
            idx = block.parent
        return True

    def include(self, d: Directive, current: int | None, depth: int) -> None:
        found: list[str] = []
        for arg in d.args:
            if arg.startswith("~"):
                continue  # sshd does not expand ~ (glob without GLOB_TILDE): matches nothing
            pattern = arg if arg.startswith("/") else f"{SSHDIR}/{arg}"
            for path in glob_paths(pattern, self.candidates):
                found.append(path)
                if depth + 1 > MAX_INCLUDE_DEPTH:
                    self.problem(d.where, "Too many recursive configuration includes")
                    continue
                if path in self.unreadable_all:
                    self.cfg.unreadable[path] = self.unreadable_all[path]
                    continue
                if path not in self.files:
                    if path not in self.cfg.not_captured:
                        self.cfg.not_captured.append(path)
                    continue
                self.parse_file(path, current, depth + 1)
        self.cfg.includes.append((d, tuple(found)))


def parse_sshd_config(
    files: Mapping[str, str],
    *,
    main: str = MAIN_CONFIG,
    unreadable: Mapping[str, str] | None = None,
    known_paths: Iterable[str] = (),
) -> SshdConfig:
    """Parse ``main`` and what it includes. ``files``: path -> text of every captured file;
    ``unreadable``: path -> reason; ``known_paths``: files known to exist but not captured (Include
    globs expand over all three, like glob(3) over the real directory). Never raises."""
    parser = _Parser(files, unreadable or {}, known_paths)
    if main not in files:
        parser.cfg.main_present = False
        if main in (unreadable or {}):
            parser.cfg.unreadable[main] = (unreadable or {})[main]
    parser.parse_file(main, None, 0)
    return parser.cfg


# --------------------------------------------------------------------------------------------------
# sshd -T output
# --------------------------------------------------------------------------------------------------
@dataclass
class RuntimeOutput:
    users: dict[str, dict[str, list[str]]]
    failed: dict[str, int]  # user -> rc
    truncated: bool = False
    skipped: str | None = None


def parse_sshd_T(stdout: str) -> RuntimeOutput:
    """The ``sshd.T`` command output: ``@@user NAME``, sshd -T lines, ``@@rc N`` per user."""
    users: dict[str, dict[str, list[str]]] = {}
    failed: dict[str, int] = {}
    out = RuntimeOutput(users, failed)
    current: str | None = None
    lines: dict[str, list[str]] = {}
    for raw in stdout.splitlines():
        line = raw.rstrip("\r")
        if line.startswith("@@skipped"):
            out.skipped = line[len("@@skipped") :].strip() or "skipped"
            continue
        if line == "@@truncated":
            out.truncated = True
            continue
        if line.startswith("@@user "):
            current = line[len("@@user ") :].strip()
            lines = {}
            continue
        if line.startswith("@@same ") and current is not None:
            # No Match block anywhere: this account's answer is that of the one named.
            lines = {k: list(v) for k, v in users.get(line[len("@@same ") :].strip(), {}).items()}
            continue
        if line.startswith("@@rc ") and current is not None:
            rc_text = line[len("@@rc ") :].strip()
            rc = int(rc_text) if rc_text.lstrip("-").isdigit() else -1
            if rc == 0 and "passwordauthentication" in lines:
                users[current] = lines
            else:
                failed[current] = rc
            current = None
            continue
        if current is None or not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        if not re.fullmatch(r"[a-z0-9]+", key):
            continue
        if key != "challengeresponseauthentication":
            key = ALIASES.get(key, key)
        lines.setdefault(key, []).append(value.strip())
    return out
