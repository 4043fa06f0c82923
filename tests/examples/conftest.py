"""MoCert and the example marketplace, each served over real HTTP on its own random localhost port."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from app.oidc.keys import ensure_keys
from examples.marketplace.app import create_app as create_marketplace
from examples.marketplace.registration import register
from tests.factories import make_account
from tests.support import card_of


@pytest.fixture(params=["sqlite"])
def database_url(sqlite_database):
    # The relying party's view is the same on either database; tests/app/oidc covers both.
    return sqlite_database


def _serve(wsgi_app):
    server = make_server("localhost", 0, wsgi_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def mocert(app, tmp_path):
    """MoCert on http://localhost:<port> with its own signing keys; returns its URL (the issuer)."""
    ensure_keys(app.config["OIDC_KEYS_DIR"])
    server = _serve(app)
    app.config["PUBLIC_URL"] = f"http://localhost:{server.server_port}"
    from app import wiring

    wiring.install(app)  # the parts are built from the configuration: again, for the port just chosen
    yield app.config["PUBLIC_URL"]
    server.shutdown()


@pytest.fixture
def mocert_cli(app):
    """MoCert's real CLI (``flask clients ...``) as the registration step runs it."""

    def run(args: list[str]) -> tuple[int, str]:
        result = app.test_cli_runner().invoke(args=args)
        return result.exit_code, result.output

    return run


@pytest.fixture
def person(app, pki):
    """王小明, registered at MoCert with the demo card A123456789."""
    with app.app_context():
        return make_account(pki, card_of(pki, "A123456789")).id


class Marketplace:
    def __init__(self, url: str, app) -> None:
        self.url, self.app = url, app


@pytest.fixture
def marketplace(mocert, mocert_cli, tmp_path):
    """The marketplace on its own port, registered at MoCert by the registration step."""
    holder = {}
    server = _serve(lambda environ, start_response: holder["app"](environ, start_response))
    url = f"http://localhost:{server.server_port}"
    instance = tmp_path / "marketplace-instance"
    register(mocert_cli, public_url=url, client_file=instance / "marketplace-client.json")
    holder["app"] = create_marketplace({
        "INSTANCE_DIR": instance,
        "MOCERT_URL": mocert,
        "PUBLIC_URL": url,
        "CLIENT_ID": None,
        "CLIENT_SECRET": None,
        "CLIENT_FILE": instance / "marketplace-client.json",
        "SECRET_KEY": None,
        "DATABASE": instance / "marketplace.db",
    })
    yield Marketplace(url, holder["app"])
    server.shutdown()
