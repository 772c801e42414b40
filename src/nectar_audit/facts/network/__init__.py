"""Network services: DNS recursion, mail, NTP, plaintext listeners, and what the firewall lets reach them.

Other packs and the checks import this pack only from here. ``NEEDS`` is the evidence of every module
of the pack and of the packs it builds on.
"""

from __future__ import annotations

from nectar_audit.evidence import merge
from nectar_audit.facts import accounts, firewall, net, ssh, system, updates
from nectar_audit.facts.network.dns import (
    BIND_CONFS,
    DNSMASQ_CONF,
    DNSMASQ_DEFAULT,
    UNBOUND_CONF,
    DnsServer,
    Scope,
    bind_statements,
    dns_servers,
    match_process,
    parse_shell_vars,
)
from nectar_audit.facts.network.dns import NEEDS as _dns_needs
from nectar_audit.facts.network.mail import (
    DOVECOT_CONF,
    EXIM_CONFS,
    EXIM_DEBIAN,
    EXIM_LOCALMACROS,
    PORTS,
    POSTFIX_MAIN,
    MailServer,
    dovecot_settings,
    mail_servers,
    parse_main_cf,
    postfix_param,
)
from nectar_audit.facts.network.mail import NEEDS as _mail_needs
from nectar_audit.facts.network.ntp import MONLIST_FIXED, NtpServer, chrony_subnet, ntp_servers, parse_chrony_conf
from nectar_audit.facts.network.ntp import NEEDS as _ntp_needs
from nectar_audit.facts.network.plaintext import (
    NEEDS as _plaintext_needs,
)
from nectar_audit.facts.network.plaintext import (
    ServiceExposure,
    exposures,
    unidentified,
)
from nectar_audit.facts.network.planned import NEEDS as _planned_needs
from nectar_audit.facts.network.planned import (
    PlannedListener,
    ServicePlan,
    Undecided,
    planned_exposures,
    planned_unidentified,
    service_plan,
)
from nectar_audit.facts.network.reach import firewall_reach, limit, merge_reach

NEEDS = merge(
    [
        _dns_needs,
        _mail_needs,
        _ntp_needs,
        _plaintext_needs,
        _planned_needs,
        net.NEEDS,
        accounts.NEEDS,
        firewall.NEEDS,
        ssh.NEEDS,
        system.NEEDS,
        updates.NEEDS,
    ]
)

__all__ = [
    "BIND_CONFS",
    "DNSMASQ_CONF",
    "DNSMASQ_DEFAULT",
    "DOVECOT_CONF",
    "EXIM_CONFS",
    "EXIM_DEBIAN",
    "EXIM_LOCALMACROS",
    "MONLIST_FIXED",
    "NEEDS",
    "PORTS",
    "POSTFIX_MAIN",
    "UNBOUND_CONF",
    "DnsServer",
    "MailServer",
    "NtpServer",
    "PlannedListener",
    "Scope",
    "ServiceExposure",
    "ServicePlan",
    "Undecided",
    "bind_statements",
    "chrony_subnet",
    "dns_servers",
    "dovecot_settings",
    "exposures",
    "firewall_reach",
    "limit",
    "mail_servers",
    "match_process",
    "merge_reach",
    "ntp_servers",
    "parse_chrony_conf",
    "parse_main_cf",
    "parse_shell_vars",
    "planned_exposures",
    "planned_unidentified",
    "postfix_param",
    "service_plan",
    "unidentified",
]
