"""Binding phones, and the person's own management of their devices.

A binding is a single-use ticket (the QR code) tied to the account and the card-authenticated session
that made it. The phone asks for WebAuthn creation options with it, then completes it with the new
credential; completing consumes the ticket atomically, so two phones racing for one QR code make
exactly one device.

A card session has one live binding at most: making a new one (the bind page reloaded, a second tab)
ends the one before, and a binding completed ends the session's others, each in the same conditional
UPDATE-and-audit as the change. The page that follows an ended binding is told of the binding that
completed in its stead (:func:`binding_status`), so it shows the phone bound whichever QR code was used.

:class:`Devices` is built once at startup (``app/wiring.py``) with the relying party, the mobile CA and
the limits of the configuration; what a request brings (the phone's user agent) comes in as arguments.
"""

from __future__ import annotations

import base64
import binascii
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import qrcode
import qrcode.image.svg
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload, selectinload

import webauthn

from .. import timezones
from ..audit import Tags, record
from ..extensions import db
from ..models import Account, AuthSession, Binding, Device, DeviceStatus, utcnow
from . import sessions, tickets
from .mobile_certificates import MobileCertificates, one_year_later
from .refusals import Refusal
from .tokens import digest

# The failure of a binding ended, unused, by a newer one of its session or by another of its session completed.
REPLACED = "binding_replaced"
LIVE_STATUSES = (DeviceStatus.ACTIVE, DeviceStatus.SUSPENDED)  # revoked devices no longer count against the limit
NAME_MAX = 80


@dataclass(frozen=True)
class RelyingParty:
    """Who the phones' WebAuthn credentials are for: the RP id and name, the origins a ceremony may come
    from, and which attestations are trusted."""

    id: str
    name: str
    origins: tuple[str, ...]
    trust: webauthn.TrustPolicy

    @classmethod
    def of(
        cls, *, public_url: str, rp_id: str | None, name: str, origins: Sequence[str], trust: webauthn.TrustPolicy
    ) -> RelyingParty:
        """By default the RP id is ``public_url``'s host and the one origin is its own."""
        public = urlsplit(public_url)
        return cls(
            id=rp_id or public.hostname,
            name=name,
            origins=tuple(origins) or (f"{public.scheme}://{public.netloc}",),
            trust=trust,
        )


def trust_policy(
    kind: str, *, roots: Sequence[str] = (), mds_blob: str | None = None, mds_root: str | None = None
) -> webauthn.TrustPolicy:
    """The attestation trust policy ``MOCERT_WEBAUTHN_TRUST`` names: ``any``, ``roots`` (the PEM files of
    ``MOCERT_WEBAUTHN_ATTESTATION_ROOTS``) or ``mds3`` (a FIDO MDS3 blob read from a file, never fetched,
    re-read on restart: refresh the file to update it). Raises ``ValueError`` or ``OSError``."""
    if kind == "any":
        return webauthn.TrustPolicy.any()
    if kind == "roots":
        return webauthn.TrustPolicy.roots([Path(p).read_bytes() for p in roots])
    if kind == "mds3":
        if not mds_blob or not mds_root:
            raise ValueError("mds3 needs MOCERT_WEBAUTHN_MDS_BLOB and MOCERT_WEBAUTHN_MDS_ROOT")
        root = x509.load_pem_x509_certificate(Path(mds_root).read_bytes())
        return webauthn.TrustPolicy.mds3(mds_blob, root.public_bytes(Encoding.DER))
    raise ValueError(f"must be any, roots or mds3, not {kind!r}")


