"""Every input file we accept, fuzzed (hypothesis): saved bundles, ``cloud --evidence`` files, config files
and inventories. A malformed file gives our own clear error (TargetError, ShapeError, ConfigError,
InventoryError), never another exception; a file that loads is judged without an internal error."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import implemented, needs_for
from nectar_audit.cloud.audit import instance_targets
from nectar_audit.cloud.checks.base import NEEDS as CLOUD_NEEDS
from nectar_audit.cloud.gather import ProjectEvidence
from nectar_audit.config import Config, ConfigError, parse_config, parse_config_file
from nectar_audit.engine import audit
from nectar_audit.evidence import Bundle, CommandRecord, StatRecord, save_bundle
from nectar_audit.evidence.bundle import FileRecord
from nectar_audit.inventory import InventoryError, inventory_targets, load_inventory
from nectar_audit.shape import ShapeError
from nectar_audit.targets import TargetError
from nectar_audit.targets.saved import SavedTarget
from tests import REPO
from tests.cloud.test_model import project

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False), st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (keys and indexes)."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    value = copy.deepcopy(value)
    node = value
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return value


def _delete(value: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return value
    value = copy.deepcopy(value)
    node = value
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return value


def _mutations(base: Any) -> st.SearchStrategy[Any]:
    """``base`` with one node (anywhere, the whole document included) replaced by any JSON value, or
    removed."""
    paths = _paths(base)
    index = st.integers(0, len(paths) - 1)
    return st.one_of(st.builds(lambda i, new: _replace(base, paths[i], new), index, json_values),
                     st.builds(lambda i: _delete(base, paths[i]), index))


def _no_internal_error(result: Any) -> None:
    for check in result.checks:
        for finding in check.findings:
            assert "internal error" not in finding.message, (check.id, finding.message)


# -- saved bundles ---------------------------------------------------------------------------------
def _sample_bundle() -> dict[str, Any]:
    bundle = Bundle(target="root:/img", kind="rootfs", live=False, gathered_at="2026-12-01T00:00:00+00:00")
    bundle.files["/etc/hostname"] = FileRecord("h1\n")
    bundle.files["/etc/os-release"] = FileRecord('ID=debian\nVERSION_ID="12"\n')
    bundle.files["/etc/ssh/sshd_config"] = FileRecord("PasswordAuthentication yes\nPort 22\n", truncated=True)
    bundle.files["/etc/shadow"] = FileRecord(None, error="Permission denied")
    bundle.stats["/etc/shadow"] = StatRecord(0o100640, 0, 42, 10, 0)
    bundle.commands["sshd -T"] = CommandRecord("port 22\npasswordauthentication yes\n", "", 0)
    bundle.searches["private-keys"] = ["/root/.ssh/id_ed25519"]
    bundle.errors.append("one error")
    return json.loads(json.dumps(bundle.to_json()))


BUNDLE = _sample_bundle()
ENTRIES = implemented()
NEEDS = needs_for(ENTRIES)


@FUZZ
@given(_mutations(BUNDLE))
def test_bundle_loader_and_checks_on_mutated_bundles(data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.json"
        path.write_text(json.dumps(data))
        try:
            SavedTarget(str(path)).gather(NEEDS)
        except TargetError as exc:
            assert str(exc).startswith(str(path))
            return
        result, _ = audit(SavedTarget(str(path)), ENTRIES, Config(), needs=NEEDS)
        assert result.error is None
        _no_internal_error(result)


@pytest.mark.parametrize(("bad", "named"), [
    ({"files": {"/etc/hostname": {"content": 5}}}, "files['/etc/hostname'].content: expected a string or null, "
                                                   "got the number 5"),
    ({"files": [["/etc/hostname", "h"]]}, "files: expected an object, got a list"),
    ({"stats": {"/etc/x": [1, 2]}}, "stats['/etc/x']: expected a list of 5, got 2 items"),
    ({"commands": {"ss": {"stdout": None}}}, "commands.ss.stdout: expected a string, got null"),
    ({"searches": {"keys": "/root/.ssh/id"}}, "searches.keys: expected a list, got a string"),
    ({"live": "yes"}, "live: expected true or false, got a string"),
    ({"format": 2}, "format 2 is not one this version reads (1)"),
])
def test_bundle_errors_name_the_field(tmp_path: Path, bad: dict[str, Any], named: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({**BUNDLE, **bad}))
    with pytest.raises(TargetError) as exc:
        SavedTarget(str(path)).gather(NEEDS)
    assert named in str(exc.value)


def test_a_saved_bundle_passes_its_own_validation(tmp_path: Path) -> None:
    bundle = Bundle.from_json(BUNDLE)
    save_bundle(bundle, tmp_path / "again.json", "t", False)
    again = SavedTarget(str(tmp_path / "again.json")).gather(NEEDS)
    assert again.to_json() == bundle.to_json()


def test_a_deeply_nested_bundle_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(TargetError, match="is not JSON"):
        SavedTarget(str(path)).gather(NEEDS)


# -- cloud --evidence ------------------------------------------------------------------------------
PROJECT = json.loads(json.dumps(project().to_json()))
CLOUD_ENTRY_NEEDS = needs_for(ENTRIES, CLOUD_NEEDS)


@FUZZ
@given(_mutations(PROJECT))
def test_cloud_evidence_loader_and_judging_on_mutated_files(data: Any) -> None:
    try:
        ev = ProjectEvidence.from_json(data)
    except ShapeError as exc:
        assert str(exc)
        return
    for target in instance_targets(ev):
        result, _ = audit(target, ENTRIES, Config(), needs=CLOUD_ENTRY_NEEDS)
        assert result.error is None
        _no_internal_error(result)


@pytest.mark.parametrize("key", sorted(set(PROJECT) - {"format"}))
def test_every_project_field_but_format_may_be_absent(key: str) -> None:
    data = {k: v for k, v in PROJECT.items() if k != key}
    for target in instance_targets(ProjectEvidence.from_json(data)):
        result, _ = audit(target, ENTRIES, Config(), needs=CLOUD_ENTRY_NEEDS)
        _no_internal_error(result)


def test_deeply_nested_config_and_cloud_files_are_usage_errors(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nectar_audit.cli import main

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    result = CliRunner().invoke(main, ["cloud", "--evidence", str(deep)])
    assert result.exit_code == 2 and "cannot read" in result.output
    toml = tmp_path / "deep.toml"
    toml.write_text("a = " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_config_file(toml)


# -- config ----------------------------------------------------------------------------------------
toml_scalars = st.one_of(st.booleans(), st.integers(-10, 70000), st.floats(allow_nan=False), st.text(max_size=20),
                         st.dates(), st.sampled_from(["22/tcp", "123/udp", "10.0.0.0/8", "::/0", "17"]))
toml_values = st.recursive(toml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)
config_keys = st.sampled_from(["accounts", "services", "ports", "network", "waivers", "other"])
inner_keys = st.sampled_from(["expected", "max_days_since_login", "allowed", "trusted_networks", "check",
                              "reason", "host", "expires", "x"])
config_docs = st.dictionaries(config_keys, st.one_of(
    toml_values, st.dictionaries(inner_keys, toml_values, max_size=4),
    st.lists(st.dictionaries(inner_keys, toml_values, max_size=4), max_size=3)), max_size=4)


@FUZZ
@given(config_docs)
def test_config_documents(data: dict[str, Any]) -> None:
    try:
        config = parse_config(data)
    except ConfigError as exc:
        assert str(exc).startswith("config: ")
        return
    assert isinstance(config, Config)


@FUZZ
@given(st.text(max_size=200) | st.sampled_from(['[ports]\nallowed = [[["x"]]]\n', "a = [" * 2000,
                                                "a = " + "[" * 5000 + "]" * 5000]))
def test_config_files(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        with contextlib.suppress(ConfigError):
            parse_config_file(path)


# -- inventories -----------------------------------------------------------------------------------
@FUZZ
@given(st.lists(st.text(max_size=30) | st.sampled_from(["web1", "root@10.0.0.1:22", "# c", "ssh://a@b:99",
                                                         "[web]", "x ansible_port=abc"]), max_size=6))
def test_plain_and_ini_inventories(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hosts"
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogateescape")
        try:
            inventory_targets(load_inventory(str(path)))
        except InventoryError as exc:
            assert str(exc)


yaml_values = st.one_of(st.integers(-5, 70000), st.booleans(), st.text(max_size=10),
                        st.lists(st.integers(0, 9), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                                 st.integers(), max_size=2))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(["ansible_host", "ansible_port", "ansible_user", "ansible_connection",
                                        "ansible_ssh_private_key_file"]), yaml_values, max_size=3))
def test_yaml_inventory_host_vars(hostvars: dict[str, Any]) -> None:
    pytest.importorskip("ansible")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hosts.json"
        path.write_text(json.dumps({"all": {"hosts": {"web1": hostvars}}}))
        try:
            hosts = load_inventory(str(path))
        except InventoryError as exc:
            assert "web1" in str(exc) or "inventory" in str(exc)
            return
        for host in hosts:
            assert host.address is None or (isinstance(host.address, str)
                                            and not host.address.startswith(("[", "{")))
        with contextlib.suppress(InventoryError):
            inventory_targets(hosts)


def test_a_deeply_nested_inventory_is_refused_before_ansible_crashes_on_it(tmp_path: Path) -> None:
    """Ansible's parser dies of a C stack overflow (SIGSEGV) on this: run in a child process."""
    pytest.importorskip("ansible")
    path = tmp_path / "hosts.json"
    path.write_text('{"all": {"vars": {"x": ' + "[" * 50000 + "]" * 50000 + "}}}")
    proc = subprocess.run([sys.executable, "-m", "nectar_audit", "scan", "--inventory", str(path)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])})
    assert proc.returncode == 2, proc.stderr
    assert "nested more than 200 levels deep" in proc.stderr


def test_an_inventory_var_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    pytest.importorskip("ansible")
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n    web1:\n      ansible_host: [10.0.0.1, 10.0.0.2]\n")
    with pytest.raises(InventoryError, match="host web1: ansible_host must be a string or a number, not a list"):
        load_inventory(str(path))
