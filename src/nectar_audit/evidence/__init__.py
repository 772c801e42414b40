"""Evidence: the raw material of an audit, gathered from a host in one pass; imports nothing else of ours.

``Needs`` declares what a fact module reads, ``Bundle`` holds what a target gathered (files, metadata,
command output, search hits), sanitizers reduce secret-bearing files as they are added, ``script`` builds
the POSIX sh gatherer (``gather.sh``) and ``stream`` parses what it prints.
"""

from nectar_audit.evidence.bundle import (
    MAX_FILE_BYTES,
    MAX_USER_FILE_BYTES,
    USER_AREAS,
    Bundle,
    CommandRecord,
    EvidenceError,
    FileRecord,
    StatRecord,
    save_bundle,
)
from nectar_audit.evidence.needs import Follow, Needs, Search, merge
from nectar_audit.evidence.redact import redact, redact_args
from nectar_audit.evidence.sanitize import Sanitizer, fields_only, rewrite_lines, sanitize
from nectar_audit.evidence.script import STAT_FORMAT, build_script, new_boundary
from nectar_audit.evidence.stream import Budget, StreamParser, parse_stat_lines, parse_stream

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_USER_FILE_BYTES",
    "STAT_FORMAT",
    "USER_AREAS",
    "Budget",
    "Bundle",
    "CommandRecord",
    "EvidenceError",
    "FileRecord",
    "Follow",
    "Needs",
    "Sanitizer",
    "Search",
    "StatRecord",
    "StreamParser",
    "build_script",
    "fields_only",
    "merge",
    "new_boundary",
    "parse_stat_lines",
    "parse_stream",
    "redact",
    "redact_args",
    "rewrite_lines",
    "sanitize",
    "save_bundle",
]
