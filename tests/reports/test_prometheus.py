"""Prometheus textfile report, parsed by prometheus_client's own text-format parser."""

from __future__ import annotations

import datetime as dt

import pytest

from nectar_audit.model import HostResult
from nectar_audit.reports import prometheus
from tests.reports.samples import HOSTILE, sample_hosts

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
    web2 = {lab["status"]: v for lab, v in status if lab["host"] == "web1" and lab["check"] == "Check-Security-02"}
    assert web2 == {"pass": 0, "fail": 1, "warn": 0, "manual": 0, "not_applicable": 0, "error": 0}
    web6 = {lab["status"]: v for lab, v in status if lab["host"] == "web1" and lab["check"] == "Check-Security-06"}
    assert web6["error"] == 1 and sum(web6.values()) == 1
    assert len(status) == (7 + 2) * 6
    waived = {lab["check"]: v for lab, v in fams["nectar_audit_check_waived"] if lab["host"] == "web1"}
    assert waived["Check-Security-07"] == 1 and waived["Check-Security-02"] == 0
    ts = dict((lab["host"], v) for lab, v in fams["nectar_audit_last_run_timestamp_seconds"])
    assert ts["web1"] == dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    dur = dict((lab["host"], v) for lab, v in fams["nectar_audit_duration_seconds"])
    assert dur == {"web1": 0.25, HOSTILE: 1.5, "ssh:down": 5.0}
    up = dict((lab["host"], v) for lab, v in fams["nectar_audit_host_up"])
    assert up["ssh:down"] == 0 and up["web1"] == 1


def test_label_escaping_round_trips() -> None:
    nasty = 'a\\b"c\nd'
    fams = _families(prometheus.render([HostResult(target="t", hostname=nasty, started="bogus")]))
    assert fams["nectar_audit_duration_seconds"][0][0]["host"] == nasty
    assert fams["nectar_audit_last_run_timestamp_seconds"] == []
    evil = [lab for lab, _ in _families(prometheus.render(sample_hosts()))["nectar_audit_check_status"]
            if lab["check"] == "Check-Security-08"]
    assert evil and evil[0]["host"] == HOSTILE


def test_empty() -> None:
    assert _families(prometheus.render([]))["nectar_audit_check_status"] == []
