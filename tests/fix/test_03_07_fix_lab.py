"""`nectar-audit fix` for checks 03 and 07 on a chroot Debian 12 host: apt itself decides.

03: automatic updates switched off (20auto-upgrades "0", the security origin cleared) are switched on by
a drop-in of ours; ``apt-config dump`` on the host shows the values apt uses, a fresh audit passes, a
second plan has nothing to do, undo puts /etc/apt back byte for byte, and a configuration apt cannot
parse makes the fix roll back with `error`. 07: a pending security update from a local security
archive (a file: repository whose Release says Debian-Security) is installed only when 07 is named, and
dpkg then holds the new version.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from nectar_audit.remedy import RUN_BASE
from tests import lab
from tests.fix import upd_lab

pytestmark = pytest.mark.lab

C03 = "Check-Security-03"
C07 = "Check-Security-07"
AUTO = "etc/apt/apt.conf.d/20auto-upgrades"
DROPIN = "/etc/apt/apt.conf.d/99nectar-audit"
STAMP = "var/lib/apt/periodic/upgrade-stamp"


def _fresh_stamp(root: Path) -> None:
    # A recent successful run: the check's freshness part is not what these tests are about.
    stamp = root / STAMP
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    now = time.time()
    os.utime(stamp, (now, now))


def _dump(host: lab.ChrootHost) -> list[str]:
    res = host.exec(["apt-config", "dump"], text=True, check=True)
    return str(res.stdout).splitlines()


def _off(root: Path) -> None:
    (root / AUTO).write_text('APT::Periodic::Update-Package-Lists "0";\nAPT::Periodic::Unattended-Upgrade "0";\n')
    # A later file that empties the origins: unattended-upgrades would upgrade nothing from security.
    (root / "etc/apt/apt.conf.d/60local-origins").write_text(
        "#clear Unattended-Upgrade::Origins-Pattern;\n"
        'Unattended-Upgrade::Origins-Pattern { "origin=Debian,codename=${distro_codename}-updates"; };\n')
    _fresh_stamp(root)


def test_03_switched_on_validated_idempotent_and_undone(lab_root: Path, tmp_path: Path) -> None:
    lab.require_netns()
    _off(lab_root)
    with lab.chroot_host(lab_root, hostname="fix03", workdir=tmp_path) as host:
        before = upd_lab.snapshot(host, "/etc/apt")
        assert 'APT::Periodic::Unattended-Upgrade "0";' in _dump(host)
        fix = upd_lab.plan(host, ["03"])
        assert fix.before is not None and fix.before.checks[0].status.value == "fail"
        r = upd_lab.remedy(fix, C03)
        assert r.applicable and not r.explicit and r.refused is None
        assert [c.path for c in r.changes] == [DROPIN]
        body = r.changes[0].after.splitlines()[1:]
        assert body == [
            'APT::Periodic::Update-Package-Lists "1";',
            'APT::Periodic::Unattended-Upgrade "1";',
            'Unattended-Upgrade::Origins-Pattern { '
            '"origin=Debian,codename=${distro_codename}-security,label=Debian-Security"; };',
        ]
        assert r.commands == ()  # the package is installed: nothing to install (the lab has no network)
        upd_lab.apply(fix, ["03"])
        assert [(o.check, o.status, o.after) for o in fix.outcomes] == [(C03, "applied", "pass")], fix.outcomes
        # apt's own view: the values it uses, and the security origin among unattended-upgrades' origins.
        dump = _dump(host)
        assert 'APT::Periodic::Update-Package-Lists "1";' in dump
        assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
        assert ('Unattended-Upgrade::Origins-Pattern:: '
                '"origin=Debian,codename=${distro_codename}-security,label=Debian-Security";') in dump
        # The user's files are untouched: only our drop-in is new.
        after = upd_lab.snapshot(host, "/etc/apt")
        assert {k for k in after if after.get(k) != before.get(k)} == {DROPIN}
        # Idempotent: the check passes, nothing is planned.
        again = upd_lab.plan(host, ["03"])
        assert again.remedies == [] and again.to_apply(set()) == []
        # Undo: /etc/apt as it was, byte for byte; apt is back to "0".
        records = upd_lab.undo(host, fix.run_id)
        assert (C03, "undone", "") in records
        assert upd_lab.snapshot(host, "/etc/apt") == before
        assert 'APT::Periodic::Unattended-Upgrade "0";' in _dump(host)


def test_03_configuration_apt_refuses_rolls_back(lab_root: Path, tmp_path: Path) -> None:
    lab.require_netns()
    _off(lab_root)
    with lab.chroot_host(lab_root, hostname="fix03err", workdir=tmp_path) as host:
        before = upd_lab.snapshot(host, "/etc/apt")
        fix = upd_lab.plan(host, ["03"])
        # After the audit someone leaves a file apt cannot parse (a missing semicolon and brace).
        broken = host.path("/etc/apt/apt.conf.d/70broken")
        broken.write_text('APT::Periodic { Verbose "1"\n')
        upd_lab.apply(fix, ["03"])
        [outcome] = fix.outcomes
        assert outcome.status == "error", outcome
        assert outcome.message.startswith("validation failed: apt-config dump >/dev/null: "), outcome.message
        assert "70broken" in outcome.message
        broken.unlink()
        assert upd_lab.snapshot(host, "/etc/apt") == before  # our drop-in was removed again


def test_03_file_read_after_ours_is_edited_in_place(lab_root: Path, tmp_path: Path) -> None:
    lab.require_netns()
    _fresh_stamp(lab_root)
    # apt.conf is read after every apt.conf.d file: a drop-in cannot override it, its line is replaced.
    (lab_root / "etc/apt/apt.conf").write_text('// local\nAPT::Periodic::Unattended-Upgrade "0";\n')
    with lab.chroot_host(lab_root, hostname="fix03main", workdir=tmp_path) as host:
        before = upd_lab.snapshot(host, "/etc/apt")
        fix = upd_lab.plan(host, ["03"])
        r = upd_lab.remedy(fix, C03)
        assert [(c.path, c.whole) for c in r.changes] == [("/etc/apt/apt.conf", False)]
        assert r.changes[0].after == ('// local\n// APT::Periodic::Unattended-Upgrade "0";  // replaced by '
                                      'nectar-audit\nAPT::Periodic::Unattended-Upgrade "1";\n')
        upd_lab.apply(fix, ["03"])
        assert [(o.status, o.after) for o in fix.outcomes] == [("applied", "pass")], fix.outcomes
        assert 'APT::Periodic::Unattended-Upgrade "1";' in _dump(host)
        assert upd_lab.plan(host, ["03"]).remedies == []
        upd_lab.undo(host, fix.run_id)
        assert upd_lab.snapshot(host, "/etc/apt") == before


# --------------------------------------------------------------------------------------------------
# 07: a pending security update from a local security archive
# --------------------------------------------------------------------------------------------------
PKG = "nectar-lab-demo"
REPO_DIR = "srv/security"
SUITE = "bookworm-security"


def _deb(workdir: Path, version: str) -> Path:
    """A tiny arch-all package built with the machine's dpkg-deb."""
    dpkg_deb = lab.require_binary("dpkg-deb")
    tree = workdir / f"{PKG}-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr/share/doc" / PKG).mkdir(parents=True)
    (tree / "usr/share/doc" / PKG / "VERSION").write_text(version + "\n")
    (tree / "DEBIAN/control").write_text(
        f"Package: {PKG}\nVersion: {version}\nArchitecture: all\nMaintainer: Lab <lab@example.test>\n"
        "Section: misc\nPriority: optional\nDescription: nectar-audit fix lab package\n")
    out = workdir / f"{PKG}_{version}_all.deb"
    lab.run([dpkg_deb, "--root-owner-group", "--build", str(tree), str(out)])
    return out


