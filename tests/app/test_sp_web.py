"""SP-API-WEB-01 end to end over real HTTP, on SQLite and PostgreSQL: the agency's form posted as a browser
posts it, MoCert's page and its calls, the software phone bound through the real flow, and the agency's
callback (a local HTTP server) receiving the form MoCert's page posts.

What the callback receives is checked as an agency checks it: the idp_checksum by the agency client's own
AES-GCM code, the signed_response by its own check (``agency_client.check_signed_response``) and by the shipped
verifier. The browser's part (running the page's script, posting the form) is tests/browser/test_sp_web.py's;
here the test does what the script does, with the page's own data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import timedelta
from html.parser import HTMLParser

import pytest
import requests
from cryptography import x509
from sqlalchemy import func, select, update

from app.extensions import db
from app.mobile_pki import PKI_PATH
from app.models import Account, AuditEvent, Device, SpRequest, utcnow
from app.services import agencies as agency_rules
from app.services.sp_web import CONFIRM_WINDOW
from app.wiring import parts
from tests.factories import make_account
from tests.support import card_of
from twfido import signed_response as shipped
from webauthn.phone import PhoneBrowser, PhoneClient, ServerError, SoftwareAuthenticator

from .agency_client import AgencyClient, AgencySite, challenge_input, check_signed_response, ticket_fields
from .oidc.support import Browser

ID = "A123456789"  # 王小明, whose phone the `phone` fixture binds
STRANGER = "B223456782"  # 陳美玲, with a phone of her own in some tests


# -- the agency, its site, and the page ---------------------------------------------------------------------


@pytest.fixture
def app_config(app_config, request):
    if "ids_counted" in request.fixturenames:
        app_config.RATELIMIT_ENABLED = True  # as in production: wrong IDs are counted
    return app_config


@pytest.fixture
def ids_counted():
    """Asked for by a test that needs the app's rate limits on (see ``app_config``)."""


@pytest.fixture
def site():
    site = AgencySite()
    yield site
    site.close()


@pytest.fixture
def agency(app, issuer, site) -> AgencyClient:
    return _register(app, issuer, callback_url=site.callback_url)


def _register(app, issuer, **options) -> AgencyClient:
    with app.app_context():
        agency, api_key = parts().agencies.add(actor="test", name=options.pop("name", "臺灣雲市集"), **options)
        return AgencyClient(issuer, agency.sp_service_id, api_key)


@pytest.fixture
def mobile_ca(issuer) -> x509.Certificate:
    return x509.load_der_x509_certificate(requests.get(f"{issuer}{PKI_PATH}/ca.cer", timeout=10).content)


class Page(HTMLParser):
    """What a browser would read of one of MoCert's pages: the request page's data, a form and its fields,
    the error code shown, and the text."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__()
        self.response, self.data, self.form, self.fields, self.code, self.text = response, {}, None, {}, None, []
        self._in_code = False
        self.feed(response.text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") == "sp-web":
            self.data = {k: v for k, v in attrs.items() if k.startswith("data-")}
        if tag == "form" and attrs.get("id") == "sp-web-post":
            self.form = attrs.get("action")
        if tag == "input" and self.form is not None and attrs.get("type") == "hidden":
            self.fields[attrs["name"]] = attrs.get("value") or ""
        self._in_code = attrs.get("id") == "sp-web-error-code"

    def handle_data(self, data):
        if self._in_code:
            self.code = data.strip()
        self.text.append(data)

    def handle_endtag(self, tag):
        self._in_code = False


def _post_form(issuer, form: dict) -> Page:
    """The agency's page's form, posted as a browser posts it: form-encoded, without MoCert's cookies."""
    response = requests.post(f"{issuer}/moise/sp/fidoRedirect/web", data=form, timeout=10, allow_redirects=False)
    return Page(response)


def _status(issuer, token) -> requests.Response:
    return requests.post(f"{issuer}/api/v1/sp-web/status", json={"token": token}, timeout=10)


