"""A phone's inbox of the requests agencies push to it, over real HTTP on SQLite and PostgreSQL: opened with the
software phone's passkey (bound through the real flow), its pending pushes listed, approved or declined there,
and the agency's client (written from the contract) polling the answer."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta

import pytest
import requests
from cryptography import x509
from sqlalchemy import event, select, update

from app.extensions import db
from app.mobile_pki import PKI_PATH
from app.services import agencies as agency_rules
from app.models import AuditEvent, Device, InboxSession, MobileCertificate, SpRequest, utcnow
from app.wiring import parts
from tests.factories import make_account
from tests.support import card_of

from .agency_client import challenge_input, check_signed_response, ticket_fields
from .inbox_client import PhoneInbox

ID = "A123456789"
OTHER_ID = "B223456782"  # 陳美玲, the demo's other person


def _events(app, tag):
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id))
        return [e.details for e in events]


def _device_id(app, name):
    with app.app_context():
        return db.session.scalar(select(Device.id).where(Device.name == name))


def _public_id(app, call):
    """The request's public id, as the server keeps it (the ticket does not carry it)."""
    transaction_id = call.sent["transaction_id"]
    with app.app_context():
        return db.session.scalar(select(SpRequest.public_id).where(SpRequest.transaction_id == transaction_id))