class Devices:
    """Binding phones and what becomes of them: renaming, unbinding, suspending, resuming, revoking,
    renewing; and checking a phone's login answer."""

    def __init__(
        self,
        *,
        relying_party: RelyingParty,
        certificates: MobileCertificates,
        public_url: str,
        binding_ttl: timedelta,
        device_limit: int,
    ) -> None:
        self.relying_party, self.certificates = relying_party, certificates
        self.public_url, self.binding_ttl, self.device_limit = public_url, binding_ttl, device_limit

    # -- the computer's side ----------------------------------------------------------------------------

    def create_binding(self, account: Account, auth_session: AuthSession) -> tuple[Binding, str]:
        """Start binding a phone; returns the binding and the token (shown once, in the QR code)."""
        if auth_session.method != "card":
            raise Refusal("card_login_required", case="binding")
        if not account.email_verified:
            raise Refusal("email_not_verified")
        self._check_device_limit(account)
        _hold(auth_session)
        binding, token = tickets.issue(Binding, ttl=self.binding_ttl, account=account, auth_session=auth_session)
        record(Tags.BINDING_STARTED, account=account, binding=binding.public_id)
        _end_live_bindings(auth_session, binding)  # the QR code shown before this one works no more
        db.session.commit()
        return binding, token

    def binding_url(self, token: str) -> str:
        return f"{self.public_url}/m/bind/{token}"

    # -- the phone's side (no cookie: the token is the capability) ---------------------------------------

    def binding_options(self, token: str) -> dict:
        binding = _open_binding(token)
        challenge = secrets.token_bytes(32)
        account = binding.account
        existing = db.session.scalars(
            select(Device).where(Device.account_id == account.id, Device.status != DeviceStatus.REVOKED)
        )
        options = webauthn.registration_options(
            rp_id=self.relying_party.id,
            rp_name=self.relying_party.name,
            user_id=_user_handle(account),
            user_name=account.national_id_masked,
            user_display_name=account.name,
            challenge=challenge,
            exclude_credentials=[(d.credential_id, d.transports or ()) for d in existing],
            timeout_ms=int(self.binding_ttl.total_seconds() * 1000),
        )
        first_scan = binding.scanned_at is None
        binding.challenge = challenge
        binding.scanned_at = binding.scanned_at or utcnow()
        if first_scan:
            record(Tags.BINDING_SCANNED, account=account, binding=binding.public_id)
        db.session.commit()
        return {
            **options,
            "account": {"name_masked": _mask_name(account.name), "national_id_masked": account.national_id_masked},
            "site": self.relying_party.name,
        }

    def complete_binding(
        self, token: str, credential: object, device_name: object, *, user_agent: str | None = None
    ) -> Device:
        """The phone's answer to the options: a new device with its mobile certificate, or a refusal
        (recorded on the binding once its ticket is spent, so the computer's page shows why)."""
        name = _device_name(device_name)
        if not isinstance(credential, dict):
            raise Refusal("malformed_input", case="phone_answer")
        binding = _open_binding(token)
        if binding.challenge is None:
            raise Refusal("binding_not_scanned")
        now = utcnow().replace(microsecond=0)  # X.509 times have whole seconds: bound_at matches notBefore
        # Consumed first, in one statement: of two phones racing for one QR code, exactly one gets here.
        if not tickets.consume(binding, now=now):
            raise Refusal("binding_replaced" if binding.failure == REPLACED else "binding_used")

        account = binding.account
        try:
            verified = webauthn.verify_registration(
                credential,
                expected_challenge=binding.challenge,
                expected_origin=self.relying_party.origins,
                expected_rp_id=self.relying_party.id,
                require_user_verification=True,
                trust=self.relying_party.trust,
            )
        except webauthn.WebAuthnError as exc:
            raise _failed(binding, Refusal(exc.reason, case="binding")) from exc
        if db.session.scalar(select(Device.id).where(Device.credential_id == verified.credential_id)) is not None:
            raise _failed(binding, Refusal("credential_exists"))
        try:
            self._check_device_limit(account)
        except Refusal as refusal:
            raise _failed(binding, refusal) from None

        device = Device(
            account=account,
            name=name,
            platform=_platform(user_agent),
            credential_id=verified.credential_id,
            public_key=verified.public_key,
            sign_count=verified.sign_count,
            aaguid=verified.aaguid,
            attestation_format=verified.fmt,
            attestation_type=verified.attestation_type,
            transports=list(verified.transports),
            backup_eligible=verified.backup_eligible,
            backup_state=verified.backup_state,
            bound_at=now,
        )
        db.session.add(device)
        db.session.flush()
        certificate = self.certificates.issue(device, now)
        # A QR code made while this phone was answering (the page reloaded meanwhile) has nothing left to do:
        # it ends, and the page that shows it hears of this binding instead. The time is read once the session
        # is held, so that a binding made before is older than this completion (binding_status relies on it).
        _hold(binding.auth_session)
        binding.completed_at = utcnow()
        binding.device = device
        record(
            Tags.DEVICE_BOUND,
            account=account,
            device=device.id,
            binding=binding.public_id,
            certificate=certificate.serial_hex,
            aaguid=device.aaguid,
            fmt=device.attestation_format,
        )
        _end_live_bindings(binding.auth_session, binding)
        db.session.commit()
        return device

    # -- the person's devices ----------------------------------------------------------------------------

    def unbind(self, account: Account, device_id: int, reason: object) -> Device:
        device = get_device(account, device_id)
        text = reason.strip()[:200] if isinstance(reason, str) and reason.strip() else "unbound by its owner"
        return self.revoke(device, actor=f"account:{account.id}", reason=text, tag=Tags.DEVICE_UNBOUND,
                           crl_reason="cessationOfOperation", by="owner")

    def renew(self, account: Account, auth_session: AuthSession, device_id: int) -> Device:
        """Another year for an active device, for a person logged in with a valid card (a new certificate).

        Refused (``renewal_changes_nothing``) when a year from now would not move the end date, as for a
        phone bound or renewed today: a new certificate that ends when the old one does is no renewal."""
        if auth_session.method != "card":
            raise Refusal("card_login_required", case="renewal")
        device = get_device(account, device_id)
        # Holds the row: a suspension or revocation racing the renewal waits, then sees the new certificate.
        _transition(device, (DeviceStatus.ACTIVE,), DeviceStatus.ACTIVE, "renew")
        now = utcnow().replace(microsecond=0)
        if renewal_end(device, now) is None:
            db.session.rollback()
            raise Refusal("renewal_changes_nothing", case="possibly_cloned" if device.possibly_cloned else None)
        certificate = self.certificates.issue(device, now)
        self.certificates.supersede_certificates(device, certificate)  # one live certificate per key
        record(Tags.DEVICE_RENEWED, account=account, device=device.id, certificate=certificate.serial_hex)
        db.session.commit()
        return device

    # -- suspending, resuming, revoking (the owner's unbind, and administrators) --------------------------
    # Each takes effect from the next request: what came through the phone is cut off in the same
    # transaction (its sessions end, its OIDC tokens are revoked, its certificate is held or revoked on the
    # CRL/OCSP), and the session loader and token checks refuse anything of a phone that is not active.

    def suspend(self, device: Device, *, actor: str, reason: str) -> Device:
        """Reversible: the phone cannot log in and its certificate is on hold until :meth:`resume`."""
        _transition(device, (DeviceStatus.ACTIVE,), DeviceStatus.SUSPENDED, "suspend", suspended_at=utcnow())
        cut = sessions.end_all(device_id=device.id)
        self.certificates.hold_certificates(device)
        record(Tags.DEVICE_SUSPENDED, account=device.account, actor=actor, device=device.id, reason=reason, **cut)
        db.session.commit()
        return device

    def resume(self, device: Device, *, actor: str, reason: str) -> Device:
        if device.account.locked_at is not None:  # a locked person's certificates stay on hold
            raise Refusal("account_locked", case="resume")
        _transition(device, (DeviceStatus.SUSPENDED,), DeviceStatus.ACTIVE, "resume", suspended_at=None)
        self.certificates.release_certificates(device)
        record(Tags.DEVICE_RESUMED, account=device.account, actor=actor, device=device.id, reason=reason)
        db.session.commit()
        return device

    def revoke(
        self, device: Device, *, actor: str, reason: str, tag: Tags = Tags.DEVICE_REVOKED,
        crl_reason: str = "keyCompromise", by: str = "service",
    ) -> Device:
        """Final: nothing brings the phone back; binding again makes a new device. ``by`` is who its person's
        page says did it: ``owner`` (their own unbinding) or ``service``."""
        _transition(device, LIVE_STATUSES, DeviceStatus.REVOKED, "revoke", revoked_at=utcnow(),
                    revocation_reason=reason, revoked_by=by, suspended_at=None)
        cut = sessions.end_all(device_id=device.id)
        self.certificates.revoke_certificates(device, crl_reason)
        record(tag, account=device.account, actor=actor, device=device.id, reason=reason, **cut)
        db.session.commit()
        return device

    # -- a phone's login answer ----------------------------------------------------------------------------

    def verify_assertion(self, device: Device, credential: dict, challenge: bytes) -> webauthn.VerifiedAuthentication:
        """Check a phone's answer to a login challenge for ``device`` (the login flow calls this).

        User verification is required, the sign counter must move on, and a ``userHandle`` in the answer
        must be the one the device was bound with (WebAuthn §7.2 step 6: the login finds the device by its
        credential id, the handle must not name someone else). A counter that went back means the key may
        have been copied: the device is marked possibly cloned and the event audited (committed), and the
        login refused. On success the device's counter and last use are updated, not committed: the caller
        commits them with its own change. Raises :class:`Refusal` (the WebAuthn reason, case ``assertion``;
        or :func:`ensure_usable`'s).
        """
        now = utcnow()
        ensure_usable(device, now)
        try:
            verified = webauthn.verify_authentication(
                credential,
                expected_challenge=challenge,
                expected_origin=self.relying_party.origins,
                expected_rp_id=self.relying_party.id,
                credential_public_key=device.public_key,
                current_sign_count=device.sign_count,
                credential_id=device.credential_id,
                # The user.id its binding's options gave (a function of the account, which a device never leaves).
                user_handle=_user_handle(device.account),
            )
        except webauthn.SignCountRegression as exc:
            device.possibly_cloned = True
            device.possibly_cloned_at = device.possibly_cloned_at or now
            record(
                Tags.DEVICE_POSSIBLY_CLONED, account=device.account, device=device.id, stored=exc.stored,
                received=exc.received,
            )
            db.session.commit()
            raise Refusal(exc.reason, case="assertion") from exc
        except webauthn.WebAuthnError as exc:
            raise Refusal(exc.reason, case="assertion") from exc
        device.sign_count = verified.new_sign_count
        device.backup_state = verified.backup_state
        device.last_used_at = now
        return verified

    def _check_device_limit(self, account: Account) -> None:
        count = db.session.scalar(
            select(func.count()).select_from(Device).where(Device.account_id == account.id,
                                                           Device.status.in_(LIVE_STATUSES))
        )
        if count >= self.device_limit:
            raise Refusal("device_limit", limit=self.device_limit)


