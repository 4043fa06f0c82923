"""A stand-in for a browser vendor's push service (FCM, Mozilla's, Apple's: outside this machine), and the
browser's side of a push subscription, written from the RFCs with ``cryptography`` alone.

:class:`PushService` is a local HTTP server that keeps every message posted to it and answers as it is told
(201 by default; 410 for a subscription it no longer knows; slowly). :class:`BrowserKeys` are a browser's
subscription keys: it decrypts a message (RFC 8291 over RFC 8188 aes128gcm) as the browser would.
:func:`vapid_claims` checks a message's VAPID authorization (RFC 8292) as the push service does: the JWT's
ES256 signature under the key ``k`` it names, which must be the one the browser subscribed under.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Message:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PushService:
    """``PushService()`` serves at once on 127.0.0.1; ``answers[path] = status`` (or ``(status, seconds)``)
    says how to answer a subscription's messages."""

    messages: list[Message] = field(default_factory=list)
    answers: dict[str, int | tuple[int, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                service.messages.append(Message(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                answer = service.answers.get(self.path, 201)
                status, delay = answer if isinstance(answer, tuple) else (answer, 0)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    if status in (301, 302, 307, 308):
                        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):  # the sender gave up waiting
                    pass

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def endpoint(self, name: str) -> str:
        return f"{self.url}/push/{name}"

    def to(self, name: str) -> list[Message]:
        return [m for m in self.messages if m.path == f"/push/{name}"]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class BrowserKeys:
    """A browser's subscription keys: a P-256 key pair and a 16-byte authentication secret."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self.auth = os.urandom(16)

    def subscription(self, endpoint: str) -> dict:
        """What ``PushSubscription.toJSON()`` gives the page."""
        return {"endpoint": endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(self.public), "auth": b64url(self.auth)}}

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 §3.4 and RFC 8188 §2: the header (salt, record size, the sender's public key), then one
        record, its padding delimiter 0x02 last."""
        salt, record_size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        sender = body[21:21 + id_length]
        records = body[21 + id_length:]
        assert len(records) <= record_size, "one record"
        sender_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        shared = self.private_key.exchange(ec.ECDH(), sender_key)
        ikm = HKDF(hashes.SHA256(), 32, salt=self.auth, info=b"WebPush: info\x00" + self.public + sender).derive(shared)
        cek = HKDF(hashes.SHA256(), 16, salt=salt, info=b"Content-Encoding: aes128gcm\x00").derive(ikm)
        nonce = HKDF(hashes.SHA256(), 12, salt=salt, info=b"Content-Encoding: nonce\x00").derive(ikm)
        plain = AESGCM(cek).decrypt(nonce, records, None).rstrip(b"\x00")
        assert plain.endswith(b"\x02"), "the last record's delimiter"
        return plain[:-1]


def vapid_claims(authorization: str, application_server_key: str) -> dict:
    """The claims of ``Authorization: vapid t=<JWT>, k=<key>`` once its ES256 signature holds under ``k``,
    and ``k`` is the key the browser subscribed under."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization
    values = dict(part.strip().split("=", 1) for part in params.split(","))
    assert values["k"] == application_server_key
    header, payload, signature = values["t"].split(".")
    assert json.loads(b64url_decode(header)) == {"typ": "JWT", "alg": "ES256"}
    raw = b64url_decode(signature)
    assert len(raw) == 64
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(values["k"]))
    key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
               f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))  # raises InvalidSignature
    return json.loads(b64url_decode(payload))