def _release(issuer, token, id_num) -> requests.Response:
    return requests.post(f"{issuer}/api/v1/sp-web/release", json={"token": token, "id_num": id_num}, timeout=10)


def _deliver(post: dict) -> None:
    """What the page's script does with an answer: post its fields to its action, the agency's callback."""
    assert requests.post(post["action"], data=post["fields"], timeout=10).status_code == 200


def _approve(issuer, phone: PhoneClient, page: Page) -> None:
    """The phone scans the page's QR code (its link to /m/sp) and approves, checking the challenge."""
    link = f"{issuer}/m/sp?sp_ticket={page.data['data-sp-ticket']}"
    assert phone.approve_sp(phone.sp_request(None, link)) == {"status": "approved"}


def _events(app, tag):
    with app.app_context():
        return [e.details for e in db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id))]


def _requests(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(SpRequest))


def _check_approval(app, agency, site, mobile_ca, form, page, id_num=ID) -> dict:
    """The one form the callback received: the approval, its checksum and its signed response as the agency
    checks them."""
    [posted] = site.received
    assert set(posted) == {"transaction_id", "error_code", "id_num", "signed_response", "cert", "idp_checksum"}
    assert (posted["transaction_id"], posted["error_code"], posted["id_num"]) == (form["transaction_id"], "0", id_num)
    assert agency.web_answer_holds(posted)
    # The agency never saw the ticket: it reads the ticket's id from the signed challenge_input and checks the
    # rest against what it sent.
    signed_input = json.loads(shipped.SignedResponse.decode(posted["signed_response"]).challenge_input)
    assert signed_input["sp_ticket_id"] == ticket_fields(page.data["data-sp-ticket"])["sp_ticket_id"]
    expected = challenge_input(form, signed_input["sp_ticket_id"])
    with app.app_context():
        rp_id = parts().relying_party.id
    check_signed_response(posted["signed_response"], posted["cert"], mobile_ca, expected, rp_id)
    shipped.verify(posted["signed_response"], base64.b64decode(posted["cert"]), ca=mobile_ca, expected_input=expected,
                   rp_id=rp_id)
    return posted


# -- the journeys -------------------------------------------------------------------------------------------


def test_ath_goes_from_the_agencys_form_to_a_signed_answer_posted_to_its_callback(
    app, issuer, agency, site, phone, mobile_ca
):
    form = agency.web_form()
    page = _post_form(issuer, form)
    assert page.response.status_code == 200, page.response.text
    # The form came without MoCert's cookies: a cookie set now would replace the person's MoCert session.
    assert "Set-Cookie" not in page.response.headers
    assert page.response.headers["Cache-Control"] == "no-store"
    text = "".join(page.text)
    assert "臺灣雲市集" in text and "登入臺灣雲市集" in text and site.url in text  # who asks, what, where it answers
    token = page.data["data-token"]
    fields = ticket_fields(page.data["data-sp-ticket"])
    assert (fields["op_mode"], fields["op_code"], fields["transaction_id"]) == ("WEB", "ATH", form["transaction_id"])
    assert fields["hashed_id_num"] is None  # no one is named: whoever approves is the person
    assert _status(issuer, token).json() == {"status": "pending"}

    _approve(issuer, phone, page)
    approved = _status(issuer, token).json()
    assert approved["status"] == "approved" and site.received == []  # nothing goes before the ID is given

    released = _release(issuer, token, "a123456789")  # typed as people type it
    assert released.status_code == 200, released.text
    assert released.headers["Cache-Control"] == "no-store"
    assert released.json()["status"] == "released"
    post = released.json()["post"]
    assert post["action"] == site.callback_url
    _deliver(post)
    _check_approval(app, agency, site, mobile_ca, form, page)

    assert _status(issuer, token).json() == {"status": "released"}
    made, = _events(app, "sp:request:made")
    assert (made["operation"], made["op_mode"], made["transaction_id"]) == ("fidoRedirect/web", "WEB",
                                                                           form["transaction_id"])
    released_event, = _events(app, "sp:request:released")
    assert released_event["code"] == "0" and released_event["transaction_id"] == form["transaction_id"]
    assert _events(app, "sp:national_id:confirmed")
    with app.app_context():
        row = db.session.scalars(select(SpRequest)).one()
        assert row.account_id == db.session.scalar(select(Account.id))
        assert row.hashed_id_num == hashlib.sha256(ID.encode()).hexdigest()
        assert token not in (row.browser_hash, row.token_hash, row.public_id)  # kept only as its hash


