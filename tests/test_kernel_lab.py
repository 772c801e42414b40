"""Lab: check 04 on a real Debian 12 root with linux-image-cloud-amd64 installed, live and offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from nectar_audit.model import Status
from tests import lab
from tests.lab_patching import audit_chroot, scan_root

pytestmark = pytest.mark.lab


def _installed(root: Path) -> str:
    kernels = lab.installed_kernels(root)
    lab.require(len(kernels) == 1, f"one kernel installed in the lab root (found {kernels})")
    return kernels[0]


def _older(release: str) -> str:
    # 6.1.0-56-cloud-amd64 -> 6.1.0-1-cloud-amd64: same flavour, an older ABI, no package installed.
    head, abi, flavour = release.split("-", 2)
    assert abi.isdigit() and int(abi) > 1
    return f"{head}-1-{flavour}"


def test_live_older_kernel_running_fails(lab_root: Path, tmp_path: Path) -> None:
    newest = _installed(lab_root)
    running = _older(newest)
    with lab.chroot_host(lab_root, hostname="oldkernel", kernel_release=running, workdir=tmp_path) as host:
        assert host.exec(["uname", "-r"], text=True, check=True).stdout.strip() == running
        result = audit_chroot(host, "Check-Security-04")
    check = result.checks[0]
    assert check.status is Status.FAIL, check.findings
    assert check.summary.startswith(f"reboot to activate kernel {newest} (linux-image-{newest} ")
    assert f"the running kernel {running} since " in check.summary
    assert check.summary.endswith("UTC is older and no longer installed")
    evidence = check.findings[0].evidence[0]
    assert evidence.source == "/proc/sys/kernel/osrelease" and evidence.detail.startswith(
        f"running {running} since "
    )


def test_live_newest_kernel_running_passes(lab_root: Path, tmp_path: Path) -> None:
    newest = _installed(lab_root)
    with lab.chroot_host(lab_root, hostname="newkernel", kernel_release=newest, workdir=tmp_path) as host:
        result = audit_chroot(host, "Check-Security-04")
    check = result.checks[0]
    assert check.status is Status.PASS, check.findings
    assert check.summary == f"the newest installed kernel is running: {newest}"


def test_live_machine_kernel_is_foreign(lab_root: Path, tmp_path: Path) -> None:
    import os

    machine = os.uname().release
    lab.require(not machine.endswith("-cloud-amd64"), "the machine's own kernel is not a Debian cloud kernel")
    with lab.chroot_host(lab_root, hostname="machinekernel", workdir=tmp_path) as host:
        result = audit_chroot(host, "Check-Security-04")
    check = result.checks[0]
    assert check.status in (Status.WARN, Status.FAIL), check.findings
    assert f"the running kernel {machine}" in " ".join(f.message for f in check.findings)


def test_offline_root_boots_newest(lab_root: Path) -> None:
    newest = _installed(lab_root)
    check = scan_root(lab_root, "04")["Check-Security-04"]
    assert check["status"] == "pass", check
    assert check["summary"].startswith(f"offline image: it boots its newest installed kernel {newest}")
