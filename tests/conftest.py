"""Shared fixtures: a demo PKI with its CRL, OCSP and identity check served over real HTTP, real databases,
a real SMTP server.

Every test that takes ``app`` runs once on SQLite and once on PostgreSQL (a database made for this run
and dropped afterwards). Without PostgreSQL the PostgreSQL runs skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from werkzeug.serving import make_server

from config import TestingConfig
from iccard.demo_pki import DemoPKI, identity_check_token
from tests.support import missing

POSTGRES_ADMIN_URL = os.environ.get("MOCERT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


# -- the demo PKI and its revocation server ---------------------------------------------------------


class RevocationServer:
    """Serves the demo CRL, OCSP and identity check through the real app over HTTP; ``down`` takes parts offline."""

    PARTS = (("/ocsp", "ocsp"), (".crl", "crl"), ("/identity-check", "identity"))

    def __init__(self, pki_dir: Path) -> None:
        from app import create_app

        self.down: set[str] = set()  # "ocsp", "crl", "identity"
        self.requests: list[str] = []
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._pki_dir = pki_dir
        self._app = None
        self._create_app = create_app

    def start(self, config) -> None:
        self._app = self._create_app(config)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()

    def _wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        self.requests.append(path)
        part = next((name for end, name in self.PARTS if path.endswith(end)), None)
        if part in self.down:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"down"]
        return self._app(environ, start_response)


@pytest.fixture(scope="session")
def shared_trust() -> Path:
    """The real GRCA G3 and MOICA G3 certificates the project ships in iccard/trust/ (public documents)."""
    path = Path(__file__).resolve().parents[1] / "iccard" / "trust"
    assert (path / "GRCA-G3.cer").is_file(), f"{path} should hold the real CA certificates"
    return path


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("instance")


@pytest.fixture(scope="session")
def revocation_server(instance_dir):
    server = RevocationServer(instance_dir / "demo-pki")
    DemoPKI.create(instance_dir / "demo-pki", server.url)
    server.start(_config(instance_dir, f"sqlite:///{instance_dir / 'pki-server.db'}"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pki(revocation_server, instance_dir) -> DemoPKI:
    return DemoPKI(instance_dir / "demo-pki")


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


@pytest.fixture
def request_recorder():
    recorder = RequestRecorder()
    yield recorder
    recorder.stop()


@pytest.fixture(autouse=True)
def _revocation_server_up(request):
    yield
    if "revocation_server" in request.fixturenames:
        server = request.getfixturevalue("revocation_server")
        server.down.clear()
        server.requests.clear()


# -- mail ----------------------------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture(scope="session")
def smtp_server():
    mailbox = Mailbox()
    mailbox.port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mailbox(smtp_server):
    smtp_server.messages.clear()
    return smtp_server


# -- databases -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_database():
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    import sqlalchemy as sa

    name = f"mocert_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        missing(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _config(instance_dir: Path, database_url: str, **overrides):
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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mocert.db'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture
def app_config(instance_dir, database_url, smtp_server, pki, revocation_server, tmp_path):
    return _config(
        instance_dir,
        database_url,
        # The signing keys are read when the app is made: a test that wants them makes them here.
        OIDC_KEYS_DIR=tmp_path / "oidc-keys",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp_server.port,
        # The demo identity check, served over HTTP beside the demo CRL and OCSP.
        IDENTITY_CHECK_URL=f"{revocation_server.url}/pki/demo/identity-check",
        IDENTITY_CHECK_TOKEN=identity_check_token(pki.directory),
    )


@pytest.fixture
def app(app_config):
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from app.extensions import db

    application = create_app(app_config)
    with application.app_context():
        upgrade()  # the real migrations, on the real database
    yield application
    with application.app_context():
        db.session.remove()
        if app_config.SQLALCHEMY_DATABASE_URI.startswith("postgresql"):
            downgrade(revision="base")  # the session's PostgreSQL database is shared by tests
        db.engine.dispose()


@pytest.fixture
def client(app):
    return ApiClient(app.test_client())


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


# -- the local card agent ------------------------------------------------------------------------------


@pytest.fixture
def start_agent(pki, tmp_path):
    """Start MoCert's card agent over the emulated demo cards: ``start_agent(cards=[...], trusted=[...])``."""
    from iccard.agent.component import LocalComponent
    from iccard.agent.server import AgentServer
    from iccard.agent.trust import TrustList
    from iccard.emulator import InProcessReader, PivCardEmulator

    servers = []

    def start(cards=None, trusted=(), state_dir=None):
        state = state_dir or tmp_path / f"agent-{len(servers)}"
        chosen = cards if cards is not None else pki.cards
        readers = [
            InProcessReader(PivCardEmulator.from_demo(pki, card, state / "cards"), name=f"Test Reader {index}")
            for index, card in enumerate(chosen, start=1)
        ]
        component = LocalComponent(lambda: list(readers), TrustList(state / "trusted-sites.json", tuple(trusted)))
        server = AgentServer(("127.0.0.1", 0), component)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        server.readers = readers
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