def test_sign_shows_what_is_signed_and_the_signed_response_covers_it(app, issuer, agency, site, phone, mobile_ca):
    form = agency.web_form(op_code="SIGN", hint="簽署契約", sign_data="我同意第 12 號契約", sign_type="PKCS#7")
    page = _post_form(issuer, form)
    assert page.response.status_code == 200, page.response.text
    assert "我同意第 12 號契約" in "".join(page.text)
    _approve(issuer, phone, page)
    post = _release(issuer, page.data["data-token"], ID).json()["post"]
    _deliver(post)
    posted = _check_approval(app, agency, site, mobile_ca, form, page)
    assert "我同意第 12 號契約" in shipped.SignedResponse.decode(posted["signed_response"]).challenge_input
    with app.app_context():
        assert db.session.scalars(select(SpRequest)).one().sign_info == {
            "sign_type": "PKCS#7", "tbs_encoding": "NONE", "hash_algorithm": "SHA256", "sign_data": "我同意第 12 號契約"}


def _stranger_phone(app, issuer, pki) -> PhoneClient:
    """陳美玲's own phone, bound through the real flow."""
    with app.app_context():
        other = make_account(pki, card_of(pki, STRANGER))
        db.session.get(Account, other.id).email_verified_at = utcnow()
        db.session.commit()
    computer = Browser(issuer, pki)
    computer.card_login(STRANGER)
    binding = computer.http.post(f"{issuer}/api/v1/bindings", json={}, headers={"X-CSRF-Token": computer.csrf()},
                                 timeout=10).json()
    stranger = PhoneClient(PhoneBrowser(SoftwareAuthenticator(None)))
    stranger.bind(binding["url"], "陳美玲的手機")
    return stranger


def test_any_bound_phone_may_approve_and_the_id_given_is_its_owners(app, issuer, pki, agency, site, phone, mobile_ca):
    stranger = _stranger_phone(app, issuer, pki)
    form = agency.web_form()
    page = _post_form(issuer, form)
    _approve(issuer, stranger, page)  # no one was named: her phone may answer
    token = page.data["data-token"]
    # The person at the browser is told the ID is not the approver's: a phone not theirs is caught here.
    wrong = _release(issuer, token, ID)
    assert (wrong.status_code, wrong.json()["error"]) == (400, "national_id_not_confirmed")
    assert _events(app, "sp:national_id:mismatch")[-1]["agency"] == agency.sp_service_id
    assert ID not in json.dumps(_events(app, "sp:national_id:mismatch"))  # no trace of what was typed
    assert site.received == []
    _deliver(_release(issuer, token, STRANGER).json()["post"])
    _check_approval(app, agency, site, mobile_ca, form, page, id_num=STRANGER)


def test_a_suspended_phone_cannot_approve_a_request_naming_no_one(app, issuer, agency, site, phone):
    page = _post_form(issuer, agency.web_form())
    with app.app_context():
        db.session.execute(update(Device).values(status="suspended"))
        db.session.commit()
    with pytest.raises(ServerError) as refused:
        _approve(issuer, phone, page)
    assert (refused.value.status, refused.value.code) == (403, "device_suspended")  # said as a login says it
    assert _events(app, "sp:approval:failure")[-1]["reason"] == "device_suspended"
    assert _status(issuer, page.data["data-token"]).json() == {"status": "scanned"}  # still open for another phone


