"""The bundle's shell-style matching is fnmatchcase's, including its fast path for one-"*" patterns."""

from __future__ import annotations

import fnmatch

from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.evidence.bundle import _matcher


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="ab/.*?[]!c", max_size=12), st.text(alphabet="ab/.c[]", max_size=14))
def test_matches_exactly_what_fnmatchcase_matches(pattern: str, path: str) -> None:
    assert bool(_matcher(pattern)(path)) == fnmatch.fnmatchcase(path, pattern)


def test_one_star_crosses_slashes_as_fnmatch_does() -> None:
    assert _matcher("/etc/*.conf")("/etc/a/b.conf") and not _matcher("/etc/*.conf")("/etc/.con")
