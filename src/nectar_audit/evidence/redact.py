"""One redaction pass over every piece of host text kept as evidence (files and command output alike).

Fact packs reduce the files whose format they know (``/etc/shadow`` to hash algorithms, key files to
fingerprints); this pass catches secrets wherever else they sit, in any syntax we read: private-key
blocks of any size, credentials in URLs, crypt hashes, assignments of password/token/secret-like keys
(``key = v``, ``key: v``, ``key("v")``, ``key=v`` on a command line), cloud-init's ``chpasswd`` lists,
postfix ``static:user:pass``, rsyslog's legacy ``:ommysql:`` and the secret-taking flags of common
commands (``sshpass -p``, ``mysql -pX``, ``curl -u user:pass``). Each part scans the text once, from
literal anchors, so its cost is linear in the text whatever the host wrote.
"""

from __future__ import annotations

import functools
import re

MARK = "<redacted>"

_BEGIN = "-----BEGIN "
_KEY_KINDS = ("PRIVATE KEY-----", "PRIVATE KEY BLOCK-----")
# Keys whose value is a secret, matched whole (case-insensitively), or as the end of a longer key.
_SECRET_KEYS = frozenset({
    "password", "passwd", "pass", "pwd", "passphrase", "secret", "token", "apikey", "api_key", "api-key",
    "apitoken", "api_token", "plain_text_passwd", "hashed_passwd", "access_key", "secret_key",
    "auth_token", "client_secret", "cftoken", "cfkey", "private_token", "bearer",
})
_SECRET_SUFFIXES = ("_password", "-password", "_passwd", "_secret", "-secret", "_token", "-token", "_apikey",
                    "_api_key", "-api-key", "_pass", "_pwd")
# An assignment: a key, then "=" / ":" / "(" (syslog-ng's password("...")), then the value.
# Where a key may name a secret: the text is searched for these stems (in C), and only the words around
# them are looked at (one expression over every "word:" of dpkg's status cost a third of a scan).
_STEMS = ("pass", "pwd", "secret", "token", "apikey", "api_key", "api-key", "api.key", "access_key", "bearer",
          "cfkey")
# ASCII lower case that keeps every index (str.lower may not: "İ" becomes two characters).
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SEP_OR_EOL = re.compile(r"[=:(\n]")
_CRYPT = re.compile(r"\$(?:1|2[abxy]?|5|6|7|y|gy|sha1|md5)\$[./A-Za-z0-9]{2,}\$?[./A-Za-z0-9$]{0,200}")
_FLAG_SECRETS = re.compile(r"(?<![\w-])(--password|--passwd|--pass|-u|--user)(=|[ \t]+)(\S+)")
_SSHPASS = re.compile(r"(\bsshpass\s+(?:-\w+\s+)*?-p)(\s*)(\S+)")
_VALUE_END = frozenset(" \t\r\n;,)\"'")
_CHPASSWD_KEEP = frozenset({"list", "expire", "users", "name", "type"})
# nginx/Apache set headers by name and value: a secret-looking header's value, and any Authorization.
_HEADER = re.compile(r"(?i)((?:proxy_set_header|add_header|more_set_headers|RequestHeader[ \t]+set|Header[ \t]+set)"
                     r"[ \t]+([\w-]+)[ \t]+)(\"[^\"\n]*\"|[^\s;]+)")
