"""Two MoCert instances behind HAProxy on one PostgreSQL and one Redis (deploy/several_instances.py), started
as the script starts them: a login begun on one instance completes on the other, step after step; a rate
limit counts the requests of both; and killing one instance (SIGKILL, its whole process group) under load
fails only the requests it was answering, while the other goes on serving, every completed login is whole in
the database, and the audit trail verifies."""

from __future__ import annotations

import base64
import collections
import hashlib
import html
import itertools
import json
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import KeySet

from app import create_app
from app.extensions import db
from app.models import utcnow
from app.oidc.keys import ensure_keys
from deploy.several_instances import Topology
from iccard.demo_pki import identity_check_token
from tests.factories import RP, make_account, make_oidc_client
from tests.support import card_of, free_port, make_config, make_signature, missing
from webauthn.phone import PhoneBrowser, PhoneClient, SoftwareAuthenticator

REDIS_URL = os.environ.get("MOCERT_TEST_REDIS_URL", "redis://127.0.0.1:6379")
CLIENTS = 8
LOAD_SECONDS = 5
KILL_AFTER = 2  # seconds into the load
REFUSALS = 3  # the agencies' API's refused calls an address may make a minute, here
LOADED = "100000/minute"  # the limits the load passes through (all its clients are one address)
TIMEOUT = 30


@pytest.fixture(scope="module")
def redis_prefix():
    """A key prefix of this test's own in the shared Redis; its keys are deleted afterwards."""
    import redis

    connection = redis.Redis.from_url(REDIS_URL)
    try:
        connection.ping()
    except redis.RedisError as exc:
        missing(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"mocert-test-{uuid.uuid4().hex}"
    yield prefix
    for key in connection.scan_iter(match=f"*{prefix}*"):
        connection.delete(key)
    connection.close()


@pytest.fixture(scope="module")
def started(tmp_path_factory, postgres_server, pki, revocation_server, redis_prefix):
    """Two instances of 1 worker × 8 threads behind HAProxy, on a new PostgreSQL database the topology
    migrates, with 王小明 registered and a relying party (``topology.rp``); started once for the module
    (migrating and starting take most of its time)."""
    tmp_path = tmp_path_factory.mktemp("several")
    if shutil.which("haproxy") is None:
        missing("haproxy is not installed (Debian: apt-get install haproxy)")
    database = postgres_server()
    secrets_ = {name: secrets.token_hex(32) for name in ("SECRET_KEY", "NATIONAL_ID_HMAC_KEY", "OIDC_PAIRWISE_KEY")}
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MOCERT_")} | {
        f"MOCERT_{name}": value for name, value in secrets_.items()
    } | {
        "MOCERT_ENV": "development",
        "MOCERT_INSTANCE_DIR": str(tmp_path / "instance"),
        "MOCERT_DATABASE_URL": database,
        "MOCERT_DEMO_PKI_DIR": str(pki.directory),
        "MOCERT_OIDC_KEYS_DIR": str(tmp_path / "oidc-keys"),
        "MOCERT_AGENCY_KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "MOCERT_IDENTITY_CHECK_URL": f"{revocation_server.url}/pki/demo/identity-check",
        "MOCERT_IDENTITY_CHECK_TOKEN": identity_check_token(pki.directory),
        "MOCERT_MAIL_TO_CONSOLE": "0",
        "MOCERT_RATELIMIT_STORAGE_URI": REDIS_URL,
        "MOCERT_RATELIMIT_KEY_PREFIX": redis_prefix,
        "MOCERT_CARD_LOGIN_RATE_LIMIT": LOADED,
        "MOCERT_PHONE_RATE_LIMIT": LOADED,
        "MOCERT_SP_API_REFUSAL_RATE_LIMIT": f"{REFUSALS}/minute",
    }
    topology = Topology(environment, run_dir=tmp_path / "run", port=free_port(),
                        instance_ports=[free_port(), free_port()], workers=1, threads=8)
    ensure_keys(tmp_path / "oidc-keys")  # with the demo PKI there, prepare() only migrates
    topology.prepare()
    app = create_app(make_config(pki.directory.parent, database, NATIONAL_ID_HMAC_KEY=secrets_["NATIONAL_ID_HMAC_KEY"],
                                 OIDC_KEYS_DIR=tmp_path / "oidc-keys"))
    with app.app_context():
        make_account(pki, card_of(pki, "A123456789"), email_verified_at=utcnow())
        topology.rp = make_oidc_client(app)
        db.session.remove()
        db.engine.dispose()
    topology.start()
    yield topology
    topology.stop()


