"""What the phone-side MoCert pages do: fetch options, ask the phone's browser, post the credential.

The server's phone-side API (JSON; errors are ``{"error": code, "message": text}`` with a 4xx status):

- ``POST <public URL>/api/v1/m/bind/<token>/options``  ``{}`` → ``{"publicKey", "account", "site"}``
- ``POST <public URL>/api/v1/m/bind/<token>/complete`` ``{"credential", "device_name"}`` → 201 ``{"device"}``
- ``POST <public URL>/api/v1/m/login/<token>/options`` ``{}`` → ``{"publicKey", "client_name", "match_code"}``
- ``POST <public URL>/api/v1/m/login/<token>/complete`` ``{"credential"}`` → 200

for the links ``<public URL>/m/bind/<token>`` and ``<public URL>/m/login/<token>`` that the QR codes hold; and
for an agency's request (TW FidO, issue 13), whose ``sp_ticket`` the agency shows as a QR code (the ticket
itself, not a URL), pushes to the person's phones, or puts in the link ``<public URL>/m/sp?sp_ticket=…&rtn_url=…
&rtn_val=…`` it sends the person's mobile browser to (MWEB2APP):

- ``POST <public URL>/api/v1/m/sp-requests/options``  ``{"sp_ticket"}`` → 200 ``{"sp_name", "hint", "op_code"
  (ATH, SIGN or BATSIGN), "sign_data" (SIGN), "sign_data_set" (BATSIGN), "expires_at", "publicKey"}``
- ``POST <public URL>/api/v1/m/sp-requests/complete`` ``{"sp_ticket", "credential"}`` → 200 ``{"status": "approved"}``
- ``POST <public URL>/api/v1/m/sp-requests/decline``  ``{"sp_ticket"}`` → 200 ``{"status": "declined"}``

The phone has no session with the server: no cookies, no CSRF token; the token in the URL, or the ticket, is
the capability. Before it asks anything about a ticket the phone checks the ticket's digest
(:mod:`twfido.ticket`), so that a cut or mistyped one is told apart from an unknown one; before it shows a
request it checks that the challenge is :mod:`twfido.challenge`'s over what it shows, so that what the person
approves is what the agency can verify, and nothing else.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import requests

from twfido import challenge as twfido_challenge
from twfido import ticket as twfido_ticket

from .browser import PhoneBrowser, origin_of
from .encoding import b64url_decode
from .errors import LinkError, ServerError, SpTicketError

DEFAULT_TIMEOUT = 10.0  # seconds, for connecting and for each read

_LINK = re.compile(r"^(?P<base>[^?#]*?)/m/(?P<kind>bind|login)/(?P<token>[A-Za-z0-9._~%-]+)/?$")
_SP_LINK_PATH = re.compile(r"^(?P<base>.*?)/m/sp/?$")
OP_CODES = ("ATH", "SIGN", "BATSIGN")  # what a phone is asked to do: log in, sign one text, sign several


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


@dataclass(frozen=True)
class SpTicket:
    """An agency's request as it reaches the phone: its ``sp_ticket``, bare (a QR code, a push) or in the
    MWEB2APP link ``<base_url>/m/sp?sp_ticket=…&rtn_url=…&rtn_val=…``."""

    ticket: str
    fields: dict  # the ticket's JSON (twfido.ticket): sp_ticket_id, transaction_id, sp_service_id, op_code, …
    base_url: str | None = None  # the server's public URL, when the ticket came in a link
    return_url: str | None = None  # rtn_url: the agency's page the person's browser goes back to afterwards
    return_value: str | None = None  # rtn_val: the agency's value for that page

    @classmethod
    def parse(cls, text: str) -> SpTicket:
        """A bare ``sp_ticket``, or an MWEB2APP link carrying one.

        Raises ``SpTicketError`` when the ticket is cut, mistyped or altered, ``LinkError`` when the text is a
        URL but not such a link, ``SecurityError`` when the link's origin is not secure.
        """
        text = text.strip()
        if "://" not in text:
            return cls(ticket=text, fields=_decode_ticket(text))
        try:
            parts = urlsplit(text)
        except ValueError:
            parts = None
        match = parts and _SP_LINK_PATH.match(parts.path)
        if not match or parts.scheme.lower() not in ("https", "http") or not parts.netloc or parts.fragment:
            raise LinkError(f"not a MoCert agency request link (…/m/sp?sp_ticket=…): {text!r}")
        query = parse_qs(parts.query, keep_blank_values=True)
        if any(len(values) > 1 for name, values in query.items() if name in ("sp_ticket", "rtn_url", "rtn_val")):
            raise LinkError(f"the link gives sp_ticket, rtn_url or rtn_val more than once: {text!r}")
        if not query.get("sp_ticket"):
            raise LinkError(f"the link carries no sp_ticket: {text!r}")
        base_url = _server_url(urlunsplit((parts.scheme, parts.netloc, match["base"], "", "")))
        ticket = query["sp_ticket"][0]
        return cls(
            ticket=ticket,
            fields=_decode_ticket(ticket),
            base_url=base_url,
            return_url=query.get("rtn_url", [None])[0],
            return_value=query.get("rtn_val", [None])[0],
        )


@dataclass(frozen=True)
class SpRequest:
    """The answer to an agency request's options call: what the phone shows before its user approves."""

    ticket: SpTicket
    base_url: str  # the server's public URL the request was fetched from
    origin: str  # the origin of the phone's page (``<base_url>/m/sp``), for WebAuthn
    sp_name: str  # the agency, as the server registered it
    hint: str  # the agency's words to the person
    op_code: str  # one of OP_CODES
    sign_data: str | None  # SIGN: the text signed
    sign_data_set: tuple[str, ...] | None  # BATSIGN: the texts signed, in order
    expires_at: datetime
    public_key: dict  # request options, WebAuthn JSON encoding

    def api_url(self, step: str) -> str:
        return _sp_api_url(self.base_url, step)


