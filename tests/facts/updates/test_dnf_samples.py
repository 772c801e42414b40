"""The dnf/rpm parsers and checks 04/07 on the saved output of a real dnf 4.14 and rpm 4.18.

The samples (tests/samples/dnf/debian12-*) were produced by ``python -m tests.facts.updates.test_dnf_real`` (see
tests/samples/dnf/README.md); test_dnf_real.py checks the same things against a live dnf.
"""

from __future__ import annotations

import datetime as dt

import pytest

from nectar_audit.evidence.bundle import EvidenceError
from nectar_audit.facts.updates.packages import parse_rpm_qa
from nectar_audit.facts.updates.pending import (
    parse_dnf_list,
    parse_dnf_metadata_age,
    pending_updates,
    split_sections,
)
from nectar_audit.model import Status
from tests.facts.updates.test_dnf_real import (
    INSTALLED_PACKAGES,
    K_NEW,
    K_RUN,
    KERNELS,
    REPO_ID,
    RT,
    RUNNING,
    SECURITY,
    kernel_rows,
    rpm_host,
    security_rows,
)
from tests.patching_helpers import messages, sample

RECORD = sample("dnf/debian12-dnf4-updates-record.txt")
RPM_QA = sample("dnf/debian12-rpm-qa.txt")


def test_rpm_qa_sample() -> None:
    pkgs = parse_rpm_qa(RPM_QA)
    assert sorted((p.name, p.version, p.arch) for p in pkgs) == INSTALLED_PACKAGES
    assert len(pkgs) == len(RPM_QA.splitlines())
    assert {p.install_time for p in pkgs} == {1795931756}


def test_updateinfo_sample() -> None:
    text = sample("dnf/debian12-dnf4-updateinfo-security.txt")
    assert text.startswith("Last metadata expiration check: 9 days, 0:00:00 ago on ")
    assert security_rows(text) == sorted(SECURITY)


def test_list_upgrades_samples_plain_and_terminal() -> None:
    assert kernel_rows(sample("dnf/debian12-dnf4-list-upgrades-kernel.txt")) == sorted(KERNELS)
    tty = sample("dnf/debian12-dnf4-list-upgrades-kernel-tty80.txt")
    assert f"\x1b[32m{RT}.x86_64\x1b(B\x1b[m\n" in tty  # the long name alone, the rest on the next line
    assert kernel_rows(tty) == sorted(KERNELS)
    assert kernel_rows(tty.replace("\n", "\r\n")) == sorted(KERNELS)  # as the pseudo-terminal sends it


def test_list_parser_does_not_glue_unrelated_lines() -> None:
    text = "Available Upgrades\nkernel.x86_64\n\nError: something\n   5.14.0-1.el9 baseos extra\n"
    assert parse_dnf_list(text) == []


@pytest.mark.parametrize(
    ("line", "age"),
    [
        ("Last metadata expiration check: 0:03:47 ago on Sun Nov 29 05:50:39 2026.", dt.timedelta(seconds=227)),
        ("Last metadata expiration check: 1 day, 2:00:05 ago on Sat Nov 28 03:50:34 2026.",
         dt.timedelta(days=1, hours=2, seconds=5)),
        (sample("dnf/debian12-dnf4-updateinfo-security.txt"), dt.timedelta(days=9)),
        ("RHSA-2024:1193 Important/Sec. nectar-test-pkg-1.1-1.el9.noarch", None),
    ],
)
def test_metadata_age(line: str, age: dt.timedelta | None) -> None:
    assert parse_dnf_metadata_age(line) == age


def test_record_sample_through_the_checks() -> None:
    sections = split_sections(RECORD)
    assert sections["security"][1] == 0 and sections["kernel"][1] == 0
    h = rpm_host(RPM_QA, RECORD)
    ups = h.facts().get(pending_updates)
    assert ups.refreshed == dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)
    assert [(u.name, u.candidate) for u in ups.kernel_updates] == [(n, c) for n, c, _, _ in KERNELS]
    assert {u.origin for u in ups.kernel_updates} == {REPO_ID}
    r7 = h.check(7)
    assert r7.status is Status.FAIL
    assert r7.summary == (
        f"5 security updates are not installed: kernel, kernel-core, {RT}, nectar-epoch-lib, nectar-test-pkg"
    )
    assert ("warn", "the package metadata was last refreshed on 2026-11-22: security updates published since "
            "then are not seen") in messages(r7)
    r4 = h.check(4)
    assert messages(r4) == [
        ("pass", f"the newest installed kernel is running: {RUNNING}"),
        ("fail", f"a newer kernel is available: kernel 5.14.0-{K_RUN} → 5.14.0-{K_NEW}; install it and reboot"),
    ]


@pytest.mark.parametrize("which", ["strict", "skip"])
def test_no_cache_samples_are_errors(which: str) -> None:
    record = sample(f"dnf/debian12-dnf4-updates-record-nocache-{which}.txt")
    h = rpm_host(RPM_QA, record)
    with pytest.raises(EvidenceError, match=r"no cached metadata.*run `dnf makecache` first"):
        h.facts().get(pending_updates)
    r7 = h.check(7)
    assert not any(f.status is Status.PASS for f in r7.findings), messages(r7)
    assert any(f.status is Status.ERROR and REPO_ID in f.message for f in r7.findings)


def test_partial_cache_keeps_what_was_found() -> None:
    # One repository skipped, another listing an advisory: the failure stands on what was found.
    sec = sample("dnf/debian12-dnf4-updates-record-nocache-skip.txt").split("#rc 0")[0]
    record = sec + "RHSA-2024:1193 Important/Sec. nectar-test-pkg-1.1-1.el9.noarch\n#rc 0\n#kernel\n#rc 1\n"
    r7 = rpm_host(RPM_QA, record).check(7)
    assert r7.status is Status.FAIL and r7.summary == "1 security update is not installed: nectar-test-pkg"
