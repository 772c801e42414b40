"""Check-Security-04 (latest kernel running) and the kernel/package facts behind it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.facts.updates.kernel import deb_kernels, kernel_flavour, kernel_state, needs_restarting, rpm_kernels
from nectar_audit.facts.updates.packages import (
    PackageDb,
    packages,
    parse_dpkg_status,
    parse_rpm_qa,
    sanitize_dpkg_status,
)
from nectar_audit.model import Status
from tests.patching_helpers import NOW_TS, Host, messages, sample

SEC_LIST = (
    "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"
)
SEC_REL = "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_InRelease"


def deb_live(kernel: str, uptime: float = 3 * 86400) -> Host:
    return Host("debian12", live=True, kernel=kernel, uptime=uptime).dpkg()


# -- parsers ---------------------------------------------------------------------------------------


def test_dpkg_status_sample() -> None:
    pkgs = parse_dpkg_status(sample("dpkg/debian12-status"))
    db = PackageDb("dpkg", "t", tuple(pkgs))
    assert db.get("libssl3")[0].version == "3.0.22-1~deb12u2"
    assert db.get("libssl3")[0].source == "openssl"
    assert not db.is_installed("linux-image-6.1.0-10-cloud-amd64")  # config-files only
    assert [k.release for k in deb_kernels(db)] == ["6.1.0-18-cloud-amd64", "6.1.0-56-cloud-amd64"]


def test_rpm_qa_sample() -> None:
    pkgs = parse_rpm_qa(sample("rpm/rocky9-rpm-qa.txt"))
    db = PackageDb("rpm", "t", tuple(pkgs))
    assert db.get("openssl-libs")[0].version == "1:3.0.7-24.el9"
    assert db.get("gpg-pubkey")[0].arch == ""
    kernels = sorted(k.release for k in rpm_kernels(db))
    assert kernels == [
        "5.14.0-362.13.1.el9_3.x86_64",
        "5.14.0-362.18.1.el9_3.x86_64",
        "5.14.0-362.8.1.el9_3.x86_64",
    ]
    assert all(k.package == "kernel-core" for k in rpm_kernels(db))


def test_rpm_flavours() -> None:
    db = PackageDb(
        "rpm",
        "t",
        tuple(
            parse_rpm_qa(
                "kernel-debug-core\t0\t5.14.0\t362.el9\tx86_64\t1\nkernel-64k-core\t0\t5.14.0\t362.el9\taarch64\t1\n"
                "kernel-rt-core\t0\t5.14.0\t362.8.1.rt14.343.el9_3\tx86_64\t1\n"
            )
        ),
    )
    assert sorted(k.release for k in rpm_kernels(db)) == [
        "5.14.0-362.8.1.rt14.343.el9_3.x86_64",
        "5.14.0-362.el9.aarch64+64k",
        "5.14.0-362.el9.x86_64+debug",
    ]


@pytest.mark.parametrize(
    ("release", "flavour"),
    [
        ("6.1.0-18-cloud-amd64", "cloud-amd64"),
        ("5.15.0-91-generic", "generic"),
        ("6.1.0-18-amd64", "amd64"),
        ("5.14.0-362.8.1.el9_3.x86_64", ""),
        ("5.14.0-362.el9.x86_64+debug", "+debug"),
        ("5.14.0-362.8.1.rt14.343.el9_3.x86_64", "rt"),
        ("6.18.44-fc-v657", ""),
    ],
)
def test_flavour(release: str, flavour: str) -> None:
    assert kernel_flavour(release) == flavour


# -- Debian ------------------------------------------------------------------------------------------


def test_newer_installed_kernel_fails_with_uptime() -> None:
    r = deb_live("6.1.0-18-cloud-amd64").check(4)
    assert r.status is Status.FAIL
    assert r.summary == (
        "reboot to activate kernel 6.1.0-56-cloud-amd64 (linux-image-6.1.0-56-cloud-amd64 "
        "6.1.192-2): the running kernel is 6.1.0-18-cloud-amd64 (6.1.76-1) since 2026-11-28 "
        "12:00 UTC"
    )
    assert r.findings[0].evidence[0].detail == "running 6.1.0-18-cloud-amd64 since 2026-11-28 12:00 UTC"


def test_newest_running_passes() -> None:
    r = _with_lists(
        deb_live("6.1.0-56-cloud-amd64"), sample("apt/lists-debian12-security_main_binary-amd64_Packages")
    ).check(4)
    assert r.status is Status.PASS, messages(r)
    assert r.summary == "the newest installed kernel is running: 6.1.0-56-cloud-amd64"
    # Without package lists the second half of the question stays open.
    r = deb_live("6.1.0-56-cloud-amd64").check(4)
    assert messages(r) == [
        ("pass", "the newest installed kernel is running: 6.1.0-56-cloud-amd64"),
        (
            "warn",
            "whether a newer kernel is available is unknown: apt has no package lists (/var/lib/apt/lists "
            "is empty): available kernels cannot be known until `apt update` has run",
        ),
    ]


def test_running_kernel_removed_and_older() -> None:
    r = deb_live("6.1.0-10-cloud-amd64").check(4)
    assert r.status is Status.FAIL
    assert "the running kernel 6.1.0-10-cloud-amd64" in r.summary and "no longer installed" in r.summary


def test_foreign_running_kernel_warns() -> None:
    r = deb_live("6.18.44-fc-v657").check(4)
    assert r.status is Status.WARN
    assert r.summary.startswith("the running kernel 6.18.44-fc-v657 does not come from an installed package")


def test_reboot_required_flag() -> None:
    h = deb_live("6.1.0-56-cloud-amd64").file("/run/reboot-required", "*** System restart required ***\n")
    h.file("/run/reboot-required.pkgs", "libc6\nlibssl3\nlibc6\n")
    r = h.check(4)
    assert r.status is Status.FAIL
    assert r.summary.startswith(
        "a reboot is pending (for libc6, libssl3): updates are installed but not in use"
    )


def test_ubuntu_kernels() -> None:
    status = (
        "\n\n".join(
            f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {ver}"
            for name, ver in [
                ("linux-image-5.15.0-91-generic", "5.15.0-91.101"),
                ("linux-image-unsigned-5.15.0-91-generic", "5.15.0-91.101"),
                ("linux-image-5.15.0-101-generic", "5.15.0-101.111"),
                ("linux-image-5.15.0-101-generic-dbgsym", "5.15.0-101.111"),
                ("linux-image-generic", "5.15.0.101.98"),
            ]
        )
        + "\n"
    )
    h = Host("ubuntu2204", live=True, kernel="5.15.0-91-generic").dpkg(status)
    r = h.check(4)
    assert r.status is Status.FAIL
    assert r.summary.startswith(
        "reboot to activate kernel 5.15.0-101-generic (linux-image-5.15.0-101-generic 5.15.0-101.111)"
    )


def test_offline_image_boots_newest() -> None:
    r = Host().dpkg().check(4)
    # Without package lists there is nothing to compare with: the issue makes that half conditional on
    # lists being present, so it is a note, not an error.
    assert r.status is Status.PASS, messages(r)
    assert messages(r) == [
        (
            "pass",
            "offline image: it boots its newest installed kernel "
            "6.1.0-56-cloud-amd64 (linux-image-6.1.0-56-cloud-amd64 6.1.192-2)",
        )
    ]
    assert [e.detail for e in r.findings[0].evidence if e.source == "note"] == [
        "not checked whether a newer kernel is available: apt has no package lists (/var/lib/apt/lists is "
        "empty): available kernels cannot be known until `apt update` has run"
    ]


def _with_lists(h: Host, packages_text: str) -> Host:
    h.file(SEC_REL, sample("apt/lists-debian12-security_InRelease")).file(SEC_LIST, packages_text)
    h.stat(SEC_LIST).stat(SEC_REL)
    return h


def test_offline_with_current_lists_passes() -> None:
    r = _with_lists(Host().dpkg(), sample("apt/lists-debian12-security_main_binary-amd64_Packages")).check(4)
    assert r.status is Status.PASS, messages(r)
    assert any("no newer kernel in the package metadata" in e.detail for e in r.findings[0].evidence)


def test_newer_kernel_available_fails() -> None:
    lists = sample("apt/lists-debian12-security_main_binary-amd64_Packages").replace(
        "Package: linux-image-cloud-amd64\nSource: linux-signed-amd64 (6.1.192+2)\nVersion: 6.1.192-2",
        "Package: linux-image-cloud-amd64\nSource: linux-signed-amd64 (6.1.200+1)\nVersion: 6.1.200-1",
    )
    assert "6.1.200-1" in lists
    r = _with_lists(deb_live("6.1.0-56-cloud-amd64"), lists).check(4)
    assert r.status is Status.FAIL
    assert r.summary == (
        "a newer kernel is available: linux-image-cloud-amd64 6.1.192-2 → 6.1.200-1; install it and reboot"
    )


def test_livepatch_is_evidence() -> None:
    h = deb_live("6.1.0-56-cloud-amd64").stat("/sys/kernel/livepatch/lkp_Ubuntu_6_1_0_56", 0o40755)
    r = h.check(4)
    assert any(e.detail == "live patch loaded: lkp_Ubuntu_6_1_0_56" for e in r.findings[0].evidence)


# -- RHEL family -------------------------------------------------------------------------------------


def rpm_live(kernel: str, uptime: float) -> Host:
    h = Host("rocky9", live=True, kernel=kernel, uptime=uptime)
    h.stat("/var/lib/rpm/rpmdb.sqlite").command("packages.rpm", sample("rpm/rocky9-rpm-qa.txt"))
    return h


def test_rpm_reboot_to_activate() -> None:
    r = rpm_live("5.14.0-362.13.1.el9_3.x86_64", 3600).check(4)
    assert r.status is Status.FAIL
    assert r.summary.startswith(
        "reboot to activate kernel 5.14.0-362.18.1.el9_3.x86_64 (kernel-core 5.14.0-362.18.1.el9_3)"
    )


def test_rpm_needs_restarting_rule() -> None:
    uptime = NOW_TS - 1705000000  # booted before the last kernel, glibc and linux-firmware were installed
    r = rpm_live("5.14.0-362.18.1.el9_3.x86_64", uptime).check(4)
    assert r.status is Status.FAIL
    flag = next(f for f in r.findings if f.message.startswith("a reboot is pending"))
    assert flag.evidence[0].detail == (
        "glibc 2.34-83.el9_3.7, kernel 5.14.0-362.18.1.el9_3, kernel-core "
        "5.14.0-362.18.1.el9_3, linux-firmware 20230814-140.el9"
    )


def test_rpm_current_passes() -> None:
    h = rpm_live("5.14.0-362.18.1.el9_3.x86_64", 3600)
    h.command("dnf.updates", "#security\n#rc 0\n#kernel\n#rc 1\n")
    r = h.check(4)
    assert r.status is Status.PASS, messages(r)


def test_dnf_kernel_available() -> None:
    h = rpm_live("5.14.0-362.18.1.el9_3.x86_64", 3600)
    h.command("dnf.updates", "#security\n#rc 0\n#kernel\n" + sample("dnf/el9-list-upgrades.txt") + "#rc 0\n")
    r = h.check(4)
    assert r.status is Status.FAIL
    assert (
        r.summary == "a newer kernel is available: kernel 5.14.0-362.18.1.el9_3 → 5.14.0-362.24.1.el9_3; "
                     "install it and reboot"
    )


def test_rpm_offline_is_an_error() -> None:
    r = Host("rocky9").stat("/var/lib/rpm/rpmdb.sqlite").check(4)
    assert r.status is Status.ERROR
    assert "installed rpm packages and their versions cannot be known without running rpm" in r.summary


def test_no_package_database() -> None:
    r = Host().check(4)
    assert r.status is Status.ERROR
    assert r.summary == "no package database found (/var/lib/dpkg/status or an rpm database)"


def test_needs_restarting_extra_names() -> None:
    import datetime as dt

    db = PackageDb("rpm", "t", tuple(parse_rpm_qa(sample("rpm/rocky9-rpm-qa.txt"))))
    boot = dt.datetime.fromtimestamp(1700000000, dt.timezone.utc)
    names = [p.name for p in needs_restarting(db, boot, ("rsyslog",))]
    assert "rsyslog" not in names  # installed before boot
    assert names[:2] == ["glibc", "kernel"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_garbage_status_never_crashes(text: str) -> None:
    r = Host("debian12", live=True, kernel="6.1.0-56-cloud-amd64").dpkg(text).check(4)
    assert r.status in (Status.PASS, Status.WARN, Status.FAIL, Status.ERROR)
    facts = Host("debian12").dpkg(text).facts()
    try:
        facts.get(packages)
    except Exception as exc:  # only the documented error
        assert type(exc).__name__ == "EvidenceError"
    else:
        facts.get(kernel_state)


def test_no_kernel_package() -> None:
    status = "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b7\n"
    r = Host("debian12", live=True, kernel="6.18.44-fc-v657").dpkg(status).check(4)
    assert messages(r)[0] == (
        "warn",
        "no kernel package is installed (a container, or a kernel installed by hand): "
        "kernel updates cannot come from the distribution",
    )
    assert r.findings[0].evidence[0].detail == "running 6.18.44-fc-v657"


def test_boot_time_from_btime() -> None:
    h = deb_live("6.1.0-18-cloud-amd64").command("kernel.btime", "1796040000\n")
    state = h.facts().get(kernel_state)
    assert state.boot_time is not None and f"{state.boot_time:%Y-%m-%d %H:%M}" == "2026-11-30 12:00"


def test_dpkg_status_is_kept_to_the_fields_the_checks_read() -> None:
    from nectar_audit.facts.updates.packages import parse_dpkg_status

    raw = (
        "Package: openssh-server\nStatus: install ok installed\nPriority: optional\nSection: net\n"
        "Installed-Size: 1830\nArchitecture: amd64\nSource: openssh\nVersion: 1:9.2p1-2+deb12u3\n"
        "Conffiles:\n /etc/ssh/moduli 8d9b9ec2c5bb9ae2d1b7e1c5e0e8bd2e\n"
        "Description: secure shell (SSH) server\n Package: not-a-field (a continuation line)\n"
        "\n"
        "Package: linux-image-6.1.0-26-amd64\nStatus: deinstall ok config-files\nVersion: 6.1.112-1\n"
    )
    kept = sanitize_dpkg_status(raw.encode())
    assert "Conffiles" not in kept and "Description" not in kept and "not-a-field" not in kept
    assert parse_dpkg_status(kept) == parse_dpkg_status(raw)
    assert [p.name for p in parse_dpkg_status(kept)] == ["openssh-server", "linux-image-6.1.0-26-amd64"]


UPD_LIST = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm-updates_main_binary-amd64_Packages"
MAIN_LIST = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"


def _updates_list() -> str:
    """A bookworm-updates list whose only kernel is newer than anything in the security list: the
    security sample's two kernel stanzas (unmodified fields) with the version moved to 6.1.200-1."""
    sec = sample("apt/lists-debian12-security_main_binary-amd64_Packages")
    stanzas = [s for s in sec.split("\n\n") if s.startswith("Package: linux-image-")]
    assert len(stanzas) == 2
    text = "\n\n".join(stanzas) + "\n"
    return text.replace("6.1.192-2", "6.1.200-1").replace("6.1.192+2", "6.1.200+1").replace("-56-", "-57-")


