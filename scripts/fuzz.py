"""The release checklist's long fuzz run: every sanitizer and text parser of the fact packs, the redaction
pass and the evidence stream parser, fed by Hypothesis with many more examples than the test suite uses.
No exception may escape but a parser's own refusal (ValueError and its kind are allowed), and nothing may
run long (each example is bounded by an alarm).

    python3 scripts/fuzz.py [--examples 2000] [--only NAME-SUBSTRING]
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from nectar_audit.evidence import Bundle, StreamParser, redact  # noqa: E402
from tests.evidence.adversarial import TEXT, text_functions  # noqa: E402


class _Slow(Exception):
    pass


def _bounded(fn: Callable[[str], object], text: str) -> None:
    signal.setitimer(signal.ITIMER_REAL, 5)
    try:
        fn(text)
    except (ValueError, LookupError, UnicodeError):
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(_Slow()))
    targets: list[tuple[str, Callable[[str], object]]] = [*text_functions(), ("evidence.redact", redact),
                                                          ("evidence.stream", _stream)]
    failures = 0
    for name, fn in targets:
        if args.only not in name:
            continue

        try:
            _fuzz(fn, args.examples)
            print(f"ok    {name}")
        except Exception as exc:  # report and go on: the run lists every function that fails
            failures += 1
            print(f"FAIL  {name}: {type(exc).__name__}: {str(exc)[:300]}")
    sys.exit(1 if failures else 0)


def _fuzz(fn: Callable[[str], object], examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(TEXT)
    def run(text: str) -> None:
        _bounded(fn, text)

    run()


def _stream(text: str) -> Any:
    """The stream parser fed host bytes, framed with a boundary the text may imitate, in odd chunks."""
    data = text.encode("utf-8", "surrogateescape").replace(b"BB", b"\n@@B ")
    parser = StreamParser("@@B", Bundle("t", "ssh", True))
    for i in range(0, len(data), 7):
        parser.feed(data[i:i + 7])
    parser.finish()


if __name__ == "__main__":
    main()
