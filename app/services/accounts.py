"""Registration after a first card login, linking a replacement card, confirming the email address."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from flask import current_app, session
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from iccard import national_id as nid
from iccard.certificate import CitizenCertificate

from ..audit import Tags, record
from ..errors import ApiError
from ..extensions import db
from ..mail import MailError, send_mail
from ..models import Account, CardCertificate, CardLogin, EmailVerification, utcnow
from . import card_login, devices
from .contact import InvalidContact, normalize_email, normalize_mobile

RESEND_INTERVAL = timedelta(seconds=60)


def register(payload: dict) -> tuple[str, Account, bool]:
    """Register the card proven by the pending card login, or link it to the person's account.

    Returns ``("registered", account, email_sent)`` or ``("card_linked", account, False)``.
    """
    login = _pending_card_login()
    card = login.card_certificate
    raw_id = payload.get("national_id")
    try:
        national_id = nid.normalize(raw_id if isinstance(raw_id, str) else "")
    except nid.InvalidNationalId as exc:
        raise ApiError(400, "invalid_national_id", _("The national ID number is not valid."), reason=exc.reason)
    citizen_last4 = _certificate_id_last4(card)
    if citizen_last4 is not None and citizen_last4 != national_id[-4:]:
        _registration_failure(login, "national_id_mismatch")
        raise ApiError(400, "national_id_mismatch", _("This national ID does not belong to the card's holder."))

    id_hash = nid.keyed_hash(national_id, current_app.config["NATIONAL_ID_HMAC_KEY"].encode())
    existing = db.session.scalar(select(Account).where(Account.national_id_hash == id_hash))
    if existing is not None:
        return "card_linked", _link_card(login, card, existing), False

    try:
        email = normalize_email(payload.get("email"))
        phone = normalize_mobile(payload.get("phone"))
    except InvalidContact as exc:
        message = _("The email address is not valid.") if exc.field == "email" else _(
            "Please enter a Taiwan mobile number, such as 0912345678."
        )
        raise ApiError(400, f"invalid_{exc.field}", message, detail=str(exc))

    _claim(login)
    account = Account(
        national_id_hash=id_hash,
        national_id_masked=nid.mask(national_id),
        name=card.name,
        email=email,
        phone=phone,
    )
    db.session.add(account)
    card.account = account
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ApiError(409, "already_registered", _("This person registered a moment ago. Please log in again."))
    record(Tags.ACCOUNT_REGISTERED, account=account, card=card.fingerprint, email=email, phone=phone)
    code = _new_email_code(account)
    card_login.start_session(account, card)  # commits the account, its card and its events together
    email_sent = _send_code(account, code)
    return "registered", account, email_sent


def verify_email(account: Account, code: object) -> None:
    config = current_app.config
    now = utcnow()
    verification = _latest_verification(account)
    if verification is None or verification.verified_at is not None:
        raise ApiError(400, "no_pending_code", _("There is no code waiting. Ask for a new one."))
    if verification.locked_until is not None and verification.locked_until > now:
        raise _locked(verification, now)
    if verification.expires_at <= now:
        raise ApiError(400, "code_expired", _("The code has expired. Ask for a new one."))
    if not isinstance(code, str) or not hmac.compare_digest(_code_hash(verification.id, code.strip()), verification.code_hash):
        # Count the miss in the database in one statement, so parallel guesses cannot share an attempt.
        db.session.execute(
            update(EmailVerification)
            .where(EmailVerification.id == verification.id)
            .values(failed_attempts=EmailVerification.failed_attempts + 1)
        )
        db.session.refresh(verification)
        attempts_left = config["EMAIL_CODE_MAX_ATTEMPTS"] - verification.failed_attempts
        if attempts_left <= 0:
            verification.locked_until = now + config["EMAIL_CODE_LOCKOUT"]
            verification.failed_attempts = 0
            record(Tags.EMAIL_CODE_LOCKED, account=account, until=verification.locked_until.isoformat())
            db.session.commit()
            raise _locked(verification, now)
        record(Tags.EMAIL_CODE_FAILURE, account=account, attempts_left=attempts_left)
        db.session.commit()
        raise ApiError(400, "wrong_code", _("That code is not right."), attempts_left=attempts_left)
    verification.verified_at = now
    account.email_verified_at = now
    record(Tags.EMAIL_CONFIRMED, account=account, email=verification.email)
    db.session.commit()


def resend_email_code(account: Account) -> bool:
    if account.email_verified:
        raise ApiError(400, "already_verified", _("Your email address is already confirmed."))
    now = utcnow()
    latest = _latest_verification(account)
    if latest is not None:
        if latest.locked_until is not None and latest.locked_until > now:
            raise _locked(latest, now)
        wait = latest.created_at + RESEND_INTERVAL - now
        if wait.total_seconds() > 0:
            raise ApiError(
                429, "too_soon", _("A code was just sent. Please wait a minute."), retry_after=int(wait.total_seconds()) + 1
            )
    code = _new_email_code(account)
    db.session.commit()
    return _send_code(account, code)


def account_view(account: Account) -> dict:
    now = utcnow()
    return {
        "name": account.name,
        "national_id_masked": account.national_id_masked,
        "email": account.email,
        "email_verified": account.email_verified,
        "phone": account.phone,
        "cards": [
            {
                "serial": card.serial_hex,
                "subject_serial": card.subject_serial,
                "issuer": card.issuer,
                "not_after": card.not_after.isoformat(),
                "expired": card.not_after <= now,
            }
            for card in account.cards
        ],
        "devices": [devices.device_view(device, now) for device in devices.list_devices(account)],
    }


# -- internals ---------------------------------------------------------------------------------------


def _pending_card_login() -> CardLogin:
    login_id = session.get(card_login.PENDING_REGISTRATION_KEY)
    login = db.session.get(CardLogin, login_id) if isinstance(login_id, str) else None
    ttl = current_app.config["REGISTRATION_TTL"]
    if (
        login is None
        or login.outcome != "registration_required"
        or login.registered_at is not None
        or login.consumed_at is None
        or login.consumed_at + ttl <= utcnow()
    ):
        raise ApiError(401, "card_login_required", _("Please log in with your IC card first."))
    return login


def _claim(login: CardLogin) -> None:
    """Use the pending card login for exactly one registration, even if two requests race."""
    claimed = db.session.execute(
        update(CardLogin)
        .where(CardLogin.id == login.id, CardLogin.registered_at.is_(None))
        .values(registered_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        db.session.rollback()
        raise ApiError(401, "card_login_required", _("Please log in with your IC card first."))


def _link_card(login: CardLogin, card: CardCertificate, account: Account) -> Account:
    # Same person: the ID matched the account's keyed hash, and the name must match the new card too.
    if account.name != card.name:
        _registration_failure(login, "name_mismatch", account=account)
        raise ApiError(409, "name_mismatch", _("The name on this card does not match the account."))
    _claim(login)
    card.account = account
    record(Tags.CARD_LINKED, account=account, card=card.fingerprint, serial=card.serial_hex)
    card_login.start_session(account, card)
    return account


def _registration_failure(login: CardLogin, reason: str, account: Account | None = None) -> None:
    record(Tags.REGISTRATION_FAILURE, account=account, reason=reason, login_id=login.id)
    db.session.commit()


def _certificate_id_last4(card: CardCertificate) -> str | None:
    return CitizenCertificate.from_der(card.der).id_last4


def _latest_verification(account: Account) -> EmailVerification | None:
    return db.session.scalar(
        select(EmailVerification)
        .where(EmailVerification.account_id == account.id)
        .order_by(EmailVerification.id.desc())
        .limit(1)
    )


def _new_email_code(account: Account) -> str:
    code = f"{secrets.randbelow(1_000_000):06d}"
    verification = EmailVerification(
        account_id=account.id,
        email=account.email,
        code_hash="",
        expires_at=utcnow() + current_app.config["EMAIL_CODE_TTL"],
    )
    db.session.add(verification)
    db.session.flush()
    verification.code_hash = _code_hash(verification.id, code)
    return code


def _code_hash(verification_id: int, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{verification_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _send_code(account: Account, code: str) -> bool:
    minutes = int(current_app.config["EMAIL_CODE_TTL"].total_seconds() // 60)
    body = _(
        "Your MoCert confirmation code is %(code)s. It is valid for %(minutes)d minutes.\n"
        "If you did not register with MoCert, ignore this mail.",
        code=code,
        minutes=minutes,
    )
    try:
        send_mail(account.email, _("MoCert email confirmation code: %(code)s", code=code), body)
    except MailError as exc:
        record(Tags.EMAIL_CODE_SENT, account=account, delivered=False, error=str(exc)[:200])
        db.session.commit()
        return False
    record(Tags.EMAIL_CODE_SENT, account=account, delivered=True, email=account.email)
    db.session.commit()
    return True


def _locked(verification: EmailVerification, now: datetime) -> ApiError:
    retry_after = int((verification.locked_until - now).total_seconds()) + 1
    return ApiError(
        429,
        "too_many_attempts",
        _("Too many wrong codes. Please wait, then try again."),
        retry_after=retry_after,
    )
