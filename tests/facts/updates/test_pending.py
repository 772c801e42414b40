"""Pending security updates from the host's own package metadata (apt lists, apt-get -s, dnf updateinfo)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import all_needs
from nectar_audit.evidence.bundle import Bundle
from nectar_audit.facts.updates.pending import (
    NEEDS,
    packages_brief,
    packages_kernel,
    parse_apt_simulation,
    parse_dnf_list,
    parse_dnf_updateinfo,
    parse_packages_list,
    parse_release,
    pending_updates,
    release_header,
    split_nevra,
)
from nectar_audit.model import Status
from tests.patching_helpers import NOW_TS, Host, messages, sample

LISTS = "/var/lib/apt/lists"
SEC = "deb.debian.org_debian-security_dists_bookworm-security"
SEC_LIST = f"{LISTS}/{SEC}_main_binary-amd64_Packages"
SEC_REL = f"{LISTS}/{SEC}_InRelease"
MAIN_LIST = f"{LISTS}/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"
MAIN_REL = f"{LISTS}/deb.debian.org_debian_dists_bookworm_InRelease"
MAIN_RELEASE = (
    "Origin: Debian\nLabel: Debian\nSuite: oldstable\nVersion: 12.13\nCodename: bookworm\n"
    "Date: Sat, 28 Nov 2026 09:01:02 UTC\n"
)

# Real `apt-get -s dist-upgrade` lines (Debian 12 host with compressed lists).
SIMULATION = """NOTE: This is only a simulation!
Reading package lists...
Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])
Inst libgcrypt20-dev [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, \
Debian-Security:12/oldstable-security [amd64]) []
Inst liblzma5 [5.4.1-1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64])
Inst linux-image-6.1.0-57-cloud-amd64 (6.1.200-1 Debian-Security:12/oldstable-security [amd64])
Conf base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])
"""


DEBIAN_SOURCES = sample("apt/sources/debian12-lab.list")


def lists_host(status: str | None = None, live: bool = False, sec_mtime: int = NOW_TS - 3600) -> Host:
    h = Host("debian12", live=live, kernel="6.1.0-56-cloud-amd64").dpkg(status)
    h.file("/etc/apt/sources.list", DEBIAN_SOURCES)
    h.file(SEC_REL, sample("apt/lists-debian12-security_InRelease"))
    h.file(SEC_LIST, sample("apt/lists-debian12-security_main_binary-amd64_Packages"))
    h.file(MAIN_REL, MAIN_RELEASE)
    for p in (SEC_REL, SEC_LIST, MAIN_REL, MAIN_LIST):
        h.stat(p, mtime=sec_mtime)
    h.stat(LISTS, 0o40755, mtime=sec_mtime)
    return h


def outdated_status() -> str:
    return sample("dpkg/debian12-status").replace("Version: 3.0.22-1~deb12u2", "Version: 3.0.15-1~deb12u1")


# -- apt ---------------------------------------------------------------------------------------------


def test_pending_security_update_fails_naming_it() -> None:
    r = lists_host(outdated_status()).check(7)
    assert r.status is Status.FAIL
    assert r.summary == "1 security update is not installed: libssl3"
    fail = next(f for f in r.findings if f.status is Status.FAIL)
    assert fail.evidence[0].detail == "libssl3 3.0.15-1~deb12u1 → 3.0.22-1~deb12u2"
    assert fail.evidence[0].source.endswith(f"({SEC}_main_binary-amd64_Packages)")
    assert fail.remediation is not None and "apt-get upgrade" in fail.remediation


def test_up_to_date_passes() -> None:
    r = lists_host().check(7)
    found = messages(r)
    assert ("pass", "no security update is pending (package metadata from 2026-12-01)") in found


def test_stale_lists_warn() -> None:
    h = lists_host(sec_mtime=NOW_TS - 40 * 86400)
    h.file(
        SEC_REL,
        sample("apt/lists-debian12-security_InRelease").replace(
            "Date: Thu, 26 Nov 2026 21:03:35 UTC", "Date: Thu, 22 Oct 2026 21:03:35 UTC"
        ),
    )
    h.file(MAIN_REL, MAIN_RELEASE.replace("28 Nov 2026", "21 Oct 2026"))
    ups = h.facts().get(pending_updates)
    assert ups.refreshed is not None and f"{ups.refreshed:%Y-%m-%d}" == "2026-10-22"
    assert (
        "warn",
        "the package metadata was last refreshed on 2026-10-22: security updates published since then are not seen",
    ) in messages(h.check(7))


def test_no_lists_is_an_error_live_and_expected_in_an_image() -> None:
    r = Host(live=True).dpkg().file("/etc/apt/sources.list", DEBIAN_SOURCES).check(7)
    err = next(f for f in r.findings if f.status is Status.ERROR)
    assert err.message.startswith("pending security updates cannot be listed: apt has no package lists")
    r = Host().dpkg().file("/etc/apt/sources.list", DEBIAN_SOURCES).check(7)
    assert r.status is Status.WARN, messages(r)  # root's mail; nothing about the lists is wrong
    assert (
        "not_applicable",
        "pending security updates cannot be known from this image: it holds no downloaded package lists "
        "(usually removed when an image is built); a host booted from it fetches them with its first apt update",
    ) in messages(r)


def test_no_security_archive_fails() -> None:
    main_only = "deb http://deb.debian.org/debian bookworm main\n"
    h = Host().dpkg().file(MAIN_REL, MAIN_RELEASE).stat(MAIN_REL).stat(MAIN_LIST)
    h.file("/etc/apt/sources.list", main_only)
    r = h.check(7)
    assert r.status is Status.FAIL
    assert r.summary == (
        "apt has no security archive among its configured sources (/etc/apt/sources.list): security updates "
        "never arrive"
    )
    # Configured, but not in the lists (apt update has not run since): the image cannot tell, a live host warns.
    h.file("/etc/apt/sources.list", DEBIAN_SOURCES)
    assert (
        "pass",
        "apt's sources include the security archive: http://deb.debian.org/debian-security "
        "bookworm-security (/etc/apt/sources.list:3)",
    ) in messages(h.check(7))
    assert (
        "not_applicable",
        "pending security updates cannot be known from this image: its downloaded lists "
        "hold no security archive (a host booted from it fetches them with its first apt update)",
    ) in messages(h.check(7))
    h.live, h.uid = True, 0
    h.processes([])
    assert (
        "warn",
        "apt's downloaded lists hold no security archive: `apt update` has not run successfully "
        "since its sources were set, so pending security updates are not seen",
    ) in messages(h.check(7))


def test_compressed_lists_offline_is_an_error() -> None:
    h = Host().dpkg().file(SEC_REL, sample("apt/lists-debian12-security_InRelease")).stat(SEC_REL)
    h.stat(SEC_LIST + ".lz4").file("/etc/apt/sources.list", DEBIAN_SOURCES)
    r = h.check(7)
    err = next(f for f in r.findings if f.status is Status.ERROR)
    assert "stored compressed" in err.message and "live host" in err.message


def test_compressed_lists_live_use_the_simulation() -> None:
    h = (
        Host("debian12", live=True, kernel="6.1.0-56-cloud-amd64")
        .dpkg()
        .file(SEC_REL, sample("apt/lists-debian12-security_InRelease"))
        .file("/etc/apt/sources.list", DEBIAN_SOURCES)
    )
    h.stat(SEC_REL).stat(SEC_LIST + ".lz4").command("apt.simulate", SIMULATION)
    ups = h.facts().get(pending_updates)
    assert [u.name for u in ups.updates] == [
        "base-files",
        "libgcrypt20-dev",
        "liblzma5",
        "linux-image-6.1.0-57-cloud-amd64",
    ]
    assert [u.name for u in ups.security] == [
        "libgcrypt20-dev",
        "liblzma5",
        "linux-image-6.1.0-57-cloud-amd64",
    ]
    r = h.check(7)
    assert r.summary == (
        "3 security updates are not installed: libgcrypt20-dev, liblzma5, linux-image-6.1.0-57-cloud-amd64"
    )
    # The new kernel ABI package is a newer kernel for check 04.
    assert h.check(4).summary.startswith(
        "a newer kernel is available: linux-image-6.1.0-57-cloud-amd64 6.1.200-1 (new)"
    )


def test_ubuntu_security_list() -> None:
    rel = (
        f"{LISTS}/security.ubuntu.com_ubuntu_dists_jammy-security_InRelease",
        "Origin: Ubuntu\nLabel: Ubuntu\nSuite: jammy-security\nVersion: 22.04\nCodename: jammy\n"
        "Date: Mon, 30 Nov 2026 18:00:00 UTC\n",
    )
    lst = (
        f"{LISTS}/security.ubuntu.com_ubuntu_dists_jammy-security_main_binary-amd64_Packages",
        "Package: libssl3\nArchitecture: amd64\nVersion: 3.0.2-0ubuntu1.19\n\n"
        "Package: tzdata\nArchitecture: all\nVersion: 2025b-0ubuntu0.22.04\n",
    )
    status = (
        "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.2-0ubuntu1.15\n\n"
        "Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2025b-0ubuntu0.22.04\n"
    )
    h = Host("ubuntu2204").dpkg(status).file(*rel).file(*lst).stat(rel[0]).stat(lst[0])
    h.file("/etc/apt/sources.list", "deb http://security.ubuntu.com/ubuntu jammy-security main\n")
    assert h.check(7).summary == "1 security update is not installed: libssl3"


# -- dnf ---------------------------------------------------------------------------------------------


def dnf_host(section: str, rc: int = 0) -> Host:
    h = Host("rocky9", live=True, kernel="5.14.0-362.18.1.el9_3.x86_64")
    h.stat("/var/lib/rpm/rpmdb.sqlite").command("packages.rpm", sample("rpm/rocky9-rpm-qa.txt"))
    return h.command("dnf.updates", f"#security\n{section}#rc {rc}\n#kernel\n#rc 1\n")


def test_dnf_security_updates_fail() -> None:
    r = dnf_host(sample("dnf/el9-updateinfo.txt")).check(7)
    assert r.status is Status.FAIL
    assert r.summary == (
        "7 security updates are not installed: openssl, openssl-libs, kernel, kernel-core, "
        "kernel-modules, kernel-modules-core, glibc"
    )
    fail = next(f for f in r.findings if f.status is Status.FAIL)
    # dnf names the version it would install; the installed one comes from the rpm database.
    assert fail.evidence[0].detail == "openssl 1:3.0.7-24.el9 → 1:3.0.7-25.el9_3 (RLSA-2024:1193)"
    assert fail.remediation == "dnf upgrade --security"


def test_dnf_without_cache_is_an_error() -> None:
    out = "Error: Cache-only enabled but no cache for 'baseos'\n"
    r = dnf_host(out, rc=1).check(7)
    err = next(f for f in r.findings if f.status is Status.ERROR)
    assert "dnf has no cached metadata" in err.message and "dnf makecache" in err.message


def test_dnf_nothing_pending() -> None:
    r = dnf_host("").check(7)
    assert ("pass", "no security update is pending") in messages(r)


def test_rpm_offline_is_an_error() -> None:
    r = Host("rocky9").stat("/var/lib/rpm/rpmdb.sqlite").check(7)
    assert any(f.status is Status.ERROR and "cannot be known without running rpm" in f.message for f in r.findings)


def test_dnf_parsers() -> None:
    assert split_nevra("openssl-libs-1:3.0.7-25.el9_3.x86_64") == (
        "openssl-libs",
        "1:3.0.7-25.el9_3",
        "x86_64",
    )
    assert split_nevra("kernel-core-5.14.0-362.24.1.el9_3.x86_64") == (
        "kernel-core",
        "5.14.0-362.24.1.el9_3",
        "x86_64",
    )
    assert split_nevra("garbage") is None
    five = parse_dnf_updateinfo(sample("dnf/dnf5-advisory.txt"))
    assert [(u.advisory, u.name, u.severity) for u in five] == [
        ("FEDORA-2024-9b1f8a9f31", "curl", "Moderate"),
        ("FEDORA-2024-9b1f8a9f31", "libcurl", "Moderate"),
        ("FEDORA-2024-5c8d3c1e0a", "openssl-libs", "Important"),
    ]
    four = parse_dnf_updateinfo(sample("dnf/el9-updateinfo.txt"))
    assert four[0].severity == "Important" and four[-1].candidate == "2.34-83.el9_3.12"
    assert [u.name for u in parse_dnf_list(sample("dnf/el9-list-upgrades.txt"))][:2] == [
        "kernel",
        "kernel-core",
    ]


# -- parsers and sanitizers ------------------------------------------------------------------------


def test_apt_simulation_parser() -> None:
    ups = parse_apt_simulation(SIMULATION)
    assert ups[1].installed == "1.10.1-3" and ups[1].candidate == "1.10.1-3+deb12u1"
    assert ups[1].origin == "Debian:12.15/oldstable, Debian-Security:12/oldstable-security"
    assert ups[3].installed is None and ups[3].security


def test_release_header_sanitizer_drops_checksums_and_signature() -> None:
    raw = sample("apt/lists-debian12-security_InRelease")
    assert "SHA256:" in raw and "BEGIN PGP SIGNATURE" in raw
    head = release_header(raw.encode())
    assert head == (
        "Origin: Debian\nLabel: Debian-Security\nSuite: oldstable-security\nVersion: 12\n"
        "Codename: bookworm-security\nDate: Thu, 26 Nov 2026 21:03:35 UTC\n"
        "Valid-Until: Thu, 03 Dec 2026 21:03:35 UTC\n"
    )
    assert parse_release(head)["Label"] == "Debian-Security"


def test_packages_sanitizer_keeps_what_is_compared() -> None:
    raw = sample("apt/lists-debian12-security_main_binary-amd64_Packages")
    brief = packages_brief(raw.encode())
    assert len(brief) < len(raw) / 4
    assert "SHA256" not in brief and "Description" not in brief
    assert parse_packages_list(brief) == parse_packages_list(raw)
    assert parse_packages_list(brief)[("libssl3", "amd64")] == "3.0.22-1~deb12u2"


def test_sanitizers_apply_at_ingestion() -> None:
    b = Bundle("t", "rootfs", False, sanitizers=all_needs().sanitize)
    b.add_file(SEC_REL, sample("apt/lists-debian12-security_InRelease").encode())
    b.add_file(SEC_LIST, sample("apt/lists-debian12-security_main_binary-amd64_Packages").encode())
    assert "SHA256" not in (b.text(SEC_REL) or "") and "SHA256" not in (b.text(SEC_LIST) or "")
    assert set(NEEDS.sanitize.values()) == {release_header, packages_brief, packages_kernel}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.binary(max_size=300))
def test_garbage_lists_never_crash(text: str, data: bytes) -> None:
    h = lists_host()
    h.file(SEC_LIST, text).file(SEC_REL, release_header(data))
    r = h.check(7)
    assert r.status in (Status.MANUAL, Status.WARN, Status.FAIL, Status.ERROR), messages(r)
    assert parse_apt_simulation(text) is not None and parse_dnf_updateinfo(text) is not None


def test_decompressed_security_lists_are_split_per_file() -> None:
    from nectar_audit.facts.updates.pending import split_decompressed_lists

    out = (
        "#file /var/lib/apt/lists/x_bookworm-security_main_binary-amd64_Packages.lz4\n"
        "Package: libssl3\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\n\n"
        "#file /var/lib/apt/lists/x_bookworm-security_contrib_binary-amd64_Packages.gz\n"
    )
    parts = split_decompressed_lists(out)
    assert [p for p, _ in parts] == [
        "/var/lib/apt/lists/x_bookworm-security_main_binary-amd64_Packages.lz4",
        "/var/lib/apt/lists/x_bookworm-security_contrib_binary-amd64_Packages.gz",
    ]
    assert parts[0][1].startswith("Package: libssl3\nVersion: 3.0.15-1~deb12u1\n")


def test_compressed_lists_on_this_machine_agree_with_apt_simulation() -> None:
    """Live: apt's own decompressor path finds the security updates apt-get -s would install."""
    import shutil
    import subprocess

    from nectar_audit.catalog import all_needs
    from nectar_audit.config import Config
    from nectar_audit.facts import Facts
    from nectar_audit.facts.updates.pending import APT_SIMULATE, parse_apt_simulation, pending_updates
    from nectar_audit.targets.local import LocalTarget

    if shutil.which("apt-get") is None:
        pytest.skip("not an apt system")
    bundle = LocalTarget().gather(all_needs())
    lists = bundle.command("apt.security_lists")
    assert lists is not None
    if lists.rc != 0:
        pytest.skip("this machine keeps its security lists uncompressed or has none")
    state = pending_updates(Facts(bundle, Config()))
    sim = subprocess.run(APT_SIMULATE.split(), capture_output=True, text=True, timeout=120, check=True).stdout
    security = {u.name for u in parse_apt_simulation(sim) if u.security}
    assert {u.name for u in state.updates} >= security


