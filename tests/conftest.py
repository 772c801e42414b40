"""Top-level pytest configuration: markers, the CI rule for lab tests, and lab-wide fixtures.

CI rule: under CI=true a test marked `lab` never skips: a skip (from a missing prerequisite via
tests.lab.require*, or any other pytest.skip) is reported as a failure.
Tests that use the `debian_root` or `lab_root` fixtures are marked `lab` automatically.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:  # so `from tests.lab import ...` works however pytest was started
    sys.path.insert(0, str(_REPO))

from tests import lab  # noqa: E402

_LAB_FIXTURES = {"debian_root", "lab_root", "openstack_api"}


def pytest_configure(config: pytest.Config) -> None:
    # A runner started in the background (`cmd &` in a script) inherits SIGINT ignored, and so would every
    # CLI the Ctrl-C tests start: give the suite the interpreter's normal SIGINT whatever started it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers", "lab: needs the test lab (root, network namespaces, the debootstrap root); "
        "skipped without it locally, failed without it under CI=true")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _LAB_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.lab)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if (report.skipped and lab.in_ci() and item.get_closest_marker("lab") is not None
            and not hasattr(report, "wasxfail")):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"lab test skipped under CI=true (lab tests must not skip in CI): {reason}"


def pytest_sessionstart(session: pytest.Session) -> None:
    lab.sweep()  # namespaces/mounts left by lab processes that died (no-op unless root)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    lab.sweep(include_own=True)  # anything this session failed to tear down


@pytest.fixture(scope="session")
def debian_root() -> Path:
    """The cached pristine Debian bookworm root (read-only by convention: use lab_root to write)."""
    lab.require_root()
    for binary in ("debootstrap", "chroot", "mount", "unshare"):
        lab.require_binary(binary)
    try:
        return lab.debian_root()
    except lab.LabError as exc:
        lab.require(False, f"cannot build the lab Debian root: {exc}")
        raise


@pytest.fixture
def lab_root(debian_root: Path, tmp_path: Path) -> Iterator[Path]:
    """A writable per-test overlay of the cached root, unmounted after the test."""
    with lab.overlay_root(tmp_path, debian_root) as root:
        yield root


@pytest.fixture(scope="session")
def openstack_api() -> Iterator[Any]:
    """Real Keystone + Neutron on 127.0.0.1 for the whole run (about 15 s to start; see
    tests/lab/openstack_lab.py). Their virtualenv is built by `python -m tests.lab build-openstack`."""
    from tests.lab import openstack_lab

    venv = openstack_lab.venv_path()
    lab.require((venv / ".complete").exists(),
                f"the OpenStack lab virtualenv {venv} is not built: python -m tests.lab build-openstack")
    with openstack_lab.openstack_lab() as api:
        yield api
