"""Web Push (RFC 8030) with VAPID (RFC 8292) and encrypted messages (RFC 8291): the only module that talks to
the browsers' push services, over pywebpush. No Flask: everything comes in as arguments.

A phone's browser subscribes with its vendor's push service (FCM for Chrome, Mozilla's for Firefox, Apple's
for Safari) under MoCert's public VAPID key, and hands MoCert the subscription: the service's endpoint URL
and the browser's keys (``p256dh``, ``auth``). Each message is encrypted to those keys (aes128gcm), so the
push service carries what it cannot read, and sent with a VAPID token signed by MoCert's key for the
endpoint's origin: only the holder of that key can push to these subscriptions.

MoCert posts to the endpoint a phone gave it, so only to push services it is configured to trust
(:class:`PushServices`), never following a redirect: a phone cannot make the server call anywhere else.

Errors are ours: :class:`InvalidSubscription` (not a subscription we would send to), :class:`SubscriptionGone`
(404 or 410: the browser dropped it, forget it) and :class:`PushFailed` (anything else: the service down,
slow or refusing).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush

log = logging.getLogger(__name__)

ENDPOINT_MAX = 1000
# Text before the PEM of a key that development made for itself under instance/: production refuses it.
DEMO_KEY_MARK = "MoCert development VAPID key: not for production"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
GONE = {404, 410}
# One pool for the process: the notices of one request go out together, so a slow service costs the
# agency's call one timeout, not one for each phone. Only HTTP runs there, never the database.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webpush")
# At most this many sends waiting or running: while a push service hangs, notices beyond it are not queued
# (reported "busy") rather than piling up behind it.
QUEUE_MAX = 64
_SLOTS = threading.BoundedSemaphore(QUEUE_MAX)


def _submit(fn, *args, **kwargs):
    """The send as a future in the pool, or None when QUEUE_MAX are already waiting or running."""
    if not _SLOTS.acquire(blocking=False):
        return None
    future = _POOL.submit(fn, *args, **kwargs)
    future.add_done_callback(lambda _: _SLOTS.release())
    return future


class WebPushError(Exception):
    """Something of Web Push went wrong; ``reason`` says what, in a word or two (for the audit trail)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidSubscription(WebPushError):
    """Not a push subscription MoCert would send to (``reason``: which part is wrong)."""


class SubscriptionGone(WebPushError):
    """The push service no longer knows the subscription (404 or 410): it is to be forgotten."""


class PushFailed(WebPushError):
    """The message was not accepted: the service could not be reached, was too slow, or said no."""


@dataclass(frozen=True)
class Subscription:
    """What a browser's ``PushSubscription.toJSON()`` gives: where to post, and the keys to encrypt to."""

    endpoint: str
    p256dh: str  # base64url: the browser's P-256 public key, uncompressed (65 bytes)
    auth: str  # base64url: the browser's authentication secret (16 bytes)


class VapidKey:
    """MoCert's VAPID key pair and the contact it gives the push services (``mailto:`` or ``https:``)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, subject: object) -> None:
        """Raises ``ValueError`` for a subject that is neither."""
        if not isinstance(subject, str) or not subject.startswith(("mailto:", "https://")) or len(subject) < 10 \
                or any(c.isspace() for c in subject):
            raise ValueError("must be a mailto: address or an https:// URL of whoever runs this MoCert")
        self._private_key, self.subject = private_key, subject

    @property
    def application_server_key(self) -> str:
        """The public key as ``PushManager.subscribe`` takes it (base64url of the uncompressed point)."""
        return _b64url(self._private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))

    def _vapid(self) -> Vapid02:
        return Vapid02(self._private_key)


def load_private_key(value: str) -> ec.EllipticCurvePrivateKey:
    """A VAPID private key from ``value``: the PEM text itself, or the path of a PEM file; P-256 only.
    Raises ``ValueError`` saying what is wrong."""
    pem = value if "-----BEGIN" in value else _read(value)
    try:
        key = serialization.load_pem_private_key(_pem_only(pem).encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("is not a P-256 (prime256v1) EC private key, which VAPID takes")
    return key


def is_demo_key(value: str | None) -> bool:
    """Whether ``value`` (PEM or a path) is a key development made for itself (:func:`demo_key_pem`)."""
    if not value:
        return False
    try:
        text = value if "-----BEGIN" in value else Path(value).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return DEMO_KEY_MARK in text


def demo_key_pem() -> str:
    """A new P-256 key in PEM, marked as development's own (production refuses it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    return f"{DEMO_KEY_MARK}\n{pem}"


class PushServices:
    """The push services MoCert posts to: origins, a leading ``*.`` in the host for every host of a domain.
    HTTPS only, but for a service on this machine (the tests' stand-in for a vendor's service)."""

    def __init__(self, patterns: tuple[tuple[str, str, int | None], ...]) -> None:
        self._patterns = patterns

    @classmethod
    def of(cls, origins: tuple[str, ...] | list[str]) -> PushServices:
        """Raises ``ValueError`` naming an origin that is not one."""
        patterns = []
        for origin in origins:
            parts = urlsplit(origin)
            host = (parts.hostname or "").lower()
            if parts.path not in ("", "/") or parts.query or parts.fragment or not host or parts.username:
                raise ValueError(f"{origin!r} is not an origin such as https://fcm.googleapis.com")
            if not _secure(parts.scheme, host.removeprefix("*.")):
                raise ValueError(f"{origin!r} must be https:// (plain http only on this machine)")
            patterns.append((parts.scheme, host, parts.port))
        return cls(tuple(patterns))

    def allows(self, endpoint: str) -> bool:
        try:
            parts = urlsplit(endpoint)
            port = parts.port
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if parts.username or parts.password or not host:
            return False
        for scheme, pattern, pattern_port in self._patterns:
            if parts.scheme != scheme or port != pattern_port:
                continue
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return True
        return False


