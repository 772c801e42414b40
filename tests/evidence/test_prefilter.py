"""Host-side prefilters (``Needs.prefilter``): the lines a live host sends of dpkg's status and apt's
lists, through the real sh and grep, must leave the sanitizer's result exactly as the whole file does."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import all_needs
from nectar_audit.evidence import Needs
from nectar_audit.evidence.bundle import Bundle
from nectar_audit.evidence.sanitize import sanitize
from nectar_audit.facts.updates.packages import DPKG_STATUS, sanitize_dpkg_status
from nectar_audit.facts.updates.pending import NEEDS as UPDATES_NEEDS
from nectar_audit.facts.updates.pending import SECURITY_PACKAGES_GLOB, packages_kernel, split_decompressed_lists
from nectar_audit.targets.script_runner import ScriptTarget
from tests import SAMPLES

NEEDS = all_needs()
RELEASE = "/var/lib/apt/lists/*_InRelease"


def _sanitizer(pattern: str) -> str:
    return NEEDS.sanitize[pattern]


def _live(pattern: str, path: Path) -> Bundle:
    """``path`` gathered by the real script as if it matched ``pattern`` on a live host."""
    needs = Needs(files=(str(path),), prefilter={str(path): NEEDS.prefilter[pattern]},
                  sanitize={str(path): _sanitizer(pattern)})
    return ScriptTarget("t", ["/bin/sh", "-s"]).gather(needs)


def _same_as_whole_file(pattern: str, path: Path) -> None:
    bundle = _live(pattern, path)
    assert not bundle.errors
    assert bundle.text(str(path)) == sanitize(_sanitizer(pattern), path.read_bytes())


def test_the_prefiltered_files_are_the_big_sanitized_ones() -> None:
    assert set(NEEDS.prefilter) == {DPKG_STATUS, SECURITY_PACKAGES_GLOB, RELEASE,
                                    "/var/lib/apt/lists/*_Release"}
    assert all(p in NEEDS.files and p in NEEDS.sanitize for p in NEEDS.prefilter)


@pytest.mark.parametrize(("pattern", "sample"), [
    (DPKG_STATUS, "dpkg/debian12-status"),
    (SECURITY_PACKAGES_GLOB, "apt/lists-debian12-security_main_binary-amd64_Packages"),
    (RELEASE, "apt/lists-debian12-security_InRelease"),
])
def test_real_samples_sanitize_the_same_prefiltered(pattern: str, sample: str) -> None:
    _same_as_whole_file(pattern, SAMPLES / sample)


def test_this_machines_package_database_and_lists() -> None:
    """The real thing at full size: this machine's dpkg status, and its apt lists (decompressed with
    apt's own helper where they are kept compressed) with their InRelease files."""
    if not Path(DPKG_STATUS).is_file():
        pytest.skip("not a dpkg machine")  # the suite's CI machines are Debian: this runs there
    _same_as_whole_file(DPKG_STATUS, Path(DPKG_STATUS))
    lists = Path("/var/lib/apt/lists")
    releases = sorted(lists.glob("*_InRelease"))
    for release in releases:
        _same_as_whole_file(RELEASE, release)
    packed = sorted(p for p in lists.glob("*_Packages*") if p.is_file())
    # Not under /tmp: files there are a user area, read only up to MAX_USER_FILE_BYTES.
    with tempfile.TemporaryDirectory(dir="/run") as root_only:
        for src in packed[:3]:
            dest = Path(root_only) / src.name.split("_Packages")[0]
            with open(dest, "wb") as out:
                subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(src)], stdout=out, check=True)
            _same_as_whole_file(SECURITY_PACKAGES_GLOB, dest)