def test_live_targets_filter_every_list_on_the_host_offline_ones_read_it(tmp_path: object) -> None:
    """Every *_Packages list is read whole only offline; a live gather sends the host-filtered
    kernel stanzas instead of tens of MB per host."""
    from pathlib import Path

    from nectar_audit.evidence import build_script, new_boundary
    from nectar_audit.facts.updates.pending import ALL_PACKAGES_GLOB
    from nectar_audit.targets.rootfs import RootFsTarget

    needs = all_needs()
    assert ALL_PACKAGES_GLOB in needs.offline_files and ALL_PACKAGES_GLOB not in needs.files
    script = build_script(needs, new_boundary()).splitlines()
    (files_line,) = [ln for ln in script if ln.startswith("read_files ")]
    assert "/var/lib/apt/lists/*_Packages" not in files_line.split()
    # The security lists are sent as a whole, through the host-side grep of their brief fields.
    security_list = " /var/lib/apt/lists/*security*_Packages"
    assert [ln for ln in script if ln.startswith("grep_files ") and ln.endswith(security_list)]

    # An offline root whose main list is past the 16 MiB kept per plain file, its kernel at the end
    # (Debian's is ~50 MB with the kernels from ~27 MB on): the sanitizer still sees the whole list.
    root = Path(str(tmp_path))
    lists = root / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    (root / "etc").mkdir()
    filler = "".join(
        f"Package: pkg{i}\nVersion: 1.0-{i}\nArchitecture: amd64\nDescription: {'x' * 200}\n\n" for i in range(80_000)
    )
    kernel = "Package: linux-image-6.1.0-99-cloud-amd64\nVersion: 6.1.999-1\nArchitecture: amd64\n\n"
    (lists / "deb.debian.org_debian_dists_bookworm-updates_main_binary-amd64_Packages").write_text(filler + kernel)
    assert len(filler) > 16 * 1024 * 1024
    bundle = RootFsTarget(str(root)).gather(needs)
    rec = bundle.file("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm-updates_main_binary-amd64_Packages")
    assert rec is not None and not rec.truncated
    assert rec.content == "Package: linux-image-6.1.0-99-cloud-amd64\nVersion: 6.1.999-1\nArchitecture: amd64\n\n"


