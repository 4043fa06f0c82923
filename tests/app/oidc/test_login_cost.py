"""What a relying-party login costs the database: a same-device passkey login from ``/authorize`` to the
code exchange, every statement and commit counted on the app's engine (issue 14)."""

from __future__ import annotations

import collections
import contextlib
import html
import re
import threading

import requests
from sqlalchemy import event

from app.extensions import db

from .support import query
from .support import rp_authorization as _authorize_url

MAX_STATEMENTS = 20
MAX_COMMITS = 3


class Ledger:
    """Statements and commits on ``engine``, by the step they ran in (the test names the step)."""

    def __init__(self) -> None:
        self.step = "setup"
        self.statements: dict[str, list[str]] = collections.defaultdict(list)
        self.commits: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def on_statement(self, conn, cursor, statement, parameters, context, executemany) -> None:
        with self._lock:
            self.statements[self.step].append(statement.split()[0].upper() + " " + " ".join(statement.split())[:160])

    def on_commit(self, conn) -> None:
        with self._lock:
            self.commits[self.step] += 1

    def report(self) -> str:
        lines = []
        for step, statements in self.statements.items():
            lines.append(f"{step}: {len(statements)} statements, {self.commits[step]} commits")
            lines.extend(f"    {s}" for s in statements)
        return "\n".join(lines)


@contextlib.contextmanager
def ledger_of(app):
    ledger = Ledger()
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", ledger.on_statement)
    event.listen(engine, "commit", ledger.on_commit)
    try:
        yield ledger
    finally:
        event.remove(engine, "before_cursor_execute", ledger.on_statement)
        event.remove(engine, "commit", ledger.on_commit)


def _passkey_login(ledger: Ledger, issuer, discovery, rp_client, phone) -> None:
    """One login as the login page's script does it, in a browser with no MoCert session yet."""
    http = requests.Session()
    rp, url, state, verifier, _ = _authorize_url(discovery, rp_client)
    ledger.step = "authorize"
    location = http.get(url, allow_redirects=False, timeout=30).headers["Location"]
    ledger.step = "login page"
    page = http.get(issuer + location, allow_redirects=False, timeout=30).text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    authorize = html.unescape(re.search(r'data-authorize-query="([^"]*)"', page).group(1))

    def post(path: str, body: dict) -> requests.Response:
        response = http.post(issuer + path, json=body, headers={"X-CSRF-Token": csrf}, timeout=30)
        assert response.ok, response.text
        return response.json()

    ledger.step = "login request"
    started = post("/api/v1/login-requests", {"authorize": authorize})
    ledger.step = "authenticator"
    credential = phone.browser.get(started["passkey"]["publicKey"], origin=issuer)
    ledger.step = "passkey complete"
    done = post(f"/api/v1/login-requests/{started['login_request_id']}/passkey/complete", {"credential": credential})
    callback = done["redirect"]  # the site's, with the code: no second trip to /authorize for a returning person
    assert callback.startswith("https://rp.example/cb?") and query(callback)["state"] == state
    ledger.step = "token"
    tokens = rp.fetch_token(discovery["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    ledger.step = "done"
    assert tokens["id_token"]


def _first_login(issuer, discovery, rp_client, phone, computer) -> None:
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    base = f"/api/v1/login-requests/{started['login_request_id']}/passkey"
    options = computer.post(base + "/options", {}).json()
    done = computer.post(base + "/complete", {"credential": phone.browser.get(options["publicKey"], origin=issuer)})
    computer.authorize(issuer + done.json()["redirect"])  # consents


def test_a_passkey_login_costs_at_most_twenty_statements_and_three_commits(
    app, issuer, discovery, rp_client, phone, computer
):
    # The person has consented to the site before (the first login asks, and is not counted): the login
    # counted is the one a returning person makes every day, on a server that has served one already.
    with ledger_of(app):
        _first_login(issuer, discovery, rp_client, phone, computer)
    with ledger_of(app) as ledger:
        _passkey_login(ledger, issuer, discovery, rp_client, phone)
    counted = {step: s for step, s in ledger.statements.items() if step not in ("setup", "done")}
    statements = sum(len(s) for s in counted.values())
    commits = sum(n for step, n in ledger.commits.items() if step not in ("setup", "done"))
    print(ledger.report())
    assert statements <= MAX_STATEMENTS and commits <= MAX_COMMITS, ledger.report()