class PhoneClient:
    """The phone's side of binding, login and agencies' requests, over HTTP with ``requests`` (no cookies, no
    redirects)."""

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

    def decline(self, request: LoginRequest) -> dict:
        """Say no ("not me, or a different code"): the server ends the login; returns its JSON answer."""
        return self._post(request.link.api_url("decline"), {}, expected_status=200)

    def login(self, url: str | PhoneLink, confirm: Callable[[LoginRequest], bool] = lambda _: True) -> dict | None:
        """Fetch a login, ask ``confirm`` (the phone's user), and approve it; None when not confirmed."""
        request = self.login_request(url)
        return self.approve(request) if confirm(request) else None

    # -- agencies' requests (TW FidO) ---------------------------------------------------------------------

    def sp_request(self, server_url: str | None, sp_ticket: str | SpTicket) -> SpRequest:
        """Fetch an agency's request: ``sp_ticket`` is the ticket or the MWEB2APP link carrying it;
        ``server_url`` the server's public URL, None for the link's (given, it is used even for a link).

        The ticket is checked before anything is sent. Raises ``SpTicketError`` (cut, mistyped or altered),
        ``LinkError`` (not a link; a bare ticket and no server), ``SecurityError`` (the server's origin is not
        secure), ``ServerError`` (the server's error; ``challenge_mismatch`` when it asks this phone to sign
        anything but what it shows).
        """
        ticket = sp_ticket if isinstance(sp_ticket, SpTicket) else SpTicket.parse(sp_ticket)
        base_url = _server_url(server_url) if server_url else ticket.base_url
        if base_url is None:
            raise LinkError("a bare sp_ticket does not say which server it is for: give the server's public URL")
        origin = origin_of(base_url)
        answer = self._post(_sp_api_url(base_url, "options"), {"sp_ticket": ticket.ticket}, expected_status=200)
        op_code = _field(answer, "op_code", str)
        if op_code not in OP_CODES:
            raise ServerError(
                f"the server asks for {op_code!r}, which this phone does not do", status=None, code="bad_response"
            )
        sign_data_set = None
        if op_code == "BATSIGN":
            sign_data_set = tuple(_field(answer, "sign_data_set", list))
            if not sign_data_set or not all(isinstance(item, str) for item in sign_data_set):
                raise ServerError("the server's answer has no valid 'sign_data_set'", status=None, code="bad_response")
        request = SpRequest(
            ticket=ticket,
            base_url=base_url,
            origin=origin,
            sp_name=_field(answer, "sp_name", str),
            hint=_field(answer, "hint", (str, type(None))) or "",
            op_code=op_code,
            sign_data=_field(answer, "sign_data", str) if op_code == "SIGN" else None,
            sign_data_set=sign_data_set,
            expires_at=_instant(_field(answer, "expires_at", str)),
            public_key=_field(answer, "publicKey", dict),
        )
        _check_challenge(request)
        return request

    def approve_sp(self, request: SpRequest) -> dict:
        """Sign the request's challenge and complete it; returns the server's JSON answer.

        Raises ``ServerError``, or ``NotAllowedError`` when no credential on this phone is allowed.
        """
        credential = self.browser.get(request.public_key, origin=request.origin)
        body = {"sp_ticket": request.ticket.ticket, "credential": credential}
        return self._post(request.api_url("complete"), body, expected_status=200)

    def decline_sp(self, request: SpRequest) -> dict:
        """Tell the agency no (what it learns as APP_USER_CANCEL); returns the server's JSON answer."""
        return self._post(request.api_url("decline"), {"sp_ticket": request.ticket.ticket}, expected_status=200)

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


