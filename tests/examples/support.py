"""Serving the example marketplace beside MoCert, and a software phone bound to the person: for the tests
here and the browser test of the marketplace's login with 行動自然人憑證 (tests/browser)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from werkzeug.serving import make_server

from app.extensions import db
from app.models import Account, utcnow
from examples.marketplace.app import create_app as create_marketplace
from examples.marketplace.registration import register, register_agency
from tests.app.oidc.support import Browser
from webauthn.phone import PhoneBrowser, PhoneClient, SoftwareAuthenticator


def serve(wsgi_app):
    server = make_server("localhost", 0, wsgi_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def flask_cli(app):
    """MoCert's real CLI (``flask clients|agencies ...``) as the registration step runs it."""

    def run(args: list[str]) -> tuple[int, str]:
        result = app.test_cli_runner().invoke(args=args)
        return result.exit_code, result.output

    return run


@dataclass
class Marketplace:
    url: str
    app: object
    instance: Path
    server: object

    def stop(self) -> None:
        self.server.shutdown()


def serve_marketplace(mocert_url: str, mocert_cli, instance: Path, **overrides) -> Marketplace:
    """The marketplace on its own port, registered at MoCert (client and agency) by the registration step."""
    holder = {}
    server = serve(lambda environ, start_response: holder["app"](environ, start_response))
    url = f"http://localhost:{server.server_port}"
    register(mocert_cli, public_url=url, client_file=instance / "marketplace-client.json")
    register_agency(mocert_cli, public_url=url, agency_file=instance / "marketplace-agency.json")
    holder["app"] = create_marketplace({
        "INSTANCE_DIR": instance,
        "MOCERT_URL": mocert_url,
        "PUBLIC_URL": url,
        "CLIENT_ID": None,
        "CLIENT_SECRET": None,
        "CLIENT_FILE": instance / "marketplace-client.json",
        "SP_SERVICE_ID": None,
        "API_KEY": None,
        "AGENCY_FILE": instance / "marketplace-agency.json",
        "MOCERT_RP_ID": None,
        "SECRET_KEY": None,
        "DATABASE": instance / "marketplace.db",
        **overrides,
    })
    return Marketplace(url, holder["app"], instance, server)


def bind_software_phone(app, issuer: str, pki, account_id: int, name: str = "我的手機") -> PhoneClient:
    """The reference software phone, bound to the account through the real binding flow (card login on the
    computer, the binding's link on the phone), as tests/app/conftest.py's ``phone`` fixture binds it."""
    with app.app_context():
        db.session.get(Account, account_id).email_verified_at = utcnow()
        db.session.commit()
    computer = Browser(issuer, pki)
    computer.card_login()
    binding = computer.http.post(
        f"{issuer}/api/v1/bindings", json={}, headers={"X-CSRF-Token": computer.csrf()}, timeout=10
    )
    assert binding.status_code == 201, binding.text
    phone = PhoneClient(PhoneBrowser(SoftwareAuthenticator(None)))
    phone.bind(binding.json()["url"], name)
    return phone
