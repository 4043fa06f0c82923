"""A TEST DOUBLE of MoCert's phone-side HTTP API, verifying with python-fido2's Fido2Server.

It stands in for the real endpoints (app/, written elsewhere) so the software phone can be tested over real
HTTP before they exist. It implements only the contract the phone relies on:

- ``POST /api/v1/m/bind/<token>/options`` → ``{"publicKey", "account", "site"}``
- ``POST /api/v1/m/bind/<token>/complete`` ``{"credential", "device_name"}`` → 201 ``{"device"}``
- ``POST /api/v1/m/login/<token>/options`` → ``{"publicKey", "client_name", "match_code"}``
- ``POST /api/v1/m/login/<token>/complete`` ``{"credential"}`` → 200 ``{"status": "approved"}``

errors as ``{"error", "message"}`` with a 4xx status. It is no model of the real server's security.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

USER = PublicKeyCredentialUserEntity(id=b"account-42", name="A12****789", display_name="王*明")


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

    # -- the four endpoints: (status, body) -----------------------------------------------------------------

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


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        double: PhoneApiDouble = self.server.double
        double.requests.append({"path": self.path, "headers": dict(self.headers)})
        parts = self.path.strip("/").split("/")
        if len(parts) != 6 or parts[:3] != ["api", "v1", "m"] or parts[3] not in ("bind", "login"):
            return self._answer(404, {"error": "not_found", "message": f"No such endpoint: {self.path}"})
        if parts[5] not in ("options", "complete"):
            return self._answer(404, {"error": "not_found", "message": f"No such endpoint: {self.path}"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict) or self.headers.get("Content-Type") != "application/json":
            return self._answer(400, {"error": "bad_request", "message": "Send a JSON object."})
        self._answer(*double.handle(parts[3], parts[4], parts[5], body))

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