@pytest.fixture
def topology(started):
    """The module's topology with every instance up and balanced to (a test before may have killed one)."""
    started.revive()
    return started


class Hops:
    """Where each request of a browser goes: the instances in turn (or HAProxy alone)."""

    def __init__(self, *urls: str) -> None:
        self._urls = itertools.cycle(urls)

    def __call__(self) -> str:
        return next(self._urls)


@dataclass(frozen=True)
class Call:
    step: str
    started: float  # time.monotonic()
    ended: float
    status: int | None  # None: no answer at all
    ok: bool
    error: str = ""  # what the client saw instead of an answer


@dataclass(frozen=True)
class Completed:
    login_id: str  # the card login's
    access_token: str
    started: float
    ended: float


class _Failed(Exception):
    pass


class Person:
    """A browser of 王小明's logging in with the card and on at the relying party (code flow with PKCE), each
    request sent where ``hops`` says; remembers every call and every login that got its tokens."""

    def __init__(self, topology: Topology, pki, hops: Hops) -> None:
        self.topology, self.pki, self.hops = topology, pki, hops
        self.card = card_of(pki, "A123456789")
        self.calls: list[Call] = []
        self.completed: list[Completed] = []

    def login(self) -> Completed:
        started, http, rp = time.monotonic(), requests.Session(), self.topology.rp
        token = self._call("csrf", 200, lambda url: http.get(f"{url}/api/v1/csrf", timeout=TIMEOUT))
        headers = {"X-CSRF-Token": token.json()["csrf_token"]}
        begin = self._call("card-login/begin", 200,
                           lambda url: http.post(f"{url}/api/v1/card-login/begin", headers=headers, timeout=TIMEOUT))
        login_id, tbs, algorithm = begin.json()["login_id"], begin.json()["tbs"], begin.json()["hashAlgorithm"]
        signed = make_signature(self.pki, self.card, tbs, "PKCS7", algorithm)
        self._call("card-login/complete", 200, lambda url: http.post(
            f"{url}/api/v1/card-login/complete", json={"login_id": login_id, **signed}, headers=headers,
            timeout=TIMEOUT))
        verifier = secrets.token_urlsafe(48)
        query = urlencode({"response_type": "code", "client_id": rp["client_id"], "redirect_uri": f"{RP}/cb",
                           "scope": "openid", "state": "s", "nonce": secrets.token_urlsafe(12),
                           "code_challenge": _challenge(verifier), "code_challenge_method": "S256"})
        answer = self._call("authorize", (200, 302), lambda url: http.get(
            f"{url}/authorize?{query}", allow_redirects=False, timeout=TIMEOUT))
        if answer.status_code == 200:  # the first time: the consent page
            answer = self._call("consent", 302, lambda url: _consent(http, url, answer))
        code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
        tokens = self._call("token", 200, lambda url: requests.post(
            f"{url}/oauth/token", auth=(rp["client_id"], rp["client_secret"]), timeout=TIMEOUT,
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": f"{RP}/cb",
                  "code_verifier": verifier}))
        done = Completed(login_id, tokens.json()["access_token"], started, time.monotonic())
        self.completed.append(done)
        return done

    def _call(self, step: str, expected, send) -> requests.Response:
        url, started = self.hops(), time.monotonic()
        try:
            response = send(url)
        except requests.RequestException as exc:
            self.calls.append(Call(step, started, time.monotonic(), None, False, error=repr(exc)[:200]))
            raise _Failed from None
        ok = response.status_code in (expected if isinstance(expected, tuple) else (expected,))
        self.calls.append(Call(step, started, time.monotonic(), response.status_code, ok))
        if not ok:
            raise _Failed
        return response

    def keep_logging_in(self, until: float, kill: dict) -> None:
        """Log in again and again until ``until``, and on past it until one login begun after the kill
        (``kill["at"]``) has completed: a loaded machine may take longer than the load to get there."""
        deadline = until + 60
        while time.monotonic() < until or (time.monotonic() < deadline and not self._logged_in_after(kill.get("at"))):
            try:
                self.login()
            except _Failed:
                pass

    def _logged_in_after(self, moment: float | None) -> bool:
        return moment is not None and any(login.started > moment for login in self.completed)


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _consent(http: requests.Session, url: str, page: requests.Response) -> requests.Response:
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    fields = {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)}
    return http.post(url + action, data={**fields, "decision": "approve"}, allow_redirects=False, timeout=TIMEOUT)


