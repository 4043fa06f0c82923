"""The audit trail as a hash chain: events recorded unlinked, sealed into the chain by one sealer at a time,
and checked (``flask --app wsgi audit verify``, ``flask --app wsgi audit seal``).

Recording an event (``app/audit.py``) is its INSERT into ``audit_events`` and nothing else: it takes no lock
another writer takes, so logins never wait for each other's events. A trigger on ``audit_events`` (both
databases, migration 0015) puts the new id in the small queue ``audit_unsealed`` in the same transaction, so
an event is queued exactly when it is committed, whatever wrote it.

:func:`seal` then links queued events into ``audit_links``: at ``position`` 1, 2, …, each ``hash`` SHA-256 over
a canonical serialization of the event's content and ``prev_hash``, the hash of the link before it
(:data:`GENESIS` for the first); the queue entries leave and ``audit_chain_head`` (``last_hash``, ``events``)
moves on, all in one transaction per batch, so a failed batch leaves nothing half-written. The chain's order
is the seal order: on PostgreSQL ids are taken at insert but committed out of order. One sealer at a time:
it holds the head row (``SELECT … FOR UPDATE SKIP LOCKED``: a second sealer on PostgreSQL finds it taken and
leaves the batch to the first; on SQLite the row lock is the database's write lock, waited for). As a last
guard the database refuses a fork or a double seal: ``prev_hash`` and ``event_id`` are unique in
``audit_links``.

Each server process runs a sealer thread (``app/audit_sealer.py``) every ``MOCERT_AUDIT_SEAL_INTERVAL``
(0.5 s); ``flask audit seal`` seals by hand. The window: an event is sealed within about twice the interval of
its commit (one interval waiting for the next round, the round itself in milliseconds), so about a second.
Until then it is in the trail but in no link, and whoever can write to the database could change or remove
it, and its queue entry, without ``audit verify`` noticing: the chain covers an event only once it is
sealed. ``audit verify`` says how many events wait and how old the oldest is. On PostgreSQL triggers close
the window to everyone but the tables' owner: ``audit_events`` and ``audit_links`` refuse UPDATE, DELETE
and TRUNCATE, and a queue entry may leave only once its link exists.

What verify catches once an event is sealed: an edited event breaks its link's hash; a removed event leaves
its link naming nothing; a removed link breaks the next link's ``prev_hash``, and removing the newest ones
leaves the head naming a hash no link has; an event in no link and not queued (its queue entry removed, or
inserted around the trigger) is named too, as is a queued id whose event is gone.

What is hashed is exactly what the database gives back on SQLite and PostgreSQL alike: ``occurred_at`` in
UTC to the microsecond (both keep microseconds), ``details`` after a JSON round trip (tuples become lists,
keys strings) written as canonical JSON. Neither the id nor the position is hashed; the order is fixed by
the links themselves. The formula is the one of migration 0005, whose links migration 0015 moved verbatim.

What it does not do: the hash is not keyed, so someone who can write to the database can rewrite the whole
tail and the head consistently. Run the application as a role that does not own the tables, so that it
cannot drop the triggers either. And keep the last hash that ``audit verify`` prints somewhere else:
``--anchor`` checks a later trail still passes through it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import click
from flask import Flask, current_app
from sqlalchemy import delete, exists, func, insert, select
from sqlalchemy.orm import Session

from .extensions import db
from .models import AuditChainHead, AuditEvent, AuditLink, AuditUnsealed, utcnow

log = logging.getLogger(__name__)
GENESIS = AuditChainHead.GENESIS  # what the first event follows
HEAD_ID = AuditChainHead.ONLY_ID
_FORMAT = "mocert-audit-v1"  # changes if the serialization ever does
PROGRESS_FROM = 20_000  # events; fewer are checked in moments
SEAL_BATCH = 500  # events per sealing transaction

_head = AuditChainHead.__table__
_events = AuditEvent.__table__
_links = AuditLink.__table__
_queue = AuditUnsealed.__table__
_CONTENT = (  # what event_hash covers besides prev_hash, as its keyword arguments
    _events.c.occurred_at,
    _events.c.tag,
    _events.c.actor,
    _events.c.account_id,
    _events.c.ip,
    _events.c.user_agent,
    _events.c.details,
)


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


def _hash_of(prev_hash: str, row: Any) -> str:
    return event_hash(prev_hash, **{column.name: getattr(row, column.name) for column in _CONTENT})


@dataclass(frozen=True)
class Sealed:
    """What :func:`seal` did: how many events it linked, and the head after it."""

    events: int
    last_hash: str | None  # None when it sealed nothing
    busy: bool = False  # another sealer held the head (it seals what is queued)

    def __str__(self) -> str:
        if self.busy and not self.events:
            return "sealed nothing: another sealer is at work"
        if not self.events:
            return "sealed nothing: no event waits"
        return f"sealed {self.events} event{'s' if self.events != 1 else ''}, last hash {self.last_hash}"


def seal(session: Session, *, batch_size: int = SEAL_BATCH) -> Sealed:
    """Link every queued event into the chain, ``batch_size`` at a time, each batch one transaction that this
    commits (give it a session with nothing pending). Stops early, ``busy``, if another sealer holds the head.

    Raises :class:`ChainHeadMissing` on an unmigrated database; on any other error the batch is rolled back.
    """
    total, last_hash = 0, None
    while True:
        try:
            batch = _seal_batch(session, batch_size)
        except BaseException:
            session.rollback()
            raise
        if batch is None:
            return Sealed(total, last_hash, busy=True)
        sealed, taken, batch_hash = batch
        total, last_hash = total + sealed, batch_hash or last_hash
        if taken < batch_size:
            return Sealed(total, last_hash)


def _seal_batch(session: Session, batch_size: int) -> tuple[int, int, str | None] | None:
    """One batch: (events linked, queue entries taken, the new last hash); None if the head is taken."""
    queued = select(_queue.c.event_id).join(_events, _events.c.id == _queue.c.event_id)
    if session.execute(queued.limit(1)).first() is None:  # the usual round: a read, no lock
        session.rollback()
        return 0, 0, None
    head = session.execute(
        select(_head.c.last_hash, _head.c.events).where(_head.c.id == HEAD_ID).with_for_update(skip_locked=True)
    ).first()
    if head is None:
        missing = session.execute(select(_head.c.id).where(_head.c.id == HEAD_ID)).first() is None
        session.rollback()
        if missing:
            raise ChainHeadMissing("the audit chain has no head row: run flask db upgrade")
        return None
    # Queued ids with no event are left for verify to name; one linked already (queued again by hand) only
    # leaves the queue.
    rows = session.execute(
        select(_queue.c.event_id, *_CONTENT, _links.c.position)
        .join(_events, _events.c.id == _queue.c.event_id)
        .outerjoin(_links, _links.c.event_id == _queue.c.event_id)
        .order_by(_queue.c.event_id)
        .limit(batch_size)
    ).all()
    if not rows:  # sealed by the sealer this one waited for (SQLite)
        session.rollback()
        return 0, 0, None
    prev_hash, position, now, links = head.last_hash, head.events, utcnow(), []
    for row in rows:
        if row.position is not None:
            log.warning("audit event %s was queued though a link (position %s) names it already: left unsealed; "
                        "flask audit verify names the link", row.event_id, row.position)
            continue
        position += 1
        link_hash = _hash_of(prev_hash, row)
        links.append({"position": position, "event_id": row.event_id, "prev_hash": prev_hash, "hash": link_hash,
                      "sealed_at": now})
        prev_hash = link_hash
    if links:
        session.execute(insert(_links), links)
    session.execute(delete(_queue).where(_queue.c.event_id.in_([row.event_id for row in rows])))
    session.execute(_head.update().where(_head.c.id == HEAD_ID).values(last_hash=prev_hash, events=position))
    session.commit()
    return len(links), len(rows), prev_hash if links else None


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`verify`: how far the chain holds, its first broken link if any, and what waits."""

    events: int  # sealed and checked
    last_hash: str  # of the last link checked (GENESIS for none)
    problem: str | None = None  # "content changed" | "previous link missing" | "head does not match" | …
    event_id: int | None = None  # the broken event, None when the break is at the head
    detail: str = ""
    unsealed: int = 0  # events committed, queued, not yet linked (none counted when broken)
    oldest_unsealed: float | None = None  # seconds since the oldest of them occurred

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
    """Walk the links in position order, ``batch_size`` at a time, compare the end with the head, then look
    for events in no link and not queued, and count those queued.

    ``anchor``: a last hash printed by an earlier run; the chain must still pass through it.
    ``on_batch(n)`` is called after each batch of ``n`` links (progress). Reads only.
    """
    walked = (
        select(_links.c.position, _links.c.event_id, _links.c.prev_hash, _links.c.hash,
               _events.c.id.label("found"), *_CONTENT)
        .outerjoin(_events, _events.c.id == _links.c.event_id)
        .order_by(_links.c.position)
        .limit(batch_size)
    )
    # From below any position the sealer gives (1, 2, …), so that a link put anywhere else is walked too.
    expected_prev, count, last_position, last_event = GENESIS, 0, -(2**31), None
    anchor_seen = anchor is None or anchor == GENESIS
    while True:
        rows = session.execute(walked.where(_links.c.position > last_position)).all()
        if not rows:
            head = session.execute(
                select(_head.c.last_hash, _head.c.events).where(_head.c.id == HEAD_ID)
            ).first()
            if head is not None and tuple(head) == (expected_prev, count):
                break
            # A seal committed between the last batch and the head read moves the head on: read on.
            if session.execute(select(_links.c.position).where(_links.c.position > last_position).limit(1)).first():
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
            if row.found is None:
                return Verdict(count, expected_prev, "event missing", row.event_id,
                               f"the chain's link at position {row.position} names it: it was removed")
            if _hash_of(row.prev_hash, row) != row.hash:
                return Verdict(
                    count, expected_prev, "content changed", row.event_id, "what it records no longer gives its hash"
                )
            if row.prev_hash != expected_prev:
                follows = (
                    "it is the first event but names a previous one"
                    if count == 0
                    else f"it does not follow event {last_event}: an event between them was removed, "
                    f"or event {last_event} was rewritten"
                )
                return Verdict(count, expected_prev, "previous link missing", row.event_id, follows)
            if row.position != count + 1:
                # A link outside 1, 2, … n: one slipped in ahead of the chain (its event would then leave the
                # queue unsealed) or past its end (where the sealer would stick).
                return Verdict(count, expected_prev, "link out of place", row.event_id,
                               f"a link at position {row.position} where the chain's next is {count + 1}: "
                               "it was inserted by hand")
            expected_prev, count, last_position, last_event = row.hash, count + 1, row.position, row.event_id
            anchor_seen = anchor_seen or row.hash == anchor
        if on_batch is not None:
            on_batch(len(rows))
    if not anchor_seen:
        return Verdict(
            count, expected_prev, "anchor not found", None, f"no event has the hash {anchor}: the trail was rewritten"
        )
    # One statement each: an event is queued in the transaction that commits it and leaves the queue in the
    # one that links it, so a single snapshot finds every event in one or the other.
    linked = exists().where(_links.c.event_id == _events.c.id)
    queued = exists().where(_queue.c.event_id == _events.c.id)
    stray = session.scalar(select(func.min(_events.c.id)).where(~linked, ~queued))
    if stray is not None:
        return Verdict(count, expected_prev, "neither sealed nor queued", stray,
                       "it is in no link and not queued for sealing: its queue entry was removed, or it was "
                       "inserted around the trigger")
    gone = session.scalar(select(func.min(_queue.c.event_id)).where(~exists().where(_events.c.id == _queue.c.event_id)))
    if gone is not None:
        return Verdict(count, expected_prev, "queued event missing", gone,
                       "it was queued for sealing and is gone: it was removed before it was sealed")
    waiting, oldest = session.execute(
        select(func.count(), func.min(AuditEvent.occurred_at)).select_from(_queue)
        .join(_events, _events.c.id == _queue.c.event_id)
    ).one()
    age = None if oldest is None else max(0.0, (utcnow() - _aware(oldest)).total_seconds())
    return Verdict(count, expected_prev, unsealed=waiting, oldest_unsealed=age)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def sealing_window(interval: float) -> float:
    """Within how many seconds of its commit an event is sealed when sealers run every ``interval``."""
    return 2 * interval


