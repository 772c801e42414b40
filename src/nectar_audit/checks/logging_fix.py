"""Fix plan for check 14: a journal kept on disk, and (by hand) logs sent to a log server over TLS.

journald reads ``journald.conf``, then the drop-ins of ``journald.conf.d`` in /etc, /run and /usr/lib
sorted by name, a later one winning. ``Storage=persistent`` goes into ``nectar-audit.conf``; a drop-in
that sorts after it and sets Storage otherwise is edited on its line. ``systemd-analyze cat-config``
shows what journald will read: the last ``Storage=`` must be ours. journald is then restarted (by systemd,
or by hand where systemd is not PID 1) and asked to flush its runtime journal to /var/log/journal.
Remote logging needs a server the user names (``fix --log-server HOST:PORT``): it is only planned.
"""

from __future__ import annotations

import shlex

from nectar_audit.checks.base import family as host_family
from nectar_audit.facts import Facts
from nectar_audit.facts.system import LoggingState, logging_state
from nectar_audit.remedy import TAG, FileChange, LineEdit, Remedy, Step, apply_line_edits, drop_in

CHECK = "Check-Security-14"
# Where journald's drop-ins live (journald.conf(5)); one name in a later directory does not override.
JOURNALD_DROPINS = ("/etc/systemd/journald.conf.d", "/run/systemd/journald.conf.d",
                    "/usr/local/lib/systemd/journald.conf.d", "/usr/lib/systemd/journald.conf.d")
DROPIN_NAME = "nectar-audit.conf"
DROPIN = f"/etc/systemd/journald.conf.d/{DROPIN_NAME}"
JOURNAL_DIR = "/var/log/journal"
LOG_SERVER_KEY = "log_server"  # Config.extra key set by ``fix --log-server HOST:PORT``
CA_FILE = "/etc/ssl/certs/ca-certificates.crt"

# The Storage= journald will use: the last one of the merged configuration systemd-analyze prints.
VALIDATE = (
    "if command -v systemd-analyze >/dev/null 2>&1; then "
    "systemd-analyze cat-config systemd/journald.conf | "
    "awk -F= '/^[[:space:]]*Storage[[:space:]]*=/ { v = $2; gsub(/[[:space:]]/, \"\", v) } "
    "END { if (v != \"persistent\") { print \"Storage=\" v \" is what journald would use\"; exit 1 } }'; fi"
)
ACTIVATE = (
    "na_f=; if [ -d /run/systemd/system ]; then systemctl restart systemd-journald || exit 1; na_f=1; "
    "elif na_j=$(pidof systemd-journald); then "
    "kill $na_j; while kill -0 $na_j 2>/dev/null; do sleep 0.1; done; "
    "for na_b in /usr/lib/systemd/systemd-journald /lib/systemd/systemd-journald; do "
    "[ -x \"$na_b\" ] && break; done; "
    "(setsid \"$na_b\" </dev/null >/dev/null 2>&1 &); na_f=1; fi; "
    # systemd-journal-flush.service: journald moves its runtime journal to /var/log/journal (retried until
    # the restarted journald answers).
    "if [ -n \"$na_f\" ]; then na_i=0; "
    "until journalctl --flush >/dev/null 2>&1; do na_i=$((na_i + 1)); [ $na_i -lt 100 ] || exit 1; sleep 0.1; done; fi"
)



def _read_after_ours(path: str) -> bool:
    directory, _, name = path.rpartition("/")
    return directory in JOURNALD_DROPINS and name > DROPIN_NAME


