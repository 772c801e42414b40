"""A full local scan starts gathering before it imports the checks (``ScriptTarget.prestart``): the early
run is used only when its script is exactly the one the checks ask for, and is killed otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from nectar_audit import cli
from nectar_audit.catalog import implemented, needs_for
from nectar_audit.evidence import Needs, build_script, new_boundary
from nectar_audit.evidence.script import PREBUILT, prebuilt_script, prebuilt_text
from nectar_audit.targets import script_runner
from nectar_audit.targets.local import LocalTarget
from tests import REPO


def test_the_prebuilt_full_scan_script_is_current() -> None:
    """If this fails, a check's or a fact's Needs changed: run ``python3 scripts/prebuild_gather.py``."""
    needs = needs_for(implemented())
    on_disk = (REPO / "src/nectar_audit/evidence" / PREBUILT).read_text(encoding="utf-8")
    assert on_disk == prebuilt_text(needs)
    boundary = new_boundary()
    assert prebuilt_script(boundary) == build_script(needs, boundary)


def _needs(path: Path) -> Needs:
    return Needs(files=(str(path),), commands={"t.echo": "echo hello"})


def test_an_early_run_with_the_same_script_is_adopted(tmp_path: Path) -> None:
    data = tmp_path / "f"
    data.write_text("before\n")
    needs = _needs(data)
    target = LocalTarget()
    boundary = new_boundary()
    target.prestart(build_script(needs, boundary), boundary)
    early = target._early
    assert early is not None
    early.proc.wait()  # it read the file already: what gather returns is what that run saw
    data.write_text("after\n")
    bundle = target.gather(needs)
    assert bundle.files[str(data)].content == "before\n"
    assert bundle.commands["t.echo"].stdout == "hello\n" and not bundle.errors
    assert target._early is None
    assert target.gather(needs).files[str(data)].content == "after\n"  # the next gather runs afresh


def test_an_early_run_with_another_script_is_killed_and_not_used(tmp_path: Path) -> None:
    data = tmp_path / "f"
    data.write_text("before\n")
    target = LocalTarget()
    boundary = new_boundary()
    target.prestart("sleep 60\n", boundary)
    early = target._early
    assert early is not None
    bundle = target.gather(_needs(data))
    assert early.proc.returncode is not None  # killed, not left behind
    assert bundle.files[str(data)].content == "before\n" and not bundle.errors


def test_past_its_memory_cap_the_early_run_is_read_from_the_pipe(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script_runner, "EARLY_CAP", 4096)
    data = tmp_path / "big"
    text = "".join(f"line {i}\n" for i in range(50_000))  # about 600 kB: far past the cap, within a record's
    data.write_text(text)
    needs = _needs(data)
    target = LocalTarget()
    boundary = new_boundary()
    target.prestart(build_script(needs, boundary), boundary)
    bundle = target.gather(needs)
    assert bundle.files[str(data)].content == text and not bundle.errors


def test_discard_kills_the_early_run() -> None:
    target = LocalTarget()
    target.prestart("sleep 60\n", new_boundary())
    early = target._early
    assert early is not None
    target.discard_early()
    assert early.proc.returncode is not None and target._early is None


def test_only_a_full_scan_of_this_machine_starts_early() -> None:
    local = LocalTarget()
    assert cli._prestart([local], None, False) is local and local._early is not None
    local.discard_early()
    for args in (([LocalTarget()], "01", False), ([LocalTarget()], None, True),
                 ([LocalTarget(), LocalTarget()], None, False)):
        assert cli._prestart(*args) is None  # type: ignore[arg-type]
