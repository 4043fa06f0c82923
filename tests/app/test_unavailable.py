"""With the database gone the API answers 503 with a JSON error and pages say the service is briefly
unavailable (zh-TW first); when it is back, so are we, without a restart.

PostgreSQL is taken away through a TCP relay of our own in front of the shared server (never the server
itself); SQLite by putting a directory where its file was.
"""

from __future__ import annotations

import shutil
import socket
import threading

import pytest

from app import create_app
from app.extensions import db
from tests.factories import make_account
from tests.support import card_login, card_of, free_port
from tests.support import make_config as _config


class Relay:
    """127.0.0.1:<port> → ``target``; ``down()`` refuses new connections and cuts the open ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, None
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(16)
        self.port, self._listener = listener.getsockname()[1], listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below; close() alone would not
        self._listener.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                near, _ = listener.accept()
            except OSError:
                return  # closed by down()
            far = socket.create_connection(self.target, timeout=10)
            with self._lock:
                self._open += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _assert_unavailable(http, token_client) -> None:
    api = http.get("/api/v1/account")
    assert api.status_code == 503 and api.get_json()["error"] == "service_unavailable", api.get_data(as_text=True)
    assert api.headers["Retry-After"]
    posted = token_client.post("/api/v1/card-login/begin")
    assert posted.status_code == 503 and posted.get_json()["error"] == "service_unavailable"
    page = http.get("/account", headers={"Accept-Language": "zh-TW"})
    assert page.status_code == 503 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "<html" in text and "服務暫時無法使用" in text
    english = http.get("/account", headers={"Accept-Language": "en"})
    assert english.status_code == 503 and "briefly unavailable" in english.get_data(as_text=True)
    assert http.get("/readyz").status_code == 503
    token = http.post("/oauth/token", data={"grant_type": "authorization_code", "code": "x", "client_id": "c"})
    assert token.status_code == 503 and token.get_json()["error"] == "service_unavailable"


def _assert_back(http) -> None:
    assert http.get("/readyz").status_code == 200
    assert http.get("/api/v1/account").status_code == 200
    assert http.get("/account").status_code == 200


def _logged_in(application, pki):
    from tests.support import ApiClient

    with application.app_context():
        make_account(pki, card_of(pki, "A123456789"))
    http = ApiClient(application.test_client())
    assert card_login(http, pki, card_of(pki, "A123456789")).get_json()["status"] == "logged_in"
    return http


@pytest.fixture
def migrated(instance_dir, smtp_server, pki):
    """``migrated(url)``: an app on a database brought to the latest migration (undone at the end)."""
    from flask_migrate import downgrade, upgrade

    made = []

    def make(url: str, **overrides):
        application = create_app(_config(instance_dir, url, SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port,
                                         **overrides))
        with application.app_context():
            upgrade()
        made.append(application)
        return application

    yield make
    for application in made:
        with application.app_context():
            db.session.remove()
            if application.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
                downgrade(revision="base")  # the session's PostgreSQL database is shared by tests
            db.engine.dispose()


def test_postgresql_down_is_a_503_and_back_is_served_again(postgres_database, migrated, instance_dir, pki):
    direct = migrated(postgres_database)
    host_part = postgres_database.split("@", 1)[1].split("/", 1)[0]
    host, port = host_part.rsplit(":", 1)
    relay = Relay((host, int(port)))
    relay.up()
    application = create_app(_config(instance_dir, postgres_database.replace(f"@{host_part}/",
                                                                             f"@127.0.0.1:{relay.port}/")))
    try:
        http = _logged_in(application, pki)
        _assert_back(http)
        relay.down()
        _assert_unavailable(http, _with_csrf(application.test_client()))
        relay.up()  # on the same port: the app is told nothing
        _assert_back(http)
    finally:
        relay.down()
        with application.app_context():
            db.engine.dispose()
    assert direct.test_client().get("/readyz").status_code == 200


def test_a_postgresql_that_never_answers_is_a_503(instance_dir):
    closed = free_port()  # a port nobody listens on
    application = create_app(_config(instance_dir, f"postgresql+psycopg://postgres@127.0.0.1:{closed}/nothing"))
    begin = _with_csrf(application.test_client()).post("/api/v1/card-login/begin")
    assert begin.status_code == 503 and begin.get_json()["error"] == "service_unavailable"
    token = application.test_client().post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x",
                                                                 "client_id": "c"})
    assert token.status_code == 503 and token.get_json()["error"] == "service_unavailable"
    assert application.test_client().get("/readyz").status_code == 503


def test_sqlite_unreadable_is_a_503_and_back_is_served_again(migrated, pki, tmp_path):
    path = tmp_path / "data" / "mocert.db"
    path.parent.mkdir()
    application = migrated(f"sqlite:///{path}")
    http = _logged_in(application, pki)
    _assert_back(http)
    moved = tmp_path / "moved.db"
    shutil.move(path, moved)
    path.mkdir()  # where the file was: "unable to open database file"
    with application.app_context():
        db.engine.dispose()  # connections already open would go on reading the moved file
    try:
        _assert_unavailable(http, _with_csrf(application.test_client()))
    finally:
        path.rmdir()
        shutil.move(moved, path)
    _assert_back(http)


def _with_csrf(http):
    from tests.support import ApiClient

    return ApiClient(http)
