"""The evidence layer's helpers for sanitizers: which sanitizer a path gets, and rewrite_lines."""

from __future__ import annotations

import fnmatch
import random
import re

from nectar_audit.evidence import rewrite_lines
from nectar_audit.evidence.bundle import _PathSanitizers
from nectar_audit.evidence.sanitize import Sanitizer

_KEYS = re.compile(r"pass(?:word)?|token", re.IGNORECASE)


def _blank(line: str) -> str | None:
    m = _KEYS.search(line)
    return None if m is None or "=" not in line[m.end():] else line[:line.index("=", m.end()) + 1] + "X"


def _by_lines(text: str) -> str:
    """What rewrite_lines must equal: every line looked at."""
    out = []
    for line in text.split("\n"):
        new = _blank(line) if _KEYS.search(line) else None
        out.append(line if new is None else new)
    return "\n".join(out)


def test_rewrite_lines_changes_only_lines_with_a_keyword() -> None:
    text = "# password of the admin\nPassword = hunter2\nplain = 1\n\ntoken=abc\r\nlast TOKEN= y"
    assert rewrite_lines(text, _KEYS, _blank) == (
        "# password of the admin\nPassword =X\nplain = 1\n\ntoken=X\nlast TOKEN=X")
    assert rewrite_lines("", _KEYS, _blank) == ""
    assert rewrite_lines("nothing here\n", _KEYS, _blank) == "nothing here\n"


def test_rewrite_lines_folds_case_as_the_pattern_does_beyond_ascii() -> None:
    # "ſ" (long s) folds to "s" and "K" (Kelvin) to "k" under re.IGNORECASE: a non-ASCII text is scanned
    # case-insensitively, so such a line is still found (an ASCII-lowered copy would miss it).
    assert _KEYS.search("paſs") is not None
    assert rewrite_lines("é\npaſs=1\n", _KEYS, _blank) == "é\npaſs=X\n"


def test_rewrite_lines_is_the_line_by_line_result() -> None:
    rng = random.Random(7)
    words = ["pass", "PASS", "password", "token", "ToKeN", "paſs", "=", " ", "\n", "\r", "#", "a", "é", "x="]
    for _ in range(3000):
        text = "".join(rng.choice(words) for _ in range(rng.randint(0, 25)))
        assert rewrite_lines(text, _KEYS, _blank) == _by_lines(text), repr(text)


def _first_match(sanitizers: dict[str, Sanitizer], path: str) -> Sanitizer | None:
    return next((fn for pattern, fn in sanitizers.items() if fnmatch.fnmatchcase(path, pattern)), None)


def _fn(tag: str) -> Sanitizer:
    def sanitizer(data: bytes) -> str:
        return tag
    return sanitizer


def test_path_sanitizers_take_the_first_matching_pattern() -> None:
    table = {"/etc/ssh/ssh_host_*_key": _fn("host"), "/etc/ssh/*_key": _fn("any"), "*.pub": _fn("pub"),
             "/etc/passwd": _fn("passwd"), "/etc/[ab]*": _fn("class"), "/etc/x?": _fn("one")}
    lookup = _PathSanitizers(table).lookup
    for path in ("/etc/ssh/ssh_host_rsa_key", "/etc/ssh/other_key", "/etc/ssh/ssh_host_rsa_key.pub", "/x.pub",
                 "/etc/passwd", "/etc/passwd-", "/etc/alpha", "/etc/xy", "/etc/xyz", "/srv/nothing", ""):
        assert lookup(path) is _first_match(table, path), path
        assert lookup(path) is _first_match(table, path), path  # remembered


def test_path_sanitizers_are_fnmatch_on_random_patterns() -> None:
    rng = random.Random(11)
    pieces = ["a", "b", "/", "*", "?", "[ab]", "[", "]", ".", "x"]
    for _ in range(2000):
        table = {"".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))): _fn(str(i)) for i in range(4)}
        lookup = _PathSanitizers(table).lookup
        for _ in range(10):
            path = "".join(rng.choice(["a", "b", "/", ".", "x", "[", "]"]) for _ in range(rng.randint(0, 6)))
            assert lookup(path) is _first_match(table, path), (list(table), path)