_LINE = st.one_of(
    st.sampled_from(["", " ", "\t", " \t ", "\r", "Package: linux-image-amd64", "Version: 1:2.3-4",
                     "Status: install ok installed", "Architecture: amd64", "Source: linux (6.1.1-1)",
                     "Description: x", " continuation", "Origin: Debian", "Suite: stable-security",
                     "Date: Sat, 28 Nov 2026 10:12:00 UTC", "MD5Sum:", "SHA256:", "Label: Debian-Security",
                     "-----BEGIN PGP SIGNATURE-----", "Version: GnuPG v2", "Package:x", "package: lower",
                     "Packages: plural", "Version : spaced", "Codename: bookworm\r"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\x00"), max_size=30),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINE, max_size=40),
       pattern=st.sampled_from([DPKG_STATUS, SECURITY_PACKAGES_GLOB, RELEASE]))
def test_any_file_sanitizes_the_same_prefiltered(tmp_path: Path, lines: list[str], pattern: str) -> None:
    path = tmp_path / "f"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    _same_as_whole_file(pattern, path)


def test_a_read_error_is_a_reason_not_a_gap() -> None:
    """/proc/self/mem passes the readability test and then fails to read (EIO): grep's reason is kept."""
    needs = Needs(files=("/proc/self/mem",), prefilter={"/proc/self/mem": NEEDS.prefilter[DPKG_STATUS]})
    rec = ScriptTarget("t", ["/bin/sh", "-s"]).gather(needs).file("/proc/self/mem")
    assert rec is not None and rec.error is not None and "Input/output error" in rec.error


def test_a_file_without_matching_lines_is_read_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "status"
    path.write_text("Description: nothing kept\n")
    bundle = _live(DPKG_STATUS, path)
    assert bundle.text(str(path)) == "" and not bundle.errors


# -- the kernel stanzas of every list ----------------------------------------------------------


def _kernel_lists(lists: Path) -> list[tuple[str, str]]:
    snippet = UPDATES_NEEDS.commands["apt.kernel_lists"].replace("/var/lib/apt/lists", str(lists))
    r = subprocess.run(["sh", "-c", 'with_timeout() { shift; "$@"; }\n' + snippet], capture_output=True, text=True,
                       env={**os.environ, "LC_ALL": "C"})
    assert r.returncode == 0, r.stderr
    return split_decompressed_lists(r.stdout)


def _stanza(name: str, version: str, description_lines: int = 0) -> str:
    long = "".join(f" line {i}\n" for i in range(description_lines))
    # Architecture and Version after a long description: a field order no archive tool writes, but
    # the fields are found wherever they are.
    return (f"Package: {name}\nSource: linux\nDescription: kernel\n{long}Architecture: amd64\n"
            f"Version: {version}\n\n")


@pytest.mark.parametrize("description_lines", [0, 55, 58, 59, 60, 61, 200])
@pytest.mark.parametrize("where", ["middle", "last"])
def test_kernel_stanzas_longer_than_greps_window_are_read_whole(
        tmp_path: Path, description_lines: int, where: str) -> None:
    other = "Package: libc6\nVersion: 2.36\nArchitecture: amd64\n\n"
    long = _stanza("linux-image-6.1.0-99-amd64", "6.1.999-1", description_lines)
    short = _stanza("linux-image-amd64", "6.1.999-1")
    text = other + long + other + short + other if where == "middle" else other + short + other + long
    (tmp_path / "x_main_binary-amd64_Packages").write_text(text)
    [(path, kept)] = _kernel_lists(tmp_path)
    assert path.endswith("_Packages")
    assert kept == packages_kernel(text.encode())
    assert kept.count("Version: 6.1.999-1") == 2


def test_the_kernel_filter_reads_the_real_debian_main_list_like_the_sanitizer(tmp_path: Path) -> None:
    """Debian 12's main list as kept in the samples (its kernel stanzas, exactly as reduced), embedded
    in a list of other packages."""
    kernels = (SAMPLES / "apt/lists-debian12-main_binary-amd64_Packages.kernels").read_text()
    other = (SAMPLES / "apt/lists-debian12-security_main_binary-amd64_Packages").read_text()
    full = other.rstrip("\n") + "\n\n" + kernels + other
    (tmp_path / "y_main_binary-amd64_Packages").write_text(full)
    [(_, kept)] = _kernel_lists(tmp_path)
    assert kept == packages_kernel(full.encode())
    assert kept.count("Package: linux-image-") == full.count("Package: linux-image-") > 20


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_LINE, max_size=30), end=st.sampled_from(["", "\n", "\n\n"]))
def test_sanitizers_keep_a_reduced_file_as_it_is(lines: list[str], end: str) -> None:
    """The one-scan path of the two big sanitizers (input already reduced on the host) gives what the
    line-by-line path gives, for any input: reduced, not reduced, or neither."""
    from nectar_audit.facts.updates.packages import _KEPT
    from nectar_audit.facts.updates.pending import _BRIEF_KEYS, _lines, packages_brief

    text = "\n".join(lines) + end
    for candidate in (text, "".join(m.group(0) for m in _KEPT.finditer(text))):
        assert sanitize_dpkg_status(candidate.encode()) == "".join(m.group(0) for m in _KEPT.finditer(candidate))
    keep = tuple(k + ":" for k in _BRIEF_KEYS)
    for candidate in (text, "\n".join(ln for ln in text.split("\n") if not ln or ln.startswith(keep))):
        data = candidate.encode()
        assert packages_brief(data) == "\n".join(ln for ln in _lines(data) if not ln or ln.startswith(keep)) + "\n"


