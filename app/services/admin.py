"""Administration: who may operate (roles, service tokens), finding people, acting on accounts and devices,
and reading the audit trail.

An :class:`Operator` is whoever acts: a logged-in admin or auditor, or a service token for automation.
Every state change names its operator as the audit actor and carries a reason. Privileges are scopes, so
a role and a token are checked the same way; a refusal is itself a security event and is audited.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import JSON, Select, Text, cast, func, literal, or_, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.orm import selectinload

from iccard import national_id as nid

from ..audit import Tags, record
from ..errors import ApiError
from ..extensions import db
from ..input_checks import make_storable
from ..models import (ID_MAX, Account, AuditEvent, AuthSession, CardCertificate, Device, OidcToken, ServiceToken,
                      utcnow)
from . import devices, mobile_certificates
from .contact import InvalidContact, normalize_email, normalize_mobile

READ = "read"
DEVICES_WRITE = "devices:write"
ACCOUNTS_WRITE = "accounts:write"
CLIENTS_WRITE = "clients:write"
ROLES_WRITE = "roles:write"  # admins only: never through a service token
TOKENS_WRITE = "tokens:write"  # admins only: a token cannot mint tokens
TOKEN_SCOPES = (READ, DEVICES_WRITE, ACCOUNTS_WRITE, CLIENTS_WRITE)
ROLES = {
    "auditor": frozenset({READ}),
    "admin": frozenset({*TOKEN_SCOPES, ROLES_WRITE, TOKENS_WRITE}),
}
TOKEN_PREFIX = "mocert_st_"  # recognisable in logs and by secret scanners
REASON_MAX = 200
SEARCH_LIMIT = 50
AUDIT_PAGE_MAX = 500


@dataclass(frozen=True)
class Operator:
    actor: str  # the audit actor: "account:<id>" or "service:<id>"
    scopes: frozenset[str]
    account_id: int | None = None  # the admin's own account (None for a service token)
    role: str | None = None

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            record(Tags.ADMIN_DENIED, actor=self.actor, scope=scope)
            db.session.commit()
            raise ApiError(403, "forbidden", _("You are not allowed to do this."), scope=scope)


def operator_for_account(account: Account) -> Operator | None:
    scopes = ROLES.get(account.role or "")
    if scopes is None:
        return None
    return Operator(f"account:{account.id}", scopes, account_id=account.id, role=account.role)


def operator_for_token(raw: str) -> Operator | None:
    """A service token's operator, or None if it is unknown, revoked or expired (one query)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    now = utcnow()
    token = db.session.scalar(
        select(ServiceToken).where(
            ServiceToken.token_hash == _hash(raw),
            ServiceToken.revoked_at.is_(None),
            or_(ServiceToken.expires_at.is_(None), ServiceToken.expires_at > now),
        )
    )
    if token is None:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now  # at most once a minute: automation may poll
        db.session.commit()
    return Operator(f"service:{token.id}", frozenset(token.scopes) & frozenset(TOKEN_SCOPES))