def test_newer_kernel_only_in_updates_list_fails() -> None:
    from nectar_audit.facts.updates.pending import packages_kernel

    for live in (False, True):
        h = deb_live("6.1.0-56-cloud-amd64") if live else Host().dpkg()
        _with_lists(h, sample("apt/lists-debian12-security_main_binary-amd64_Packages"))
        # The file as ingestion keeps it (sanitized to its kernel stanzas).
        h.file(UPD_LIST, packages_kernel(_updates_list().encode())).stat(UPD_LIST)
        r = h.check(4)
        assert r.status is Status.FAIL, messages(r)
        assert r.summary == (
            "a newer kernel is available: linux-image-cloud-amd64 6.1.192-2 → 6.1.200-1; install it and reboot"
        )
        assert r.findings[-1].evidence[0].source == (
            "/var/lib/apt/lists/*_Packages "
            "(deb.debian.org_debian_dists_bookworm-updates_main_binary-amd64_Packages)"
        )


def test_newer_kernel_from_host_filtered_lists() -> None:
    # Live, compressed lists: the apt.kernel_lists command's output (one #file block per list).
    h = deb_live("6.1.0-56-cloud-amd64")
    out = (
        f"#file {MAIN_LIST}.lz4\n"
        + sample("apt/lists-debian12-main_binary-amd64_Packages.kernels")
        + f"#file {UPD_LIST}.lz4\n"
        + _updates_list()
    )
    h.stat(f"{MAIN_LIST}.lz4").stat(f"{UPD_LIST}.lz4").command("apt.kernel_lists", out)
    r = h.check(4)
    assert r.status is Status.FAIL
    assert "linux-image-cloud-amd64 6.1.192-2 → 6.1.200-1" in r.summary
    # The release list alone holds only older kernels (6.1.176-1): no finding about availability.
    main = sample("apt/lists-debian12-main_binary-amd64_Packages.kernels")
    h.command("apt.kernel_lists", f"#file {MAIN_LIST}.lz4\n{main}")
    r = h.check(4)
    assert r.status is Status.PASS, messages(r)


