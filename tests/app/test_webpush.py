"""app/webpush.py against a push service on this machine (tests/app/push_service.py: the vendors' services are
outside it): what it posts is encrypted to the browser's keys and signed with VAPID, and the service's
answers become our errors."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app import webpush

from .push_service import BrowserKeys, PushService, vapid_claims

SUBJECT = "mailto:ops@mocert.example.tw"


@pytest.fixture
def service():
    service = PushService()
    yield service
    service.stop()


@pytest.fixture
def vapid() -> webpush.VapidKey:
    return webpush.VapidKey(ec.generate_private_key(ec.SECP256R1()), SUBJECT)


def _subscription(service, keys: BrowserKeys, name="phone") -> webpush.Subscription:
    return webpush.subscription_of(keys.subscription(service.endpoint(name)), webpush.PushServices.of([service.url]))


def test_a_message_is_encrypted_to_the_browser_and_signed_for_the_push_service(service, vapid):
    keys = BrowserKeys()
    before = int(time.time())
    webpush.send(_subscription(service, keys), {"kind": "sp_request", "sp_name": "臺灣雲市集"}, vapid=vapid, ttl=120,
                 timeout=5)
    [message] = service.to("phone")
    assert message.headers["content-encoding"] == "aes128gcm"
    assert (message.headers["ttl"], message.headers["urgency"]) == ("120", "high")
    assert "臺灣雲市集".encode() not in message.body  # the push service cannot read it
    assert json.loads(keys.decrypt(message.body)) == {"kind": "sp_request", "sp_name": "臺灣雲市集"}
    claims = vapid_claims(message.headers["authorization"], vapid.application_server_key)
    assert claims["aud"] == service.url and claims["sub"] == SUBJECT
    assert before < claims["exp"] <= before + 24 * 3600  # RFC 8292: at most a day


def test_another_browsers_keys_cannot_read_it(service, vapid):
    keys = BrowserKeys()
    webpush.send(_subscription(service, keys), {"kind": "x"}, vapid=vapid, ttl=0, timeout=5)
    with pytest.raises(Exception):  # noqa: B017 - AES-GCM's InvalidTag: another key, another secret
        BrowserKeys().decrypt(service.to("phone")[0].body)


@pytest.mark.parametrize("status", [404, 410])
def test_a_subscription_the_service_no_longer_knows_is_gone(service, vapid, status):
    service.answers["/push/phone"] = status
    with pytest.raises(webpush.SubscriptionGone) as gone:
        webpush.send(_subscription(service, BrowserKeys()), {}, vapid=vapid, ttl=0, timeout=5)
    assert gone.value.reason == f"http_{status}"


@pytest.mark.parametrize(("answer", "reason"), [(500, "http_500"), (429, "http_429"), (403, "http_403"),
                                                (307, "redirected"), ((201, 3), "timeout")])
def test_any_other_answer_is_a_failure_and_a_redirect_is_not_followed(service, vapid, answer, reason):
    service.answers["/push/phone"] = answer
    with pytest.raises(webpush.PushFailed) as failed:
        webpush.send(_subscription(service, BrowserKeys()), {}, vapid=vapid, ttl=0, timeout=1)
    assert failed.value.reason == reason
    assert len(service.messages) == 1  # not to the redirect's Location


def test_a_service_that_is_not_there_is_unreachable(vapid):
    service = PushService()
    subscription = _subscription(service, BrowserKeys())
    service.stop()
    with pytest.raises(webpush.PushFailed) as failed:
        webpush.send(subscription, {}, vapid=vapid, ttl=0, timeout=2)
    assert failed.value.reason == "unreachable"


def test_sending_to_several_waits_one_timeout_not_one_each(service, vapid):
    keys = [BrowserKeys() for _ in range(3)]
    subscriptions = [_subscription(service, k, f"p{i}") for i, k in enumerate(keys)]
    service.answers["/push/p0"] = (201, 5)
    service.answers["/push/p1"] = 410
    started = time.monotonic()
    outcomes = webpush.send_all(subscriptions, {"kind": "x"}, vapid=vapid, ttl=0, timeout=1)
    assert time.monotonic() - started < 3.5
    assert [type(o).__name__ if o else None for o in outcomes] == ["PushFailed", "SubscriptionGone", None]
    assert outcomes[0].reason == "timeout"


def test_sends_queued_behind_a_hanging_service_are_taken_back_not_sent_late(service, vapid):
    # 16 sends, 4 at a time, each failing at its own 0.5 s timeout: four waves, and the call waits 1.5 s.
    subscriptions = [_subscription(service, BrowserKeys(), f"p{i}") for i in range(16)]
    for i in range(16):
        service.answers[f"/push/p{i}"] = (201, 3)
    outcomes = webpush.send_all(subscriptions, {"kind": "x"}, vapid=vapid, ttl=0, timeout=0.5)
    reasons = [o.reason for o in outcomes]
    assert set(reasons) <= {"timeout", "not_sent"} and reasons.count("not_sent") >= 4
    time.sleep(3)
    assert len(service.messages) == reasons.count("timeout")  # those taken back never went


def test_past_the_queues_bound_a_send_is_not_queued_at_all(service, vapid, monkeypatch):
    import threading

    monkeypatch.setattr(webpush, "_SLOTS", threading.BoundedSemaphore(2))
    subscriptions = [_subscription(service, BrowserKeys(), f"p{i}") for i in range(3)]
    outcomes = webpush.send_all(subscriptions, {"kind": "x"}, vapid=vapid, ttl=0, timeout=1)
    assert [o.reason if o else None for o in outcomes] == [None, None, "busy"]
    assert webpush.send_all(subscriptions[:1], {"kind": "x"}, vapid=vapid, ttl=0, timeout=1) == [None]  # released


# -- what is taken as a subscription, a push service, a key ------------------------------------------------


@pytest.mark.parametrize(("change", "reason"), [
    (lambda s: "not a dict", "not_an_object"),
    (lambda s: {**s, "endpoint": None}, "endpoint"),
    (lambda s: {**s, "endpoint": "https://fcm.googleapis.com/a b"}, "endpoint"),
    (lambda s: {**s, "endpoint": "https://fcm.googleapis.com/" + "x" * 1000}, "endpoint"),
    (lambda s: {**s, "endpoint": "https://push.evil.example/fcm/send/x"}, "push_service"),
    (lambda s: {**s, "endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "push_service"),
    (lambda s: {**s, "endpoint": "https://user@fcm.googleapis.com/fcm/send/x"}, "push_service"),
    (lambda s: {**s, "endpoint": "https://fcm.googleapis.com.evil.example/x"}, "push_service"),
    (lambda s: {**s, "endpoint": "https://notify.windows.com.evil.example/x"}, "push_service"),
    (lambda s: {**s, "keys": None}, "keys"),
    (lambda s: {**s, "keys": {**s["keys"], "p256dh": "AAAA"}}, "p256dh"),
    (lambda s: {**s, "keys": {**s["keys"], "p256dh": "BA" + "A" * 85}}, "p256dh"),  # 65 bytes, not on the curve
    (lambda s: {**s, "keys": {**s["keys"], "auth": "AAAA"}}, "auth"),
    (lambda s: {**s, "keys": {**s["keys"], "auth": 7}}, "auth"),
])
def test_a_subscription_is_checked_before_it_is_kept(change, reason):
    services = webpush.PushServices.of(["https://fcm.googleapis.com", "https://*.notify.windows.com"])
    good = BrowserKeys().subscription("https://fcm.googleapis.com/fcm/send/abc")
    assert webpush.subscription_of(good, services).endpoint == good["endpoint"]
    assert services.allows("https://wns2-par02p.notify.windows.com/w/?token=x")
    with pytest.raises(webpush.InvalidSubscription) as refused:
        webpush.subscription_of(change(good), services)
    assert refused.value.reason == reason


@pytest.mark.parametrize("origin", ["fcm.googleapis.com", "http://push.example.tw", "https://push.example.tw/path",
                                    "https://"])
def test_a_push_service_that_is_no_secure_origin_is_refused(origin):
    with pytest.raises(ValueError):
        webpush.PushServices.of([origin])


def test_a_vapid_key_loads_from_pem_or_a_file_and_only_p256(tmp_path):
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    (tmp_path / "vapid.pem").write_text(pem)
    assert webpush.load_private_key(pem).private_numbers() == webpush.load_private_key(
        str(tmp_path / "vapid.pem")).private_numbers()
    other_curve = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    for wrong, says in ((other_curve, "P-256"), (rsa_key, "P-256"), (str(tmp_path / "missing.pem"), "cannot be read"),
                        ("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----", "PEM private key")):
        with pytest.raises(ValueError, match=says):
            webpush.load_private_key(wrong)
    key = webpush.load_private_key(pem)
    for subject in ("ops@mocert.example.tw", "mailto:", "http://mocert.example.tw", None):
        with pytest.raises(ValueError, match="mailto"):
            webpush.VapidKey(key, subject)


def test_developments_key_is_marked_as_such_and_still_loads(tmp_path):
    pem = webpush.demo_key_pem()
    (tmp_path / "demo.pem").write_text(pem)
    assert webpush.is_demo_key(pem) and webpush.is_demo_key(str(tmp_path / "demo.pem"))
    assert isinstance(webpush.load_private_key(pem), ec.EllipticCurvePrivateKey)
    assert not webpush.is_demo_key(pem.split("\n", 1)[1]) and not webpush.is_demo_key(None)
