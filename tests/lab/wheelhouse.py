"""Wheels of nectar-audit's dependencies for the lab root's Python, so that the README's install command
can run inside a lab host, whose network reaches no package index.

Downloaded once from PyPI by `python -m tests.lab build-wheels` (the test command does it, like the lab
root), for the lab root's Python version whatever this machine's is; a lab host's pip is pointed at it
through /etc/pip.conf (no-index, find-links).
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
from pathlib import Path
from typing import Any

from . import state
from ._proc import run
from .project import pyproject
from .rootfs import CACHE_BASE

RECIPE_VERSION = 1
# The lab root is Debian bookworm: CPython 3.11, glibc 2.36.
ROOT_PYTHON = "3.11"
_GLIBC_TAGS = ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux_2_34")


def requirements() -> list[str]:
    """What `pip install .` needs from an index: the build backend and the runtime dependencies."""
    data = pyproject()
    return [*data["build-system"]["requires"], *data["project"]["dependencies"]]


def wheelhouse_path() -> Path:
    spec = {"requirements": sorted(requirements()), "python": ROOT_PYTHON, "machine": platform.machine(),
            "recipe": RECIPE_VERSION}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return CACHE_BASE / f"wheels-{key}"


def root_python_version(root: Path) -> str:
    """ "3.11" for a root whose /usr/bin/python3 is python3.11 (Debian's link), "" when there is none."""
    link = root / "usr/bin/python3"
    if not link.is_symlink():
        return ""
    m = re.fullmatch(r"python(\d+\.\d+)", Path(str(link.readlink())).name)
    return m.group(1) if m else ""


def build_wheelhouse(log: Any = None) -> Path:
    """Download the wheels if missing (about 10 s, 15 MB); return the directory."""
    dest = wheelhouse_path()

    def build() -> None:
        if log:
            log(f"downloading wheels for Python {ROOT_PYTHON} into {dest}")
        arch = platform.machine()
        platforms = [arg for tag in _GLIBC_TAGS for arg in ("--platform", f"{tag}_{arch}")]
        run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
             "--dest", str(dest), "--only-binary=:all:", "--implementation", "cp",
             "--python-version", ROOT_PYTHON, *platforms, *requirements()], timeout=900)

    return state.build_once(dest, 900, "lab wheelhouse download", build)
