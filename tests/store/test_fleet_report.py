"""The fleet view from the store: latest run per host, stale hosts, identity across renames and clones,
every report format (HTML in real Chromium), fleet diff --since, retention."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from nectar_audit.cli import main
from nectar_audit.model import Status
from nectar_audit.store import admin, history
from nectar_audit.store.fleet import latest_hosts
from tests.lab.browser import CHROMIUM, require_browser
from tests.store.conftest import Postgres
from tests.store.samples import HOSTILE, vm

NOW = dt.datetime.now(dt.timezone.utc)


def _sql(url: str, statement: str, **params: object) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)
    engine.dispose()


def _age(url: str, hostname: str, days: float) -> None:
    """As if this host's runs had been made and stored ``days`` ago (the administrator's UPDATE)."""
    when = NOW - dt.timedelta(days=days)
    _sql(url, "UPDATE run_hosts SET stored = :w, started = :w WHERE hostname = :h", w=when, h=hostname)
    _sql(url, "UPDATE runs SET stored = :w, created = :w WHERE id IN "
              "(SELECT run_id FROM run_hosts WHERE hostname = :h)", w=when, h=hostname)


@pytest.fixture()
def fleet(postgres: Postgres, pg_url: str, tmp_path: Path) -> dict[str, str]:
    """A store with a fresh passing host, a fresh failing one, a stale one, one that could not be audited
    and a hostile one, written by the writer role; URLs of the administrator, writer and reader."""
    admin.init(pg_url, writer="vm_writer", reader="audit_reader")
    db = sa.engine.make_url(pg_url).database or ""
    urls = {"admin": pg_url, "writer": postgres.url(db, "vm_writer"), "reader": postgres.url(db, "audit_reader")}
    w = urls["writer"]
    history.save_run(w, [vm("stale1", {1: Status.PASS, 2: Status.FAIL})], "t")
    _age(pg_url, "stale1", 5)
    history.save_run(w, [vm("web1", {1: Status.PASS, 2: Status.FAIL})], "t")
    history.save_run(w, [vm("web1", {1: Status.PASS, 2: Status.PASS})], "t")  # fixed since
    history.save_run(w, [vm("db1", {1: Status.FAIL, 2: Status.PASS})], "t")
    history.save_run(w, [vm("broken", error="connection refused")], "t")
    evil = vm("evil", {8: Status.FAIL}, hostname=HOSTILE)
    history.save_run(w, [evil], "t")
    return urls


def test_latest_run_of_every_host_with_stale_ones_flagged(fleet: dict[str, str]) -> None:
    by_name = {h.hostname: h for h in latest_hosts(fleet["reader"], stale_after=dt.timedelta(days=2))}
    assert sorted(by_name) == sorted(["broken", "db1", HOSTILE, "stale1", "web1"])
    web1 = by_name["web1"]
    assert web1.error is None and not web1.failing and web1.extra["store"]["run"] == 3
    assert by_name["db1"].failing and by_name["db1"].extra["store"]["stale"] is False
    stale = by_name["stale1"]
    assert stale.extra["store"]["stale"] is True
    assert stale.error is not None and stale.error.startswith("stale: no audit stored since ")
    assert "--stale-after 2d" in stale.error and "5.0 days ago" in stale.error
    assert [c.status for c in stale.checks] == [Status.PASS, Status.FAIL]  # the last results stay
    assert by_name["broken"].error == "connection refused"
    assert [h.hostname for h in latest_hosts(fleet["reader"], ["web*", "db?"])] == ["db1", "web1"]
    assert latest_hosts(fleet["reader"], ["nomatch*"]) == []
    assert not any(h.error and h.error.startswith("stale") for h in latest_hosts(fleet["reader"]))  # no --stale-after


def test_report_json_is_scans_json(postgres: Postgres, fleet: dict[str, str], tmp_path: Path) -> None:
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("image1\n")
    (root / "etc/machine-id").write_text("00112233445566778899aabbccddeeff\n")
    runner = CliRunner()
    scanned = runner.invoke(main, ["scan", f"root:{root}", "--store", fleet["writer"], "--format", "json",
                                   "-o", str(tmp_path / "scan.json"), "--save-evidence", str(tmp_path / "ev.json")])
    assert scanned.exit_code in (0, 1), scanned.output
    scan = json.loads((tmp_path / "scan.json").read_text())
    # the machine id itself is kept nowhere (machine-id(5): confidential), only an id derived from it
    assert "0011223344" not in json.dumps(scan) + (tmp_path / "ev.json").read_text()
    assert len(scan["hosts"][0]["identity"]["machine_id"]) == 32
    result = runner.invoke(main, ["report", "--store", fleet["reader"], "--format", "json", "--stale-after", "2d"])
    assert result.exit_code == 2, result.output  # hosts that are stale or could not be audited
    report = json.loads(result.stdout)
    assert set(report) == set(scan) and report["schema_version"] == scan["schema_version"]
    [host] = [h for h in report["hosts"] if h["hostname"] == "image1"]
    store = host.pop("store")
    assert host == scan["hosts"][0]  # the host object exactly as scan wrote it
    assert store["stale"] is False and store["host_key"].startswith("machine:")
    for other in report["hosts"]:
        assert set(other) == set(scan["hosts"][0]) | ({"store"} if other is not host else set())


def test_report_formats(fleet: dict[str, str], tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    runner = CliRunner()
    args = ["report", "--store", fleet["reader"], "--stale-after", "2d"]
    prom = runner.invoke(main, [*args, "--format", "prometheus"])
    up = {s.labels["target"]: s.value for f in text_string_to_metric_families(prom.stdout)
          for s in f.samples if s.name == "nectar_audit_host_up"}
    # Series are keyed by a unique name per host; control characters in it are shown, never sent raw.
    assert up == {"web1": 1, "db1": 1, "stale1": 0, "broken": 0, HOSTILE.replace("\x01", "\\x01"): 1}
    junit = ET.fromstring(runner.invoke(main, [*args, "--format", "junit"]).stdout)
    assert {s.get("name") for s in junit.iter("testsuite")} >= {"web1", "db1", "stale1"}
    markdown = runner.invoke(main, [*args, "--format", "markdown"]).stdout
    assert "stale: no audit stored since" in markdown and "<script>" not in markdown
    text = runner.invoke(main, [*args, "--host", "stale*", "--host", "web1"])
    assert "stale: no audit stored since" in text.stdout and "db1" not in text.stdout
    fresh = runner.invoke(main, [*args, "--host", "web1"])
    assert fresh.exit_code == 0, fresh.output
    failing = runner.invoke(main, [*args, "--host", "db1"])
    assert failing.exit_code == 1
    empty = runner.invoke(main, [*args, "--host", "nothing"])
    assert empty.exit_code == 0 and "no host in the store matches nothing" in empty.output
    bad = runner.invoke(main, [*args, "--stale-after", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output


def test_report_html_in_headless_chromium(fleet: dict[str, str], tmp_path: Path) -> None:
    sync_api = require_browser()
    page_file = tmp_path / "fleet.html"
    result = CliRunner().invoke(main, ["report", "--store", fleet["reader"], "--format", "html", "-o",
                                       str(page_file)])
    assert result.exit_code == 2, result.output
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    messages: list[str] = []
    errors: list[str] = []
    try:
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, timeout=60_000,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--no-first-run"])
            try:
                page = context.new_page()
                page.on("console", lambda msg: messages.append(f"{msg.type}: {msg.text}"))
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("dialog", lambda dialog: (errors.append("dialog: " + dialog.message), dialog.dismiss()))
                page.goto(page_file.as_uri(), timeout=30_000)
                assert page.evaluate("typeof window.__pwned") == "undefined"
                assert page.locator("#matrix tbody tr").count() == 5
                stale = page.locator("section.host", has_text="stale1")
                assert "Host could not be audited: stale: no audit stored since" in stale.inner_text()
                assert stale.locator("article.check").count() == 2  # its last results, shown below
                page.uncheck("input.f-status[value=pass]")
                assert page.locator("article.check:not(.hidden)[data-status=pass]").count() == 0
                page.screenshot(path=str(tmp_path / "fleet.png"), full_page=True)
                assert (tmp_path / "fleet.png").stat().st_size > 1000
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    bad = [m for m in messages if m.startswith(("error", "warning"))]
    assert not bad and not errors, (bad, errors)


def test_identity_survives_renames_and_tells_clones_apart(fleet: dict[str, str]) -> None:
    w = fleet["writer"]
    history.save_run(w, [vm("twin-a", hostname="ubuntu")], "t")
    history.save_run(w, [vm("twin-b", hostname="ubuntu")], "t")  # same hostname, another machine
    history.save_run(w, [vm("db1", hostname="db1-renamed")], "t")  # same machine, new name
    # a VM cloned from a snapshot: the same machine-id, another OpenStack instance
    history.save_run(w, [vm("orig", instance="11111111-aaaa-4aaa-8aaa-000000000001")], "t")
    history.save_run(w, [vm("orig", hostname="clone", instance="11111111-aaaa-4aaa-8aaa-000000000002")], "t")
    names = sorted(h.hostname or "" for h in latest_hosts(fleet["reader"]))
    assert names.count("ubuntu") == 2 and "db1" not in names and "db1-renamed" in names
    assert "orig" in names and "clone" in names
    from prometheus_client.parser import text_string_to_metric_families

    prom = CliRunner().invoke(main, ["report", "--store", fleet["reader"], "--format", "prometheus"]).stdout
    up = [s.labels["target"] for f in text_string_to_metric_families(prom) for s in f.samples
          if s.name == "nectar_audit_host_up"]
    assert len(up) == len(set(up)) == len(names)  # one series per host, the two "ubuntu" ones included
    assert len([u for u in up if u.startswith("ubuntu [")]) == 2
    assert [r.id for r in history.list_runs(fleet["reader"], "db1")] == [4, 9]  # the old name finds the host


def test_fleet_diff_since(fleet: dict[str, str]) -> None:
    url = fleet["admin"]
    for name in ("web1", "db1", "broken", HOSTILE):
        _age(url, name, 3)
    _age(url, "stale1", 40)  # gone long before: not news
    w = fleet["writer"]
    history.save_run(w, [vm("web1", {1: Status.FAIL, 2: Status.PASS})], "t")  # 01 newly failing
    history.save_run(w, [vm("db1", {1: Status.PASS, 2: Status.PASS})], "t")  # 01 fixed
    history.save_run(w, [vm("new1")], "t")
    # broken and evil reported three days ago and not since: gone
    since = (NOW - dt.timedelta(days=1)).isoformat()
    result = CliRunner().invoke(main, ["diff", "--store", fleet["reader"], "--since", since, "--stale-after", "4d"])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "5 host(s) then, 3 reported since" in out
    assert "newly failing: 1\n  local (web1)  Check-Security-01  web1 check 1 fail" in out
    assert "fixed: 1\n  local (db1)  Check-Security-01  db1 check 1 fail" in out
    assert "new hosts: local (new1)" in out and "stale1" not in out
    assert "gone hosts: local (<script>window.__pwned=1</script>" in out and "local (broken)" in out
    assert "\x01" not in out and "\ufffd" in out  # nothing from a VM reaches the terminal as a control
    relative = CliRunner().invoke(main, ["diff", "--store", fleet["reader"], "--since", "1d", "--stale-after", "4d"])
    assert relative.output.splitlines()[1:] == out.splitlines()[1:]
    bad = CliRunner().invoke(main, ["diff", "--store", fleet["reader"], "--since", "yesterday"])
    assert bad.exit_code == 2 and "is not a date" in bad.output


def test_prune_older_than(fleet: dict[str, str]) -> None:
    url = fleet["admin"]
    _age(url, "web1", 100)
    result = CliRunner().invoke(main, ["store", "prune", url, "--older-than", "90d"])
    assert result.exit_code == 0 and "deleted 2 run(s) (2 host record(s)) stored more than 90d ago" in result.output
    assert "web1" not in [h.hostname for h in latest_hosts(url)]
    denied = CliRunner().invoke(main, ["store", "prune", fleet["writer"], "--older-than", "1d"])
    assert denied.exit_code == 2 and "permission denied" in denied.output and "Traceback" not in denied.output


def test_a_hostile_writer_cannot_break_the_report(fleet: dict[str, str]) -> None:
    from nectar_audit.store.writer import Run, Sender, new_run

    run = new_run([], "t")
    bogus: list[dict[str, Any]] = [
        {"target": "x1", "hostname": "x1", "checks": "not a list", "identity": {"machine_id": "a" * 32}},
        {"target": "x2", "hostname": "x2", "checks": [{"id": "Check-Security-01", "status": "owned",
                                                      "findings": [{"status": 7, "evidence": [None]}]}],
         "duration_s": "slow", "os": [], "identity": {"machine_id": "b" * 32}},
        {"target": 5, "hostname": None, "started": "yesterday", "identity": "x"},
        # PostgreSQL's JSON refuses NUL and lone surrogates: replaced, the run is stored all the same
        {"target": "x3", "hostname": "nul\x00host\udc80", "checks": [], "identity": {"machine_id": "c" * 32}},
    ]
    with Sender(fleet["writer"]) as sender:
        sender.send(Run(run.id, run.created, "t", bogus))
        huge = new_run([], "t")
        with pytest.raises(Exception, match=r"refused.*document_size"):
            sender.send(Run(huge.id, huge.created, "t", [{"target": "big", "blob": "x" * (9 * 1024 * 1024)}]))
    for fmt in ("text", "json", "html", "junit", "markdown", "prometheus"):
        result = CliRunner().invoke(main, ["report", "--store", fleet["reader"], "--format", fmt])
        assert (result.exit_code in (1, 2) and result.exception is None) or isinstance(result.exception, SystemExit), \
            (fmt, result.output)
    hosts = {h.target: h for h in latest_hosts(fleet["reader"])}
    assert hosts["x2"].checks[0].status is Status.ERROR and hosts["x1"].checks == []
    assert hosts["x3"].hostname == "nul\ufffdhost\ufffd"


def test_sqlite_default_needs_no_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("solo\n")
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, ["scan", f"root:{root}", "--checks", "01", "--store", "-o",
                                      str(tmp_path / "r.txt")])
        assert result.exit_code in (0, 1) and "stored as run" in result.output, result.output
    report = runner.invoke(main, ["report", "--format", "json"])
    assert [h["hostname"] for h in json.loads(report.stdout)["hosts"]] == ["solo"]
    assert json.loads(report.stdout)["hosts"][0]["store"]["run"] == 2
    assert "fleet since" in runner.invoke(main, ["diff", "--since", "1h"]).output
    assert "deleted 0 run(s)" in runner.invoke(main, ["store", "prune", f"sqlite:///{tmp_path}/data/nectar-audit/"
                                                      "history.sqlite", "--older-than", "1d"]).output
    assert oct((tmp_path / "data" / "nectar-audit").stat().st_mode & 0o777) in ("0o700", "0o755")
