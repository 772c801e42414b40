"""Prerequisite checks: skip locally, fail in CI (CI=true), never skip silently in CI."""

from __future__ import annotations

import functools
import os
import subprocess

import pytest

from ._proc import missing_binary_message, which


def in_ci() -> bool:
    """True when running under CI (env CI=true, as .ci/run sets it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(ok: bool, what: str) -> None:
    """If not ok: pytest.fail(what) in CI, pytest.skip(what) elsewhere."""
    if ok:
        return
    if in_ci():
        pytest.fail(f"lab prerequisite missing in CI: {what}", pytrace=False)
    pytest.skip(what)


def require_root() -> None:
    require(os.geteuid() == 0, "lab test needs root (euid 0) for network namespaces, mounts and chroot")


def require_binary(name: str) -> str:
    """Require a binary (searched on PATH and the sbin dirs); return its absolute path."""
    path = which(name)
    require(path is not None, missing_binary_message(name))
    assert path is not None
    return path


@functools.cache
def _netns_problem() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (euid 0)"
    for name in ("ip", "unshare", "nsenter", "setpriv"):
        if which(name) is None:
            return missing_binary_message(name)
    try:
        probe = subprocess.run(
            ["unshare", "--net", "--mount", "--uts", "--pid", "--fork", "true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot probe namespaces with unshare: {exc}"
    if probe.returncode != 0:
        err = probe.stderr.decode(errors="replace").strip()
        return (f"cannot create net/mount/uts/pid namespaces (needs CAP_SYS_ADMIN and CAP_NET_ADMIN; "
                f"`unshare --net --mount --uts --pid --fork true` said: {err})")
    return None


def require_netns() -> None:
    """Require root, iproute2's `ip`, util-linux's unshare/nsenter/setpriv and working namespaces."""
    problem = _netns_problem()
    require(problem is None, problem or "")


@functools.cache
def _overlay_supported() -> bool:
    try:
        with open("/proc/filesystems", encoding="ascii") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


def require_overlay() -> None:
    """Require kernel overlayfs support (overlay_root() otherwise falls back to a slow copy)."""
    require(_overlay_supported(), "kernel has no overlay filesystem (modprobe overlay)")
