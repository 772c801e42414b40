"""python -m tests.lab {build-root,build-openstack,build-wheels,path,sweep,shell}: lab maintenance."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._proc import LabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build-root", help="build the cached Debian roots if missing (needs root, network)")
    sub.add_parser("build-openstack", help="build the cached virtualenv of Keystone + Neutron (needs PyPI)")
    sub.add_parser("build-wheels", help="download the wheels the README's install command needs in a lab host "
                                        "(needs PyPI)")
    sub.add_parser("path", help="print the cached root's path (exit 1 if not built)")
    sub.add_parser("sweep", help="remove namespaces and mounts left by dead lab processes")
    shell = sub.add_parser("shell", help="boot a throwaway chroot host and open a shell in it")
    shell.add_argument("--hostname", default="labshell")
    args = parser.parse_args(argv)

    from . import chroot, cleanup, rootfs

    try:
        if args.cmd == "build-root":
            for packages in rootfs.ALL_ROOTS:
                t0 = time.monotonic()
                root = rootfs.build_root(packages)
                print(f"lab root: {root} ({time.monotonic() - t0:.1f}s)")
        elif args.cmd == "build-openstack":
            from . import openstack_lab as openstack

            t0 = time.monotonic()
            venv = openstack.build_venv(log=rootfs._stderr_log)
            print(f"openstack lab venv: {venv} ({time.monotonic() - t0:.1f}s)")
        elif args.cmd == "build-wheels":
            from . import wheelhouse

            t0 = time.monotonic()
            wheels = wheelhouse.build_wheelhouse(log=rootfs._stderr_log)
            print(f"lab wheelhouse: {wheels} ({time.monotonic() - t0:.1f}s)")
        elif args.cmd == "path":
            path = rootfs.root_path()
            print(path)
            return 0 if path.is_dir() else 1
        elif args.cmd == "sweep":
            for what in cleanup.sweep():
                print(f"removed {what}")
        elif args.cmd == "shell":
            with tempfile.TemporaryDirectory(prefix="lab-shell-") as tmp, \
                    rootfs.overlay_root(Path(tmp)) as root, \
                    chroot.chroot_host(root, hostname=args.hostname) as host:
                print(f"{host!r}; exit the shell to tear it down", file=sys.stderr)
                return subprocess.call(host._nsenter(["bash", "-l"]), env=chroot.HOST_ENV)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
