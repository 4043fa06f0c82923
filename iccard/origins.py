"""Origins (``scheme://host[:port]``) of http(s) URLs: what revocation fetching is allowed by.

Kept apart from ``validation`` so that configuration can check its settings without loading the
path-validation library.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: str) -> str:
    """``scheme://host[:port]`` of an http(s) origin, normalised; ValueError for anything else (a path too)."""
    parts = urlsplit(value.strip())
    origin = origin_of(value)
    if origin is None or parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) origin such as https://crl.example.gov.tw")
    return origin


def origin_of(url: str) -> str | None:
    """The normalised origin of an http(s) URL, or None for other schemes and unreadable URLs."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, _DEFAULT_PORTS[scheme]) else "")
