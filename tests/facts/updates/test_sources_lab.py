"""Lab: apt's configured sources as apt itself reads them, in the cached Debian root with its lists removed.

Ground truth: ``apt-get indextargets --no-release-info`` inside the root (chroot; no network, no lists
needed) prints every Packages index apt would fetch, per site, suite and architecture; the parser must
find exactly those, and refuse exactly what apt refuses. A Signed-By keyring that does not exist: ``apt-get
update`` of a local (file:) copy of the security archive's signed InRelease says whether apt verifies it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nectar_audit.config import Config
from nectar_audit.facts import Facts
from nectar_audit.facts import updates as updates_facts
from nectar_audit.facts.updates import AptSources, apt_sources
from nectar_audit.targets.rootfs import RootFsTarget
from tests import lab
from tests.patching_helpers import sample

pytestmark = pytest.mark.lab

INDEX_FORMAT = "$(SITE) $(RELEASE) $(COMPONENT) $(ARCHITECTURE)"


def _clean_lists(root: Path) -> None:
    """What an image build does: rm -rf /var/lib/apt/lists/*."""
    for p in (root / "var/lib/apt/lists").iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _apt_targets(root: Path) -> tuple[set[tuple[str, str, str, str]], str]:
    """(site, suite, component, architecture) of every binary Packages index apt would fetch, and apt's errors."""
    lab.require_binary("chroot")
    proc = subprocess.run(
        ["chroot", str(root), "apt-get", "indextargets", "--no-release-info", "--format", INDEX_FORMAT,
         "Identifier: Packages"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return set(), proc.stderr
    out = set()
    for line in proc.stdout.splitlines():
        site, suite, comp, arch = line.split()
        if arch != "all":
            out.add((site.rstrip("/"), suite, comp, arch))
    return out, ""


def _ours(root: Path) -> AptSources:
    bundle = RootFsTarget(str(root)).gather(updates_facts.NEEDS)
    return Facts(bundle, Config()).get(apt_sources)


def _parsed_targets(src: AptSources) -> set[tuple[str, str, str, str]]:
    return {
        (e.uri.rstrip("/"), e.suite, comp, arch)
        for e in src.entries
        if e.enabled and not e.commented and e.kind == "deb"
        for comp in e.components
        for arch in e.architectures(src.architectures)
    }


CASES = {
    "lab-root": ({"sources.list": sample("apt/sources/debian12-lab.list")}, True),
    "ubuntu-deb822": (
        {"sources.list": "", "sources.list.d/ubuntu.sources": sample("apt/sources/ubuntu2404-cloud.sources")},
        False,  # noble-security is not bookworm's
    ),
    "deb822-disabled-and-arch": (
        {
            "sources.list": "deb http://deb.debian.org/debian bookworm main # the main archive\n"
            "#deb http://deb.debian.org/debian-security bookworm-security main\n",
            "sources.list.d/debian.sources": "# security, switched off\n"
            "Types: deb deb-src\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"
            "Components: main\nEnabled: no\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            "Types: deb\nURIs: http://mirror.example/debian-security http://m2.example/ds\n"
            "Suites: bookworm-security\nComponents: main contrib\nArchitectures-Remove: amd64\n",
            "sources.list.d/old.list.save": "deb http://deb.debian.org/debian-security bookworm-security main\n",
        },
        False,
    ),
    "one-line-options": (
        {
            "sources.list": "deb [ arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] "
            "http://deb.debian.org/debian-security/ bookworm-security main\n"
            "deb [arch=arm64] http://deb.debian.org/debian bookworm-updates main\n",
        },
        True,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_configured_sources_match_apt(lab_root: Path, case: str) -> None:
    files, has_security = CASES[case]
    _clean_lists(lab_root)
    for rel, text in files.items():
        (lab_root / "etc/apt" / rel).write_text(text)
    truth, err = _apt_targets(lab_root)
    assert not err, err
    src = _ours(lab_root)
    assert not src.errors
    assert src.architectures[:1] == ("amd64",)
    assert _parsed_targets(src) == truth
    assert bool(src.security()) is has_security
    # check 07 on the same image: the sources decide, not the (removed) lists.
    from tests.lab.patching import scan_root

    check = scan_root(lab_root, "07")["Check-Security-07"]
    verdicts = [f for f in check["findings"] if "security archive" in f["message"]]
    assert [f["status"] for f in verdicts] == (["pass"] if has_security else ["fail"]), verdicts


def test_malformed_entry_is_refused_like_apt(lab_root: Path) -> None:
    _clean_lists(lab_root)
    (lab_root / "etc/apt/sources.list.d/broken.list").write_text("deb http://deb.example/debian\n")
    _, err = _apt_targets(lab_root)
    assert "Malformed entry 1 in list file /etc/apt/sources.list.d/broken.list" in err
    assert [e.split(" (")[0] for e in _ours(lab_root).errors] == [
        "Malformed entry 1 in list file /etc/apt/sources.list.d/broken.list"
    ]


@pytest.mark.parametrize("keyring", ["debian-archive-keyring.gpg", "missing.gpg"])
def test_signed_by_keyring_that_does_not_exist(lab_root: Path, keyring: str) -> None:
    lab.require_binary("chroot")
    # A local copy of the security archive's signed InRelease (from the root's own lists), served by file:.
    lists = lab_root / "var/lib/apt/lists"
    dists = lab_root / "srv/repo/dists/bookworm-security"
    dists.mkdir(parents=True)
    shutil.copy(lists / "deb.debian.org_debian-security_dists_bookworm-security_InRelease", dists / "InRelease")
    _clean_lists(lab_root)
    (lists / "partial").mkdir()
    (lab_root / "etc/apt/sources.list").write_text(
        f"deb http://deb.debian.org/debian bookworm main\n"
        f"deb [signed-by=/usr/share/keyrings/{keyring}] file:/srv/repo bookworm-security main\n"
    )
    proc = subprocess.run(
        ["chroot", str(lab_root), "apt-get", "-o", "Acquire::Check-Valid-Until=false", "-o",
         "Acquire::Languages=none", "update"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    refused = "The repository 'file:/srv/repo bookworm-security InRelease' is not signed." in proc.stderr
    from tests.lab.patching import scan_root

    check = scan_root(lab_root, "07")["Check-Security-07"]
    verdicts = [
        (f["status"], f["message"])
        for f in check["findings"]
        if f["message"].startswith(("apt's sources", "the security archive", "apt has no security archive"))
    ]
    if keyring == "missing.gpg":
        assert refused, proc.stderr  # apt: NO_PUBKEY, the source is dropped
        assert verdicts == [
            (
                "fail",
                "the security archive file:/srv/repo bookworm-security is signed by "
                "/usr/share/keyrings/missing.gpg, which does not exist: apt cannot verify it and refuses its "
                "updates",
            )
        ]
    else:
        assert not refused and "NO_PUBKEY" not in proc.stderr, proc.stderr  # the signature verified
        assert verdicts == [
            (
                "pass",
                "apt's sources include the security archive: file:/srv/repo bookworm-security "
                "(/etc/apt/sources.list:2)",
            )
        ]
