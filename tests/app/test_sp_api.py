"""The TW FidO service-provider API end to end: an agency's client written from the contract, over real HTTP,
and the software phone bound through the real flow, on SQLite and PostgreSQL.

Every idp_checksum is checked by the client's own AES-GCM code, every signed_response by the shipped verifier
(``twfido.signed_response``) and again by the client's own check (``agency_client.check_signed_response``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import timedelta

import pytest
import requests
from cryptography import x509
from sqlalchemy import event, func, select, update

from app.extensions import db
from app.mobile_pki import PKI_PATH
from app.models import Account, AuditEvent, Device, SpRequest, utcnow
from app.wiring import parts
from tests.factories import make_account
from tests.support import card_of
from twfido import signed_response as shipped
from webauthn.phone import PhoneBrowser, PhoneClient, SoftwareAuthenticator

from .agency_client import (
    RESULT_FIELDS, TICKET_FIELDS, AgencyClient, challenge_input, check_signed_response, checksum_holds, ticket_fields,
)
from .oidc.support import Browser

ID = "A123456789"
HASHED_ID = hashlib.sha256(ID.encode()).hexdigest()


def _events(app, tag):
    with app.app_context():
        return [e.details for e in db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id))]


def _requests(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(SpRequest))


@pytest.fixture
def mobile_ca(issuer) -> x509.Certificate:
    return x509.load_der_x509_certificate(requests.get(f"{issuer}{PKI_PATH}/ca.cer", timeout=10).content)


def _options(issuer, sp_ticket, **more):
    return requests.post(f"{issuer}/api/v1/m/sp-requests/options", json={"sp_ticket": sp_ticket, **more}, timeout=10)


def _approve(issuer, phone: PhoneClient, sp_ticket) -> dict:
    """The reference software phone fetches the request (checking that its challenge is what it shows) and
    approves it."""
    return phone.approve_sp(phone.sp_request(issuer, sp_ticket))


def _decline(issuer, sp_ticket) -> requests.Response:
    return requests.post(f"{issuer}/api/v1/m/sp-requests/decline", json={"sp_ticket": sp_ticket}, timeout=10)


def _approved_result(app, agency, issuer, ca, call, sp_ticket):
    """Poll the approved request, check the answer both ways, and return its result."""
    result = agency.result(sp_ticket)
    assert (result.status, result.code, result.answer["error_message"]) == (200, "0", ""), result.answer
    assert agency.result_answer_holds(result)
    assert result.result["hashed_id_num"] == HASHED_ID
    expected = challenge_input(call.sent, ticket_fields(sp_ticket)["sp_ticket_id"])
    with app.app_context():
        rp_id = parts().relying_party.id
    check_signed_response(result.result["signed_response"], result.result["cert"], ca, expected, rp_id)
    approval = shipped.verify(result.result["signed_response"], base64.b64decode(result.result["cert"]), ca=ca,
                              expected_input=expected, rp_id=rp_id)
    assert approval.challenge_input == expected
    return result


# -- the journeys ----------------------------------------------------------------------------------------


def test_ath_by_i_scan_goes_from_ticket_to_an_approval_anyone_can_verify(app, issuer, agency, phone, mobile_ca):
    call = agency.ticket(ID)
    assert (call.status, call.code) == (200, "0"), call.answer
    assert call.answer["transaction_id"] == call.sent["transaction_id"]
    assert agency.ticket_answer_holds(call)
    sp_ticket = call.result["sp_ticket"]
    fields = ticket_fields(sp_ticket)
    assert {k: fields[k] for k in ("transaction_id", "op_code", "op_mode", "sp_service_id", "sp_name", "hint",
                                   "hashed_id_num")} == {
        "transaction_id": call.sent["transaction_id"], "op_code": "ATH", "op_mode": "I-SCAN",
        "sp_service_id": agency.sp_service_id, "sp_name": "臺灣雲市集", "hint": "登入臺灣雲市集", "hashed_id_num": HASHED_ID,
    }
    assert fields["expiration_time"].endswith("+08:00") and fields["version"]

    pending = agency.result(sp_ticket)
    assert (pending.status, pending.code, pending.result) == (200, "20002", {})

    shown = _options(issuer, sp_ticket).json()
    assert (shown["sp_name"], shown["hint"], shown["op_code"]) == ("臺灣雲市集", "登入臺灣雲市集", "ATH")
    assert "sign_data" not in shown
    assert shown["publicKey"]["userVerification"] == "required"
    with app.app_context():
        credential_ids = {d.credential_id for d in db.session.scalars(select(Device))}
    allowed = {base64.urlsafe_b64decode(c["id"] + "==") for c in shown["publicKey"]["allowCredentials"]}
    assert allowed == credential_ids  # the person's phones only

    assert _approve(issuer, phone, sp_ticket) == {"status": "approved"}
    _approved_result(app, agency, issuer, mobile_ca, call, sp_ticket)
    # Read again: the result stays until the ticket expires.
    assert agency.result(sp_ticket).code == "0"

    made, = _events(app, "sp:request:made")
    assert (made["agency"], made["op_code"], made["op_mode"]) == (agency.sp_service_id, "ATH", "I-SCAN")
    approval, = _events(app, "sp:request:approved")
    assert approval["transaction_id"] == call.sent["transaction_id"]
    with app.app_context():
        row = db.session.scalars(select(SpRequest)).one()
        assert fields["sp_ticket_id"] not in (row.token_hash, row.public_id)  # kept only as its hash


def test_sign_shows_what_is_signed_and_the_signature_covers_it(app, issuer, agency, phone, mobile_ca):
    info = {"sign_type": "PKCS#7", "sign_data": "我同意第 12 號契約", "tbs_encoding": "NONE", "hash_algorithm": "SHA256"}
    call = agency.ticket(ID, op_code="SIGN", hint="簽署契約", sign_info=info)
    assert call.code == "0", call.answer
    sp_ticket = call.result["sp_ticket"]
    shown = _options(issuer, sp_ticket).json()
    assert (shown["op_code"], shown["sign_data"]) == ("SIGN", "我同意第 12 號契約")
    assert _approve(issuer, phone, sp_ticket) == {"status": "approved"}
    result = _approved_result(app, agency, issuer, mobile_ca, call, sp_ticket)
    assert "我同意第 12 號契約" in shipped.SignedResponse.decode(result.result["signed_response"]).challenge_input


def test_batsign_is_one_approval_over_the_digests_of_every_item(app, issuer, agency, phone, mobile_ca):
    items = ["第一份文件", "second document", "第三份"]
    call = agency.batch(ID, items)
    assert call.code == "0", call.answer
    sp_ticket = call.result["sp_ticket"]
    assert ticket_fields(sp_ticket)["op_code"] == "BATSIGN"
    shown = _options(issuer, sp_ticket).json()
    assert shown["sign_data_set"] == items
    assert _approve(issuer, phone, sp_ticket) == {"status": "approved"}
    result = _approved_result(app, agency, issuer, mobile_ca, call, sp_ticket)
    signed = shipped.SignedResponse.decode(result.result["signed_response"]).challenge_input
    assert [hashlib.sha256(i.encode()).hexdigest() for i in items] == json.loads(signed)["sign_data"]


def test_push_reaches_the_persons_phones_or_the_one_named(app, issuer, agency, phone, mobile_ca):
    everyone = agency.push(ID)
    assert everyone.code == "0", everyone.answer
    assert ticket_fields(everyone.result["sp_ticket"])["op_mode"] == "PUSH"
    named = agency.push(ID, device="我的手機")
    assert named.code == "0", named.answer
    assert _approve(issuer, phone, named.result["sp_ticket"]) == {"status": "approved"}
    _approved_result(app, agency, issuer, mobile_ca, named, named.result["sp_ticket"])

    before = _requests(app)
    unknown = agency.push(ID, device="別人的手機")
    assert unknown.code == "SP-API-ATH-03-DEV_DESC_MISMATCH"
    assert _requests(app) == before


def test_mweb2app_is_answered_on_the_same_phone(app, issuer, agency, phone, mobile_ca):
    call = agency.ticket(ID, op_mode="MWEB2APP")
    assert call.code == "0", call.answer
    sp_ticket = call.result["sp_ticket"]
    assert ticket_fields(sp_ticket)["op_mode"] == "MWEB2APP"
    assert _approve(issuer, phone, sp_ticket) == {"status": "approved"}
    _approved_result(app, agency, issuer, mobile_ca, call, sp_ticket)


def test_mweb2app_goes_back_only_to_the_agencys_registered_origin(issuer, register_agency, phone):
    market = register_agency(callback_url="https://market.example.tw/sp/callback")
    sp_ticket = market.ticket(ID, op_mode="MWEB2APP").result["sp_ticket"]

    def back(rtn_url):
        answer = _options(issuer, sp_ticket, rtn_url=rtn_url)
        assert answer.status_code == 200, answer.text
        return answer.json()["return_url"]

    assert back("https://market.example.tw/order/7?step=2") == "https://market.example.tw/order/7?step=2"
    for elsewhere in ("https://evil.example/order", "http://market.example.tw/order", "https://market.example.tw:8443/",
                      "https://x@market.example.tw/", "javascript:alert(1)", "//market.example.tw/order", "", None, 7):
        assert back(elsewhere) is None, elsewhere
    assert _options(issuer, sp_ticket).json()["return_url"] is None  # none given


def test_only_a_same_phone_request_of_an_agency_with_a_callback_has_a_way_back(issuer, register_agency, phone):
    url = "https://market.example.tw/back"
    with_callback = register_agency(callback_url="https://market.example.tw/sp/callback")
    without = register_agency(name="無回呼機關")
    for agency, op_mode in ((with_callback, "I-SCAN"), (without, "MWEB2APP")):
        sp_ticket = agency.ticket(ID, op_mode=op_mode).result["sp_ticket"]
        assert _options(issuer, sp_ticket, rtn_url=url).json()["return_url"] is None, op_mode
    app2app = with_callback.ticket(ID, op_mode="APP2APP").result["sp_ticket"]
    assert _options(issuer, app2app, rtn_url=url).json()["return_url"] == url


def test_declining_answers_app_user_cancel_and_the_ticket_cannot_be_approved_after(app, issuer, agency, phone):
    call = agency.ticket(ID)
    sp_ticket = call.result["sp_ticket"]
    assert _options(issuer, sp_ticket).status_code == 200
    declined = _decline(issuer, sp_ticket)
    assert (declined.status_code, declined.json()) == (200, {"status": "declined"})
    assert agency.result(sp_ticket).code == "SP-API-ATH-02-APP_USER_CANCEL"
    again = _options(issuer, sp_ticket)
    assert (again.status_code, again.json()["error"]) == (409, "SPTKTID_SPTKT_RDM")
    assert _events(app, "sp:request:declined")


def test_a_second_approval_is_refused_as_already_used(app, issuer, agency, phone):
    sp_ticket = agency.ticket(ID).result["sp_ticket"]
    options = _options(issuer, sp_ticket).json()
    first = phone.browser.get(options["publicKey"], origin=issuer)
    second = phone.browser.get(options["publicKey"], origin=issuer)
    done = requests.post(f"{issuer}/api/v1/m/sp-requests/complete", json={"sp_ticket": sp_ticket, "credential": first},
                         timeout=10)
    assert done.status_code == 200
    again = requests.post(f"{issuer}/api/v1/m/sp-requests/complete",
                          json={"sp_ticket": sp_ticket, "credential": second}, timeout=10)
    assert (again.status_code, again.json()["error"]) == (409, "SPTKTID_SPTKT_RDM")
    assert len(_events(app, "sp:request:approved")) == 1


def test_checking_device_status_says_whether_the_person_can_sign(app, issuer, agency, phone, pki):
    with app.app_context():
        make_account(pki, card_of(pki, "B223456782"))
    bound = agency.device_status(ID)
    assert (bound.code, bound.result["is_fido"], bound.result["is_mcert_sign"]) == ("0", "Y", "Y")
    values = {"transaction_id": bound.sent["transaction_id"], "error_code": "0", "is_fido": "Y", "is_mcert_sign": "Y"}
    assert checksum_holds(agency.key, values, ("transaction_id", "error_code", "is_fido", "is_mcert_sign"),
                          bound.result["idp_checksum"])
    unbound = agency.device_status("B223456782")
    assert (unbound.result["is_fido"], unbound.result["is_mcert_sign"]) == ("N", "N")
    assert len(_events(app, "sp:device_status:checked")) == 2


# -- the phone's pages (their behaviour in Chromium: tests/browser/test_sp_request.py) ----------------------


def test_the_request_page_without_a_ticket_sends_the_phone_to_the_scanner(client):
    response = client.get("/m/sp")
    assert (response.status_code, response.headers["Location"]) == (302, "/m/scan")


def test_the_request_page_carries_what_its_link_says_as_data_never_as_markup(client):
    page = client.get("/m/sp", query_string={"sp_ticket": 'a"><script>alert(1)</script>',
                                             "rtn_url": "https://market.example.tw/back", "rtn_val": "<b>s-1</b>"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'lang="zh-Hant-TW"' in text and "機關的請求" in text
    assert "<script>alert(1)</script>" not in text and "<b>s-1</b>" not in text
    assert 'data-sp-ticket="a&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in text
    assert 'data-rtn-url="https://market.example.tw/back"' in text


def test_the_scanner_speaks_zh_tw_first_then_english_and_serves_its_decoder(client):
    assert "掃描機關的請求" in client.get("/m/scan").get_data(as_text=True)
    assert "Scan an agency's request" in client.get("/m/scan", headers={"Accept-Language": "en"}).get_data(as_text=True)
    decoder = client.get("/static/vendor/jsqr/jsQR.js")
    assert decoder.status_code == 200 and b"jsQR" in decoder.data


# -- refusals: each with its code, audited, and nothing made ---------------------------------------------


def _refused(app, call, code, operation="SP-API-ATH-01"):
    assert call.status == 200, call.answer
    assert call.code == f"{operation}-{code}", call.answer
    assert call.answer["result"] == {} and "/" in call.answer["error_message"]
    refusal = _events(app, "sp:api:refused")[-1]
    assert refusal["code"] == code
    return refusal


def test_a_checksum_made_with_another_key_or_over_other_fields_is_refused(app, agency, phone, register_agency):
    other = register_agency(name="別的機關")
    forged = AgencyClient(agency.base_url, agency.sp_service_id, base64.b64encode(other.key).decode())
    _refused(app, forged.ticket(ID), "INV_SP_CHECKSUM")
    body = agency.ticket(ID).sent
    altered = agency.post("getSpTicket", {**body, "transaction_id": str(uuid.uuid4()), "hint": "轉帳十萬元"})
    _refused(app, altered, "INV_SP_CHECKSUM")
    _refused(app, agency.ticket(ID, sp_checksum="00" * 92), "INV_SP_CHECKSUM")
    assert _requests(app) == 1  # only the genuine one


def test_an_unknown_or_disabled_service_id_is_refused(app, agency, phone):
    unknown = AgencyClient(agency.base_url, "SPNOSUCHAGENCY", base64.b64encode(agency.key).decode())
    assert _refused(app, unknown.ticket(ID), "SPSVCID_NF")["reason"] == "unknown"
    with app.app_context():
        from app.services import agencies
        parts().agencies.disable(agencies.get(agency.sp_service_id), actor="test")
    assert _refused(app, agency.ticket(ID), "SPSVCID_NF")["reason"] == "disabled"
    poll = {"transaction_id": str(uuid.uuid4()), "sp_service_id": agency.sp_service_id, "sp_ticket_id": "x" * 43}
    assert _refused(app, agency.post("getAthOrSignResult", agency.signed(poll, RESULT_FIELDS)), "SPSVCID_NF",
                    "SP-API-ATH-02")
    assert _requests(app) == 0


def test_a_call_from_an_address_off_the_agencys_list_is_refused(app, register_agency, phone):
    listed = register_agency(allowed_ips=["203.0.113.0/24"])
    _refused(app, listed.ticket(ID), "SP_IP_DENIED")
    loopback = register_agency(name="本機機關", allowed_ips=["127.0.0.0/8", "::1/128"])
    assert loopback.ticket(ID).code == "0"


def test_a_reused_transaction_id_is_refused(app, agency, phone):
    first = agency.ticket(ID)
    assert first.code == "0"
    _refused(app, agency.ticket(ID, transaction_id=first.sent["transaction_id"]), "TXNLOG_INS_ERR")
    assert _requests(app) == 1


def test_a_person_unknown_or_without_a_usable_phone_is_refused(app, agency, phone, pki):
    _refused(app, agency.ticket("B223456782"), "IDNUM_USERPROF_NF")
    with app.app_context():
        make_account(pki, card_of(pki, "B223456782"))
    _refused(app, agency.ticket("B223456782"), "IDNUM_DEVPROF_NF")
    with app.app_context():
        db.session.execute(update(Device).values(status="suspended"))
        db.session.commit()
    _refused(app, agency.ticket(ID), "IDNUM_DEVPROF_NF")
    _refused(app, agency.push(ID), "IDNUM_DEVPROF_NF", "SP-API-ATH-03")
    assert _requests(app) == 0


@pytest.mark.parametrize("change, code", [
    ({"id_num": "A123456788"}, "PM_IDN_FT_ERR"),
    ({"op_code": "NFCSIGN"}, "TGT_INV"),
    ({"op_mode": "SMS"}, "TGT_INV"),
    ({"time_limit": 29}, "SPTKT_TIME_ORV"),
    ({"time_limit": 601}, "SPTKT_TIME_ORV"),
    ({"time_limit": "soon"}, "SPTKT_TIME_FT_ERR"),
    ({"hint": "長" * 257}, "PM_INV_NF"),
    ({"op_code": "SIGN"}, "PM_INV_NF"),  # no sign_info
    ({"op_code": "SIGN", "sign_info": {"sign_data": "x" * 1025}}, "SIGNDATA_LEN_LIMIT"),
    ({"op_code": "SIGN", "sign_info": {"sign_data": "x", "sign_type": "XML"}}, "PM_INV_NF"),
    ({"op_code": "SIGN", "sign_info": {"sign_data": "not base64!", "tbs_encoding": "base64"}}, "PM_INV_NF"),
], ids=lambda value: str(value)[:40])
def test_malformed_requests_are_refused_with_their_code_and_make_nothing(app, agency, phone, change, code):
    body = {"transaction_id": str(uuid.uuid4()), "sp_service_id": agency.sp_service_id, "id_num": ID,
            "op_code": "ATH", "op_mode": "I-SCAN", "hint": "登入", **change}
    _refused(app, agency.post("getSpTicket", agency.signed(body, TICKET_FIELDS)), code)
    assert _requests(app) == 0


def test_a_batch_over_the_limit_is_refused(app, agency, phone):
    _refused(app, agency.batch(ID, [f"文件 {n}" for n in range(51)]), "BATSIGN_CNT_LIMIT", "SP-API-ATH-04")
    _refused(app, agency.batch(ID, ["x" * 1025]), "SIGNDATA_LEN_LIMIT", "SP-API-ATH-04")
    assert _requests(app) == 0


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"a": "\\u0000"}'], ids=["text", "list", "nul"])
def test_what_is_not_a_request_at_all_is_a_400_in_the_envelope(issuer, body):
    response = requests.post(f"{issuer}/moise/sp/getSpTicket", data=body,
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error_code"] == "SP-API-ATH-01-PM_INV_NF"


def test_an_expired_request_is_overdue_for_the_agency_and_the_phone(app, issuer, agency, phone):
    sp_ticket = agency.ticket(ID).result["sp_ticket"]
    with app.app_context():
        db.session.execute(update(SpRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert agency.result(sp_ticket).code == "SP-API-ATH-02-SPTKT_OVD"
    refused = _options(issuer, sp_ticket)
    assert (refused.status_code, refused.json()["error"]) == (410, "SPTKT_OVD")


def test_an_unknown_ticket_id_or_another_transaction_is_not_found(app, agency, register_agency, phone):
    sp_ticket = agency.ticket(ID).result["sp_ticket"]
    fields = ticket_fields(sp_ticket)
    unknown = {"transaction_id": fields["transaction_id"], "sp_service_id": agency.sp_service_id,
               "sp_ticket_id": "x" * 43}
    _refused(app, agency.post("getAthOrSignResult", agency.signed(unknown, RESULT_FIELDS)), "SPTKTID_SPTKT_NF",
             "SP-API-ATH-02")
    other = register_agency(name="別的機關")
    _refused(app, other.result(sp_ticket), "SPTKTID_SPTKT_NF", "SP-API-ATH-02")  # another agency's request
    body = {"transaction_id": str(uuid.uuid4()), "sp_service_id": agency.sp_service_id,
            "sp_ticket_id": fields["sp_ticket_id"]}
    _refused(app, agency.post("getAthOrSignResult", agency.signed(body, RESULT_FIELDS)), "SPTKTID_SPTKT_NF",
             "SP-API-ATH-02")


def test_another_persons_phone_cannot_approve(app, issuer, pki, agency, phone):
    with app.app_context():
        other = make_account(pki, card_of(pki, "B223456782"))
        db.session.get(Account, other.id).email_verified_at = utcnow()
        db.session.commit()
    computer = Browser(issuer, pki)
    computer.card_login("B223456782")
    binding = computer.http.post(f"{issuer}/api/v1/bindings", json={}, headers={"X-CSRF-Token": computer.csrf()},
                                 timeout=10).json()
    stranger = PhoneClient(PhoneBrowser(SoftwareAuthenticator(None)))
    stranger.bind(binding["url"], "陳美玲的手機")

    sp_ticket = agency.ticket(ID).result["sp_ticket"]
    options = _options(issuer, sp_ticket).json()["publicKey"]
    options = {k: v for k, v in options.items() if k != "allowCredentials"}  # as if the page were tampered with
    credential = stranger.browser.get(options, origin=issuer)
    refused = requests.post(f"{issuer}/api/v1/m/sp-requests/complete",
                            json={"sp_ticket": sp_ticket, "credential": credential}, timeout=10)
    assert (refused.status_code, refused.json()["error"]) == (403, "DEVID_SPTKT_MISMATCH")
    assert _events(app, "sp:approval:failure")[-1]["reason"] == "DEVID_SPTKT_MISMATCH"
    assert agency.result(sp_ticket).code == "20002"  # still the person's to answer
    assert _approve(issuer, phone, sp_ticket) == {"status": "approved"}


@pytest.mark.parametrize("mangle, code, status", [
    (lambda t: t[:-3], "SPTKT_DIG_FT_ERR", 400),
    (lambda t: "not a ticket", "SPTKT_PLD_FT_ERR", 400),
], ids=["cut", "garbage"])
def test_a_cut_or_made_up_ticket_is_refused_on_the_phone(issuer, agency, phone, mangle, code, status):
    sp_ticket = agency.ticket(ID).result["sp_ticket"]
    refused = _options(issuer, mangle(sp_ticket))
    assert (refused.status_code, refused.json()["error"]) == (status, code)


def test_a_ticket_that_names_a_real_request_but_says_other_things_is_refused(issuer, agency, phone):
    sp_ticket = agency.ticket(ID).result["sp_ticket"]
    fields = {**ticket_fields(sp_ticket), "sp_name": "假冒的機關", "hint": "請按同意"}
    body = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    forged = body + "." + base64.urlsafe_b64encode(hashlib.sha256(body.encode()).digest()).rstrip(b"=").decode()
    refused = _options(issuer, forged)
    assert (refused.status_code, refused.json()["error"]) == (400, "SPTKT_DIG_FT_ERR")


# -- the hot path ---------------------------------------------------------------------------------------------


def _polled(app, body):
    """A poll through the app in this thread, and every SQL statement it sent."""
    statements = []
    with app.app_context():
        engine = db.engine
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        return app.test_client().post("/moise/sp/getAthOrSignResult", json=body), statements
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def test_a_poll_is_one_read_and_writes_nothing(app, agency, phone):
    sp_ticket = agency.ticket(ID).result["sp_ticket"]
    fields = ticket_fields(sp_ticket)
    body = agency.signed({"transaction_id": fields["transaction_id"], "sp_service_id": agency.sp_service_id,
                          "sp_ticket_id": fields["sp_ticket_id"]}, ("transaction_id", "sp_service_id", "sp_ticket_id"))
    response, statements = _polled(app, body)
    assert response.get_json()["error_code"] == "20002"
    sql = [s for s in statements if not s.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT",
                                                                        "RELEASE"))]
    assert len(sql) == 1 and sql[0].lstrip().upper().startswith("SELECT"), sql


def test_refused_calls_are_limited_per_address_and_good_ones_are_not_counted(app_config, pki):
    from app import create_app

    app_config.RATELIMIT_ENABLED = True
    app_config.SP_API_REFUSAL_RATE_LIMIT = "3/minute"
    limited = create_app(app_config)
    with limited.app_context():
        db.create_all()
        agency, key = parts().agencies.add(actor="test", name="臺灣雲市集")
        client = AgencyClient("", agency.sp_service_id, key)
    try:
        http = limited.test_client()

        def call(body):
            response = http.post("/moise/sp/checkDeviceStatus", json=body)
            return response.status_code, response.get_json()["error_code"]

        good = client.signed({"transaction_id": "t-1", "sp_service_id": client.sp_service_id, "id_num": ID},
                             ("transaction_id", "sp_service_id", "id_num"))
        assert [call(good) for _ in range(4)] == [(200, "0")] * 4  # answered calls are not counted
        bad = {**good, "sp_checksum": "00" * 92}
        assert [call(bad) for _ in range(3)] == [(200, "SP-API-LF-01-INV_SP_CHECKSUM")] * 3
        assert call(bad) == (429, "SP-API-LF-01-SP_RATE_LIMITED")
        assert call(good) == (429, "SP-API-LF-01-SP_RATE_LIMITED")  # the address waits, key or not
    finally:
        with limited.app_context():
            db.drop_all()


# -- what a careful reviewer tried ----------------------------------------------------------------------


@pytest.mark.parametrize("change, code", [
    ({"op_code": ["ATH"]}, "TGT_INV"),
    ({"op_mode": {}}, "TGT_INV"),
    ({"op_code": None}, "TGT_INV"),
    ({"hint": 12}, "PM_INV_NF"),
    ({"time_limit": [60]}, "SPTKT_TIME_FT_ERR"),
    ({"time_limit": True}, "SPTKT_TIME_FT_ERR"),
    ({"op_code": "SIGN", "sign_info": {"sign_data": "x", "sign_type": ["RAW"]}}, "PM_INV_NF"),
    ({"op_code": "SIGN", "sign_info": {"sign_data": "x", "tbs_encoding": {}}}, "PM_INV_NF"),
    ({"op_code": "SIGN", "sign_info": {"sign_data": ["x"]}}, "PM_INV_NF"),
    ({"op_code": "SIGN", "sign_info": "x"}, "PM_INV_NF"),
    ({"id_num": 123456789}, "PM_IDN_FT_ERR"),
], ids=lambda value: str(value)[:40])
def test_values_of_the_wrong_type_are_refused_not_a_500(app, agency, phone, change, code):
    body = {"transaction_id": str(uuid.uuid4()), "sp_service_id": agency.sp_service_id, "id_num": ID,
            "op_code": "ATH", "op_mode": "I-SCAN", "hint": "登入", **change}
    _refused(app, agency.post("getSpTicket", agency.signed(body, TICKET_FIELDS)), code)
    assert _requests(app) == 0


def test_a_batch_whose_mode_or_items_are_of_the_wrong_type_is_refused(app, agency, phone):
    _refused(app, agency.batch(ID, ["a"], op_mode=["PUSH"]), "TGT_INV", "SP-API-ATH-04")
    _refused(app, agency.batch(ID, ["a", 7]), "PM_INV_NF", "SP-API-ATH-04")


def test_two_batches_whose_items_concatenate_alike_have_different_checksums(app, agency, phone):
    signed = agency.batch(ID, ["I agree to", " And B"]).sent
    moved = {**signed, "transaction_id": signed["transaction_id"],
             "sign_info": {**signed["sign_info"], "sign_data_set": ["I agree", " to And B"]}}
    _requests_before = _requests(app)
    _refused(app, agency.post("doBatchSigning", moved), "INV_SP_CHECKSUM", "SP-API-ATH-04")
    assert _requests(app) == _requests_before


@pytest.mark.parametrize("step", ["options", "complete", "decline"])
def test_a_ticket_nested_past_any_depth_is_refused_on_the_phone(issuer, step):
    body = base64.urlsafe_b64encode(b"[" * 5000).rstrip(b"=").decode()
    ticket = body + "." + base64.urlsafe_b64encode(hashlib.sha256(body.encode()).digest()).rstrip(b"=").decode()
    refused = requests.post(f"{issuer}/api/v1/m/sp-requests/{step}", json={"sp_ticket": ticket, "credential": {}},
                            timeout=10)
    assert (refused.status_code, refused.json()["error"]) == (400, "SPTKT_PLD_FT_ERR")


def test_a_racing_call_with_the_same_transaction_id_is_refused_not_a_500(app, agency, phone):
    """The second of two calls with one transaction_id passes the check for it before the first commits:
    the row's unique constraint refuses it, and it is answered and audited as TXNLOG_INS_ERR."""
    from sqlalchemy import insert

    body = agency.ticket(ID).sent
    with app.app_context():
        engine = db.engine
        template = db.session.scalars(select(SpRequest)).one()
        racing = {c.key: getattr(template, c.key) for c in SpRequest.__table__.columns if c.key != "id"}
    again = agency.signed({**body, "transaction_id": "racing-1", "sp_checksum": None}, TICKET_FIELDS)

    done = []

    def the_other_call_commits_first(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT SP_REQUESTS.ID") and not done:
            done.append(True)
            with engine.begin() as other:
                other.execute(insert(SpRequest.__table__).values(
                    {**racing, "transaction_id": "racing-1", "public_id": "p-race", "token_hash": "h" * 64}))

    event.listen(engine, "after_cursor_execute", the_other_call_commits_first)
    try:
        response = app.test_client().post("/moise/sp/getSpTicket", json=again)
    finally:
        event.remove(engine, "after_cursor_execute", the_other_call_commits_first)
    assert done and response.status_code == 200
    assert response.get_json()["error_code"] == "SP-API-ATH-01-TXNLOG_INS_ERR"
    assert _events(app, "sp:api:refused")[-1]["race"] is True
    assert _requests(app) == 2  # the first call's and the other's, nothing of this one


def test_a_refused_call_does_not_spend_its_transaction_id(app, agency, phone):
    refused = agency.ticket(ID, op_code="SIGN", sign_info={"sign_data": "x" * 1025})
    assert refused.code.endswith("SIGNDATA_LEN_LIMIT")
    assert agency.ticket(ID, transaction_id=refused.sent["transaction_id"]).code == "0"


def test_a_locked_person_is_as_unknown_to_agencies(app, agency, phone):
    with app.app_context():
        db.session.execute(update(Account).values(locked_at=utcnow()))
        db.session.commit()
    assert _refused(app, agency.ticket(ID), "IDNUM_USERPROF_NF")["reason"] == "locked"


def test_a_push_to_one_phone_cannot_be_approved_by_the_persons_other_phone(app, issuer, pki, agency, phone):
    computer = Browser(issuer, pki)
    computer.card_login()
    binding = computer.http.post(f"{issuer}/api/v1/bindings", json={}, headers={"X-CSRF-Token": computer.csrf()},
                                 timeout=10).json()
    tablet = PhoneClient(PhoneBrowser(SoftwareAuthenticator(None)))
    tablet.bind(binding["url"], "我的平板")
    sp_ticket = agency.push(ID, device="我的手機").result["sp_ticket"]
    options = _options(issuer, sp_ticket).json()["publicKey"]
    assert len(options["allowCredentials"]) == 1  # the named phone only
    credential = tablet.browser.get({k: v for k, v in options.items() if k != "allowCredentials"}, origin=issuer)
    refused = requests.post(f"{issuer}/api/v1/m/sp-requests/complete",
                            json={"sp_ticket": sp_ticket, "credential": credential}, timeout=10)
    assert (refused.status_code, refused.json()["error"]) == (403, "DEVID_SPTKT_MISMATCH")
    assert _approve(issuer, phone, sp_ticket) == {"status": "approved"}


def test_an_answer_after_expiry_or_after_another_answer_is_refused(app, issuer, agency, phone):
    sp_ticket = agency.ticket(ID).result["sp_ticket"]
    options = _options(issuer, sp_ticket).json()
    credential = phone.browser.get(options["publicKey"], origin=issuer)
    with app.app_context():
        db.session.execute(update(SpRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    late = requests.post(f"{issuer}/api/v1/m/sp-requests/complete",
                         json={"sp_ticket": sp_ticket, "credential": credential}, timeout=10)
    assert (late.status_code, late.json()["error"]) == (410, "SPTKT_OVD")
    assert agency.result(sp_ticket).code == "SP-API-ATH-02-SPTKT_OVD"

    approved = agency.ticket(ID).result["sp_ticket"]
    assert _approve(issuer, phone, approved) == {"status": "approved"}
    refused = _decline(issuer, approved)
    assert (refused.status_code, refused.json()["error"]) == (409, "SPTKTID_SPTKT_RDM")
    assert agency.result(approved).code == "0"


def test_an_approved_poll_is_one_read_too(app, issuer, agency, phone):
    sp_ticket = agency.ticket(ID).result["sp_ticket"]
    _approve(issuer, phone, sp_ticket)
    fields = ticket_fields(sp_ticket)
    body = agency.signed({"transaction_id": fields["transaction_id"], "sp_service_id": agency.sp_service_id,
                          "sp_ticket_id": fields["sp_ticket_id"]}, RESULT_FIELDS)
    response, statements = _polled(app, body)
    assert response.get_json()["error_code"] == "0"
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT"), statements


def test_the_first_scan_is_audited_once(app, issuer, agency, phone):
    sp_ticket = agency.ticket(ID).result["sp_ticket"]
    assert _options(issuer, sp_ticket).status_code == 200
    assert _options(issuer, sp_ticket).status_code == 200
    scanned, = _events(app, "sp:request:scanned")
    with app.app_context():
        assert scanned["sp_request"] == db.session.scalars(select(SpRequest)).one().public_id
