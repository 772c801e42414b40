"""apt's configuration tree, merged the way apt itself merges it.

Live hosts: ``apt-config dump`` prints the merged tree apt uses (no root needed), which is
authoritative. Offline images (or when apt-config is missing): the files are parsed here with a
faithful port of apt's ``ReadConfigFile`` (apt-pkg/contrib/configuration.cc): nested scopes
``APT { Periodic { ... }; };``, ``::`` paths, lists (``"a"; "b";`` inside a scope, ``X:: "v";``),
``#clear``, ``#include``, ``//``, ``#`` and ``/* */`` comments, quoted and unquoted values; files of
``/etc/apt/apt.conf.d`` are read in apt's order (byte-sorted names, only names of ``[A-Za-z0-9_.-]``
without an extension or ending in ``.conf``), then ``/etc/apt/apt.conf``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nectar_audit.evidence import Needs

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

PARTS_DIR = "/etc/apt/apt.conf.d"
MAIN_FILE = "/etc/apt/apt.conf"
DUMP_COMMAND = "apt-config dump"

NEEDS = Needs(
    files=(f"{PARTS_DIR}/*", MAIN_FILE),
    commands={"apt.config": f"command -v apt-config >/dev/null 2>&1 || exit 127\nwith_timeout 10 {DUMP_COMMAND}"},
)

_SPACE = " \t\n\r\f\v"


@dataclass
class Node:
    tag: str
    value: str = ""
    origin: str | None = None  # "path:line" (or "command: apt-config dump") where it was last set
    children: list[Node] = field(default_factory=list)
    parent: Node | None = field(default=None, repr=False)
    # Lower-cased tag -> the child of that tag (tags are unique but for list items, which have none):
    # a dump sets hundreds of keys, each looked up level by level.
    index: dict[str, Node] = field(default_factory=dict, repr=False, compare=False)

    def child(self, tag: str, create: bool) -> Node | None:
        if tag:
            low = tag.lower()
            found = self.index.get(low)
            if found is not None:
                return found
        if not create:
            return None
        node = Node(tag, parent=self)
        self.children.append(node)
        if tag:
            self.index[low] = node
        return node

    def full_tag(self) -> str:
        if self.parent is None or self.parent.parent is None:
            return self.tag
        return self.parent.full_tag() + "::" + self.tag


@dataclass(frozen=True)
class Setting:
    value: str
    origin: str | None


class AptConfig:
    """apt's Configuration class: case-insensitive ``A::B::C`` keys, values and lists."""

    def __init__(self, source: str = "files") -> None:
        self.root = Node("")
        self.source = source  # "command: apt-config dump" or "files"
        self.errors: list[str] = []  # syntax errors: apt itself refuses to run with any of these
        self.files: list[str] = []  # files read, in order
        self.notes: list[str] = []  # things that could not be followed (includes outside the evidence)

    # -- Configuration::Lookup ------------------------------------------------------------------
    def lookup(self, name: str, create: bool = False) -> Node | None:
        node: Node | None = self.root
        start = 0
        at = name.find("::")
        while at >= 0:
            assert node is not None
            node = node.child(name[start:at], create)
            if node is None:
                return None
            start = at + 2
            # apt steps one character past a separator before looking again: ":::" is "::" then ":".
            at = name.find("::", at + 3)
        if len(name) == start and not create:
            return None
        assert node is not None
        return node.child(name[start:], create)

    def set(self, name: str, value: str, origin: str | None = None) -> None:
        node = self.lookup(name, create=True)
        if node is not None:
            node.value = value
            node.origin = origin

    def clear(self, name: str) -> None:
        node = self.lookup(name)
        if node is not None:
            node.value = ""
            node.children = []
            node.index = {}

    # -- queries ---------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return self.lookup(name) is not None

    def find(self, name: str, default: str | None = None) -> str | None:
        node = self.lookup(name)
        if node is None or not node.value:
            return default
        return node.value

    def setting(self, name: str) -> Setting | None:
        node = self.lookup(name)
        if node is None or not node.value:
            return None
        return Setting(node.value, node.origin)

    def find_list(self, name: str) -> list[Setting]:
        """Configuration::FindVector: a comma-separated value, else the children's values."""
        node = self.lookup(name)
        if node is None:
            return []
        if node.value:
            return [Setting(v, node.origin) for v in node.value.split(",")]
        return [Setting(c.value, c.origin) for c in node.children]

    def dump(self, root: str | None = None) -> str:
        """``apt-config dump [root]`` format (``Full::Tag "value";`` per node, depth first)."""
        out: list[str] = []

        def walk(n: Node) -> None:
            out.append(f'{_quote(n.full_tag())} "{n.value}";')
            for c in n.children:
                walk(c)

        if root is None:
            for c in self.root.children:
                walk(c)
        else:
            top = self.lookup(root)
            if top is not None:
                walk(top)
        return "\n".join(out) + ("\n" if out else "")