# -- what needs no configuration ------------------------------------------------------------------------


def qr_svg(url: str) -> str:
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


def binding_status(account: Account, public_id: str) -> dict:
    """What the computer's page shows of its binding: its status, the device once bound, why it failed.

    A binding ended by another of its card session reports that one's outcome where it completed after this
    one was made: the phone used the QR code the page showed before a reload, and the page says it is done.
    """
    binding = db.session.scalar(select(Binding).where(Binding.public_id == public_id, Binding.account_id == account.id))
    if binding is None:  # another account's binding is as unknown as a made-up one
        raise Refusal("binding_unknown", case="status")
    if binding.failure == REPLACED:
        completed = db.session.scalars(
            select(Binding)
            .where(
                Binding.auth_session_id == binding.auth_session_id,
                Binding.completed_at.is_not(None),
                Binding.completed_at >= binding.created_at,
            )
            .order_by(Binding.completed_at.desc())
            .limit(1)
        ).one_or_none()
        binding = completed or binding
    status = binding.status(utcnow())
    body: dict = {"status": status}
    if status == "completed" and binding.device is not None:
        body["device"] = device_view(binding.device)
    if status == "failed":
        body["reason"] = binding.failure
    return body


def list_devices(account: Account) -> list[Device]:
    return list(
        db.session.scalars(
            select(Device)
            .where(Device.account_id == account.id)
            .options(selectinload(Device.certificates))  # the list shows each one's expiry
            .order_by(Device.bound_at.desc())
        )
    )


