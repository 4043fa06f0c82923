"""The audit trail as a hash chain: appending a link, and checking the chain (``flask --app wsgi audit verify``).

Each event's ``hash`` is SHA-256 over a canonical serialization of what it records and ``prev_hash``, the
hash of the event before it (:data:`GENESIS` for the first). Editing an event breaks its own hash; removing
one breaks the link of the next; removing the newest ones leaves the head pointing at a hash no event has.

What is hashed is exactly what the database gives back on SQLite and PostgreSQL alike: ``occurred_at`` in
UTC to the microsecond (both keep microseconds), ``details`` after a JSON round trip (tuples become lists,
keys strings) written as canonical JSON. The id is not hashed: the database assigns it at insert, and the
order is fixed by the links themselves.

Appending is serialized through the one-row table ``audit_chain_head`` (``last_hash``, ``events``).
:func:`append` starts with an UPDATE of that row, a write on purpose: it takes PostgreSQL's row lock, and on
SQLite the RESERVED lock (pysqlite opens a transaction only at the first write, so a bare "select the last
hash" would run outside any transaction and two appenders could both read the same hash and fork the
chain). The lock is held until the caller commits or rolls back, so a second appender reads the head only
after the first one's event is committed, and event ids grow in chain order. Several events in one
transaction chain through the head too, since a transaction sees its own writes. As a last guard
``prev_hash`` is unique: the database refuses a fork even if something appended around this module.

The price: two statements on one row per event, and appenders wait for each other from ``record()`` to
commit. So callers record last, just before they commit (they do).

What it does not do: the hash is not keyed, so someone who can write to the database can rewrite the whole
tail and the head consistently. On PostgreSQL a trigger (migration 0005) refuses UPDATE, DELETE and
TRUNCATE on ``audit_events``, which then needs the table owner's rights; run the application as a role that
does not own it. And keep the last hash that ``audit verify`` prints somewhere else: ``--anchor`` checks a
later trail still passes through it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import click
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from .extensions import db
from .models import AuditChainHead, AuditEvent

GENESIS = AuditChainHead.GENESIS  # what the first event follows
HEAD_ID = AuditChainHead.ONLY_ID
_FORMAT = "mocert-audit-v1"  # changes if the serialization ever does
PROGRESS_FROM = 20_000  # events; fewer are checked in moments

_head = AuditChainHead.__table__


class ChainHeadMissing(RuntimeError):
    """There is no ``audit_chain_head`` row: the database was not migrated (``flask db upgrade``)."""


def as_stored(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` as the database will give them back (a JSON round trip)."""
    return json.loads(json.dumps(details))


