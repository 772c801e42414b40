from __future__ import annotations

import json
from pathlib import Path

from nectar_audit.evidence import Bundle, EvidenceError, Needs
from nectar_audit.targets.base import TargetError


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
        except (ValueError, UnicodeDecodeError) as exc:
            raise TargetError(f"{self.path} is not JSON: {exc}") from exc
        try:
            return Bundle.from_json(data)
        except EvidenceError as exc:
            raise TargetError(f"{self.path}: {exc}") from exc