def test_parsed_lists_and_package_databases_are_shared_read_only() -> None:
    """Parsers remembered across the hosts of a fleet hand out values no host can change for the next."""
    from nectar_audit.facts.ssh.fail2ban import parse_conf
    from nectar_audit.facts.updates.packages import parse_dpkg_status

    text = sample("apt/lists-debian12-security_main_binary-amd64_Packages")
    first, again = parse_packages_list(text), parse_packages_list(text)
    assert first is again
    with pytest.raises(TypeError):
        first[("libssl3", "amd64")] = "0"  # type: ignore[index]
    other = parse_packages_list(text.replace("Version: 3.0.", "Version: 9.0."))
    assert other[("libssl3", "amd64")].startswith("9.0.") and first[("libssl3", "amd64")].startswith("3.0.")
    status = sample("dpkg/debian12-status")
    assert isinstance(parse_dpkg_status(status), tuple) and parse_dpkg_status(status) is parse_dpkg_status(status)
    assert isinstance(parse_conf("[sshd]\nenabled = true\n", "/x"), tuple)


def _split_by_lines(stdout: str) -> list[tuple[str, str]]:
    """The line-by-line reading that split_decompressed_lists must agree with."""
    out: list[tuple[str, list[str]]] = []
    for line in stdout.splitlines():
        if line.startswith("#file "):
            out.append((line[len("#file "):], []))
        elif out:
            out[-1][1].append(line)
    return [(path, "\n".join(lines) + "\n") for path, lines in out]


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(
    ["#file ", "#file /a", "#file\n", "\n", "\r\n", "\r", "\x0b", "\u2028", "Package: x", "#fil", " ", "\n\n"]
), max_size=24).map("".join))
def test_split_of_decompressed_lists_agrees_with_reading_line_by_line(stdout: str) -> None:
    from nectar_audit.facts.updates.pending import split_decompressed_lists

    assert split_decompressed_lists(stdout) == _split_by_lines(stdout)
