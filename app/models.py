"""The database: SQLAlchemy 2.0 typed models. Changes go through Alembic migrations (``migrations/``)."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from authlib.oidc.core import AuthorizationCodeMixin
from sqlalchemy import JSON, DateTime, ForeignKey, Index, LargeBinary, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from iccard.certificate import CitizenCertificate

from .extensions import db
from .services import tokens


# The id columns are INTEGER: 32 bits on PostgreSQL. A larger id names nothing, and the driver refuses it.
ID_MAX = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on the Python side on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Account(db.Model):
    """A person proven by their citizen certificate card. The national ID is kept only as a keyed hash."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    national_id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    national_id_masked: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a resend last claimed the right to mail a new code: one conditional UPDATE of it admits one
    # resend per interval however many race (app/services/accounts.py resend_email_code).
    email_code_resent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    role: Mapped[str | None] = mapped_column(String(20))  # None | "auditor" | "admin" (app/admin)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # locked: no login, no session, no token
    lock_reason: Mapped[str | None] = mapped_column(String(200))

    cards: Mapped[list[CardCertificate]] = relationship(
        back_populates="account", order_by="CardCertificate.not_after.desc()"
    )

    # Flask-Login: the "user id" we hand it is the auth session's token, so that logging out (or, later,
    # revoking) a session ends it server-side; a copied cookie of an ended session is worth nothing.
    session_token = None  # set by the user loader; not a column
    auth_session = None
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str | None:
        return self.session_token

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


class CardCertificate(db.Model):
    """A card's signing certificate seen at a login. A person may have several (replacement cards)."""

    __tablename__ = "card_certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the DER
    name: Mapped[str] = mapped_column(String(200))
    subject_serial: Mapped[str] = mapped_column(String(64))
    serial_hex: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(500))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account: Mapped[Account | None] = relationship(back_populates="cards")

    @classmethod
    def from_citizen(cls, citizen: CitizenCertificate, account: Account | None = None) -> CardCertificate:
        return cls(
            account=account,
            fingerprint=citizen.fingerprint,
            name=citizen.name,
            subject_serial=citizen.subject_serial,
            serial_hex=citizen.serial_hex,
            issuer=citizen.issuer,
            not_before=citizen.not_before,
            not_after=citizen.not_after,
            der=citizen.der,
        )


class CardLogin(db.Model):
    """One card-login challenge: the text we asked the card to sign, consumed once, and what came of it.

    A login that ends in ``registration_required`` stays the proof of the card for the registration
    that follows (within ``REGISTRATION_TTL``), so nothing about the proven card lives in the cookie.
    """

    __tablename__ = "card_logins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tbs: Mapped[str] = mapped_column(Text)
    hash_algorithm: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(40))
    card_certificate_id: Mapped[int | None] = mapped_column(ForeignKey("card_certificates.id"))
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # National IDs this login has tried to claim (each at most one question to the identity check), and the
    # keyed hash of the one the identity check confirmed, so a corrected form does not ask it again.
    identity_checks: Mapped[int] = mapped_column(default=0, server_default="0")
    identity_confirmed_hash: Mapped[str | None] = mapped_column(String(64))

    card_certificate: Mapped[CardCertificate | None] = relationship()

    __table_args__ = (Index("ix_card_logins_expires_at", "expires_at"),)


