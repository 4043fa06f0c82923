"""MoCert's side of the login benchmark: a database of its own, the state a login starts from (built with
the app's own services), the environment gunicorn serves it with, the login itself, and one login counted
through the app.

The login is the cheapest complete one a relying party gets: a passkey on the same device. A new browser
(no MoCert cookie) goes to ``/authorize``, is sent to the login page, asks for a login request, asks for
its passkey options, signs with the software authenticator, completes, follows the redirect back to
``/authorize``, and the relying party exchanges the code at ``/oauth/token`` (client secret, PKCE): token
mode, the login is done when the relying party holds its tokens.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import logging
import os
import re
import secrets
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from webauthn.phone import PhoneBrowser, SoftwareAuthenticator

from .client import AnswerError, expect

ROOT = Path(__file__).resolve().parents[1]
RP_CALLBACK = "https://rp.example/cb"
SCOPE = "openid"
POSTGRES_ADMIN_URL = os.environ.get(
    "MOCERT_BENCH_POSTGRES_URL",
    os.environ.get("MOCERT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
)

_AUTHORIZE_QUERY = re.compile(r'data-authorize-query="([^"]*)"')
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


# -- the database ------------------------------------------------------------------------------------------


class Database:
    """A database made for this run and dropped afterwards: ``bench_<random>`` on PostgreSQL, or a SQLite
    file in the run's directory. ``url`` is SQLAlchemy's; ``name`` is PostgreSQL's (None on SQLite)."""

    def __init__(self, kind: str, work: Path) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.name, self.url = None, f"sqlite:///{work / 'mocert.db'}"
            return
        import sqlalchemy as sa

        self.name = f"bench_{uuid.uuid4().hex[:12]}"
        self._admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        self.url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{self.name}"

    @property
    def admin_url(self) -> str | None:
        """psycopg's URL of the admin database (None on SQLite)."""
        return None if self.name is None else POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")

    def drop(self) -> None:
        if self.name is None:
            return
        import sqlalchemy as sa

        with self._admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


# -- the state a login starts from -------------------------------------------------------------------------


@dataclass
class Person:
    """An account with a bound phone whose passkey this process holds."""

    account_id: int
    phone: PhoneBrowser


@dataclass
class State:
    public_url: str
    client_id: str
    client_secret: str
    people: list[Person]


def server_environment(work: Path, database_url: str, port: int) -> dict[str, str]:
    """The environment gunicorn serves MoCert with: development settings (secrets made under the run's
    instance directory), no mail to the console, no rate limits (16 clients from one address)."""
    return {
        "MOCERT_ENV": "development",
        "MOCERT_INSTANCE_DIR": str(work / "instance"),
        "MOCERT_DATABASE_URL": database_url,
        "MOCERT_PUBLIC_URL": f"http://localhost:{port}",
        "MOCERT_DEMO_PKI_DIR": str(work / "demo-pki"),
        "MOCERT_OIDC_KEYS_DIR": str(work / "oidc-keys"),
        "MOCERT_MAIL_TO_CONSOLE": "0",
        "MOCERT_RATELIMIT_ENABLED": "0",
    }


