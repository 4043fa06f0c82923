"""``sp_ticket``: what an agency shows as a QR code or pushes to the person's phones.

``base64url(JSON) + "." + base64url(SHA-256 of the first part)``: a digest, not a MAC. The ticket proves
nothing by itself; its ``sp_ticket_id`` names the server-side request, which alone decides. The digest only
lets a phone tell a mistyped or cut ticket from a real one before asking the server.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from . import base64url

# The fields of a ticket's JSON, in the contract's order.
FIELDS = (
    "transaction_id", "op_code", "op_mode", "sp_service_id", "sp_ticket_id", "sp_name", "hint",
    "expiration_time", "hashed_id_num", "version",
)
MAX_LENGTH = 8192  # a ticket longer than any we make is refused before any decoding


class TicketError(ValueError):
    """Not a ticket: malformed, cut, or its digest does not match."""


def encode(fields: dict) -> str:
    """The ticket carrying ``fields`` (the contract's fields; their values as given)."""
    body = base64url.encode(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return f"{body}.{base64url.encode(hashlib.sha256(body.encode('ascii')).digest())}"


def decode(ticket: object) -> dict:
    """The fields of ``ticket``; raises :class:`TicketError` unless its digest matches its first part."""
    if not isinstance(ticket, str) or not 0 < len(ticket) <= MAX_LENGTH or ticket.count(".") != 1:
        raise TicketError("a ticket is two base64url parts joined by a dot")
    body, check = ticket.split(".")
    try:
        expected = base64url.encode(hashlib.sha256(body.encode("ascii")).digest())
        if not hmac.compare_digest(check.encode("ascii"), expected.encode("ascii")):
            raise TicketError("the ticket's digest does not match: it is cut or altered")
        fields = json.loads(base64url.decode(body))
    except RecursionError as exc:  # "[[[[…": the digest is no MAC, anyone can make one that nests so deep
        raise TicketError("the ticket is not base64url JSON") from exc
    except (UnicodeError, ValueError) as exc:
        if isinstance(exc, TicketError):
            raise
        raise TicketError("the ticket is not base64url JSON") from exc
    if not isinstance(fields, dict) or not isinstance(fields.get("sp_ticket_id"), str):
        raise TicketError("the ticket names no sp_ticket_id")
    return fields


def hashed_id_num(national_id: str) -> str:
    """The contract's ``hashed_id_num``: lowercase hex SHA-256 of the national ID in upper case."""
    return hashlib.sha256(national_id.strip().upper().encode("ascii")).hexdigest()