def reason_of(value: object) -> str:
    """Every change an operator makes says why; the reason goes into the audit trail."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "reason_required", _("Please give a reason."))
    if len(value.strip()) > REASON_MAX:
        raise ApiError(400, "reason_too_long", _("The reason can be at most %(max)d characters.", max=REASON_MAX))
    return value.strip()


# -- finding people -------------------------------------------------------------------------------------


def find_accounts(operator: Operator, query: Mapping[str, object]) -> list[Account]:
    """By exactly one of: full national ID (through its keyed hash), email, mobile number, or name."""
    operator.require(READ)
    given = {key: value for key, value in query.items() if key in ("national_id", "email", "phone", "name") and value}
    if len(given) != 1:
        raise ApiError(400, "one_criterion", _("Search by one of: national ID, email, mobile number or name."))
    (kind, value), = given.items()
    if not isinstance(value, str):
        raise ApiError(400, f"invalid_{kind}", _("Search by one of: national ID, email, mobile number or name."))
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
        raise ApiError(400, "invalid_national_id", _("The national ID number is not valid.")) from None
    except InvalidContact as exc:
        raise ApiError(400, f"invalid_{exc.field}", _("The email address or mobile number is not valid.")) from None
    accounts = list(db.session.scalars(statement.order_by(Account.name, Account.id).limit(SEARCH_LIMIT)))
    # Looking a person up is itself worth a record; the value searched for is not kept, only its kind.
    record(Tags.ADMIN_SEARCHED, actor=operator.actor, by=kind, found=len(accounts))
    db.session.commit()
    return accounts


def get_account(operator: Operator, account_id: int) -> Account:
    operator.require(READ)
    account = db.session.get(Account, account_id)
    if account is None:
        raise ApiError(404, "account_unknown", _("There is no such account."))
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
        "locked_at": _iso(account.locked_at),
        "lock_reason": account.lock_reason,
        "created_at": _iso(account.created_at),
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
                "not_after": _iso(card.not_after),
                "last_login_at": _iso(card.last_login_at),
            }
            for card in cards
        ],
        "devices": [device_detail(device, now) for device in phones],
        "events": [event_view(event) for event in recent],
    }


def device_detail(device: Device, now: datetime | None = None) -> dict:
    return {
        **devices.device_view(device, now),
        "revoked_at": _iso(device.revoked_at),
        "revocation_reason": device.revocation_reason,
        "possibly_cloned": device.possibly_cloned,
        "aaguid": device.aaguid,
        "certificates": [
            {
                "serial": certificate.serial_hex,
                "not_before": _iso(certificate.not_before),
                "not_after": _iso(certificate.not_after),
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


def device_action(operator: Operator, device_id: int, action: str, reason: object) -> Device:
    """Suspend, resume or revoke a person's device. Never one's own: that goes through one's own pages."""
    operator.require(DEVICES_WRITE)
    reason = reason_of(reason)
    device = db.session.get(Device, device_id)
    if device is None:
        raise ApiError(404, "device_unknown", _("There is no such device."))
    if operator.account_id is not None and device.account_id == operator.account_id:
        raise ApiError(403, "own_device", _("Manage your own devices from your account page."))
    act = {"suspend": devices.suspend, "resume": devices.resume, "revoke": devices.revoke}[action]
    return act(device, actor=operator.actor, reason=reason)