class AuthSession(db.Model):
    """A logged-in browser session, held server-side; the cookie carries only its random token."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    method: Mapped[str] = mapped_column(String(20))  # "card" now; "mobile" with the binding issue
    card_certificate_id: Mapped[int | None] = mapped_column(ForeignKey("card_certificates.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))  # the phone, for "mobile"
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # for the idle limit of admin sessions

    account: Mapped[Account] = relationship()


class EmailVerification(db.Model):
    """A 6-digit code mailed to confirm an address; wrong guesses are counted and lock it for a while."""

    __tablename__ = "email_verifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whether the mail server took the code: the person's page says "sent" only then, else offers a resend.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    send_error: Mapped[str | None] = mapped_column(String(200))


class AuditEvent(db.Model):
    """One security event. Written in the same transaction as the change it records; never updated.

    Recording one is its INSERT alone: a trigger (migration 0015) queues its id in ``audit_unsealed``, and the
    sealer links it into the hash chain (:class:`AuditLink`, ``app/audit_chain.py``) soon after its commit.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    tag: Mapped[str] = mapped_column(String(80), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    details: Mapped[dict] = mapped_column(JSON, default=dict)


class AuditLink(db.Model):
    """A link of the audit trail's hash chain: the event sealed at ``position`` (1, 2, …, in the order the
    sealer sealed them), ``hash`` over its content and ``prev_hash``, the hash of the link before it.

    ``event_id`` and ``prev_hash`` are unique: the database itself refuses an event sealed twice, or a fork.
    """

    __tablename__ = "audit_links"

    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(ForeignKey("audit_events.id"), unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex
    hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditUnsealed(db.Model):
    """An event committed and not yet linked: its id, queued by a trigger on ``audit_events`` (migration 0015)
    and taken off by the sealer in the transaction that links it. No foreign key: a reference check would be
    one more lookup on every event, and ``audit verify`` names a queued id whose event is gone."""

    __tablename__ = "audit_unsealed"

    event_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


@event.listens_for(AuditEvent.__table__, "after_create")
def _audit_events_are_queued(table: Any, connection: Any, **kwargs: Any) -> None:
    # For metadata.create_all on SQLite (some tests; SQLite finds audit_unsealed when the trigger runs, so it
    # may come later). Migration 0015 creates the triggers, PostgreSQL's too.
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(
            "CREATE TRIGGER audit_events_queue_for_sealing AFTER INSERT ON audit_events "
            "BEGIN INSERT INTO audit_unsealed (event_id) VALUES (NEW.id); END"
        )


class AuditChainHead(db.Model):
    """The audit chain's one head row (id 1): the newest link's hash and how many links there are.

    Only the sealer moves it, holding it (``FOR UPDATE SKIP LOCKED``) while it seals, so sealers take turns;
    recording an event never touches it. It also anchors the tail, so removing the newest links shows.
    """

    __tablename__ = "audit_chain_head"
    ONLY_ID = 1
    GENESIS = "0" * 64  # what the first event follows

    id: Mapped[int] = mapped_column(primary_key=True)
    last_hash: Mapped[str] = mapped_column(String(64))
    events: Mapped[int] = mapped_column(default=0)


@event.listens_for(AuditChainHead.__table__, "after_create")
def _audit_chain_starts_empty(table: Any, connection: Any, **kwargs: Any) -> None:
    # For metadata.create_all (some tests); migration 0005 writes the row itself.
    connection.execute(table.insert().values(id=AuditChainHead.ONLY_ID, last_hash=AuditChainHead.GENESIS, events=0))


# PostgreSQL refuses these with a trigger too; the listeners cover SQLite and name the bug before the database.
@event.listens_for(AuditEvent, "before_update")
def _audit_event_not_updated(mapper: Any, connection: Any, target: AuditEvent) -> None:
    if object_session(target).is_modified(target):  # flush also calls this for untouched "dirty" objects
        raise RuntimeError(f"audit event {target.id} is append-only: it is never updated")


@event.listens_for(AuditEvent, "before_delete")
def _audit_event_not_deleted(mapper: Any, connection: Any, target: AuditEvent) -> None:
    raise RuntimeError(f"audit event {target.id} is append-only: it is never deleted")


@event.listens_for(AuditLink, "before_update")
def _audit_link_not_updated(mapper: Any, connection: Any, target: AuditLink) -> None:
    if object_session(target).is_modified(target):
        raise RuntimeError(f"audit link {target.position} is append-only: it is never updated")


@event.listens_for(AuditLink, "before_delete")
def _audit_link_not_deleted(mapper: Any, connection: Any, target: AuditLink) -> None:
    raise RuntimeError(f"audit link {target.position} is append-only: it is never deleted")


class SingleUseTicket:
    """A single-use ticket shown as a QR code: the phone's capability for one ceremony (a binding, a login).

    Only the token's SHA-256 is stored; ``public_id`` is what the page that asked polls. The phone first
    asks for options (a challenge, ``scanned_at``), then answers once: the answer is taken by one
    conditional UPDATE that sets ``consumed_at`` (``app/services/tickets.py``), so of two answers racing
    exactly one is checked. What came of it is ``failure`` (a refusal's code) or the subclass's outcome.
    """

    DONE: ClassVar[str]  # the status once the ticket has served ("completed", "approved")

    public_id: Mapped[str] = mapped_column(String(64), unique=True)  # what the computer's page polls
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # the QR code's token, hashed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    challenge: Mapped[bytes | None] = mapped_column(LargeBinary)  # the phone's
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # an answer was taken (once)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure: Mapped[str | None] = mapped_column(String(60))

    def done(self) -> bool:
        raise NotImplementedError

    # How long past expiry an answer taken in time may still be checked; one that never finished (a crash
    # between taking and recording it) is expired after that, so the asking page stops waiting.
    CHECK_GRACE = timedelta(minutes=1)

    def status(self, now: datetime) -> str:
        """pending, scanned, expired, failed, or :attr:`DONE`; what the asking page shows."""
        if self.done():
            return self.DONE
        if self.failure is not None:
            return "failed"
        if self.consumed_at is not None and now < self.expires_at + self.CHECK_GRACE:
            return "scanned"  # an answer is being checked: its outcome may land just past expiry
        if self.expires_at <= now:
            return "expired"
        return "scanned" if self.scanned_at is not None else "pending"


class Binding(SingleUseTicket, db.Model):
    """Binding a phone: a single-use ticket (the QR code) tied to an account and its card session."""

    __tablename__ = "bindings"
    DONE = "completed"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    auth_session_id: Mapped[int] = mapped_column(ForeignKey("auth_sessions.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))

    account: Mapped[Account] = relationship()
    auth_session: Mapped[AuthSession] = relationship()
    device: Mapped[Device | None] = relationship()

    def done(self) -> bool:
        return self.completed_at is not None


class DeviceStatus(StrEnum):
    """A phone's status, stored as its value. ``EXPIRED`` is never stored: an active phone whose mobile
    certificate has run out (:meth:`Device.effective_status`)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Device(db.Model):
    """A bound phone: its WebAuthn credential, and (through its certificates) its mobile certificate."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    platform: Mapped[str | None] = mapped_column(String(80))
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(default=0)
    aaguid: Mapped[str] = mapped_column(String(36))
    attestation_format: Mapped[str] = mapped_column(String(40))
    attestation_type: Mapped[str] = mapped_column(String(20))
    transports: Mapped[list] = mapped_column(JSON, default=list)
    backup_eligible: Mapped[bool] = mapped_column(default=False)
    backup_state: Mapped[bool] = mapped_column(default=False)
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default=DeviceStatus.ACTIVE.value)  # a DeviceStatus, not expired
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(200))
    # Who revoked it, for its person's page: "owner" (unbound on their page) or "service" (an administrator).
    revoked_by: Mapped[str | None] = mapped_column(String(20))
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # while suspended: since when
    possibly_cloned: Mapped[bool] = mapped_column(default=False)
    possibly_cloned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account: Mapped[Account] = relationship()
    certificates: Mapped[list[MobileCertificate]] = relationship(
        # A reissued certificate keeps its predecessor's notAfter: the later one comes first.
        back_populates="device", order_by="[MobileCertificate.not_after.desc(), MobileCertificate.id.desc()]"
    )

    @property
    def certificate(self) -> MobileCertificate | None:
        """The newest mobile certificate (renewal adds one; the old ones stay on record)."""
        return self.certificates[0] if self.certificates else None

    def effective_status(self, now: datetime) -> DeviceStatus:
        if self.status != DeviceStatus.ACTIVE:
            return DeviceStatus(self.status)
        certificate = self.certificate
        return DeviceStatus.EXPIRED if certificate is None or certificate.not_after <= now else DeviceStatus.ACTIVE


class MobileCertificate(db.Model):
    """The mobile certificate (行動自然人憑證): an X.509 certificate for the device's credential key.

    While ``revoked_at`` is set it is on the mobile CA's CRL and OCSP says revoked, with an RFC 5280
    reason name: ``certificateHold`` while its device is suspended (released on resume), any other
    reason for good (``app/services/mobile_certificates.py``).
    """

    __tablename__ = "mobile_certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    serial_hex: Mapped[str] = mapped_column(String(64), unique=True)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(32))  # keyCompromise, certificateHold, …

    device: Mapped[Device] = relationship(back_populates="certificates")

    @property
    def on_hold(self) -> bool:
        return self.revocation_reason == "certificateHold"

    @property
    def revoked(self) -> bool:
        """Revoked for good (a hold is not)."""
        return self.revoked_at is not None and not self.on_hold


class MobileCrl(db.Model):
    """The mobile CA's CRL as published, one row per CA key: replaced in the transaction of every change
    of a certificate's status, and its number only grows."""

    __tablename__ = "mobile_crls"

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_key_id: Mapped[str] = mapped_column(String(64), unique=True)  # the CA's key identifier, hex
    crl_number: Mapped[int]
    this_update: Mapped[datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)


# -- OpenID Connect provider (app/oidc/) ----------------------------------------------------------------

class OidcClient(db.Model, ClientMixin):
    """A relying party registered by ``flask clients add``. Its secret is kept only as a SHA-256 hash."""

    __tablename__ = "oidc_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))  # None: a public client
    name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    allowed_scopes: Mapped[list] = mapped_column(JSON, default=list)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40))
    jwks: Mapped[dict | None] = mapped_column(JSON)  # public keys, for private_key_jwt
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(10), default="RS256")
    subject_type: Mapped[str] = mapped_column(String(10), default="pairwise")  # pairwise | public
    sector: Mapped[str] = mapped_column(String(255))  # pairwise subjects are per sector
    allow_national_id: Mapped[bool] = mapped_column(default=False)
    allow_card_login: Mapped[bool] = mapped_column(default=True)  # the login page offers the IC card
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # OpenID Connect Back-Channel Logout 1.0: where MoCert posts a logout token when a session the site
    # logged in through ends (None: the site is not told); whether the site needs ``sid`` in it (MoCert
    # always sends it, and ``sub``: the flag is the site's registered wish, kept and shown).
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    backchannel_logout_session_required: Mapped[bool] = mapped_column(default=False)

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def client_metadata(self) -> dict:
        return {"post_logout_redirect_uris": self.post_logout_redirect_uris}

    # Authlib's ClientMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is required in every request: exact match, never a guess

    def get_allowed_scope(self, scope: str) -> str:
        return list_to_scope([s for s in scope_to_list(scope or "") if s in self.allowed_scopes])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret_hash is None or not isinstance(client_secret, str):
            return False
        return hmac.compare_digest(self.client_secret_hash, tokens.digest(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in {"authorization_code", "refresh_token"}


class OidcAuthorizationCode(db.Model, AuthorizationCodeMixin):
    """An authorization code: stored hashed, 60 s, single use; kept after use to spot a replay."""

    __tablename__ = "oidc_authorization_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    auth_session_id: Mapped[int] = mapped_column(ForeignKey("auth_sessions.id"))
    auth_method: Mapped[str] = mapped_column(String(20))  # AuthSession.method
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    acr: Mapped[str] = mapped_column(String(80))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The national ID the person typed for a client allowed it, sealed (app/oidc/national_id.py) until
    # the code is exchanged; never stored in the clear.
    national_id_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)

    client: Mapped[OidcClient] = relationship()
    account: Mapped[Account] = relationship()

    # Every authorize request's replay check (OpenIDCode.exists_nonce) reads by these two.
    __table_args__ = (
        Index("ix_oidc_authorization_codes_client_nonce", "client_id", "nonce"),
        # A session's end finds the sites it logged in to (back-channel logout).
        Index("ix_oidc_authorization_codes_auth_session_id", "auth_session_id"),
    )

    # Authlib's AuthorizationCodeMixin (and the OpenID Connect additions)
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_acr(self) -> str:
        return self.acr

    def get_amr(self) -> list[str]:
        return list(self.amr)


class OidcToken(db.Model, TokenMixin):
    """An access token and (with ``offline_access``) its refresh token, both stored hashed.

    It records the login session (and its method) it came from, and the code it was issued for, so
    that a replayed code — or later, an unbound device — can revoke everything that came of it.
    """

    __tablename__ = "oidc_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    auth_session_id: Mapped[int | None] = mapped_column(ForeignKey("auth_sessions.id"), index=True)
    auth_method: Mapped[str] = mapped_column(String(20))
    authorization_code_id: Mapped[int | None] = mapped_column(ForeignKey("oidc_authorization_codes.id"), index=True)
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    national_id_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)  # from its code, for /userinfo

    client: Mapped[OidcClient] = relationship()
    account: Mapped[Account] = relationship()

    # Authlib's TokenMixin
    def check_client(self, client: OidcClient) -> bool:
        return self.client_id == client.id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int((self.expires_at - self.issued_at).total_seconds())

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()


