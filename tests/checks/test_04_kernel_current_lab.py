"""Lab: check 04 on a real Debian 12 root with linux-image-cloud-amd64 installed, live and offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nectar_audit.model import Status
from tests import lab
from tests.lab.patching import audit_chroot, scan_root

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
    assert evidence.source == "/proc/sys/kernel/osrelease" and evidence.detail.startswith(f"running {running} since ")


# An older ABI of the same flavour, packaged like Debian's own linux-image-<abi>-cloud-amd64: /boot and
# /lib/modules files, the real package's control fields, and its postinst (depmod, linux-update-symlinks,
# then every /etc/kernel/postinst.d hook with the release and image path, as linux-signed-amd64 does).
OLD_VERSION = "6.1.4-1"  # Debian's version of the 6.1.0-1 ABI: lower than any bookworm point release
_POSTINST = """#!/bin/sh -e

version=@RELEASE@
image_path=/boot/vmlinuz-$version

if [ "$1" != configure ]; then
    exit 0
fi

depmod $version

if [ -f /lib/modules/$version/.fresh-install ]; then
    change=install
else
    change=upgrade
fi
linux-update-symlinks $change $version $image_path
rm -f /lib/modules/$version/.fresh-install

if [ -d /etc/kernel/postinst.d ]; then
    DEB_MAINT_PARAMS="$*" run-parts --report --exit-on-error --arg=$version \\
            --arg=$image_path /etc/kernel/postinst.d
fi

exit 0
"""
_CONTROL_FIELDS = (
    "Priority",
    "Section",
    "Maintainer",
    "Architecture",
    "Source",
    "Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Provides",
    "Homepage",
)


def _control(root: Path, newest: str, release: str) -> str:
    """The control file of linux-image-<release>, its fields copied from the root's real kernel package."""
    status = (root / "var/lib/dpkg/status").read_text()
    m = re.search(rf"^Package: linux-image-{re.escape(newest)}\n(?:.+\n)+", status, re.M)
    assert m is not None, f"linux-image-{newest} in the root's dpkg status"
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", m.group(0), re.M))
    lines = [f"Package: linux-image-{release}", f"Version: {OLD_VERSION}"]
    for key in _CONTROL_FIELDS:
        if key in fields:
            value = fields[key]
            if key == "Source":  # "linux-signed-amd64 (6.1.192+2)" -> this build's version
                value = value.split()[0] + f" ({OLD_VERSION.replace('-', '+')})"
            lines.append(f"{key}: {value.replace(newest, release)}")
    lines += [
        f"Conflicts: linux-image-{release}-unsigned",
        f"Replaces: linux-image-{release}-unsigned",
        "Description: Linux 6.1 for x86-64 cloud (lab stub)",
        " An older kernel ABI for the nectar-audit lab: stub image, no modules.",
    ]
    return "\n".join(lines) + "\n"


def _build_kernel_deb(root: Path, newest: str, release: str, workdir: Path) -> Path:
    dpkg_deb = lab.require_binary("dpkg-deb")
    pkg = workdir / f"linux-image-{release}"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(_control(root, newest, release))
    postinst = pkg / "DEBIAN/postinst"
    postinst.write_text(_POSTINST.replace("@RELEASE@", release))
    postinst.chmod(0o755)
    boot = pkg / "boot"
    boot.mkdir()
    (boot / f"vmlinuz-{release}").write_bytes(b"MZ lab stub kernel image, not bootable\n")
    # The real flavour's config: update-initramfs reads it (CONFIG_RD_* decides the compression).
    (boot / f"config-{release}").write_bytes((root / f"boot/config-{newest}").read_bytes())
    (boot / f"System.map-{release}").write_text("ffffffff81000000 T _stext\n")
    modules = pkg / "lib/modules" / release
    modules.mkdir(parents=True)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        (modules / name).write_text("")
    (modules / ".fresh-install").write_text("")
    deb = workdir / f"linux-image-{release}_{OLD_VERSION}_amd64.deb"
    lab.run([dpkg_deb, "--root-owner-group", "--build", str(pkg), str(deb)], timeout=120)
    return deb


def test_live_installed_older_kernel_running_fails_and_reboot_pending(lab_root: Path, tmp_path: Path) -> None:
    newest = _installed(lab_root)
    running = _older(newest)
    newest_version = lab.run(
        ["dpkg-query", f"--admindir={lab_root / 'var/lib/dpkg'}", "-W", "-f", "${Version}", f"linux-image-{newest}"],
        text=True,
        timeout=30,
    ).stdout
    hook = lab_root / "etc/kernel/postinst.d/unattended-upgrades"
    lab.require(hook.exists(), "unattended-upgrades' kernel hook in the lab root (writes /var/run/reboot-required)")
    deb = _build_kernel_deb(lab_root, newest, running, tmp_path)
    with lab.chroot_host(lab_root, hostname="twokernels", kernel_release=running, workdir=tmp_path) as host:
        assert host.exec(["uname", "-r"], text=True, check=True).stdout.strip() == running
        assert host.exec(["test", "-e", "/var/run/reboot-required"]).returncode == 1
        inside = "/root/" + deb.name
        (lab_root / inside.lstrip("/")).write_bytes(deb.read_bytes())
        res = host.exec(["dpkg", "-i", inside], text=True, timeout=300, env={"DEBIAN_FRONTEND": "noninteractive"})
        assert res.returncode == 0, res.stdout + res.stderr
        assert (
            host.exec(
                ["dpkg-query", "-W", "-f", "${Status} ${Version}", f"linux-image-{running}"], text=True, check=True
            ).stdout
            == f"install ok installed {OLD_VERSION}"
        )
        flag = host.exec(["cat", "/var/run/reboot-required.pkgs"], text=True)
        assert flag.returncode == 0 and flag.stdout.split() == [f"linux-image-{running}"], res.stdout + res.stderr
        assert sorted(lab.installed_kernels(lab_root)) == sorted([newest, running])
        result = audit_chroot(host, "Check-Security-04")
    check = result.checks[0]
    found = [(f.status, f.message) for f in check.findings]
    assert check.status is Status.FAIL, found
    # The installed-but-not-running path: the running kernel's package is still installed, only older.
    first = check.findings[0]
    assert first.status is Status.FAIL
    assert re.fullmatch(
        re.escape(
            f"reboot to activate kernel {newest} (linux-image-{newest} {newest_version}): "
            f"the running kernel is {running} ({OLD_VERSION}) since "
        )
        + r"\d{4}-\d\d-\d\d \d\d:\d\d UTC",
        first.message,
    ), first.message
    assert check.summary == f"{first.message} (+1 more)"  # the pending-reboot finding below
    evidence = first.evidence
    assert evidence[0].source == "/proc/sys/kernel/osrelease"
    assert evidence[0].detail.startswith(f"running {running} since ") and evidence[0].detail.endswith(" UTC")
    assert {e.detail for e in evidence[1:]} >= {
        f"linux-image-{newest} {newest_version} ({newest})",
        f"linux-image-{running} {OLD_VERSION} ({running})",
    }, evidence
    pending = [f for f in check.findings if f.message.startswith("a reboot is pending")]
    assert len(pending) == 1, found
    assert pending[0].status is Status.FAIL
    assert pending[0].message.startswith(
        f"a reboot is pending (for linux-image-{running}): updates are installed but not in use until the "
        "host restarts since "
    ), pending[0].message
    assert pending[0].evidence[0].detail == f"linux-image-{running}"


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