def lock_account(operator: Operator, account: Account, reason: object) -> Account:
    """No login, no session, no OIDC token while locked. Its sessions end, its tokens and the service
    tokens it made are revoked, and its phones' certificates are put on hold (so sites checking the
    CRL or OCSP see it too) — all now, in one transaction."""
    operator.require(ACCOUNTS_WRITE)
    reason = reason_of(reason)
    _not_self(operator, account)
    if account.locked_at is not None:
        raise ApiError(409, "account_locked", _("This account is already locked."))
    now = utcnow()
    account.locked_at, account.lock_reason = now, reason
    ended = db.session.execute(
        update(AuthSession)
        .where(AuthSession.account_id == account.id, AuthSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    revoked = db.session.execute(
        update(OidcToken)
        .where(OidcToken.account_id == account.id, OidcToken.revoked_at.is_(None))
        .values(revoked_at=now, national_id_sealed=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    held = [serial for device in _active_devices(account) for serial in mobile_certificates.hold_certificates(device)]
    record(Tags.ACCOUNT_LOCKED, account=account, actor=operator.actor, reason=reason, sessions_ended=ended,
           tokens_revoked=revoked, service_tokens_revoked=_revoke_tokens_made_by(account, now),
           certificates_held=held)
    db.session.commit()
    return account


def unlock_account(operator: Operator, account: Account, reason: object) -> Account:
    operator.require(ACCOUNTS_WRITE)
    reason = reason_of(reason)
    _not_self(operator, account)
    if account.locked_at is None:
        raise ApiError(409, "account_not_locked", _("This account is not locked."))
    account.locked_at, account.lock_reason = None, None
    # Phones suspended on their own stay on hold; the others' certificates are good again.
    released = [s for device in _active_devices(account) for s in mobile_certificates.release_certificates(device)]
    record(Tags.ACCOUNT_UNLOCKED, account=account, actor=operator.actor, reason=reason, certificates_released=released)
    db.session.commit()
    return account


def set_role(operator: Operator, account: Account, role: object, reason: object) -> Account:
    """Grant ``admin`` or ``auditor``, or remove the role (``None``). Admins only, never on themselves."""
    operator.require(ROLES_WRITE)
    reason = reason_of(reason)
    _not_self(operator, account)
    return grant_role(account, role, actor=operator.actor, reason=reason)


def grant_role(account: Account, role: object, *, actor: str, reason: str) -> Account:
    """The role change itself (the CLI calls this directly: whoever runs it holds the server)."""
    if role is not None and (not isinstance(role, str) or role not in ROLES):  # a list is not even hashable
        raise ApiError(400, "invalid_role", _("The role is admin, auditor, or none."))
    if account.role == role:
        return account
    old, account.role = account.role, role
    tag = Tags.ROLE_REMOVED if role is None else Tags.ROLE_GRANTED
    # Tokens an admin made act with the admin's authority: they end with it.
    revoked = _revoke_tokens_made_by(account, utcnow()) if role != "admin" else 0
    record(tag, account=account, actor=actor, role=role, previous=old, reason=reason, service_tokens_revoked=revoked)
    db.session.commit()
    return account


def national_id_hash(value: str) -> str:
    """The keyed hash a full national ID is found by (raises ``InvalidNationalId``)."""
    return nid.keyed_hash(nid.normalize(value), current_app.config["NATIONAL_ID_HMAC_KEY"].encode())


def account_by_national_id(value: str) -> Account | None:
    return db.session.scalar(select(Account).where(Account.national_id_hash == national_id_hash(value)))


def _active_devices(account: Account) -> list[Device]:
    return list(db.session.scalars(select(Device).where(Device.account_id == account.id, Device.status == "active")))


def _revoke_tokens_made_by(account: Account, now: datetime) -> int:
    return db.session.execute(
        update(ServiceToken)
        .where(ServiceToken.created_by == f"account:{account.id}", ServiceToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def _not_self(operator: Operator, account: Account) -> None:
    if operator.account_id == account.id:
        raise ApiError(403, "own_account", _("Administrators cannot change their own account here."))


# -- service tokens -------------------------------------------------------------------------------------


def create_service_token(
    *, actor: str, name: object, scopes: object, expires_in_days: object = None
) -> tuple[ServiceToken, str]:
    """A new token (committed); the returned plain value exists nowhere else afterwards."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 80:
        raise ApiError(400, "invalid_name", _("Give the token a name of at most 80 characters."))
    if isinstance(scopes, str):
        scopes = scopes.split()
    if (not isinstance(scopes, (list, tuple)) or not scopes
            or not all(isinstance(scope, str) and scope in TOKEN_SCOPES for scope in scopes)):
        raise ApiError(400, "invalid_scopes", _("Scopes are among: %(scopes)s.", scopes=", ".join(TOKEN_SCOPES)))
    expires_at = None
    if expires_in_days is not None:
        if not isinstance(expires_in_days, int) or isinstance(expires_in_days, bool) or not 1 <= expires_in_days <= 3650:
            raise ApiError(400, "invalid_expiry", _("A token lasts 1 to 3650 days, or until revoked."))
        expires_at = utcnow() + timedelta(days=expires_in_days)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ServiceToken(
        name=name.strip(), token_hash=_hash(raw), scopes=sorted(set(scopes)), created_by=actor, expires_at=expires_at
    )
    db.session.add(token)
    db.session.flush()
    record(Tags.SERVICE_TOKEN_CREATED, actor=actor, token=token.id, name=token.name, scopes=token.scopes)
    db.session.commit()
    return token, raw


def revoke_service_token(operator: Operator, token_id: int, reason: object) -> ServiceToken:
    operator.require(TOKENS_WRITE)
    reason = reason_of(reason)
    token = db.session.get(ServiceToken, token_id)
    if token is None:
        raise ApiError(404, "token_unknown", _("There is no such token."))
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record(Tags.SERVICE_TOKEN_REVOKED, actor=operator.actor, token=token.id, name=token.name, reason=reason)
        db.session.commit()
    return token


def list_service_tokens() -> list[ServiceToken]:
    return list(db.session.scalars(select(ServiceToken).order_by(ServiceToken.id.desc())))


def service_token_view(token: ServiceToken) -> dict:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": list(token.scopes),
        "created_at": _iso(token.created_at),
        "created_by": token.created_by,
        "expires_at": _iso(token.expires_at),
        "revoked_at": _iso(token.revoked_at),
        "last_used_at": _iso(token.last_used_at),
    }


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- the audit trail ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    account_id: int | None = None
    device_id: int | None = None
    client: str | None = None  # a relying party's client_id ("site")
    tag: str | None = None  # a prefix: "device:" is every device event
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # paging: events older than this one
    limit: int = 100

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> AuditFilter:
        """From query parameters: ``account``, ``device``, ``site``, ``event``, ``actor``, ``since``, ``until``
        (ISO 8601, UTC if no zone is given), ``before``, ``limit``. Bad values are a 400, not a 500."""
        return cls(
            account_id=_int_arg(args, "account"),
            device_id=_int_arg(args, "device"),
            client=_text_arg(args, "site"),
            tag=_text_arg(args, "event"),
            actor=_text_arg(args, "actor"),
            since=_time_arg(args, "since"),
            until=_time_arg(args, "until"),
            before_id=_int_arg(args, "before"),
            limit=min(_int_arg(args, "limit") or 100, AUDIT_PAGE_MAX),
        )

    def statement(self) -> Select:
        statement = select(AuditEvent)
        if self.account_id is not None:
            statement = statement.where(AuditEvent.account_id == self.account_id)
        if self.device_id is not None:
            statement = statement.where(QueryableDetails()["device"].as_integer() == self.device_id)
        if self.client is not None:
            statement = statement.where(QueryableDetails()["client"].as_string() == self.client)
        if self.tag is not None:
            escaped = self.tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(AuditEvent.tag.like(f"{escaped}%", escape="\\"))
        if self.actor is not None:
            statement = statement.where(AuditEvent.actor == self.actor)
        if self.since is not None:
            statement = statement.where(AuditEvent.occurred_at >= self.since)
        if self.until is not None:
            statement = statement.where(AuditEvent.occurred_at < self.until)
        if self.before_id is not None:
            statement = statement.where(AuditEvent.id < self.before_id)
        return statement.order_by(AuditEvent.id.desc())


class QueryableDetails(FunctionElement):
    """``audit_events.details`` as JSON that PostgreSQL's ``->`` and ``->>`` can read on every row.

    Rows written before the door refused it may hold the escape ``\\u0000`` or a lone surrogate's (the JSON
    type stores the text as given); PostgreSQL then fails ``->>`` on the whole row ("unsupported Unicode
    escape sequence"), whichever key is asked for, and the hash chain forbids editing the row. So on
    PostgreSQL the text is read with those escapes turned into U+FFFD's (a paired surrogate too, which no
    client id or device id holds) before ``->>`` parses it. SQLite's JSON functions read such rows as
    they are.
    """

    type = JSON()
    inherit_cache = True
    name = "queryable_details"


# \u0000 and \uD800–\uDFFF escapes not preceded by an odd number of backslashes (PostgreSQL's regex syntax).
_UNQUERYABLE_ESCAPE = r"(?<!\\)((?:\\\\)*)\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})"
_REPLACEMENT_ESCAPE = r"\1\\ufffd"


@compiles(QueryableDetails)
def _details_as_stored(element, compiler, **kw) -> str:
    return compiler.process(AuditEvent.__table__.c.details, **kw)


@compiles(QueryableDetails, "postgresql")
def _details_without_unqueryable_escapes(element, compiler, **kw) -> str:
    text = cast(AuditEvent.__table__.c.details, Text)
    replaced = func.regexp_replace(text, literal(_UNQUERYABLE_ESCAPE), literal(_REPLACEMENT_ESCAPE), literal("g"))
    return compiler.process(cast(replaced, JSON), **kw)


def audit_events(operator: Operator, audit_filter: AuditFilter) -> list[AuditEvent]:
    operator.require(READ)
    return list(db.session.scalars(audit_filter.statement().limit(audit_filter.limit)))


CSV_COLUMNS = ("id", "occurred_at", "event", "actor", "account_id", "device", "site", "ip", "user_agent", "details")


def audit_csv(operator: Operator, audit_filter: AuditFilter) -> Iterator[str]:
    """Every matching event (no page limit), newest first, streamed in batches. The export is audited."""
    operator.require(READ)
    record(Tags.AUDIT_EXPORTED, actor=operator.actor, filter=_filter_view(audit_filter))
    db.session.commit()
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def row(values) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_csv_safe(value) for value in values])
        return buffer.getvalue()

    yield "\ufeff" + row(CSV_COLUMNS)  # the BOM lets spreadsheet programs read the Chinese text as UTF-8
    for event in db.session.scalars(audit_filter.statement().execution_options(yield_per=500)):
        view = event_view(event)
        yield row([view["id"], view["occurred_at"], view["event"], view["actor"], view["account_id"],
                   view["device"], view["site"], view["ip"], view["user_agent"], _json(view["details"])])


def event_view(event: AuditEvent) -> dict:
    """An event for the pages, the API and the export. Text that UTF-8 cannot encode (a lone surrogate in
    rows from before the door refused it) is shown as U+FFFD, NUL too: one such row must not break the
    page it is on, nor cut an export short."""
    details = event.details or {}
    return make_storable({
        "id": event.id,
        "occurred_at": _iso(event.occurred_at),
        "event": event.tag,
        "actor": event.actor,
        "account_id": event.account_id,
        "device": details.get("device"),
        "site": details.get("client"),
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": details,
    })


def _filter_view(audit_filter: AuditFilter) -> dict:
    return {
        key: (value.isoformat() if isinstance(value, datetime) else value)
        for key, value in audit_filter.__dict__.items()
        if value is not None and key != "limit"
    }


def _csv_safe(value: object) -> str:
    """Text a spreadsheet would run as a formula (=, +, -, @) is quoted with an apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _json(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _int_arg(args: Mapping[str, str], name: str) -> int | None:
    value = args.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"invalid_{name}", _("%(name)s must be a number.", name=name)) from None
    if not 0 < number <= ID_MAX:  # ids, and a limit: none of them beyond the id columns
        raise ApiError(400, f"invalid_{name}", _("%(name)s must be a number.", name=name))
    return number


def _text_arg(args: Mapping[str, str], name: str) -> str | None:
    value = args.get(name)
    if value in (None, ""):
        return None
    return str(value).strip()[:200] or None


def _time_arg(args: Mapping[str, str], name: str) -> datetime | None:
    value = args.get(name)
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
        moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: 9999-12-31T23:59-10:00 is past year 9999 in UTC
        raise ApiError(400, f"invalid_{name}", _("%(name)s must be a date and time (ISO 8601).", name=name)) from None
    return moment


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
