"""The marketplace's login with 行動自然人憑證: the marketplace, registered at MoCert as an agency, calls the TW
FidO API for agencies from its server (examples/marketplace/twfido_client.py), over real HTTP with MoCert live,
and the reference software phone, bound through the real flow, scans (or is pushed) and answers."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update

from app.audit import Tags
from app.extensions import db
from app.models import AuditEvent, SpRequest, utcnow
from examples.marketplace.app import create_app
from examples.marketplace.registration import AGENCY_NAME
from examples.marketplace.twfido_client import Refused, TwFidoClient, Untrusted
from twfido import ticket as twfido_ticket

from .test_marketplace import VALID_TAX_ID, csrf_of

ID = "A123456789"


def start(http: requests.Session, market: str, national_id: str = ID, mode: str = "qr") -> requests.Response:
    """The person types their ID on the marketplace's page and chooses the QR code or a push."""
    form = http.get(f"{market}/login/mobile", timeout=10)
    assert form.status_code == 200
    return http.post(f"{market}/login/mobile", data={"csrf_token": csrf_of(form), "national_id": national_id,
                                                     "mode": mode}, allow_redirects=False, timeout=30)


def waiting_page(http: requests.Session, market: str, mode: str = "qr") -> requests.Response:
    started = start(http, market, mode=mode)
    assert started.status_code == 303 and started.headers["Location"] == "/login/mobile/wait", started.text
    return http.get(f"{market}/login/mobile/wait", timeout=10)


def shown(page: requests.Response, element_id: str) -> str:
    return html.unescape(re.search(rf'id="{element_id}"[^>]*>([^<]*)<', page.text).group(1)).strip()


