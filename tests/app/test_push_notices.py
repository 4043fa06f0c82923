"""Web Push notices of pushed requests, end to end over real HTTP on SQLite and PostgreSQL: the phone opens its
inbox and subscribes as a browser does; an agency pushes a request; the push service on this machine (the
vendors' are outside it) receives a message that the subscription's keys decrypt, signed with MoCert's VAPID
key. Whatever the push service answers, the agency's call succeeds and the request waits in the inbox."""

from __future__ import annotations

import json
import re
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import PushSubscription
from app.wiring import parts

from .inbox_client import PhoneInbox
from .push_service import BrowserKeys, PushService, vapid_claims

ID = "A123456789"
SUBJECT = "mailto:ops@mocert.example.tw"


@pytest.fixture
def push_service():
    service = PushService()
    yield service
    service.stop()


@pytest.fixture
def app_config(app_config, push_service, tmp_path):
    """Notices on: a VAPID key in a PEM file, and the push service on this machine as the one allowed."""
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "vapid.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    app_config.VAPID_PRIVATE_KEY = str(tmp_path / "vapid.pem")
    app_config.VAPID_SUBJECT = SUBJECT
    app_config.PUSH_SERVICES = (push_service.url,)
    app_config.PUSH_TIMEOUT = 2
    return app_config


@pytest.fixture
def inbox(issuer, phone) -> PhoneInbox:
    inbox = PhoneInbox(issuer, phone)
    assert inbox.open().status_code == 200
    return inbox


def _events(app, tag):
    from app.models import AuditEvent

    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id))
        return [e.details for e in events]


def _subscriptions(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(PushSubscription))


def _subscribed(inbox, push_service, name="phone") -> BrowserKeys:
    keys = BrowserKeys()
    answer = inbox.subscribe(keys.subscription(push_service.endpoint(name)))
    assert (answer.status_code, answer.json()) == (201, {"status": "subscribed"}), answer.text
    return keys


def test_a_pushed_request_sends_the_phone_a_notice_only_it_can_read(app, issuer, agency, phone, push_service):
    inbox = PhoneInbox(issuer, phone)
    opened = inbox.open().json()
    with app.app_context():
        key = parts().push_notices.application_server_key
    assert opened["push"] == {"enabled": True, "application_server_key": key}
    keys = _subscribed(inbox, push_service)

    call = agency.push(ID, hint="登入臺灣雲市集", time_limit=90)
    assert call.code == "0", call.answer
    [message] = push_service.to("phone")
    notice = json.loads(keys.decrypt(message.body))
    assert notice == {"kind": "sp_request", "sp_name": "臺灣雲市集", "url": f"{issuer}/m/inbox"}
    # Nothing that answers the request, nor anything of the person: the push service and the lock screen see it.
    for secret in (call.result["sp_ticket"], call.result["sp_ticket"].split(".")[0], "登入臺灣雲市集", ID):
        assert secret not in json.dumps(notice, ensure_ascii=False)
    claims = vapid_claims(message.headers["authorization"], key)
    assert (claims["aud"], claims["sub"]) == (push_service.url, SUBJECT)
    assert 0 < int(message.headers["ttl"]) <= 90  # held while the request can still be answered

    [item] = inbox.pending()
    assert inbox.approve(item["id"]).status_code == 200
    assert agency.result(call.result["sp_ticket"]).code == "0"
    [subscribed] = _events(app, "push:subscribed")
    [sent] = _events(app, "push:sent")
    assert subscribed["push_service"] == push_service.url
    assert (sent["sent"], sent["failed"], sent["removed"]) == (1, 0, 0)


def test_a_batch_by_push_sends_a_notice_and_other_modes_do_not(app, agency, inbox, push_service):
    _subscribed(inbox, push_service)
    agency.ticket(ID)
    agency.batch(ID, ["文件"])
    assert push_service.messages == []
    assert agency.batch(ID, ["文件"], op_mode="PUSH").code == "0"
    assert len(push_service.to("phone")) == 1


def test_a_push_to_a_named_phone_notifies_that_phone_only(app, issuer, agency, inbox, bind_phone, push_service):
    tablet = PhoneInbox(issuer, bind_phone("我的平板"))
    assert tablet.open().status_code == 200
    _subscribed(inbox, push_service, "phone")
    _subscribed(tablet, push_service, "tablet")
    agency.push(ID, device="我的平板")
    assert (len(push_service.to("phone")), len(push_service.to("tablet"))) == (0, 1)
    agency.push(ID)
    assert (len(push_service.to("phone")), len(push_service.to("tablet"))) == (1, 2)


