"""JUnit report: valid against the common Jenkins/Ant JUnit schema (tests/samples/junit/junit.xsd)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from nectar_audit.model import HostResult
from nectar_audit.reports import junit
from tests import SAMPLES
from tests.reports.samples import HOSTILE, sample_hosts

xmlschema = pytest.importorskip("xmlschema")

XSD = SAMPLES / "junit" / "junit.xsd"


def _validate(text: str) -> ET.Element:
    schema = xmlschema.XMLSchema(str(XSD))
    schema.validate(text)
    return ET.fromstring(text.encode("utf-8"))


def test_suite_per_host_and_case_per_check_validates() -> None:
    root = _validate(junit.render(sample_hosts()))
    suites = root.findall("testsuite")
    assert suites[0].get("name") == "web1"
    assert len(suites) == 3
    web = suites[0]
    cases = {c.get("name", "").split()[0]: c for c in web.findall("testcase")}
    assert len(cases) == 7
    assert cases["Check-Security-01"].find("failure") is None
    failure = cases["Check-Security-02"].find("failure")
    assert failure is not None and "PasswordAuthentication yes" in (failure.get("message") or "")
    assert "sed -i" in (failure.text or "")
    assert cases["Check-Security-05"].find("skipped") is not None
    error = cases["Check-Security-06"].find("error")
    assert error is not None and error.get("message") == "needs root to read /etc/shadow"
    waived = cases["Check-Security-07"]
    assert waived.find("failure") is None and "legacy app" in (waived.findtext("system-out") or "")
    assert "warn: NTP" in (cases["Check-Security-03"].findtext("system-out") or "")
    assert (web.get("tests"), web.get("failures"), web.get("errors"), web.get("skipped")) == ("7", "1", "1", "1")
    assert web.get("timestamp") == "2026-11-28T12:00:00"
    assert root.get("tests") == "10" and root.get("failures") == "2" and root.get("errors") == "2"


def test_host_error_is_an_error_testcase() -> None:
    root = _validate(junit.render(sample_hosts()))
    down = root.findall("testsuite")[2]
    assert down.get("name") == "ssh:down" and down.get("errors") == "1"
    (case,) = down.findall("testcase")
    error = case.find("error")
    assert error is not None and "Connection refused" in (error.get("message") or "")


def test_hostile_strings_stay_text() -> None:
    text = junit.render(sample_hosts())
    assert "<script>" not in text and "</style>" not in text
    root = _validate(text)
    evil = root.findall("testsuite")[1]
    # Round-trips as data (control characters as visible escapes: XML 1.0 cannot carry them).
    assert evil.get("name") == HOSTILE.replace("\x01", "\\x01")
    failure = evil.find("testcase/failure")
    assert failure is not None and failure.get("message") == HOSTILE.replace("\x01", "\\x01")


def test_empty_and_bare_hosts() -> None:
    _validate(junit.render([]))
    root = _validate(junit.render([HostResult(target="")]))
    assert root.find("testsuite") is not None and root.find("testsuite").get("name") == "unknown"  # type: ignore[union-attr]


def test_schema_rejects_a_malformed_report() -> None:
    schema = xmlschema.XMLSchema(str(XSD))
    assert not schema.is_valid('<testsuites><testsuite name="x"><testcase name="a"/></testsuite></testsuites>')
