"""Logging in at /authorize with a bound phone (cross-device, by QR code) or a passkey on this device.

A login request is a single-use ticket (the QR code) for one authorize request of one client, tied to
the browser that asked for it: a random value the view keeps in that browser's Flask session (the
*browser key*), stored here only as a hash. The phone's page shows the client's name and a short match
code, as the computer's page does, so that a QR code relayed to someone else's phone is noticed; and only
the browser that asked can turn an approved request into a MoCert session, so a relayed QR code never
logs in the relayer.

The phone is not logged in: its options ask for a discoverable credential (no allowCredentials) and the
device is identified by the credential id in its answer, then checked by ``Devices.verify_assertion``
(active and unexpired, user verification, sign counter).

:class:`MobileLogins` is built once at startup (``app/wiring.py``); the view passes the browser key and
the request's IP and user agent, and logs the person in with the session a completed login opens.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import select

import webauthn

from ..audit import Tags, record
from ..extensions import db
from ..input_checks import storable
from ..models import Account, AuthSession, Device, LoginRequest, OidcClient, utcnow
from . import sessions, tickets
from .devices import Devices, RelyingParty, by_credential, ensure_usable
from .refusals import Refusal
from .sessions import Browser, LoginMarker
from .tokens import digest

MATCH_LETTERS = "ACDEFHJKLMNPRTUVWXY"  # no I/O (1/0), no B/S/G/Z (8/5/6/2), no Q


@dataclass(frozen=True)
class LoggedIn:
    """A completed login: the session it opened (not yet in the browser: the view logs the person in with
    ``token``) and the authorize request to resume, marked as a fresh login."""

    account: Account
    token: str
    auth_session: AuthSession
    redirect: str


class MobileLogins:
    def __init__(
        self,
        *,
        relying_party: RelyingParty,
        devices: Devices,
        login_marker: LoginMarker,
        public_url: str,
        ttl: timedelta,
        session_lifetime: timedelta,
    ) -> None:
        self.relying_party, self.devices, self.login_marker = relying_party, devices, login_marker
        self.public_url, self.ttl, self.session_lifetime = public_url, ttl, session_lifetime

    def login_url(self, token: str) -> str:
        return f"{self.public_url}/m/login/{token}"

    # -- the computer's side --------------------------------------------------------------------------------

    def authorize_params(self, query: object) -> list[tuple[str, str]]:
        """The authorize request's parameters from a query string, without our login marker."""
        if not isinstance(query, str) or len(query) > 8000:
            raise Refusal("malformed_input", case="login_request")
        params = self.login_marker.strip(parse_qsl(query.lstrip("?"), keep_blank_values=True))
        # Decoded here, past the door's check of the JSON it came in: %00 is a NUL only now.
        if not all(storable(k) and storable(v) for k, v in params):
            raise Refusal("malformed_input", case="login_request")
        return params

    def create(self, query: object, browser_key: str) -> tuple[LoginRequest, str]:
        """Start a login for an authorize request (its query string) asked by the browser holding
        ``browser_key``; returns the request and its token."""
        params = self.authorize_params(query)
        client = client_for(params)
        login, token = tickets.issue(
            LoginRequest,
            ttl=self.ttl,
            browser_hash=digest(browser_key),
            client=client,
            authorize_query=urlencode(params),
            match_code=f"{secrets.randbelow(100):02d}{secrets.choice(MATCH_LETTERS)}",
        )
        record(Tags.MOBILE_LOGIN_STARTED, login_request=login.public_id, client=client.client_id)
        db.session.commit()
        return login, token

    def complete(self, public_id: object, browser_key: str | None, browser: Browser) -> LoggedIn:
        """Turn an approved request into a MoCert session for this browser (ending the one it held)."""
        login = _mine(public_id, browser_key)
        now = utcnow()
        if login.approved_at is None:
            raise Refusal("login_not_approved")
        if login.completed_at is not None:
            raise Refusal("login_request_used")
        if login.approved_at + self.ttl <= now:
            raise Refusal("login_request_expired")
        if not tickets.claim(login, LoginRequest.completed_at.is_(None), completed_at=now):
            raise Refusal("login_request_used")
        return self._open_session(login, browser)

    # -- the same device (a passkey on this computer or phone) ---------------------------------------------

    def passkey_options(self, public_id: object, browser_key: str | None) -> dict:
        login = _open(_mine(public_id, browser_key))
        challenge = secrets.token_bytes(32)
        login.passkey_challenge = challenge
        db.session.commit()
        return self._request_options(challenge)

    def passkey_complete(
        self, public_id: object, browser_key: str | None, credential: object, browser: Browser,
    ) -> LoggedIn:
        login = _mine(public_id, browser_key)
        if not isinstance(credential, dict):
            raise Refusal("malformed_input", case="passkey_answer")
        _open(login)
        if login.passkey_challenge is None:
            raise Refusal("login_not_started")
        _consume(login)
        self._approve(login, credential, login.passkey_challenge)
        login.completed_at = login.approved_at
        return self._open_session(login, browser)

    # -- the phone's side (no cookie: the token is the capability) -------------------------------------------

    def phone_options(self, token: object) -> dict:
        login = _open(_by_token(token))
        challenge = secrets.token_bytes(32)
        first_scan = login.scanned_at is None
        login.challenge = challenge
        login.scanned_at = login.scanned_at or utcnow()
        if first_scan:
            record(Tags.MOBILE_LOGIN_SCANNED, login_request=login.public_id, client=login.client.client_id)
        db.session.commit()
        return {
            **self._request_options(challenge),
            "client_name": login.client.name,
            "match_code": login.match_code,
            "site": self.relying_party.name,
        }

    def phone_complete(self, token: object, credential: object) -> dict:
        if not isinstance(credential, dict):
            raise Refusal("malformed_input", case="phone_answer")
        login = _open(_by_token(token))
        if login.challenge is None:
            raise Refusal("login_not_scanned")
        _consume(login)
        self._approve(login, credential, login.challenge)
        db.session.commit()
        return {"status": "approved"}

    # -- internals -----------------------------------------------------------------------------------------

    def _request_options(self, challenge: bytes) -> dict:
        return webauthn.authentication_options(
            rp_id=self.relying_party.id,
            challenge=challenge,
            allow_credentials=(),  # discoverable: the phone is not logged in, its answer names the credential
            user_verification="required",
            timeout_ms=int(self.ttl.total_seconds() * 1000),
        )

    def _approve(self, login: LoginRequest, credential: dict, challenge: bytes) -> None:
        """Check the answer of a consumed request; on success mark it approved (not committed)."""
        device = by_credential(credential)
        if device is None:
            raise _failed(login, None, Refusal("credential_unknown"))
        try:
            self.devices.verify_assertion(device, credential, challenge)
        except Refusal as refusal:
            raise _failed(login, device, refusal) from None
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

    def _open_session(self, login: LoginRequest, browser: Browser) -> LoggedIn:
        """A fresh MoCert session (method "mobile"), committed with the login's success.

        The login marker is made before the session, so /authorize sees a session at least as new as it.
        """
        account: Account = login.account
        device: Device = login.device
        # Approved a moment ago, but an admin may have stopped the phone or locked the person since.
        db.session.refresh(device)
        db.session.refresh(account)
        try:
            ensure_usable(device, utcnow())
        except Refusal as refusal:
            raise _failed(login, device, refusal) from None
        redirect = f"/authorize?{urlencode(self.login_marker.mark(self.authorize_params(login.authorize_query)))}"
        record(
            Tags.MOBILE_LOGIN_SUCCESS,
            account=account,
            login_request=login.public_id,
            client=login.client.client_id,
            device=device.id,
        )
        token, auth_session = sessions.open(
            account, method="mobile", device_id=device.id, lifetime=self.session_lifetime,
            ip=browser.ip, user_agent=browser.user_agent, replacing=browser.held,
        )
        db.session.commit()
        return LoggedIn(account, token, auth_session, redirect)