def test_the_agencys_address_list_does_not_apply_to_a_form_from_the_persons_browser(app, issuer, site, phone):
    listed = _register(app, issuer, allowed_ips=["203.0.113.0/24"], callback_url=site.callback_url)
    page = _post_form(issuer, listed.web_form())
    assert page.response.status_code == 200 and page.data["data-token"]


def test_declining_posts_app_user_cancel_back(app, issuer, agency, site, phone):
    form = agency.web_form()
    page = _post_form(issuer, form)
    declined = requests.post(f"{issuer}/api/v1/m/sp-requests/decline", json={"sp_ticket": page.data["data-sp-ticket"]},
                             timeout=10)
    assert declined.json() == {"status": "declined"}
    status = _status(issuer, page.data["data-token"]).json()
    assert status["status"] == "declined" and status["post"]["action"] == site.callback_url
    _deliver(status["post"])
    [posted] = site.received
    assert posted == {**posted, "transaction_id": form["transaction_id"], "error_code": "SP-API-WEB-01-APP_USER_CANCEL",
                      "id_num": "", "signed_response": "", "cert": ""}
    assert agency.web_answer_holds(posted)
    refused = _release(issuer, page.data["data-token"], ID)
    assert (refused.status_code, refused.json()["error"]) == (409, "sp_request_not_approved")


