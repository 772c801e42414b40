"""Sanitizers: reduce a secret-bearing file to what the checks need before evidence is kept anywhere.

A sanitizer takes the raw bytes of a file and returns text with the secrets replaced by their shape
(a hash's algorithm, a key's fingerprint). The fact module that knows a file's format owns its sanitizer
and names it in its ``Needs``; this module only applies one, failing closed.
"""

from __future__ import annotations

import functools
import re
from typing import Callable

Sanitizer = Callable[[bytes], str]


def sanitize(fn: Sanitizer, data: bytes) -> str:
    """``fn(data)``; a sanitizer that fails must not let the raw bytes through."""
    try:
        return fn(data)
    except Exception as exc:
        return f"<withheld: sanitizer {getattr(fn, '__name__', fn)!r} failed: {type(exc).__name__}>"


def fields_only(fn: Sanitizer) -> Sanitizer:
    """Mark a sanitizer whose output keeps only named fields of a known format (package versions, login
    times, key fingerprints): nothing free-form is left there for the general redaction pass."""
    fn.fields_only = True  # type: ignore[attr-defined]
    return fn


def rewrite_lines(text: str, keywords: re.Pattern[str], rewrite: Callable[[str], str | None]) -> str:
    """``text`` with each line holding a match of ``keywords`` replaced by ``rewrite(line)`` (None: kept).

    ``keywords`` is a case-insensitive pattern written in lower case, with no newline in a match (e.g. an
    alternation of key names). The lines that hold one are found by one scan of the whole text, and the
    lines between are copied whole: a sanitizer looking at every line of a 2,000-line commented config
    cost a local scan 25 ms. Where the text is ASCII the scan is over a lowered copy (the same matches;
    a case-insensitive scan is six times slower), elsewhere case-insensitive, so "K" (Kelvin) and "ſ"
    still fold as they do in ``keywords``."""
    if text.isascii():
        haystack, finder = text.lower(), _case_sensitive(keywords)
    else:
        haystack, finder = text, keywords
    out: list[str] = []
    pos = 0
    m = finder.search(haystack)
    while m is not None:
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.start())
        end = len(text) if end < 0 else end
        new = rewrite(text[start:end])
        if new is not None:
            out.append(text[pos:start])
            out.append(new)
            pos = end
        m = finder.search(haystack, end)
    out.append(text[pos:])
    return "".join(out)


@functools.lru_cache(maxsize=64)
def _case_sensitive(keywords: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(keywords.pattern, keywords.flags & ~re.IGNORECASE)
