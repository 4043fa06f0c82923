"""The sites allowed to use the card through the component, and which of them may ask for SHA-1.

Kept in a small JSON file: ``{"sites": [...], "sha1": [...]}`` (a bare list, the first format, is read
as sites without SHA-1). Both are changed only from the component's own pages (iccard.agent.server).
"""

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
    if value.lower() == "null":  # the Origin of sandboxed and opaque pages: never a site one can trust
        raise InvalidSite("not a site")
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidSite("only http and https sites can be trusted")
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname.lower()}{port}"
    try:
        host = urlsplit(f"//{value}")
        port = host.port
    except ValueError as exc:
        raise InvalidSite("not a site") from exc
    if not host.hostname or host.path or host.query or host.username:
        raise InvalidSite("not a site")
    return f"{host.hostname.lower()}{f':{port}' if port else ''}"


class TrustList:
    """Origins (``scheme://host[:port]``) or hosts (``host[:port]``, any scheme) the person trusts.

    An origin matches an entry that is itself, or its host (with its port, if it has one).
    """

    def __init__(self, path: Path | None, initial: tuple[str, ...] = ()) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._sites: set[str] = set()
        self._sha1: set[str] = set()
        if path is not None and path.is_file():
            stored = json.loads(path.read_text())
            if isinstance(stored, list):
                stored = {"sites": stored}
            self._sites.update(stored.get("sites", []))
            self._sha1.update(site for site in stored.get("sha1", []) if site in self._sites)
        for site in initial:
            self._sites.add(normalize_site(site))

    @staticmethod
    def _keys(origin: str) -> set[str]:
        try:
            normalized = normalize_site(origin)
        except InvalidSite:
            return set()
        return {normalized, normalized.split("://", 1)[-1]}

    def __contains__(self, origin: str) -> bool:
        with self._lock:
            return bool(self._keys(origin) & self._sites)

    def allows_sha1(self, origin: str) -> bool:
        """Whether the person allowed ``origin`` (through one of its entries) to ask for SHA-1 signatures."""
        with self._lock:
            return bool(self._keys(origin) & self._sha1)

    def add(self, site: str) -> str:
        normalized = normalize_site(site)
        with self._lock:
            self._sites.add(normalized)
            self._save()
        return normalized

    def remove(self, site: str) -> None:
        """Forget a site entry (and its SHA-1 permission)."""
        with self._lock:
            self._sites.discard(site)
            self._sha1.discard(site)
            self._save()

    def set_sha1(self, site: str, allowed: bool) -> None:
        """Allow or forbid SHA-1 for a trusted site entry; raises InvalidSite for a site not on the list."""
        with self._lock:
            if site not in self._sites:
                raise InvalidSite("only a trusted site can be allowed SHA-1")
            (self._sha1.add if allowed else self._sha1.discard)(site)
            self._save()

    def sites(self) -> list[str]:
        with self._lock:
            return sorted(self._sites)

    def sha1_sites(self) -> list[str]:
        with self._lock:
            return sorted(self._sha1)

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"sites": sorted(self._sites), "sha1": sorted(self._sha1)}, indent=2) + "\n")
        os.replace(temporary, self._path)
