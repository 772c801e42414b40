"""Lab: the dnf and rpm parsers of checks 04 and 07 on the output of a real dnf 4 and rpm.

Debian 12 ships dnf 4.14, rpm 4.18 (with rpmbuild) and createrepo_c. The lab builds empty stand-in rpms,
records the installed versions in an rpm database under an install root (``rpm --root R -i --justdb``),
serves newer ones from a ``file://`` repository made by createrepo_c with an ``updateinfo.xml`` (security
and bugfix advisories, RHSA-style ids) added by modifyrepo_c, caches its metadata once with
``dnf makecache``, then runs the gatherer's own ``dnf.updates`` command text through a ``dnf`` wrapper that
only adds ``--installroot R --releasever 9 --setopt=reposdir=R/etc/yum.repos.d --disablerepo=* --enablerepo=ID``
(``--cacheonly`` and the rest are the gatherer's). ``rpm -qa`` uses the gatherer's RPM_QF format.

``python -m tests.facts.updates.test_dnf_real`` rebuilds the lab in a temporary directory and rewrites the saved samples
in tests/samples/dnf/debian12-* (see tests/samples/dnf/README.md); test_dnf_samples.py reads those.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nectar_audit.evidence import script as gather_script
from nectar_audit.evidence.bundle import EvidenceError
from nectar_audit.facts.updates.packages import RPM_QF, parse_rpm_qa
from nectar_audit.facts.updates.pending import (
    DNF_KERNEL,
    DNF_SECURITY,
    NEEDS,
    parse_dnf_list,
    parse_dnf_metadata_age,
    parse_dnf_updateinfo,
    pending_updates,
    split_sections,
)
from nectar_audit.model import Status
from tests import SAMPLES
from tests.lab.require import require_binary, require_root
from tests.patching_helpers import NOW, NOW_TS, Host, messages

pytestmark = pytest.mark.lab

REPO_ID = "rhel-9-for-x86_64-baseos-rpms"  # a long RHEL-style id: it widens dnf's columns as on RHEL
RUNNING = "5.14.0-362.18.1.el9_3.x86_64"
METADATA_AGE = dt.timedelta(days=9)
SAMPLES = SAMPLES / "dnf"
# The gatherer's own with_timeout, which the fact modules' commands call.
_GATHER = (Path(gather_script.__file__).parent / "gather.sh").read_text()
_START = _GATHER.index("if command -v timeout")
WITH_TIMEOUT = _GATHER[_START:_GATHER.index("\nfi\n", _START) + 3]
# Rocky Linux 9's /etc/os-release (the fields the gatherer reads to know dnf manages the host).
RHEL9_OS_RELEASE = (
    'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
    'VERSION_ID="9.3"\nPLATFORM_ID="platform:el9"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n'
)
# RHEL/Rocky/Alma 9's /etc/dnf/dnf.conf (dnf-data); Debian's own sets skip_if_unavailable=True instead.
EL9_DNF_CONF = (
    "[main]\ngpgcheck=1\ninstallonly_limit=3\nclean_requirements_on_remove=True\nbest=True\n"
    "skip_if_unavailable=False\n"
)


@dataclass(frozen=True)
class Rpm:
    name: str
    version: str
    release: str
    arch: str = "x86_64"
    epoch: str = ""

    @property
    def file(self) -> str:
        return f"{self.name}-{self.version}-{self.release}.{self.arch}.rpm"


K_OLD, K_RUN, K_NEW = "362.13.1.el9_3", "362.18.1.el9_3", "362.24.1.el9_3"
RT = "kernel-rt-debug-modules-internal"  # long enough for dnf to wrap it on an 80-column terminal
INSTALLED = (
    Rpm("nectar-test-pkg", "1.0", "1.el9", "noarch"),
    Rpm("nectar-epoch-lib", "3.0.7", "24.el9", epoch="1"),
    Rpm("kernel-core", "5.14.0", K_OLD),  # installonly: two kernels side by side
    Rpm("kernel-core", "5.14.0", K_RUN),
    Rpm("kernel", "5.14.0", K_RUN),
    Rpm(RT, "5.14.0", K_RUN),
)
NEWER = (
    Rpm("nectar-test-pkg", "1.1", "1.el9", "noarch"),
    Rpm("nectar-epoch-lib", "3.0.7", "25.el9", epoch="1"),
    Rpm("kernel-core", "5.14.0", K_NEW),
    Rpm("kernel", "5.14.0", K_NEW),
    Rpm(RT, "5.14.0", K_NEW),
    Rpm("nectar-not-installed", "2.0", "1.el9", "noarch"),  # an advisory for it must not be listed
)


def _pkg_xml(p: Rpm) -> str:
    return (
        f'<package name="{p.name}" version="{p.version}" release="{p.release}" epoch="{p.epoch or 0}" '
        f'arch="{p.arch}" src="{p.name}-{p.version}-{p.release}.src.rpm"><filename>{p.file}</filename></package>'
    )


def _advisory(kind: str, ident: str, severity: str, issued: str, pkgs: tuple[Rpm, ...]) -> str:
    return (
        f'<update from="security@example.test" status="final" type="{kind}" version="2">'
        f"<id>{ident}</id><title>{severity}: {pkgs[0].name} update</title><severity>{severity}</severity>"
        f'<release>Nectar Test 9</release><issued date="{issued} 00:00:00"/>'
        f'<updated date="{issued} 00:00:00"/><description>Test advisory.</description>'
        f'<references><reference href="https://example.test/{ident}" id="{ident}" type="self"/></references>'
        f'<pkglist><collection short="nectar-9"><name>Nectar Test 9</name>{"".join(map(_pkg_xml, pkgs))}'
        "</collection></pkglist></update>"
    )


UPDATEINFO = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<updates>'
    + _advisory("security", "RHSA-2024:1193", "Important", "2024-03-07", NEWER[:2])
    + _advisory("security", "RHSA-2024:1249", "Important", "2024-03-12", NEWER[2:5])
    # Already applied (the installed kernel): not pending.
    + _advisory("security", "RHSA-2024:0407", "Moderate", "2024-01-25", INSTALLED[3:5])
    # Not a security advisory: not in --security.
    + _advisory("bugfix", "RHBA-2024:1300", "None", "2024-03-14", NEWER[:1])
    # For a package that is not installed: not listed.
    + _advisory("security", "RHSA-2024:1400", "Critical", "2024-03-20", NEWER[5:])
    + "</updates>\n"
)


@dataclass(frozen=True)
class DnfLab:
    top: Path
    root: Path  # install root: rpm database, cached metadata, dnf.conf, yum.repos.d
    env: dict[str, str]

    def shim(self, root: Path) -> Path:
        """A directory holding a ``dnf`` that runs the real dnf against ``root`` and nothing else."""
        d = root.parent / f"bin-{root.name}"
        d.mkdir(exist_ok=True)
        opts = (
            f"--installroot {root} --releasever 9 --setopt=reposdir={root}/etc/yum.repos.d "
            f"--disablerepo='*' --enablerepo={REPO_ID}"
        )
        (d / "dnf").write_text(f'#!/bin/sh\nexec /usr/bin/dnf {opts} "$@"\n')
        (d / "dnf").chmod(0o755)
        return d

    def gather(self, root: Path | None = None) -> tuple[str, int]:
        """The gatherer's ``dnf.updates`` command text, run with its with_timeout, against the lab's dnf."""
        with_timeout = WITH_TIMEOUT
        env = dict(self.env, PATH=f"{self.shim(root or self.root)}:{self.env['PATH']}")
        # The command runs only on hosts whose os-release says dnf manages them: show it RHEL 9's, in a
        # private mount namespace (this machine's own file is untouched).
        os_release = self.top / "os-release"
        os_release.write_text(RHEL9_OS_RELEASE)
        script = f"{with_timeout}\n{NEEDS.commands['dnf.updates']}"
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount --bind "$1" /etc/os-release && exec sh -c "$2"', "sh", str(os_release), script],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        return proc.stdout, proc.returncode

    def tty(self, command: str, cols: int = 80) -> str:
        """``command`` (a dnf one) on a pseudo-terminal ``cols`` wide, as dnf prints it to a person."""
        env = dict(self.env, PATH=f"{self.shim(self.root)}:{self.env['PATH']}", TERM="xterm")
        proc = subprocess.run(
            ["script", "-qec", f"stty cols {cols}; {command}", "/dev/null"],
            env=env, capture_output=True, text=True, timeout=120, check=True, stdin=subprocess.DEVNULL,
        )
        return proc.stdout

    def rpm_qa(self, root: Path | None = None) -> str:
        proc = self.run(["rpm", "--root", str(root or self.root), "-qa", "--qf", RPM_QF])
        return proc.stdout

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            pytest.fail(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc


def _spec(p: Rpm) -> str:
    epoch = f"Epoch: {p.epoch}\n" if p.epoch else ""
    return (
        f"Name: {p.name}\n{epoch}Version: {p.version}\nRelease: {p.release}\nSummary: nectar-audit stand-in\n"
        f"License: MIT\nBuildArch: {p.arch}\n%description\nAn empty stand-in package.\n%files\n"
    )


def _install_root(lab: DnfLab, root: Path, dnf_conf: str) -> None:
    """An rpm database holding INSTALLED, dnf.conf and the .repo file; no cached metadata."""
    (root / "etc/dnf").mkdir(parents=True)
    (root / "etc/dnf/dnf.conf").write_text(dnf_conf)
    (root / "etc/yum.repos.d").mkdir()
    (root / f"etc/yum.repos.d/{REPO_ID}.repo").write_text(
        f"[{REPO_ID}]\nname=nectar test BaseOS\nbaseurl=file://{lab.top}/repo\nenabled=1\ngpgcheck=0\n"
        "metadata_expire=never\n"
    )
    lab.run(["rpm", "--root", str(root), "--initdb"])
    rpms = [str(lab.top / "rpms" / p.file) for p in INSTALLED]
    lab.run(["rpm", "--root", str(root), "-i", "--nodeps", "--justdb", *rpms])


def build(top: Path) -> DnfLab:
    """Packages, repository, install root and cached metadata under ``top`` (about 3 s)."""
    home = top / "home"
    home.mkdir()
    # Debian's rpm keeps its database in ~/.rpmdb; the RHEL family's is /var/lib/rpm (inside the root).
    (home / ".rpmmacros").write_text("%_dbpath /var/lib/rpm\n")
    env = {"HOME": str(home), "LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    lab = DnfLab(top, top / "root", env)
    specs, rpms, repo = top / "SPECS", top / "rpms", top / "repo"
    for d in (specs, rpms, repo):
        d.mkdir()
    for p in (*INSTALLED, *NEWER):
        spec = specs / f"{p.name}-{p.version}-{p.release}.spec"
        spec.write_text(_spec(p))
        lab.run(["rpmbuild", "--quiet", "--define", f"_topdir {top}/rpmbuild", "-bb", str(spec)])
        shutil.copy(top / "rpmbuild/RPMS" / p.arch / p.file, rpms / p.file)
        shutil.copy(rpms / p.file, repo / p.file)  # a real repository keeps the old builds too
    lab.run(["createrepo_c", "-q", str(repo)])
    (top / "updateinfo.xml").write_text(UPDATEINFO)
    lab.run(["modifyrepo_c", "--mdtype=updateinfo", str(top / "updateinfo.xml"), str(repo / "repodata")])
    _install_root(lab, lab.root, EL9_DNF_CONF)
    lab.run([str(lab.shim(lab.root) / "dnf"), "-q", "makecache"])
    # Cached 9 days ago: dnf says "Last metadata expiration check: 9 days, 0:00:00 ago" (it prints
    # nothing when the age rounds to 0 s), which check 07 reports as stale metadata.
    when = time.time() - METADATA_AGE.total_seconds()
    for path in (lab.root / "var/cache/dnf").rglob("*"):
        os.utime(path, (when, when))
    return lab


@pytest.fixture(scope="module")
def dnf_lab(tmp_path_factory: pytest.TempPathFactory) -> DnfLab:
    require_root()  # dnf 4 keeps a non-root user's cache in /var/tmp, not in the install root
    for binary in ("rpm", "rpmbuild", "dnf", "createrepo_c", "modifyrepo_c", "script"):
        require_binary(binary)
    return build(tmp_path_factory.mktemp("dnf-lab"))


# -- expectations ------------------------------------------------------------------------------------

SECURITY = [  # (advisory, name, candidate, arch, severity)
    ("RHSA-2024:1249", "kernel", f"5.14.0-{K_NEW}", "x86_64", "Important"),
    ("RHSA-2024:1249", "kernel-core", f"5.14.0-{K_NEW}", "x86_64", "Important"),
    ("RHSA-2024:1249", RT, f"5.14.0-{K_NEW}", "x86_64", "Important"),
    ("RHSA-2024:1193", "nectar-epoch-lib", "1:3.0.7-25.el9", "x86_64", "Important"),
    ("RHSA-2024:1193", "nectar-test-pkg", "1.1-1.el9", "noarch", "Important"),
]
KERNELS = [  # (name, candidate, arch, repo)
    ("kernel", f"5.14.0-{K_NEW}", "x86_64", REPO_ID),
    ("kernel-core", f"5.14.0-{K_NEW}", "x86_64", REPO_ID),
    (RT, f"5.14.0-{K_NEW}", "x86_64", REPO_ID),
]
INSTALLED_PACKAGES = sorted(
    (p.name, f"{p.epoch + ':' if p.epoch else ''}{p.version}-{p.release}", p.arch) for p in INSTALLED
)


def security_rows(text: str) -> list[tuple[str | None, str, str | None, str, str | None]]:
    return sorted((u.advisory, u.name, u.candidate, u.arch, u.severity) for u in parse_dnf_updateinfo(text))


def kernel_rows(text: str) -> list[tuple[str, str | None, str, str | None]]:
    return sorted((u.name, u.candidate, u.arch, u.origin) for u in parse_dnf_list(text))


def pin_install_times(rpm_qa: str, when: int = NOW_TS - 30 * 86400) -> str:
    """rpm -qa output with every INSTALLTIME set to ``when`` (the lab installed them just now)."""
    return "".join(line.rsplit("\t", 1)[0] + f"\t{when}\n" for line in rpm_qa.splitlines())


def rpm_host(rpm_qa: str, record: str, rc: int = 0) -> Host:
    h = Host("rocky9", live=True, kernel=RUNNING, uptime=3600)
    h.stat("/var/lib/rpm/rpmdb.sqlite").command("packages.rpm", rpm_qa)
    return h.command("dnf.updates", record, rc)


# -- tests -------------------------------------------------------------------------------------------


def test_rpm_qa_real_output(dnf_lab: DnfLab) -> None:
    out = dnf_lab.rpm_qa()
    pkgs = parse_rpm_qa(out)
    assert sorted((p.name, p.version, p.arch) for p in pkgs) == INSTALLED_PACKAGES
    assert all(p.install_time is not None and p.install_time > 1_700_000_000 for p in pkgs)
    assert len(out.splitlines()) == len(INSTALLED)  # nothing the parser dropped


def test_dnf_updates_record_real_output(dnf_lab: DnfLab) -> None:
    stdout, rc = dnf_lab.gather()
    assert rc == 0, stdout
    sections = split_sections(stdout)
    sec_text, sec_rc = sections["security"]
    kern_text, kern_rc = sections["kernel"]
    assert sec_rc == 0 and kern_rc == 0, stdout
    assert security_rows(sec_text) == sorted(SECURITY)
    assert kernel_rows(kern_text) == sorted(KERNELS)
    # No advisory that is applied, bugfix-only or for a package not installed.
    for absent in ("RHSA-2024:0407", "RHBA-2024:1300", "RHSA-2024:1400", "nectar-not-installed"):
        assert absent not in stdout
    assert sec_text.startswith("Last metadata expiration check: 9 days, "), sec_text
    age = parse_dnf_metadata_age(sec_text)
    assert age is not None and METADATA_AGE <= age < METADATA_AGE + dt.timedelta(minutes=10), sec_text
    ups = rpm_host(dnf_lab.rpm_qa(), stdout).facts().get(pending_updates)
    assert ups.refreshed == dt.datetime.fromisoformat(NOW) - age


def test_checks_on_real_output(dnf_lab: DnfLab) -> None:
    stdout, rc = dnf_lab.gather()
    h = rpm_host(pin_install_times(dnf_lab.rpm_qa()), stdout, rc)
    r7 = h.check(7)
    assert r7.status is Status.FAIL, messages(r7)
    assert r7.summary == (
        f"5 security updates are not installed: kernel, kernel-core, {RT}, nectar-epoch-lib, nectar-test-pkg"
    )
    fail = next(f for f in r7.findings if f.status is Status.FAIL)
    # The installed version from the real rpm database, beside the one dnf would install.
    assert "nectar-epoch-lib 1:3.0.7-24.el9 → 1:3.0.7-25.el9 (RHSA-2024:1193)" in [e.detail for e in fail.evidence]
    assert ("warn", "the package metadata was last refreshed on 2026-11-22: security updates published since "
            "then are not seen") in messages(r7)
    r4 = h.check(4)
    assert r4.status is Status.FAIL, messages(r4)
    assert ("pass", f"the newest installed kernel is running: {RUNNING}") in messages(r4)
    assert r4.summary.startswith(f"a newer kernel is available: kernel 5.14.0-{K_RUN} → 5.14.0-{K_NEW}"), r4.summary


def test_dnf_list_on_a_terminal_wraps_and_is_still_read(dnf_lab: DnfLab) -> None:
    out = dnf_lab.tty(DNF_KERNEL)
    assert "\x1b[" in out and f"{RT}.x86_64\x1b" in out  # coloured, the long name alone on its line
    assert kernel_rows(out) == sorted(KERNELS)
    assert security_rows(dnf_lab.tty(DNF_SECURITY)) == sorted(SECURITY)


@pytest.mark.parametrize("skip", [False, True])
def test_no_cached_metadata_is_an_error(dnf_lab: DnfLab, tmp_path: Path, skip: bool) -> None:
    root = tmp_path / "root"
    _install_root(dnf_lab, root, EL9_DNF_CONF.replace("=False", "=True") if skip else EL9_DNF_CONF)
    stdout, rc = dnf_lab.gather(root)
    assert rc == 0
    text, sec_rc = split_sections(stdout)["security"]
    assert f"Cache-only enabled but no cache for '{REPO_ID}'" in text
    assert sec_rc == (0 if skip else 1)  # skip_if_unavailable=True: dnf exits 0 with an empty list
    h = rpm_host(pin_install_times(dnf_lab.rpm_qa(root)), stdout)
    with pytest.raises(EvidenceError, match="no cached metadata"):
        h.facts().get(pending_updates)
    r7 = h.check(7)
    assert any(f.status is Status.ERROR and "run `dnf makecache` first" in f.message for f in r7.findings)
    assert not any(f.status is Status.PASS and "security update" in f.message for f in r7.findings)


# -- regenerating the saved samples --------------------------------------------------------------------


def save_samples(lab: DnfLab, dest: Path = SAMPLES) -> list[Path]:
    written = []

    def put(name: str, text: str) -> None:
        (dest / name).write_text(text)
        written.append(dest / name)

    stdout, rc = lab.gather()
    assert rc == 0
    sections = split_sections(stdout)
    put("debian12-dnf4-updates-record.txt", stdout)
    put("debian12-dnf4-updateinfo-security.txt", sections["security"][0] + "\n")
    put("debian12-dnf4-list-upgrades-kernel.txt", sections["kernel"][0] + "\n")
    put("debian12-dnf4-list-upgrades-kernel-tty80.txt", lab.tty(DNF_KERNEL))
    put("debian12-rpm-qa.txt", lab.rpm_qa())
    for skip in (False, True):
        root = lab.top / f"nocache-{'skip' if skip else 'strict'}"
        _install_root(lab, root, EL9_DNF_CONF.replace("=False", "=True") if skip else EL9_DNF_CONF)
        put(f"debian12-dnf4-updates-record-nocache-{'skip' if skip else 'strict'}.txt", lab.gather(root)[0])
    put("debian12-updateinfo.xml", UPDATEINFO)
    return written


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="nectar-dnf-lab-") as tmp:
        lab = build(Path(tmp))
        for path in save_samples(lab):
            print(path)
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run as root: dnf 4 keeps a non-root user's cache outside the install root")
    sys.exit(main())


def test_dnf_is_not_asked_on_a_host_it_does_not_manage(dnf_lab: DnfLab) -> None:
    # This Debian machine has dnf installed (for these tests); the gatherer must not spend half a
    # second asking it about a system dpkg manages.

    with_timeout = WITH_TIMEOUT
    env = dict(dnf_lab.env, PATH=f"{dnf_lab.shim(dnf_lab.root)}:{dnf_lab.env['PATH']}")
    proc = subprocess.run(["sh", "-c", f"{with_timeout}\n{NEEDS.commands['dnf.updates']}"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout) == (127, "")


def test_rpm_is_not_listed_where_dpkg_manages_the_host(dnf_lab: DnfLab) -> None:
    # Same for rpm: this machine has rpm installed (and a ~/.rpmdb from these tests), but dpkg's
    # database is the one the facts read here.
    from nectar_audit.facts.updates.packages import NEEDS as PACKAGE_NEEDS

    assert Path("/var/lib/dpkg/status").stat().st_size > 0
    proc = subprocess.run(["sh", "-c", PACKAGE_NEEDS.commands["packages.rpm"]], env=dnf_lab.env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout) == (3, "")
