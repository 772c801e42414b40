"""sshd_config keywords: aliases, where they may appear, how their values accumulate, defaults."""

from __future__ import annotations

from collections.abc import Sequence

# --------------------------------------------------------------------------------------------------
# Keywords
# --------------------------------------------------------------------------------------------------
ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "skeyauthentication": "kbdinteractiveauthentication",
    "hostdsakey": "hostkey",
    "dsaauthentication": "pubkeyauthentication",
    "pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms",
    "hostbasedacceptedkeytypes": "hostbasedacceptedalgorithms",
    "keepalive": "tcpkeepalive",
    "useblocklist": "useblacklist",
}
# Keywords sshd refuses inside a Match block (SSHCFG_GLOBAL only): "not allowed within a Match block".
GLOBAL_ONLY = frozenset(
    {
        "usepam",
        "port",
        "hostkey",
        "hostkeyagent",
        "pidfile",
        "modulifile",
        "logingracetime",
        "syslogfacility",
        "hostkeyalgorithms",
        "kerberosorlocalpasswd",
        "kerberosticketcleanup",
        "kerberosgetafstoken",
        "gssapicleanupcredentials",
        "gssapistrictacceptorcheck",
        "listenaddress",
        "addressfamily",
        "printmotd",
        "printlastlog",
        "ignoreuserknownhosts",
        "xauthlocation",
        "strictmodes",
        "permituserenvironment",
        "compression",
        "tcpkeepalive",
        "ciphers",
        "macs",
        "subsystem",
        "maxstartups",
        "persourcemaxstartups",
        "persourcenetblocksize",
        "usedns",
        "hostcertificate",
        "kexalgorithms",
        "versionaddendum",
        "fingerprinthash",
        "securitykeyprovider",
        "useblacklist",
    }
)
# Every line adds to the list (a Match block's list replaces the global one).
ACCUMULATE = frozenset(
    {
        "port",
        "listenaddress",
        "hostkey",
        "hostcertificate",
        "acceptenv",
        "allowusers",
        "denyusers",
        "allowgroups",
        "denygroups",
        "subsystem",
    }
)
# yes/no style keywords whose value sshd reads case-insensitively.
FLAG_VALUES = frozenset({"yes", "no"})
# Values sshd accepts for the keywords the checks read; anything else stops sshd ("unsupported option").
VALID_VALUES: dict[str, frozenset[str]] = {
    **{
        kw: FLAG_VALUES
        for kw in (
            "passwordauthentication",
            "kbdinteractiveauthentication",
            "usepam",
            "permitemptypasswords",
            "pubkeyauthentication",
        )
    },
    "permitrootlogin": frozenset(
        {"yes", "no", "prohibit-password", "without-password", "forced-commands-only"}
    ),
}

DEFAULTS: dict[str, str] = {
    "port": "22",
    "passwordauthentication": "yes",
    "kbdinteractiveauthentication": "yes",
    "usepam": "no",
    "permitrootlogin": "prohibit-password",
    "permitemptypasswords": "no",
    "pubkeyauthentication": "yes",
    "hostbasedauthentication": "no",
    "gssapiauthentication": "no",
    "kerberosauthentication": "no",
    "authenticationmethods": "any",
    "authorizedkeysfile": ".ssh/authorized_keys .ssh/authorized_keys2",
    "authorizedkeyscommand": "none",
    "usedns": "no",
    "addressfamily": "any",
    "allowusers": "",
    "denyusers": "",
    "allowgroups": "",
    "denygroups": "",
    "refuseconnection": "no",
}

DISPLAY_NAMES = {
    k.lower(): k
    for k in (
        "PasswordAuthentication",
        "KbdInteractiveAuthentication",
        "UsePAM",
        "PermitRootLogin",
        "PermitEmptyPasswords",
        "PubkeyAuthentication",
        "AuthenticationMethods",
        "AuthorizedKeysFile",
        "AuthorizedKeysCommand",
        "AllowUsers",
        "DenyUsers",
        "AllowGroups",
        "DenyGroups",
        "Port",
        "ListenAddress",
        "RefuseConnection",
        "UseDNS",
        "AddressFamily",
    )
}

MATCH_CRITERIA = (
    "all",
    "user",
    "group",
    "host",
    "address",
    "localaddress",
    "localport",
    "rdomain",
    "version",
    "invalid-user",
)


def canonical(keyword: str) -> str:
    kw = keyword.lower()
    return ALIASES.get(kw, kw)


def normalize_value(keyword: str, args: Sequence[str]) -> str:
    """The value as sshd -T prints it for the keywords the checks read; others joined as written."""
    value = " ".join(args)
    low = value.lower()
    if keyword == "permitrootlogin":
        return "prohibit-password" if low == "without-password" else low
    if low in FLAG_VALUES:
        return low
    return value
