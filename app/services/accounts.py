"""Registration after a first card login, linking a replacement card, confirming the email address."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

from flask import current_app, session
from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from iccard import national_id as nid
from iccard.certificate import CitizenCertificate
from iccard.identity_check import IdentityCheckClient, IdentityCheckUnavailable, Verdict

from ..audit import Tags, record
from ..errors import ApiError
from ..extensions import db
from ..mail import MailError, send_mail
from ..models import Account, CardCertificate, CardLogin, EmailVerification, utcnow
from . import card_login, devices
from .contact import InvalidContact, normalize_email, normalize_mobile

RESEND_INTERVAL = timedelta(seconds=60)

log = logging.getLogger(__name__)


def register(payload: dict) -> tuple[str, Account, bool]:
    """Register the card proven by the pending card login, or link it to the person's account.

    Nothing is claimed without the identity check's yes that the card belongs to the national ID; before
    that yes, every answer is the same whether or not the ID has an account. Returns
    ``("registered", account, email_sent)`` or ``("card_linked", account, False)``.
    """
    login = _pending_card_login()
    card = login.card_certificate
    raw_id = payload.get("national_id")
    try:
        national_id = nid.normalize(raw_id if isinstance(raw_id, str) else "")
    except nid.InvalidNationalId as exc:
        raise ApiError(400, "invalid_national_id", _("The national ID number is not valid."), reason=exc.reason)
    # Given contact details are checked now; whether they are needed at all (a new account) is told only
    # once the ID is proven, since that says whether the ID has an account.
    email = _contact(normalize_email, payload.get("email"))
    phone = _contact(normalize_mobile, payload.get("phone"))

    id_hash = nid.keyed_hash(national_id, current_app.config["NATIONAL_ID_HMAC_KEY"].encode())
    _prove_identity(login, card, national_id, id_hash)

    existing = db.session.scalar(select(Account).where(Account.national_id_hash == id_hash))
    if existing is not None:
        return "card_linked", _link_card(login, card, existing), False

    if email is None or phone is None:  # a new account needs both
        raise _contact_error("email" if email is None else "phone", "required for a new account")
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
    """Confirm the account's address with its newest mailed code.

    Raises :class:`ApiError`: ``no_pending_code``, ``code_expired`` (400), ``wrong_code`` (400, with
    ``attempts_left``) or ``too_many_attempts`` (429, with ``retry_after``).

    However many submissions race, exactly ``EMAIL_CODE_MAX_ATTEMPTS`` are compared with the code: each first
    claims an attempt in one conditional UPDATE (:func:`_claim_attempt`), and only a request that won one
    looks at the code. The claim keeps the code's row written (PostgreSQL's row lock, SQLite's write lock)
    until this request commits, so its outcome, consumed or locked, is in place before the next claim is
    decided. Rows are written in one order, code, then account, then the audit chain's head (``record``
    last), and never through pending ORM changes that would only be flushed after the head at commit.
    """
    verification = _latest_verification(account)
    if verification is None:
        raise _no_pending_code()
    now = utcnow()
    attempt = _claim_attempt(verification.id, now)
    if attempt is None:
        db.session.rollback()
        raise _attempt_refused(account, verification.id, now)
    if not _code_matches(verification, code):
        raise _wrong_code(account, verification.id, attempt, now)
    consumed = db.session.execute(
        update(EmailVerification)
        .where(EmailVerification.id == verification.id, EmailVerification.verified_at.is_(None))
        .values(verified_at=now, failed_attempts=EmailVerification.failed_attempts - 1)  # the right code is no miss
        .execution_options(synchronize_session=False)
    )
    if consumed.rowcount != 1:  # cannot happen while the claim holds the row; never confirm twice anyway
        db.session.rollback()
        raise _no_pending_code()
    db.session.execute(
        update(Account)
        .where(Account.id == account.id)
        .values(email_verified_at=now)
        .execution_options(synchronize_session=False)
    )
    record(Tags.EMAIL_CONFIRMED, account=account, email=verification.email)
    db.session.commit()


def resend_email_code(account: Account) -> bool:
    """Mail a new code, at most one per ``RESEND_INTERVAL`` per account however many requests race.

    Returns whether the mail went out. Raises :class:`ApiError`: ``already_verified`` (400),
    ``too_many_attempts`` or ``too_soon`` (429, with ``retry_after``).

    The checks against the newest code give the usual answers, but they only read. What decides is one
    conditional UPDATE of the account's ``email_code_resent_at`` (:func:`_claim_resend`): of parallel resends
    exactly one finds it older than the interval and moves it; the others wait for its commit (PostgreSQL's
    row lock, SQLite's write lock), then match nothing and are refused as too soon. The claim and the new
    code commit together, before the mail is sent; that transaction never touches the audit chain, and the
    one that records the sending touches nothing else, so there is no lock-order cycle.
    """
    if account.email_verified:
        raise _already_verified()
    now = utcnow()
    latest = _latest_verification(account)
    if latest is not None:
        if latest.locked_until is not None and latest.locked_until > now:
            raise _locked(latest.locked_until, now)
        if latest.created_at + RESEND_INTERVAL > now:
            raise _too_soon(latest.created_at + RESEND_INTERVAL - now)
    if not _claim_resend(account.id, now):
        db.session.rollback()
        raise _resend_refused(account.id, now)
    # The misses at the code it replaces carry over: a resend is no way to a fresh set of guesses.
    code = _new_email_code(account, failed_attempts=latest.failed_attempts if latest is not None else 0)
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


def _contact(normalize, value: object) -> str | None:
    """The normalised email or mobile number; ``None`` when left blank (a replacement card needs neither)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return normalize(value)
    except InvalidContact as exc:
        raise _contact_error(exc.field, str(exc)) from None


def _contact_error(field: str, detail: str) -> ApiError:
    if field == "email":
        message = _("The email address is not valid.")
    else:
        message = _("Please enter a Taiwan mobile number, such as 0912345678.")
    return ApiError(400, f"invalid_{field}", message, detail=detail)


def _prove_identity(login: CardLogin, card: CardCertificate, national_id: str, id_hash: str) -> None:
    """Return only once the identity check has said that ``card`` is the card of ``national_id``.

    Each ID tried counts against the card login, in one conditional statement, before the service is
    asked; a refusal is the same for every ID (registered or not) and is audited. A service that cannot
    be asked costs the login nothing: 503, and the same login may try again.
    """
    if login.identity_confirmed_hash is not None and hmac.compare_digest(login.identity_confirmed_hash, id_hash):
        return  # confirmed on an earlier try of this login (the form then lacked, say, an email)
    der, last4 = card.der, _certificate_id_last4(card)
    attempts_left = _count_identity_check(login)
    if last4 is not None and last4 != national_id[-4:]:
        raise _claim_refused(login, card, national_id, "id_last4_mismatch", attempts_left)
    client = IdentityCheckClient(
        current_app.config["IDENTITY_CHECK_URL"],
        token=current_app.config["IDENTITY_CHECK_TOKEN"],
        timeout=current_app.config["IDENTITY_CHECK_TIMEOUT"],
    )
    # No transaction (nor pooled connection) is held while the service takes its time to answer.
    db.session.commit()
    try:
        verdict = client.check(der, national_id)
    except IdentityCheckUnavailable as exc:
        log.warning("identity check unavailable: %s", exc)
        db.session.execute(
            update(CardLogin)
            .where(CardLogin.id == login.id, CardLogin.identity_checks > 0)
            .values(identity_checks=CardLogin.identity_checks - 1)
            .execution_options(synchronize_session=False)
        )
        record(
            Tags.REGISTRATION_FAILURE,
            reason="identity_check_unavailable",
            login_id=login.id,
            card=card.fingerprint,
            detail=str(exc)[:200],
        )
        db.session.commit()
        raise ApiError(
            503,
            "identity_check_unavailable",
            _("Your national ID could not be checked with the certification authority now. Please try again later."),
        ) from None
    if verdict is not Verdict.CONFIRMED:
        raise _claim_refused(login, card, national_id, "identity_not_confirmed", attempts_left)
    login.identity_confirmed_hash = id_hash
    record(Tags.IDENTITY_CONFIRMED, login_id=login.id, card=card.fingerprint, national_id=nid.mask(national_id))
    db.session.commit()


def _count_identity_check(login: CardLogin) -> int:
    """Count one try against the login, if it has one left; return how many remain after it."""
    limit = current_app.config["IDENTITY_CHECK_MAX_ATTEMPTS"]
    counted = db.session.execute(
        update(CardLogin)
        .where(CardLogin.id == login.id, CardLogin.registered_at.is_(None), CardLogin.identity_checks < limit)
        .values(identity_checks=CardLogin.identity_checks + 1)
        .returning(CardLogin.identity_checks)
        .execution_options(synchronize_session=False)
    ).scalar()
    db.session.commit()
    if counted is None:
        if login.registered_at is not None:  # another request of this login registered meanwhile
            raise ApiError(401, "card_login_required", _("Please log in with your IC card first."))
        _registration_failure(login, "too_many_identity_checks")
        raise ApiError(
            429,
            "too_many_identity_checks",
            _("Too many national ID numbers were tried with this card login. Please log in with your card again."),
        )
    return limit - counted


def _claim_refused(login: CardLogin, card: CardCertificate, national_id: str, reason: str, attempts_left: int):
    # One answer for every refused ID: it must not tell whether the ID has an account, so nothing here
    # (nor before it) looks at the accounts.
    record(
        Tags.REGISTRATION_FAILURE,
        reason=reason,
        login_id=login.id,
        card=card.fingerprint,
        national_id=nid.mask(national_id),
    )
    db.session.commit()
    return ApiError(
        400,
        "national_id_mismatch",
        _("This national ID does not belong to the card's holder."),
        attempts_left=attempts_left,
    )


def _link_card(login: CardLogin, card: CardCertificate, account: Account) -> Account:
    # The identity check proved the card is this ID's; a locked account stays locked, and a card whose
    # name differs from the account's is a conflict for the service desk, not something to settle here.
    if account.locked_at is not None:
        _registration_failure(login, "account_locked", account=account)
        raise card_login.account_locked()
    if account.name != card.name:
        raise _conflict(login, card, account, "name_mismatch")
    _claim(login)
    card.account = account
    record(Tags.CARD_LINKED, account=account, card=card.fingerprint, serial=card.serial_hex)
    card_login.start_session(account, card)
    return account


def _conflict(login: CardLogin, card: CardCertificate, account: Account, conflict: str) -> ApiError:
    """A proven claim that does not fit the account: take nothing from it, end this login, tell the owner."""
    # Ending the login in one conditional statement: one notice per card login, however often it is sent.
    ended = db.session.execute(
        update(CardLogin)
        .where(CardLogin.id == login.id, CardLogin.outcome == "registration_required", CardLogin.registered_at.is_(None))
        .values(outcome="claim_conflict")
        .execution_options(synchronize_session=False)
    )
    if ended.rowcount != 1:
        db.session.rollback()
        raise ApiError(401, "card_login_required", _("Please log in with your IC card first."))
    record(
        Tags.REGISTRATION_FAILURE,
        account=account,
        reason="claim_conflict",
        conflict=conflict,
        login_id=login.id,
        card=card.fingerprint,
        card_serial=card.serial_hex,
        account_cards=[c.fingerprint for c in account.cards],
    )
    db.session.commit()
    delivered = _tell_owner_of_conflict(account)
    record(Tags.CONFLICT_NOTICE_SENT, account=account, login_id=login.id, delivered=delivered)
    db.session.commit()
    return ApiError(
        409,
        conflict,
        _(
            "This card cannot be linked to the account of this national ID here. The account is unchanged and "
            "its owner has been told. Please contact the service desk."
        ),
    )


def _tell_owner_of_conflict(account: Account) -> bool:
    body = _(
        "Someone logged in to MoCert with an IC card issued for the national ID of your account (%(masked)s) "
        "and tried to link it to your account. The name on that card differs from your account's, so the card "
        "was not linked and your account is unchanged.\n"
        "Whether or not this was you, please contact the service desk to resolve it.",
        masked=account.national_id_masked,
    )
    try:
        send_mail(account.email, _("MoCert: a card could not be linked to your account"), body)
    except MailError:
        return False
    return True


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


def _new_email_code(account: Account, *, failed_attempts: int = 0) -> str:
    code = f"{secrets.randbelow(1_000_000):06d}"
    verification = EmailVerification(
        account_id=account.id,
        email=account.email,
        code_hash="",
        failed_attempts=failed_attempts,
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


def _claim_attempt(verification_id: int, now: datetime) -> int | None:
    """Count one attempt at a code, in one statement; the attempt's number, or None if none may be made.

    None when the code is confirmed, expired, locked or out of attempts. PostgreSQL rechecks the condition
    on the newest row version after waiting for a concurrent claim's commit, so two claims never share a
    number and none passes the maximum.
    """
    return db.session.execute(
        update(EmailVerification)
        .where(
            EmailVerification.id == verification_id,
            EmailVerification.verified_at.is_(None),
            EmailVerification.expires_at > now,
            or_(EmailVerification.locked_until.is_(None), EmailVerification.locked_until <= now),
            EmailVerification.failed_attempts < current_app.config["EMAIL_CODE_MAX_ATTEMPTS"],
        )
        .values(failed_attempts=EmailVerification.failed_attempts + 1)
        .returning(EmailVerification.failed_attempts)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()


def _code_matches(verification: EmailVerification, code: object) -> bool:
    if not isinstance(code, str):
        return False
    return hmac.compare_digest(_code_hash(verification.id, code.strip()), verification.code_hash)


def _wrong_code(account: Account, verification_id: int, attempt: int, now: datetime) -> ApiError:
    """Record a miss (the claim still holds the row); the last allowed one locks the code. Commits."""
    attempts_left = current_app.config["EMAIL_CODE_MAX_ATTEMPTS"] - attempt
    if attempts_left > 0:
        record(Tags.EMAIL_CODE_FAILURE, account=account, attempts_left=attempts_left)
        db.session.commit()
        return ApiError(400, "wrong_code", _("That code is not right."), attempts_left=attempts_left)
    return _lock(account, verification_id, now)


def _lock(account: Account, verification_id: int, now: datetime, *only_if) -> ApiError:
    """Lock the code for ``EMAIL_CODE_LOCKOUT``, with a fresh set of attempts after it. Commits.

    ``only_if``: further conditions on the code's row, when this request does not hold it already.
    """
    until = now + current_app.config["EMAIL_CODE_LOCKOUT"]
    locked = db.session.execute(
        update(EmailVerification)
        .where(EmailVerification.id == verification_id, *only_if)
        .values(locked_until=until, failed_attempts=0)
        .execution_options(synchronize_session=False)
    )
    if locked.rowcount != 1:  # another request locked it a moment ago: its lock ends within a second of this one
        db.session.rollback()
        return _locked(until, now)
    record(Tags.EMAIL_CODE_LOCKED, account=account, until=until.isoformat())
    db.session.commit()
    return _locked(until, now)


def _attempt_refused(account: Account, verification_id: int, now: datetime) -> ApiError:
    """Why no attempt could be claimed, from the code as it is now (after the rollback)."""
    verification = db.session.get(EmailVerification, verification_id, populate_existing=True)
    if verification.verified_at is not None:
        return _no_pending_code()
    if verification.locked_until is not None and verification.locked_until > now:
        return _locked(verification.locked_until, now)
    if verification.expires_at <= now:
        return ApiError(400, "code_expired", _("The code has expired. Ask for a new one."))
    # Open and unlocked, yet out of attempts: the maximum was lowered after these misses. Lock it as the last
    # miss would have; the conditions let one of parallel refusals do it.
    return _lock(
        account,
        verification_id,
        now,
        EmailVerification.verified_at.is_(None),
        or_(EmailVerification.locked_until.is_(None), EmailVerification.locked_until <= now),
        EmailVerification.failed_attempts >= current_app.config["EMAIL_CODE_MAX_ATTEMPTS"],
    )


def _claim_resend(account_id: int, now: datetime) -> bool:
    """Take the right to mail a new code, in one statement: true for one request per ``RESEND_INTERVAL``."""
    claimed = db.session.execute(
        update(Account)
        .where(
            Account.id == account_id,
            Account.email_verified_at.is_(None),
            or_(Account.email_code_resent_at.is_(None), Account.email_code_resent_at <= now - RESEND_INTERVAL),
        )
        .values(email_code_resent_at=now)
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1


def _resend_refused(account_id: int, now: datetime) -> ApiError:
    account = db.session.get(Account, account_id, populate_existing=True)
    if account.email_verified:
        return _already_verified()
    return _too_soon(account.email_code_resent_at + RESEND_INTERVAL - now)


def _no_pending_code() -> ApiError:
    return ApiError(400, "no_pending_code", _("There is no code waiting. Ask for a new one."))


def _already_verified() -> ApiError:
    return ApiError(400, "already_verified", _("Your email address is already confirmed."))


def _too_soon(wait: timedelta) -> ApiError:
    return ApiError(
        429, "too_soon", _("A code was just sent. Please wait a minute."), retry_after=int(wait.total_seconds()) + 1
    )


def _locked(until: datetime, now: datetime) -> ApiError:
    retry_after = int((until - now).total_seconds()) + 1
    return ApiError(
        429,
        "too_many_attempts",
        _("Too many wrong codes. Please wait, then try again."),
        retry_after=retry_after,
    )
