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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import select, update

import webauthn

from ..audit import Tags, record
from ..extensions import db
from ..input_checks import storable
from ..models import Account, AuthSession, Device, LoginRequest, OidcClient, utcnow
from . import sessions, tickets
from .client_directory import ClientDirectory
from .devices import Devices, RelyingParty, by_credential, ensure_usable
from .refusals import Refusal
from .sessions import Browser, LoginMarker
from .tokens import digest

MATCH_LETTERS = "ACDEFHJKLMNPRTUVWXY"  # no I/O (1/0), no B/S/G/Z (8/5/6/2), no Q
# The failure of a request the person declined on the phone; the computer's page hears "declined".
DECLINED = "login_declined"


# Given the person just logged in (their new session on ``account.auth_session``, not committed) and the
# authorize request's parameters: the site's redirect with a code when the request asks nothing more of the
# person (no consent page), the code and the whole login committed by it; else None (nothing committed), and
# the browser goes back to /authorize. So it is called last.
CodeIssuer = Callable[[Account, list[tuple[str, str]]], "str | None"]


@dataclass(frozen=True)
class StartedLogin:
    """A login request as the asking page gets it: what it polls, the phone's URL, and the options for a
    passkey on this device (its challenge issued with the request, so that path needs no second call)."""

    public_id: str
    token: str
    match_code: str
    client_name: str
    expires_in: int
    passkey_options: dict


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
        clients: ClientDirectory,
        relying_party: RelyingParty,
        devices: Devices,
        login_marker: LoginMarker,
        public_url: str,
        ttl: timedelta,
        session_lifetime: timedelta,
        code_issuer: CodeIssuer | None = None,
    ) -> None:
        self.clients, self.relying_party, self.devices, self.login_marker = clients, relying_party, devices, login_marker
        self.public_url, self.ttl, self.session_lifetime = public_url, ttl, session_lifetime
        self.code_issuer = code_issuer

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

    def client_for(self, params: list[tuple[str, str]]) -> OidcClient:
        """The active client the authorize request names, with its redirect URI registered; else a refusal."""
        values = dict(params)
        client = self.clients.active(values.get("client_id", ""))
        if client is None or not client.check_redirect_uri(values.get("redirect_uri", "")):
            raise Refusal("invalid_client", case="phone_login")
        return client

    def create(self, query: object, browser_key: str) -> StartedLogin:
        """Start a login for an authorize request (its query string) asked by the browser holding
        ``browser_key``: one row and its audit event, one commit."""
        params = self.authorize_params(query)
        client = self.client_for(params)
        challenge = secrets.token_bytes(32)
        login, token = tickets.issue(
            LoginRequest,
            ttl=self.ttl,
            browser_hash=digest(browser_key),
            client_id=client.id,
            authorize_query=urlencode(params),
            match_code=f"{secrets.randbelow(100):02d}{secrets.choice(MATCH_LETTERS)}",
            passkey_challenge=challenge,
        )
        record(Tags.MOBILE_LOGIN_STARTED, login_request=login.public_id, client=client.client_id)
        started = StartedLogin(
            public_id=login.public_id,
            token=token,
            match_code=login.match_code,
            client_name=client.name,
            expires_in=int(self.ttl.total_seconds()),
            passkey_options=self._request_options(challenge),
        )
        db.session.commit()
        return started

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
        """A fresh challenge for the passkey (the one issued with the request is replaced)."""
        login = self._open(_mine(public_id, browser_key))
        challenge = secrets.token_bytes(32)
        login.passkey_challenge = challenge
        db.session.commit()
        return self._request_options(challenge)

    def passkey_complete(
        self, public_id: object, browser_key: str | None, credential: object, browser: Browser,
    ) -> LoggedIn:
        """Log in with a passkey on this device: the request taken, the answer checked, the session opened
        and, where the authorize request allows, the site's code issued; one transaction, one commit."""
        if not isinstance(credential, dict):
            _mine(public_id, browser_key)  # an unknown request is unknown, whatever came with it
            raise Refusal("malformed_input", case="passkey_answer")
        login = self._take_for_passkey(public_id, browser_key)
        client = self.clients.by_id(login.client_id)
        if client is None or client.disabled_at is not None:
            raise _failed(login, None, Refusal("login_request_expired", case="client_disabled"), client)
        device = by_credential(credential)
        if device is None:
            raise _failed(login, None, Refusal("credential_unknown"), client)
        try:
            self.devices.verify_assertion(device, credential, login.passkey_challenge)
        except Refusal as refusal:
            raise _failed(login, device, refusal, client) from None
        now = utcnow()
        account = device.account
        login.approved_at = login.completed_at = now
        login.account_id, login.device_id = account.id, device.id
        return self._logged_in(login, client, account, device, browser)

    def _take_for_passkey(self, public_id: object, browser_key: str | None) -> LoginRequest:
        """The browser's request, taken for a passkey's answer in one conditional UPDATE that reads it back;
        when it cannot be taken, why (unknown, used, expired, no challenge)."""
        now = utcnow()
        taken = None
        if isinstance(public_id, str) and len(public_id) <= 64 and isinstance(browser_key, str):
            taken = db.session.scalars(
                update(LoginRequest)
                .where(
                    LoginRequest.public_id == public_id,
                    LoginRequest.browser_hash == digest(browser_key),
                    LoginRequest.consumed_at.is_(None),
                    LoginRequest.approved_at.is_(None),
                    LoginRequest.expires_at > now,
                    LoginRequest.passkey_challenge.is_not(None),
                )
                .values(consumed_at=now)
                .returning(LoginRequest)
                .execution_options(synchronize_session=False)
            ).one_or_none()
        if taken is not None:
            return taken
        login = self._open(_mine(public_id, browser_key))
        if login.passkey_challenge is None:
            raise Refusal("login_not_started")
        raise Refusal("login_request_used")

    # -- the phone's side (no cookie: the token is the capability) -------------------------------------------

    def phone_options(self, token: object) -> dict:
        login = self._open(_by_token(token))
        client = self.clients.by_id(login.client_id)
        challenge = secrets.token_bytes(32)
        first_scan = login.scanned_at is None
        login.challenge = challenge
        login.scanned_at = login.scanned_at or utcnow()
        if first_scan:
            record(Tags.MOBILE_LOGIN_SCANNED, login_request=login.public_id, client=client.client_id)
        db.session.commit()
        return {
            **self._request_options(challenge),
            "client_name": client.name,
            "match_code": login.match_code,
            "site": self.relying_party.name,
        }

    def phone_complete(self, token: object, credential: object) -> dict:
        if not isinstance(credential, dict):
            raise Refusal("malformed_input", case="phone_answer")
        login = self._open(_by_token(token))
        if login.challenge is None:
            raise Refusal("login_not_scanned")
        _consume(login)
        self._approve(login, credential, login.challenge)
        db.session.commit()
        return {"status": "approved"}

    def phone_decline(self, token: object) -> dict:
        """The person said no on the phone ("not me, or a different code"): the request is taken for good in
        one conditional UPDATE, so it can be neither approved afterwards nor declined twice, and the computer's
        page hears that it was declined; audited with it, one commit.

        No proof from the phone is asked: the token is the capability, and anyone who holds it can only stop
        the login, never make it (approving needs the person's bound phone)."""
        login = self._open(_by_token(token))
        now = utcnow()
        taken = tickets.claim(
            login,
            LoginRequest.consumed_at.is_(None),
            LoginRequest.approved_at.is_(None),
            LoginRequest.expires_at > now,
            consumed_at=now,
            failure=DECLINED,
            commit=False,
        )
        if not taken:  # an answer (or a decline) got there first, or time ran out: say which
            db.session.rollback()
            db.session.refresh(login)
            self._open(login)
            raise Refusal("login_request_used", case="qr")
        client = self.clients.by_id(login.client_id)
        record(
            Tags.MOBILE_LOGIN_DECLINED,
            login_request=login.public_id,
            client=client.client_id if client is not None else None,
            scanned=login.scanned_at is not None,
        )
        db.session.commit()
        return {"status": "declined"}

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
        """Check the phone's answer of a consumed request; on success mark it approved (not committed)."""
        client = self.clients.by_id(login.client_id)
        device = by_credential(credential)
        if device is None:
            raise _failed(login, None, Refusal("credential_unknown"), client)
        try:
            self.devices.verify_assertion(device, credential, challenge)
        except Refusal as refusal:
            raise _failed(login, device, refusal, client) from None
        login.approved_at = utcnow()
        login.account_id = device.account_id
        login.device_id = device.id
        record(
            Tags.MOBILE_LOGIN_APPROVED,
            account=device.account,
            login_request=login.public_id,
            client=client.client_id,
            device=device.id,
        )

    def _open_session(self, login: LoginRequest, browser: Browser) -> LoggedIn:
        """A fresh MoCert session (method "mobile") for a request the phone approved, committed with the
        login's success."""
        client = self.clients.by_id(login.client_id)
        account: Account = login.account
        device: Device = login.device
        # Approved a moment ago, but an admin may have stopped the phone or locked the person since.
        db.session.refresh(device)
        db.session.refresh(account)
        try:
            ensure_usable(device, utcnow())
        except Refusal as refusal:
            raise _failed(login, device, refusal, client) from None
        return self._logged_in(login, client, account, device, browser)

    def _logged_in(
        self, login: LoginRequest, client: OidcClient, account: Account, device: Device, browser: Browser
    ) -> LoggedIn:
        """The login's success: audited, a fresh MoCert session (method "mobile") for this browser and, where
        the authorize request allows, the site's code; committed together."""
        record(Tags.MOBILE_LOGIN_SUCCESS, account=account, login_request=login.public_id, client=client.client_id,
               device=device.id)
        params, marked = self._marked(login)
        token, auth_session = sessions.open(
            account, method="mobile", device_id=device.id, lifetime=self.session_lifetime,
            ip=browser.ip, user_agent=browser.user_agent, replacing=browser.held,
        )
        redirect = self._back_to_site(account, params, marked)
        db.session.commit()
        return LoggedIn(account, token, auth_session, redirect)

    def _back_to_site(self, account: Account, params: list[tuple[str, str]], marked: str) -> str:
        """Where the browser goes once logged in: the site with its code where the authorize request allows
        it (issued in this transaction), else ``marked``, the request marked as a fresh login."""
        redirect = self.code_issuer(account, params) if self.code_issuer is not None else None
        return redirect or marked

    def _marked(self, login: LoginRequest) -> tuple[list[tuple[str, str]], str]:
        """The request's parameters, and /authorize with them marked as a fresh login. Made before the
        session is opened, so that /authorize sees a session at least as new as the marker."""
        params = self.authorize_params(login.authorize_query)
        return params, f"/authorize?{urlencode(self.login_marker.mark(params))}"

    def _open(self, login: LoginRequest) -> LoginRequest:
        """The request, if it can still be answered (unused, undeclined, unexpired, its client enabled)."""
        if login.failure == DECLINED:
            raise Refusal("login_request_declined", case="qr")
        if login.consumed_at is not None or login.approved_at is not None:
            raise Refusal("login_request_used", case="qr")
        if login.expires_at <= utcnow():
            raise Refusal("login_request_expired", case="qr")
        client = self.clients.by_id(login.client_id)
        if client is None or client.disabled_at is not None:
            raise Refusal("login_request_expired", case="client_disabled")
        return login


def status(public_id: object, browser_key: str | None) -> dict:
    login = _mine(public_id, browser_key)
    state = login.status(utcnow())
    if state == "failed" and login.failure == DECLINED:
        return {"status": "declined"}  # not a failure: the person stopped it
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


def _consume(login: LoginRequest) -> None:
    if not tickets.consume(login):
        if login.failure == DECLINED:  # re-read by the claim: declined a moment ago
            raise Refusal("login_request_declined", case="qr")
        raise Refusal("login_request_used")


def _failed(login: LoginRequest, device: Device | None, refusal: Refusal, client: OidcClient | None) -> Refusal:
    """Record why a consumed request failed (the computer's page shows it), committed with its consumption;
    returns the refusal to raise. Every caller fails before changing anything but the request itself (a
    device's counter moves only on success; a possibly cloned device is marked and committed already)."""
    tickets.fail(login, refusal.code)
    record(
        Tags.MOBILE_LOGIN_FAILURE,
        account=device.account if device is not None else None,
        login_request=login.public_id,
        client=client.client_id if client is not None else None,
        device=device.id if device is not None else None,
        reason=refusal.code,
    )
    db.session.commit()
    return refusal