def get_device(account: Account, device_id: int) -> Device:
    device = db.session.get(Device, device_id)
    if device is None or device.account_id != account.id:
        raise Refusal("device_unknown")
    return device


def by_credential(credential: dict) -> Device | None:
    """The device whose credential a discoverable login's answer names (its ``rawId``), or None."""
    value = credential.get("rawId", credential.get("id"))
    if not isinstance(value, str) or not 0 < len(value) <= 1400:
        return None
    try:
        raw_id = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    # With its person and certificates: every caller checks them next (ensure_usable), in the same read.
    return db.session.scalars(
        select(Device)
        .where(Device.credential_id == raw_id)
        .options(joinedload(Device.account), joinedload(Device.certificates))
    ).unique().one_or_none()


def rename(account: Account, device_id: int, new_name: object) -> Device:
    device = get_device(account, device_id)
    name = _device_name(new_name)
    record(Tags.DEVICE_RENAMED, account=account, device=device.id, old=device.name, new=name)
    device.name = name
    db.session.commit()
    return device


def ensure_usable(device: Device, now: datetime) -> None:
    """A phone may log its person in: active, unexpired, and its account not locked (else a 403)."""
    status = device.effective_status(now)
    if status != DeviceStatus.ACTIVE:
        raise Refusal(f"device_{status}", case="use")
    if device.account.locked_at is not None:
        raise Refusal("account_locked", case="login")


