"""Test helpers: the test configuration, the API client the pages are, a card that answers MakeSignature as
the cross-platform component does, and the card login and registration flows over the API.

Test modules import helpers from here, tests/factories.py and the support modules beside them; never from a
conftest.py or another test module.
"""

from __future__ import annotations

import base64
import functools
import os
import socket
import threading
from pathlib import Path

import pytest

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7

from werkzeug.serving import make_server

from config import TestingConfig
from iccard.demo_pki import DemoCard, DemoPKI


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listened on a moment ago (closed again: the caller binds it, or
    counts on nothing listening there)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def missing(reason: str) -> None:
    """A part of the machine a test needs is missing: skip, or fail under CI (where nothing may skip)."""
    if os.environ.get("CI"):
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


class DemoPKIKeysKept(DemoPKI):
    """The demo PKI, parsing each card key file once per run: loading an RSA key checks it (50 ms), and the
    suite signs with the same few cards over a thousand times. Keyed by the file's bytes, so a card issued
    anew (a replacement card) is read afresh."""

    def card_key(self, card: DemoCard):
        return _parsed_key((self.directory / "cards" / f"{card.card_number}.key.pem").read_bytes())

    def card_encryption_key(self, card: DemoCard):
        return _parsed_key((self.directory / "cards" / f"{card.card_number}.enc.key.pem").read_bytes())


def demo_pki_of_before_encryption_certificates(directory: Path) -> DemoPKI:
    """A demo PKI as ``init-demo`` made it before cards had encryption certificates: no ``.enc`` files, no
    encryption serials in the manifest, only the signing certificate of the revoked card on the CRL."""
    import json

    pki = DemoPKI.create(directory, "http://127.0.0.1:9")
    manifest = json.loads((directory / "manifest.json").read_text())
    for card in manifest["cards"]:
        del card["encryption_serial"]
        (directory / "cards" / f"{card['card_number']}.enc.pem").unlink()
        (directory / "cards" / f"{card['card_number']}.enc.key.pem").unlink()
    signing_serials = {card["certificate_serial"] for card in manifest["cards"]}
    manifest["revoked"] = [entry for entry in manifest["revoked"] if entry["serial"] in signing_serials]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return DemoPKI(pki.directory)


@functools.lru_cache(maxsize=64)
def _parsed_key(pem: bytes):
    return serialization.load_pem_private_key(pem, None)


def make_config(instance_dir: Path, database_url: str, **overrides) -> TestingConfig:
    """The testing configuration on ``database_url``, with the demo PKI under ``instance_dir``."""
    config = TestingConfig()
    config.INSTANCE_DIR = instance_dir
    config.SQLALCHEMY_DATABASE_URI = database_url
    config.DEMO_PKI_DIR = instance_dir / "demo-pki"
    config.CARD_TRUST_ANCHORS = (str(config.DEMO_PKI_DIR / "root.pem"),)
    config.CARD_INTERMEDIATES = (str(config.DEMO_PKI_DIR / "issuer.pem"),)
    config.MOBILE_CA_CERT = str(config.DEMO_PKI_DIR / "mobile-ca.pem")
    config.MOBILE_CA_KEY = str(config.DEMO_PKI_DIR / "mobile-ca.key.pem")
    config.PUBLIC_URL = "http://localhost"
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def migrate(config) -> None:
    """Bring the configuration's database to the latest migration (the real migrations, on the real database)."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    application = create_app(config)
    with application.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()


class ApiClient:
    """The test client, sending the CSRF header the way the pages do."""

    def __init__(self, client) -> None:
        self.raw = client

    def csrf(self) -> str:
        return self.raw.get("/api/v1/csrf").get_json()["csrf_token"]

    def get(self, path, **kwargs):
        return self.raw.get(path, **kwargs)

    def post(self, path, json=None, **kwargs):
        headers = {"X-CSRF-Token": self.csrf(), **kwargs.pop("headers", {})}
        return self.raw.post(path, json=json, headers=headers, **kwargs)


class RequestRecorder:
    """An HTTP server on 127.0.0.1 that answers 404 to everything and remembers each request: the address a
    stranger's certificate names, to show that nothing was fetched from it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.redirect_to: str | None = None  # answer 302 to this address instead
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _wsgi(self, environ, start_response):
        self.requests.append(f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO', '')}")
        if self.redirect_to:
            start_response("302 Found", [("Location", self.redirect_to), ("Content-Length", "0")])
            return [b""]
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]


_HASHES = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}


def make_signature(pki: DemoPKI, card: DemoCard, tbs: str, signature_type: str = "PKCS7", hash_algorithm: str = "SHA256") -> dict:
    """The fields of the component's ``MakeSignature`` answer, signed with the demo card's key."""
    key, cert = pki.card_key(card), pki.card_certificate(card)
    data = tbs.encode("utf-8")
    algorithm = _HASHES[hash_algorithm]()
    if signature_type == "PKCS7":
        # Attached content, signed attributes, signer certificate inside: what HiPKI returns.
        signature = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(data)
            .add_signer(cert, key, algorithm)
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )
    else:
        signature = key.sign(data, padding.PKCS1v15(), algorithm)
    return {
        "func": "sign",
        "ret_code": 0,
        "last_error": 0,
        "signatureType": signature_type,
        "signature": base64.b64encode(signature).decode(),
        "certb64": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
        "cardSN": card.card_number,
    }


def card_of(pki: DemoPKI, national_id: str, status: str = "valid") -> DemoCard:
    return next(c for c in pki.cards if c.national_id == national_id and c.status == status)


def begin_card_login(client) -> dict:
    response = client.post("/api/v1/card-login/begin")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def card_login(client, pki: DemoPKI, card: DemoCard, signature_type: str = "PKCS7"):
    """Begin a card login, sign its challenge with the card as the component would, complete it."""
    begin = begin_card_login(client)
    signed = make_signature(pki, card, begin["tbs"], signature_type, begin["hashAlgorithm"])
    return client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})


REGISTRATION = {"national_id": "A123456789", "email": "wang@example.com", "phone": "0912-345-678"}


def register(client, pki: DemoPKI, national_id: str = "A123456789", status: str = "valid", **fields):
    """Card login with an unknown card, then register; returns the registration response."""
    response = card_login(client, pki, card_of(pki, national_id, status))
    assert response.get_json()["status"] == "registration_required", response.get_json()
    return client.post("/api/v1/account/register", json={**REGISTRATION, "national_id": national_id, **fields})


def browser_card_login(page, base_url: str, pki: DemoPKI, national_id: str, status: str = "valid") -> dict:
    """A card login made with the browser page's own cookies, signed as the component would (the popup
    itself is tested with the agent)."""
    csrf = page.request.get(f"{base_url}/api/v1/csrf").json()["csrf_token"]
    begin = page.request.post(f"{base_url}/api/v1/card-login/begin", headers={"X-CSRF-Token": csrf}).json()
    signed = make_signature(pki, card_of(pki, national_id, status), begin["tbs"])
    response = page.request.post(
        f"{base_url}/api/v1/card-login/complete",
        data={"login_id": begin["login_id"], **signed},
        headers={"X-CSRF-Token": csrf},
    )
    return response.json()


def client_data_with(monkeypatch, **members):
    """Make the software phone's browser add ``members`` to the clientDataJSON it has the authenticator sign."""
    import json

    from webauthn.phone import browser

    plain = browser._client_data

    def with_members(kind, challenge, origin):
        return json.dumps({**json.loads(plain(kind, challenge, origin)), **members}, separators=(",", ":")).encode()

    monkeypatch.setattr(browser, "_client_data", with_members)
