"""Adversarial host text for the linear-time test and benchmark: what a hostile host or user can write
into a file or a command's output, built to a given size."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Callable

from hypothesis import strategies as st

import nectar_audit.facts as facts_pkg
from nectar_audit.catalog import all_needs

ADVERSARIAL_INPUTS: dict[str, Callable[[int], str]] = {
    "spaces": lambda n: " " * n,
    "keyword then spaces": lambda n: "requirepass" + " " * n + "\n",
    "secret then spaces": lambda n: "secret" + " " * n,
    "password then =": lambda n: "password" + "=" * n,
    "keyword words": lambda n: "password " * (n // 9),
    "unclosed quote": lambda n: 'secret "' + "a" * n,
    "open braces": lambda n: "{" * n,
    "quotes": lambda n: '"' * n,
    "assignments": lambda n: "a=b\n" * (n // 4),
    "comment run": lambda n: "#" * n,
    "colons": lambda n: ":" * n,
    "newlines": lambda n: "\n" * n,
    "match blocks": lambda n: "Match User x\n  PasswordAuthentication yes\n" * (n // 45),
    "tabs and spaces": lambda n: "\t \t" * (n // 3) + "x",
    "backslashes": lambda n: "\\" * n,
    "brackets": lambda n: "[" * n,
    "key markers": lambda n: "-----BEGIN OPENSSH PRIVATE KEY-----\n" * (n // 36),
    "url credentials": lambda n: "a://" * (n // 4),
    "header name of stems": lambda n: "proxy_set_header " + "token" * (n // 5),
    "long word then key": lambda n: "x" * n + " key=1",
    "long flag then value": lambda n: "--" + "x" * n + "pass value",
}


def text_functions() -> list[tuple[str, Callable[[str], object]]]:
    """(dotted name, fn(text)) for every sanitizer the scan uses (of files, search hits and command output)
    and every ``parse_*`` of the fact packs that takes one text argument."""
    out: dict[str, Callable[[str], object]] = {}
    needs = all_needs()
    for fn in {*needs.sanitize.values(), *(s.sanitizer for s in needs.searches if s.sanitizer),
               *needs.command_sanitize.values()}:
        out[f"{fn.__module__}.{fn.__name__}"] = lambda text, fn=fn: fn(text.encode())
    for info in pkgutil.walk_packages(facts_pkg.__path__, facts_pkg.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if not (name.startswith("parse_") and inspect.isfunction(obj) and obj.__module__ == module.__name__):
                continue
            params = list(inspect.signature(obj).parameters.values())
            # Those that read one text (a file's, a command's output); the others take gathered files.
            if params and params[0].annotation in ("str", str) and all(p.default is not p.empty for p in params[1:]):
                out[f"{module.__name__}.{name}"] = obj
    return sorted(out.items())


# For property-based fuzzing: text that looks like configuration (keywords, separators, quotes, braces,
# newlines, key markers, escapes, odd bytes) mixed with anything.
_PIECES = st.sampled_from(["password", "secret", "token", "Match", "Include", "=", ":", " ", "\t", "\n", '"', "'",
                           "{", "}", ";", "#", "/", "\\", "-----BEGIN OPENSSH PRIVATE KEY-----", "$6$", "://",
                           "@", "[", "]", "\x1b", "\u202e", "\x00"])
TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=20)), max_size=80).map("".join)
