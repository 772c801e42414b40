"""``schedule --root DIR`` resolves the image's paths inside DIR as ``root:`` does: a symlink the image holds
(absolute, or climbing with ``..``) never sends a read or a write outside DIR."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nectar_audit import schedule as sch
from tests.test_schedule import cli, image, snapshot, wrapper  # noqa: F401  (wrapper: a fixture)


def _outside(tmp_path: Path) -> Path:
    """A directory of the operator's machine the image's links aim at (an absolute path, as /etc would be)."""
    out = tmp_path / "operator-etc"
    (out / "systemd/system/timers.target.wants").mkdir(parents=True)
    (out / "cron.d").mkdir()
    (out / "hostname").write_text("operator-machine\n")
    return out


@pytest.mark.parametrize("how", ["absolute", "dotdot"])
def test_symlinked_unit_directories_stay_inside_the_image(tmp_path: Path, wrapper: Path, how: str) -> None:  # noqa: F811
    root = image(tmp_path)
    outside = _outside(tmp_path)
    shutil.rmtree(root / "etc/systemd/system")
    target = str(outside / "systemd/system") if how == "absolute" else "../../" * 12 + str(outside)[1:] + \
        "/systemd/system"
    (root / "etc/systemd/system").symlink_to(target)
    before = snapshot(outside)
    result = cli("--daily", "--root", str(root), "--executable", str(wrapper), "--backend", "systemd")
    assert result.exit_code == 0, result.output
    assert snapshot(outside) == before  # nothing written on the operator's side
    inside = root / str(outside / "systemd/system").lstrip("/")  # where the link leads within the image
    assert (inside / sch.SERVICE).is_file() and (inside / sch.TIMER).is_file()
    link = os.readlink(inside / "timers.target.wants" / sch.TIMER)
    assert sch.inside_root(root.resolve(), link, follow_last=True) == (inside / sch.TIMER).resolve()
    assert cli("--remove", "--root", str(root)).exit_code == 0
    assert snapshot(outside) == before
    assert not (inside / sch.SERVICE).exists()


def test_symlinked_cron_d_and_hostname_stay_inside_the_image(tmp_path: Path, wrapper: Path) -> None:  # noqa: F811
    root = image(tmp_path, systemd=False)
    outside = _outside(tmp_path)
    shutil.rmtree(root / "etc/cron.d")
    (root / "etc/cron.d").symlink_to(outside / "cron.d")
    (root / "etc/hostname").unlink()
    (root / "etc/hostname").symlink_to(outside / "hostname")
    before = snapshot(outside)
    result = cli("--daily", "--root", str(root), "--executable", str(wrapper), "--dry-run")
    # The image's cron.d is a dangling link inside it: no cron there, so no backend, and nothing outside read.
    assert result.exit_code == 2 and "operator-machine" not in result.output
    (root / str(outside / "cron.d").lstrip("/")).mkdir(parents=True)
    result = cli("--daily", "--root", str(root), "--executable", str(wrapper))
    assert result.exit_code == 0, result.output
    assert snapshot(outside) == before
    assert (root / str(outside / "cron.d").lstrip("/") / sch.NAME).is_file()


def test_a_unit_file_that_is_a_symlink_out_is_not_written_through(tmp_path: Path, wrapper: Path) -> None:  # noqa: F811
    root = image(tmp_path)
    victim = tmp_path / "victim.service"
    victim.write_text("precious\n")
    (root / "etc/systemd/system" / sch.SERVICE).symlink_to(victim)
    result = cli("--daily", "--root", str(root), "--executable", str(wrapper), "--backend", "systemd")
    assert result.exit_code == 2 and "was not written by" in result.output
    assert victim.read_text() == "precious\n"
