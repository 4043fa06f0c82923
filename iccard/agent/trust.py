"""The sites allowed to use the card through the component, kept in a small JSON file."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit


class InvalidSite(ValueError):
    pass


def normalize_site(value: str) -> str:
    """``https://Example.tw/path`` → ``https://example.tw``; a bare ``host[:port]`` stays a host."""
    value = (value or "").strip()
    if not value or len(value) > 300 or any(c.isspace() for c in value):
        raise InvalidSite("not a site")
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidSite("only http and https sites can be trusted")
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname.lower()}{port}"
    host = urlsplit(f"//{value}")
    if not host.hostname:
        raise InvalidSite("not a site")
    return f"{host.hostname.lower()}{f':{host.port}' if host.port else ''}"


class TrustList:
    """Origins (``scheme://host[:port]``) or hosts (``host[:port]``, any scheme) the person trusts."""

    def __init__(self, path: Path | None, initial: tuple[str, ...] = ()) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._sites: set[str] = set()
        if path is not None and path.is_file():
            self._sites.update(json.loads(path.read_text()))
        for site in initial:
            self._sites.add(normalize_site(site))

    def __contains__(self, origin: str) -> bool:
        try:
            normalized = normalize_site(origin)
        except InvalidSite:
            return False
        host = normalized.split("://", 1)[-1]
        with self._lock:
            return normalized in self._sites or host in self._sites

    def add(self, site: str) -> str:
        normalized = normalize_site(site)
        with self._lock:
            self._sites.add(normalized)
            if self._path is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                temporary = self._path.with_suffix(".tmp")
                temporary.write_text(json.dumps(sorted(self._sites), indent=2) + "\n")
                os.replace(temporary, self._path)
        return normalized

    def sites(self) -> list[str]:
        with self._lock:
            return sorted(self._sites)
