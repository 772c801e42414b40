"""Bad input on the command line and in the files we accept: a clear error naming what is wrong, exit 2,
never a traceback, never a run that silently does nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nectar_audit.cli import main
from tests import REPO

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "COLUMNS": "300"}


def _image(tmp_path: Path) -> Path:
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("imagehost\n")
    return root


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nectar_audit", *args], capture_output=True, text=True,
                          timeout=120, env=ENV, check=False)


@pytest.mark.parametrize("checks", [",", " ", ",,", " , "])
def test_an_empty_checks_list_is_a_usage_error(tmp_path: Path, checks: str) -> None:
    for command in (["scan", f"root:{_image(tmp_path)}"], ["cloud", "--evidence", str(tmp_path / "x.json")]):
        (tmp_path / "x.json").write_text("{}")
        result = CliRunner().invoke(main, [*command, "--checks", checks])
        assert result.exit_code == 2, result.output
        assert "names no check" in result.output
        assert "Traceback" not in result.output


def test_a_bundle_of_the_wrong_shape_names_the_field(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    proc = _cli("scan", f"root:{_image(tmp_path)}", "--checks", "01", "--save-evidence", str(good), "-q",
                "-o", str(tmp_path / "r.txt"))
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(good.read_text())
    data["files"]["/etc/hostname"]["content"] = 5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    proc = _cli("scan", f"evidence:{bad}", "--checks", "01")
    assert proc.returncode == 2
    assert "files['/etc/hostname'].content: expected a string or null, got the number 5" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    data["files"] = [["/etc/hostname", "x"]]
    bad.write_text(json.dumps(data))
    proc = _cli("scan", f"evidence:{bad}", "--format", "json")
    assert proc.returncode == 2
    assert "files: expected an object, got a list" in json.loads(proc.stdout)["hosts"][0]["error"]


@pytest.mark.parametrize(("change", "named"), [
    (lambda d: d["servers"][0].update(name=5), "servers[0].name: expected a string, got the number 5"),
    (lambda d: d.update(ports=[{"id": "p", "fixed_ips": {"ip_address": "1"}}]),
     "ports[0].fixed_ips: expected a list or null, got an object"),
    (lambda d: d["security_groups"].append({"id": "g", "security_group_rules": [{"port_range_min": [1]}]}),
     "security_groups[0].security_group_rules[0].port_range_min: expected an integer or a string or null"),
    (lambda d: d.update(keypairs={"k": "SHA256:x"}), "keypairs.k: expected an object, got a string"),
    (lambda d: d.update(notes="x"), "notes: expected a list, got a string"),
])
def test_a_cloud_evidence_file_of_the_wrong_shape_names_the_field(tmp_path: Path, change: object,
                                                                   named: str) -> None:
    data = {"format": "nectar-audit-openstack-project/1", "gathered_at": "", "servers": [
        {"id": "s1", "name": "web", "status": "ACTIVE"}], "ports": [], "security_groups": [], "floating_ips": [],
        "images": {}, "keypairs": {}, "notes": []}
    change(data)  # type: ignore[operator]
    path = tmp_path / "openstack.json"
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["cloud", "--evidence", str(path)])
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(("toml", "named"), [
    ('[ports]\nallowed = [true]\n', "ports.allowed: True is not a port"),
    ('[network]\ntrusted_networks = [10]\n', "network.trusted_networks: 10 is not a network"),
    ('[accounts]\nmax_days_since_login = "90"\n', "accounts.max_days_since_login must be a non-negative integer"),
    ('[[waivers]]\ncheck = 17\nreason = "x"\n', "waivers[0].check is required"),
    ('waivers = 3\n', "waivers must be a list"),
])
def test_a_config_value_of_the_wrong_type_names_the_key(tmp_path: Path, toml: str, named: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    result = CliRunner().invoke(main, ["scan", f"root:{_image(tmp_path)}", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert named in result.output


def test_an_inventory_value_of_the_wrong_type_names_host_and_key(tmp_path: Path) -> None:
    pytest.importorskip("ansible")
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n    web1:\n      ansible_port: {a: 1}\n")
    result = CliRunner().invoke(main, ["scan", "--inventory", str(path)])
    assert result.exit_code == 2, result.output
    assert "host web1: ansible_port must be a string or a number, not a mapping" in result.output