def _quote(tag: str) -> str:
    res = []
    for ch in tag:
        o = ord(ch)
        if ch in '="\n%' or o <= 0x20 or o >= 0x7F:
            res.append("".join(f"%{b:02x}" for b in ch.encode()))
        else:
            res.append(ch)
    return "".join(res)


# -- apt's word parsers (strutl.cc) --------------------------------------------------------------


def _isspace(c: str) -> bool:
    return c in _SPACE


# A word with nothing to de-quote, ended by a blank or the end: most words of a real file.
_PLAIN_WORD = re.compile(r'( *[^ \t\n\r\f\v"\[%]+)(?=[ \t\n\r\f\v]|\Z) *')


def parse_quote_word(s: str) -> tuple[str, str] | None:
    """ParseQuoteWord: one word with "quoted" and [bracketed] parts; %xx decoded. (word, rest)."""
    plain = _PLAIN_WORD.match(s)
    if plain is not None:
        return plain.group(1), s[plain.end():]
    return _quote_word_by_chars(s)


def _quote_word_by_chars(s: str) -> tuple[str, str] | None:
    """ParseQuoteWord as strutl.cc writes it, one character at a time."""
    c = 0
    n = len(s)
    while c < n and s[c] == " ":
        c += 1
    if c >= n:
        return None
    while c < n and not _isspace(s[c]):
        if s[c] == '"':
            c += 1
            while c < n and s[c] != '"':
                c += 1
            if c >= n:
                return None
        if s[c] == "[":
            c += 1
            while c < n and s[c] != "]":
                c += 1
            if c >= n:
                return None
        c += 1
    buf = []
    k = 0
    while k != c:
        if (
            s[k] == "%"
            and k + 2 < c
            and s[k + 1] in "0123456789abcdefABCDEF"
            and s[k + 2] in "0123456789abcdefABCDEF"
        ):
            buf.append(chr(int(s[k + 1 : k + 3], 16)))
            k += 3
            continue
        if s[k] != '"':
            buf.append(s[k])
        k += 1
    while c < n and s[c] == " ":
        c += 1
    return "".join(buf), s[c:]


def parse_cword(s: str) -> tuple[str, str] | None:
    """ParseCWord: a sequence of "quoted strings" separated by blanks (joined by one space)."""
    c = 0
    n = len(s)
    while c < n and s[c] == " ":
        c += 1
    if c >= n:
        return None
    buf = []
    while c < n:
        if s[c] == '"':
            c += 1
            while c < n and s[c] != '"':
                buf.append(s[c])
                c += 1
            if c >= n:
                return None
            c += 1
            continue
        if c != 0 and _isspace(s[c]) and _isspace(s[c - 1]):
            c += 1
            continue
        if not _isspace(s[c]):
            return None
        buf.append(" ")
        c += 1
    return "".join(buf), ""


# -- ReadConfigFile ------------------------------------------------------------------------------

_MAGIC = ("clear", "include", "x-apt-configure-index")


