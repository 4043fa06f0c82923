"""Shared fixtures: a demo PKI with its CRL, OCSP and identity check served over real HTTP, real databases,
a real SMTP server.

Every test that takes ``app`` runs once on SQLite and once on PostgreSQL (a database made for this run and
dropped afterwards), on a database migrated once and given to it as new (see "databases" below). Without
PostgreSQL the PostgreSQL runs skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable
from email import message_from_bytes
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from werkzeug.serving import make_server

from iccard.demo_pki import DemoPKI, MoicaProfilePKI, identity_check_token
from tests.support import ApiClient, DemoPKIKeysKept, RequestRecorder, make_config, migrate, missing
from tests.support import free_port as _free_port

# The card fixtures (emulated cards, pcscd + vpcd, OpenSC, SoftHSM): card tests and browser tests both use them.
pytest_plugins = ("tests.card_stack",)

POSTGRES_ADMIN_URL = os.environ.get("MOCERT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


# -- the demo PKI and its revocation server ---------------------------------------------------------


class RevocationServer:
    """Serves the demo CRL, OCSP and identity check through the real app over HTTP; ``down`` takes parts offline,
    ``forged`` answers for a part once (a man in the middle: revocation is fetched over plain HTTP).

    "root-ocsp" and "root-crl" are GRCA's (the MOICA-profile PKI's root answering for its MOICA); "ocsp" and
    "crl" are the issuing CAs' (answering for the cards).
    """

    PARTS = (
        ("/moica-profile/grca/ocsp", "root-ocsp"),
        ("/moica-profile/GRCA-G2.crl", "root-crl"),
        ("/moica-profile/GRCA-G3.crl", "root-crl"),
        ("/ocsp", "ocsp"),
        (".crl", "crl"),
        ("/identity-check", "identity"),
    )

    def __init__(self, pki_dir: Path) -> None:
        from app import create_app

        self.down: set[str] = set()  # "ocsp", "crl", "root-ocsp", "root-crl", "identity"
        # part -> a function of the request body giving the answer served, once, in place of the real one
        self.forged: dict[str, Callable[[bytes], bytes]] = {}
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
        forge = self.forged.pop(part, None) if part else None
        if forge is not None:
            body = forge(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            kind = "application/ocsp-response" if part.endswith("ocsp") else "application/pkix-crl"
            start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(body)))])
            return [body]
        return self._app(environ, start_response)



@pytest.fixture(scope="session")
def real_trust() -> Path:
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
    server.start(make_config(instance_dir, f"sqlite:///{instance_dir / 'pki-server.db'}"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pki(revocation_server, instance_dir) -> DemoPKI:
    return DemoPKIKeysKept(instance_dir / "demo-pki")


@pytest.fixture(scope="session")
def moica_pki(revocation_server, instance_dir) -> MoicaProfilePKI:
    """The real MOICA profile on our keys (GRCA and MOICA, G2 and G3, a valid card of each), served by the
    revocation server beside the demo PKI, root CRL and OCSP included."""
    directory = MoicaProfilePKI.in_demo_pki(instance_dir / "demo-pki").directory
    return MoicaProfilePKI.create(directory, revocation_server.url)


@pytest.fixture
def moica_app_config(app_config, moica_pki):
    """The app's configuration trusting the MOICA profile, both generations: what a deployment for real cards
    configures, with our CA certificates in place of the real ones."""
    app_config.CARD_TRUST_ANCHORS = moica_pki.anchor_paths()
    app_config.CARD_INTERMEDIATES = moica_pki.intermediate_paths()
    return app_config


@pytest.fixture
def moica_client(moica_app_config):
    """A client of an app trusting the MOICA profile (its own revocation cache: nothing cached)."""
    from app import create_app
    from app.extensions import db

    application = create_app(moica_app_config)
    yield ApiClient(application.test_client())
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


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
        server.forged.clear()
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


@pytest.fixture
def mailbox(smtp_server):
    smtp_server.messages.clear()
    return smtp_server


# -- databases -----------------------------------------------------------------------------------------
#
# The migrations run once per database per run (tests/app/test_migrations.py runs each of them up and down
# on databases of its own). SQLite: every test gets a copy of a migrated template file. PostgreSQL: the run's
# database, migrated once, is emptied before each test (every row deleted past the audit trail's append-only
# trigger, the rows the migrations seed put back, the sequences restarted: a few milliseconds, where a
# database copied from a template took 200); a test that changed the schema (a downgrade, ``drop_all``)
# leaves it to be migrated again.


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory, pki, revocation_server) -> Path:
    """A SQLite file brought to the latest migration once for the run."""
    path = tmp_path_factory.mktemp("sqlite-template") / "mocert.db"
    migrate(make_config(pki.directory.parent, f"sqlite:///{path}"))
    return path


@pytest.fixture
def sqlite_database(sqlite_template, tmp_path) -> str:
    """A migrated SQLite database of this test's own."""
    path = tmp_path / "mocert.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