def test_a_subscription_the_push_service_forgot_is_removed_and_the_call_still_succeeds(app, agency, inbox,
                                                                                        push_service):
    _subscribed(inbox, push_service)
    push_service.answers["/push/phone"] = 410
    call = agency.push(ID)
    assert call.code == "0", call.answer
    assert _subscriptions(app) == 0
    [removed] = _events(app, "push:subscription:removed")
    assert (removed["reason"], removed["push_service"]) == ("http_410", push_service.url)
    assert len(inbox.pending()) == 1  # the request waits in the inbox anyway
    agency.push(ID)
    assert len(push_service.to("phone")) == 1  # not sent to again


@pytest.mark.parametrize(("answer", "reason"), [(500, "http_500"), ((201, 4), "timeout")])
def test_a_push_service_that_fails_never_fails_the_agencys_call(app, agency, inbox, push_service, answer, reason):
    _subscribed(inbox, push_service)
    push_service.answers["/push/phone"] = answer
    started = time.monotonic()
    call = agency.push(ID)
    assert call.code == "0", call.answer
    assert time.monotonic() - started < app.config["PUSH_TIMEOUT"] + 2.5  # one timeout, however slow the service
    [failure] = _events(app, "push:failure")
    assert failure["reason"] == reason
    assert _subscriptions(app) == 1  # kept: the next push may get through
    assert len(inbox.pending()) == 1


def test_a_push_service_that_is_down_never_fails_the_agencys_call(app, agency, inbox, push_service):
    _subscribed(inbox, push_service)
    push_service.stop()
    assert agency.push(ID).code == "0"
    assert _events(app, "push:failure")[0]["reason"] == "unreachable"


def test_subscribing_again_keeps_one_subscription_and_a_phone_keeps_its_newest_three(app, inbox, push_service):
    _subscribed(inbox, push_service, "a")
    again = _subscribed(inbox, push_service, "a")  # the same browser again: its keys replaced
    assert _subscriptions(app) == 1
    with app.app_context():
        assert db.session.scalar(select(PushSubscription.auth)) == again.subscription("")["keys"]["auth"]
    for name in ("b", "c", "d"):
        _subscribed(inbox, push_service, name)
    with app.app_context():
        kept = set(db.session.scalars(select(PushSubscription.endpoint)))
    assert kept == {push_service.endpoint(n) for n in ("b", "c", "d")}


@pytest.mark.parametrize(("subscription", "code", "status"), [
    ({"endpoint": "https://push.evil.example/x", "keys": {}}, "invalid_push_subscription", 400),
    ({"endpoint": "http://169.254.169.254/latest", "keys": {}}, "invalid_push_subscription", 400),
    ("no", "invalid_push_subscription", 400),
])
def test_a_subscription_to_anywhere_but_an_allowed_push_service_is_refused(app, inbox, subscription, code, status):
    refused = inbox.subscribe(subscription)
    assert (refused.status_code, refused.json()["error"]) == (status, code)
    assert _subscriptions(app) == 0


def test_a_subscription_with_keys_that_are_none_is_refused_and_says_which(app, inbox, push_service):
    subscription = BrowserKeys().subscription(push_service.endpoint("phone"))
    subscription["keys"]["auth"] = "AAAA"
    refused = inbox.subscribe(subscription)
    assert (refused.status_code, refused.json()["error"], refused.json()["reason"]) == (
        400, "invalid_push_subscription", "auth")


def test_the_inbox_page_offers_notices_under_mocerts_public_key_in_the_phones_language(app, issuer):
    page = requests.get(f"{issuer}/m/inbox", timeout=10).text
    with app.app_context():
        key = parts().push_notices.application_server_key
    assert f'data-push-key="{key}"' in page

    def notice_text(language):
        worker = requests.get(f"{issuer}/m/inbox-sw.js", headers={"Accept-Language": language}, timeout=10)
        assert worker.headers["Content-Type"].startswith("text/javascript")
        return json.loads(re.search(r"const TEXT = (\{.*?\});", worker.text, re.S).group(1))

    assert notice_text("en")["title"] == "MoCert: a request is waiting"  # in the phone's language
    assert notice_text("zh-TW")["title"] == "MoCert：有一筆請求待處理"
