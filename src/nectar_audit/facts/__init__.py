"""Facts: typed, parsed views of the evidence.

A fact module holds pure parsers (text -> typed value, each tested on real samples), a ``NEEDS``
declaration of the evidence it reads, and fact functions ``name(facts) -> value`` that checks call
through ``facts.get(name)`` so each fact is derived once per host.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from nectar_audit.config import Config
from nectar_audit.evidence import Bundle

T = TypeVar("T")


class Facts:
    def __init__(self, bundle: Bundle, config: Config | None = None) -> None:
        self.bundle = bundle
        self.config = config if config is not None else Config()
        self._cache: dict[Callable[..., Any], Any] = {}
        self._errors: dict[Callable[..., Any], Exception] = {}

    def get(self, fact: Callable[[Facts], T]) -> T:
        # A fact that failed once fails the same way for every check that asks, without re-parsing.
        if fact in self._errors:
            raise self._errors[fact]
        if fact not in self._cache:
            try:
                self._cache[fact] = fact(self)
            except Exception as exc:
                self._errors[fact] = exc
                raise
        return self._cache[fact]  # type: ignore[no-any-return]
