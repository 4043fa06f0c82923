"""MoCert and the example marketplace, each served over real HTTP on its own random localhost port, and the
person's software phone (helpers in tests/examples/support.py)."""

from __future__ import annotations

import pytest

from app.oidc.keys import ensure_keys
from tests.factories import make_account
from tests.support import card_of

from .support import bind_software_phone, flask_cli, serve, serve_marketplace


@pytest.fixture(params=["sqlite"])
def database_url(sqlite_database):
    # The relying party's view is the same on either database; tests/app/oidc covers both.
    return sqlite_database


@pytest.fixture
def mocert(app, tmp_path):
    """MoCert on http://localhost:<port> with its own signing keys; returns its URL (the issuer)."""
    ensure_keys(app.config["OIDC_KEYS_DIR"])
    server = serve(app)
    app.config["PUBLIC_URL"] = f"http://localhost:{server.server_port}"
    from app import wiring

    wiring.install(app)  # the parts are built from the configuration: again, for the port just chosen
    yield app.config["PUBLIC_URL"]
    server.shutdown()


@pytest.fixture
def mocert_cli(app):
    """MoCert's real CLI (``flask clients ...``) as the registration step runs it."""
    return flask_cli(app)


@pytest.fixture
def person(app, pki):
    """王小明, registered at MoCert with the demo card A123456789."""
    with app.app_context():
        return make_account(pki, card_of(pki, "A123456789")).id


@pytest.fixture
def marketplace(mocert, mocert_cli, tmp_path):
    """The marketplace on its own port, registered at MoCert (client and agency) by the registration step."""
    served = serve_marketplace(mocert, mocert_cli, tmp_path / "marketplace-instance")
    yield served
    served.stop()


@pytest.fixture
def phone(app, mocert, pki, person):
    """王小明's software phone, bound through the real binding flow."""
    return bind_software_phone(app, mocert, pki, person)
