"""Registration after a first card login, linking a replacement card, confirming the email address."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from iccard import national_id as nid
from iccard.certificate import CitizenCertificate
from iccard.identity_check import IdentityCheckClient, IdentityCheckUnavailable, Verdict

from ..audit import Tags, record
from ..extensions import db
from ..mail import MailError
from ..models import Account, CardCertificate, CardLogin, EmailVerification, utcnow
from . import devices
from .card_login import Browser, LoginSessions, account_locked
from .contact import InvalidContact, normalize_email, normalize_mobile
from .refusals import Refusal
from .tokens import NationalIdHash

RESEND_INTERVAL = timedelta(seconds=60)
REGISTRATION = "registration"  # the case of the refusals that answer here otherwise than elsewhere

log = logging.getLogger(__name__)


class Letters(Protocol):
    """The mails to a person (``app/mail.py`` writes them in the request's language); raise ``MailError``."""

    def confirmation_code(self, to: str, *, code: str, minutes: int) -> None: ...

    def card_not_linked(self, to: str, *, masked: str) -> None: ...


def card_login_required() -> Refusal:
    return Refusal("card_login_required", case=REGISTRATION)



class Accounts:
    """Registration after a first card login, linking a replacement card, confirming the email address.

    Built once (``app/wiring.py``) with its settings and collaborators: the national-ID hash, the identity
    check, the login sessions a registration opens, the mails it sends.
    """

    def __init__(
        self,
        *,
        national_id_hash: NationalIdHash,
        identity_check: IdentityCheckClient,
        identity_check_attempts: int,
        registration_ttl: timedelta,
        sessions: LoginSessions,
        letters: Letters,
        code_key: bytes,
        email_code_ttl: timedelta,
        email_code_attempts: int,
        email_code_lockout: timedelta,
    ) -> None:
        self.national_id_hash = national_id_hash
        self.identity_check = identity_check
        self.identity_check_attempts = identity_check_attempts
        self.registration_ttl = registration_ttl
        self.sessions = sessions
        self.letters = letters
        self._code_key = code_key
        self.email_code_ttl = email_code_ttl
        self.email_code_attempts = email_code_attempts
        self.email_code_lockout = email_code_lockout

    def register(self, payload: dict, pending_login: object, browser: Browser) -> tuple[str, Account, bool]:
        """Register the card proven by the pending card login (the id the view kept in the cookie), or link
        it to the person's account.

        Nothing is claimed without the identity check's yes that the card belongs to the national ID; before
        that yes, every answer is the same whether or not the ID has an account. Returns
        ``("registered", account, email_sent)`` or ``("card_linked", account, False)``; either opened a
        session for the account (the view starts the cookie).
        """
        login = self._pending_card_login(pending_login)
        card = login.card_certificate
        raw_id = payload.get("national_id")
        # Every field is checked before any is refused, so that the form shows all that is wrong at once.
        # Given contact details are checked now; whether they are needed at all (a new account) is told only
        # once the ID is proven, since that says whether the ID has an account.
        wrong: list[Refusal] = []
        national_id = email = phone = None
        try:
            national_id = nid.normalize(raw_id if isinstance(raw_id, str) else "")
        except nid.InvalidNationalId as exc:
            wrong.append(Refusal("invalid_national_id", case=REGISTRATION, reason=exc.reason))
        try:
            email = _contact(normalize_email, payload.get("email"))
        except InvalidContact as exc:
            wrong.append(exc)
        try:
            phone = _contact(normalize_mobile, payload.get("phone"))
        except InvalidContact as exc:
            wrong.append(exc)
        if wrong:
            raise _all_of(wrong)

        id_hash = self.national_id_hash(national_id)
        self._prove_identity(login, card, national_id, id_hash)

        existing = db.session.scalar(select(Account).where(Account.national_id_hash == id_hash))
        if existing is not None:
            return "card_linked", self._link_card(login, card, existing, browser), False

        if email is None or phone is None:  # a new account needs both
            raise _all_of([InvalidContact(field, "required for a new account")
                           for field, value in (("email", email), ("phone", phone)) if value is None])
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
            raise Refusal("already_registered") from None
        record(Tags.ACCOUNT_REGISTERED, account=account, card=card.fingerprint, email=email, phone=phone)
        verification, code = self._new_email_code(account)
        self.sessions.start(account, browser, card=card)  # commits the account, its card and its events together
        email_sent = self._send_code(account, verification.id, code)
        return "registered", account, email_sent

    def verify_email(self, account: Account, code: object) -> None:
        """Confirm the account's address with its newest mailed code.

        Raises :class:`Refusal`: ``no_pending_code``, ``code_expired``, ``wrong_code`` (with
        ``attempts_left``) or ``too_many_attempts`` (with ``retry_after``).

        However many submissions race, exactly ``email_code_attempts`` are compared with the code: each first
        claims an attempt in one conditional UPDATE (:meth:`_claim_attempt`), and only a request that won one
        looks at the code. The claim keeps the code's row written (PostgreSQL's row lock, SQLite's write lock)
        until this request commits, so its outcome, consumed or locked, is in place before the next claim is
        decided. Rows are written in one order, code, then account, then the audit chain's head (``record``
        last), and never through pending ORM changes that would only be flushed after the head at commit.
        """
        verification = _code_in_play(account)
        if verification is None:
            raise _no_pending_code()
        now = utcnow()
        attempt = self._claim_attempt(verification.id, now)
        if attempt is None:
            db.session.rollback()
            raise self._attempt_refused(account, verification.id, now)
        if not self._code_matches(verification, code):
            raise self._wrong_code(account, verification.id, attempt, now)
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

    def resend_email_code(self, account: Account) -> bool:
        """Mail a new code, at most one per ``RESEND_INTERVAL`` per account however many requests race.

        Returns whether the mail went out. Raises :class:`Refusal`: ``already_verified``,
        ``too_many_attempts`` or ``too_soon`` (with ``retry_after``).

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
        latest, in_play = _latest_verification(account), _code_in_play(account)
        if in_play is not None and in_play.locked_until is not None and in_play.locked_until > now:
            raise _locked(in_play.locked_until, now)
        if latest is not None and latest.created_at + RESEND_INTERVAL > now:
            raise _too_soon(latest.created_at + RESEND_INTERVAL - now)
        if not _claim_resend(account.id, now):
            db.session.rollback()
            raise _resend_refused(account.id, now)
        # The misses at the code it replaces carry over: a resend is no way to a fresh set of guesses.
        verification, code = self._new_email_code(
            account, failed_attempts=in_play.failed_attempts if in_play is not None else 0
        )
        db.session.commit()
        return self._send_code(account, verification.id, code)

    # -- registration's internals ----------------------------------------------------------------------

    def _pending_card_login(self, login_id: object) -> CardLogin:
        login = db.session.get(CardLogin, login_id) if isinstance(login_id, str) else None
        if (
            login is None
            or login.outcome != "registration_required"
            or login.registered_at is not None
            or login.consumed_at is None
            or login.consumed_at + self.registration_ttl <= utcnow()
        ):
            raise card_login_required()
        return login

    def _prove_identity(self, login: CardLogin, card: CardCertificate, national_id: str, id_hash: str) -> None:
        """Return only once the identity check has said that ``card`` is the card of ``national_id``.

        Each ID tried counts against the card login, in one conditional statement, before the service is
        asked; a refusal is the same for every ID (registered or not) and is audited. A service that cannot
        be asked costs the login nothing: 503, and the same login may try again.
        """
        if login.identity_confirmed_hash is not None and hmac.compare_digest(login.identity_confirmed_hash, id_hash):
            return  # confirmed on an earlier try of this login (the form then lacked, say, an email)
        der, last4 = card.der, _certificate_id_last4(card)
        attempts_left = self._count_identity_check(login)
        if last4 is not None and last4 != national_id[-4:]:
            raise _claim_refused(login, card, national_id, "id_last4_mismatch", attempts_left)
        # No transaction (nor pooled connection) is held while the service takes its time to answer.
        db.session.commit()
        try:
            verdict = self.identity_check.check(der, national_id)
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
            raise Refusal("identity_check_unavailable") from None
        if verdict is not Verdict.CONFIRMED:
            raise _claim_refused(login, card, national_id, "identity_not_confirmed", attempts_left)
        login.identity_confirmed_hash = id_hash
        record(Tags.IDENTITY_CONFIRMED, login_id=login.id, card=card.fingerprint, national_id=nid.mask(national_id))
        db.session.commit()

    def _count_identity_check(self, login: CardLogin) -> int:
        """Count one try against the login, if it has one left; return how many remain after it."""
        limit = self.identity_check_attempts
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
                raise card_login_required()
            _registration_failure(login, "too_many_identity_checks")
            raise Refusal("too_many_identity_checks")
        return limit - counted

    def _link_card(self, login: CardLogin, card: CardCertificate, account: Account, browser: Browser) -> Account:
        # The identity check proved the card is this ID's; a locked account stays locked, and a card whose
        # name differs from the account's is a conflict for the service desk, not something to settle here.
        if account.locked_at is not None:
            _registration_failure(login, "account_locked", account=account)
            raise account_locked()
        if account.name != card.name:
            raise self._conflict(login, card, account, "name_mismatch")
        _claim(login)
        card.account = account
        record(Tags.CARD_LINKED, account=account, card=card.fingerprint, serial=card.serial_hex)
        self.sessions.start(account, browser, card=card)
        return account

    def _conflict(self, login: CardLogin, card: CardCertificate, account: Account, conflict: str) -> Refusal:
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
            raise card_login_required()
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
        delivered = self._tell_owner_of_conflict(account)
        record(Tags.CONFLICT_NOTICE_SENT, account=account, login_id=login.id, delivered=delivered)
        db.session.commit()
        return Refusal(conflict)

    def _tell_owner_of_conflict(self, account: Account) -> bool:
        try:
            self.letters.card_not_linked(account.email, masked=account.national_id_masked)
        except MailError:
            return False
        return True

    # -- the email code's internals --------------------------------------------------------------------

    def _new_email_code(self, account: Account, *, failed_attempts: int = 0) -> tuple[EmailVerification, str]:
        code = f"{secrets.randbelow(1_000_000):06d}"
        verification = EmailVerification(
            account_id=account.id,
            email=account.email,
            code_hash="",
            failed_attempts=failed_attempts,
            expires_at=utcnow() + self.email_code_ttl,
        )
        db.session.add(verification)
        db.session.flush()
        verification.code_hash = self._code_hash(verification.id, code)
        return verification, code

    def _code_hash(self, verification_id: int, code: str) -> str:
        # Keyed, and bound to its row: six digits are no secret once a database read gives their hash.
        return hmac.new(self._code_key, f"{verification_id}:{code}".encode(), hashlib.sha256).hexdigest()

    def _send_code(self, account: Account, verification_id: int, code: str) -> bool:
        """Mail the code; whether the mail server took it, as the code's row and the audit record say.

        The row is written by one statement before the audit record, in the order every writer here keeps
        (code, then the audit chain's head)."""
        minutes = int(self.email_code_ttl.total_seconds() // 60)
        try:
            self.letters.confirmation_code(account.email, code=code, minutes=minutes)
        except MailError as exc:
            error = str(exc)[:200]
            self._mark_sent(verification_id, sent_at=None, send_error=error)
            record(Tags.EMAIL_CODE_SENT, account=account, delivered=False, error=error, email=account.email)
            db.session.commit()
            return False
        self._mark_sent(verification_id, sent_at=utcnow(), send_error=None)
        record(Tags.EMAIL_CODE_SENT, account=account, delivered=True, email=account.email)
        db.session.commit()
        return True

    @staticmethod
    def _mark_sent(verification_id: int, **values: object) -> None:
        db.session.execute(
            update(EmailVerification)
            .where(EmailVerification.id == verification_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def _claim_attempt(self, verification_id: int, now: datetime) -> int | None:
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
                EmailVerification.failed_attempts < self.email_code_attempts,
            )
            .values(failed_attempts=EmailVerification.failed_attempts + 1)
            .returning(EmailVerification.failed_attempts)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()

    def _code_matches(self, verification: EmailVerification, code: object) -> bool:
        if not isinstance(code, str):
            return False
        return hmac.compare_digest(self._code_hash(verification.id, code.strip()), verification.code_hash)

    def _wrong_code(self, account: Account, verification_id: int, attempt: int, now: datetime) -> Refusal:
        """Record a miss (the claim still holds the row); the last allowed one locks the code. Commits."""
        attempts_left = self.email_code_attempts - attempt
        if attempts_left > 0:
            record(Tags.EMAIL_CODE_FAILURE, account=account, attempts_left=attempts_left)
            db.session.commit()
            return Refusal("wrong_code", attempts_left=attempts_left)
        return self._lock(account, verification_id, now)

    def _lock(self, account: Account, verification_id: int, now: datetime, *only_if) -> Refusal:
        """Lock the code for ``email_code_lockout``, with a fresh set of attempts after it. Commits.

        ``only_if``: further conditions on the code's row, when this request does not hold it already.
        """
        until = now + self.email_code_lockout
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

    def _attempt_refused(self, account: Account, verification_id: int, now: datetime) -> Refusal:
        """Why no attempt could be claimed, from the code as it is now (after the rollback)."""
        verification = db.session.get(EmailVerification, verification_id, populate_existing=True)
        if verification.verified_at is not None:
            return _no_pending_code()
        if verification.locked_until is not None and verification.locked_until > now:
            return _locked(verification.locked_until, now)
        if verification.expires_at <= now:
            return Refusal("code_expired")
        # Open and unlocked, yet out of attempts: the maximum was lowered after these misses. Lock it as the last
        # miss would have; the conditions let one of parallel refusals do it.
        return self._lock(
            account,
            verification_id,
            now,
            EmailVerification.verified_at.is_(None),
            or_(EmailVerification.locked_until.is_(None), EmailVerification.locked_until <= now),
            EmailVerification.failed_attempts >= self.email_code_attempts,
        )


def account_view(account: Account) -> dict:
    now = utcnow()
    return {
        "name": account.name,
        "national_id_masked": account.national_id_masked,
        "email": account.email,
        "email_verified": account.email_verified,
        "phone": account.phone,
        "email_code": _email_code_view(account),
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


# -- internals that need no settings -----------------------------------------------------------------


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
        raise card_login_required()


def _all_of(refusals: list[Refusal]) -> Refusal:
    """The first refusal, carrying the others (``also``: the answer lists them, each with its message)."""
    first, *others = refusals
    if others:
        first.params["also"] = others
    return first


def _contact(normalize, value: object) -> str | None:
    """The normalised email or mobile number; ``None`` when left blank (a replacement card needs neither).
    Raises :class:`InvalidContact`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return normalize(value)


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
    return Refusal("national_id_mismatch", attempts_left=attempts_left)


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


def _code_in_play(account: Account) -> EmailVerification | None:
    """The code the person can type: the newest one the mail server took, else the newest (a resend it
    refused leaves the code already in their inbox working, with the misses counted on it)."""
    return db.session.scalar(
        select(EmailVerification)
        .where(EmailVerification.account_id == account.id)
        .order_by(EmailVerification.sent_at.is_(None), EmailVerification.id.desc())
        .limit(1)
    )


def _email_code_view(account: Account) -> dict | None:
    """The newest code of an unconfirmed address: whether it went out (the page offers a resend if not)."""
    if account.email_verified:
        return None
    latest = _latest_verification(account)
    if latest is None:
        return None
    return {"sent": latest.sent_at is not None, "created_at": latest.created_at.isoformat()}


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


def _resend_refused(account_id: int, now: datetime) -> Refusal:
    account = db.session.get(Account, account_id, populate_existing=True)
    if account.email_verified:
        return _already_verified()
    return _too_soon(account.email_code_resent_at + RESEND_INTERVAL - now)


def _no_pending_code() -> Refusal:
    return Refusal("no_pending_code")


def _already_verified() -> Refusal:
    return Refusal("already_verified")


def _too_soon(wait: timedelta) -> Refusal:
    return Refusal("too_soon", retry_after=int(wait.total_seconds()) + 1)


def _locked(until: datetime, now: datetime) -> Refusal:
    return Refusal("too_many_attempts", retry_after=int((until - now).total_seconds()) + 1)
