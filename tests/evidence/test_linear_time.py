"""Every sanitizer and every pure parser over host text runs in linear time: adversarial inputs of 256 KiB
(runs of spaces after a keyword, unclosed quotes and braces, floods of lines) each finish within an alarm
that a quadratic or catastrophic-backtracking pattern would blow by orders of magnitude. The same sweep
at 1 MiB, with times and memory, is ``benchmarks/adversarial.py``."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from tests.evidence.adversarial import ADVERSARIAL_INPUTS, text_functions

SIZE = 256 * 1024
ALARM_S = 20  # a linear pass over 256 KiB takes well under a second; a quadratic one takes minutes


class _TooSlow(Exception):
    pass


def _raise(*_: Any) -> None:
    raise _TooSlow


FUNCTIONS = text_functions()


@pytest.mark.parametrize("name,fn", FUNCTIONS, ids=[n for n, _ in FUNCTIONS])
def test_linear_on_adversarial_input(name: str, fn: Callable[[str], object]) -> None:
    previous = signal.signal(signal.SIGALRM, _raise)
    try:
        for label, text in _inputs():
            signal.setitimer(signal.ITIMER_REAL, ALARM_S)
            try:
                fn(text)
            except _TooSlow:
                pytest.fail(f"{name} took more than {ALARM_S} s on {label} ({SIZE} bytes)")
            except Exception:
                continue
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)


def _inputs() -> Iterator[tuple[str, str]]:
    for label, make in ADVERSARIAL_INPUTS.items():
        yield label, make(SIZE)


def test_the_sweep_covers_every_sanitizer() -> None:
    from nectar_audit.catalog import all_needs

    needs = all_needs()
    sanitizers = set(needs.sanitize.values()) | {s.sanitizer for s in needs.searches if s.sanitizer}
    sanitizers |= set(needs.command_sanitize.values())
    names = {n for n, _ in FUNCTIONS}
    assert {f"{fn.__module__}.{fn.__name__}" for fn in sanitizers} <= names