def _strip_comments(line: str, in_comment: bool) -> tuple[str, bool]:
    if in_comment:
        end = line.find("*/")
        if end < 0:
            return "", True
        line = line[end + 2 :]
        in_comment = False
    start = 0
    while True:
        start = line.find("//", start)
        if start < 0:
            break
        if line.count('"', 0, start) % 2 != 0:
            start += 1
            continue
        line = line[:start]
        break
    start = 0
    while True:
        start = line.find("#", start)
        if start < 0:
            break
        if line.count('"', 0, start) % 2 != 0 or any(line.startswith(m, start + 1) for m in _MAGIC):
            start += 1
            continue
        line = line[:start]
        break
    fragment = []
    start = 0
    while True:
        start = line.find("/*", start)
        if start < 0:
            break
        if line.count('"', 0, start) % 2 != 0:
            start += 2
            continue
        fragment.append(line[:start])
        end = line.find("*/", start + 2)
        if end < 0:
            line = ""
            in_comment = True
            break
        line = line[end + 2 :]
        start = 0
    if line:
        fragment.append(line)
    return "".join(fragment), in_comment


def read_config_text(
    conf: AptConfig, text: str, fname: str, *, files: Mapping[str, str] | None = None, depth: int = 0
) -> bool:
    """Merge one file's text into ``conf``; False (and an entry in conf.errors) on a syntax error.

    Like apt, everything set before the error stays set. ``files`` maps other gathered paths to their
    text so ``#include`` can be followed.
    """
    conf.files.append(fname)
    stack: list[str] = []
    parent_tag = ""
    line_buffer = ""
    in_comment = False

    def error(lineno: int, msg: str) -> bool:
        conf.errors.append(f"Syntax error {fname}:{lineno}: {msg}")
        return False

    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, raw in enumerate(lines, 1):
        inp = raw.replace("\t", "        ").strip(_SPACE)
        fragment, in_comment = _strip_comments(inp, in_comment)
        if not fragment:
            continue
        in_quote = False
        start = 0
        for i, ch in enumerate(fragment):
            if ch == '"':
                in_quote = not in_quote
            if in_quote or ch not in "{;}":
                continue
            piece = fragment[start:i].strip(_SPACE)
            if line_buffer and piece:
                line_buffer += " "
            line_buffer += piece
            term = ch
            start = i + 1
            if term == "{" and not line_buffer:
                return error(lineno, "Block starts with no name.")
            if not line_buffer:
                if term == "}":
                    parent_tag = stack.pop() if stack else ""
                continue
            parsed = parse_quote_word(line_buffer)
            if parsed is None:
                return error(lineno, "Malformed tag")
            tag, pos = parsed
            no_word = False
            word = ""
            got = parse_cword(pos) or parse_quote_word(pos)
            if got is not None:
                word, pos = got
            elif term != "{":
                word, tag = tag, ""
            else:
                no_word = True
            if pos:
                return error(lineno, "Extra junk after value")
            if term == "{":
                stack.append(parent_tag)
                parent_tag = tag if not parent_tag else f"{parent_tag}::{tag}"
                tag = ""
            if not parent_tag:
                item = tag
            elif term != "{" or tag:
                item = f"{parent_tag}::{tag}"
            else:
                item = parent_tag
            if tag.startswith("#"):
                if parent_tag:
                    return error(lineno, "Directives can only be done at the top level")
                directive = tag[1:]
                if directive == "clear":
                    conf.clear(word)
                elif directive == "include":
                    if depth > 10:
                        return error(lineno, "Too many nested includes")
                    if not _include(conf, word, files, depth + 1):
                        return error(lineno, "Included from here")
                elif directive == "x-apt-configure-index":
                    pass
                else:
                    return error(lineno, f"Unsupported directive '{directive}'")
            elif not tag and not no_word and word == "#clear":
                return error(lineno, "clear directive requires an option tree as argument")
            elif not no_word:
                conf.set(item, word, f"{fname}:{lineno}")
            line_buffer = ""
            if term == "}":
                parent_tag = stack.pop() if stack else ""
        rest = fragment[start:].strip(_SPACE)
        if rest and line_buffer:
            line_buffer += " "
        line_buffer += rest
    if line_buffer:
        return error(len(lines), "Extra junk at end of file")
    return True


