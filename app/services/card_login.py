"""Card login: issue a challenge, consume it once, verify the card's answer, start a session.

:class:`CardLogins` and :class:`LoginSessions` are built once in ``app/wiring.py`` with their settings and
the card verifier; the views pass in what they know of the request (a :class:`Browser`) and do the
cookie's part (clearing it, ``login_user``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select, update

from iccard import card_login as iccard_login
from iccard.card_login import CardAnswer
from iccard.certificate import CitizenCertificate
from iccard.errors import CardLoginError, ChallengeExpired, ChallengeReplayed, ChallengeUnknown, UnknownIssuer
from iccard.signature import SIGNATURE_TYPES

from ..audit import Tags, record
from ..extensions import db
from ..models import Account, AuthSession, CardCertificate, CardLogin, Device, utcnow
from . import sessions
from .sessions import Browser
from .refusals import Refusal
from .tokens import digest, new_token

# The refusals of the card verifier (``CardLoginError.code``) are the table's "card" family: a code it
# does not list answers as the family's fallback.
CARD = "card"


@dataclass(frozen=True)
class Challenge:
    """What the page passes unchanged into the component's MakeSignature."""

    login_id: str
    tbs: str
    expires_in: int
    tbs_encoding: str = iccard_login.TBS_ENCODING
    hash_algorithm: str = iccard_login.HASH_ALGORITHM


@dataclass(frozen=True)
class Completed:
    """A card login that went through: ``logged_in`` with its account, or ``registration_required`` with
    the card login a registration must name (the view keeps it in the person's cookie)."""

    status: str
    account: Account | None = None
    pending_login: str | None = None


class CardVerifier(Protocol):
    def read(self, response: dict) -> CardAnswer: ...

    def verify(self, tbs: str, answer: CardAnswer, hash_algorithm: str) -> CitizenCertificate: ...


class NoTrustedIssuer:
    """The verifier while no card CA is trusted yet (development before ``pki init-demo`` made the
    demo's root): every card is refused as not issued by a trusted authority."""

    def read(self, response: dict) -> CardAnswer:
        raise UnknownIssuer("no card trust anchor exists yet (make the demo PKI, then restart)")

    def verify(self, tbs: str, answer: CardAnswer, hash_algorithm: str) -> CitizenCertificate:
        raise UnknownIssuer("no card trust anchor exists yet")


def account_locked() -> Refusal:
    """A locked account's login (by card, by a linked card, by phone) is refused the same way."""
    return Refusal("account_locked", case="login")


def device_still_trusted():
    """SQL: the session (joined with its device) was not opened with a phone that is now suspended or revoked."""
    return or_(AuthSession.device_id.is_(None), Device.status == "active")


class LoginSessions:
    """MoCert's server-side sessions: opened for a login, found again from the cookie's token.

    ``lifetime`` bounds every session; ``staff_idle_timeout`` also ends those of admins and auditors
    after that long without a request.
    """

    def __init__(self, *, lifetime: timedelta, staff_idle_timeout: timedelta) -> None:
        self.lifetime, self.staff_idle_timeout = lifetime, staff_idle_timeout

    def start(
        self,
        account: Account,
        browser: Browser,
        *,
        card: CardCertificate | None = None,
        method: str = "card",
        device_id: int | None = None,
    ) -> str:
        """Open a session for the account; the browser's previous session ends server-side too. Commits,
        together with whatever the caller added to the transaction. Returns the token for the cookie (also
        set on ``account`` for Flask-Login's ``get_id``); the view then starts a fresh cookie (no fixation)."""
        token, auth_session = sessions.open(
            account,
            method=method,
            lifetime=self.lifetime,
            ip=browser.ip,
            user_agent=browser.user_agent,
            card_certificate_id=card.id if card is not None else None,
            device_id=device_id,
            replacing=browser.held,
        )
        db.session.commit()
        return token

    def load(self, token: str) -> Account | None:
        """Flask-Login's user loader: one query for the live session and its account.

        A session is dead once ended or expired, once its account is locked, and while the phone it was
        opened with is suspended or revoked; so an administrator's action counts from the next request.
        """
        now = utcnow()
        row = db.session.execute(
            select(AuthSession, Account)
            .join(Account, AuthSession.account_id == Account.id)
            .outerjoin(Device, AuthSession.device_id == Device.id)
            .where(
                AuthSession.token_hash == digest(token),
                AuthSession.ended_at.is_(None),
                AuthSession.expires_at > now,
                Account.locked_at.is_(None),
                device_still_trusted(),
            )
        ).first()
        if row is None:
            return None
        auth_session, account = row
        if account.role is not None and not self._still_active(auth_session, now):
            return None
        account.session_token, account.auth_session = token, auth_session
        return account

    def _still_active(self, auth_session: AuthSession, now: datetime) -> bool:
        """The idle limit of privileged sessions; last use is written at most once a minute, not per request."""
        last = auth_session.last_seen_at or auth_session.created_at
        if now - last > self.staff_idle_timeout:
            sessions.end(auth_session, now=now)
            record(Tags.SESSION_IDLE_ENDED, account=auth_session.account, session=auth_session.id)
            db.session.commit()
            return False
        if now - last > timedelta(minutes=1):
            auth_session.last_seen_at = now
            db.session.commit()
        return True


