#!/usr/bin/env python3
"""Write src/nectar_audit/evidence/full_scan.sh: the gather script's body for every implemented check.

A local full scan starts that script while it imports the checks (and uses the run only if the script
the checks then ask for is the same text). Run after changing any check's or fact's Needs; the test
tests/evidence/test_prebuilt_gather.py fails until it is current.
"""

from __future__ import annotations

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))

from nectar_audit.catalog import implemented, needs_for  # noqa: E402
from nectar_audit.evidence.script import PREBUILT, prebuilt_text  # noqa: E402


def main() -> None:
    target = SRC / "nectar_audit" / "evidence" / PREBUILT
    target.write_text(prebuilt_text(needs_for(implemented())), encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