def status(http: requests.Session, market: str, page: requests.Response) -> dict:
    """The waiting page's poll, as its script makes it (the session's CSRF token from the page)."""
    token = re.search(r'data-csrf="([^"]+)"', page.text) or re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    answer = http.post(f"{market}/login/mobile/status", data={"csrf_token": html.unescape(token.group(1))},
                       timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_person_logs_in_by_scanning_the_qr_ticket_and_approving_on_the_phone(mocert, marketplace, phone):
    market, http = marketplace.url, requests.Session()
    home = http.get(market, timeout=10)
    assert 'id="login-mobile"' in home.text and "以行動自然人憑證登入" in home.text

    page = waiting_page(http, market)
    assert "<svg" in page.text and 'id="mobile-qr-code"' in page.text and "A12****789" in page.text
    hint = shown(page, "mobile-hint")
    assert re.fullmatch(r"\d{6}", hint)
    sp_ticket = shown(page, "mobile-ticket")
    fields = twfido_ticket.decode(sp_ticket)
    assert (fields["op_mode"], fields["hint"], fields["sp_name"]) == ("I-SCAN", hint, AGENCY_NAME)
    assert fields["hashed_id_num"] == hashlib.sha256(ID.encode()).hexdigest()

    # The phone shows the marketplace and the same code; the person compares and approves.
    request = phone.sp_request(mocert, sp_ticket)
    assert (request.sp_name, request.hint, request.op_code) == (AGENCY_NAME, hint, "ATH")
    assert phone.approve_sp(request) == {"status": "approved"}

    assert status(http, market, page) == {"status": "logged_in", "next": "/join"}
    join = http.get(f"{market}/join", timeout=10)
    assert "王小明" in join.text  # the name in the mobile certificate MoCert's CA issued
    method = re.search(r'id="login-method" data-method="([a-z]+)"', join.text).group(1)
    assert method == "mobile" and "以行動自然人憑證登入" in join.text and "hashed_id_num" in join.text
    assert "A12****789" in join.text
    joined = http.post(f"{market}/join", data={"csrf_token": csrf_of(join), "name": "小明雲端商行",
                                               "tax_id": VALID_TAX_ID}, timeout=10)
    assert joined.url == f"{market}/company" and re.search(r'id="points">30,000<', joined.text)

    # The login ended once: polling it again logs no one in again.
    assert status(http, market, joined)["status"] == "ended"
    # Logging out ends the marketplace's session only: this login opened none at MoCert.
    out = http.post(f"{market}/logout", data={"csrf_token": csrf_of(joined)}, allow_redirects=False, timeout=10)
    assert (out.status_code, out.headers["Location"]) == (303, "/")
    assert "您已登出" in http.get(f"{market}/", timeout=10).text
    assert http.get(f"{market}/company", allow_redirects=False, timeout=10).headers["Location"] == "/login"

    # Next time the same ID finds the same company.
    again = requests.Session()
    page = waiting_page(again, market)
    phone.approve_sp(phone.sp_request(mocert, shown(page, "mobile-ticket")))
    assert status(again, market, page) == {"status": "logged_in", "next": "/company"}


def test_the_marketplace_asks_mocert_at_most_every_four_seconds_however_often_its_page_polls(
    mocert, marketplace, phone
):
    market, http = marketplace.url, requests.Session()
    page = waiting_page(http, market)
    first = time.monotonic()
    assert status(http, market, page) == {"status": "pending"}  # asked MoCert: not answered yet
    phone.approve_sp(phone.sp_request(mocert, shown(page, "mobile-ticket")))
    assert time.monotonic() - first < 4
    assert status(http, market, page) == {"status": "pending"}  # MoCert not asked again so soon
    time.sleep(max(0.0, 4.1 - (time.monotonic() - first)))
    assert status(http, market, page)["status"] == "logged_in"


def test_a_person_logs_in_by_a_push_to_their_phone(mocert, marketplace, phone):
    market, http = marketplace.url, requests.Session()
    page = waiting_page(http, market, mode="push")
    assert 'id="mobile-pushed"' in page.text and "<svg" not in page.text and 'id="mobile-ticket"' not in page.text
    hint = shown(page, "mobile-hint")

    # What reaches the phone: the ticket MoCert answered the marketplace's requestAthOrSignPush with (MoCert's
    # phones have no inbox to fetch it from yet).
    login_id = _session(marketplace, http)["mobile_login"]
    pushed = marketplace.app.extensions["marketplace"]["store"].mobile_login(login_id).sp_ticket
    assert twfido_ticket.decode(pushed)["op_mode"] == "PUSH"
    request = phone.sp_request(mocert, pushed)
    assert request.hint == hint
    phone.approve_sp(request)
    assert status(http, market, page) == {"status": "logged_in", "next": "/join"}
    assert 'data-method="mobile"' in http.get(f"{market}/join", timeout=10).text


def test_declining_on_the_phone_logs_nobody_in_and_says_so(mocert, marketplace, phone):
    market, http = marketplace.url, requests.Session()
    page = waiting_page(http, market)
    phone.decline_sp(phone.sp_request(mocert, shown(page, "mobile-ticket")))
    answer = status(http, market, page)
    assert (answer["status"], answer["code"]) == ("refused", "APP_USER_CANCEL")
    assert answer["message"]["zh"].startswith("您已在手機上拒絕") and "declined" in answer["message"]["en"]
    assert answer["message"]["bind_url"] is None
    assert http.get(f"{market}/company", allow_redirects=False, timeout=10).headers["Location"] == "/login"
    assert status(http, market, page)["status"] == "ended"


def test_an_expired_ticket_logs_nobody_in(app, mocert, marketplace, phone):
    market, http = marketplace.url, requests.Session()
    page = waiting_page(http, market)
    with app.app_context():  # the person let the ticket's three minutes pass
        db.session.execute(update(SpRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    answer = status(http, market, page)
    assert (answer["status"], answer["code"]) == ("refused", "SPTKT_OVD")
    assert "逾時" in answer["message"]["zh"] and "expired" in answer["message"]["en"]


@pytest.mark.parametrize("national_id, bound", [("B223456782", False), (ID, True)],
                         ids=["not registered", "registered without a phone"])
def test_a_person_without_a_phone_at_mocert_is_told_to_bind_one_there_first(mocert, marketplace, person,
                                                                             national_id, bound):
    refused = start(requests.Session(), marketplace.url, national_id)
    assert refused.status_code == 400
    text = html.unescape(refused.text)
    zh, en = text.index("請先至 MoCert 綁定手機"), text.index("Bind a phone there first")
    assert zh < en  # Traditional Chinese first
    link = html.unescape(re.search(r'id="bind-link" href="([^"]+)"', refused.text).group(1))
    assert link == f"{mocert}/account/devices/bind"
    assert national_id in text  # the form keeps what was typed


def test_a_national_id_of_the_wrong_shape_is_refused_before_mocert_is_asked_and_a_wrong_check_digit_by_mocert(
    app, marketplace
):
    def refusals():
        with app.app_context():
            return [e.details["code"] for e in db.session.scalars(
                select(AuditEvent).where(AuditEvent.tag == Tags.SP_API_REFUSED))]

    for typed, sent in (("A12345", []), ("A123456788", ["PM_IDN_FT_ERR"])):
        refused = start(requests.Session(), marketplace.url, typed)
        assert refused.status_code == 400 and "身分證字號不正確" in refused.text
        assert refusals() == sent
    forged = requests.post(f"{marketplace.url}/login/mobile", data={"national_id": ID}, timeout=10)
    assert forged.status_code == 400  # no CSRF token


def test_without_an_agency_registration_the_mobile_login_is_not_offered(tmp_path):
    (tmp_path / "client.json").write_text(json.dumps({"client_id": "c1", "client_secret": "s1"}))
    app = create_app({"INSTANCE_DIR": tmp_path, "CLIENT_ID": None, "CLIENT_FILE": tmp_path / "client.json",
                      "SP_SERVICE_ID": None, "AGENCY_FILE": tmp_path / "none.json", "DATABASE": tmp_path / "m.db"})
    client = app.test_client()
    assert 'id="login-mobile"' not in client.get("/").get_data(as_text=True)
    page = client.get("/login/mobile")
    assert page.status_code == 503 and "尚未向 MoCert 註冊為需用機關" in page.get_data(as_text=True)


# -- the client's own checks --------------------------------------------------------------------------------


def _client(marketplace, mocert, **changes) -> TwFidoClient:
    kept = json.loads((marketplace.instance / "marketplace-agency.json").read_text())
    settings = {"sp_service_id": kept["sp_service_id"], "api_key": kept["api_key"], "rp_id": "localhost", **changes}
    return TwFidoClient(mocert, **settings)


def test_an_approval_signed_for_another_site_is_not_believed(mocert, marketplace, phone):
    client = _client(marketplace, mocert, rp_id="mocert.example")
    request = client.ticket(ID, hint="123456")
    assert client.result(request) is None  # not answered yet
    phone.approve_sp(phone.sp_request(mocert, request.sp_ticket))
    with pytest.raises(Untrusted, match="another site"):
        client.result(request)
    approval = _client(marketplace, mocert).result(request)  # the right site: believed
    assert approval.hashed_id_num == hashlib.sha256(ID.encode()).hexdigest() and approval.name == "王小明"


def test_a_wrong_key_is_refused_by_mocert(mocert, marketplace, phone):
    client = _client(marketplace, mocert, api_key=base64.b64encode(bytes(32)).decode())
    with pytest.raises(Refused) as refused:
        client.ticket(ID, hint="123456")
    assert refused.value.code == "INV_SP_CHECKSUM"


def _session(marketplace, http: requests.Session) -> dict:
    """The marketplace's signed session cookie, read with its own secret key (as the app reads it)."""
    serializer = marketplace.app.session_interface.get_signing_serializer(marketplace.app)
    return serializer.loads(http.cookies["marketplace_session"])