def _decode_ticket(text: str) -> dict:
    try:
        return twfido_ticket.decode(text)
    except twfido_ticket.TicketError as exc:
        raise SpTicketError(f"not a well-formed sp_ticket ({exc}); was it cut or mistyped?") from exc


def _server_url(url: str) -> str:
    """``url`` (the server's public URL) without a trailing slash; raises ``LinkError``, ``SecurityError``."""
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise LinkError(f"not a server's public URL (https://host[/path]): {url!r}") from None
    if parts.scheme.lower() not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise LinkError(f"not a server's public URL (https://host[/path]): {url!r}")
    origin_of(url)
    return url


def _sp_api_url(base_url: str, step: str) -> str:
    return f"{base_url}/api/v1/m/sp-requests/{step}"


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ServerError(
            f"the server's expires_at is not ISO 8601: {text!r}", status=None, code="bad_response"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_challenge(request: SpRequest) -> None:
    """Refuse a request whose challenge is not twfido's over what the phone shows and the ticket names.

    The person approves what the phone shows; the agency verifies the signature against what it sent. A
    server whose challenge covered anything else would have the person sign something they never saw.
    """
    fields = request.ticket.fields
    sign_data = request.sign_data
    if request.sign_data_set is not None:
        sign_data = twfido_challenge.batch_digests(request.sign_data_set)
    text = twfido_challenge.challenge_input(
        hint=request.hint,
        op_code=request.op_code,
        sign_data=sign_data,
        sp_service_id=fields.get("sp_service_id"),
        sp_ticket_id=fields["sp_ticket_id"],
        transaction_id=fields.get("transaction_id"),
    )
    try:
        challenge = b64url_decode(request.public_key.get("challenge"))
    except ValueError:
        raise ServerError(
            "the server's publicKey has no valid challenge", status=None, code="bad_response"
        ) from None
    if not hmac.compare_digest(challenge, twfido_challenge.challenge(text)):
        raise ServerError(
            "the server asks this phone to sign something other than the request it shows; refused",
            status=None,
            code="challenge_mismatch",
        )