@contextlib.contextmanager
def _environment(variables: dict[str, str]):
    """``os.environ`` with ``variables`` and no other ``MOCERT_*``, restored afterwards (the configuration
    is read from the environment, as the server reads it)."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("MOCERT_")]:
        del os.environ[name]
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def make_app(environment: dict[str, str]):
    """The app as gunicorn makes it from ``environment``, in this process, without a background worker of its
    own (sealer, logout courier): the server's do that work, and none is left polling a database the bench
    has dropped."""
    from app import create_app
    from config import config_from_env

    with _environment({**environment, "MOCERT_AUDIT_SEAL_INTERVAL": "0", "MOCERT_BACKCHANNEL_LOGOUT_INTERVAL": "0"}):
        return create_app(config_from_env())


def build(work: Path, environment: dict[str, str], people: int,
          after_each: Callable[[object, int], None] | None = None) -> tuple[object, State]:
    """The demo PKI, the signing keys, the schema, a relying party and ``people`` accounts, each with a
    phone bound through the binding service (as a card-logged-in person binds one) and the relying party's
    ``openid`` scope granted. ``after_each(client, made)``, if given, is called in the app's context after
    each person is made (``made`` of them so far), with the relying party's ``OidcClient``: a bench puts
    other rows between them there. Returns the app (in this process, on the same database) and the state."""
    from flask_migrate import upgrade

    from app.oidc.keys import ensure_keys
    from iccard.demo_pki import DemoPKI

    public_url = environment["MOCERT_PUBLIC_URL"]
    DemoPKI.create(environment["MOCERT_DEMO_PKI_DIR"], public_url)
    ensure_keys(Path(environment["MOCERT_OIDC_KEYS_DIR"]))
    app = make_app(environment)
    with app.app_context():
        logging.disable(logging.INFO)  # alembic's line per migration: the bench prints only its figures
        try:
            upgrade(directory=str(ROOT / "migrations"))
        finally:
            logging.disable(logging.NOTSET)
        state = _people(public_url, people, after_each)
    return app, state


def _people(public_url: str, count: int, after_each: Callable[[object, int], None] | None) -> State:
    from app.extensions import db
    from app.models import Account, utcnow
    from app.services import clients, consent, sessions
    from app.wiring import parts
    from iccard import national_id

    client, secret = clients.create(actor="bench", name="Bench RP", redirect_uris=[RP_CALLBACK])
    people = []
    for number in range(count):
        nid = _national_id(number)
        account = Account(
            national_id_hash=parts().national_id_hash(nid), national_id_masked=national_id.mask(nid),
            name=f"測試{number}", email=f"bench{number}@example.com", phone="+886912345678",
            email_verified_at=utcnow(),
        )
        db.session.add(account)
        _, card_session = sessions.open(account, method="card", lifetime=timedelta(minutes=10))
        db.session.commit()
        _, token = parts().devices.create_binding(account, card_session)
        options = parts().devices.binding_options(token)
        phone = PhoneBrowser(SoftwareAuthenticator(None))
        parts().devices.complete_binding(token, phone.create(options["publicKey"], origin=public_url), "bench")
        consent.grant(account, consent.request_for(account, client, [SCOPE]))
        people.append(Person(account.id, phone))
        if after_each is not None:
            after_each(client, number + 1)
    state = State(public_url, client.client_id, secret, people)
    db.session.remove()
    return state


def _national_id(number: int) -> str:
    """A valid national ID of its own for each person (A1, seven digits, the check digit)."""
    digits = [1, 0, 1, *map(int, f"{number:07d}")]  # A = 10
    weights = (1, 9, 8, 7, 6, 5, 4, 3, 2, 1)
    check = -sum(w * d for w, d in zip(weights, digits, strict=True)) % 10
    return f"A1{number:07d}{check}"


# -- the login ---------------------------------------------------------------------------------------------


def login(browser, rp, state: State, person: Person, mark=lambda step: None) -> None:
    """One full login of ``person`` by a new browser, the relying party's code exchange included. ``mark``
    is told each step's name before its request. Raises ``AnswerError`` at the first unexpected answer."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    rp_state = secrets.token_urlsafe(12)
    query = urlencode({
        "response_type": "code", "client_id": state.client_id, "redirect_uri": RP_CALLBACK, "scope": SCOPE,
        "state": rp_state, "nonce": secrets.token_urlsafe(12), "code_challenge": challenge,
        "code_challenge_method": "S256",
    })
    mark("authorize")
    to_login = expect("authorize", 302, browser.get(f"/authorize?{query}"))
    if not to_login.location.startswith("/authorize/login?"):
        raise AnswerError("authorize", to_login)
    mark("login page")
    page = expect("login page", 200, browser.get(to_login.location)).text
    authorize = html.unescape(_AUTHORIZE_QUERY.search(page).group(1))
    csrf = html.unescape(_CSRF.search(page).group(1))
    mark("login request")
    created = expect("login request", 201, browser.post_json("/api/v1/login-requests", {"authorize": authorize},
                                                             csrf=csrf)).json()
    base = f"/api/v1/login-requests/{created['login_request_id']}/passkey"
    # The options came with the login request, as the login page uses them (no QR code asked for: a passkey
    # on this device is the login measured).
    credential = person.phone.get(created["passkey"]["publicKey"], origin=state.public_url)
    mark("passkey complete")
    completed = expect("passkey complete", 200, browser.post_json(f"{base}/complete", {"credential": credential},
                                                                  csrf=csrf))
    location = completed.json()["redirect"]
    if location.startswith("/"):  # the person must answer at /authorize first (not for a returning person)
        mark("authorize again")
        location = expect("authorize again", 302, browser.get(location)).location
    answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if not location.startswith(RP_CALLBACK) or answer.get("state") != rp_state or "code" not in answer:
        raise AnswerError("back to the site", completed)
    mark("token")
    tokens = expect("token", 200, rp.post_form("/oauth/token", {
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": RP_CALLBACK,
        "code_verifier": verifier,
    }, basic=(state.client_id, state.client_secret)))
    if b'"id_token"' not in tokens.body:
        raise AnswerError("token", tokens)


def count_one_login(app, state: State) -> dict[str, Counter]:
    """What one login driven through ``app`` in this process asks of the database, by step: SQL
    ``statements``, ``commits`` and pool ``checkouts`` (each one pool_pre_ping's round trip). Counted on
    a second login, so that what is built once per process is built."""
    from sqlalchemy import event

    from app.extensions import db

    from .client import AppBrowser

    person = state.people[0]
    login(AppBrowser(app, state.public_url), AppBrowser(app, state.public_url), state, person)
    counts = {"statements": Counter(), "commits": Counter(), "checkouts": Counter()}
    step = ["?"]
    listeners = {
        "before_cursor_execute": lambda *_: counts["statements"].update((step[0],)),
        "commit": lambda *_: counts["commits"].update((step[0],)),
        "checkout": lambda *_: counts["checkouts"].update((step[0],)),
    }
    with app.app_context():
        engine = db.engine
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    try:
        login(AppBrowser(app, state.public_url), AppBrowser(app, state.public_url), state, person,
              mark=lambda name: step.__setitem__(0, name))
    finally:
        for name, listener in listeners.items():
            event.remove(engine, name, listener)
    return counts