# -- any instance serves any step ----------------------------------------------------------------------


def test_a_card_login_begun_on_one_instance_completes_on_the_other(topology, pki):
    first, second = topology.instance_urls
    person = Person(topology, pki, Hops(first, second))
    done = person.login()
    served = [(call.step, call.status) for call in person.calls]
    consent = [("authorize", 200), ("consent", 302)] if len(served) == 6 else [("authorize", 302)]
    # On the first instance, the second, the first, …; the consent page unless an earlier test gave it.
    assert served == [("csrf", 200), ("card-login/begin", 200), ("card-login/complete", 200), *consent,
                      ("token", 200)]
    tokens = _rows(topology, "SELECT auth_session_id FROM oidc_tokens WHERE access_token_hash = :hash",
                   hash=hashlib.sha256(done.access_token.encode()).hexdigest())
    assert len(tokens) == 1 and tokens[0].auth_session_id is not None


def test_a_passkey_login_at_the_relying_party_hops_between_instances_at_every_step(topology, pki):
    """The same-device passkey login of tests/app/oidc/test_phone_login.py, each request on the other
    instance than the one before: the browser key and CSRF token in the signed cookie, the login request,
    its passkey challenge, the login marker and the code all found by whichever instance is asked."""
    public, hops = topology.url, Hops(*topology.instance_urls)
    phone = _bound_phone(topology, pki)
    rp, http = topology.rp, requests.Session()
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    query = urlencode({"response_type": "code", "client_id": rp["client_id"], "redirect_uri": f"{RP}/cb",
                       "scope": "openid", "state": "st", "nonce": nonce, "code_challenge": _challenge(verifier),
                       "code_challenge_method": "S256"})

    def get(path: str) -> requests.Response:
        return http.get(hops() + path, allow_redirects=False, timeout=TIMEOUT)

    def post(path: str, body: dict) -> requests.Response:
        token = get("/api/v1/csrf").json()["csrf_token"]
        return http.post(hops() + path, json=body, headers={"X-CSRF-Token": token}, allow_redirects=False,
                         timeout=TIMEOUT)

    to_login = get(f"/authorize?{query}")
    assert to_login.status_code == 302 and to_login.headers["Location"].startswith("/authorize/login?")
    page = get(to_login.headers["Location"])
    assert page.status_code == 200, page.text
    authorize = html.unescape(re.search(r'data-authorize-query="([^"]*)"', page.text).group(1))
    created = post("/api/v1/login-requests", {"authorize": authorize})
    assert created.status_code == 201, created.text
    base = f"/api/v1/login-requests/{created.json()['login_request_id']}/passkey"
    options = post(f"{base}/options", {})  # a fresh challenge, from yet another instance than the request's
    assert options.status_code == 200, options.text
    credential = phone.browser.get(options.json()["publicKey"], origin=public)  # the browser's origin: HAProxy's
    done = post(f"{base}/complete", {"credential": credential})
    assert done.status_code == 200, done.text
    location = done.json()["redirect"]
    if location.startswith("/"):  # back to /authorize: the consent page, unless an earlier test gave it
        callback = get(location)
        if callback.status_code == 200:
            callback = _consent(http, hops(), callback)
        assert callback.status_code == 302, callback.text
        location = callback.headers["Location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = requests.post(f"{hops()}/oauth/token", auth=(rp["client_id"], rp["client_secret"]), timeout=TIMEOUT,
                           data={"grant_type": "authorization_code", "code": code, "redirect_uri": f"{RP}/cb",
                                 "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    discovery = requests.get(f"{hops()}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    keys = KeySet.import_key_set(requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json())
    claims = jwt.decode(tokens.json()["id_token"], keys,
                        algorithms=discovery["id_token_signing_alg_values_supported"]).claims
    assert claims["iss"] == public and claims["nonce"] == nonce and claims["amr"] == ["hwk", "user"]


def _bound_phone(topology: Topology, pki) -> PhoneClient:
    """A software phone bound to 王小明 through the binding flow, through HAProxy."""
    http = requests.Session()
    token = http.get(f"{topology.url}/api/v1/csrf", timeout=TIMEOUT).json()["csrf_token"]
    begin = http.post(f"{topology.url}/api/v1/card-login/begin", headers={"X-CSRF-Token": token}, timeout=TIMEOUT)
    signed = make_signature(pki, card_of(pki, "A123456789"), begin.json()["tbs"])
    done = http.post(f"{topology.url}/api/v1/card-login/complete", json={"login_id": begin.json()["login_id"], **signed},
                     headers={"X-CSRF-Token": token}, timeout=TIMEOUT)
    assert done.json()["status"] == "logged_in", done.text
    token = http.get(f"{topology.url}/api/v1/csrf", timeout=TIMEOUT).json()["csrf_token"]
    binding = http.post(f"{topology.url}/api/v1/bindings", json={}, headers={"X-CSRF-Token": token}, timeout=TIMEOUT)
    assert binding.status_code == 201, binding.text
    phone = PhoneClient(PhoneBrowser(SoftwareAuthenticator(None)))
    phone.bind(binding.json()["url"], "我的手機")
    return phone


def test_a_rate_limit_counts_the_requests_of_every_instance_together(topology):
    hops = Hops(*topology.instance_urls)
    statuses = [requests.post(f"{hops()}/moise/sp/getSpTicket", data="not json", timeout=TIMEOUT).status_code
                for _ in range(REFUSALS + 1)]
    assert statuses == [400] * REFUSALS + [429]  # the last one on the instance that had counted only one


# -- one instance killed under load --------------------------------------------------------------------


def test_killing_an_instance_under_load_fails_only_the_requests_it_was_answering(topology, pki):
    Person(topology, pki, Hops(topology.url)).login()  # the consent, given before the rush
    people = [Person(topology, pki, Hops(topology.url)) for _ in range(CLIENTS)]
    until = time.monotonic() + LOAD_SECONDS
    kill: dict = {}
    threads = [threading.Thread(target=person.keep_logging_in, args=(until, kill)) for person in people]
    for thread in threads:
        thread.start()
    time.sleep(KILL_AFTER)
    kill_began = time.monotonic()
    topology.kill(1)
    killed = kill["at"] = time.monotonic()  # master and worker gone: nothing more reaches the instance
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 90)
    load_ended = time.monotonic()

    calls = [call for person in people for call in person.calls]
    completed = [login for person in people for login in person.completed]
    failed = [call for call in calls if not call.ok]
    after = [login for login in completed if login.started > killed]
    answers = collections.Counter((call.step, call.status) for call in calls)
    summary = (f"{len(calls)} requests, {len(completed)} logins ({len(after)} begun after the kill), "
               f"killed in {killed - kill_began:.3f} s, {len(failed)} failed (step, status, start from the kill): "
               f"{[(c.step, c.status, round(c.started - kill_began, 3)) for c in failed]} "
               f"({sorted({c.error for c in failed})}); answers {dict(answers)}")
    print(summary)
    served_by_the_killed = topology.instances[1].log(chars=None).count("/api/v1/card-login/complete")
    assert served_by_the_killed, "the killed instance was serving its share before the kill"
    # Only what was in flight at the kill: begun before it, ended after it, and no answer from the instance:
    # HAProxy closes the client's connection (a request that was not the connection's first, which the
    # client may send again), or answers 502 or 503; never another 5xx, never a refusal.
    assert all(call.started < killed and call.ended > kill_began for call in failed), summary
    assert all(call.status in (None, 502, 503) for call in failed), summary
    assert len(failed) <= CLIENTS, summary  # one request in flight per client at most
    # The other instance goes on serving: every client logged in again after the kill, through HAProxy.
    assert all(any(login.started > killed for login in person.completed) for person in people), summary
    assert not topology.instances[1].running() and topology.instances[0].running()
    assert topology.balanced() == {"instance1": "UP", "instance2": "DOWN"}

    _every_completed_login_is_whole(topology, completed)
    _nothing_is_half_written(topology)
    time.sleep(max(0.0, load_ended + 2 - time.monotonic()))  # an event written unsealed is sealed within ~1 s
    verified = topology.flask("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _rows(topology: Topology, query: str, **params) -> list:
    engine = sa.create_engine(topology.env["MOCERT_DATABASE_URL"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(query), params))
    finally:
        engine.dispose()


def _events(topology: Topology) -> list[tuple[str, dict]]:
    return [(row.tag, row.details if isinstance(row.details, dict) else json.loads(row.details))
            for row in _rows(topology, "SELECT tag, details FROM audit_events")]


def _every_completed_login_is_whole(topology: Topology, completed: list[Completed]) -> None:
    """Each login that got its tokens: its card login logged in, its session, its token, their events."""
    events = _events(topology)
    card_logins = {d["login_id"] for tag, d in events if tag == "card:login:success"}
    token_sessions = {d["auth_session"] for tag, d in events if tag == "oidc:token:issued"}
    outcomes = {row.id: row.outcome for row in _rows(topology, "SELECT id, outcome FROM card_logins")}
    tokens = {row.access_token_hash: row.auth_session_id
              for row in _rows(topology, "SELECT access_token_hash, auth_session_id FROM oidc_tokens")}
    sessions = {row.id for row in _rows(topology, "SELECT id FROM auth_sessions")}
    for login in completed:
        session = tokens.get(hashlib.sha256(login.access_token.encode()).hexdigest())
        assert outcomes.get(login.login_id) == "logged_in" and login.login_id in card_logins, login
        assert session in sessions and session in token_sessions, login


def _nothing_is_half_written(topology: Topology) -> None:
    """Every change and its audit event committed together, or neither, whatever was in flight at the kill:
    each logged-in card login has its event and its session, each code and token its event."""
    events = _events(topology)
    tags = collections.Counter(tag for tag, _ in events)
    logged_in = {row.id for row in _rows(topology, "SELECT id FROM card_logins WHERE outcome = 'logged_in'")}
    assert logged_in == {d["login_id"] for tag, d in events if tag == "card:login:success"}
    assert len(_rows(topology, "SELECT id FROM auth_sessions WHERE method = 'card'")) == len(logged_in)
    assert len(_rows(topology, "SELECT id FROM oidc_authorization_codes")) == tags["oidc:login:success"]
    assert len(_rows(topology, "SELECT id FROM oidc_tokens")) == tags["oidc:token:issued"]