def event_hash(
    prev_hash: str,
    *,
    occurred_at: datetime,
    tag: str,
    actor: str,
    account_id: int | None,
    ip: str | None,
    user_agent: str | None,
    details: Any,
) -> str:
    """SHA-256 hex of an event's canonical serialization. A naive ``occurred_at`` is taken as UTC (SQLite)."""
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=timezone.utc)
    when = occurred_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    content = [_FORMAT, prev_hash, when, tag, actor, account_id, ip, user_agent, details]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def append(session: Session, event: AuditEvent) -> None:
    """Link ``event`` after the newest one and add it to ``session`` (not committed).

    Holds the chain's head until the session's transaction ends. ``event.details`` must already be
    :func:`as_stored`. Raises :class:`ChainHeadMissing` on an unmigrated database.
    """
    # Pending ORM changes first: written now, their rows are locked before the head, in the same order as in
    # every other transaction; left to the commit they would be written after it, and two transactions taking
    # a row and the head in opposite orders deadlock on PostgreSQL.
    session.flush()
    # A write first: it is what takes the lock (see the module docstring).
    prev_hash = session.execute(
        _head.update()
        .where(_head.c.id == HEAD_ID)
        .values(events=_head.c.events + 1)
        .returning(_head.c.last_hash)
    ).scalar_one_or_none()
    if prev_hash is None:
        raise ChainHeadMissing("the audit chain has no head row: run flask db upgrade")
    event.prev_hash = prev_hash
    event.hash = event_hash(
        prev_hash,
        occurred_at=event.occurred_at,
        tag=event.tag,
        actor=event.actor,
        account_id=event.account_id,
        ip=event.ip,
        user_agent=event.user_agent,
        details=event.details,
    )
    session.execute(_head.update().where(_head.c.id == HEAD_ID).values(last_hash=event.hash))
    session.add(event)


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`verify`: how far the chain holds, and its first broken link if any."""

    events: int  # checked
    last_hash: str  # of the last event checked (GENESIS for none)
    problem: str | None = None  # "content changed" | "previous link missing" | "head does not match" | …
    event_id: int | None = None  # the broken event, None when the break is at the head
    detail: str = ""

    @property
    def whole(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.whole:
            return f"audit trail whole: {self.events} events, last hash {self.last_hash}"
        where = f"event {self.event_id}: " if self.event_id is not None else ""
        return f"audit trail broken: {where}{self.problem} ({self.detail})"


def verify(
    session: Session,
    *,
    batch_size: int = 1000,
    anchor: str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Verdict:
    """Walk the chain in id order, ``batch_size`` events at a time, and compare its end with the head.

    ``anchor``: a last hash printed by an earlier run; the chain must still pass through it.
    ``on_batch(n)`` is called after each batch of ``n`` events (progress). Reads only.
    """
    columns = (
        AuditEvent.id,
        AuditEvent.occurred_at,
        AuditEvent.tag,
        AuditEvent.actor,
        AuditEvent.account_id,
        AuditEvent.ip,
        AuditEvent.user_agent,
        AuditEvent.details,
        AuditEvent.prev_hash,
        AuditEvent.hash,
    )
    expected_prev, count, last_id = GENESIS, 0, 0
    anchor_seen = anchor is None or anchor == GENESIS
    while True:
        rows = session.execute(
            select(*columns).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch_size)
        ).all()
        if not rows:
            head = session.execute(
                select(_head.c.last_hash, _head.c.events).where(_head.c.id == HEAD_ID)
            ).first()
            if head is not None and tuple(head) == (expected_prev, count):
                break
            # An append committed between the last batch and the head read moves the head on: read on.
            if session.execute(select(AuditEvent.id).where(AuditEvent.id > last_id).limit(1)).first():
                continue
            if head is None:
                return Verdict(count, expected_prev, "head does not match", None, "there is no head row")
            return Verdict(
                count,
                expected_prev,
                "head does not match",
                None,
                f"the head names {head.events} events ending in {head.last_hash}, the trail has {count} ending "
                f"in {expected_prev}: the newest events were removed, or the head was changed",
            )
        for row in rows:
            recomputed = event_hash(
                row.prev_hash,
                occurred_at=row.occurred_at,
                tag=row.tag,
                actor=row.actor,
                account_id=row.account_id,
                ip=row.ip,
                user_agent=row.user_agent,
                details=row.details,
            )
            if recomputed != row.hash:
                return Verdict(
                    count, expected_prev, "content changed", row.id, "what it records no longer gives its hash"
                )
            if row.prev_hash != expected_prev:
                follows = (
                    "it is the first event but names a previous one"
                    if count == 0
                    else f"it does not follow event {last_id}: an event between them was removed, "
                    f"or event {last_id} was rewritten"
                )
                return Verdict(count, expected_prev, "previous link missing", row.id, follows)
            expected_prev, count, last_id = row.hash, count + 1, row.id
            anchor_seen = anchor_seen or row.hash == anchor
        if on_batch is not None:
            on_batch(len(rows))
    if not anchor_seen:
        return Verdict(
            count, expected_prev, "anchor not found", None, f"no event has the hash {anchor}: the trail was rewritten"
        )
    return Verdict(count, expected_prev)


def register_audit_cli(app: Flask) -> None:
    """``flask --app wsgi audit verify``."""

    @app.cli.group()
    def audit() -> None:
        """The tamper-evident audit trail."""

    @audit.command("verify")
    @click.option("--anchor", default=None, metavar="HASH", help="A last hash from an earlier run; the chain must "
                  "still pass through it.")
    @click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
    def verify_command(anchor: str | None, batch_size: int) -> None:
        """Check the hash chain.

        Exits 0 when it is whole; otherwise names the first broken link and exits 1.
        """
        total = db.session.scalar(select(_head.c.events).where(_head.c.id == HEAD_ID)) or 0
        if total >= PROGRESS_FROM:
            with click.progressbar(length=total, label="checking the audit trail", file=sys.stderr) as bar:
                verdict = verify(db.session, batch_size=batch_size, anchor=anchor, on_batch=bar.update)
        else:
            verdict = verify(db.session, batch_size=batch_size, anchor=anchor)
        click.echo(str(verdict))
        if not verdict.whole:
            raise SystemExit(1)