class CardLogins:
    """Challenges for the card component to sign, and the checking of its answers."""

    def __init__(
        self, *, verifier: CardVerifier, public_url: str, challenge_ttl: timedelta, sessions: LoginSessions
    ) -> None:
        self.verifier = verifier
        self._public_url, self._challenge_ttl, self._sessions = public_url, challenge_ttl, sessions

    def begin(self) -> Challenge:
        now = utcnow()
        login = CardLogin(
            id=new_token(),
            tbs=iccard_login.new_tbs(self._public_url, now),
            hash_algorithm=iccard_login.HASH_ALGORITHM,
            created_at=now,
            expires_at=now + self._challenge_ttl,
        )
        db.session.add(login)
        db.session.commit()
        return Challenge(login.id, login.tbs, int(self._challenge_ttl.total_seconds()))

    def complete(self, payload: dict, browser: Browser) -> Completed:
        """Verify the component's answer; log the card's account in, or say it must register first.

        Raises :class:`Refusal`: the verifier's codes (family ``card``), ``malformed_input`` for a body
        that cannot be an answer, ``account_locked``.
        """
        login_id = _check_shape(payload)
        try:
            # What needs no challenge is checked before the challenge is spent, so a refusal here spends
            # nothing; the signature over the challenge is checked only once it is consumed.
            answer = self.verifier.read(payload)
        except CardLoginError as exc:
            raise _refused(login_id, exc, spent=False) from exc
        try:
            login = _consume(login_id)
            citizen = self.verifier.verify(login.tbs, answer, login.hash_algorithm)
        except CardLoginError as exc:
            raise _refused(login_id, exc) from exc

        card = _remember_certificate(citizen)
        login.card_certificate = card
        if card.account is None:
            login.outcome = "registration_required"
            record(Tags.CARD_LOGIN_SUCCESS, login_id=login.id, card=card.fingerprint, registration_required=True)
            sessions.end(browser.held)
            db.session.commit()
            return Completed("registration_required", pending_login=login.id)

        if card.account.locked_at is not None:
            login.outcome = "account_locked"
            record(Tags.CARD_LOGIN_FAILURE, account=card.account, reason="account_locked", login_id=login.id)
            db.session.commit()
            raise account_locked()

        # Held here: the commit expires card.account, and a reload would lack the session just opened.
        account = card.account
        login.outcome = "logged_in"
        card.last_login_at = utcnow()
        record(Tags.CARD_LOGIN_SUCCESS, account=account, login_id=login.id, card=card.fingerprint)
        self._sessions.start(account, browser, card=card)  # commits
        return Completed("logged_in", account=account)


def _check_shape(payload: dict) -> str:
    """Refuse a request that cannot be a component answer before it uses up the challenge."""
    login_id = payload.get("login_id")
    if not isinstance(login_id, str) or not login_id or len(login_id) > 64:
        raise Refusal("malformed_input", case="card_login_id")
    if payload.get("signatureType") not in SIGNATURE_TYPES:
        raise Refusal("malformed_input", case="card_signature_type", types=", ".join(SIGNATURE_TYPES))
    if not isinstance(payload.get("signature"), str) or not isinstance(payload.get("certb64", ""), str):
        raise Refusal("malformed_input", case="card_signature")
    return login_id


def _consume(login_id: str) -> CardLogin:
    """Mark the challenge used before anything else is checked, and commit, so it counts once only."""
    now = utcnow()
    login = db.session.get(CardLogin, login_id)
    if login is None:
        raise ChallengeUnknown("no such login challenge")
    consumed = db.session.execute(
        update(CardLogin)
        .where(CardLogin.id == login_id, CardLogin.consumed_at.is_(None))
        .values(consumed_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if consumed.rowcount != 1:
        raise ChallengeReplayed("this login challenge was already used")
    if login.expires_at <= now:
        raise ChallengeExpired("the login challenge expired; start again")
    return login


def _refused(login_id: str, exc: CardLoginError, *, spent: bool = True) -> Refusal:
    """Record the refusal (and, once the challenge is spent, its outcome) in one transaction; return the
    refusal to raise. An unspent challenge is left as it was, still good for the card it was meant for."""
    db.session.rollback()
    login = db.session.get(CardLogin, login_id) if spent else None
    # A replay must not overwrite the outcome of the login that used the challenge first.
    if login is not None and login.outcome is None and exc.code != "replayed":
        login.outcome = exc.code
    record(Tags.CARD_LOGIN_FAILURE, reason=exc.code, login_id=login_id, detail=str(exc)[:500])
    db.session.commit()
    return Refusal(exc.code, case=CARD)


def _remember_certificate(citizen: CitizenCertificate) -> CardCertificate:
    card = db.session.scalar(select(CardCertificate).where(CardCertificate.fingerprint == citizen.fingerprint))
    if card is None:
        card = CardCertificate.from_citizen(citizen)
        db.session.add(card)
        db.session.flush()
    return card
