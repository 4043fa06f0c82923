"""Opening and ending sessions, and the login marker: one place for each.

A MoCert session is a server-side :class:`~app.models.AuthSession`; the cookie holds only its token.
Ending one sets ``ended_at`` (the session loader then refuses it); ending those of an account or a phone
also revokes the OIDC tokens they issued, in the caller's transaction. Either way, each site the session
logged in to that registered a back-channel logout URI is owed a logout token, noted in the same transaction
and sent after its commit (``services/backchannel_logout.py``).

The login marker is what the login page adds to an ``/authorize`` request once the person has logged in
here, so ``/authorize`` can tell a fresh login (``prompt=login``, ``max_age``) from an old session. It is
signed with the application's secret and good for an hour.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update

from ..extensions import db
from ..models import Account, AuthSession, OidcToken, utcnow
from . import backchannel_logout
from .tokens import digest, new_token


@dataclass(frozen=True)
class Browser:
    """The browser a login happens in, as the view read it from the request."""

    ip: str | None = None
    user_agent: str | None = None
    held: AuthSession | None = None  # the MoCert session it holds now: a new login ends it


def open(  # noqa: A001 - sessions.open(), beside sessions.end()
    account: Account,
    *,
    method: str,
    lifetime: timedelta,
    ip: str | None = None,
    user_agent: str | None = None,
    card_certificate_id: int | None = None,
    device_id: int | None = None,
    replacing: AuthSession | None = None,
    now: datetime | None = None,
) -> tuple[str, AuthSession]:
    """A new server-side session for ``account`` (added, not committed) and its token, for the view to put
    in a fresh cookie (no fixation). ``replacing``, the browser's previous session, ends with it: a new
    login replaces the session server-side too, not just in the cookie."""
    now = now or utcnow()
    token = new_token()
    auth_session = AuthSession(
        token_hash=digest(token),
        account=account,
        method=method,
        card_certificate_id=card_certificate_id,
        device_id=device_id,
        expires_at=now + lifetime,
        ip=ip,
        user_agent=(user_agent or "")[:400] or None,
    )
    db.session.add(auth_session)
    end(replacing, now=now)
    account.session_token, account.auth_session = token, auth_session  # what Flask-Login's get_id gives
    return token, auth_session


def end(auth_session: AuthSession | None, *, now: datetime | None = None) -> int:
    """End one session (not committed); one already ended keeps its time. Returns how many back-channel
    logouts were queued for the sites it logged in to."""
    if auth_session is None or auth_session.ended_at is not None:
        return 0
    now = now or utcnow()
    auth_session.ended_at = now
    if auth_session.id is None or auth_session.expires_at <= now:  # never flushed, or over already
        return 0
    return backchannel_logout.queue([auth_session.id], now=now)


def end_all(*, account_id: int | None = None, device_id: int | None = None, now: datetime | None = None) -> dict:
    """End every live session of an account or of a phone and revoke the OIDC tokens they hold (not committed).

    Returns ``{"sessions_ended": n, "tokens_revoked": m, "backchannel_logouts": k}`` for the audit event.
    """
    if (account_id is None) == (device_id is None):
        raise TypeError("end_all() takes an account_id or a device_id")
    now = now or utcnow()
    if account_id is not None:
        sessions_of, tokens_of = AuthSession.account_id == account_id, OidcToken.account_id == account_id
    else:
        sessions_of = AuthSession.device_id == device_id
        tokens_of = OidcToken.auth_session_id.in_(select(AuthSession.id).where(sessions_of).scalar_subquery())
    tokens = db.session.execute(
        update(OidcToken)
        .where(tokens_of, OidcToken.revoked_at.is_(None))
        .values(revoked_at=now, national_id_sealed=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    ended = db.session.execute(
        update(AuthSession)
        .where(sessions_of, AuthSession.ended_at.is_(None))
        .values(ended_at=now)
        .returning(AuthSession.id, AuthSession.expires_at)
        .execution_options(synchronize_session=False)
    ).all()
    # Only sessions still live tell their sites: one that expired on its own ended there long ago.
    queued = backchannel_logout.queue([id_ for id_, expires_at in ended if expires_at > now], now=now)
    return {"sessions_ended": len(ended), "tokens_revoked": tokens, "backchannel_logouts": queued}


class LoginMarker:
    """Mints and reads the ``login_after`` parameter of an authorize request."""

    NAME = "login_after"
    MAX_AGE = 3600  # seconds: an authorize request resumed later than this asks for a login again

    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="mocert-oidc-login")

    def mint(self) -> str:
        """A marker saying "logged in now"."""
        return self._serializer.dumps(int(time.time()))

    def read(self, value: object) -> int | None:
        """When the marked login happened (epoch seconds), or ``None`` for no, a forged or an old marker."""
        if not value or not isinstance(value, str):
            return None
        try:
            return int(self._serializer.loads(value, max_age=self.MAX_AGE))
        except (BadSignature, ValueError, TypeError):
            return None

    def strip(self, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The authorize parameters without any marker (a person's own or a stale one)."""
        return [(k, v) for k, v in params if k != self.NAME]

    def mark(self, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The authorize parameters with a fresh marker in place of any other."""
        return [*self.strip(params), (self.NAME, self.mint())]