class BackchannelLogout(db.Model):
    """A logout token owed to a site: one session (``auth_session_id``) that logged in at the client ended.

    Queued in the transaction that ends the session (a logout, a phone revoked or suspended, an account
    locked), delivered after its commit by each process's courier (``app/logout_courier.py``), which posts
    the token and retries with a growing wait: ``sent_at`` once the site answered 200/204, ``failed_at`` after
    the last attempt. The token itself is made at each attempt (``iat``/``exp`` of that moment), never stored.
    """

    __tablename__ = "backchannel_logouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    auth_session_id: Mapped[int] = mapped_column(ForeignKey("auth_sessions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)  # while pending: when it is due (again)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(60))  # the last attempt's reason, for the trail

    # The courier's read: the pending ones that are due.
    __table_args__ = (Index("ix_backchannel_logouts_pending", "sent_at", "failed_at", "next_attempt_at"),)


class OidcConsent(db.Model):
    """The scopes a person granted a client; asking for more shows the consent page again."""

    __tablename__ = "oidc_consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id"))
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("account_id", "client_id"),)


class OidcClientAssertion(db.Model):
    """A ``private_key_jwt`` assertion's ``jti`` seen once, so the same assertion cannot be replayed."""

    __tablename__ = "oidc_client_assertions"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id"))
    jti: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    __table_args__ = (UniqueConstraint("client_id", "jti"),)


