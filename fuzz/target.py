"""The server under test: MoCert under gunicorn on a fresh database, migrated and seeded over HTTP.

Production-like where it can be: gunicorn with several workers and threads, ``MOCERT_ENV=development``
without the debugger, mail to a real SMTP server (aiosmtpd, here), rate limiting on. What production
would refuse is what a test needs: the demo PKI (cards we can sign with), an http public URL on
localhost, and limits high enough (``FUZZ_RATE_LIMIT``) that the fuzz reaches the views instead of
collecting 429s — the limiter still runs on every request, only its ceilings are out of reach.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path

import requests

from iccard.demo_pki import DemoPKI

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get("MOCERT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
FUZZ_RATE_LIMIT = "1000000/minute"
PERSON_ID = "A123456789"  # 王小明: a person with a confirmed email and a bound phone
ADMIN_ID = "B223456782"  # 陳美玲: an admin
RP_REDIRECT = "https://rp.example/cb"


class TargetError(RuntimeError):
    """The server could not be set up (a database, gunicorn or the seeding failed)."""


class Mailbox:
    """An SMTP server on 127.0.0.1 that keeps what it receives (the confirmation codes)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def __enter__(self) -> Mailbox:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Seed:
    """What the seeding made: ids and secrets that let fuzzed requests get past the first checks."""

    account_ids: list[int] = field(default_factory=list)
    device_ids: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    client_ids: list[str] = field(default_factory=list)
    agency_ids: list[str] = field(default_factory=list)  # sp_service_ids
    client_secret: str = ""
    service_token: str = ""
    binding_ids: list[str] = field(default_factory=list)
    binding_tokens: list[str] = field(default_factory=list)
    login_ids: list[str] = field(default_factory=list)  # login requests at /authorize (public ids)
    login_tokens: list[str] = field(default_factory=list)  # their phone-side tokens (/m/login/<token>)


