"""Logging in at /authorize with a bound phone (cross-device, by QR code) or a passkey on this device.

A login request is a single-use token (the QR code) for one authorize request of one client, tied to
the browser session that asked for it: a random value kept in that browser's Flask session, stored here
only as a hash. The phone's page shows the client's name and a short match code, as the computer's page
does, so that a QR code relayed to someone else's phone is noticed; and only the browser that asked can
turn an approved request into a MoCert session, so a relayed QR code never logs in the relayer.

The phone is not logged in: its options ask for a discoverable credential (no allowCredentials) and the
device is identified by the credential id in its answer, then checked by ``devices.verify_assertion``
(active and unexpired, user verification, sign counter).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

from flask import current_app, session
from flask_babel import gettext as _
from sqlalchemy import select, update

import webauthn

from ..audit import Tags, record
from ..errors import ApiError
from ..extensions import db
from ..input_checks import storable
from ..models import Account, Device, LoginRequest, OidcClient, utcnow
from . import card_login, devices

BROWSER_KEY = "mocert_login_browser"  # the Flask-session value that ties login requests to this browser
MATCH_LETTERS = "ACDEFHJKLMNPRTUVWXY"  # no I/O (1/0), no B/S/G/Z (8/5/6/2), no Q
LOGIN_MARKER = "login_after"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def ttl() -> timedelta:
    return current_app.config["MOBILE_LOGIN_TTL"]


def login_url(token: str) -> str:
    return f"{current_app.config['PUBLIC_URL']}/m/login/{token}"


# -- the computer's side ------------------------------------------------------------------------------------


def authorize_params(query: object) -> list[tuple[str, str]]:
    """The authorize request's parameters from a query string, without our login marker."""
    if not isinstance(query, str) or len(query) > 8000:
        raise ApiError(400, "malformed_input", _("The login request could not be read."))
    params = [(k, v) for k, v in parse_qsl(query.lstrip("?"), keep_blank_values=True) if k != LOGIN_MARKER]
    # Decoded here, past the door's check of the JSON it came in: %00 is a NUL only now.
    if not all(storable(k) and storable(v) for k, v in params):
        raise ApiError(400, "malformed_input", _("The login request could not be read."))
    return params


def client_for(params: list[tuple[str, str]]) -> OidcClient:
    """The active client the authorize request names, with its redirect URI registered; else ApiError."""
    values = dict(params)
    client = db.session.scalar(select(OidcClient).where(OidcClient.client_id == values.get("client_id", "")))
    redirect_uri = values.get("redirect_uri", "")
    if client is None or client.disabled_at is not None or not client.check_redirect_uri(redirect_uri):
        raise ApiError(400, "invalid_client", _("This login request is not for a known site."))
    return client


def create(query: object) -> tuple[LoginRequest, str]:
    """Start a login for an authorize request (its query string); returns the request and its token."""
    params = authorize_params(query)
    client = client_for(params)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    login = LoginRequest(
        public_id=secrets.token_urlsafe(16),
        token_hash=_hash(token),
        browser_hash=_hash(_browser_proof(create=True)),
        client=client,
        authorize_query=urlencode(params),
        match_code=f"{secrets.randbelow(100):02d}{secrets.choice(MATCH_LETTERS)}",
        created_at=now,
        expires_at=now + ttl(),
    )
    db.session.add(login)
    record(Tags.MOBILE_LOGIN_STARTED, login_request=login.public_id, client=client.client_id)
    db.session.commit()
    return login, token


def status(public_id: object) -> dict:
    login = _mine(public_id)
    state = login.status(utcnow())
    body: dict = {"status": state}
    if state == "failed":
        body["reason"] = login.failure
    return body


def complete(public_id: object) -> str:
    """Turn an approved request into a MoCert session for this browser; returns where to go next."""
    login = _mine(public_id)
    now = utcnow()
    if login.approved_at is None:
        raise ApiError(409, "login_not_approved", _("This login has not been approved on the phone."))
    if login.completed_at is not None:
        raise ApiError(409, "login_request_used", _("This login was already used. Start again."))
    if login.approved_at + ttl() <= now:
        raise ApiError(410, "login_request_expired", _("This login has expired. Start again."))
    _claim(login, LoginRequest.completed_at.is_(None), completed_at=now)
    return _start_session(login)


# -- the same device (a passkey on this computer or phone) ------------------------------------------------


def passkey_options(public_id: object) -> dict:
    login = _open(_mine(public_id))
    challenge = secrets.token_bytes(32)
    login.passkey_challenge = challenge
    db.session.commit()
    return _request_options(challenge)


def passkey_complete(public_id: object, credential: object) -> str:
    login = _mine(public_id)
    if not isinstance(credential, dict):
        raise ApiError(400, "malformed_input", _("The answer could not be read."))
    _open(login)
    if login.passkey_challenge is None:
        raise ApiError(409, "login_not_started", _("Ask for the login options first."))
    _consume(login)
    _approve(login, credential, login.passkey_challenge)
    login.completed_at = login.approved_at
    return _start_session(login)


# -- the phone's side (no cookie: the token is the capability) ---------------------------------------------


def phone_options(token: object) -> dict:
    login = _open(_by_token(token))
    challenge = secrets.token_bytes(32)
    first_scan = login.scanned_at is None
    login.challenge = challenge
    login.scanned_at = login.scanned_at or utcnow()
    if first_scan:
        record(Tags.MOBILE_LOGIN_SCANNED, login_request=login.public_id, client=login.client.client_id)
    db.session.commit()
    return {
        **_request_options(challenge),
        "client_name": login.client.name,
        "match_code": login.match_code,
        "site": current_app.config["WEBAUTHN_RP_NAME"],
    }


