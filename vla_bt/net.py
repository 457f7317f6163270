"""Host names and addresses of the servers the project runs (the viewer, the local Realtime endpoint)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether a host name or address only reaches this machine ("" — every interface — does not)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """``host`` as a client on this machine writes it in a URL.

    Every interface (``""``, ``0.0.0.0``, ``::``) is reached at ``127.0.0.1``;
    an IPv6 address goes in brackets (``[::1]``).
    """
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