def remote_manual(facts: Facts, state: LoggingState) -> str:
    """What to do by hand to send the logs off the host over TLS (the exact configuration once a server
    is named with ``--log-server HOST:PORT``)."""
    server = facts.config.extra.get(LOG_SERVER_KEY)
    family = host_family(facts)
    install = "apt-get install -y rsyslog-gnutls" if family == "debian" else "dnf install -y rsyslog-gnutls"
    if not server:
        return ("send the logs to a log server over TLS: name it with `nectar-audit fix --log-server HOST:PORT` "
                "for the exact configuration")
    host_part, _, port = str(server).rpartition(":")
    host_part = host_part.strip("[]")
    if state.daemons["rsyslog"].installed:
        conf = (f'global(DefaultNetstreamDriverCAFile="{CA_FILE}")\n'
                f'action(type="omfwd" target="{host_part}" port="{port}" protocol="tcp" StreamDriver="gtls" '
                f'StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="{host_part}" '
                'queue.type="LinkedList" queue.filename="nectar-remote" queue.saveOnShutdown="on" '
                'action.resumeRetryCount="-1")\n')
        path = "/etc/rsyslog.d/90-nectar-audit-remote.conf"
        return (f"forward every message to {host_part}:{port} over TLS (the server's certificate must name "
                f"{host_part} and be signed by a CA in {CA_FILE}): {install} && "
                f"printf '%s' {shlex.quote(conf)} > {path} && rsyslogd -N1 && "
                "systemctl restart rsyslog")
    conf = f"[Upload]\nURL=https://{host_part}:{port}\nTrustedCertificateFile={CA_FILE}\n"
    path = "/etc/systemd/journal-upload.conf.d/90-nectar-audit.conf"
    pkg = "apt-get install -y systemd-journal-remote" if family == "debian" else "dnf install -y systemd-journal-remote"
    return (f"upload the journal to https://{host_part}:{port} (systemd-journal-remote must listen there with a "
            f"certificate for {host_part}): {pkg} && mkdir -p {path.rsplit('/', 1)[0]} && "
            f"printf '%s' {shlex.quote(conf)} > {path} && systemctl enable --now systemd-journal-upload")


def plan(facts: Facts) -> Remedy | None:
    """A persistent journal where nothing keeps the logs; remote TLS logging and file modes by hand."""
    state = facts.get(logging_state)
    summary = "logs kept on disk (persistent journal)"
    manual: list[str] = []
    changes: list[FileChange] = []
    commands: list[Step] = []
    d = state.daemons
    keeps = any(d[n].running or (d[n].running is None and d[n].enabled) for n in ("rsyslog", "syslog-ng"))
    nothing_keeps = not keeps and state.journal_persistent is False
    if nothing_keeps and d["systemd-journald"].installed:
        src = state.journald_storage.source or ""
        path, _, line = src.rpartition(":")
        if path and _read_after_ours(path) and line.isdigit():
            text = facts.bundle.text(path)
            lines = (text or "").split("\n")
            n = int(line)
            if text is not None and path.startswith("/etc/") and 0 < n <= len(lines):
                raw = lines[n - 1]
                edit = LineEdit(raw, (f"# {raw}  # replaced by {TAG}", "Storage=persistent"), lines[:n].count(raw))
                after = apply_line_edits(text, [edit])
                if after is not None:
                    changes.append(FileChange(path, text, after, (edit,),
                                              why=f"{CHECK}: journald reads this file after {DROPIN}"))
            if not changes:
                manual.append(f"set Storage=persistent at {src} (journald reads it after {DROPIN})")
        else:
            before = facts.bundle.text(DROPIN)
            change = drop_in(DROPIN, ["[Journal]", "Storage=persistent"], before,
                             f"{CHECK}: the journal is kept on disk across reboots")
            if change.after != before:
                changes.append(change)
        commands.append(Step(f"mkdir -p {JOURNAL_DIR} && if command -v systemd-tmpfiles >/dev/null 2>&1; then "
                             f"systemd-tmpfiles --create --prefix {JOURNAL_DIR}; fi",
                             "the journal's directory, with the group and ACLs systemd gives it"))
    elif nothing_keeps:
        manual.append("install a syslog daemon that keeps logs on disk: "
                      + ("apt-get install -y rsyslog" if host_family(facts) == "debian"
                         else "dnf install -y rsyslog && systemctl enable --now rsyslog"))
    if not state.channels or any(ch.transport in ("udp", "tcp", "relp", "http") or not ch.authenticated
                                 for ch in state.channels):
        manual.append(remote_manual(facts, state))
    for lf in state.log_files:
        if lf.world_writable or (lf.world_readable and lf.auth):
            bits = "o-rw" if lf.world_readable else "o-w"
            manual.append(f"{lf.path} is {'world-writable' if lf.world_writable else 'world-readable'}: "
                          f"chmod {bits} {shlex.quote(lf.path)} (and the create mode of its logrotate entry)")
    if not changes and not commands:
        return Remedy(CHECK, "send logs off the host over TLS", manual=tuple(manual)) if manual else None
    validate = (Step(VALIDATE, "the merged journald configuration (systemd-analyze cat-config) ends with "
                     "Storage=persistent"),)
    activate = (Step(ACTIVATE, "journald restarts with the new Storage= and flushes to /var/log/journal"),)
    notes = (f"undo leaves {JOURNAL_DIR} in place (with Storage=auto journald keeps using it; remove it to go "
             "back to a volatile journal)",)
    return Remedy(CHECK, summary, (), tuple(changes), tuple(commands), validate, activate, tuple(manual),
                  notes=notes)
