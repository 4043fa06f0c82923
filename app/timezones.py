"""The time zone people and staff read times in: ``MOCERT_DISPLAY_TIMEZONE`` (an IANA name, ``Asia/Taipei``
by default), checked at startup. Storage, the JSON APIs and exports stay UTC; only what a page shows, and
the times a form takes, are in this zone. The only module that knows ``zoneinfo``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from flask_babel import gettext as _

TAIWAN = "Asia/Taipei"


def load(name: object) -> ZoneInfo:
    """The zone of an IANA name. Raises ``ValueError`` for a name that is not one (or when the system has no
    time zone data: install the ``tzdata`` package then)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("must be an IANA time zone name such as Asia/Taipei")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:  # ValueError: a path-like name (../etc)
        raise ValueError(f"{name!r} is not a time zone this system knows (is tzdata installed?)") from exc


def display_zone() -> ZoneInfo:
    return load(current_app.config["DISPLAY_TIMEZONE"])


def offset(zone: ZoneInfo, moment: datetime | None = None) -> str:
    """``UTC+08:00``: the zone's offset from UTC at ``moment`` (now if not given)."""
    delta = (moment or datetime.now(timezone.utc)).astimezone(zone).utcoffset() or timedelta(0)
    sign = "-" if delta < timedelta(0) else "+"
    minutes = abs(int(delta.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone_name(zone: ZoneInfo) -> str:
    """What to call the zone on a page: "Taiwan time" (臺灣時間) for Asia/Taipei, else its IANA name."""
    return _("Taiwan time") if zone.key == TAIWAN else zone.key


def zone_label(zone: ZoneInfo) -> str:
    """``臺灣時間 (Asia/Taipei, UTC+08:00)``: the zone named so that no one can take it for another."""
    if zone.key == TAIWAN:
        return f"{zone_name(zone)} ({zone.key}, {offset(zone)})"
    return f"{zone.key} ({offset(zone)})"


def shown(moment: datetime, zone: ZoneInfo) -> str:
    """``2026/01/02 15:04:05 UTC+08:00``: a stored (UTC) moment as a page shows it, its offset named."""
    local = moment.astimezone(zone)
    return f"{local:%Y/%m/%d %H:%M:%S} {offset(zone, moment)}"


def to_utc(moment: datetime, zone: ZoneInfo) -> datetime:
    """A moment typed into a form: one without a zone is in ``zone``; the answer is in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(timezone.utc)