def _security_archive(root: Path, deb: Path) -> None:
    """A file: archive whose Release says Debian-Security (signed by nobody: [trusted=yes])."""
    base = root / REPO_DIR
    pool = base / "pool"
    pool.mkdir(parents=True)
    (pool / deb.name).write_bytes(deb.read_bytes())
    data = deb.read_bytes()
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    stanza = (info.rstrip("\n") + f"\nFilename: pool/{deb.name}\nSize: {len(data)}\n"
              f"SHA256: {hashlib.sha256(data).hexdigest()}\n\n")
    bindir = base / "dists" / SUITE / "main" / "binary-amd64"
    bindir.mkdir(parents=True)
    (bindir / "Packages").write_text(stanza)
    (bindir / "Packages.gz").write_bytes(gzip.compress(stanza.encode()))
    lines = []
    for rel in ("main/binary-amd64/Packages", "main/binary-amd64/Packages.gz"):
        blob = (base / "dists" / SUITE / rel).read_bytes()
        lines.append(f" {hashlib.sha256(blob).hexdigest()} {len(blob)} {rel}")
    (base / "dists" / SUITE / "Release").write_text(
        f"Origin: Debian\nLabel: Debian-Security\nSuite: {SUITE}\nCodename: {SUITE}\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\n"
        "Architectures: amd64\nComponents: main\nSHA256:\n" + "\n".join(lines) + "\n")
    (root / "etc/apt/sources.list.d/lab-security.list").write_text(
        f"deb [trusted=yes] file:/{REPO_DIR} {SUITE} main\n")


