"""The OIDC clients as the login path reads them: from memory, per process, forgotten when one changes.

A login asks for its client a dozen times (Authlib's ``query_client`` at each step, the login page, the
login request, the token endpoint); read from the database each time that was 13 of a login's 62
statements. Here each process reads a client once and keeps a *detached* copy: an ``OidcClient`` in no
session, all its columns loaded, shared read-only by every thread. Being in no session it never expires on
a commit (no reload) and is never written back; code that needs to change a client reads it afresh through
``services.clients`` (the administration), and whatever commits a change to a client has the copy forgotten (``app/wiring.py`` watches the
session), in this process at once and, through :class:`~app.invalidation.Invalidations`, in every other. ``ttl`` bounds a copy's age when no
message can arrive (no Redis: other workers on the same machine), and is the worst case with Redis too (a
message lost while a process was reconnecting is made up for by forgetting everything on reconnection).

Rows that point at a client (a login request, a code) keep the client's id: never assign a copy to a
relationship, which would pull it into that request's session.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import make_transient_to_detached

from ..extensions import db
from ..invalidation import Invalidations
from ..models import OidcClient

TOPIC = "oidc_client"
MAX_ENTRIES = 10_000


class ClientDirectory:
    def __init__(self, invalidations: Invalidations, *, ttl: float) -> None:
        self.invalidations, self.ttl = invalidations, ttl
        self._by_client_id: dict[str, tuple[float, OidcClient | None]] = {}
        self._client_ids: dict[int, str] = {}
        self._lock = threading.Lock()
        # Counted up by every forgetting: a read that began before one must not store what it read (a client
        # disabled between the read and the store would be kept for the whole ttl).
        self._generation = 0
        invalidations.listen(self._forget)

    def get(self, client_id: object) -> OidcClient | None:
        """The client (enabled or not) registered as ``client_id``, or None; a read-only copy."""
        if not isinstance(client_id, str) or not 0 < len(client_id) <= 255:
            return None
        self.invalidations.follow()
        now = time.monotonic()
        cached = self._by_client_id.get(client_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        client = _detached(db.session.execute(
            select(*OidcClient.__table__.c).where(OidcClient.client_id == client_id)
        ).first())
        with self._lock:
            if generation != self._generation:
                return client  # forgotten meanwhile: good for this request, not to keep
            if len(self._by_client_id) >= MAX_ENTRIES:
                self._by_client_id = {k: v for k, v in self._by_client_id.items() if v[0] > now}
            # Unknown ids are remembered too (briefly and boundedly), so a flood of made-up ones is no flood of reads.
            if client is not None or len(self._by_client_id) < MAX_ENTRIES:
                self._by_client_id[client_id] = (now + self.ttl, client)
            if client is not None:
                self._client_ids[client.id] = client_id
        return client

    def active(self, client_id: object) -> OidcClient | None:
        """The client, if it may act now: a disabled client cannot authorize, get tokens or use them."""
        client = self.get(client_id)
        return client if client is not None and client.disabled_at is None else None

    def by_id(self, id_: int) -> OidcClient | None:
        """The client of a row that points at it (``LoginRequest.client_id``)."""
        client_id = self._client_ids.get(id_)
        if client_id is None:
            client_id = db.session.scalar(select(OidcClient.client_id).where(OidcClient.id == id_))
        return self.get(client_id)

    def changed(self, client_id: str) -> None:
        """The client registered as ``client_id`` was changed and committed: every process forgets its copy."""
        self.invalidations.publish(TOPIC, client_id)

    def _forget(self, topic: str | None, key: str | None) -> None:
        with self._lock:
            self._generation += 1
            if topic is None:
                self._by_client_id.clear()
            elif topic == TOPIC:
                self._by_client_id.pop(key, None)


def _detached(row) -> OidcClient | None:
    if row is None:
        return None
    client = OidcClient(**row._asdict())
    make_transient_to_detached(client)
    return client