def certificate_pem(account: Account, device_id: int) -> tuple[str, bytes]:
    device = get_device(account, device_id)
    certificate = device.certificate
    if certificate is None:
        raise Refusal("certificate_unknown")
    pem = x509.load_der_x509_certificate(certificate.der).public_bytes(Encoding.PEM)
    return f"mocert-device-{device.id}-{certificate.serial_hex[:12]}.pem", pem


def renewal_end(device: Device, now: datetime) -> datetime | None:
    """The end date a renewal now would give, or None when it would not move the current one (whole days
    as the person reads them, in the display zone: a phone bound today gains nothing but hours) or the
    device cannot be renewed (a phone that may have been copied is bound anew, never renewed)."""
    certificate = device.certificate
    if device.status != DeviceStatus.ACTIVE or certificate is None or device.possibly_cloned:
        return None
    end, zone = one_year_later(now), timezones.display_zone()
    return end if end.astimezone(zone).date() > certificate.not_after.astimezone(zone).date() else None


def notice(device: Device, now: datetime) -> dict | None:
    """What its person should know about a phone that cannot log in, and since when: ``unbound`` (by them),
    ``revoked_by_service``, ``suspended``, ``expired``, or ``possibly_cloned`` (its sign counter went back:
    the copy or the phone may be refused). The page says what to do about each."""
    status = device.effective_status(now)
    if status == DeviceStatus.REVOKED:
        kind = "unbound" if device.revoked_by == "owner" else "revoked_by_service"
        return {"kind": kind, "at": _iso(device.revoked_at)}
    if status == DeviceStatus.SUSPENDED:
        return {"kind": "suspended", "at": _iso(device.suspended_at)}
    if device.possibly_cloned:
        return {"kind": "possibly_cloned", "at": _iso(device.possibly_cloned_at)}
    if status == DeviceStatus.EXPIRED:
        certificate = device.certificate
        return {"kind": "expired", "at": _iso(certificate.not_after if certificate else None)}
    return None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def device_view(device: Device, now: datetime | None = None) -> dict:
    now = now or utcnow()
    certificate = device.certificate
    renews_until = renewal_end(device, now)
    return {
        "id": device.id,
        "name": device.name,
        "platform": device.platform,
        "bound_at": device.bound_at.isoformat(),
        "expires_at": certificate.not_after.isoformat() if certificate else None,
        "last_used_at": device.last_used_at.isoformat() if device.last_used_at else None,
        "status": str(device.effective_status(now)),
        "certificate_serial": certificate.serial_hex if certificate else None,
        "notice": notice(device, now),
        "renews_until": renews_until.isoformat() if renews_until else None,  # None: renewing would change nothing
    }


