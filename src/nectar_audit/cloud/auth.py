"""Connect to OpenStack the way the OpenStack CLI does: ``OS_*`` variables or ``OS_CLOUD`` + clouds.yaml.

openstacksdk does the work (password, token, ``v3applicationcredential``, regions); this module only
turns its many exception types into one clear sentence per way of going wrong.
"""

from __future__ import annotations

import logging
from typing import Any


class CloudError(Exception):
    """The cloud could not be audited at all (credentials, endpoint, permissions): shown as is."""


INSTALL_HINT = "the cloud audit needs openstacksdk: pip install 'nectar-audit[cloud]'"


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        out.append(cur)
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return out


def explain(exc: BaseException, what: str = "the OpenStack API") -> str:
    """One sentence for an openstacksdk / keystoneauth failure (no secrets: messages carry URLs only)."""
    names = [type(e).__name__ for e in _chain(exc)]
    text = str(exc).split("\n")[0][:300]
    status = next((getattr(e, "status_code", None) for e in _chain(exc) if getattr(e, "status_code", None)), None)
    if "MissingRequiredOptions" in names or "MissingAuthPlugin" in names:
        return ("no OpenStack credentials: source your project's openrc file (OS_AUTH_URL, ...) or set "
                f"OS_CLOUD to a clouds.yaml entry ({text})")
    if "ServiceDisabledException" in names or "EndpointNotFound" in names:
        # openstacksdk's sentence ends with the one that matters: "public endpoint for network service
        # in RegionX region not found".
        return f"{what} is not in the service catalog for this region: {text.rsplit(': ', 1)[-1]}"
    if "ConfigException" in names or "OpenStackConfigException" in names:
        return f"OpenStack configuration problem: {text}"
    if "Unauthorized" in names or status == 401 or "(HTTP 401)" in text:
        return ("OpenStack rejected the credentials (HTTP 401): check the password or application "
                "credential secret, and that it has not expired")
    if "Forbidden" in names or "ForbiddenException" in names or status == 403:
        return f"missing permission for {what} (HTTP 403): {text}"
    if any(n in names for n in ("ConnectFailure", "ConnectTimeout", "ConnectionError", "DiscoveryFailure",
                                "SSLError", "RetriableConnectionFailure")) or "Unable to establish connection" in text:
        return f"cannot reach {what}: {text}"
    if "NotFoundException" in names or status == 404:
        return f"{what}: not found (HTTP 404)"
    return f"{what} failed: {type(exc).__name__}: {text}"


def connect(cloud: str | None = None, region: str | None = None) -> Any:
    """An authenticated openstack.connection.Connection; CloudError with the reason otherwise."""
    try:
        import openstack
    except ImportError as exc:
        raise CloudError(INSTALL_HINT) from exc
    # keystoneauth logs its own retries and discovery failures as warnings on stderr; we report once.
    for name in ("keystoneauth", "openstack", "stevedore"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        conn = openstack.connect(cloud=cloud, region_name=region)
        conn.authorize()
    except Exception as exc:  # openstacksdk raises a wide, version-dependent set of types
        raise CloudError(explain(exc, "the identity service (Keystone)")) from None
    return conn
