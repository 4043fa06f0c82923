"""Single-use tickets (the QR code of a binding or a login; the agencies' tickets next): issued, found by
their token, and claimed once.

A ticket is a :class:`~app.models.SingleUseTicket` row. Its token is shown once (in the QR code) and stored
only as its SHA-256. Everything a phone may do once is a *claim*: one conditional UPDATE that sets the
claim's columns only while its conditions still hold, so of two phones racing, exactly one gets through,
on PostgreSQL and SQLite alike; no read-then-write.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute

from ..extensions import db
from ..models import SingleUseTicket, utcnow
from .tokens import digest, new_token

T = TypeVar("T", bound=SingleUseTicket)

TOKEN_LENGTHS = range(20, 101)  # what new_token() makes, with room; anything else is no token of ours


def issue(kind: type[T], *, ttl: timedelta, now: datetime | None = None, **fields: Any) -> tuple[T, str]:
    """A new ticket of ``kind`` (added, not committed) and its token, good for ``ttl``."""
    now = now or utcnow()
    token = new_token()
    ticket = kind(
        public_id=secrets.token_urlsafe(16), token_hash=digest(token), created_at=now, expires_at=now + ttl, **fields
    )
    db.session.add(ticket)
    return ticket, token


def by_token(kind: type[T], token: object) -> T | None:
    """The ticket of ``kind`` whose token this is, or None (for anything that cannot be a token, too)."""
    if not isinstance(token, str) or len(token) not in TOKEN_LENGTHS:
        return None
    return db.session.scalar(select(kind).where(kind.token_hash == digest(token)))


def claim(
    ticket: db.Model,
    *still: Any,
    count: InstrumentedAttribute | None = None,
    below: int | None = None,
    commit: bool = True,
    **values: Any,
) -> bool:
    """Set ``values`` on the ticket's row (any row with an ``id``) if the conditions ``still`` hold, in one
    statement; committed, unless ``commit`` is false: then the caller commits the claim together with
    what it records of it (and a loser's rollback undoes nothing but its own attempt).

    ``count`` (an integer column) is counted up in the same statement, and the claim refused once it has
    reached ``below``: a ticket that allows a few attempts (a code typed, a result polled) counts them
    without a window between reading the count and writing it. Returns whether this caller won; the
    ticket is re-read either way.
    """
    kind = type(ticket)
    conditions = [kind.id == ticket.id, *still]
    if count is not None:
        values[count.key] = count + 1
        if below is not None:
            conditions.append(count < below)
    claimed = db.session.execute(
        update(kind).where(*conditions).values(**values).execution_options(synchronize_session=False)
    ).rowcount
    if commit:
        db.session.commit()
    db.session.refresh(ticket)
    return claimed == 1


def consume(ticket: SingleUseTicket, *, now: datetime | None = None, **values: Any) -> bool:
    """Take the ticket's one answer: the claim of ``consumed_at``, while unconsumed and unexpired."""
    now = now or utcnow()
    kind = type(ticket)
    return claim(ticket, kind.consumed_at.is_(None), kind.expires_at > now, consumed_at=now, **values)


def fail(ticket: SingleUseTicket, reason: str) -> None:
    """Record why a consumed ticket came to nothing (the asking page shows it); not committed."""
    ticket.failure = reason
