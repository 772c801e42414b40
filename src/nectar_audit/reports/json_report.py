from __future__ import annotations

import json
from collections.abc import Sequence

from nectar_audit import __version__
from nectar_audit.model import HostResult, report_json


def render(hosts: Sequence[HostResult]) -> str:
    return json.dumps(report_json(list(hosts), __version__), indent=2, ensure_ascii=False) + "\n"
