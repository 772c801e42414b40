"""Every renderer, fuzzed (hypothesis) with any string a host could put in a result: controls, escapes,
bidi overrides, lone surrogates (undecodable bytes of file names), markup of every format. Each
renders without an exception, as valid UTF-8, with nothing a terminal or viewer would act on; JSON
round-trips every string exactly, JUnit is well-formed XML and Prometheus parses."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from nectar_audit.cli import write_json
from nectar_audit.model import CheckResult, Evidence, Finding, HostResult, OsInfo, Status, Waiver
from nectar_audit.reports import fleet_summary, html, json_report, junit, markdown, prometheus, text

parser = pytest.importorskip("prometheus_client.parser")

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
# Any code point, lone surrogates included, weighted towards the dangerous ones.
_tokens = st.lists(st.one_of(
    st.characters(blacklist_categories=("Cs",)),
    st.sampled_from(["\x1b", "\x9b", "\x07", "\r", "\n", "\t", "\x00", "\x7f", "\u202e", "\u2066", "\ufeff",
                     "\udcff", "\udc80", "<", "&", "]]>", '"', "\\", "|", "`", "[bold]", "{", "}"])),
    max_size=30)
# A name's undecodable bytes are lone *low* surrogates (surrogateescape: U+DC80..U+DCFF); a high one as
# well could pair with the next in JSON, so the round-trip test uses only what a file name can hold.
names = _tokens.map("".join)
hostile = st.lists(_tokens | st.just(["\ud800"]), max_size=2).map(lambda parts: "".join(map("".join, parts)))
# What no output may carry raw (JSON escapes them; the others show them as \\x.., \\u....).
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@st.composite
def hosts(draw: st.DrawFn, hostile: st.SearchStrategy[str] = hostile) -> list[HostResult]:
    out = []
    for i in range(draw(st.integers(1, 3))):
        checks = []
        for num in range(1, draw(st.integers(0, 3)) + 1):
            findings = [Finding(draw(st.sampled_from(list(Status))), draw(hostile),
                                [Evidence(draw(hostile), draw(hostile))], draw(st.none() | hostile))
                        for _ in range(draw(st.integers(1, 2)))]
            waiver = draw(st.none() | st.builds(Waiver, hostile, st.none() | hostile))
            checks.append(CheckResult(f"Check-Security-{num:02d}", draw(hostile), "high", findings, draw(hostile),
                                      waiver))
        out.append(HostResult(
            target=f"t{i}:" + draw(hostile), hostname=draw(st.none() | hostile),
            os=OsInfo(draw(hostile), draw(hostile), draw(hostile)), error=draw(st.none() | hostile),
            started=draw(st.sampled_from(["2026-12-01T00:00:00+00:00", "", "bogus"])),
            duration_s=draw(st.floats(0, 1e6)), checks=checks))
    return out


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@FUZZ
@given(hosts(names))
def test_json_round_trips_every_string(results: list[HostResult]) -> None:
    whole = json_report.render(results)
    whole.encode("utf-8")
    streamed = io.StringIO()
    write_json(results, streamed)
    assert streamed.getvalue() == whole
    assert _strings(json.loads(whole)["hosts"]) == _strings([h.to_json() for h in results])


@FUZZ
@given(hosts())
def test_text_and_fleet_summary(results: list[HostResult]) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, highlight=False, emoji=False)
    text.render(results, console)
    fleet_summary.render(results, console)
    shown = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # rich's own colours
    shown.encode("utf-8")
    assert not UNSAFE.search(shown.replace("\n", ""))


@FUZZ
@given(hosts())
def test_markdown_html_junit_prometheus(results: list[HostResult]) -> None:
    for render in (markdown.render, html.render, junit.render, prometheus.render):
        doc = render(results)
        doc.encode("utf-8")
        assert not UNSAFE.search(doc.replace("\n", "").replace("\t", "")), render.__module__
    root = ET.fromstring(junit.render(results).encode("utf-8"))
    assert len(root.findall("testsuite")) == len(results)
    fams = {f.name: f for f in parser.text_string_to_metric_families(prometheus.render(results))}
    assert len(fams["nectar_audit_host_up"].samples) == len(results)


_json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), hostile,
    st.sampled_from(list(Status)),
)
_json_values = st.recursive(
    _json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(hostile, inner, max_size=4),
        # Keys json.dumps converts itself (the fast writer hands those documents back to it).
        st.dictionaries(st.one_of(st.integers(), st.booleans(), st.none(), st.floats()), inner, max_size=2),
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(_json_values, st.sampled_from([1, 2, 4]))
def test_indented_json_is_the_standard_librarys_byte_for_byte(value: object, indent: int) -> None:
    from nectar_audit.model import _SURROGATE, _escape_surrogate, dumps_json

    expected = _SURROGATE.sub(_escape_surrogate, json.dumps(value, indent=indent, ensure_ascii=False))
    assert dumps_json(value, indent) == expected


def test_indented_json_keeps_the_standard_librarys_errors() -> None:
    from nectar_audit.model import dumps_json

    with pytest.raises(TypeError):
        dumps_json({"a": [object()]})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        dumps_json(loop)
