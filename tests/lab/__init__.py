"""nectar-audit test lab: real Debian roots, network namespaces and chroot hosts for lab tests.

Import as ``from tests.lab import ...`` (tests/conftest.py puts the repository root on sys.path).
Needs root. See tests/lab/README.md for the API, costs and traps.
"""

from __future__ import annotations

from ._proc import DEFAULT_TIMEOUT, LabCommandError, LabError, run, stop_process, wait_until, which
from .chroot import HOST_ENV, ChrootHost, chroot_host
from .cleanup import sweep
from .keys import make_ssh_keypair
from .netns import LAB_NET, NetnsHost, netns_host, wait_for_tcp
from .require import (
    in_ci,
    require,
    require_binary,
    require_netns,
    require_overlay,
    require_root,
)
from .rootfs import (
    ROOT_PACKAGES,
    build_root,
    debian_root,
    installed_kernels,
    overlay_root,
    root_path,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "HOST_ENV",
    "LAB_NET",
    "ROOT_PACKAGES",
    "ChrootHost",
    "LabCommandError",
    "LabError",
    "NetnsHost",
    "build_root",
    "chroot_host",
    "debian_root",
    "in_ci",
    "installed_kernels",
    "make_ssh_keypair",
    "netns_host",
    "overlay_root",
    "require",
    "require_binary",
    "require_netns",
    "require_overlay",
    "require_root",
    "root_path",
    "run",
    "stop_process",
    "sweep",
    "wait_for_tcp",
    "wait_until",
    "which",
]
