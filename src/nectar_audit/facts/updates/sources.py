"""apt's configured sources: ``/etc/apt/sources.list`` and ``/etc/apt/sources.list.d`` (one-line ``.list``
and deb822 ``.sources`` files), read the way apt reads them (apt-pkg/sourcelist.cc).

This is what apt *will* fetch, whatever ``/var/lib/apt/lists`` holds: images are usually built with the
downloaded lists removed, and a source added after the last ``apt update`` has no list yet. The lists
only tell what the last refresh brought (pending updates, in ``pending.py``).

One-line: ``deb [ opt=v,v opt+=v ] URI SUITE [COMPONENT…]``, ``#`` starts a comment anywhere on a line.
deb822: stanzas separated by blank lines, ``#`` lines are comments, fields ``Types``, ``URIs``,
``Suites``, ``Components``, ``Enabled``, ``Architectures`` (``-Add``/``-Remove``), ``Signed-By`` (paths
or an inline key on continuation lines) and the other options. In ``sources.list.d`` apt reads only
names of ``[A-Za-z0-9_.-]`` ending in ``.list`` or ``.sources`` (others, e.g. ``*.list.save``, with a
notice). A malformed entry makes every apt command fail ("Malformed entry N in list file …").
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.facts.host import parse_os_release
from nectar_audit.facts.updates.apt_config import apt_config
from nectar_audit.facts.updates.packages import packages

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

SOURCE_LIST = "/etc/apt/sources.list"
SOURCE_PARTS = "/etc/apt/sources.list.d"
DPKG_ARCH = "/var/lib/dpkg/arch"
# Where Signed-By keyrings live in practice; a keyring elsewhere cannot be checked for existence.
KEYRING_DIRS = ("/usr/share/keyrings", "/etc/apt/keyrings", "/etc/apt/trusted.gpg.d")
# Debian's and Ubuntu's suite aliases: which release they name moves with time (and the lists tell).
SUITE_ALIASES = ("stable", "oldstable", "oldoldstable", "testing", "unstable", "sid", "experimental")

_PART_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.(list|sources)$")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s\]]*@")


def sanitize_sources(data: bytes) -> str:
    """Blank the user:password of every URI (``https://user:secret@repo/``); keep the rest line for line."""
    return _USERINFO.sub(lambda m: m.group(1) + "<redacted>@", data.decode("utf-8", "replace"))


NEEDS = Needs(
    files=(SOURCE_LIST, f"{SOURCE_PARTS}/*", DPKG_ARCH),
    stats=(f"{SOURCE_PARTS}/*", *(f"{d}/*" for d in KEYRING_DIRS)),
    sanitize={SOURCE_LIST: sanitize_sources, f"{SOURCE_PARTS}/*": sanitize_sources},
)


@dataclass(frozen=True)
class SourceEntry:
    """One (type, URI, suite) apt fetches, as a line or a stanza configures it."""

    kind: str  # deb | deb-src
    uri: str
    suite: str
    components: tuple[str, ...]
    origin: str  # "path:line" (the stanza's first line for deb822)
    options: tuple[tuple[str, str], ...] = ()  # (name, value) as written: arch=amd64, signed-by=…
    enabled: bool = True  # False: "Enabled: no" (deb822)
    commented: bool = False  # a "# deb …" line: what the file would configure without the "#"

    def option(self, *names: str) -> str | None:
        for key, value in self.options:
            if key.lower() in names:
                return value
        return None

    def describe(self) -> str:
        opts = " ".join(f"{k}={v}" for k, v in self.options if k.lower() != "signed-by" or "\n" not in v)
        head = f"{self.kind} [{opts}]" if opts else self.kind
        return " ".join([head, self.uri, self.suite, *self.components])

    def architectures(self, default: tuple[str, ...]) -> tuple[str, ...]:
        """The architectures apt fetches Packages lists of for this entry."""
        archs = list(default)
        for key, value in self.options:
            key = key.lower()
            items = [a for a in re.split(r"[,\s]+", value) if a]
            if key in ("arch", "architectures"):
                archs = items
            elif key in ("arch+", "architectures-add"):
                archs += [a for a in items if a not in archs]
            elif key in ("arch-", "architectures-remove"):
                archs = [a for a in archs if a not in items]
        return tuple(archs)

    @property
    def signed_by(self) -> tuple[str, ...]:
        """Keyring paths of Signed-By (an inline key is ``"inline key"``)."""
        value = self.option("signed-by")
        if not value:
            return ()
        if "BEGIN PGP PUBLIC KEY BLOCK" in value:
            return ("inline key",)
        return tuple(p for p in re.split(r"[,\s]+", value) if p)

    @property
    def security_release(self) -> str | None:
        """The release a security suite serves ("bookworm" of bookworm-security, "buster" of buster/updates),
        or None when the suite is not a security suite."""
        suite = self.suite.rstrip("/")
        if suite.endswith("-security"):
            return suite[: -len("-security")].split("-", 1)[0]
        if suite.endswith("/updates"):  # Debian 10 and older: security.debian.org buster/updates
            return suite[: -len("/updates")]
        return None


@dataclass(frozen=True)
class AptSources:
    entries: tuple[SourceEntry, ...]  # every entry configured (disabled and commented ones flagged)
    files: tuple[str, ...]  # the files apt reads, in its order
    ignored: tuple[str, ...] = ()  # files in sources.list.d apt does not read (name or extension)
    errors: tuple[str, ...] = ()  # malformed entries: apt refuses to run
    architectures: tuple[str, ...] = ()  # the host's (native first)
    codename: str = ""
    keyrings: frozenset[str] = frozenset()  # keyring files present in KEYRING_DIRS
    notes: tuple[str, ...] = field(default=())

    @property
    def native(self) -> str:
        return self.architectures[0] if self.architectures else ""

    def active(self) -> list[SourceEntry]:
        """The binary-package entries apt fetches for this host's native architecture."""
        return [
            e
            for e in self.entries
            if e.enabled
            and not e.commented
            and e.kind == "deb"
            and (not self.native or self.native in e.architectures(self.architectures))
        ]

    def this_release(self, entry: SourceEntry) -> bool | None:
        """Does a security entry serve this host's release? None: named by an alias, or release unknown."""
        rel = entry.security_release
        if rel is None:
            return False
        if not self.codename or rel in SUITE_ALIASES:
            return None
        return rel == self.codename

    def security(self) -> list[SourceEntry]:
        """Active security entries for this host's release (or an alias that may name it)."""
        return [e for e in self.active() if e.security_release is not None and self.this_release(e) is not False]

    def keyring_missing(self, entry: SourceEntry) -> list[str]:
        """Signed-By keyrings in the usual directories that do not exist (others cannot be checked)."""
        return [
            p for p in entry.signed_by if p.startswith(tuple(d + "/" for d in KEYRING_DIRS)) and p not in self.keyrings
        ]


class SourcesError(ValueError):
    pass


def _one_line_options(text: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """(options, rest of the line) of ``[ opt=v opt+=v ] rest``."""
    if not text.startswith("["):
        return (), text
    end = text.find("]")
    if end < 0:
        raise SourcesError("unterminated option list '['")
    opts: list[tuple[str, str]] = []
    for word in text[1:end].split():
        m = re.fullmatch(r"([A-Za-z-]+)([+-]?)=(.*)", word)
        if m is None:
            raise SourcesError(f"option '{word}' is not name=value")
        opts.append((m.group(1) + m.group(2), m.group(3)))
    return tuple(opts), text[end + 1 :].strip()


def parse_one_line(text: str, path: str) -> tuple[list[SourceEntry], list[str]]:
    """(entries, errors) of a one-line-style file; commented-out entries are returned flagged."""
    entries: list[SourceEntry] = []
    errors: list[str] = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        commented = False
        if line.startswith("#"):
            # What the line would configure without its "#": only to say "commented out".
            line, commented = line.lstrip("#").strip(), True
            if not line.startswith(("deb ", "deb-src ", "deb\t", "deb-src\t")):
                continue
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ") if " " in line else line.partition("\t")
        try:
            if kind not in ("deb", "deb-src"):
                raise SourcesError(f"type '{kind}' is not known")
            opts, rest = _one_line_options(rest.strip())
            words = rest.split()
            if len(words) < 2:
                raise SourcesError("no URI and suite")
            uri, suite, comps = words[0], words[1], tuple(words[2:])
            if not suite.endswith("/") and not comps:
                raise SourcesError("no component")
        except SourcesError as exc:
            if not commented:
                errors.append(f"Malformed entry {no} in list file {path} ({exc})")
            continue
        entries.append(SourceEntry(kind, uri, suite, comps, f"{path}:{no}", opts, True, commented))
    return entries, errors


def _stanzas(text: str) -> list[tuple[int, dict[str, str]]]:
    """(first line, fields) of each deb822 stanza; field names as written, continuation lines joined."""
    out: list[tuple[int, dict[str, str]]] = []
    cur: dict[str, str] = {}
    start = 0
    key: str | None = None
    for no, raw in enumerate(text.splitlines(), 1):
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if cur:
                out.append((start, cur))
            cur, key = {}, None
            continue
        if raw[0] in " \t":
            if key is not None:
                cur[key] += "\n" + raw.strip()
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            raise SourcesError(f"line {no} is not a field")
        if not cur:
            start = no
        key = name.strip()
        cur[key] = value.strip()
    if cur:
        out.append((start, cur))
    return out


def parse_deb822(text: str, path: str) -> tuple[list[SourceEntry], list[str]]:
    """(entries, errors) of a ``.sources`` file: one entry per type × URI × suite of each stanza."""
    entries: list[SourceEntry] = []
    errors: list[str] = []
    try:
        stanzas = _stanzas(text)
    except SourcesError as exc:
        return [], [f"Malformed stanza in {path} ({exc})"]
    for n, (line, fields) in enumerate(stanzas, 1):
        low = {k.lower(): v for k, v in fields.items()}
        types = low.get("types", "").split()
        uris = low.get("uris", "").split()
        suites = low.get("suites", "").split()
        comps = tuple(low.get("components", "").split())
        enabled = low.get("enabled", "yes").strip().lower() not in ("no", "false", "0")
        problem = None
        if not types:
            problem = "no Types"
        elif any(t not in ("deb", "deb-src") for t in types):
            problem = f"type '{next(t for t in types if t not in ('deb', 'deb-src'))}' is not known"
        elif not uris:
            problem = "no URIs"
        elif not suites:
            problem = "no Suites"
        elif any(not s.endswith("/") for s in suites) and not comps:
            problem = "no Components"
        if problem is not None:
            if enabled:
                errors.append(f"Malformed entry {n} in sources file {path} ({problem})")
            continue
        skip = {"types", "uris", "suites", "components", "enabled"}
        opts = tuple((k, v) for k, v in fields.items() if k.lower() not in skip)
        for kind in types:
            for uri in uris:
                for suite in suites:
                    entries.append(
                        SourceEntry(
                            kind, uri, suite, comps if not suite.endswith("/") else (), f"{path}:{line}", opts, enabled
                        )
                    )
    return entries, errors


def read_sources(files: dict[str, str]) -> tuple[list[SourceEntry], list[str]]:
    entries: list[SourceEntry] = []
    errors: list[str] = []
    for path, text in files.items():
        parse = parse_deb822 if path.endswith(".sources") else parse_one_line
        got, errs = parse(text, path)
        entries += got
        errors += errs
    return entries, errors


def apt_sources(facts: Facts) -> AptSources:
    """The entries of apt's sources files (apt's file order: sources.list, then sources.list.d sorted)."""
    b = facts.bundle
    notes: list[str] = []
    conf = facts.get(apt_config)
    for key, default in (("Dir::Etc::sourcelist", "sources.list"), ("Dir::Etc::sourceparts", "sources.list.d")):
        s = conf.setting(key)
        if s is not None and s.value.rstrip("/") not in (default, f"/etc/apt/{default}"):
            raise EvidenceError(f'apt reads its sources from {key} "{s.value}" ({s.origin}), which is not read')
    names = sorted({p for p in b.glob(f"{SOURCE_PARTS}/*")} | {p for p in b.stats if p.startswith(SOURCE_PARTS + "/")})
    ignored = [p for p in names if not _PART_NAME.match(p.rsplit("/", 1)[-1])]
    files: dict[str, str] = {}
    for path in [SOURCE_LIST, *(p for p in names if p not in ignored)]:
        text = b.text(path)  # EvidenceError when it could not be read: the sources are then unknown
        if text is not None:
            files[path] = text
        elif path != SOURCE_LIST and path in b.stats and not b.stats[path].is_dir:
            raise EvidenceError(f"{path} was not gathered")
    entries, errors = read_sources(files)
    archs: list[str] = []
    try:
        db = facts.get(packages)
    except EvidenceError:
        db = None
    if db is not None:
        # dpkg is of the native architecture; without it in the status, the most common one is.
        dpkg = [p.arch for p in db.get("dpkg") if p.arch]
        counts = Counter(p.arch for p in db.installed() if p.arch and p.arch != "all")
        if dpkg or counts:
            archs.append(dpkg[0] if dpkg else counts.most_common(1)[0][0])
    archs += [a for a in (b.text(DPKG_ARCH) or "").split() if a not in archs]
    configured = conf.find_list("APT::Architectures")
    if configured:
        archs = [c.value for c in configured]
    rel = parse_os_release(b.text("/etc/os-release") or b.text("/usr/lib/os-release") or "")
    codename = rel.get("VERSION_CODENAME") or rel.get("UBUNTU_CODENAME") or ""
    keyrings = frozenset(p for p in b.stats if p.startswith(tuple(d + "/" for d in KEYRING_DIRS)))
    return AptSources(
        tuple(entries), tuple(files), tuple(ignored), tuple(errors), tuple(archs), codename, keyrings, tuple(notes)
    )
