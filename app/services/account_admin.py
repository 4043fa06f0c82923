"""Administering people: finding them, their details, acting on their devices, locking their account,
giving or taking a role.

Each action checks its operator's scope and reason (``staff``), refuses an admin's own account or phone
(those go through their own pages), and is audited with the operator as the actor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from iccard import national_id as nid

from ..audit import Tags, record
from ..extensions import db
from ..models import Account, AuditEvent, CardCertificate, Device, utcnow
from . import devices, service_tokens, sessions, staff
from .audit_trail import event_view
from .mobile_certificates import MobileCertificates
from .contact import InvalidContact, normalize_email, normalize_mobile
from .refusals import Refusal

SEARCH_KINDS = ("any", "national_id", "email", "phone", "name")  # "any": the kind the value looks like
SEARCH_LIMIT = 50
IdHasher = Callable[[str], str]  # tokens.NationalIdHash: normalises, raises InvalidNationalId


# -- finding people -------------------------------------------------------------------------------------


def find_accounts(operator: staff.Operator, query: Mapping[str, object], *,
                  national_id_hash: IdHasher) -> list[Account]:
    """By exactly one of: full national ID (through its keyed hash), email, mobile number, or name; or
    ``any``, the one of those the value looks like (``search_kind``)."""
    operator.require(staff.READ)
    given = {key: value for key, value in query.items() if key in SEARCH_KINDS and value}
    if len(given) != 1:
        raise Refusal("one_criterion")
    (kind, value), = given.items()
    if not isinstance(value, str):
        raise Refusal(f"invalid_{'name' if kind == 'any' else kind}", case="search_criterion")
    if kind == "any":
        kind = search_kind(value)
    statement = select(Account)
    try:
        if kind == "national_id":
            statement = statement.where(Account.national_id_hash == national_id_hash(value))
        elif kind == "email":
            statement = statement.where(func.lower(Account.email) == normalize_email(value).lower())
        elif kind == "phone":
            statement = statement.where(Account.phone == normalize_mobile(value))
        else:
            text = value.strip()[:100]
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(Account.name.ilike(f"%{escaped}%", escape="\\"))
    except nid.InvalidNationalId:
        raise Refusal("invalid_national_id", case="search") from None
    except InvalidContact as exc:
        raise Refusal(f"invalid_{exc.field}", case="search") from None
    accounts = list(db.session.scalars(statement.order_by(Account.name, Account.id).limit(SEARCH_LIMIT)))
    # Looking a person up is itself worth a record; the value searched for is not kept, only its kind.
    record(Tags.ADMIN_SEARCHED, actor=operator.actor, by=kind, found=len(accounts))
    db.session.commit()
    return accounts


_PHONE_LIKE = re.compile(r"[0-9+()\s.-]+")


def search_kind(value: str) -> str:
    """What a value typed into one search box is: a national ID's letter and nine digits, an email's @, a
    phone number's digits (and its + - ( ) . and spaces), or else part of a name. Staff type what they have
    in hand; the kind is not worth a choice of theirs (a name searched as a national ID was refused)."""
    text = value.strip()
    if len(text) == 10 and text[0].isascii() and text[0].isalpha() and text[1:].isascii() and text[1:].isdigit():
        return "national_id"  # a mistyped one is refused as a national ID: not searched as a name
    if "@" in text:
        return "email"
    if _PHONE_LIKE.fullmatch(text) and sum(c.isdigit() for c in text) >= 8:
        return "phone"
    return "name"


def account_by_national_id(value: str, *, national_id_hash: IdHasher) -> Account | None:
    """The account registered with this national ID (raises ``InvalidNationalId``)."""
    return db.session.scalar(select(Account).where(Account.national_id_hash == national_id_hash(value)))


def get_account(operator: staff.Operator, account_id: int) -> Account:
    operator.require(staff.READ)
    account = db.session.get(Account, account_id)
    if account is None:
        raise Refusal("account_unknown")
    return account


def account_summary(account: Account) -> dict:
    return {
        "id": account.id,
        "name": account.name,
        "national_id_masked": account.national_id_masked,
        "email": account.email,
        "email_verified": account.email_verified,
        "phone": account.phone,
        "role": account.role,
        "locked": account.locked_at is not None,
        "locked_at": staff.iso(account.locked_at),
        "lock_reason": account.lock_reason,
        "created_at": staff.iso(account.created_at),
    }


def account_detail(account: Account, *, events: int = 50) -> dict:
    """The account with its cards, devices (and their certificates) and its latest audit events."""
    now = utcnow()
    cards = db.session.scalars(
        select(CardCertificate).where(CardCertificate.account_id == account.id).order_by(CardCertificate.not_after.desc())
    )
    phones = db.session.scalars(
        select(Device)
        .where(Device.account_id == account.id)
        .options(selectinload(Device.certificates))
        .order_by(Device.bound_at.desc())
    )
    recent = db.session.scalars(
        select(AuditEvent).where(AuditEvent.account_id == account.id).order_by(AuditEvent.id.desc()).limit(events)
    )
    return {
        **account_summary(account),
        "cards": [
            {
                "name": card.name,
                "serial": card.serial_hex,
                "issuer": card.issuer,
                "not_after": staff.iso(card.not_after),
                "last_login_at": staff.iso(card.last_login_at),
            }
            for card in cards
        ],
        "devices": [device_detail(device, now) for device in phones],
        "events": [event_view(event) for event in recent],
    }


def device_detail(device: Device, now: datetime | None = None) -> dict:
    return {
        **devices.device_view(device, now),
        "revoked_at": staff.iso(device.revoked_at),
        "revocation_reason": device.revocation_reason,
        "possibly_cloned": device.possibly_cloned,
        "aaguid": device.aaguid,
        "certificates": [
            {
                "serial": certificate.serial_hex,
                "not_before": staff.iso(certificate.not_before),
                "not_after": staff.iso(certificate.not_after),
                "status": _certificate_status(certificate),
            }
            for certificate in device.certificates
        ],
    }


def _certificate_status(certificate) -> str:
    """As the CRL and OCSP say it: good, on hold, or revoked with its reason."""
    if certificate.on_hold:
        return "on_hold"
    if certificate.revoked:
        return f"revoked:{certificate.revocation_reason}"
    return "good"


# -- acting on accounts and devices ---------------------------------------------------------------------


def device_action(
    operator: staff.Operator, device_id: int, action: str, reason: object, *, phones: devices.Devices
) -> Device:
    """Suspend, resume or revoke a person's device. Never one's own: that goes through one's own pages."""
    operator.require(staff.DEVICES_WRITE)
    reason = staff.reason_of(reason)
    device = db.session.get(Device, device_id)
    if device is None:
        raise Refusal("device_unknown")
    if operator.account_id is not None and device.account_id == operator.account_id:
        raise Refusal("own_device")
    act = {"suspend": phones.suspend, "resume": phones.resume, "revoke": phones.revoke}[action]
    return act(device, actor=operator.actor, reason=reason)


