"""Reduce secret-bearing files to what the checks need, before evidence is kept anywhere.

A sanitizer takes the raw bytes of a file and returns text with the secrets replaced by their shape
(a hash's algorithm, a key's fingerprint). Saved bundles and reports therefore never hold password
hashes or key material.
"""

from __future__ import annotations

from typing import Callable

Sanitizer = Callable[[bytes], str]

_REGISTRY: dict[str, Sanitizer] = {}


def sanitizer(name: str) -> Callable[[Sanitizer], Sanitizer]:
    def register(fn: Sanitizer) -> Sanitizer:
        _REGISTRY[name] = fn
        return fn

    return register


def sanitize(name: str, data: bytes) -> str:
    try:
        fn = _REGISTRY[name]
    except KeyError:
        # Failing closed: an unknown sanitizer must never let the raw bytes through.
        return f"<withheld: unknown sanitizer {name!r}>"
    try:
        return fn(data)
    except Exception as exc:  # a sanitizer bug must not leak the input
        return f"<withheld: sanitizer {name!r} failed: {type(exc).__name__}>"


_CRYPT_IDS = {
    "1": "md5crypt",
    "2a": "bcrypt",
    "2b": "bcrypt",
    "2y": "bcrypt",
    "5": "sha256crypt",
    "6": "sha512crypt",
    "y": "yescrypt",
    "gy": "gost-yescrypt",
    "7": "scrypt",
}


def describe_password_field(field: str) -> str:
    """``$6$salt$hash`` -> ``{hash:sha512crypt}``; lock prefixes and markers kept as they are."""
    lock = ""
    while field.startswith("!"):
        lock += "!"
        field = field[1:]
    if field in ("", "*", "!", "x") or field.startswith("*"):
        return lock + field
    if field.startswith("$"):
        algo = _CRYPT_IDS.get(field.split("$")[1], "unknown")
    elif len(field) == 13:
        algo = "descrypt"
    else:
        algo = "unknown"
    return f"{lock}{{hash:{algo}}}"


@sanitizer("shadow")
def _shadow(data: bytes) -> str:
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 2:
            parts[1] = describe_password_field(parts[1])
        out.append(":".join(parts))
    return "\n".join(out) + ("\n" if out else "")
