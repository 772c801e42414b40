"""This checkout's pyproject.toml, the one place naming the tool's and the lab's dependencies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def pyproject() -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    data: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data
