"""What the phone-side MoCert pages do: fetch options, ask the phone's browser, post the credential.

The server's phone-side API (JSON; errors are ``{"error": code, "message": text}`` with a 4xx status):

- ``POST <public URL>/api/v1/m/bind/<token>/options``  ``{}`` → ``{"publicKey", "account", "site"}``
- ``POST <public URL>/api/v1/m/bind/<token>/complete`` ``{"credential", "device_name"}`` → 201 ``{"device"}``
- ``POST <public URL>/api/v1/m/login/<token>/options`` ``{}`` → ``{"publicKey", "client_name", "match_code"}``
- ``POST <public URL>/api/v1/m/login/<token>/complete`` ``{"credential"}`` → 200

for the links ``<public URL>/m/bind/<token>`` and ``<public URL>/m/login/<token>`` that the QR codes hold.
The phone has no session with the server: no cookies, no CSRF token; the token in the URL is the capability.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests

from .browser import PhoneBrowser, origin_of
from .errors import LinkError, ServerError

DEFAULT_TIMEOUT = 10.0  # seconds, for connecting and for each read

_LINK = re.compile(r"^(?P<base>[^?#]*?)/m/(?P<kind>bind|login)/(?P<token>[A-Za-z0-9._~%-]+)/?$")


@dataclass(frozen=True)
class PhoneLink:
    """A binding or login URL: ``<base_url>/m/<kind>/<token>``."""

    kind: str  # "bind" or "login"
    base_url: str  # the server's public URL, without a trailing slash
    token: str
    origin: str

    @classmethod
    def parse(cls, url: str, kind: str | None = None) -> PhoneLink:
        """Parse a binding or login URL (of ``kind``, if given).

        Raises ``LinkError`` when it is not one, or is of the other kind; ``SecurityError`` when its origin
        is not secure (http other than on localhost).
        """
        url = url.strip()
        match = _LINK.match(url)
        if not match or not url.lower().startswith(("https://", "http://")):
            raise LinkError(f"not a MoCert binding or login URL (…/m/bind/<token> or …/m/login/<token>): {url!r}")
        if kind is not None and match["kind"] != kind:
            other = {"bind": "a binding", "login": "a login"}
            raise LinkError(f"{url} is {other[match['kind']]} URL, not {other[kind]} URL")
        origin = origin_of(url)
        return cls(kind=match["kind"], base_url=match["base"], token=match["token"], origin=origin)

    def api_url(self, step: str) -> str:
        return f"{self.base_url}/api/v1/m/{self.kind}/{self.token}/{step}"


@dataclass(frozen=True)
class BindingOffer:
    """The answer to a binding's options call."""

    link: PhoneLink
    public_key: dict  # creation options, WebAuthn JSON encoding
    account: dict  # {"name_masked", "national_id_masked"}
    site: str


@dataclass(frozen=True)
class LoginRequest:
    """The answer to a login's options call: what the phone shows before its user approves."""

    link: PhoneLink
    public_key: dict  # request options, WebAuthn JSON encoding
    client_name: str
    match_code: str
    site: str | None


class PhoneClient:
    """The phone's side of binding and login, over HTTP with ``requests`` (no cookies, no redirects)."""

    def __init__(
        self, browser: PhoneBrowser, *, session: requests.Session | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.browser = browser
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # accept and send none

    # -- binding -----------------------------------------------------------------------------------------

    def binding_offer(self, url: str | PhoneLink) -> BindingOffer:
        """Fetch a binding's options. Raises ``LinkError``, ``SecurityError`` or ``ServerError``."""
        link = url if isinstance(url, PhoneLink) else PhoneLink.parse(url, "bind")
        answer = self._post(link.api_url("options"), {}, expected_status=200)
        return BindingOffer(
            link=link,
            public_key=_field(answer, "publicKey", dict),
            account=_field(answer, "account", dict),
            site=_field(answer, "site", str),
        )

    def bind(self, url: str | PhoneLink | BindingOffer, device_name: str) -> dict:
        """Bind this phone: fetch the options (unless given an offer), create a credential, complete.

        Returns the server's ``device`` object. Raises ``LinkError``, ``SecurityError``, ``ServerError``,
        or a ``WebAuthnError`` from the browser (``InvalidStateError`` when this phone is already bound).
        """
        offer = url if isinstance(url, BindingOffer) else self.binding_offer(url)
        credential = self.browser.create(offer.public_key, origin=offer.link.origin)
        answer = self._post(
            offer.link.api_url("complete"), {"credential": credential, "device_name": device_name}, expected_status=201
        )
        return _field(answer, "device", dict)

    # -- login -------------------------------------------------------------------------------------------

    def login_request(self, url: str | PhoneLink) -> LoginRequest:
        """Fetch a login's options. Raises ``LinkError``, ``SecurityError`` or ``ServerError``."""
        link = url if isinstance(url, PhoneLink) else PhoneLink.parse(url, "login")
        answer = self._post(link.api_url("options"), {}, expected_status=200)
        return LoginRequest(
            link=link,
            public_key=_field(answer, "publicKey", dict),
            client_name=_field(answer, "client_name", str),
            match_code=str(_field(answer, "match_code", (str, int))),
            site=answer.get("site") if isinstance(answer.get("site"), str) else None,
        )

    def approve(self, request: LoginRequest) -> dict:
        """Sign the login's challenge and complete it; returns the server's JSON answer.

        Raises ``ServerError``, or ``NotAllowedError`` when no credential on this phone is allowed.
        """
        credential = self.browser.get(request.public_key, origin=request.link.origin)
        return self._post(request.link.api_url("complete"), {"credential": credential}, expected_status=200)

    def login(self, url: str | PhoneLink, confirm: Callable[[LoginRequest], bool] = lambda _: True) -> dict | None:
        """Fetch a login, ask ``confirm`` (the phone's user), and approve it; None when not confirmed."""
        request = self.login_request(url)
        return self.approve(request) if confirm(request) else None

    # -- HTTP --------------------------------------------------------------------------------------------

    def _post(self, url: str, body: dict, *, expected_status: int) -> dict:
        try:
            response = self.session.post(url, json=body, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise ServerError(f"cannot reach {url}: {exc}", status=None, code="unreachable") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400:
            if isinstance(answer, dict) and isinstance(answer.get("message"), str):
                raise ServerError(answer["message"], status=response.status_code, code=str(answer.get("error", "")))
            raise ServerError(
                f"the server answered {response.status_code} {response.reason} to {url}",
                status=response.status_code,
                code="http_error",
            )
        if response.status_code != expected_status:
            raise ServerError(
                f"the server answered {response.status_code} to {url}, where the contract says {expected_status}",
                status=response.status_code,
                code="unexpected_status",
            )
        if not isinstance(answer, dict):
            raise ServerError(
                f"the server's answer to {url} is not a JSON object", status=response.status_code, code="bad_response"
            )
        return answer


def _field(answer: dict, key: str, kind: type | tuple[type, ...]) -> Any:
    value = answer.get(key)
    if not isinstance(value, kind):
        raise ServerError(f"the server's answer has no valid {key!r}", status=None, code="bad_response")
    return value