def test_an_unanswered_request_expires_into_sptkt_ovd(app, issuer, agency, site, phone):
    form = agency.web_form()
    page = _post_form(issuer, form)
    with app.app_context():
        db.session.execute(update(SpRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    status = _status(issuer, page.data["data-token"]).json()
    assert status["status"] == "expired"
    assert status["post"]["fields"]["error_code"] == "SP-API-WEB-01-SPTKT_OVD"
    assert agency.web_answer_holds(status["post"]["fields"])


def test_an_approval_whose_id_is_not_given_in_time_expires_into_sptkt_ovd(app, issuer, agency, site, phone):
    page = _post_form(issuer, agency.web_form())
    _approve(issuer, phone, page)
    with app.app_context():
        db.session.execute(update(SpRequest).values(completed_at=utcnow() - CONFIRM_WINDOW - timedelta(seconds=1)))
        db.session.commit()
    late = _release(issuer, page.data["data-token"], ID)
    assert (late.status_code, late.json()["error"]) == (410, "SPTKT_OVD")
    status = _status(issuer, page.data["data-token"]).json()
    assert status["status"] == "expired"
    assert status["post"]["fields"]["error_code"] == "SP-API-WEB-01-SPTKT_OVD"


def test_the_approvals_answer_is_handed_over_once(app, issuer, agency, site, phone):
    page = _post_form(issuer, agency.web_form())
    _approve(issuer, phone, page)
    assert _release(issuer, page.data["data-token"], ID).status_code == 200
    again = _release(issuer, page.data["data-token"], ID)
    assert (again.status_code, again.json()["error"]) == (409, "SPTKTID_SPTKT_RDM")
    assert len(_events(app, "sp:request:released")) == 1


def test_a_poll_of_a_browsers_request_tells_nothing_before_the_person_confirmed_their_id(
    app, issuer, agency, site, phone
):
    page = _post_form(issuer, agency.web_form())
    _approve(issuer, phone, page)
    poll = agency.result(page.data["data-sp-ticket"])
    assert (poll.code, poll.result) == ("20002", {})  # approved, but the answer is the posted form's to give


def test_an_id_confirmed_past_the_window_hands_nothing_over(app, issuer, agency, site, phone):
    page = _post_form(issuer, agency.web_form())
    _approve(issuer, phone, page)
    with app.app_context():
        row = db.session.scalars(select(SpRequest)).one()
        released = parts().sp_web._claim(row, row.completed_at + CONFIRM_WINDOW + timedelta(seconds=1))
        db.session.rollback()
    assert released is False


def test_wrong_ids_until_none_are_left_post_back_idnum_not_confirmed(ids_counted, app, issuer, agency, site, phone):
    page = _post_form(issuer, agency.web_form())
    _approve(issuer, phone, page)
    token = page.data["data-token"]
    answers = [_release(issuer, token, STRANGER) for _ in range(2)]
    assert [(a.status_code, a.json()["attempts_left"]) for a in answers] == [(400, 2), (400, 1)]
    assert _release(issuer, token, "A12345678").json()["error"] == "national_id_not_confirmed"  # no ID: costs nothing
    ended = _release(issuer, token, STRANGER)
    assert ended.status_code == 200 and ended.json()["status"] == "refused"
    _deliver(ended.json()["post"])
    [posted] = site.received
    assert (posted["error_code"], posted["id_num"], posted["signed_response"]) == (
        "SP-API-WEB-01-IDNUM_NOT_CONFIRMED", "", "")
    assert agency.web_answer_holds(posted)
    assert _events(app, "sp:national_id:locked") and _events(app, "sp:request:released")[-1]["code"] == (
        "IDNUM_NOT_CONFIRMED")
    assert _status(issuer, token).json() == {"status": "released"}


def test_the_pages_calls_know_only_its_own_token(issuer, agency, phone):
    page = _post_form(issuer, agency.web_form())
    for token in ("x" * 43, page.data["data-sp-ticket"], None):
        refused = _status(issuer, token)
        assert (refused.status_code, refused.json()["error"]) == (404, "SPTKTID_SPTKT_NF")
    early = _release(issuer, page.data["data-token"], ID)
    assert (early.status_code, early.json()["error"]) == (409, "sp_request_not_approved")


# -- refusals before the page: an error page, nothing posted anywhere -------------------------------------------


def _error_page(app, page: Page, code: str, site: AgencySite) -> dict:
    assert page.response.status_code == 400, page.response.text
    assert "Set-Cookie" not in page.response.headers
    assert page.code == f"SP-API-WEB-01-{code}" and page.form is None and page.data == {}
    assert site.received == []
    refusal = _events(app, "sp:api:refused")[-1]
    assert (refusal["operation"], refusal["code"]) == ("fidoRedirect/web", code)
    return refusal


def test_a_form_with_a_checksum_not_the_agencys_gets_an_error_page(app, issuer, agency, site, phone):
    other = _register(app, issuer, name="別的機關", callback_url=site.callback_url)
    forged = AgencyClient(issuer, agency.sp_service_id, base64.b64encode(other.key).decode())
    _error_page(app, _post_form(issuer, forged.web_form()), "INV_SP_CHECKSUM", site)
    altered = {**agency.web_form(), "hint": "轉帳十萬元"}
    _error_page(app, _post_form(issuer, altered), "INV_SP_CHECKSUM", site)
    _error_page(app, _post_form(issuer, {**agency.web_form(), "sp_checksum": ""}), "INV_SP_CHECKSUM", site)
    assert _requests(app) == 0


def test_a_form_of_an_unknown_or_disabled_agency_gets_an_error_page(app, issuer, agency, site, phone):
    unknown = AgencyClient(issuer, "SPNOSUCHAGENCY", base64.b64encode(agency.key).decode())
    assert _error_page(app, _post_form(issuer, unknown.web_form()), "SPSVCID_NF", site)["reason"] == "unknown"
    with app.app_context():
        parts().agencies.disable(agency_rules.get(agency.sp_service_id), actor="test")
    assert _error_page(app, _post_form(issuer, agency.web_form()), "SPSVCID_NF", site)["reason"] == "disabled"
    assert _requests(app) == 0


def test_a_form_without_a_transaction_id_gets_an_error_page(app, issuer, agency, site, phone):
    form = agency.web_form()
    del form["transaction_id"]
    _error_page(app, _post_form(issuer, form), "PM_INV_NF", site)
    _error_page(app, _post_form(issuer, {}), "PM_INV_NF", site)


def test_a_form_the_door_refuses_gets_the_error_page_and_no_cookie_either(issuer, agency, site, phone):
    refused = requests.post(f"{issuer}/moise/sp/fidoRedirect/web", data={**agency.web_form(), "hint": "a\x00b"},
                            timeout=10)
    assert refused.status_code == 400 and "Set-Cookie" not in refused.headers
    assert site.received == []


def test_an_agency_without_a_callback_url_gets_an_error_page(app, issuer, site, phone):
    nowhere = _register(app, issuer, name="無回傳網址的機關")
    _error_page(app, _post_form(issuer, nowhere.web_form()), "SP_CALLBACK_NF", site)
    assert _requests(app) == 0


# -- refusals of the agency's own form: posted back to its callback, with the code ---------------------------


@pytest.mark.parametrize("change, code", [
    ({"op_code": "BATSIGN"}, "TGT_INV"),
    ({"op_code": "NFCSIGN"}, "TGT_INV"),
    ({"time_limit": "29"}, "SPTKT_TIME_ORV"),
    ({"time_limit": "601"}, "SPTKT_TIME_ORV"),
    ({"time_limit": "soon"}, "SPTKT_TIME_FT_ERR"),
    ({"hint": "長" * 257}, "PM_INV_NF"),
    ({"op_code": "SIGN"}, "PM_INV_NF"),  # nothing to sign
    ({"op_code": "SIGN", "sign_data": "x" * 1025}, "SIGNDATA_LEN_LIMIT"),
    ({"op_code": "SIGN", "sign_data": "x", "sign_type": "XML"}, "PM_INV_NF"),
    ({"op_code": "SIGN", "sign_data": "not base64!", "tbs_encoding": "base64"}, "PM_INV_NF"),
], ids=lambda value: str(value)[:40])
def test_a_malformed_form_of_the_agency_is_answered_at_its_callback_with_its_code(
    app, issuer, agency, site, phone, change, code
):
    page = _post_form(issuer, agency.web_form(**change))
    _posted_back(app, agency, site, page, code)
    assert _requests(app) == 0


def test_a_reused_transaction_id_is_answered_at_the_callback_with_txnlog_ins_err(app, issuer, agency, site, phone):
    form = agency.web_form()
    assert _post_form(issuer, form).data["data-token"]
    again = _post_form(issuer, form)  # the same form again (a reload resends it)
    _posted_back(app, agency, site, again, "TXNLOG_INS_ERR")
    assert _requests(app) == 1


def _posted_back(app, agency, site, page: Page, code: str) -> None:
    assert page.response.status_code == 200, page.response.text
    assert "Set-Cookie" not in page.response.headers
    assert page.form == site.callback_url and page.code == f"SP-API-WEB-01-{code}"
    assert page.fields["error_code"] == f"SP-API-WEB-01-{code}"
    assert agency.web_answer_holds(page.fields)
    assert _events(app, "sp:api:refused")[-1]["code"] == code
    _deliver({"action": page.form, "fields": page.fields})  # as the page's script submits it
    assert site.received[-1]["error_code"] == f"SP-API-WEB-01-{code}"


def test_unused_field_values_change_nothing_the_checksum_covers(issuer, agency, phone):
    """The checksum covers MoCert's WEB-01 order: transaction_id, sp_service_id, op_code, hint, sign_data; a
    time_limit or sign_type the agency changes after signing is not covered (as for getSpTicket)."""
    form = agency.web_form(op_code="SIGN", sign_data="文件")
    assert _post_form(issuer, {**form, "time_limit": "300", "sign_type": "RAW"}).data["data-token"]
    assert _post_form(issuer, {**agency.web_form(), "transaction_id": str(uuid.uuid4())}).code == (
        "SP-API-WEB-01-INV_SP_CHECKSUM")