# -- internals --------------------------------------------------------------------------------------------


def _transition(device: Device, allowed: tuple[str, ...], new: str, action: str, **values: object) -> None:
    """Change the status only from an allowed one, in one conditional UPDATE (which holds the row until
    commit): of two admins acting at once, or an action racing a renewal, the second sees the first's
    result and is refused, so a revocation can never be overwritten by a suspension. The refusal's code
    names the status found (``device_revoked``), its case the ``action``."""
    changed = db.session.execute(
        update(Device)
        .where(Device.id == device.id, Device.status.in_(allowed))
        .values(status=new, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(device)
    if changed != 1:
        db.session.rollback()
        raise Refusal(f"device_{device.status}", case=action)


def _hold(auth_session: AuthSession) -> None:
    """Hold the card session's row to the commit (SELECT … FOR UPDATE; on SQLite the write lock): bindings of
    one session made or completed at once take turns, so that each sees the others when it ends them."""
    db.session.execute(select(AuthSession.id).where(AuthSession.id == auth_session.id).with_for_update())


def _end_live_bindings(auth_session: AuthSession, keeping: Binding) -> None:
    """End the session's live bindings but ``keeping``, each audited: taken in one conditional UPDATE like a
    phone's answer, so a phone answering one of them at that moment either got it first or finds it ended.
    Not committed (the caller commits it with the binding it keeps)."""
    db.session.flush()  # ``keeping`` has its id, and is not among the rows the UPDATE sees as live
    now = utcnow()
    ended = db.session.scalars(
        update(Binding)
        .where(
            Binding.auth_session_id == auth_session.id,
            Binding.id != keeping.id,
            Binding.consumed_at.is_(None),
            Binding.expires_at > now,
        )
        .values(consumed_at=now, failure=REPLACED)
        .returning(Binding.public_id)
        .execution_options(synchronize_session=False)
    ).all()
    for public_id in ended:
        record(Tags.BINDING_REPLACED, account=keeping.account, binding=public_id, replaced_by=keeping.public_id)


def check_binding_link(token: object) -> None:
    """Refuse a binding link that can no longer bind (unknown, used, replaced, expired), as its first step
    would, before the phone's page is shown: its page then says why, not a form that fails. Reads only."""
    _open_binding(token)


def _open_binding(token: object) -> Binding:
    binding = tickets.by_token(Binding, token)
    if binding is None:
        raise Refusal("binding_unknown")
    now = utcnow()
    if binding.failure == REPLACED:
        raise Refusal("binding_replaced")
    if binding.consumed_at is not None:
        raise Refusal("binding_used")
    if binding.expires_at <= now:
        raise Refusal("binding_expired")
    if binding.auth_session.ended_at is not None or binding.auth_session.expires_at <= now:
        raise Refusal("binding_expired", case="session_ended")
    return binding


def _failed(binding: Binding, refusal: Refusal) -> Refusal:
    """Record why a consumed binding failed (the computer's page shows it); returns the refusal to raise."""
    tickets.fail(binding, refusal.code)
    record(Tags.BINDING_FAILED, account=binding.account, binding=binding.public_id, reason=refusal.code)
    db.session.commit()
    return refusal


def _user_handle(account: Account) -> bytes:
    # Stable per account, but not the database id nor anything derived from the national ID alone.
    return bytes.fromhex(digest(f"mocert-user:{account.national_id_hash}"))[:16]


def _mask_name(name: str) -> str:
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "○"
    return name[0] + "○" * (len(name) - 2) + name[-1]


def _device_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Refusal("invalid_device_name")
    name = " ".join(value.split())
    if len(name) > NAME_MAX:
        raise Refusal("invalid_device_name", case="too_long")
    return name


def _platform(user_agent: str | None) -> str | None:
    text = user_agent or ""
    for marker, label in (("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"), ("Macintosh", "macOS"),
                          ("Windows", "Windows"), ("Linux", "Linux")):
        if marker in text:
            return label
    return None
