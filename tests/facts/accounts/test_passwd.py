"""The one login-shell rule, in Python and as the sh pattern the gatherer's passwd loops use."""

from __future__ import annotations

import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.facts.accounts.passwd import (
    NOLOGIN_SHELLS,
    SPECIAL_SHELLS,
    parse_accounts,
    sh_no_session_case,
    shell_gives_session,
)

CASES = [
    ("root", "/bin/bash"), ("alice", ""), ("svc", "/usr/sbin/nologin"), ("svc", "/sbin/nologin"),
    ("svc", "/usr/local/bin/nologin"), ("svc", "/bin/false"), ("svc", "/usr/bin/true"), ("svc", "/dev/null"),
    ("sync", "/bin/sync"), ("alice", "/bin/sync"), ("halt", "/sbin/halt"), ("shutdown", "/usr/sbin/shutdown"),
    ("bob", "/usr/bin/zsh"), ("bob", "/bin/falsely"),
    *((n, s) for n, shells in SPECIAL_SHELLS.items() for s in shells), *(("x", s) for s in NOLOGIN_SHELLS),
]


def _sh_gives_session(pairs: list[tuple[str, str]]) -> list[bool]:
    script = ('while IFS=: read -r u sh; do case "$u:$sh" in ' + sh_no_session_case()
              + ") echo no;; *) echo yes;; esac; done")
    lines = "".join(f"{n}:{s}\n" for n, s in pairs)
    out = subprocess.run(["sh", "-c", script], input=lines, capture_output=True, text=True, timeout=30, check=True)
    return [w == "yes" for w in out.stdout.split()]


def test_sh_pattern_and_python_rule_agree() -> None:
    assert _sh_gives_session(CASES) == [shell_gives_session(n, s) for n, s in CASES]
    assert not shell_gives_session("svc", "/dev/null") and shell_gives_session("alice", "")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["root", "sync", "halt", "alice"]),
                          st.sampled_from(["", "/bin/sh", "/bin/sync", "/sbin/halt", "/opt/x/nologin", "/dev/null",
                                           "/usr/bin/false", "/bin/bash", "/bin/truex"])), min_size=1, max_size=20))
def test_sh_pattern_matches_python_on_any_mix(pairs: list[tuple[str, str]]) -> None:
    assert _sh_gives_session(pairs) == [shell_gives_session(n, s) for n, s in pairs]


def test_parse_accounts_first_entry_wins_and_groups_follow() -> None:
    acc = parse_accounts("a:x:1000:1000::/home/a:/bin/sh\na:x:1001:1001::/x:/bin/sh\n+nis::::::\n",
                         "a:x:1000:\nwheel:x:10:a\n")
    assert acc["a"].uid == 1000 and acc["a"].groups == ("a", "wheel")
