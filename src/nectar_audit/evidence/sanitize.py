"""Sanitizers: reduce a secret-bearing file to what the checks need before evidence is kept anywhere.

A sanitizer takes the raw bytes of a file and returns text with the secrets replaced by their shape
(a hash's algorithm, a key's fingerprint). The fact module that knows a file's format owns its sanitizer
and names it in its ``Needs``; this module only applies one, failing closed.
"""

from __future__ import annotations

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
