"""Which proxy, if any, carries a request: as httpx reads the environment, never for loopback."""

from __future__ import annotations

import urllib.parse
import urllib.request

from .._config import is_loopback


def direct(url: str) -> bool:
    """Whether *url* is reached without a proxy, whatever the environment says.

    Loopback hosts are, and plain http (allowed for them only): a proxy would
    carry the token across a network, in clear over http.
    """
    parts = urllib.parse.urlsplit(url)
    return parts.scheme != "https" or is_loopback(parts.hostname or "")


def env_proxy(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...) sets for *url*.

    Read as httpx reads it: ``ALL_PROXY`` when the scheme has none of its own,
    and ``http://`` before a proxy written without a scheme. None for a
    ``direct`` URL.
    """
    if direct(url):
        return None
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"
