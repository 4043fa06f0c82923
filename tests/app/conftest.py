"""The provider served over real HTTP, relying parties registered by the CLI, a person with a card, their
phones, and agencies of the TW FidO API: the ground of tests/app/oidc, tests/app/admin and the agencies' tests
(helpers in tests/app/oidc/support.py and tests/app/agency_client.py)."""

from __future__ import annotations

import threading

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from app import wiring
from app.extensions import db
from app.models import Account, utcnow
from app.oidc.keys import ensure_keys
from tests.app.agency_client import AgencyClient
from tests.app.oidc.support import Browser, Computer
from tests.factories import make_account, make_agency, make_oidc_client
from tests.support import card_of
from webauthn.phone import PhoneBrowser, PhoneClient, SoftwareAuthenticator


@pytest.fixture
def issuer(app):
    """The app on http://localhost:<port>, with its own signing keys (in the test's directory the app was
    made with, ``app_config``); returns the issuer URL."""
    ensure_keys(app.config["OIDC_KEYS_DIR"])
    server = make_server("localhost", 0, app, threaded=True)
    app.config["PUBLIC_URL"] = f"http://localhost:{server.server_port}"
    wiring.install(app)  # the parts are built from the configuration: again, for the port just chosen
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app.config["PUBLIC_URL"]
    server.shutdown()


@pytest.fixture
def discovery(issuer) -> dict:
    return requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()


@pytest.fixture
def add_client(app):
    """``add_client("--name", "X", ...)``: runs ``flask clients add`` and returns its JSON."""
    return lambda *args: make_oidc_client(app, *args)


@pytest.fixture
def add_agency(app):
    """``add_agency("--name", "X", ...)``: runs ``flask agencies add`` and returns its JSON (with the API key)."""
    return lambda *args: make_agency(app, *args)


@pytest.fixture
def person(app, pki):
    """王小明's account id (registered with the demo card A123456789)."""
    with app.app_context():
        return make_account(pki, card_of(pki, "A123456789")).id


@pytest.fixture
def browser(issuer, pki, person) -> Browser:
    browser = Browser(issuer, pki)
    browser.card_login()
    return browser


@pytest.fixture
def bind_phone(issuer, pki, app):
    """``bind_phone(name, national_id="A123456789")``: a new software phone, bound to that registered person
    through the real binding flow (card login, QR token)."""

    def bind(name: str, national_id: str = "A123456789") -> PhoneClient:
        with app.app_context():
            account = db.session.scalar(select(Account).where(
                Account.national_id_hash == wiring.parts().national_id_hash(national_id)))
            account.email_verified_at = account.email_verified_at or utcnow()
            db.session.commit()
        computer = Browser(issuer, pki)
        computer.card_login(national_id)
        binding = computer.http.post(
            f"{issuer}/api/v1/bindings", json={}, headers={"X-CSRF-Token": computer.csrf()}, timeout=10
        )
        assert binding.status_code == 201, binding.text
        client = PhoneClient(PhoneBrowser(SoftwareAuthenticator(None)))
        client.bind(binding.json()["url"], name)
        return client

    return bind


@pytest.fixture
def phone(person, bind_phone):
    """The software phone, bound to 王小明 through the real binding flow (card login, QR token)."""
    return bind_phone("我的手機")


@pytest.fixture
def computer(issuer, pki) -> Computer:
    return Computer(issuer, pki)


@pytest.fixture
def rp_client(add_client):
    return add_client()


@pytest.fixture
def register_agency(app, issuer):
    """``register_agency(name=…, allowed_ips=…, callback_url=…)``: an agency registered as ``flask agencies add``
    does it, and its client of the TW FidO API (tests/app/agency_client.py)."""
    def register(name="臺灣雲市集", allowed_ips=(), callback_url=None) -> AgencyClient:
        with app.app_context():
            agency, api_key = wiring.parts().agencies.add(actor="test", name=name, allowed_ips=list(allowed_ips),
                                                   callback_url=callback_url)
            return AgencyClient(issuer, agency.sp_service_id, api_key)
    return register


@pytest.fixture
def agency(register_agency) -> AgencyClient:
    return register_agency()
