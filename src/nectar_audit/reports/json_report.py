"""The JSON report (schema_version 1). An undecodable byte of a file name is kept as its ``\\udcXX``
escape (``model.dumps_json``): the document stays valid UTF-8 and the name's bytes can be recovered."""

from __future__ import annotations

from collections.abc import Sequence

from nectar_audit import __version__
from nectar_audit.model import HostResult, dumps_json, report_json


def render(hosts: Sequence[HostResult]) -> str:
    return dumps_json(report_json(list(hosts), __version__)) + "\n"