def lock_account(
    operator: staff.Operator, account: Account, reason: object, *, certificates: MobileCertificates
) -> Account:
    """No login, no session, no OIDC token while locked. Its sessions end, its tokens and the service
    tokens it made are revoked, and its phones' certificates are put on hold (so sites checking the
    CRL or OCSP see it too) — all now, in one transaction."""
    operator.require(staff.ACCOUNTS_WRITE)
    reason = staff.reason_of(reason)
    _not_self(operator, account)
    if account.locked_at is not None:
        raise Refusal("account_locked", case="already_locked")
    now = utcnow()
    account.locked_at, account.lock_reason = now, reason
    ended = sessions.end_all(account_id=account.id, now=now)
    held = [serial for device in _active_devices(account) for serial in certificates.hold_certificates(device)]
    record(Tags.ACCOUNT_LOCKED, account=account, actor=operator.actor, reason=reason,
           sessions_ended=ended["sessions_ended"], tokens_revoked=ended["tokens_revoked"],
           backchannel_logouts=ended["backchannel_logouts"],
           service_tokens_revoked=service_tokens.revoke_made_by(account, now), certificates_held=held)
    db.session.commit()
    return account


def unlock_account(
    operator: staff.Operator, account: Account, reason: object, *, certificates: MobileCertificates
) -> Account:
    operator.require(staff.ACCOUNTS_WRITE)
    reason = staff.reason_of(reason)
    _not_self(operator, account)
    if account.locked_at is None:
        raise Refusal("account_not_locked")
    account.locked_at, account.lock_reason = None, None
    # Phones suspended on their own stay on hold; the others' certificates are good again.
    released = [s for device in _active_devices(account) for s in certificates.release_certificates(device)]
    record(Tags.ACCOUNT_UNLOCKED, account=account, actor=operator.actor, reason=reason, certificates_released=released)
    db.session.commit()
    return account


def set_role(operator: staff.Operator, account: Account, role: object, reason: object) -> Account:
    """Grant ``admin`` or ``auditor``, or remove the role (``None``). Admins only, never on themselves."""
    operator.require(staff.ROLES_WRITE)
    reason = staff.reason_of(reason)
    _not_self(operator, account)
    return grant_role(account, role, actor=operator.actor, reason=reason)


def grant_role(account: Account, role: object, *, actor: str, reason: str) -> Account:
    """The role change itself (the CLI calls this directly: whoever runs it holds the server)."""
    if role is not None and (not isinstance(role, str) or role not in staff.ROLES):  # a list is not even hashable
        raise Refusal("invalid_role")
    if account.role == role:
        return account
    old, account.role = account.role, role
    tag = Tags.ROLE_REMOVED if role is None else Tags.ROLE_GRANTED
    # Tokens an admin made act with the admin's authority: they end with it.
    revoked = service_tokens.revoke_made_by(account, utcnow()) if role != "admin" else 0
    record(tag, account=account, actor=actor, role=role, previous=old, reason=reason, service_tokens_revoked=revoked)
    db.session.commit()
    return account


def _active_devices(account: Account) -> list[Device]:
    return list(db.session.scalars(select(Device).where(Device.account_id == account.id, Device.status == "active")))


def _not_self(operator: staff.Operator, account: Account) -> None:
    if operator.account_id == account.id:
        raise Refusal("own_account")