def _include(conf: AptConfig, target: str, files: Mapping[str, str] | None, depth: int) -> bool:
    if files is None:
        conf.notes.append(f"#include {target} was not followed (not part of the evidence)")
        return True
    if len(target) > 2 and target.endswith("/"):
        names = [p for p in files if p.startswith(target) and "/" not in p[len(target) :]]
        ok = True
        for path in apt_conf_order(names):
            ok = read_config_text(conf, files[path], path, files=files, depth=depth) and ok
        return ok
    if target not in files:
        conf.notes.append(f"#include {target} was not followed (not part of the evidence)")
        return True
    return read_config_text(conf, files[target], target, files=files, depth=depth)


_GOOD_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def accepted_part(name: str) -> bool:
    """Whether apt reads a file of that name from a .d directory (GetListOfFilesInDir, ext "conf")."""
    if name.startswith(".") or not _GOOD_NAME.fullmatch(name) or name.endswith("."):
        return False
    dot = name.rfind(".")
    return dot < 0 or name[dot + 1 :] == "conf"


def apt_conf_order(paths: Iterable[str]) -> list[str]:
    """The files apt reads from one directory, in its order (std::sort of the full paths: bytewise)."""
    chosen = [p for p in paths if accepted_part(p.rsplit("/", 1)[-1])]
    return sorted(chosen, key=lambda p: p.encode("utf-8", "surrogateescape"))


def parse_apt_config_dump(text: str) -> AptConfig:
    """The merged tree printed by ``apt-config dump`` (``Full::Tag "value";`` per line)."""
    conf = AptConfig(source=f"command: {DUMP_COMMAND}")
    origin = f"command: {DUMP_COMMAND}"
    for line in text.splitlines():
        m = _DUMP_LINE.fullmatch(line.rstrip("\r"))
        if m is None:
            continue
        tag = m.group(1)
        if "%" in tag:
            tag = _PERCENT.sub(lambda mm: chr(int(mm.group(1), 16)), tag)
        conf.set(tag, m.group(2), origin)
    return conf


_DUMP_LINE = re.compile(r'(\S+) "(.*)";')
_PERCENT = re.compile(r"%([0-9a-fA-F]{2})")


def merge_files(files: Mapping[str, str], parts_dir: str = PARTS_DIR, main: str = MAIN_FILE) -> AptConfig:
    """apt's pkgInitConfig order: every accepted file of the parts directory, then the main file."""
    conf = AptConfig()
    for path in apt_conf_order(
        p for p in files if p.startswith(parts_dir + "/") and "/" not in p[len(parts_dir) + 1 :]
    ):
        read_config_text(conf, files[path], path, files=files)
    if main in files:
        read_config_text(conf, files[main], main, files=files)
    return conf


# -- the fact ------------------------------------------------------------------------------------


def apt_config(facts: Facts) -> AptConfig:
    """apt's merged configuration: ``apt-config dump`` when it ran, else the parsed files.

    When both exist the dump's values win and the files only supply where each value was set.
    """
    b = facts.bundle
    texts: dict[str, str] = {}
    for path in (*b.glob(f"{PARTS_DIR}/*"), MAIN_FILE):
        text = b.text(path)
        if text is not None:
            texts[path] = text
    from_files = merge_files(texts)
    cmd = b.command("apt.config")
    if cmd is None or cmd.rc != 0 or not cmd.stdout.strip():
        return from_files
    dumped = parse_apt_config_dump(cmd.stdout)
    dumped.files = from_files.files
    dumped.notes = from_files.notes
    _attach_origins(dumped.root, from_files)
    return dumped


def _attach_origins(node: Node, files: AptConfig) -> None:
    # A dumped value keeps the file:line of the same value in the parsed files; list items match by
    # position, which is how both trees were built.
    for c in node.children:
        other = files.lookup(c.full_tag()) if c.tag else None
        if other is not None and other.value == c.value and other.origin:
            c.origin = other.origin
        if c.children and not c.value:
            twin = files.lookup(c.full_tag())
            if twin is not None:
                listed = [x for x in c.children if not x.tag]
                theirs = [x for x in twin.children if not x.tag]
                if len(listed) == len(theirs):
                    for mine, other_item in zip(listed, theirs):
                        if mine.value == other_item.value and other_item.origin:
                            mine.origin = other_item.origin
        _attach_origins(c, files)