class Target:
    """``with Target("sqlite", workdir, mailbox) as target:`` a seeded server at ``target.url``."""

    def __init__(self, database: str, workdir: Path, mailbox: Mailbox, *, workers: int = 2, threads: int = 4) -> None:
        if database not in ("sqlite", "postgresql"):
            raise ValueError(f"database must be sqlite or postgresql, not {database!r}")
        self.database, self.mailbox = database, mailbox
        self.workdir = workdir / database
        self.instance = self.workdir / "instance"
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.address = ("127.0.0.1", self.port)
        self.host = f"localhost:{self.port}".encode()
        self.log_path = self.workdir / "gunicorn.log"
        self.workers, self.threads = workers, threads
        self.seed = Seed()
        self.routes: list = []  # [rule, method, endpoint] of the app's url_map
        self._pg_name: str | None = None
        self._process: subprocess.Popen | None = None
        # The demo PKI (CRL, OCSP, identity check) is served by a process of its own: a server that asks
        # itself while answering starves once every thread waits on such a call (fuzzed card logins and
        # registrations come eight at a time).
        self.pki_port = free_port()
        self.pki_url = f"http://localhost:{self.pki_port}"
        self._pki_process: subprocess.Popen | None = None
        self.pki: DemoPKI | None = None

    # -- setting up -------------------------------------------------------------------------------------

    def __enter__(self) -> Target:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = self._environment(self._database_url())
        self.flask(["pki", "init-demo"], env={**self.env, "MOCERT_PUBLIC_URL": self.pki_url})
        from iccard.demo_pki import identity_check_token

        self.env.update(
            MOCERT_IDENTITY_CHECK_URL=f"{self.pki_url}/pki/demo/identity-check",
            MOCERT_IDENTITY_CHECK_TOKEN=identity_check_token(self.instance / "demo-pki"),
        )
        _, client, public, agency, self.routes = self.flask(
            ["db", "upgrade"],
            ["clients", "add", "--name", "Fuzz RP", "--redirect-uri", RP_REDIRECT,
             "--post-logout-redirect-uri", "https://rp.example/bye"],
            ["clients", "add", "--name", "Fuzz public RP", "--public", "--redirect-uri", RP_REDIRECT,
             "--allow-national-id", "--scope", "openid profile email national_id"],
            ["agencies", "add", "--name", "Fuzz agency", "--allow-ip", "127.0.0.1"],
            ["routes"],
        )
        self.pki = DemoPKI(self.instance / "demo-pki")
        client, public = json.loads(client), json.loads(public)
        self.seed.client_ids += [client["client_id"], public["client_id"]]
        self.seed.client_secret = client["client_secret"]
        self.seed.agency_ids.append(json.loads(agency)["sp_service_id"])
        self._serve()
        self._seed_people()

    def _database_url(self) -> str:
        if self.database == "sqlite":
            return f"sqlite:///{self.workdir / 'mocert.db'}"
        import sqlalchemy as sa

        self._pg_name = f"mocert_fuzz_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{self._pg_name}"'))
        except sa.exc.OperationalError as exc:
            self._pg_name = None
            raise TargetError(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}") from exc
        finally:
            admin.dispose()
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{self._pg_name}"

    def _environment(self, database_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOCERT_")}
        env.update(
            MOCERT_ENV="development",
            MOCERT_INSTANCE_DIR=str(self.instance),
            MOCERT_DATABASE_URL=database_url,
            MOCERT_PUBLIC_URL=self.url,
            MOCERT_SMTP_HOST="127.0.0.1",
            MOCERT_SMTP_PORT=str(self.mailbox.port),
            MOCERT_MAIL_TO_CONSOLE="0",
            MOCERT_RATELIMIT_ENABLED="1",
            MOCERT_RATELIMIT_STORAGE_URI="memory://",
            MOCERT_CARD_LOGIN_RATE_LIMIT=FUZZ_RATE_LIMIT,
            MOCERT_REGISTRATION_RATE_LIMIT=FUZZ_RATE_LIMIT,
            MOCERT_PHONE_RATE_LIMIT=FUZZ_RATE_LIMIT,
            MOCERT_CARD_REVOCATION_TIMEOUT="10",
            PYTHONDONTWRITEBYTECODE="1",
        )
        return env

    def flask(self, *commands: list[str], env: dict[str, str] | None = None) -> list:
        """Run ``flask`` commands (argument lists) against this server's database and instance, in one
        process; returns their outputs."""
        result = subprocess.run([sys.executable, "-m", "fuzz.commands", *map(json.dumps, commands)], cwd=ROOT,
                                env=env or self.env, capture_output=True, text=True, timeout=300)
        last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if result.returncode != 0 or not last.startswith("["):
            raise TargetError(f"flask {commands} failed:\n{result.stdout}{result.stderr}")
        return json.loads(last)

    def _serve(self) -> None:
        self._log = open(self.log_path, "ab")
        self._pki_process = self._gunicorn(self.pki_port, workers=1, threads=4)
        self._process = self._gunicorn(self.port, workers=self.workers, threads=self.threads)
        for process, url in ((self._pki_process, self.pki_url), (self._process, self.url)):
            self._wait_until_up(process, url)

    def _gunicorn(self, port: int, *, workers: int, threads: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
             "--timeout", "120", "--graceful-timeout", "5", "--error-logfile", "-", "--no-control-socket"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def _wait_until_up(self, process: subprocess.Popen, url: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise TargetError(f"gunicorn exited ({process.returncode}); see {self.log_path}")
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TargetError(f"gunicorn did not answer {url}/healthz within 60 s; see {self.log_path}")

    def stop(self) -> None:
        for process in (self._process, self._pki_process):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
        self._process = self._pki_process = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self._pg_name is not None:
            import sqlalchemy as sa

            admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self._pg_name}" WITH (FORCE)'))
            admin.dispose()
            self._pg_name = None

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")

    # -- seeding, over HTTP as people would ---------------------------------------------------------------

    def _seed_people(self) -> None:
        person = self.register(PERSON_ID, "wang@example.com")
        admin = self.register(ADMIN_ID, "chen@example.com")
        granted = ("read", "accounts:write", "devices:write", "clients:write", "agencies:write")
        scopes = sum((["--scope", s] for s in granted), [])
        _, token = self.flask(["admin", "grant", ADMIN_ID, "--role", "admin", "--reason", "fuzz"],
                              ["admin", "token", "create", "--name", "fuzz", *scopes])
        token = json.loads(token)
        self.seed.token_ids.append(token["id"])
        self.seed.service_token = token["service_token"]
        self.seed.account_ids = self._ids("accounts")
        self.seed.device_ids.append(self.bind_phone(person))
        binding = self.new_binding(person)  # one binding left open, its token and id for the path values
        self.seed.binding_ids.append(binding[0])
        self.seed.binding_tokens.append(binding[1])
        login = self.new_login_request(requests.Session())
        self.seed.login_ids.append(login["login_request_id"])
        self.seed.login_tokens.append(login["url"].rsplit("/", 1)[1])

    def authorize_query(self) -> str:
        from urllib.parse import urlencode

        return urlencode({"response_type": "code", "client_id": self.seed.client_ids[0], "redirect_uri": RP_REDIRECT,
                          "scope": "openid", "state": "s", "nonce": "n", "code_challenge_method": "S256",
                          "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"})

    def new_login_request(self, http: requests.Session) -> dict:
        """A login at /authorize started by ``http``'s browser (its QR code's token in ``url``)."""
        response = http.post(f"{self.url}/api/v1/login-requests", json={"authorize": self.authorize_query()},
                             headers={"X-CSRF-Token": self.csrf(http)}, timeout=30)
        if response.status_code != 201:
            raise TargetError(f"login-requests answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def restore(self) -> None:
        """Undo what fuzzed admin requests may have done to the seeded people, so they can log in again:
        unlock the accounts and make 陳美玲 an admin again (the harness's own repair, not an audited act)."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.env["MOCERT_DATABASE_URL"])
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE accounts SET locked_at = NULL"))
        finally:
            engine.dispose()
        self.flask(["admin", "grant", ADMIN_ID, "--role", "admin", "--reason", "fuzz"])

    def _ids(self, table: str) -> list[int]:
        import sqlalchemy as sa

        engine = sa.create_engine(self.env["MOCERT_DATABASE_URL"])
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(f"SELECT id FROM {table} ORDER BY id")).scalars())
        finally:
            engine.dispose()

    def csrf(self, http: requests.Session) -> str:
        return http.get(f"{self.url}/api/v1/csrf", timeout=10).json()["csrf_token"]

    def begin_card_login(self, http: requests.Session) -> dict:
        response = http.post(f"{self.url}/api/v1/card-login/begin", headers={"X-CSRF-Token": self.csrf(http)},
                             timeout=30)
        if response.status_code != 200:
            raise TargetError(f"card-login/begin answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def card_login(self, national_id: str, http: requests.Session | None = None) -> tuple[requests.Session, dict]:
        """A card login as the component would answer it; returns the session and the answer."""
        from tests.support import card_of, make_signature

        http = http or requests.Session()
        begin = self.begin_card_login(http)
        signed = make_signature(self.pki, card_of(self.pki, national_id), begin["tbs"], "PKCS7", begin["hashAlgorithm"])
        done = http.post(f"{self.url}/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed},
                         headers={"X-CSRF-Token": self.csrf(http)}, timeout=60)
        return http, done.json() if done.headers.get("content-type", "").startswith("application/json") else {}

    def signed_answer(self, card_index: int, tbs: str, signature_type: str = "PKCS7") -> dict:
        """The component's answer signed by demo card ``card_index`` (valid, expired, replaced, revoked)."""
        from tests.support import make_signature

        cards = self.pki.cards
        return make_signature(self.pki, cards[card_index % len(cards)], tbs, signature_type)

    def register(self, national_id: str, email: str) -> requests.Session:
        http, answer = self.card_login(national_id)
        if answer.get("status") != "registration_required":
            raise TargetError(f"card login of a new card answered {answer}")
        before = len(self.mailbox.messages)
        response = http.post(f"{self.url}/api/v1/account/register",
                             json={"national_id": national_id, "email": email, "phone": "0912-345-678"},
                             headers={"X-CSRF-Token": self.csrf(http)}, timeout=30)
        if response.status_code != 201:
            raise TargetError(f"registration answered {response.status_code}: {response.text[:300]}")
        code = self._mailed_code(before)
        response = http.post(f"{self.url}/api/v1/account/verify-email", json={"code": code},
                             headers={"X-CSRF-Token": self.csrf(http)}, timeout=30)
        if response.status_code != 200:
            raise TargetError(f"verify-email answered {response.status_code}: {response.text[:300]}")
        return http

    def _mailed_code(self, before: int) -> str:
        import re

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for message in self.mailbox.messages[before:]:
                parts = message.walk() if message.is_multipart() else [message]
                for part in parts:
                    if part.get_content_type() == "text/plain":
                        found = re.search(r"\b(\d{6})\b", part.get_payload(decode=True).decode("utf-8", "replace"))
                        if found:
                            return found.group(1)
            time.sleep(0.2)
        raise TargetError("no confirmation code was mailed")

    def new_binding(self, http: requests.Session) -> tuple[str, str]:
        response = http.post(f"{self.url}/api/v1/bindings", json={}, headers={"X-CSRF-Token": self.csrf(http)},
                             timeout=30)
        if response.status_code != 201:
            raise TargetError(f"bindings answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        return body["binding_id"], body["url"].rsplit("/", 1)[1]

    def bind_phone(self, http: requests.Session) -> int:
        from webauthn.phone.authenticator import SoftwareAuthenticator
        from webauthn.phone.browser import PhoneBrowser

        _, token = self.new_binding(http)
        options = requests.post(f"{self.url}/api/v1/m/bind/{token}/options", json={}, timeout=30).json()
        credential = PhoneBrowser(SoftwareAuthenticator(None)).create(options["publicKey"], origin=self.url)
        response = requests.post(f"{self.url}/api/v1/m/bind/{token}/complete",
                                 json={"credential": credential, "device_name": "Fuzz phone"}, timeout=30)
        if response.status_code != 201:
            raise TargetError(f"binding a phone answered {response.status_code}: {response.text[:300]}")
        return response.json()["device"]["id"]

    def phone_credential(self, token: str) -> dict | None:
        """A real credential for binding ``token`` (its options fetched), or None when the options are refused."""
        from webauthn.phone.authenticator import SoftwareAuthenticator
        from webauthn.phone.browser import PhoneBrowser

        options = requests.post(f"{self.url}/api/v1/m/bind/{token}/options", json={}, timeout=30)
        if options.status_code != 200:
            return None
        return PhoneBrowser(SoftwareAuthenticator(None)).create(options.json()["publicKey"], origin=self.url)
