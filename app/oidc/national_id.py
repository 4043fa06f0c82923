"""The full national ID, for the clients allowed it: typed by the person, checked, sealed for one login.

MoCert keeps the national ID only as a keyed hash (``Account.national_id_hash``) and the card does not
carry it, so it cannot be read back. When a client registered with ``--allow-national-id`` asks for the
``national_id`` scope, the consent page asks the person to type it (every time); :func:`confirm` checks it
against the account's hash, and the ID then travels sealed — AES-256-GCM under a key derived with HKDF
from ``NATIONAL_ID_HMAC_KEY`` — in the authorization code's row, then in the token's, so that the ID token
and ``/userinfo`` can release it. It is never written in the clear: not to the database, not to a log,
not to the audit trail.

The sealed value is bound (as associated data) to what the row is for, its client and its account: a
sealed ID copied into another row does not open. Wrong IDs are counted per person in Flask-Limiter's
storage: a new authorization does not refill the attempts.

The same confirmation (:func:`confirm_typed`) gives an agency's SP-API-WEB-01 callback its ``id_num``: the
person types it on MoCert's page once their phone has approved (``app/sp_api/web.py``). Both count against
the same attempts of the person, each audited under its own tags (an :class:`Asker`).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from authlib.oauth2.rfc6749.util import scope_to_list
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from limits import parse_many
from sqlalchemy import select

from iccard import national_id as nid

from ..audit import Tags, record
from ..extensions import db, limiter
from ..models import Account
from ..services.refusals import Refusal
from .. import wiring
from .claims import NATIONAL_ID_SCOPE, releases_national_id

SCOPE = NATIONAL_ID_SCOPE
CODE = "authorization_code"  # what a sealed value is for: the code's row…
TOKEN = "token"  # …or the token's

# Its own label, so the sealing key is unrelated to the hash key it is derived from (RFC 5869 §3.2).
_SEAL_KEY_INFO = b"mocert oidc national-id seal v1"
_VERSION = b"\x01"
_NONCE_BYTES = 12

# About a thousand valid IDs share a masked form (A12****789): three wrong ones end the authorization,
# and ten a day at most keep a stolen session from trying them all.
ATTEMPT_LIMITS = "3 per 15 minutes;10 per day"


class InvalidSeal(Exception):
    """A sealed value that does not open: another row's, altered, or sealed under another key."""


def releasable(client, scope: str) -> bool:
    """Whether the full ID may go to this client for this scope (a space-separated scope string)."""
    return releases_national_id(client, scope_to_list(scope or ""))


# -- sealing -----------------------------------------------------------------------------------------


def seal_key(secret: str) -> bytes:
    """The 256-bit sealing key, derived from the national ID's hash key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_KEY_INFO).derive(secret.encode())


def _associated_data(purpose: str, client_id: int, account_id: int) -> bytes:
    return b"|".join([_VERSION, purpose.encode(), str(client_id).encode(), str(account_id).encode()])


def seal_with(key: bytes, national_id: str, *, purpose: str, client_id: int, account_id: int) -> bytes:
    """``version || nonce || AES-256-GCM(ID)``, bound to ``purpose``, the client and the account."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, national_id.encode("ascii"), _associated_data(purpose, client_id, account_id))
    return _VERSION + nonce + sealed


def open_with(key: bytes, sealed: bytes, *, purpose: str, client_id: int, account_id: int) -> str:
    """The ID sealed by :func:`seal_with` for exactly this purpose, client and account; else :class:`InvalidSeal`."""
    if len(sealed) <= 1 + _NONCE_BYTES or sealed[:1] != _VERSION:
        raise InvalidSeal("not a sealed national ID")
    nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    try:
        plain = AESGCM(key).decrypt(nonce, body, _associated_data(purpose, client_id, account_id))
    except InvalidTag:
        raise InvalidSeal("the sealed national ID does not open for this row") from None
    return plain.decode("ascii")


def seal(national_id: str, *, purpose: str, client_id: int, account_id: int) -> bytes:
    return seal_with(_key(), national_id, purpose=purpose, client_id=client_id, account_id=account_id)


