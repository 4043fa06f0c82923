"""Card login: issue a challenge, consume it once, verify the card's answer, start a session."""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask, current_app, request, session
from flask_babel import gettext as _
from flask_login import current_user, login_user
from sqlalchemy import or_, select, update

from iccard import card_login as iccard_login
from iccard.certificate import CitizenCertificate
from iccard.demo_pki import DemoPKI
from iccard.errors import CardLoginError, ChallengeExpired, ChallengeReplayed, ChallengeUnknown
from iccard.signature import SIGNATURE_TYPES
from iccard.origins import origin_of
from iccard.validation import CardCertificateValidator, TrustSettings

from ..audit import Tags, record
from ..errors import ApiError
from ..extensions import db
from ..models import Account, AuthSession, CardCertificate, CardLogin, Device, utcnow

PENDING_REGISTRATION_KEY = "pending_card_login"

# HTTP status for each refusal: the input was wrong (400), the proof was refused (401), the challenge
# is gone (404/409/410), or the CA could not be asked (503: try again later, nothing wrong with the card).
_STATUS = {
    "malformed_input": 400,
    "challenge_unknown": 404,
    "replayed": 409,
    "challenge_expired": 410,
    "revocation_unknown": 503,
}


@dataclass(frozen=True)
class Challenge:
    """What the page passes unchanged into the component's MakeSignature."""

    login_id: str
    tbs: str
    expires_in: int
    tbs_encoding: str = iccard_login.TBS_ENCODING
    hash_algorithm: str = iccard_login.HASH_ALGORITHM


def begin() -> Challenge:
    now = utcnow()
    ttl = current_app.config["CARD_LOGIN_CHALLENGE_TTL"]
    login = CardLogin(
        id=secrets.token_urlsafe(32),
        tbs=iccard_login.new_tbs(current_app.config["PUBLIC_URL"], now),
        hash_algorithm=iccard_login.HASH_ALGORITHM,
        created_at=now,
        expires_at=now + ttl,
    )
    db.session.add(login)
    db.session.commit()
    return Challenge(login.id, login.tbs, int(ttl.total_seconds()))


def complete(payload: dict) -> tuple[str, Account | None]:
    """Verify the component's answer. Returns ``("logged_in", account)`` or ``("registration_required", None)``."""
    login_id = _check_shape(payload)
    verifier = card_verifier()
    try:
        # What needs no challenge is checked before the challenge is spent, so a refusal here spends
        # nothing; the signature over the challenge is checked only once it is consumed.
        answer = verifier.read(payload)
    except CardLoginError as exc:
        raise _refused(login_id, exc, spent=False) from exc
    try:
        login = _consume(login_id)
        citizen = verifier.verify(login.tbs, answer, login.hash_algorithm)
    except CardLoginError as exc:
        raise _refused(login_id, exc) from exc

    card = _remember_certificate(citizen)
    login.card_certificate = card
    if card.account is None:
        login.outcome = "registration_required"
        record(Tags.CARD_LOGIN_SUCCESS, login_id=login.id, card=card.fingerprint, registration_required=True)
        _end_current_session()
        db.session.commit()
        session.clear()
        session[PENDING_REGISTRATION_KEY] = login.id
        return "registration_required", None

    if card.account.locked_at is not None:
        login.outcome = "account_locked"
        record(Tags.CARD_LOGIN_FAILURE, account=card.account, reason="account_locked", login_id=login.id)
        db.session.commit()
        raise account_locked()

    login.outcome = "logged_in"
    card.last_login_at = utcnow()
    record(Tags.CARD_LOGIN_SUCCESS, account=card.account, login_id=login.id, card=card.fingerprint)
    start_session(card.account, card)  # commits
    return "logged_in", card.account


def start_session(
    account: Account, card: CardCertificate | None = None, *, method: str = "card", device_id: int | None = None
) -> None:
    """Open a server-side session for the account in a fresh cookie (no fixation); the browser's previous
    session ends server-side too. Commits, together with whatever the caller added to the transaction."""
    token = secrets.token_urlsafe(32)
    auth_session = AuthSession(
        token_hash=hash_token(token),
        account=account,
        method=method,
        card_certificate_id=card.id if card is not None else None,
        device_id=device_id,
        expires_at=utcnow() + current_app.config["SESSION_LIFETIME"],
        ip=request.remote_addr,
        user_agent=(request.user_agent.string or "")[:400] or None,
    )
    db.session.add(auth_session)
    _end_current_session()
    db.session.commit()
    session.clear()
    session.permanent = True
    account.session_token, account.auth_session = token, auth_session
    login_user(account)


def account_locked() -> ApiError:
    return ApiError(403, "account_locked", _("This account is locked. Please contact the service desk."))


def _end_current_session() -> None:
    """A new login replaces the browser's session: the one it had ends server-side too, not just in the cookie."""
    if current_user.is_authenticated and current_user.auth_session is not None:
        current_user.auth_session.ended_at = utcnow()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_session_account(token: str) -> Account | None:
    """Flask-Login's user loader: one query for the live session and its account.

    A session is dead once ended or expired, once its account is locked, and while the phone it was
    opened with is suspended or revoked; so an administrator's action counts from the next request.
    Sessions of admins and auditors also end after ``ADMIN_IDLE_TIMEOUT`` without a request.
    """
    now = utcnow()
    row = db.session.execute(
        select(AuthSession, Account)
        .join(Account, AuthSession.account_id == Account.id)
        .outerjoin(Device, AuthSession.device_id == Device.id)
        .where(
            AuthSession.token_hash == hash_token(token),
            AuthSession.ended_at.is_(None),
            AuthSession.expires_at > now,
            Account.locked_at.is_(None),
            device_still_trusted(),
        )
    ).first()
    if row is None:
        return None
    auth_session, account = row
    if account.role is not None and not _still_active(auth_session, now):
        return None
    account.session_token, account.auth_session = token, auth_session
    return account


