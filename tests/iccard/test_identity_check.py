"""The identity-check client against a real local HTTP server: what it sends, and how it reads answers."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from iccard.identity_check import IdentityCheckClient, IdentityCheckUnavailable, Verdict
from tests.support import free_port

CERTIFICATE = b"\x30\x82 a certificate's DER"


class _Service(ThreadingHTTPServer):
    """Answers every POST with ``status`` and ``body``, after ``delay`` seconds; keeps what it was sent."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status, self.body, self.delay = 200, b'{"result": "confirmed"}', 0.0
        self.received: list[tuple[dict, dict]] = []
        self.url = f"http://127.0.0.1:{self.server_port}/check"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", "0"))
        self.server.received.append((dict(self.headers), json.loads(self.rfile.read(length))))
        time.sleep(self.server.delay)
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def service():
    server = _Service()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _client(url, token="s3cret", timeout=2.0):
    return IdentityCheckClient(url, token=token, timeout=timeout)


def test_it_posts_the_certificate_and_id_as_json_with_the_bearer_token(service):
    assert _client(service.url).check(CERTIFICATE, "A123456789") is Verdict.CONFIRMED
    [(headers, body)] = service.received
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"
    assert body == {"certificate": base64.b64encode(CERTIFICATE).decode(), "national_id": "A123456789"}


def test_denied_is_an_answer(service):
    service.body = b'{"result": "denied"}'
    assert _client(service.url).check(CERTIFICATE, "A123456789") is Verdict.DENIED


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b'{"error": "unauthorized"}'),  # our credentials refused
        (500, b'{"result": "confirmed"}'),  # a yes with an error status is no yes
        (302, b""),  # redirects are not followed
        (200, b"confirmed"),  # not JSON
        (200, b'["confirmed"]'),  # not an object
        (200, b'{"result": "maybe"}'),
        (200, b'{"result": true}'),
    ],
)
def test_anything_but_confirmed_or_denied_is_unavailable(service, status, body):
    service.status, service.body = status, body
    with pytest.raises(IdentityCheckUnavailable):
        _client(service.url).check(CERTIFICATE, "A123456789")


def test_no_answer_within_the_timeout_is_unavailable(service):
    service.delay = 1.0
    started = time.monotonic()
    with pytest.raises(IdentityCheckUnavailable, match="Timeout"):
        _client(service.url, timeout=0.2).check(CERTIFICATE, "A123456789")
    assert time.monotonic() - started < 0.9


def test_an_unreachable_or_unconfigured_service_is_unavailable():
    port = free_port()  # a port nothing listens on
    with pytest.raises(IdentityCheckUnavailable):
        _client(f"http://127.0.0.1:{port}/check").check(CERTIFICATE, "A123456789")
    with pytest.raises(IdentityCheckUnavailable, match="configured"):
        _client(None).check(CERTIFICATE, "A123456789")