def _installed_version(host: lab.ChrootHost) -> str:
    res = host.exec(["dpkg-query", "-W", "-f=${Version}", PKG], text=True, check=True)
    return str(res.stdout)


def test_07_pending_security_update_installed_only_when_named(lab_root: Path, tmp_path: Path) -> None:
    lab.require_netns()
    old, new = _deb(tmp_path, "1.0-1"), _deb(tmp_path, "1.0-1+deb12u1")
    (lab_root / "tmp" / old.name).write_bytes(old.read_bytes())
    lab.run(["chroot", str(lab_root), "dpkg", "-i", f"/tmp/{old.name}"], env={**lab.HOST_ENV})
    _security_archive(lab_root, new)
    # Root's mail goes off the host (update notices are read): the mail part of 07 passes.
    with (lab_root / "etc/aliases").open("a") as f:
        f.write("root: admin@example.org\n")
    # apt reads only our archive (the others are unreachable) and keeps the other lists it has.
    lab.run(["chroot", str(lab_root), "apt-get", "update", "-o",
             "Dir::Etc::SourceList=/etc/apt/sources.list.d/lab-security.list", "-o", "Dir::Etc::SourceParts=-",
             "-o", "APT::Get::List-Cleanup=0"], env={**lab.HOST_ENV}, timeout=120)
    with lab.chroot_host(lab_root, hostname="fix07", workdir=tmp_path) as host:
        assert _installed_version(host) == "1.0-1"
        fix = upd_lab.plan(host, ["07"])
        assert fix.before is not None
        c07 = fix.before.checks[0]
        assert c07.status.value == "fail" and c07.summary == f"1 security update is not installed: {PKG}", c07
        r = upd_lab.remedy(fix, C07)
        assert r.explicit and r.applicable
        assert [s.sh for s in r.commands] == [
            "DEBIAN_FRONTEND=noninteractive apt-get install -y --only-upgrade -o Dpkg::Options::=--force-confdef "
            f"-o Dpkg::Options::=--force-confold {PKG}"]
        assert any("reboot" in n for n in r.notes)
        assert r.manual[0].startswith("subscribe a monitored address")
        # Not named: nothing is applied.
        upd_lab.apply(fix, ["07"], named=set())
        assert fix.outcomes == [] and fix.run_id is None
        assert _installed_version(host) == "1.0-1"
        # Named (--checks 07): dpkg now holds the security version, and the audit sees nothing pending.
        upd_lab.apply(fix, ["07"], named={C07})
        [outcome] = fix.outcomes
        assert outcome.status == "applied", outcome
        assert _installed_version(host) == "1.0-1+deb12u1"
        assert fix.after is not None
        after = fix.after.checks[0]
        # Subscribing to the announcements cannot be seen from the host: the best 07 can be is "manual".
        assert outcome.after == "manual", after.findings
        assert any(f.status.value == "pass" and f.message.startswith("no security update is pending")
                   for f in after.findings), after.findings
        again = upd_lab.plan(host, ["07"])
        assert all(not r.applicable for r in again.remedies)
        assert host.exec(["test", "-d", f"{RUN_BASE}/{fix.run_id}"]).returncode == 0
