"""Reading the audit trail: a filter over its events, a page of them, and the CSV export.

Reading is itself audited where it hands out the trail in bulk (the export). How a filter is written in
a query string is the HTTP layer's business (``app/admin/query.py``); here it is typed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, Select, Text, cast, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from ..audit import Tags, record
from ..extensions import db
from ..input_checks import make_storable
from ..models import AuditEvent
from . import staff

PAGE_MAX = 500


@dataclass(frozen=True)
class AuditFilter:
    account_id: int | None = None
    device_id: int | None = None
    client: str | None = None  # a relying party's client_id ("site")
    agency: str | None = None  # an agency's sp_service_id
    tag: str | None = None  # a prefix: "device:" is every device event
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # paging: events older than this one
    limit: int = 100

    def statement(self) -> Select:
        statement = select(AuditEvent)
        if self.account_id is not None:
            statement = statement.where(AuditEvent.account_id == self.account_id)
        if self.device_id is not None:
            statement = statement.where(QueryableDetails()["device"].as_integer() == self.device_id)
        if self.client is not None:
            statement = statement.where(QueryableDetails()["client"].as_string() == self.client)
        if self.agency is not None:
            statement = statement.where(QueryableDetails()["agency"].as_string() == self.agency)
        if self.tag is not None:
            escaped = self.tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(AuditEvent.tag.like(f"{escaped}%", escape="\\"))
        if self.actor is not None:
            statement = statement.where(AuditEvent.actor == self.actor)
        if self.since is not None:
            statement = statement.where(AuditEvent.occurred_at >= self.since)
        if self.until is not None:
            statement = statement.where(AuditEvent.occurred_at < self.until)
        if self.before_id is not None:
            statement = statement.where(AuditEvent.id < self.before_id)
        return statement.order_by(AuditEvent.id.desc())


class QueryableDetails(FunctionElement):
    """``audit_events.details`` as JSON that PostgreSQL's ``->`` and ``->>`` can read on every row.

    Rows written before the door refused it may hold the escape ``\\u0000`` or a lone surrogate's (the JSON
    type stores the text as given); PostgreSQL then fails ``->>`` on the whole row ("unsupported Unicode
    escape sequence"), whichever key is asked for, and the hash chain forbids editing the row. So on
    PostgreSQL the text is read with those escapes turned into U+FFFD's (a paired surrogate too, which no
    client id or device id holds) before ``->>`` parses it. SQLite's JSON functions read such rows as
    they are.
    """

    type = JSON()
    inherit_cache = True
    name = "queryable_details"


# \u0000 and \uD800–\uDFFF escapes not preceded by an odd number of backslashes (PostgreSQL's regex syntax).
_UNQUERYABLE_ESCAPE = r"(?<!\\)((?:\\\\)*)\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})"
_REPLACEMENT_ESCAPE = r"\1\\ufffd"


@compiles(QueryableDetails)
def _details_as_stored(element, compiler, **kw) -> str:
    return compiler.process(AuditEvent.__table__.c.details, **kw)


@compiles(QueryableDetails, "postgresql")
def _details_without_unqueryable_escapes(element, compiler, **kw) -> str:
    text = cast(AuditEvent.__table__.c.details, Text)
    replaced = func.regexp_replace(text, literal(_UNQUERYABLE_ESCAPE), literal(_REPLACEMENT_ESCAPE), literal("g"))
    return compiler.process(cast(replaced, JSON), **kw)


def events(operator: staff.Operator, audit_filter: AuditFilter) -> list[AuditEvent]:
    operator.require(staff.READ)
    return list(db.session.scalars(audit_filter.statement().limit(audit_filter.limit)))


# The export stays UTC (ISO 8601 with +00:00), whatever zone the pages show: the header says so.
CSV_COLUMNS = ("id", "occurred_at (UTC)", "event", "actor", "account_id", "device", "site", "ip", "user_agent", "details")


def csv_rows(operator: staff.Operator, audit_filter: AuditFilter) -> Iterator[str]:
    """Every matching event (no page limit), newest first, streamed in batches. The export is audited."""
    operator.require(staff.READ)
    record(Tags.AUDIT_EXPORTED, actor=operator.actor, filter=_filter_view(audit_filter))
    db.session.commit()
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def row(values) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_csv_safe(value) for value in values])
        return buffer.getvalue()

    yield "\ufeff" + row(CSV_COLUMNS)  # the BOM lets spreadsheet programs read the Chinese text as UTF-8
    for event in db.session.scalars(audit_filter.statement().execution_options(yield_per=500)):
        view = event_view(event)
        yield row([view["id"], view["occurred_at"], view["event"], view["actor"], view["account_id"],
                   view["device"], view["site"], view["ip"], view["user_agent"], _json(view["details"])])


def event_view(event: AuditEvent) -> dict:
    """An event for the pages, the API and the export. Text that UTF-8 cannot encode (a lone surrogate in
    rows from before the door refused it) is shown as U+FFFD, NUL too: one such row must not break the
    page it is on, nor cut an export short."""
    details = event.details or {}
    return make_storable({
        "id": event.id,
        "occurred_at": staff.iso(event.occurred_at),
        "event": event.tag,
        "actor": event.actor,
        "account_id": event.account_id,
        "device": details.get("device"),
        "site": details.get("client"),
        "agency": details.get("agency"),
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": details,
    })


def _filter_view(audit_filter: AuditFilter) -> dict:
    return {
        key: (value.isoformat() if isinstance(value, datetime) else value)
        for key, value in audit_filter.__dict__.items()
        if value is not None and key != "limit"
    }


def _csv_safe(value: object) -> str:
    """Text a spreadsheet would run as a formula (=, +, -, @) is quoted with an apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
