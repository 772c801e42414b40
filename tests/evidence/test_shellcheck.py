"""The gatherer is a real POSIX sh program: ShellCheck (Debian's shellcheck) finds nothing in its helpers and
no warning in the whole script a full scan sends, fact modules' commands included."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nectar_audit.catalog import all_needs
from nectar_audit.evidence import build_script, new_boundary
from nectar_audit.evidence import script as gather_script
from tests import lab


def _shellcheck(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = lab.require_binary("shellcheck")
    return subprocess.run([binary, "-s", "sh", *args, str(path)], capture_output=True, text=True, timeout=120,
                          check=False)


def test_gather_helpers_are_shellcheck_clean() -> None:
    out = _shellcheck(Path(gather_script.__file__).parent / "gather.sh")
    assert out.returncode == 0, out.stdout


def test_whole_gather_script_has_no_shellcheck_warning(tmp_path: Path) -> None:
    path = tmp_path / "gather.sh"
    path.write_text(build_script(all_needs(), new_boundary()))
    out = _shellcheck(path, "-S", "warning")
    assert out.returncode == 0, out.stdout
