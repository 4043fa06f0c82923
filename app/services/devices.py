"""Binding phones, and the person's own management of their devices.

A binding is a single-use token (the QR code) tied to the account and the card-authenticated session
that made it. The phone asks for WebAuthn creation options with it, then completes it with the new
credential; completing consumes the token atomically, so two phones racing for one QR code make
exactly one device.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import qrcode
import qrcode.image.svg
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import current_app, request
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

import webauthn

from ..audit import Tags, record
from ..errors import ApiError
from ..extensions import db
from ..models import Account, AuthSession, Binding, Device, MobileCertificate, OidcToken, utcnow
from . import card_login, mobile_certificates
from .mobile_certificates import mobile_ca, pseudonym

LIVE_STATUSES = ("active", "suspended")  # revoked devices no longer count against the limit
NAME_MAX = 80


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def rp_id() -> str:
    return current_app.config["WEBAUTHN_RP_ID"] or urlsplit(current_app.config["PUBLIC_URL"]).hostname


def trust_policy() -> webauthn.TrustPolicy:
    """The attestation trust policy of the configuration, built once per application.

    An MDS3 blob is read from a file (never fetched) and re-read on restart; refresh the file to update it.
    """
    app = current_app._get_current_object()
    policy = app.extensions.get("mocert.webauthn_trust")
    if policy is None:
        config = app.config
        kind = config["WEBAUTHN_TRUST"]
        if kind == "any":
            policy = webauthn.TrustPolicy.any()
        elif kind == "roots":
            policy = webauthn.TrustPolicy.roots([Path(p).read_bytes() for p in config["WEBAUTHN_ATTESTATION_ROOTS"]])
        elif kind == "mds3":
            root = x509.load_pem_x509_certificate(Path(config["WEBAUTHN_MDS_ROOT"]).read_bytes())
            policy = webauthn.TrustPolicy.mds3(config["WEBAUTHN_MDS_BLOB"], root.public_bytes(Encoding.DER))
        else:
            raise ValueError(f"MOCERT_WEBAUTHN_TRUST must be any, roots or mds3, not {kind!r}")
        app.extensions["mocert.webauthn_trust"] = policy
    return policy


def origins() -> tuple[str, ...]:
    configured = current_app.config["WEBAUTHN_ORIGINS"]
    if configured:
        return tuple(configured)
    public = urlsplit(current_app.config["PUBLIC_URL"])
    return (f"{public.scheme}://{public.netloc}",)


# -- the computer's side --------------------------------------------------------------------------------


def create_binding(account: Account, auth_session: AuthSession) -> tuple[Binding, str]:
    """Start binding a phone; returns the binding and the token (shown once, in the QR code)."""
    if auth_session.method != "card":
        raise ApiError(403, "card_login_required", _("Binding a phone needs a login with your IC card."))
    if not account.email_verified:
        raise ApiError(409, "email_not_verified", _("Please confirm your email address before binding a phone."))
    _check_device_limit(account)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    binding = Binding(
        public_id=secrets.token_urlsafe(16),
        token_hash=_hash(token),
        account=account,
        auth_session=auth_session,
        created_at=now,
        expires_at=now + current_app.config["BINDING_TTL"],
    )
    db.session.add(binding)
    record(Tags.BINDING_STARTED, account=account, binding=binding.public_id)
    db.session.commit()
    return binding, token


def binding_url(token: str) -> str:
    return f"{current_app.config['PUBLIC_URL']}/m/bind/{token}"


def qr_svg(url: str) -> str:
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


def binding_status(account: Account, public_id: str) -> dict:
    binding = db.session.scalar(select(Binding).where(Binding.public_id == public_id, Binding.account_id == account.id))
    if binding is None:  # another account's binding is as unknown as a made-up one
        raise ApiError(404, "binding_unknown", _("There is no such binding."))
    status = binding.status(utcnow())
    body: dict = {"status": status}
    if status == "completed" and binding.device is not None:
        body["device"] = device_view(binding.device)
    if status == "failed":
        body["reason"] = binding.failure
    return body


# -- the phone's side (no cookie: the token is the capability) -------------------------------------------


def binding_options(token: str) -> dict:
    binding = _open_binding(token)
    challenge = secrets.token_bytes(32)
    account = binding.account
    existing = db.session.scalars(select(Device).where(Device.account_id == account.id, Device.status != "revoked"))
    options = webauthn.registration_options(
        rp_id=rp_id(),
        rp_name=current_app.config["WEBAUTHN_RP_NAME"],
        user_id=_user_handle(account),
        user_name=account.national_id_masked,
        user_display_name=account.name,
        challenge=challenge,
        exclude_credentials=[(d.credential_id, d.transports or ()) for d in existing],
        timeout_ms=int(current_app.config["BINDING_TTL"].total_seconds() * 1000),
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
        "site": current_app.config["WEBAUTHN_RP_NAME"],
    }


def complete_binding(token: str, credential: object, device_name: object) -> Device:
    name = _device_name(device_name)
    if not isinstance(credential, dict):
        raise ApiError(400, "malformed_input", _("The phone's answer could not be read."))
    binding = _open_binding(token)
    if binding.challenge is None:
        raise ApiError(409, "binding_not_scanned", _("Ask for the binding options first."))
    now = utcnow().replace(microsecond=0)  # X.509 times have whole seconds: bound_at matches notBefore
    # Consume first, in one statement: of two phones racing for one QR code, exactly one gets here.
    consumed = db.session.execute(
        update(Binding)
        .where(Binding.id == binding.id, Binding.consumed_at.is_(None), Binding.expires_at > now)
        .values(consumed_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if consumed.rowcount != 1:
        raise ApiError(409, "binding_used", _("This QR code was already used. Start binding again."))

    account = binding.account
    try:
        verified = webauthn.verify_registration(
            credential,
            expected_challenge=binding.challenge,
            expected_origin=origins(),
            expected_rp_id=rp_id(),
            require_user_verification=True,
            trust=trust_policy(),
        )
    except webauthn.WebAuthnError as exc:
        raise _failed(binding, ApiError(400, exc.reason, _binding_failure_message(exc.reason))) from exc
    if db.session.scalar(select(Device.id).where(Device.credential_id == verified.credential_id)) is not None:
        raise _failed(binding, ApiError(409, "credential_exists", _("This phone is already bound.")))
    try:
        _check_device_limit(account)
    except ApiError as exc:
        raise _failed(binding, exc) from None

    device = Device(
        account=account,
        name=name,
        platform=_platform(request.user_agent.string),
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
    certificate = _issue(device, now)
    binding.completed_at = now
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
    db.session.commit()
    return device


# -- the person's devices --------------------------------------------------------------------------------


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
        raise ApiError(404, "device_unknown", _("There is no such device."))
    return device


def rename(account: Account, device_id: int, new_name: object) -> Device:
    device = get_device(account, device_id)
    name = _device_name(new_name)
    record(Tags.DEVICE_RENAMED, account=account, device=device.id, old=device.name, new=name)
    device.name = name
    db.session.commit()
    return device


def unbind(account: Account, device_id: int, reason: object) -> Device:
    device = get_device(account, device_id)
    text = reason.strip()[:200] if isinstance(reason, str) and reason.strip() else "unbound by its owner"
    return revoke(device, actor=f"account:{account.id}", reason=text, tag=Tags.DEVICE_UNBOUND,
                  crl_reason="cessationOfOperation")


# -- suspending, resuming, revoking (the owner's unbind, and administrators) ------------------------------
# Each takes effect from the next request: what came through the phone is cut off in the same transaction
# (its sessions end, its OIDC tokens are revoked, its certificate is held or revoked on the CRL/OCSP), and
# the session loader and token checks refuse anything of a phone that is not active.


def suspend(device: Device, *, actor: str, reason: str) -> Device:
    """Reversible: the phone cannot log in and its certificate is on hold until :func:`resume`."""
    _transition(device, ("active",), "suspended", _("Only an active device can be suspended."))
    cut = _cut_off(device)
    mobile_certificates.hold_certificates(device)
    record(Tags.DEVICE_SUSPENDED, account=device.account, actor=actor, device=device.id, reason=reason, **cut)
    db.session.commit()
    return device


def resume(device: Device, *, actor: str, reason: str) -> Device:
    if device.account.locked_at is not None:  # a locked person's certificates stay on hold
        raise ApiError(409, "account_locked", _("Unlock the account before resuming its devices."))
    _transition(device, ("suspended",), "active", _("Only a suspended device can be resumed."))
    mobile_certificates.release_certificates(device)
    record(Tags.DEVICE_RESUMED, account=device.account, actor=actor, device=device.id, reason=reason)
    db.session.commit()
    return device


def revoke(
    device: Device, *, actor: str, reason: str, tag: Tags = Tags.DEVICE_REVOKED, crl_reason: str = "keyCompromise"
) -> Device:
    """Final: nothing brings the phone back; binding again makes a new device."""
    _transition(device, ("active", "suspended"), "revoked", _("This device is already unbound."),
                revoked_at=utcnow(), revocation_reason=reason)
    cut = _cut_off(device)
    mobile_certificates.revoke_certificates(device, crl_reason)
    record(tag, account=device.account, actor=actor, device=device.id, reason=reason, **cut)
    db.session.commit()
    return device


def _transition(device: Device, allowed: tuple[str, ...], new: str, refusal: str, **values: object) -> None:
    """Change the status only from an allowed one, in one conditional UPDATE (which holds the row until
    commit): of two admins acting at once, or an action racing a renewal, the second sees the first's
    result and is refused, so a revocation can never be overwritten by a suspension."""
    changed = db.session.execute(
        update(Device)
        .where(Device.id == device.id, Device.status.in_(allowed))
        .values(status=new, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(device)
    if changed != 1:
        db.session.rollback()
        raise ApiError(409, f"device_{device.status}", refusal)


def _cut_off(device: Device) -> dict:
    """End the sessions opened with the phone and revoke the OIDC tokens obtained through them."""
    now = utcnow()
    sessions = select(AuthSession.id).where(AuthSession.device_id == device.id).scalar_subquery()
    tokens = db.session.execute(
        update(OidcToken)
        .where(OidcToken.auth_session_id.in_(sessions), OidcToken.revoked_at.is_(None))
        .values(revoked_at=now, national_id_sealed=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    ended = db.session.execute(
        update(AuthSession)
        .where(AuthSession.device_id == device.id, AuthSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return {"sessions_ended": ended, "tokens_revoked": tokens}


def renew(account: Account, auth_session: AuthSession, device_id: int) -> Device:
    """Another year for an active device, for a person logged in with a valid card (a new certificate)."""
    if auth_session.method != "card":
        raise ApiError(403, "card_login_required", _("Renewing needs a login with your IC card."))
    device = get_device(account, device_id)
    # Holds the row: a suspension or revocation racing the renewal waits, then sees the new certificate.
    _transition(device, ("active",), "active", _("Only an active device can be renewed."))
    certificate = _issue(device, utcnow().replace(microsecond=0))
    mobile_certificates.supersede_certificates(device, certificate)  # one live certificate per key
    record(Tags.DEVICE_RENEWED, account=account, device=device.id, certificate=certificate.serial_hex)
    db.session.commit()
    return device


def verify_assertion(device: Device, credential: dict, challenge: bytes) -> webauthn.VerifiedAuthentication:
    """Check a phone's answer to a login challenge for ``device`` (the login flow calls this).

    User verification is required, the sign counter must move on, and a ``userHandle`` in the answer must
    be the one the device was bound with (WebAuthn §7.2 step 6: the login finds the device by its
    credential id, the handle must not name someone else). A counter that went back means the
    key may have been copied: the device is marked possibly cloned and the event audited (committed),
    and the login refused. On success the device's counter and last use are updated, not committed: the
    caller commits them with its own change. Raises :class:`ApiError`.
    """
    now = utcnow()
    ensure_usable(device, now)
    try:
        verified = webauthn.verify_authentication(
            credential,
            expected_challenge=challenge,
            expected_origin=origins(),
            expected_rp_id=rp_id(),
            credential_public_key=device.public_key,
            current_sign_count=device.sign_count,
            credential_id=device.credential_id,
            # The user.id its binding's options gave (a function of the account, which a device never leaves).
            user_handle=_user_handle(device.account),
        )
    except webauthn.SignCountRegression as exc:
        device.possibly_cloned = True
        record(
            Tags.DEVICE_POSSIBLY_CLONED, account=device.account, device=device.id, stored=exc.stored, received=exc.received
        )
        db.session.commit()
        raise ApiError(401, exc.reason, _("This phone's key may have been copied. Contact support.")) from exc
    except webauthn.WebAuthnError as exc:
        raise ApiError(401, exc.reason, _("The phone's answer could not be verified.")) from exc
    device.sign_count = verified.new_sign_count
    device.backup_state = verified.backup_state
    device.last_used_at = now
    return verified


def ensure_usable(device: Device, now: datetime) -> None:
    """A phone may log its person in: active, unexpired, and its account not locked (else a 403)."""
    status = device.effective_status(now)
    if status != "active":
        raise ApiError(403, f"device_{status}", _device_refusal(status))
    if device.account.locked_at is not None:
        raise card_login.account_locked()


def _device_refusal(status: str) -> str:
    if status == "expired":
        return _("This phone's mobile certificate has expired. Log in with your IC card to renew it.")
    if status == "suspended":
        return _("This phone is suspended. Contact support.")
    return _("This phone is no longer bound.")


def certificate_pem(account: Account, device_id: int) -> tuple[str, bytes]:
    device = get_device(account, device_id)
    certificate = device.certificate
    if certificate is None:
        raise ApiError(404, "certificate_unknown", _("This device has no certificate."))
    pem = x509.load_der_x509_certificate(certificate.der).public_bytes(Encoding.PEM)
    return f"mocert-device-{device.id}-{certificate.serial_hex[:12]}.pem", pem


def device_view(device: Device, now: datetime | None = None) -> dict:
    now = now or utcnow()
    certificate = device.certificate
    return {
        "id": device.id,
        "name": device.name,
        "platform": device.platform,
        "bound_at": device.bound_at.isoformat(),
        "expires_at": certificate.not_after.isoformat() if certificate else None,
        "last_used_at": device.last_used_at.isoformat() if device.last_used_at else None,
        "status": device.effective_status(now),
        "certificate_serial": certificate.serial_hex if certificate else None,
    }


# -- internals --------------------------------------------------------------------------------------------


def _open_binding(token: object) -> Binding:
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        raise ApiError(404, "binding_unknown", _("This QR code is not valid."))
    binding = db.session.scalar(select(Binding).where(Binding.token_hash == _hash(token)))
    if binding is None:
        raise ApiError(404, "binding_unknown", _("This QR code is not valid."))
    now = utcnow()
    if binding.consumed_at is not None:
        raise ApiError(409, "binding_used", _("This QR code was already used. Start binding again."))
    if binding.expires_at <= now:
        raise ApiError(410, "binding_expired", _("This QR code has expired. Start binding again on the computer."))
    if binding.auth_session.ended_at is not None or binding.auth_session.expires_at <= now:
        raise ApiError(410, "binding_expired", _("The computer's session that started this binding has ended."))
    return binding


def _failed(binding: Binding, error: ApiError) -> ApiError:
    """Record why a consumed binding failed (the computer's page shows it); returns the error to raise."""
    binding.failure = error.code
    record(Tags.BINDING_FAILED, account=binding.account, binding=binding.public_id, reason=error.code)
    db.session.commit()
    return error


def _check_device_limit(account: Account) -> None:
    count = db.session.scalar(
        select(func.count()).select_from(Device).where(Device.account_id == account.id, Device.status.in_(LIVE_STATUSES))
    )
    limit = current_app.config["DEVICE_LIMIT"]
    if count >= limit:
        raise ApiError(
            409, "device_limit", _("You already have %(limit)d devices. Unbind one first.", limit=limit), limit=limit
        )


def _issue(device: Device, not_before: datetime) -> MobileCertificate:
    account = device.account
    issued = mobile_ca().issue(
        cose_public_key=device.public_key,
        name=account.name,
        pseudonym=pseudonym(account.national_id_hash),
        credential_id=device.credential_id,
        not_before=not_before,
    )
    certificate = MobileCertificate(
        device=device,
        serial_hex=f"{issued.serial_number:x}",
        not_before=issued.not_valid_before_utc,
        not_after=issued.not_valid_after_utc,
        der=issued.public_bytes(Encoding.DER),
    )
    db.session.add(certificate)
    db.session.flush()
    db.session.refresh(device, ["certificates"])
    return certificate


def _user_handle(account: Account) -> bytes:
    # Stable per account, but not the database id nor anything derived from the national ID alone.
    return hashlib.sha256(f"mocert-user:{account.national_id_hash}".encode()).digest()[:16]


def _mask_name(name: str) -> str:
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "○"
    return name[0] + "○" * (len(name) - 2) + name[-1]


def _device_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_device_name", _("Please give the device a name."))
    name = " ".join(value.split())
    if len(name) > NAME_MAX:
        raise ApiError(400, "invalid_device_name", _("The device name is too long."))
    return name


def _platform(user_agent: str | None) -> str | None:
    text = user_agent or ""
    for marker, label in (("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"), ("Macintosh", "macOS"),
                          ("Windows", "Windows"), ("Linux", "Linux")):
        if marker in text:
            return label
    return None


def _binding_failure_message(reason: str) -> str:
    if reason == "user_not_verified":
        return _("The phone did not verify you with fingerprint or face. Set up biometrics and try again.")
    if reason in ("origin_mismatch", "rp_id_mismatch"):
        return _("The phone answered for another site.")
    return _("The phone's answer could not be verified. Start binding again.")
