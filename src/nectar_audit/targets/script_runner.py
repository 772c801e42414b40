"""Live targets: run the gather script through some transport and parse its framed stream."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from nectar_audit.evidence import Bundle, Needs, build_script, new_boundary, parse_stream
from nectar_audit.targets.base import TargetError


class ScriptTarget:
    """Runs the gatherer as ``argv`` with the script on stdin (``sh -s``, ``nsenter … sh -s``)."""

    kind = "exec"

    def __init__(self, name: str, argv: Sequence[str], timeout: float = 120.0) -> None:
        self.name = name
        self.argv = list(argv)
        self.timeout = timeout

    def gather(self, needs: Needs) -> Bundle:
        boundary = new_boundary()
        script = build_script(needs, boundary).encode()
        try:
            proc = subprocess.run(self.argv, input=script, capture_output=True, timeout=self.timeout, check=False)
        except FileNotFoundError as exc:
            raise TargetError(f"cannot run the gatherer: {exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise TargetError(f"the gatherer did not finish within {self.timeout:.0f} s") from exc
        bundle = Bundle.for_needs(self.name, self.kind, True, needs)
        parse_stream(proc.stdout, boundary, bundle)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-500:]
            bundle.errors.append(f"gatherer exited with status {proc.returncode}: {err}")
        return bundle