def client_for(params: list[tuple[str, str]]) -> OidcClient:
    """The active client the authorize request names, with its redirect URI registered; else a refusal."""
    values = dict(params)
    client = db.session.scalar(select(OidcClient).where(OidcClient.client_id == values.get("client_id", "")))
    redirect_uri = values.get("redirect_uri", "")
    if client is None or client.disabled_at is not None or not client.check_redirect_uri(redirect_uri):
        raise Refusal("invalid_client", case="phone_login")
    return client


def status(public_id: object, browser_key: str | None) -> dict:
    login = _mine(public_id, browser_key)
    state = login.status(utcnow())
    body: dict = {"status": state}
    if state == "failed":
        body["reason"] = login.failure
    return body


def _mine(public_id: object, browser_key: str | None) -> LoginRequest:
    """The login request of this browser; another browser's is as unknown as a made-up one."""
    login = None
    if isinstance(public_id, str) and len(public_id) <= 64 and isinstance(browser_key, str):
        login = db.session.scalar(select(LoginRequest).where(LoginRequest.public_id == public_id))
    if login is None or not hmac.compare_digest(login.browser_hash, digest(browser_key)):
        raise Refusal("login_request_unknown")
    return login


def _by_token(token: object) -> LoginRequest:
    login = tickets.by_token(LoginRequest, token)
    if login is None:
        raise Refusal("login_request_unknown", case="qr")
    return login


def _open(login: LoginRequest) -> LoginRequest:
    if login.consumed_at is not None or login.approved_at is not None:
        raise Refusal("login_request_used", case="qr")
    if login.expires_at <= utcnow():
        raise Refusal("login_request_expired", case="qr")
    if login.client.disabled_at is not None:
        raise Refusal("login_request_expired", case="client_disabled")
    return login


def _consume(login: LoginRequest) -> None:
    if not tickets.consume(login):
        raise Refusal("login_request_used")


def _failed(login: LoginRequest, device: Device | None, refusal: Refusal) -> Refusal:
    """Record why a consumed request failed (the computer's page shows it); returns the refusal to raise."""
    db.session.rollback()  # nothing half-done from the attempt (a possibly-cloned mark is committed already)
    login = db.session.get(LoginRequest, login.id)
    tickets.fail(login, refusal.code)
    record(
        Tags.MOBILE_LOGIN_FAILURE,
        account=device.account if device is not None else None,
        login_request=login.public_id,
        client=login.client.client_id,
        device=device.id if device is not None else None,
        reason=refusal.code,
    )
    db.session.commit()
    return refusal