def unseal(row, purpose: str) -> str | None:
    """The ID sealed in an authorization code's or token's ``row``, or None (none there, or it does not open)."""
    if row.national_id_sealed is None:
        return None
    try:
        return open_with(
            _key(), row.national_id_sealed, purpose=purpose, client_id=row.client_id, account_id=row.account_id
        )
    except InvalidSeal:
        current_app.logger.warning("a sealed national ID (%s %s) does not open; it is not released", purpose, row.id)
        return None


def _key() -> bytes:
    return seal_key(current_app.config["NATIONAL_ID_HMAC_KEY"])


# -- the person confirms it --------------------------------------------------------------------------


@dataclass(frozen=True)
class Asker:
    """Who asks the person for their ID, as the audit trail records each outcome: its tags, and the facts
    that name it (the client, or the agency and its request)."""

    confirmed: Tags
    mismatch: Tags
    locked: Tags
    facts: Mapping[str, object]


def confirm(account, client, typed: object) -> str:
    """The national ID the person typed for a client's consent (:func:`confirm_typed`; ``oidc:national_id:*``)."""
    asker = Asker(Tags.OIDC_NATIONAL_ID_CONFIRMED, Tags.OIDC_NATIONAL_ID_MISMATCH, Tags.OIDC_NATIONAL_ID_LOCKED,
                  {"client": client.client_id})
    return confirm_typed(account, typed, asker)


def confirm_typed(account, typed: object, asker: Asker) -> str:
    """The national ID the person typed, normalised, when it is theirs (compared as keyed hashes).

    Refuses ``national_id_not_confirmed`` (:func:`not_confirmed`), its case saying why: ``missing``,
    ``invalid`` (not an ID), ``mismatch`` (not this person's) or ``locked`` (no attempts left: the
    authorization is refused); ``attempts_left`` is None while rate limits are off. A wrong ID costs an
    attempt and is audited (the asker's ``mismatch`` tag, with no trace of what was typed); with none left,
    its ``locked`` tag. A typo that is no ID at all (format, check digit) costs nothing. The caller
    commits a success.
    """
    # Parallel guesses for one person wait for each other here (PostgreSQL), so each sees the count the
    # one before it left: a burst of requests cannot try more IDs than the limits allow.
    db.session.execute(select(Account.id).where(Account.id == account.id).with_for_update())
    left = _attempts_left(account)
    if left == 0:
        _locked(account, asker)
    if not isinstance(typed, str) or not typed.strip():
        raise not_confirmed("missing", left)
    try:
        national_id = nid.normalize(typed)
    except nid.InvalidNationalId:
        raise not_confirmed("invalid", left) from None
    typed_hash = wiring.parts().national_id_hash(national_id)
    if not hmac.compare_digest(typed_hash, account.national_id_hash):
        left = _spend_attempt(account)
        record(asker.mismatch, account=account, **asker.facts, attempts_left=left)
        db.session.commit()
        if left == 0:
            _locked(account, asker)
        raise not_confirmed("mismatch", left)
    record(asker.confirmed, account=account, **asker.facts)
    return national_id


def not_confirmed(case: str, attempts_left: int | None) -> Refusal:
    return Refusal("national_id_not_confirmed", case=case, attempts_left=attempts_left)


def _locked(account, asker: Asker) -> None:
    record(asker.locked, account=account, **asker.facts, limits=ATTEMPT_LIMITS)
    db.session.commit()
    raise not_confirmed("locked", 0)


def _attempts_left(account) -> int | None:
    """Wrong IDs this person may still type now; None when rate limits are off (``RATELIMIT_ENABLED``)."""
    if not current_app.config.get("RATELIMIT_ENABLED"):
        return None
    return min(limiter.limiter.get_window_stats(item, *_attempts_key(account)).remaining for item in _limits())


def _spend_attempt(account) -> int | None:
    if not current_app.config.get("RATELIMIT_ENABLED"):
        return None
    for item in _limits():
        limiter.limiter.hit(item, *_attempts_key(account))
    return _attempts_left(account)


def _limits():
    return parse_many(ATTEMPT_LIMITS)


def _attempts_key(account) -> tuple[str, str]:
    # One count per person, whoever asks (the name kept from when only the consent page asked).
    return "mocert-oidc-national-id", str(account.id)
