from __future__ import annotations

import json
from pathlib import Path

from nectar_audit.evidence import Bundle, EvidenceError, Needs
from nectar_audit.evidence.bundle import BUNDLE_FORMAT
from nectar_audit.shape import List, Map, Obj, Opt, ShapeError, check
from nectar_audit.targets.base import TargetError

# Every field ``Bundle.from_json`` reads, with its type: a bundle is a file anyone may hand us (a ticket
# attachment), so a wrong type is an error naming the field, never a crash inside a check.
BUNDLE_SHAPE = Obj({
    "format": int,
    "target": str,
    "kind": str,
    "live": bool,
    "gathered_at": str,
    "uid": Opt(int),
    "files": Map(Obj({"content": Opt(str), "error": Opt(str), "truncated": bool})),
    "stats": Map(List(int, length=5)),
    "commands": Map(Obj({"stdout": str, "stderr": str, "rc": int}, required=("stdout",))),
    "searches": Map(List(str)),
    "errors": List(str),
    "cloud": Opt(dict),
}, required=("format", "target", "kind", "live"))


class SavedTarget:
    """A bundle written by ``scan --save-evidence``, judged again offline."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.name = f"evidence:{path}"

    def gather(self, needs: Needs) -> Bundle:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TargetError(f"cannot read evidence file {self.path}: {exc.strerror or exc}") from exc
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise TargetError(f"{self.path} is not JSON: {exc}") from exc
        try:
            check(data, Obj({"format": int}, required=("format",)))
            if data["format"] != BUNDLE_FORMAT:
                raise ShapeError(f"format {data['format']} is not one this version reads ({BUNDLE_FORMAT})")
            check(data, BUNDLE_SHAPE)
        except ShapeError as exc:
            raise TargetError(f"{self.path} is not a valid evidence bundle: {exc}") from exc
        try:
            return Bundle.from_json(data)
        except EvidenceError as exc:
            raise TargetError(f"{self.path}: {exc}") from exc
