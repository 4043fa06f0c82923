"""A TEST DOUBLE of MoCert's phone-side HTTP API, verifying with python-fido2's Fido2Server.

It stands in for the real endpoints (app/, written elsewhere) so the software phone can be tested over real
HTTP before they exist. It implements only the contract the phone relies on:

- ``POST /api/v1/m/bind/<token>/options`` → ``{"publicKey", "account", "site"}``
- ``POST /api/v1/m/bind/<token>/complete`` ``{"credential", "device_name"}`` → 201 ``{"device"}``
- ``POST /api/v1/m/login/<token>/options`` → ``{"publicKey", "client_name", "match_code"}``
- ``POST /api/v1/m/login/<token>/complete`` ``{"credential"}`` → 200 ``{"status": "approved"}``
- ``POST /api/v1/m/sp-requests/options`` ``{"sp_ticket"}`` → ``{"sp_name", "hint", "op_code", "sign_data" |
  "sign_data_set", "expires_at", "publicKey"}``, the challenge twfido's over the request
- ``POST /api/v1/m/sp-requests/complete`` ``{"sp_ticket", "credential"}`` → 200 ``{"status": "approved"}``
- ``POST /api/v1/m/sp-requests/decline`` ``{"sp_ticket"}`` → 200 ``{"status": "declined"}``

errors as ``{"error", "message"}`` with a 4xx status. It is no model of the real server's security.
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlencode

from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from twfido import challenge, ticket

USER = PublicKeyCredentialUserEntity(id=b"account-42", name="A12****789", display_name="王*明")
SP_STEPS = ("options", "complete", "decline")


class PhoneApiDouble:
    """Serves the phone API on 127.0.0.1 (random port); reach it as ``http://localhost:<port>``."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.double = self
        self.port = self.httpd.server_address[1]
        self.public_url = f"http://localhost:{self.port}"
        self.fido = Fido2Server(
            PublicKeyCredentialRpEntity(id="localhost", name="MoCert"),
            verify_origin=lambda origin: origin == self.public_url,
        )
        self.binding_tokens: set[str] = set()
        self.login_tokens: set[str] = set()
        self.credentials = []  # AttestedCredentialData of bound phones
        self.devices: list[dict] = []
        self.approved: list[str] = []  # login tokens approved
        self.sp_requests: dict[str, dict] = {}  # agencies' requests by sp_ticket_id: what sp_ticket() was given
        self.sp_answers: dict[str, str] = {}  # sp_ticket_id → "approved" or "declined"
        self.requests: list[dict] = []  # {"path", "headers"} of every request
        self._states: dict[tuple[str, str], object] = {}

    def __enter__(self) -> Self:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def bind_url(self, token: str) -> str:
        self.binding_tokens.add(token)
        return f"{self.public_url}/m/bind/{token}"

    def login_url(self, token: str) -> str:
        self.login_tokens.add(token)
        return f"{self.public_url}/m/login/{token}"

    def sp_ticket(
        self,
        op_code: str = "ATH",
        *,
        hint: str = "登入臺灣雲市集",
        sign_data: str | None = None,
        sign_data_set: list[str] | None = None,
        sp_name: str = "臺灣雲市集",
    ) -> str:
        """An agency's request for the bound phones, and its ``sp_ticket`` (as getSpTicket answers it)."""
        fields = {
            "transaction_id": str(uuid.uuid4()),
            "op_code": op_code,
            "op_mode": "I-SCAN",
            "sp_service_id": "SP0001",
            "sp_ticket_id": str(uuid.uuid4()),
            "sp_name": sp_name,
            "hint": hint,
            "expiration_time": (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y%m%d%H%M%S"),
            "hashed_id_num": ticket.hashed_id_num("A123456789"),
            "version": "1.0",
        }
        made = ticket.encode(fields)
        self.sp_requests[fields["sp_ticket_id"]] = {
            "ticket": made, "fields": fields, "sign_data": sign_data, "sign_data_set": sign_data_set
        }
        return made

    def sp_link(self, sp_ticket: str, rtn_url: str = "https://market.example.tw/back", rtn_val: str = "s-1") -> str:
        """The MWEB2APP link an agency sends the person's mobile browser to."""
        return f"{self.public_url}/m/sp?{urlencode({'sp_ticket': sp_ticket, 'rtn_url': rtn_url, 'rtn_val': rtn_val})}"

    # -- the endpoints: (status, body) ----------------------------------------------------------------------

    def handle(self, kind: str, token: str, step: str, body: dict) -> tuple[int, dict]:
        tokens = self.binding_tokens if kind == "bind" else self.login_tokens
        if token not in tokens:
            return 404, {"error": f"{kind}_not_found", "message": "This link is unknown or has expired."}
        if step == "options":
            return getattr(self, f"_{kind}_options")(token)
        state = self._states.pop((kind, token), None)
        if state is None:
            return 409, {"error": "no_options", "message": "Fetch the options first."}
        try:
            return getattr(self, f"_{kind}_complete")(token, state, body)
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"error": "verification_failed", "message": f"The phone's answer was refused: {exc}"}

    def _bind_options(self, token: str) -> tuple[int, dict]:
        options, state = self.fido.register_begin(
            USER,
            credentials=self.credentials,
            resident_key_requirement="required",
            user_verification="required",
            authenticator_attachment="platform",
        )
        self._states[("bind", token)] = state
        account = {"name_masked": USER.display_name, "national_id_masked": USER.name}
        return 200, {"publicKey": dict(options)["publicKey"], "account": account, "site": "MoCert (test double)"}

    def _bind_complete(self, token: str, state, body: dict) -> tuple[int, dict]:
        auth_data = self.fido.register_complete(state, body["credential"])
        self.credentials.append(auth_data.credential_data)
        self.binding_tokens.discard(token)
        now = datetime.now(UTC)
        device = {
            "id": str(uuid.uuid4()),
            "name": body["device_name"],
            "bound_at": now.isoformat(timespec="seconds"),
            "expires_at": (now + timedelta(days=365)).isoformat(timespec="seconds"),
            "status": "active",
        }
        self.devices.append(device)
        return 201, {"device": device}

    def _login_options(self, token: str) -> tuple[int, dict]:
        options, state = self.fido.authenticate_begin(self.credentials, user_verification="required")
        self._states[("login", token)] = state
        return 200, {"publicKey": dict(options)["publicKey"], "client_name": "Demo Bank", "match_code": "42"}

    def _login_complete(self, token: str, state, body: dict) -> tuple[int, dict]:
        self.fido.authenticate_complete(state, self.credentials, body["credential"])
        self.login_tokens.discard(token)
        self.approved.append(token)
        return 200, {"status": "approved"}


    def handle_sp(self, step: str, body: dict) -> tuple[int, dict]:
        try:
            ticket_id = ticket.decode(body.get("sp_ticket"))["sp_ticket_id"]
        except ticket.TicketError as exc:
            return 400, {"error": "sp_ticket_invalid", "message": f"This is not an sp_ticket: {exc}"}
        request = self.sp_requests.get(ticket_id)
        if request is None or request["ticket"] != body["sp_ticket"]:
            return 404, {"error": "sp_request_not_found", "message": "This request is unknown or has expired."}
        if ticket_id in self.sp_answers:
            return 409, {"error": "sp_request_answered", "message": "This request has been answered already."}
        if step == "options":
            return self._sp_options(ticket_id, request)
        if step == "decline":
            self.sp_answers[ticket_id] = "declined"
            return 200, {"status": "declined"}
        state = self._states.pop(("sp", ticket_id), None)
        if state is None:
            return 409, {"error": "no_options", "message": "Fetch the options first."}
        try:
            self.fido.authenticate_complete(state, self.credentials, body["credential"])
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"error": "verification_failed", "message": f"The phone's answer was refused: {exc}"}
        self.sp_answers[ticket_id] = "approved"
        return 200, {"status": "approved"}

    def _sp_options(self, ticket_id: str, request: dict) -> tuple[int, dict]:
        fields, sign_data_set = request["fields"], request["sign_data_set"]
        signed = challenge.challenge_input(
            hint=fields["hint"],
            op_code=fields["op_code"],
            sign_data=challenge.batch_digests(sign_data_set) if sign_data_set is not None else request["sign_data"],
            sp_service_id=fields["sp_service_id"],
            sp_ticket_id=ticket_id,
            transaction_id=fields["transaction_id"],
        )
        options, state = self.fido.authenticate_begin(
            self.credentials, user_verification="required", challenge=challenge.challenge(signed)
        )
        self._states[("sp", ticket_id)] = state
        answer = {
            "sp_name": fields["sp_name"],
            "hint": fields["hint"],
            "op_code": fields["op_code"],
            "expires_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="seconds"),
            "publicKey": dict(options)["publicKey"],
        }
        if fields["op_code"] == "SIGN":
            answer["sign_data"] = request["sign_data"]
        if fields["op_code"] == "BATSIGN":
            answer["sign_data_set"] = sign_data_set
        return 200, answer


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        double: PhoneApiDouble = self.server.double
        double.requests.append({"path": self.path, "headers": dict(self.headers)})
        parts = self.path.strip("/").split("/")
        endpoint = None
        if parts[:3] == ["api", "v1", "m"]:
            if len(parts) == 5 and parts[3] == "sp-requests" and parts[4] in SP_STEPS:
                endpoint = functools.partial(double.handle_sp, parts[4])
            elif len(parts) == 6 and parts[3] in ("bind", "login") and parts[5] in ("options", "complete"):
                endpoint = functools.partial(double.handle, parts[3], parts[4], parts[5])
        if endpoint is None:
            return self._answer(404, {"error": "not_found", "message": f"No such endpoint: {self.path}"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict) or self.headers.get("Content-Type") != "application/json":
            return self._answer(400, {"error": "bad_request", "message": "Send a JSON object."})
        self._answer(*endpoint(body))

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        # A cookie the phone must not send back: the phone-side API is cookieless.
        self.send_header("Set-Cookie", "session=double-session; Path=/")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args) -> None:  # keep the test output quiet
        pass
