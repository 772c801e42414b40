"""Check-Security-04: have you upgraded the operating system kernel (and rebooted into it)?"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nectar_audit.checks.base import Check, for_family
from nectar_audit.evidence import EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.facts import updates as updates_facts
from nectar_audit.facts.updates import (
    LISTS,
    InstalledKernel,
    KernelState,
    NoPackageLists,
    PendingUpdate,
    apt_kernel_updates,
    kernel_flavour,
    kernel_state,
    pending_updates,
)
from nectar_audit.model import Evidence, Finding, Status

REBOOT_FIX = "Schedule a maintenance window and reboot: `systemctl reboot` (check `uname -r` afterwards)."
UPGRADE_FIX = {
    "debian": "apt-get update && apt-get install --only-upgrade $(dpkg-query -W -f '${Package}\\n' "
    "'linux-image-*' | grep -v -- '-[0-9]') && reboot   (or simply: apt-get update && apt-get "
    "dist-upgrade && reboot)",
    "rhel": "dnf upgrade 'kernel*' && reboot",
}


def _uptime(state: KernelState) -> str:
    if state.boot_time is None:
        return ""
    return f" since {state.boot_time:%Y-%m-%d %H:%M} UTC"


def _kernel_ev(state: KernelState, k: InstalledKernel) -> Evidence:
    return Evidence(state.package_source, f"{k.package} {k.version} ({k.release})")


@dataclass(frozen=True)
class Available:
    found: list[PendingUpdate]
    source: str = ""  # evidence source: lists, a command
    refreshed: dt.datetime | None = None
    why: str | None = None  # why it is unknown
    no_lists: bool = False  # apt has no package lists at all
    notes: tuple[str, ...] = ()


def _available_kernel(facts: Facts, state: KernelState) -> Available:
    """Kernel packages with a newer version in the configured repositories (from the host's metadata)."""
    if state.manager == "dpkg":
        # Every list's kernels (apt_kernel_updates), plus what apt's own simulation or the security lists
        # say (a new kernel ABI package is "new", not an upgrade of an installed one).
        names = ("linux-image-", "linux-generic", "linux-virtual", "linux-aws", "linux-kvm")
        found: list[PendingUpdate] = []
        source, refreshed = "", None
        notes: tuple[str, ...] = ()
        why: str | None = None
        no_lists = False
        try:
            kc = facts.get(apt_kernel_updates)
        except NoPackageLists as exc:
            why, no_lists = str(exc), True
        except EvidenceError as exc:
            why = str(exc)
        else:
            found = list(kc.updates)
            source, refreshed, notes = f"{LISTS}/*_Packages", kc.refreshed, kc.notes
        try:
            ups = facts.get(pending_updates)
        except EvidenceError:
            ups = None
        if ups is not None and not no_lists:
            seen = {u.name for u in found}
            extra = [u for u in ups.updates if u.name.startswith(names) and u.name not in seen]
            if extra or why is not None:
                found += extra
                source = source or ups.source
                refreshed = refreshed or ups.refreshed
                why = None
        found = [u for u in found if not u.name.endswith(("-dbg", "-dbgsym"))]
        return Available(found, source, refreshed, why, no_lists, notes)
    try:
        ups = facts.get(pending_updates)
    except EvidenceError as exc:
        return Available([], why=str(exc))
    found = [u for u in ups.kernel_updates if u.name in ("kernel", "kernel-core")]
    if not found:
        found = [u for u in ups.updates if u.name in ("kernel", "kernel-core")]
    return Available(found, ups.source, ups.refreshed)


def run(facts: Facts) -> list[Finding]:
    state = facts.get(kernel_state)
    b = facts.bundle
    findings: list[Finding] = []
    installed_ev = [_kernel_ev(state, k) for k in state.installed]
    if not state.installed:
        if state.vmlinuz:
            installed_ev = [Evidence("/boot", ", ".join(f"vmlinuz-{r}" for r in state.vmlinuz))]
        findings.append(
            Finding(
                Status.WARN,
                "no kernel package is installed (a container, or a kernel installed by hand): "
                "kernel updates cannot come from the distribution",
                installed_ev,
            )
        )
    newest = state.newest()
    running = state.running
    if running is not None and newest is not None:
        run_pkg = state.running_package
        uptime = _uptime(state)
        ev = [Evidence("/proc/sys/kernel/osrelease", f"running {running}{uptime}"), *installed_ev]
        if run_pkg is not None and run_pkg.release == newest.release:
            findings.append(Finding(Status.PASS, f"the newest installed kernel is running: {running}", ev))
        elif run_pkg is not None and state.compare_release(run_pkg.version, newest.version) >= 0:
            findings.append(
                Finding(
                    Status.PASS,
                    f"the running kernel {running} is the newest installed "
                    f"({run_pkg.package} {run_pkg.version})",
                    ev,
                )
            )
        elif run_pkg is not None:
            findings.append(
                Finding(
                    Status.FAIL,
                    f"reboot to activate kernel {newest.release} ({newest.package} {newest.version}): "
                    f"the running kernel is {running} ({run_pkg.version}){uptime}",
                    ev,
                    REBOOT_FIX,
                )
            )
        elif kernel_flavour(running) == newest.flavour and state.compare_release(newest.release, running) > 0:
            findings.append(
                Finding(
                    Status.FAIL,
                    f"reboot to activate kernel {newest.release} ({newest.package} {newest.version}): "
                    f"the running kernel {running}{uptime} is older and no longer installed",
                    ev,
                    REBOOT_FIX,
                )
            )
        else:
            findings.append(
                Finding(
                    Status.WARN,
                    f"the running kernel {running} does not come from an installed package (a kernel "
                    f"built by hand, or a container sharing its host's kernel); the newest installed is "
                    f"{newest.release}",
                    ev,
                    "Run the distribution's kernel: install it and reboot into it, "
                    "or audit the host that owns "
                    "this kernel.",
                )
            )
    elif running is None and newest is not None:
        findings.append(
            Finding(
                Status.PASS,
                f"offline image: it boots its newest installed kernel {newest.release} "
                f"({newest.package} {newest.version})",
                installed_ev,
            )
        )
    elif running is not None and findings:
        findings[0].evidence.insert(0, Evidence("/proc/sys/kernel/osrelease", f"running {running}"))

    for flag in state.reboot_flags:
        detail = ", ".join(flag.packages) if flag.packages else "no package list"
        pkgs = (
            f" (for {', '.join(flag.packages[:5])}{' …' if len(flag.packages) > 5 else ''})"
            if flag.packages
            else ""
        )
        findings.append(
            Finding(
                Status.FAIL,
                f"a reboot is pending{pkgs}: updates are installed but not in use "
                f"until the host restarts{_uptime(state)}",
                [Evidence(flag.source, detail)],
                REBOOT_FIX,
            )
        )

    avail = _available_kernel(facts, state)
    found, why = avail.found, avail.why
    if found:
        first = found[0]
        ev = [Evidence(f"{avail.source} ({u.origin})" if u.origin else avail.source, u.describe()) for u in found]
        findings.append(
            Finding(
                Status.FAIL,
                f"a newer kernel is available: {first.describe()}; install it and reboot",
                ev,
                for_family(facts, UPGRADE_FIX),
            )
        )
    elif why is not None and avail.no_lists and not b.live and findings:
        # The issue makes this half conditional on package lists being present: an image without
        # lists simply has nothing to compare with.
        findings[0].evidence.append(
            Evidence("note", f"not checked whether a newer kernel is available: {why}")
        )
    elif why is not None:
        status = Status.ERROR if not b.live or state.running is None else Status.WARN
        findings.append(
            Finding(
                status,
                f"whether a newer kernel is available is unknown: {why}",
                [Evidence("/var/lib/apt/lists" if state.manager == "dpkg" else "dnf", why)],
            )
        )
    elif avail.refreshed is not None:
        for f in findings:
            if f.status is Status.PASS:
                f.evidence.append(
                    Evidence(
                        avail.source,
                        f"no newer kernel in the package metadata (refreshed {avail.refreshed:%Y-%m-%d})",
                    )
                )
                break
    if avail.notes and findings:
        findings[0].evidence.extend(Evidence("note", n) for n in avail.notes)

    for item in state.livepatch:
        target = findings[0] if findings else None
        if target is not None:
            target.evidence.append(Evidence("/sys/kernel/livepatch", f"live patch loaded: {item}"))
    if not findings:
        findings.append(Finding(Status.ERROR, "no kernel information could be gathered"))
    return findings


CHECK = Check(
    id="Check-Security-04",
    severity="high",
    run=run,
    needs=updates_facts.NEEDS,
    why="Kernel vulnerabilities give local users (or network packets) full control of the host; an installed "
    "kernel update protects nothing until the host reboots into it.",
    how="The running kernel (uname -r) against the newest installed kernel package of the same flavour, "
    "ordered with dpkg's or rpm's own version rules (epochs, ~); reboot flags (/run/reboot-required(.pkgs), "
    "dnf needs-restarting -r's rule: kernel, glibc, systemd, dbus, linux-firmware, microcode_ctl installed "
    "after boot); a newer kernel in the package metadata already on the host (never refreshed by the "
    "audit). Loaded live patches (Livepatch, kpatch) are shown as evidence.",
    fix={
        "debian": "apt-get update && apt-get dist-upgrade && reboot",
        "rhel": "dnf upgrade 'kernel*' && reboot",
    },
)
