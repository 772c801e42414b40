"""dpkg and rpm version ordering, checked against the real tools on generated pairs."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.facts.updates.versions import (
    VersionError,
    dpkg_compare,
    newest,
    parse_deb_version,
    parse_evr,
    rpm_compare,
    rpmvercmp,
)

# -- dpkg: known cases (dpkg's own t/version test-suite and Debian policy examples) ---------------

DPKG_CASES = [
    ("1.0", "1.0", 0),
    ("1.0", "1.0-0", 0),
    ("0:1.0", "1.0", 0),
    ("1:0.1", "2.0", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0+b1", -1),
    ("1.0a", "1.0", 1),
    ("1.0a", "1.0+", -1),
    ("1.0.", "1.0", 1),
    ("1.01", "1.1", 0),
    ("1.002", "1.10", -1),
    ("2.36-9+deb12u3", "2.36-9+deb12u4", -1),
    ("6.1.76-1", "6.1.69-1", 1),
    ("3.0.11-1~deb12u2", "3.0.11-1", -1),
    ("1:2.38.1-5+deb12u1", "2.40-1", 1),
    ("5.15.0-91.101", "5.15.0-101.111", -1),
    ("7.6.q-31", "7.6.q-31ubuntu1", -1),
    ("1.2.3-1ubuntu0.22.04.1", "1.2.3-1ubuntu0.22.04.2", -1),
]


@pytest.mark.parametrize(("a", "b", "want"), DPKG_CASES)
def test_dpkg_known_cases(a: str, b: str, want: int) -> None:
    assert dpkg_compare(a, b) == want
    assert dpkg_compare(b, a) == -want


@pytest.mark.parametrize("bad", ["", " ", "a:1.0", ":1.0", "1:", "1.0-", "1 0"])
def test_dpkg_rejects_invalid(bad: str) -> None:
    with pytest.raises(VersionError):
        parse_deb_version(bad)


def test_dpkg_parse_splits_on_last_dash() -> None:
    v = parse_deb_version("2:1.2-3-4")
    assert (v.epoch, v.upstream, v.revision) == (2, "1.2-3", "4")
    assert str(v) == "2:1.2-3-4"


_UP = "0123456789abzAZ.+~"
_REV = "0123456789abzAZ.+~"
deb_versions = st.builds(
    lambda epoch, first, rest, rev: (
        (f"{epoch}:" if epoch is not None else "") + first + rest + (f"-{rev}" if rev else "")
    ),
    st.one_of(st.none(), st.integers(0, 3)),
    st.sampled_from("0123456789"),
    st.text(_UP, max_size=8),
    st.one_of(st.none(), st.text(_REV, min_size=1, max_size=6)),
)


def _dpkg_batch(pairs: list[tuple[str, str]]) -> list[int]:
    """Ask the real dpkg about many pairs in one shell process."""
    lines = []
    for a, b in pairs:
        qa, qb = shlex.quote(a), shlex.quote(b)
        lines.append(
            f"if dpkg --compare-versions {qa} lt {qb}; then echo -1; "
            f"elif dpkg --compare-versions {qa} eq {qb}; then echo 0; else echo 1; fi"
        )
    out = subprocess.run(
        ["sh", "-c", "\n".join(lines)], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    return [int(x) for x in out]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(deb_versions, deb_versions), min_size=40, max_size=40))
def test_dpkg_ordering_matches_real_dpkg(pairs: list[tuple[str, str]]) -> None:
    # Near-equal pairs are the interesting ones: add each version against a small edit of itself.
    pairs = (
        pairs + [(a, a + "~") for a, _ in pairs[:10]] + [(a, a.replace(".", "", 1)) for a, _ in pairs[:10]]
    )
    pairs = [(a, b) for a, b in pairs if _valid_deb(a) and _valid_deb(b)]
    assert [dpkg_compare(a, b) for a, b in pairs] == _dpkg_batch(pairs)


def _valid_deb(v: str) -> bool:
    try:
        parse_deb_version(v)
    except VersionError:
        return False
    return v.split(":")[-1][:1].isdigit()


# -- rpm: rpm's own test-suite cases (tests/rpmvercmp.at) -----------------------------------------

RPMVERCMP_CASES = [
    ("1.0", "1.0", 0),
    ("1.0", "2.0", -1),
    ("2.0", "1.0", 1),
    ("2.0.1", "2.0.1", 0),
    ("2.0", "2.0.1", -1),
    ("2.0.1", "2.0", 1),
    ("2.0.1a", "2.0.1a", 0),
    ("2.0.1a", "2.0.1", 1),
    ("2.0.1", "2.0.1a", -1),
    ("5.5p1", "5.5p1", 0),
    ("5.5p1", "5.5p2", -1),
    ("5.5p2", "5.5p1", 1),
    ("5.5p10", "5.5p10", 0),
    ("5.5p1", "5.5p10", -1),
    ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1),
    ("10.1xyz", "10xyz", 1),
    ("xyz10", "xyz10", 0),
    ("xyz10", "xyz10.1", -1),
    ("xyz10.1", "xyz10", 1),
    ("xyz.4", "xyz.4", 0),
    ("xyz.4", "8", -1),
    ("8", "xyz.4", 1),
    ("xyz.4", "2", -1),
    ("2", "xyz.4", 1),
    ("5.5p2", "5.6p1", -1),
    ("5.6p1", "5.5p2", 1),
    ("5.6p1", "6.5p1", -1),
    ("6.5p1", "5.6p1", 1),
    ("6.0.rc1", "6.0", 1),
    ("6.0", "6.0.rc1", -1),
    ("10b2", "10a1", 1),
    ("10a2", "10b2", -1),
    ("1.0aa", "1.0aa", 0),
    ("1.0a", "1.0aa", -1),
    ("1.0aa", "1.0a", 1),
    ("10.0001", "10.0001", 0),
    ("10.0001", "10.1", 0),
    ("10.1", "10.0001", 0),
    ("10.0001", "10.0039", -1),
    ("10.0039", "10.0001", 1),
    ("4.999.9", "5.0", -1),
    ("5.0", "4.999.9", 1),
    ("20101121", "20101121", 0),
    ("20101121", "20101122", -1),
    ("20101122", "20101121", 1),
    ("2_0", "2_0", 0),
    ("2.0", "2_0", 0),
    ("2_0", "2.0", 0),
    ("a", "a", 0),
    ("a+", "a+", 0),
    ("a+", "a_", 0),
    ("a_", "a+", 0),
    ("+a", "+a", 0),
    ("+a", "_a", 0),
    ("_a", "+a", 0),
    ("+_", "+_", 0),
    ("_+", "+_", 0),
    ("_+", "_+", 0),
    ("+", "_", 0),
    ("_", "+", 0),
    ("1.0~rc1", "1.0~rc1", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc2", "1.0~rc1", 1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0),
    ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0~rc1", "1.0~rc1~git123", 1),
    ("1.0^", "1.0^", 0),
    ("1.0^", "1.0", 1),
    ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0^git1", 0),
    ("1.0^git1", "1.0", 1),
    ("1.0", "1.0^git1", -1),
    ("1.0^git1", "1.0^git2", -1),
    ("1.0^git2", "1.0^git1", 1),
    ("1.0^git1", "1.01", -1),
    ("1.01", "1.0^git1", 1),
    ("1.0^20160101", "1.0^20160101", 0),
    ("1.0^20160101", "1.0.1", -1),
    ("1.0.1", "1.0^20160101", 1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0),
    ("1.0^20160102", "1.0^20160101^git1", 1),
    ("1.0^20160101^git1", "1.0^20160102", -1),
    ("1.0~rc1^git1", "1.0~rc1^git1", 0),
    ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc1^git1", -1),
    ("1.0^git1~pre", "1.0^git1~pre", 0),
    ("1.0^git1", "1.0^git1~pre", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
]


@pytest.mark.parametrize(("a", "b", "want"), RPMVERCMP_CASES)
def test_rpmvercmp_known_cases(a: str, b: str, want: int) -> None:
    assert rpmvercmp(a, b) == want


def test_rpm_evr() -> None:
    assert rpm_compare("1:1.0-1", "2.0-1") == 1
    assert rpm_compare("5.14.0-362.8.1.el9_3", "5.14.0-362.24.1.el9_3") == -1
    assert rpm_compare("0:1.0-1", "1.0-1") == 0
    assert rpm_compare("1.0", "1.0-1") == -1  # a missing release sorts first (rpmverCmp)
    evr = parse_evr("1:3.0.7-25.el9_3")
    assert (evr.epoch, evr.version, evr.release) == ("1", "3.0.7", "25.el9_3")
    assert parse_evr(":1.0").epoch == "0"


_RPM_CHARS = "0123456789abzAZ.+_~^"
rpm_parts = st.text(_RPM_CHARS, min_size=1, max_size=8)
rpm_evrs = st.builds(
    lambda e, v, r: (f"{e}:" if e is not None else "") + v + (f"-{r}" if r is not None else ""),
    st.one_of(st.none(), st.integers(0, 3)),
    rpm_parts,
    st.one_of(st.none(), rpm_parts),
)


def _rpm_batch(pairs: list[tuple[str, str]]) -> list[int]:
    """rpm's own rpm.vercmp (rpmverCmp) for many pairs in one rpm process, through its Lua."""

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    body = " ".join(f"t[#t+1]=tostring(rpm.vercmp({q(a)},{q(b)}))" for a, b in pairs)
    lua = "%{lua: local t={} " + body + " print(table.concat(t, ' '))}"
    out = subprocess.run(["rpm", "--eval", lua], capture_output=True, text=True, timeout=60, check=True)
    return [int(x) for x in out.stdout.split()]


@pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm is not installed (apt-get install rpm)")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(rpm_evrs, rpm_evrs), min_size=60, max_size=60))
def test_rpm_ordering_matches_real_rpm(pairs: list[tuple[str, str]]) -> None:
    pairs = pairs + [(a, a + "^") for a, _ in pairs[:10]] + [(a, a + "~1") for a, _ in pairs[:10]]
    # A leading ':' or '-' makes rpm's parser see an empty field, which rpm.vercmp rejects.
    pairs = [(a, b) for a, b in pairs if _rpm_ok(a) and _rpm_ok(b)]
    assert [rpm_compare(a, b) for a, b in pairs] == _rpm_batch(pairs)


def _rpm_ok(v: str) -> bool:
    evr = parse_evr(v)
    return bool(evr.version)


@pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm is not installed (apt-get install rpm)")
def test_rpm_segment_cases_match_real_rpm() -> None:
    pairs = [(a, b) for a, b, _ in RPMVERCMP_CASES]
    assert _rpm_batch(pairs) == [want for _, _, want in RPMVERCMP_CASES]


def test_newest() -> None:
    assert newest(["6.1.69-1", "6.1.76-1", "6.1.76-1~bpo"], "dpkg") == "6.1.76-1"
    assert newest(["5.14.0-70.el9", "5.14.0-362.el9", "junk version"], "rpm") == "5.14.0-362.el9"
    assert newest(["", "a:b"], "dpkg") is None
    assert newest([], "rpm") is None


@given(st.text(max_size=30), st.text(max_size=30))
def test_never_crashes(a: str, b: str) -> None:
    assert rpmvercmp(a, b) in (-1, 0, 1)
    assert rpm_compare(a, b) in (-1, 0, 1)
    with contextlib.suppress(VersionError):
        assert dpkg_compare(a, b) in (-1, 0, 1)