class LoginRequest(SingleUseTicket, db.Model):
    """Logging in at /authorize with a phone: a single-use ticket (the QR code) for one authorize request.

    Tied to the browser session that asked (a random value in its Flask session, kept here hashed) and to
    the client; the phone approves it, and only that browser can then turn it into a MoCert session
    (``completed_at``).
    """

    __tablename__ = "login_requests"
    DONE = "approved"

    id: Mapped[int] = mapped_column(primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64))  # the asking browser's proof, hashed
    client_id: Mapped[int] = mapped_column(ForeignKey("oidc_clients.id"), index=True)
    authorize_query: Mapped[str] = mapped_column(Text)  # the authorize request to go back to
    match_code: Mapped[str] = mapped_column(String(8))
    passkey_challenge: Mapped[bytes | None] = mapped_column(LargeBinary)  # this device's (same device)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))

    client: Mapped[OidcClient] = relationship()
    account: Mapped[Account | None] = relationship()
    device: Mapped[Device | None] = relationship()

    __table_args__ = (Index("ix_login_requests_expires_at", "expires_at"),)

    def done(self) -> bool:
        return self.approved_at is not None


class ServiceToken(db.Model):
    """A token for automation against ``/api/v1/admin``: scoped, stored hashed, shown once, revocable."""

    __tablename__ = "service_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80))  # the audit actor who made it
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Agency(db.Model):
    """An agency (需用機關) that calls the TW FidO service-provider API, registered by ``flask agencies add``.

    Its API key signs both ways (sp_checksum and idp_checksum), so MoCert must know it, not only a hash of
    it: it is kept sealed with AES-256-GCM under MOCERT_AGENCY_KEY_ENCRYPTION_KEY (``app/services/agencies``).
    """

    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    sp_service_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    api_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # IV ‖ AES-256-GCM(key) ‖ tag, never the key
    allowed_ips: Mapped[list] = mapped_column(JSON, default=list)  # CIDRs; empty: any address, the key decides
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    key_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SpRequest(SingleUseTicket, db.Model):
    """An agency's request (TW FidO ATH, SIGN or BATSIGN) for one person's approval on a bound phone.

    A single-use ticket: the token is the ``sp_ticket_id`` inside the agency's ``sp_ticket``, stored only as
    its SHA-256 (the agency polls with it; the phone answers with it). ``challenge`` is the SHA-256 of
    ``challenge_input``, fixed when the request is made, so the phone signs exactly what the agency asked.
    Answered once (``consumed_at``): approved (``completed_at``, with the signed response and the phone's
    certificate) or declined (``failure`` = ``APP_USER_CANCEL``).

    SP-API-WEB-01's requests (``op_mode`` "WEB", ``app/services/sp_web.py``) name no one: any person's
    bound phone may approve, so ``account_id`` and ``hashed_id_num`` are set when one does. Their page in
    the person's browser follows the request with a second token (``browser_hash``), and the signed form
    for the agency's callback is handed to that page once (``released_at``).
    """

    __tablename__ = "sp_requests"
    __table_args__ = (
        UniqueConstraint("agency_id", "transaction_id"),  # TXNLOG_INS_ERR: one use each
        # A phone's inbox: the person's pushed requests still open, in one indexed read (app/services/inbox.py).
        Index("ix_sp_requests_inbox", "account_id", "op_mode", "expires_at"),
    )
    DONE = "approved"

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    transaction_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)  # WEB: the approver's
    hashed_id_num: Mapped[str | None] = mapped_column(String(64))  # the contract's: SHA-256 hex of the upper-case ID
    op_code: Mapped[str] = mapped_column(String(10))  # ATH, SIGN, BATSIGN
    op_mode: Mapped[str] = mapped_column(String(10))  # I-SCAN, MWEB2APP, APP2APP, PUSH
    hint: Mapped[str] = mapped_column(Text)
    sign_info: Mapped[dict | None] = mapped_column(JSON)  # sign_type, sign_data or sign_data_set, …
    target_device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))  # pushed to one phone
    challenge_input: Mapped[str] = mapped_column(Text)
    ticket_check: Mapped[str] = mapped_column(String(64))  # the sp_ticket's digest part: the whole ticket is ours
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))  # the phone that approved
    signed_response: Mapped[str | None] = mapped_column(Text)
    cert: Mapped[str | None] = mapped_column(Text)  # base64 DER of the approving phone's mobile certificate
    browser_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # WEB: the page's token, hashed
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # WEB: the callback's form handed over

    agency: Mapped[Agency] = relationship()
    account: Mapped[Account | None] = relationship()
    device: Mapped[Device | None] = relationship(foreign_keys=[device_id])
    target_device: Mapped[Device | None] = relationship(foreign_keys=[target_device_id])

    def done(self) -> bool:
        return self.completed_at is not None


