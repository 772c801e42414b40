"""Property-based fuzzing of every sanitizer and text parser of the fact packs, the redaction pass and the
stream parser: whatever text a host sends, no exception escapes but a parser's own refusal. A longer run
of the same is ``scripts/fuzz.py`` (the release checklist)."""

from __future__ import annotations

import contextlib
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings

from nectar_audit.evidence import Bundle, StreamParser, redact
from tests.evidence.adversarial import TEXT, text_functions


def _stream(text: str) -> None:
    data = text.encode("utf-8", "surrogateescape").replace(b"BB", b"\n@@B ")
    parser = StreamParser("@@B", Bundle("t", "ssh", True))
    for i in range(0, len(data), 5):
        parser.feed(data[i:i + 5])
    parser.finish()


TARGETS: list[tuple[str, Callable[[str], object]]] = [*text_functions(), ("evidence.redact", redact),
                                                      ("evidence.stream", _stream)]


@pytest.mark.parametrize("name,fn", TARGETS, ids=[n for n, _ in TARGETS])
def test_no_exception_but_refusal(name: str, fn: Callable[[str], object]) -> None:
    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(TEXT)
    def run(text: str) -> None:
        with contextlib.suppress(ValueError, LookupError, UnicodeError):  # a parser's own refusal
            fn(text)

    run()