def subscription_of(value: object, services: PushServices) -> Subscription:
    """The subscription in a browser's ``PushSubscription.toJSON()``, checked: an endpoint of an allowed push
    service, a P-256 public key and a 16-byte secret. Raises :class:`InvalidSubscription`."""
    if not isinstance(value, dict):
        raise InvalidSubscription("not_an_object")
    endpoint, keys = value.get("endpoint"), value.get("keys")
    if not isinstance(endpoint, str) or not 0 < len(endpoint) <= ENDPOINT_MAX or not endpoint.isascii() \
            or any(c.isspace() or ord(c) < 0x21 for c in endpoint):
        raise InvalidSubscription("endpoint")
    if not services.allows(endpoint):
        raise InvalidSubscription("push_service")
    if not isinstance(keys, dict):
        raise InvalidSubscription("keys")
    p256dh, auth = _b64url_decode(keys.get("p256dh")), _b64url_decode(keys.get("auth"))
    if p256dh is None or len(p256dh) != 65 or p256dh[0] != 4:
        raise InvalidSubscription("p256dh")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise InvalidSubscription("p256dh") from None
    if auth is None or len(auth) != 16:
        raise InvalidSubscription("auth")
    return Subscription(endpoint=endpoint, p256dh=_b64url(p256dh), auth=_b64url(auth))


def send(subscription: Subscription, message: dict, *, vapid: VapidKey, ttl: int, timeout: float,
         urgency: str = "high") -> None:
    """Post ``message`` (JSON, encrypted to the subscription's keys) to its push service, which holds it for
    ``ttl`` seconds while the phone is offline. Raises :class:`SubscriptionGone` or :class:`PushFailed`."""
    session = requests.Session()
    session.max_redirects = 0  # a push service answers; it never sends MoCert's post somewhere else
    try:
        webpush(
            {"endpoint": subscription.endpoint, "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}},
            data=json.dumps(message, ensure_ascii=False, separators=(",", ":")),
            vapid_private_key=vapid._vapid(),
            vapid_claims={"sub": vapid.subject},  # a new dict each time: pywebpush adds aud and exp to it
            content_encoding="aes128gcm",
            ttl=ttl,
            timeout=timeout,
            headers={"Urgency": urgency},
            requests_session=session,
        )
    except WebPushException as exc:
        status = exc.status_code
        if status in GONE:
            raise SubscriptionGone(f"http_{status}") from None
        raise PushFailed(f"http_{status}" if status else "refused") from None
    except requests.Timeout:
        raise PushFailed("timeout") from None
    except requests.TooManyRedirects:
        raise PushFailed("redirected") from None
    except requests.RequestException:
        raise PushFailed("unreachable") from None
    except (ValueError, TypeError):  # keys the library could not use (checked when stored: a bug, or a change)
        raise PushFailed("keys") from None
    finally:
        session.close()


def send_all(subscriptions: list[Subscription], message: dict, *, vapid: VapidKey, ttl: int,
             timeout: float) -> list[WebPushError | None]:
    """:func:`send` to each subscription at once; waits at most about ``timeout`` in all. Returns, in order,
    None for each message accepted, else its error (a send still running then is a ``PushFailed("timeout")``;
    it ends by its own timeout)."""
    futures = [_submit(send, s, message, vapid=vapid, ttl=ttl, timeout=timeout) for s in subscriptions]
    wait([f for f in futures if f is not None], timeout=timeout + 1)
    outcomes: list[WebPushError | None] = []
    for future in futures:
        if future is None:
            outcomes.append(PushFailed("busy"))  # the pool's queue was full: not sent at all
            continue
        if not future.done():
            # Queued behind slow sends: taken back, so that it is not sent after the request expired while
            # the trail says it failed. One already running ends by its own timeout.
            outcomes.append(PushFailed("not_sent" if future.cancel() else "timeout"))
            continue
        error = future.exception()
        if error is not None and not isinstance(error, WebPushError):
            log.error("web push failed unexpectedly", exc_info=error)
            error = PushFailed("error")
        outcomes.append(error)
    return outcomes


def _secure(scheme: str, host: str) -> bool:
    return scheme == "https" or (scheme == "http" and host in LOOPBACK_HOSTS)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path} cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a PEM file") from None


def _pem_only(text: str) -> str:
    """The PEM block of ``text`` (a marked demo key has a line of text before it)."""
    start = text.find("-----BEGIN")
    return text[start:] if start >= 0 else text


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(value: object) -> bytes | None:
    if not isinstance(value, str) or not 0 < len(value) <= 200 or not value.isascii():
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
