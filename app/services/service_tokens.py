"""Service tokens: scoped bearer credentials for automation against the administration API.

A token is shown once when made and stored only as its SHA-256 (``tokens.digest``); it acts with the
scopes it was given, never more than :data:`~app.services.staff.TOKEN_SCOPES`, and cannot mint tokens.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from ..audit import Tags, record
from ..extensions import db
from ..models import Account, ServiceToken, utcnow
from . import staff
from .refusals import Refusal
from .tokens import digest, new_token

PREFIX = "mocert_st_"  # recognisable in logs and by secret scanners
NAME_MAX = 80
DAYS_MAX = 3650


def operator_for(raw: str) -> staff.Operator | None:
    """A service token's operator, or None if it is unknown, revoked or expired (one query)."""
    if not raw.startswith(PREFIX) or len(raw) > 100:
        return None
    now = utcnow()
    token = db.session.scalar(
        select(ServiceToken).where(
            ServiceToken.token_hash == digest(raw),
            ServiceToken.revoked_at.is_(None),
            or_(ServiceToken.expires_at.is_(None), ServiceToken.expires_at > now),
        )
    )
    if token is None:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now  # at most once a minute: automation may poll
        db.session.commit()
    return staff.Operator(f"service:{token.id}", frozenset(token.scopes) & frozenset(staff.TOKEN_SCOPES))


def create(*, actor: str, name: object, scopes: object, expires_in_days: object = None) -> tuple[ServiceToken, str]:
    """A new token (committed); the returned plain value exists nowhere else afterwards."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_MAX:
        raise Refusal("invalid_name", case="service_token")
    if isinstance(scopes, str):
        scopes = scopes.split()
    if (not isinstance(scopes, (list, tuple)) or not scopes
            or not all(isinstance(scope, str) and scope in staff.TOKEN_SCOPES for scope in scopes)):
        raise Refusal("invalid_scopes", case="service_token", scopes=", ".join(staff.TOKEN_SCOPES))
    expires_at = None
    if expires_in_days is not None:
        if (not isinstance(expires_in_days, int) or isinstance(expires_in_days, bool)
                or not 1 <= expires_in_days <= DAYS_MAX):
            raise Refusal("invalid_expiry", case="service_token")
        expires_at = utcnow() + timedelta(days=expires_in_days)
    raw = PREFIX + new_token()
    token = ServiceToken(
        name=name.strip(), token_hash=digest(raw), scopes=sorted(set(scopes)), created_by=actor, expires_at=expires_at
    )
    db.session.add(token)
    db.session.flush()
    record(Tags.SERVICE_TOKEN_CREATED, actor=actor, token=token.id, name=token.name, scopes=token.scopes)
    db.session.commit()
    return token, raw


def revoke(operator: staff.Operator, token_id: int, reason: object) -> ServiceToken:
    operator.require(staff.TOKENS_WRITE)
    reason = staff.reason_of(reason)
    token = db.session.get(ServiceToken, token_id)
    if token is None:
        raise Refusal("token_unknown")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record(Tags.SERVICE_TOKEN_REVOKED, actor=operator.actor, token=token.id, name=token.name, reason=reason)
        db.session.commit()
    return token


def revoke_made_by(account: Account, now: datetime) -> int:
    """Revoke the tokens an admin made (not committed): they act with the admin's authority and end with it."""
    return db.session.execute(
        update(ServiceToken)
        .where(ServiceToken.created_by == f"account:{account.id}", ServiceToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def list_all() -> list[ServiceToken]:
    return list(db.session.scalars(select(ServiceToken).order_by(ServiceToken.id.desc())))


def view(token: ServiceToken) -> dict:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": list(token.scopes),
        "created_at": staff.iso(token.created_at),
        "created_by": token.created_by,
        "expires_at": staff.iso(token.expires_at),
        "revoked_at": staff.iso(token.revoked_at),
        "last_used_at": staff.iso(token.last_used_at),
    }
