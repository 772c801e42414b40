"""Prometheus textfile report, parsed by prometheus_client's own text-format parser."""

from __future__ import annotations

import datetime as dt

import pytest

from nectar_audit.model import HostResult, Status, visible
from nectar_audit.reports import prometheus
from tests.reports.samples import HOSTILE, check, sample_hosts

parser = pytest.importorskip("prometheus_client.parser")


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    result: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in parser.text_string_to_metric_families(text):
        assert fam.type == "gauge" and fam.documentation
        result[fam.name] = [(dict(s.labels), s.value) for s in fam.samples]
    return result


def test_one_hot_status_and_host_metrics() -> None:
    fams = _families(prometheus.render(sample_hosts()))
    status = fams["nectar_audit_check_status"]
    web2 = {lab["status"]: v for lab, v in status
            if lab["target"] == "ssh:web1" and lab["check"] == "Check-Security-02"}
    assert web2 == {"pass": 0, "fail": 1, "warn": 0, "manual": 0, "not_applicable": 0, "error": 0}
    assert {lab["hostname"] for lab, _ in status if lab["target"] == "ssh:web1"} == {"web1"}
    web6 = {lab["status"]: v for lab, v in status
            if lab["target"] == "ssh:web1" and lab["check"] == "Check-Security-06"}
    assert web6["error"] == 1 and sum(web6.values()) == 1
    assert len(status) == (7 + 2) * 6
    waived = {lab["check"]: v for lab, v in fams["nectar_audit_check_waived"] if lab["target"] == "ssh:web1"}
    assert waived["Check-Security-07"] == 1 and waived["Check-Security-02"] == 0
    ts = dict((lab["target"], v) for lab, v in fams["nectar_audit_last_run_timestamp_seconds"])
    assert ts["ssh:web1"] == dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    dur = dict((lab["target"], v) for lab, v in fams["nectar_audit_duration_seconds"])
    assert dur == {"ssh:web1": 0.25, "ssh:" + visible(HOSTILE): 1.5, "ssh:down": 5.0}
    up = {lab["target"]: (lab["hostname"], v) for lab, v in fams["nectar_audit_host_up"]}
    assert up["ssh:down"] == ("", 0) and up["ssh:web1"] == ("web1", 1)


def test_a_host_cannot_take_over_another_hosts_series() -> None:
    """Series are keyed by the operator's target: a host reporting another's hostname (or one whose
    hostname is that other host's target) adds its own series and leaves the other's alone."""
    honest = HostResult(target="db1", hostname="db1", checks=[check(1, Status.FAIL, "password login")])
    liar = HostResult(target="web9", hostname="db1", checks=[check(1, Status.PASS, "fine")])
    mimic = HostResult(target="web8", hostname="db1\"} 1\nnectar_audit_host_up{target=\"db1",
                       checks=[check(1, Status.PASS, "fine")])
    fams = _families(prometheus.render([honest, liar, mimic]))
    fail = {(lab["target"], lab["hostname"]): v for lab, v in fams["nectar_audit_check_status"]
            if lab["status"] == "fail"}
    assert fail[("db1", "db1")] == 1
    assert fail[("web9", "db1")] == 0
    assert len(fail) == 3
    assert sorted(lab["target"] for lab, _ in fams["nectar_audit_host_up"]) == ["db1", "web8", "web9"]


def test_label_escaping_round_trips() -> None:
    nasty = 'a\\b"c\nd'
    fams = _families(prometheus.render([HostResult(target=nasty, hostname=nasty, started="bogus")]))
    assert fams["nectar_audit_duration_seconds"][0][0] == {"target": nasty, "hostname": nasty}
    assert fams["nectar_audit_last_run_timestamp_seconds"] == []
    evil = [lab for lab, _ in _families(prometheus.render(sample_hosts()))["nectar_audit_check_status"]
            if lab["check"] == "Check-Security-08"]
    assert evil and evil[0]["hostname"] == visible(HOSTILE) and "\\x01" in evil[0]["hostname"]


def test_control_characters_and_undecodable_bytes_are_visible_in_labels() -> None:
    name = "h\x1b[2J\u202e" + b"k\xff".decode("utf-8", "surrogateescape")
    text = prometheus.render([HostResult(target=name, hostname=name)])
    text.encode("utf-8")  # no lone surrogate left
    assert "\x1b" not in text and "\u202e" not in text
    labels = _families(text)["nectar_audit_host_up"][0][0]
    assert labels["target"] == labels["hostname"] == "h\\x1b[2J\\u202ek\\xff"


def test_empty() -> None:
    assert _families(prometheus.render([]))["nectar_audit_check_status"] == []