def device_still_trusted():
    """SQL: the session (joined with its device) was not opened with a phone that is now suspended or revoked."""
    return or_(AuthSession.device_id.is_(None), Device.status == "active")


def _still_active(auth_session: AuthSession, now: datetime) -> bool:
    """The idle limit of privileged sessions; last use is written at most once a minute, not per request."""
    last = auth_session.last_seen_at or auth_session.created_at
    if now - last > current_app.config["ADMIN_IDLE_TIMEOUT"]:
        auth_session.ended_at = now
        record(Tags.SESSION_IDLE_ENDED, account=auth_session.account, session=auth_session.id)
        db.session.commit()
        return False
    if now - last > timedelta(minutes=1):
        auth_session.last_seen_at = now
        db.session.commit()
    return True


def _check_shape(payload: dict) -> str:
    """Refuse a request that cannot be a component answer before it uses up the challenge."""
    login_id = payload.get("login_id")
    if not isinstance(login_id, str) or not login_id or len(login_id) > 64:
        raise ApiError(400, "malformed_input", "login_id is required")
    if payload.get("signatureType") not in SIGNATURE_TYPES:
        raise ApiError(400, "malformed_input", f"signatureType must be one of {', '.join(SIGNATURE_TYPES)}")
    if not isinstance(payload.get("signature"), str) or not isinstance(payload.get("certb64", ""), str):
        raise ApiError(400, "malformed_input", "signature (and certb64, when given) must be base64 strings")
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


def _refused(login_id: str, exc: CardLoginError, *, spent: bool = True) -> ApiError:
    """Record the refusal (and, once the challenge is spent, its outcome) in one transaction; return the
    API's answer. An unspent challenge is left as it was, still good for the card it was meant for."""
    db.session.rollback()
    login = db.session.get(CardLogin, login_id) if spent else None
    # A replay must not overwrite the outcome of the login that used the challenge first.
    if login is not None and login.outcome is None and exc.code != "replayed":
        login.outcome = exc.code
    record(Tags.CARD_LOGIN_FAILURE, reason=exc.code, login_id=login_id, detail=str(exc)[:500])
    db.session.commit()
    return ApiError(_STATUS.get(exc.code, 401), exc.code, _message(exc))


def _message(exc: CardLoginError) -> str:
    messages = {
        "malformed_input": _("The card component's answer could not be read."),
        "bad_signature": _("The card's signature is not valid."),
        "tbs_mismatch": _("The card signed something other than this login's challenge."),
        "unknown_issuer": _("This card was not issued by a trusted certification authority."),
        "certificate_expired": _("This card's certificate has expired. Please use your new card."),
        "certificate_not_yet_valid": _("This card's certificate is not valid yet."),
        "certificate_revoked": _("This card's certificate has been revoked."),
        "revocation_unknown": _(
            "The certification authority could not be reached to check this card. Please try again later."
        ),
        "certificate_not_accepted": _("This certificate cannot be used to log in."),
        "challenge_unknown": _("This login was not started here. Please start again."),
        "challenge_expired": _("The login took too long. Please start again."),
        "replayed": _("This signature was already used. Please start again."),
    }
    return messages.get(exc.code, _("The card login failed."))


def _remember_certificate(citizen: CitizenCertificate) -> CardCertificate:
    card = db.session.scalar(select(CardCertificate).where(CardCertificate.fingerprint == citizen.fingerprint))
    if card is None:
        card = CardCertificate.from_citizen(citizen)
        db.session.add(card)
        db.session.flush()
    return card


# -- the verifier: built once per application, on first use ----------------------------------------

_verifier_lock = threading.Lock()


def card_verifier(app: Flask | None = None) -> iccard_login.CardLoginVerifier:
    app = app or current_app._get_current_object()
    verifier = app.extensions.get("mocert.card_verifier")
    if verifier is None:
        with _verifier_lock:
            verifier = app.extensions.get("mocert.card_verifier")
            if verifier is None:
                verifier = iccard_login.CardLoginVerifier(CardCertificateValidator(trust_settings(app.config)))
                app.extensions["mocert.card_verifier"] = verifier
    return verifier


def trust_settings(config) -> TrustSettings:
    def load(paths: tuple[str, ...]) -> tuple[bytes, ...]:
        loaded = []
        for path in paths:
            data = Path(path).read_bytes()
            cert = (
                x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
            )
            loaded.append(cert.public_bytes(Encoding.DER))
        return tuple(loaded)

    origins = list(config["CARD_REVOCATION_HOSTS"])
    # The demo cards name the address their PKI was made with; while this server serves it, that is allowed.
    if config["SERVE_DEMO_PKI"] and DemoPKI.exists(config["DEMO_PKI_DIR"]):
        demo = origin_of(DemoPKI(config["DEMO_PKI_DIR"]).manifest["base_url"])
        if demo is not None and demo not in origins:
            origins.append(demo)
    return TrustSettings(
        anchors=load(config["CARD_TRUST_ANCHORS"]),
        intermediates=load(config["CARD_INTERMEDIATES"]),
        policy_oids=tuple(config["CARD_POLICY_OIDS"]),
        revocation_mode=config["CARD_REVOCATION_MODE"],
        fetch_timeout=config["CARD_REVOCATION_TIMEOUT"],
        revocation_origins=tuple(origins),
    )