def phone_complete(token: object, credential: object) -> dict:
    if not isinstance(credential, dict):
        raise ApiError(400, "malformed_input", _("The phone's answer could not be read."))
    login = _open(_by_token(token))
    if login.challenge is None:
        raise ApiError(409, "login_not_scanned", _("Ask for the login options first."))
    _consume(login)
    _approve(login, credential, login.challenge)
    db.session.commit()
    return {"status": "approved"}


# -- internals ----------------------------------------------------------------------------------------------


def _browser_proof(create: bool = False) -> str | None:
    value = session.get(BROWSER_KEY)
    if not isinstance(value, str) and create:
        value = secrets.token_urlsafe(32)
        session[BROWSER_KEY] = value
    return value if isinstance(value, str) else None


def _mine(public_id: object) -> LoginRequest:
    """The login request of this browser; another browser's is as unknown as a made-up one."""
    proof = _browser_proof()
    login = None
    if isinstance(public_id, str) and len(public_id) <= 64 and proof is not None:
        login = db.session.scalar(select(LoginRequest).where(LoginRequest.public_id == public_id))
    if login is None or not hmac.compare_digest(login.browser_hash, _hash(proof)):
        raise ApiError(404, "login_request_unknown", _("There is no such login request."))
    return login


def _by_token(token: object) -> LoginRequest:
    login = None
    if isinstance(token, str) and 20 <= len(token) <= 100:
        login = db.session.scalar(select(LoginRequest).where(LoginRequest.token_hash == _hash(token)))
    if login is None:
        raise ApiError(404, "login_request_unknown", _("This QR code is not valid."))
    return login


def _open(login: LoginRequest) -> LoginRequest:
    if login.consumed_at is not None or login.approved_at is not None:
        raise ApiError(409, "login_request_used", _("This QR code was already used. Start again on the computer."))
    if login.expires_at <= utcnow():
        raise ApiError(410, "login_request_expired", _("This QR code has expired. Start again on the computer."))
    if login.client.disabled_at is not None:
        raise ApiError(410, "login_request_expired", _("This site can no longer log in with MoCert."))
    return login


def _claim(login: LoginRequest, *conditions, **values) -> None:
    """Set ``values`` on the row in one statement when ``conditions`` still hold, else 409: one winner."""
    claimed = db.session.execute(
        update(LoginRequest)
        .where(LoginRequest.id == login.id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if claimed.rowcount != 1:
        raise ApiError(409, "login_request_used", _("This login was already used. Start again."))
    db.session.refresh(login)


def _consume(login: LoginRequest) -> None:
    now = utcnow()
    _claim(login, LoginRequest.consumed_at.is_(None), LoginRequest.expires_at > now, consumed_at=now)


def _request_options(challenge: bytes) -> dict:
    return webauthn.authentication_options(
        rp_id=devices.rp_id(),
        challenge=challenge,
        allow_credentials=(),  # discoverable: the phone is not logged in, its answer names the credential
        user_verification="required",
        timeout_ms=int(ttl().total_seconds() * 1000),
    )


def _approve(login: LoginRequest, credential: dict, challenge: bytes) -> None:
    """Check the answer of a consumed request; on success mark it approved (not committed)."""
    device = None
    raw_id = _credential_id(credential)
    if raw_id is not None:
        device = db.session.scalar(select(Device).where(Device.credential_id == raw_id))
    if device is None:
        raise _failed(login, None, ApiError(401, "credential_unknown", _("This phone is not bound to MoCert.")))
    try:
        devices.verify_assertion(device, credential, challenge)
    except ApiError as exc:
        raise _failed(login, device, exc) from None
    login.approved_at = utcnow()
    login.account_id = device.account_id
    login.device_id = device.id
    record(
        Tags.MOBILE_LOGIN_APPROVED,
        account=device.account,
        login_request=login.public_id,
        client=login.client.client_id,
        device=device.id,
    )


def _credential_id(credential: dict) -> bytes | None:
    value = credential.get("rawId", credential.get("id"))
    if not isinstance(value, str) or not 0 < len(value) <= 1400:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def _failed(login: LoginRequest, device: Device | None, error: ApiError) -> ApiError:
    """Record why a consumed request failed (the computer's page shows it); returns the error to raise."""
    db.session.rollback()  # nothing half-done from the attempt (a possibly-cloned mark is committed already)
    login = db.session.get(LoginRequest, login.id)
    login.failure = error.code
    record(
        Tags.MOBILE_LOGIN_FAILURE,
        account=device.account if device is not None else None,
        login_request=login.public_id,
        client=login.client.client_id,
        device=device.id if device is not None else None,
        reason=error.code,
    )
    db.session.commit()
    return error


def _start_session(login: LoginRequest) -> str:
    """A fresh MoCert session (method "mobile") in a fresh cookie; returns the authorize request to resume.

    The login marker is made before the session, so /authorize sees a session at least as new as it.
    """
    account: Account = login.account
    device: Device = login.device
    # Approved a moment ago, but an admin may have stopped the phone or locked the person since.
    db.session.refresh(device)
    db.session.refresh(account)
    try:
        devices.ensure_usable(device, utcnow())
    except ApiError as exc:
        raise _failed(login, device, exc) from None
    marker = _marker()
    record(
        Tags.MOBILE_LOGIN_SUCCESS,
        account=account,
        login_request=login.public_id,
        client=login.client.client_id,
        device=device.id,
    )
    card_login.start_session(account, method="mobile", device_id=device.id)  # commits with the record
    return f"/authorize?{urlencode([*authorize_params(login.authorize_query), (LOGIN_MARKER, marker)])}"


def _marker() -> str:
    from ..oidc import _login_marker_serializer  # the seam's own marker, so /authorize trusts it

    return _login_marker_serializer().dumps(int(time.time()))
