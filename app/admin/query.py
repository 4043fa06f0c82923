"""The audit trail's filter as a query string writes it: ``account``, ``device``, ``site``, ``event``,
``agency``, ``actor``, ``since``, ``until`` (ISO 8601, UTC if no zone is given), ``before``, ``limit``.

Bad values are refused (``invalid_<name>``, a 400), never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from ..models import ID_MAX
from ..services.audit_trail import PAGE_MAX, AuditFilter
from ..services.refusals import Refusal


def audit_filter(args: Mapping[str, str]) -> AuditFilter:
    return AuditFilter(
        account_id=_int_arg(args, "account"),
        device_id=_int_arg(args, "device"),
        client=_text_arg(args, "site"),
        agency=_text_arg(args, "agency"),
        tag=_text_arg(args, "event"),
        actor=_text_arg(args, "actor"),
        since=_time_arg(args, "since"),
        until=_time_arg(args, "until"),
        before_id=_int_arg(args, "before"),
        limit=min(_int_arg(args, "limit") or 100, PAGE_MAX),
    )


def _int_arg(args: Mapping[str, str], name: str) -> int | None:
    value = args.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise Refusal(f"invalid_{name}", case="audit_number", name=name) from None
    if not 0 < number <= ID_MAX:  # ids, and a limit: none of them beyond the id columns
        raise Refusal(f"invalid_{name}", case="audit_number", name=name)
    return number


def _text_arg(args: Mapping[str, str], name: str) -> str | None:
    value = args.get(name)
    if value in (None, ""):
        return None
    return str(value).strip()[:200] or None


def _time_arg(args: Mapping[str, str], name: str) -> datetime | None:
    value = args.get(name)
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: 9999-12-31T23:59-10:00 is past year 9999 in UTC
        raise Refusal(f"invalid_{name}", case="audit_time", name=name) from None
    return moment