def _expire(app, call):
    with app.app_context():
        db.session.execute(update(SpRequest).where(SpRequest.transaction_id == call.sent["transaction_id"])
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


@pytest.fixture
def inbox(issuer, phone) -> PhoneInbox:
    """王小明's first phone's inbox, opened."""
    inbox = PhoneInbox(issuer, phone)
    assert inbox.open().status_code == 200
    return inbox


# -- the journeys ----------------------------------------------------------------------------------------


def test_a_pushed_request_waits_in_the_inbox_and_is_approved_there(app, issuer, agency, phone):
    call = agency.push(ID, hint="登入臺灣雲市集")
    assert call.code == "0", call.answer
    sp_ticket = call.result["sp_ticket"]

    inbox = PhoneInbox(issuer, phone)
    opened = inbox.open()
    assert opened.status_code == 200, opened.text
    answer = opened.json()
    assert answer["device"] == {"name": "我的手機"}
    assert answer["push"] == {"enabled": False, "application_server_key": None}  # no VAPID key configured

    [item] = inbox.pending()
    # No ticket: nothing in the list answers a request.
    assert set(item) == {"id", "sp_name", "op_code", "hint", "created_at", "expires_at"}
    assert (item["sp_name"], item["op_code"], item["hint"]) == ("臺灣雲市集", "ATH", "登入臺灣雲市集")
    assert item["id"] == _public_id(app, call) != ticket_fields(sp_ticket)["sp_ticket_id"]

    shown = inbox.request_options(item["id"])
    assert shown.status_code == 200, shown.text
    with app.app_context():
        credential_id = db.session.scalar(select(Device.credential_id))
    assert [base64.urlsafe_b64decode(c["id"] + "==") for c in shown.json()["publicKey"]["allowCredentials"]] \
        == [credential_id]  # this phone only
    approved = inbox.complete(item["id"], inbox.assertion(shown.json()["publicKey"]))
    assert (approved.status_code, approved.json()) == (200, {"status": "approved"})

    result = agency.result(sp_ticket)
    assert (result.code, result.answer["error_message"]) == ("0", ""), result.answer
    assert agency.result_answer_holds(result)
    ca = x509.load_der_x509_certificate(requests.get(f"{issuer}{PKI_PATH}/ca.cer", timeout=10).content)
    with app.app_context():
        rp_id = parts().relying_party.id
    check_signed_response(result.result["signed_response"], result.result["cert"], ca,
                          challenge_input(call.sent, ticket_fields(sp_ticket)["sp_ticket_id"]), rp_id)
    assert inbox.pending() == []

    device = _device_id(app, "我的手機")
    [opening] = _events(app, "inbox:opened")
    assert opening["device"] == device
    [approval] = _events(app, "sp:request:approved")
    assert (approval["device"], approval["sp_request"]) == (device, item["id"])


def test_a_batch_pushed_is_signed_from_the_inbox_over_every_item(app, inbox, agency):
    items = ["第一份文件", "second document"]
    call = agency.batch(ID, items, op_mode="PUSH")
    assert call.code == "0", call.answer
    [item] = inbox.pending()
    assert item["op_code"] == "BATSIGN"
    assert inbox.request_options(item["id"]).json()["sign_data_set"] == items
    assert inbox.approve(item["id"]).status_code == 200
    result = agency.result(call.result["sp_ticket"])
    assert result.code == "0", result.answer
    signed = base64.urlsafe_b64decode(result.result["signed_response"] + "==")
    assert all(hashlib.sha256(i.encode()).hexdigest().encode() in signed for i in items)


def test_declining_in_the_inbox_answers_app_user_cancel(app, inbox, agency):
    call = agency.push(ID, op_code="SIGN", sign_info={"sign_type": "PKCS#7", "sign_data": "同意書"})
    [item] = inbox.pending()
    assert inbox.request_options(item["id"]).json()["sign_data"] == "同意書"
    declined = inbox.decline(item["id"])
    assert (declined.status_code, declined.json()) == (200, {"status": "declined"})
    assert agency.result(call.result["sp_ticket"]).code == "SP-API-ATH-02-APP_USER_CANCEL"
    assert inbox.pending() == []
    again = inbox.request_options(item["id"])
    assert (again.status_code, again.json()["error"]) == (409, "SPTKTID_SPTKT_RDM")
    [declined_event] = _events(app, "sp:request:declined")
    assert declined_event["device"] == _device_id(app, "我的手機")


# -- what an inbox lists ---------------------------------------------------------------------------------


def test_an_inbox_lists_its_phones_pending_pushes_and_nothing_else(app, issuer, agency, register_agency, inbox,
                                                                    bind_phone):
    tablet = PhoneInbox(issuer, bind_phone("我的平板"))
    assert tablet.open().status_code == 200
    everyone = agency.push(ID)
    to_tablet = agency.push(ID, device="我的平板")
    to_phone = agency.push(ID, device="我的手機")
    agency.ticket(ID)  # scanned, not pushed
    agency.ticket(ID, op_mode="MWEB2APP")
    agency.batch(ID, ["文件"])  # by QR code, not pushed
    expired = agency.push(ID)
    _expire(app, expired)
    answered = agency.push(ID)
    assert tablet.decline(_public_id(app, answered)).status_code == 200
    other = register_agency(name="停用機關")
    disabled = other.push(ID)
    with app.app_context():
        parts().agencies.disable(agency_rules.get(other.sp_service_id), actor="test")

    ids = lambda box: {i["id"] for i in box.pending()}  # noqa: E731
    assert ids(inbox) == {_public_id(app, everyone), _public_id(app, to_phone)}
    assert ids(tablet) == {_public_id(app, everyone), _public_id(app, to_tablet)}
    assert _public_id(app, disabled) not in ids(inbox)


def test_a_request_pushed_to_another_phone_is_unknown_to_this_ones_inbox(app, issuer, agency, inbox, bind_phone):
    tablet = PhoneInbox(issuer, bind_phone("我的平板"))
    assert tablet.open().status_code == 200
    call = agency.push(ID, device="我的平板")
    public_id = _public_id(app, call)
    for refused in (inbox.request_options(public_id), inbox.decline(public_id),
                    inbox.complete(public_id, {"id": "x", "rawId": "x", "type": "public-key", "response": {}})):
        assert (refused.status_code, refused.json()["error"]) == (404, "SPTKTID_SPTKT_NF"), refused.text
    # Nor does the tablet's own passkey answer it through this phone's inbox.
    credential = tablet.assertion(tablet.request_options(public_id).json()["publicKey"])
    everyone = agency.push(ID)
    crossed = inbox.complete(_public_id(app, everyone), credential)
    assert (crossed.status_code, crossed.json()["error"]) == (403, "DEVID_SPTKT_MISMATCH")
    assert agency.result(call.result["sp_ticket"]).code == "20002"  # still waiting, for the tablet
    assert tablet.approve(public_id).status_code == 200
    assert agency.result(call.result["sp_ticket"]).code == "0"


def test_another_persons_pushed_request_is_not_in_the_inbox(app, issuer, pki, agency, inbox, bind_phone):
    with app.app_context():
        make_account(pki, card_of(pki, OTHER_ID), email="mei@example.com")
    theirs = PhoneInbox(issuer, bind_phone("美玲的手機", OTHER_ID))
    assert theirs.open().status_code == 200
    call = agency.push(OTHER_ID)
    public_id = _public_id(app, call)
    assert inbox.pending() == []
    assert [i["id"] for i in theirs.pending()] == [public_id]
    refused = inbox.request_options(public_id)
    assert (refused.status_code, refused.json()["error"]) == (404, "SPTKTID_SPTKT_NF")


def test_a_made_up_or_an_answered_request_is_refused_from_the_inbox(app, inbox, agency):
    for made_up in ("no-such-request", "x" * 65):
        refused = inbox.request_options(made_up)
        assert (refused.status_code, refused.json()["error"]) == (404, "SPTKTID_SPTKT_NF")
    call = agency.push(ID)
    public_id = _public_id(app, call)
    assert inbox.approve(public_id).status_code == 200
    again = inbox.decline(public_id)
    assert (again.status_code, again.json()["error"]) == (409, "SPTKTID_SPTKT_RDM")


# -- opening, and the inbox token ------------------------------------------------------------------------


def test_an_opening_is_answered_once(app, issuer, phone):
    inbox = PhoneInbox(issuer, phone)
    options = inbox.options()
    credential = inbox.assertion(options["publicKey"])
    assert inbox.send_opening(options["opening"], credential).status_code == 200
    replayed = inbox.send_opening(options["opening"], credential)
    assert (replayed.status_code, replayed.json()["error"]) == (409, "inbox_opening_used")
    with app.app_context():
        row = db.session.scalar(select(InboxSession))
        assert row.access_hash and options["opening"] not in (row.token_hash, row.access_hash, row.public_id)


def test_an_opening_expires_and_a_made_up_one_is_unknown(app, issuer, phone):
    inbox = PhoneInbox(issuer, phone)
    options = inbox.options()
    with app.app_context():
        db.session.execute(update(InboxSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    late = inbox.send_opening(options["opening"], inbox.assertion(options["publicKey"]))
    assert (late.status_code, late.json()["error"]) == (410, "inbox_opening_expired")
    unknown = inbox.send_opening("x" * 43, inbox.assertion(inbox.options()["publicKey"]))
    assert (unknown.status_code, unknown.json()["error"]) == (404, "inbox_opening_unknown")
    unread = requests.post(inbox.url("/open"), json={"opening": options["opening"], "credential": "no"}, timeout=10)
    assert (unread.status_code, unread.json()["error"]) == (400, "malformed_input")


def test_an_answer_over_another_challenge_spends_the_opening_and_is_audited(app, issuer, phone):
    inbox = PhoneInbox(issuer, phone)
    first, second = inbox.options(), inbox.options()
    wrong = inbox.send_opening(first["opening"], inbox.assertion(second["publicKey"]))
    assert wrong.status_code == 401 and inbox.token is None, wrong.text
    [failure] = _events(app, "inbox:open:failure")
    assert (failure["device"], failure["reason"]) == (_device_id(app, "我的手機"), wrong.json()["error"])
    again = inbox.send_opening(first["opening"], inbox.assertion(first["publicKey"]))
    assert (again.status_code, again.json()["error"]) == (409, "inbox_opening_used")


def test_an_unbound_phone_cannot_open_its_inbox(app, issuer, phone):
    with app.app_context():
        device = db.session.scalar(select(Device))
        parts().devices.revoke(device, actor="test", reason="lost")
    refused = PhoneInbox(issuer, phone).open()
    assert (refused.status_code, refused.json()["error"]) == (403, "device_revoked")
    assert _events(app, "inbox:open:failure")[-1]["reason"] == "device_revoked"


def test_a_missing_made_up_or_expired_inbox_token_is_refused_everywhere(app, inbox, agency):
    public_id = _public_id(app, agency.push(ID))
    calls = (lambda: inbox.listing(), lambda: inbox.request_options(public_id), lambda: inbox.decline(public_id),
             lambda: inbox.complete(public_id, {}), lambda: inbox.subscribe({}))
    token = inbox.token
    for wrong in (None, "x" * 43, token[:-1]):
        inbox.token = wrong
        for call in calls:
            refused = call()
            assert (refused.status_code, refused.json()["error"]) == (401, "inbox_unknown"), refused.text
    inbox.token = token
    with app.app_context():
        db.session.execute(update(InboxSession).values(access_expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    for call in calls:
        refused = call()
        assert (refused.status_code, refused.json()["error"]) == (401, "inbox_expired"), refused.text
    assert agency.result(agency.push(ID).result["sp_ticket"]).code == "20002"  # nothing was answered


def test_suspending_the_phone_closes_its_open_inbox(app, inbox):
    with app.app_context():
        parts().devices.suspend(db.session.scalar(select(Device)), actor="test", reason="lost")
    refused = inbox.listing()
    assert (refused.status_code, refused.json()["error"]) == (403, "device_suspended")


def test_an_inbox_is_open_for_the_configured_time_and_never_past_the_certificate(app, issuer, phone):
    inbox = PhoneInbox(issuer, phone)
    before = utcnow()
    opened = inbox.open().json()
    until = datetime.fromisoformat(opened["expires_at"])
    assert before + app.config["INBOX_TTL"] <= until <= utcnow() + app.config["INBOX_TTL"]
    soon = utcnow() + timedelta(minutes=3)
    with app.app_context():
        db.session.execute(update(MobileCertificate).values(not_after=soon))
        db.session.commit()
    assert datetime.fromisoformat(PhoneInbox(issuer, phone).open().json()["expires_at"]) <= soon


def test_subscribing_to_notices_is_refused_without_a_vapid_key(inbox):
    refused = inbox.subscribe({"endpoint": "https://fcm.googleapis.com/fcm/send/x", "keys": {}})
    assert (refused.status_code, refused.json()["error"]) == (409, "push_disabled")


# -- the hot path ----------------------------------------------------------------------------------------


def test_a_poll_is_a_read_of_the_token_and_one_indexed_read_of_the_list(app, inbox, agency):
    agency.push(ID)
    statements = []
    with app.app_context():
        engine = db.engine
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        [item] = inbox.pending()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    sql = [s.strip() for s in statements
           if not s.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"))]
    assert all(s.upper().startswith("SELECT") for s in sql), sql  # no write
    assert len([s for s in sql if "FROM sp_requests" in s]) == 1, sql
    assert len(sql) <= 3, sql  # the token with its phone and person, the phone's certificate, the list
    with app.app_context():
        plan = _query_plan(db.session, app, item)
    assert "ix_sp_requests_inbox" in plan, plan


def _query_plan(session, app, item) -> str:
    """How the database reads the list's conditions (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN): along
    the inbox's index, never the whole table."""
    from sqlalchemy import text

    account_id = session.scalar(select(SpRequest.account_id).where(SpRequest.public_id == item["id"]))
    query = ("SELECT public_id FROM sp_requests WHERE account_id = :a AND op_mode = 'PUSH' AND expires_at > :now "
             "AND consumed_at IS NULL")
    if db.engine.dialect.name == "sqlite":
        rows = session.execute(text("EXPLAIN QUERY PLAN " + query), {"a": account_id, "now": utcnow()}).all()
        return " ".join(str(r[-1]) for r in rows)
    session.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: ask whether an index can serve it
    rows = session.execute(text("EXPLAIN " + query), {"a": account_id, "now": utcnow()}).all()
    return " ".join(r[0] for r in rows)


@pytest.fixture
def app_config(app_config, request):
    if "limits_on" in request.fixturenames:
        app_config.RATELIMIT_ENABLED = True  # as in production
    return app_config


@pytest.fixture
def limits_on():
    """Asked for by a test that needs the app's rate limits on (see ``app_config``)."""


def test_polls_are_counted_per_open_inbox_not_per_address(limits_on, app, issuer, phone):
    first, second = PhoneInbox(issuer, phone), PhoneInbox(issuer, phone)
    assert first.open().status_code == 200 and second.open().status_code == 200
    assert [first.listing().status_code for _ in range(31)][-2:] == [200, 429]
    assert second.listing().status_code == 200  # another phone behind the same address polls on