class MigratedPostgres:
    """The run's PostgreSQL database, migrated once; ``empty()`` brings it back to just-migrated."""

    def __init__(self, url: str, config) -> None:
        self.url, self._config = url, config
        self._engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self._migrate()

    def _migrate(self) -> None:
        migrate(self._config)
        with self._engine.connect() as connection:
            self.head = connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
            metadata = sa.MetaData()
            metadata.reflect(connection)
            self._tables = [table for name, table in metadata.tables.items() if name != "alembic_version"]
            seeded = {table: [row._asdict() for row in connection.execute(sa.select(table))] for table in self._tables}
        self._seeded = {table: rows for table, rows in seeded.items() if rows}

    def _intact(self) -> bool:
        try:
            with self._engine.connect() as connection:
                version = connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
                tables = set(connection.scalars(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))
        except sa.exc.DBAPIError:
            return False
        return version == self.head and tables >= {table.name for table in self._tables}

    def empty(self) -> None:
        if not self._intact():
            with self._engine.begin() as connection:
                connection.execute(sa.text("DROP SCHEMA public CASCADE"))
                connection.execute(sa.text("CREATE SCHEMA public"))
            self._migrate()
        with self._engine.begin() as connection:
            connection.execute(sa.text("SET LOCAL lock_timeout = '10s'"))  # a connection left open fails, not hangs
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))  # no trigger, no FK check
            for table in self._tables:
                connection.execute(table.delete())
            for table, rows in self._seeded.items():
                connection.execute(table.insert(), rows)
            connection.execute(sa.text(
                "SELECT setval(c.oid, 1, false) FROM pg_class c "
                "WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace"
            ))

    def close(self) -> None:
        self._engine.dispose()


@pytest.fixture(scope="session")
def postgres_server():
    """``new_database()``: a fresh PostgreSQL database; all of them are dropped at the end of the run."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    made = []

    def new_database() -> str:
        name = f"mocert_test_{uuid.uuid4().hex[:12]}"
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except sa.exc.OperationalError as exc:
            missing(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
        made.append(name)
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    yield new_database
    with admin.connect() as conn:
        for name in made:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def migrated_postgres(postgres_server, pki, revocation_server):
    url = postgres_server()
    database = MigratedPostgres(url, make_config(pki.directory.parent, url))
    yield database
    database.close()


@pytest.fixture
def postgres_database(migrated_postgres) -> str:
    """The run's PostgreSQL database, migrated and empty for this test."""
    migrated_postgres.empty()
    return migrated_postgres.url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_database")
    return request.getfixturevalue("postgres_database")


@pytest.fixture
def app_config(instance_dir, database_url, smtp_server, pki, revocation_server, tmp_path):
    return make_config(
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
    from app import create_app
    from app.extensions import db

    application = create_app(app_config)  # on a database already migrated (see above)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return ApiClient(app.test_client())


# -- the local card agent ------------------------------------------------------------------------------


@pytest.fixture
def start_agent(pki, tmp_path):
    """Start MoCert's card agent over the emulated demo cards: ``start_agent(cards=[...], trusted=[...])``."""
    from iccard.agent.component import LocalComponent
    from iccard.agent.server import AgentServer
    from iccard.cards import PivSlot
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
        slots = [PivSlot(reader) for reader in readers]
        component = LocalComponent(lambda: list(slots), TrustList(state / "trusted-sites.json", tuple(trusted)))
        server = AgentServer(("127.0.0.1", 0), component)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        server.readers = readers
        server.trust = component.trust  # as an agent process's, for tests that run either
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