# A header name that carries a secret (matched on the name alone: one expression around the stem
# backtracked quadratically on a long name).
_SECRET_HEADER = re.compile(r"(?i)token|secret|key|auth")
_AUTHORIZATION = re.compile(r"(?i)(authorization:?[ \t]+\"?(?:basic|bearer|token)[ \t]+)([^\s\";]+)")


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``<redacted>``; everything else kept as it was.
    Remembered by content: the hosts of a fleet share most of their files."""
    if not text:
        return text
    return _redact_shared(text) if len(text) <= _CACHED_MAX else _redact(text)


_CACHED_MAX = 1024 * 1024


@functools.lru_cache(maxsize=4096)
def _redact_shared(text: str) -> str:
    return _redact(text)


def _redact(text: str) -> str:
    text = _private_keys(text)
    if "://" in text:
        text = _url_credentials(text)
    if "$" in text:
        text = _CRYPT.sub(MARK, text)
    if "chpasswd" in text:
        text = _chpasswd(text)
    if "static:" in text:
        text = _postfix_static(text)
    if ":ommysql:" in text:
        text = _ommysql(text)
    text = _headers(text)
    return _assignments(text)


def redact_args(args: str) -> str:
    """A command line: ``redact`` plus the values of flags that take secrets (``-pX`` as mysql takes it,
    ``-p X`` after sshpass, ``-u user:pass``, ``--password X``)."""
    return redact_flags(redact(args))


def redact_flags(args: str) -> str:
    """The values of flags that take secrets, alone (``redact_args`` without the general pass)."""
    # Every flag below holds "-p" or "-u" (--pass*, --user, sshpass's -p): most command lines have neither.
    if "-p" not in args and "-u" not in args:
        return args

    def flag(m: re.Match[str]) -> str:
        name, sep, value = m.group(1), m.group(2) or "", m.group(3)
        if value.startswith("-") or value == MARK:
            return m.group(0)
        if name in ("-u", "--user"):
            user, colon, _ = value.partition(":")
            return f"{name}{sep}{user}:{MARK}" if colon else m.group(0)
        return f"{name}{sep}{MARK}"

    args = _FLAG_SECRETS.sub(flag, args)
    args = _SSHPASS.sub(lambda m: m.group(0) if m.group(3) == MARK else f"{m.group(1)}{m.group(2)}{MARK}", args)
    # mysql/mysqldump -pSECRET (no space)
    return re.sub(r"(?<![\w-])-p(?=[^\s=<])(?!\d+\b)\S+", f"-p{MARK}", args)


def _private_keys(text: str) -> str:
    out: list[str] = []
    pos = 0
    while True:
        start = text.find(_BEGIN, pos)
        if start < 0:
            break
        head_end = text.find("-----", start + len(_BEGIN))
        line_end = text.find("\n", start)
        label = text[start:head_end + 5] if head_end >= 0 else ""
        if head_end < 0 or (0 <= line_end < head_end) or not label.endswith(_KEY_KINDS):
            out.append(text[pos:start + len(_BEGIN)])
            pos = start + len(_BEGIN)
            continue
        end = text.find("-----END ", head_end + 5)
        stop = text.find("-----", end + 9) if end >= 0 else -1
        out.append(text[pos:head_end + 5])
        out.append(f"\n{MARK}\n")
        if stop < 0:  # a key cut short: everything after its header is key material
            pos = len(text)
            break
        out.append(text[end:stop + 5])
        pos = stop + 5
    out.append(text[pos:])
    return "".join(out)


def _url_credentials(text: str) -> str:
    out: list[str] = []
    pos = 0
    while True:
        at = text.find("://", pos)
        if at < 0:
            break
        start = at + 3
        end = start
        while end < len(text) and text[end] not in "/ \t\r\n\"'<>@" and end - start < 512:
            end += 1
        if end < len(text) and text[end] == "@" and ":" in text[start:end]:
            user = text[start:text.index(":", start)]
            out.append(text[pos:start] + user + ":" + MARK)
            pos = end
        else:
            out.append(text[pos:start])
            pos = start
    out.append(text[pos:])
    return "".join(out)


def _is_secret_key(key: str) -> bool:
    low = key.lower()
    return low in _SECRET_KEYS or low.endswith(_SECRET_SUFFIXES)


def _ascii_lower(text: str) -> str:
    # str.lower is ten times faster than translate, and keeps every index where the text is ASCII only
    # (isascii is a flag of the string: no scan).
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _headers(text: str) -> str:
    """Header secrets, looked for only on the lines that name a header or an Authorization."""
    low = _ascii_lower(text)
    starts = sorted({low.rfind("\n", 0, i) + 1 for word in ("header", "authorization")
                     for i in _all(low, word)})
    if not starts:
        return text
    out: list[str] = []
    pos = 0
    for start in starts:
        if start < pos:
            continue
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = _AUTHORIZATION.sub(rf"\1{MARK}", _HEADER.sub(_header_value, text[start:end]))
        out.append(text[pos:start])
        out.append(line)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _header_value(m: re.Match[str]) -> str:
    return m.group(1) + MARK if _SECRET_HEADER.search(m.group(2)) else m.group(0)


def _all(low: str, word: str) -> list[int]:
    found = []
    i = low.find(word)
    while i >= 0:
        found.append(i)
        i = low.find(word, i + 1)
    return found


def _hints(text: str) -> list[tuple[int, int]]:
    """Where a secret's stem stands, in order: found with str.find over an ASCII-lowered copy (a regular
    expression with a case-insensitive alternation scanned the text ten times slower)."""
    low = _ascii_lower(text)
    found = []
    for stem in _STEMS:
        i = low.find(stem)
        while i >= 0:
            found.append((i, i + len(stem)))
            i = low.find(stem, i + 1)
    found.sort()
    return found


def _is_word(c: str) -> bool:
    return c.isalnum() or c in "_.-"


def _assignments(text: str) -> str:
    out: list[str] = []
    pos = 0
    seen = 0  # the end of the last word looked at (a word holds the stem once for us)
    n = len(text)
    for h_start, h_end in _hints(text):
        if h_start < max(pos, seen):
            continue
        sep_at = _SEP_OR_EOL.search(text, h_end, h_end + 40)
        if sep_at is None or sep_at.group() == "\n":  # no separator on this line: no assignment
            continue
        start = h_start
        while start > 0 and h_start - start < 40 and _is_word(text[start - 1]):
            start -= 1
        end = h_end
        while end < n and end - h_end < 24 and _is_word(text[end]):
            end += 1
        seen = end
        if (start > 0 and _is_word(text[start - 1])) or not text[start].isalpha():
            continue  # not a whole key: the tail of a longer name, or a number
        if not _is_secret_key(text[start:end]):
            continue
        i = end
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "=:":
            sep = text[i]
            i += 1
            while i < n and text[i] in " \t":
                i += 1
        elif i == end and i + 1 < n and text[i] == "(" and text[i + 1] in "\"'":
            sep = "("
            i += 1
        else:
            continue
        if i >= n or text[i] in "\r\n":
            continue
        if text[i] in "\"'":
            close = text.find(text[i], i + 1)
            line_end = text.find("\n", i)
            unclosed = close < 0 or 0 <= line_end < close  # then the rest of the line is the value
            value_end = (line_end if line_end >= 0 else n) if unclosed else close + 1
        else:
            value_end = i
            while value_end < n and text[value_end] not in _VALUE_END:
                value_end += 1
            if sep != "=" and value_end == i:
                continue
        if value_end == i or text[i:value_end] in (MARK, f'"{MARK}"', f"'{MARK}'"):
            continue
        out.append(text[pos:i])
        out.append(MARK)
        pos = seen = value_end
    out.append(text[pos:])
    return "".join(out)


def _chpasswd(text: str) -> str:
    """cloud-init's ``chpasswd: {list: |\\n user:pass ...}`` (and its ``users:`` form): every ``name:VALUE``
    line under it keeps the name only."""
    lines = text.split("\n")
    block = -1
    for k, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if stripped.startswith("chpasswd:"):
            block = indent
            continue
        if block < 0 or not stripped:
            continue
        if indent <= block and not stripped.startswith("-"):
            block = -1
            continue
        item = stripped[2:].lstrip() if stripped.startswith("- ") else stripped
        name, colon, value = item.partition(":")
        if colon and value.strip() and name.strip().lower() not in _CHPASSWD_KEEP and " " not in name.strip():
            lines[k] = line[: len(line) - len(item)] + f"{name}:{MARK}"
    return "\n".join(lines)


def _postfix_static(text: str) -> str:
    return re.sub(r"(static:[^:\s,]*):[^\s,]+", rf"\1:{MARK}", text)


def _ommysql(text: str) -> str:
    # :ommysql:HOST,DB,USER,PASSWORD[;template]
    return re.sub(r"(:ommysql:[^,\s]*,[^,\s]*,[^,\s]*,)[^;\s]+", rf"\1{MARK}", text)
