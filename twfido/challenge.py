"""What a phone's approval signs: the WebAuthn challenge of an agency's request.

MoCert's phones hold WebAuthn keys, so a signature is a WebAuthn assertion whose challenge is the SHA-256
of ``challenge_input``: the UTF-8 JSON, keys sorted, no spaces, non-ASCII kept, of the request's
``hint, op_code, sign_data, sp_service_id, sp_ticket_id, transaction_id`` ("" for an absent value; for a
batch, ``sign_data`` is the list of the SHA-256 hex digests of its items). Anyone holding the answer can
rebuild it from what the agency sent and check that the person approved exactly that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

FIELDS = ("hint", "op_code", "sign_data", "sp_service_id", "sp_ticket_id", "transaction_id")


def batch_digests(items: Sequence[str]) -> list[str]:
    """A batch's ``sign_data``: the lowercase hex SHA-256 of each item's UTF-8 text, in order."""
    return [hashlib.sha256(item.encode("utf-8")).hexdigest() for item in items]


def challenge_input(
    *,
    hint: str | None,
    op_code: str | None,
    sign_data: str | Sequence[str] | None,
    sp_service_id: str | None,
    sp_ticket_id: str | None,
    transaction_id: str | None,
) -> str:
    """The canonical JSON text the challenge is the hash of."""
    values = {
        "hint": hint,
        "op_code": op_code,
        "sign_data": list(sign_data) if isinstance(sign_data, (list, tuple)) else sign_data,
        "sp_service_id": sp_service_id,
        "sp_ticket_id": sp_ticket_id,
        "transaction_id": transaction_id,
    }
    return json.dumps(
        {name: "" if value is None else value for name, value in values.items()},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )


def challenge(text: str) -> bytes:
    """The WebAuthn challenge for ``challenge_input`` text: its UTF-8 SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).digest()