@pytest.mark.parametrize("cut", [False, True])
def test_every_plain_list_is_read_by_one_grep(tmp_path: Path, cut: bool) -> None:
    """Lists told apart by the names grep puts before their lines, names that are each other's prefix
    up to a dash included; a list without kernels is still reported, and a stanza longer than grep's
    window sends every list to the whole-file reading."""
    other = "Package: libc6\nVersion: 2.36\nArchitecture: amd64\n\n"
    texts = {
        "x_dists_bookworm_main_binary-amd64_Packages":
            other + _stanza("linux-image-amd64", "6.1.1-1", 70 if cut else 3) + other,
        "x_dists_bookworm-security_main_binary-amd64_Packages": _stanza("linux-image-6.1.0-9-amd64", "6.1.9-1"),
        "x_dists_bookworm-updates_main_binary-amd64_Packages": other,  # no kernel: still listed
        "y_Packages": _stanza("linux-generic", "8") + other,
        "y_Packages-z_Packages": other + _stanza("linux-generic", "9"),  # starts with "y_Packages-"
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    got = dict(_kernel_lists(tmp_path))
    assert got == {str(tmp_path / name): packages_kernel(text.encode()) or "\n" for name, text in texts.items()}
    assert got[str(tmp_path / "x_dists_bookworm_main_binary-amd64_Packages")].count("Version: 6.1.1-1") == 1


def test_greps_fixed_strings_take_no_decoy_for_a_kernel(tmp_path: Path) -> None:
    """grep looks for fixed strings, more lines than the kernel expression takes: package names that
    only start like a kernel's, the bare prefix, and the strings inside another stanza's fields are
    found by grep and dropped by awk, as the sanitizer drops them."""
    decoys = (
        "Package: linux-generic-hwe-22.04\nVersion: 1\nArchitecture: amd64\n\n"
        "Package: linux-image-\nVersion: 2\nArchitecture: amd64\n\n"
        "Package: linux-kvm-tools\nVersion: 3\nArchitecture: amd64\n\n"
        "Package: docs\nVersion: 4\nDescription: how to install\n Package: linux-image-6.1.0-9-amd64\n"
        "Depends: xPackage: linux-aws\nArchitecture: all\n\n"
    )
    text = decoys + _stanza("linux-image-6.1.0-9-amd64", "6.1.9-1") + decoys + _stanza("linux-aws", "5")
    (tmp_path / "z_main_binary-amd64_Packages").write_text(text)
    [(_, kept)] = _kernel_lists(tmp_path)
    assert kept == packages_kernel(text.encode())
    assert [ln for ln in kept.splitlines() if ln.startswith("Package:")] == [
        "Package: linux-image-6.1.0-9-amd64", "Package: linux-aws"]