def unsealed_report(verdict: Verdict, *, interval: float) -> str | None:
    """The line ``audit verify`` adds about events not yet sealed (none: None)."""
    if not verdict.unsealed:
        return None
    counted = f"{verdict.unsealed} event{'s' if verdict.unsealed != 1 else ''} not yet sealed"
    line = f"{counted}, the oldest {verdict.oldest_unsealed:.1f} s old"
    if interval <= 0:
        return (f"{line}; no sealer runs in this configuration (MOCERT_AUDIT_SEAL_INTERVAL=0): "
                "flask audit seal seals them")
    window = sealing_window(interval)
    line = f"{line}; sealed within ~{window:g} s (MOCERT_AUDIT_SEAL_INTERVAL={interval:g})"
    if verdict.oldest_unsealed > max(10.0, 10 * window):
        line += ": older than that, so no sealer ran (is a server up?); flask audit seal seals them now"
    return line


def register_audit_cli(app: Flask) -> None:
    """``flask --app wsgi audit verify`` and ``flask --app wsgi audit seal``."""

    @app.cli.group()
    def audit() -> None:
        """The tamper-evident audit trail."""

    @audit.command("verify")
    @click.option("--anchor", default=None, metavar="HASH", help="A last hash from an earlier run; the chain must "
                  "still pass through it.")
    @click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
    def verify_command(anchor: str | None, batch_size: int) -> None:
        """Check the hash chain, and say what is not yet sealed.

        Exits 0 when it is whole (events waiting for the sealer are no break: they are said); otherwise names
        the first broken link and exits 1.
        """
        total = db.session.scalar(select(_head.c.events).where(_head.c.id == HEAD_ID)) or 0
        if total >= PROGRESS_FROM:
            with click.progressbar(length=total, label="checking the audit trail", file=sys.stderr) as bar:
                verdict = verify(db.session, batch_size=batch_size, anchor=anchor, on_batch=bar.update)
        else:
            verdict = verify(db.session, batch_size=batch_size, anchor=anchor)
        click.echo(str(verdict))
        waiting = unsealed_report(verdict, interval=current_app.config["AUDIT_SEAL_INTERVAL"])
        if waiting:
            click.echo(waiting)
        if not verdict.whole:
            raise SystemExit(1)

    @audit.command("seal")
    @click.option("--batch-size", default=SEAL_BATCH, show_default=True, type=click.IntRange(min=1))
    def seal_command(batch_size: int) -> None:
        """Link the events waiting in the queue into the chain now (the servers' sealers do it on their own)."""
        click.echo(str(seal(db.session, batch_size=batch_size)))