class InboxSession(SingleUseTicket, db.Model):
    """A phone's inbox, open for a few minutes: the agencies' requests pushed to it, listed while it is open.

    Opened like a login by phone: a single-use ticket whose token comes with the passkey's options (the
    challenge) and is consumed by the answer; a discoverable credential names the phone. The answer's success
    gives the inbox token, a new random value stored only as ``access_hash``, good until
    ``access_expires_at`` (never past the phone's certificate). The token lists; answering a request still
    takes the passkey, over that request's own challenge.
    """

    __tablename__ = "inbox_sessions"
    DONE = "opened"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"), index=True)  # once opened
    access_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # the inbox token, hashed
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    device: Mapped[Device | None] = relationship()

    __table_args__ = (Index("ix_inbox_sessions_expires_at", "expires_at"),)

    def done(self) -> bool:
        return self.completed_at is not None


class PushSubscription(db.Model):
    """A phone's Web Push subscription (its browser's, with its vendor's push service): where MoCert sends
    "a request is waiting" when an agency pushes one to the phone. Nothing secret is ever sent through it."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)  # the push service's URL for the browser
    p256dh: Mapped[str] = mapped_column(String(100))  # base64url: the browser's key the messages are encrypted to
    auth: Mapped[str] = mapped_column(String(40))  # base64url: the browser's authentication secret
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    device: Mapped[Device] = relationship()
