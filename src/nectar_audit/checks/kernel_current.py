"""Check-Security-04: have you upgraded the operating system kernel (and rebooted into it)?"""

from __future__ import annotations

from nectar_audit.checks.base import Check, for_family
from nectar_audit.evidence.bundle import EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.facts.kernel import InstalledKernel, KernelState, kernel_flavour, kernel_state
from nectar_audit.facts.updates import PendingUpdate, UpdateState, pending_updates
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


def _available_kernel(
    facts: Facts, state: KernelState
) -> tuple[list[PendingUpdate], UpdateState | None, str | None]:
    """Kernel packages with a newer version in the configured repositories (from the host's metadata)."""
    try:
        ups = facts.get(pending_updates)
    except EvidenceError as exc:
        return [], None, str(exc)
    if ups.manager == "dnf":
        found = [u for u in ups.kernel_updates if u.name in ("kernel", "kernel-core")]
        if not found:
            found = [u for u in ups.updates if u.name in ("kernel", "kernel-core")]
        return found, ups, None
    names = ("linux-image-", "linux-generic", "linux-virtual", "linux-aws", "linux-kvm")
    found = [u for u in ups.updates if u.name.startswith(names) and not u.name.endswith(("-dbg", "-dbgsym"))]
    return found, ups, None


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

    found, ups, why = _available_kernel(facts, state)
    if found and ups is not None:
        first = found[0]
        ev = [
            Evidence(ups.source if not first.origin else f"{ups.source} ({first.origin})", u.describe())
            for u in found
        ]
        findings.append(
            Finding(
                Status.FAIL,
                f"a newer kernel is available: {first.describe()}; install it and reboot",
                ev,
                for_family(facts, UPGRADE_FIX),
            )
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
    elif ups is not None and ups.refreshed is not None:
        for f in findings:
            if f.status is Status.PASS:
                f.evidence.append(
                    Evidence(
                        ups.source,
                        f"no newer kernel in the package metadata (refreshed {ups.refreshed:%Y-%m-%d})",
                    )
                )
                break

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