def test_kernel_list_filter_matches_sanitizer(tmp_path: Path) -> None:
    """The host-side awk filter (run here with the real sh/awk) and the ingestion sanitizer agree."""
    from nectar_audit.facts.updates.pending import NEEDS, packages_kernel, split_decompressed_lists

    full = sample("apt/lists-debian12-security_main_binary-amd64_Packages") + "\n" + _updates_list()
    (tmp_path / "x_main_binary-amd64_Packages").write_text(full)
    snippet = NEEDS.commands["apt.kernel_lists"].replace("/var/lib/apt/lists", str(tmp_path))
    r = subprocess.run(["sh", "-c", 'with_timeout() { shift; "$@"; }\n' + snippet], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    [(path, text)] = split_decompressed_lists(r.stdout)
    assert path.endswith("x_main_binary-amd64_Packages")
    assert text == packages_kernel(full.encode())
    assert text.count("Package: ") == 4 and "Description" not in text
    # Not a kernel: nothing kept; the metapackages of Ubuntu are.
    assert packages_kernel(b"Package: linux-libc-dev\nVersion: 1\n\nPackage: linux-generic\nVersion: 2\n") == (
        "Package: linux-generic\nVersion: 2\n\n"
    )


def test_security_lists_keep_every_package_other_lists_only_kernels() -> None:
    from nectar_audit.catalog import all_needs
    from nectar_audit.evidence.bundle import Bundle

    b = Bundle.for_needs("t", "rootfs", False, all_needs())
    sec = sample("apt/lists-debian12-security_main_binary-amd64_Packages")
    b.add_file(SEC_LIST, sec.encode())
    b.add_file(UPD_LIST, sec.encode())
    assert "Package: libssl3" in (b.text(SEC_LIST) or "")  # check 07 needs every package
    kept = b.text(UPD_LIST) or ""
    assert "libssl3" not in kept and kept.count("Package: linux-image-") == 2
