"""When the API may take the published development key (``moments-dev-key``, every scope,
erase and export included): only without ``MOMENTS_API_KEYS``, and only on a loopback host
or when ``MOMENTS_API_ALLOW_DEV_KEY`` says so. An empty value (a CI variable or a Secret
left blank) on an API listening on every interface would serve anyone who read the
README.

>>> from streams.settings import Settings
>>> dev_key_refusal(Settings(api_host="127.0.0.1")) is None
True
>>> refusal = dev_key_refusal(Settings(api_host="0.0.0.0", api_keys="  "))
>>> refusal.split(": ")[0]  # doctest: +NORMALIZE_WHITESPACE
'MOMENTS_API_KEYS is empty, and the API would take the published development key, with
every scope, on MOMENTS_API_HOST=0.0.0.0, which is not a loopback address'
>>> dev_key_refusal(Settings(api_host="0.0.0.0", api_allow_dev_key=True)) is None
True
"""

from __future__ import annotations

import ipaddress

from streams.settings import Settings


def loopback(host: str) -> bool:
    """Whether ``host`` (``MOMENTS_API_HOST``) listens on this machine only.

    >>> [loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost")]
    [True, True, True, True, True]
    >>> [loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "api.internal", "")]
    [False, False, False, False, False]
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:  # a host name: it may name any interface
        return False


def dev_key_refusal(settings: Settings) -> str | None:
    """Why the API must not start with ``settings`` (``None``: it may)."""
    if settings.api_keys.strip() or settings.api_allow_dev_key or loopback(settings.api_host):
        return None
    return (
        "MOMENTS_API_KEYS is empty, and the API would take the published development key, "
        f"with every scope, on MOMENTS_API_HOST={settings.api_host}, which is not a loopback "
        "address: set keys, or MOMENTS_API_ALLOW_DEV_KEY=true for a demo reached only from "
        "this machine"
    )
