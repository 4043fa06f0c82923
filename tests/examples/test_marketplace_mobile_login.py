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
from datetime import datetime, timedelta, timezone

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter
from sqlalchemy import select, update

from app.audit import Tags
from app.extensions import db
from app.models import AuditEvent, SpRequest, utcnow
from examples.marketplace import mobile_login
from examples.marketplace.app import create_app
from examples.marketplace.registration import AGENCY_NAME
from examples.marketplace.twfido_client import Refused, TwFidoClient, Untrusted
from iccard.national_id import is_valid as mocert_accepts
from tests.app.oidc.support import Browser
from twfido import checksum
from twfido import ticket as twfido_ticket
from twfido.revocation import RevocationUnknown, Sources, fetch_url

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
    assert http.get(f"{market}/company", allow_redirects=False, timeout=10).headers["Location"] == "/"

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
    assert http.get(f"{market}/company", allow_redirects=False, timeout=10).headers["Location"] == "/"
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


def test_an_unknown_id_and_an_id_without_a_usable_phone_are_told_alike_to_bind_a_phone_first(
    app, mocert, marketplace, person
):
    """Whoever types an ID learns neither whether it is registered at MoCert nor whether it has a phone."""
    def refusals():
        with app.app_context():
            return [e.details["code"] for e in db.session.scalars(
                select(AuditEvent).where(AuditEvent.tag == Tags.SP_API_REFUSED))]

    pages = {}
    for national_id in ("B223456782", ID):  # not registered; registered (王小明), no phone bound
        refused = start(requests.Session(), marketplace.url, national_id)
        assert refused.status_code == 400
        assert national_id in html.unescape(refused.text)  # the form keeps what was typed
        pages[national_id] = shown(refused, "mobile-error")
        link = html.unescape(re.search(r'id="bind-link" href="([^"]+)"', refused.text).group(1))
        assert link == f"{mocert}/account/devices/bind"
    assert refusals() == ["IDNUM_USERPROF_NF", "IDNUM_DEVPROF_NF"]  # MoCert told the marketplace which…
    assert pages["B223456782"] == pages[ID]  # …the page tells no one
    error = pages[ID]
    assert error.startswith("此身分證字號目前無法以行動自然人憑證登入") and "請先至 MoCert 綁定手機" in error
    assert "IDNUM" not in error


@pytest.mark.parametrize("typed", ["A12345", "a12345678x", "A323456789", "A123456788", "Z123456789"])
def test_a_national_id_of_the_wrong_shape_or_check_digit_is_refused_before_mocert_is_asked(app, marketplace, typed):
    refused = start(requests.Session(), marketplace.url, typed)
    assert refused.status_code == 400 and "身分證字號不正確" in refused.text
    with app.app_context():
        assert not db.session.scalars(select(AuditEvent).where(AuditEvent.tag == Tags.SP_API_REFUSED)).all()


def test_the_marketplaces_check_digit_rule_is_mocerts():
    # MoCert's rule (iccard) is the reference; the example has its own copy, importing nothing of MoCert's.
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        for body in ("12345678", "22345678", "80000001", "90000000", "10000000"):
            candidates = [f"{letter}{body}{digit}" for digit in range(10)]
            assert [mocert_accepts(c) for c in candidates] == [_marketplace_accepts(c) for c in candidates]
            assert sum(map(_marketplace_accepts, candidates)) == 1  # one check digit fits


def _marketplace_accepts(candidate: str) -> bool:
    try:
        mobile_login.normalize(candidate)
    except mobile_login.InvalidNationalId:
        return False
    return True


def test_a_visitor_starting_logins_again_and_again_is_stopped_before_mocert_is_asked(app, marketplace):
    """Each start asks MoCert; MoCert refuses wrong IDs to the marketplace's one address at most so many a
    minute, so one visitor trying ID after ID must not spend that for everyone."""
    http = requests.Session()
    limit, _ = mobile_login.VISITOR_LIMIT
    for _ in range(limit):
        assert start(http, marketplace.url, "B223456782").status_code == 400  # asked MoCert: not registered
    stopped = start(http, marketplace.url, "B223456782")
    assert stopped.status_code == 429 and "登入嘗試過於頻繁" in stopped.text
    assert start(requests.Session(), marketplace.url, ID, mode="push").status_code == 429  # the address, any ID
    with app.app_context():
        assert len(db.session.scalars(select(AuditEvent).where(AuditEvent.tag == Tags.SP_API_REFUSED)).all()) == limit


def test_pushes_to_one_national_id_are_limited_whoever_asks_and_the_qr_code_stays(app, mocert, marketplace, phone):
    """A push reaches the phones of whatever ID is typed: three in ten minutes, from any address; then the
    person's phones are left alone (approval fatigue), and scanning a QR code still works."""
    market = marketplace.url
    parts = marketplace.app.extensions["marketplace"]
    form = requests.get(f"{market}/login/mobile", timeout=10)
    assert "推播只會送到上面所填身分證字號在 MoCert 綁定的手機" in html.unescape(form.text)  # the page says so
    assert start(requests.Session(), market, mode="qr").status_code == 303
    pushes, _ = mobile_login.PUSH_LIMIT
    for _ in range(pushes):
        assert start(requests.Session(), market, mode="push").status_code == 303
    stopped = start(requests.Session(), market, mode="push")
    assert stopped.status_code == 429 and "推播次數已達上限" in stopped.text and "QR Code" in stopped.text
    with pytest.raises(mobile_login.TooManyLogins) as limited:  # from another address as well
        mobile_login.start(parts["twfido"], parts["store"], ID, push=True, visitor="198.51.100.7")
    assert limited.value.which == "push"
    assert start(requests.Session(), market, mode="qr").status_code == 303
    with app.app_context():
        modes = [r.op_mode for r in db.session.scalars(select(SpRequest).order_by(SpRequest.id))]
    assert modes == ["I-SCAN"] + ["PUSH"] * pushes + ["I-SCAN"]


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


# -- a MoCert whose answers are not to be believed ----------------------------------------------------------


class TamperingMoCert(HTTPAdapter):
    """MoCert as the marketplace hears it through this transport: each approved getAthOrSignResult answer is
    kept (``approved``) and, once ``change`` is set, altered by it; then, unless ``reseal`` is false, its
    idp_checksum is sealed again over what was changed, as a MoCert that lies (it holds the key) would."""

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self.key, self.change, self.reseal, self.approved = key, None, True, []

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        if not request.url.endswith("/moise/sp/getAthOrSignResult"):
            return response
        answer = response.json()
        if answer["error_code"] != "0":
            return response
        self.approved.append(dict(answer["result"]))
        if self.change is not None:
            self.change(answer["result"])
            if self.reseal:
                answer["result"]["idp_checksum"] = checksum.seal(self.key, checksum.fields_of(
                    {**answer, **answer["result"]}, checksum.ANSWER_FIELDS["result"]))
            response._content = json.dumps(answer).encode()
        return response


def _use_client(marketplace, mocert, **changes) -> TwFidoClient:
    """The marketplace, from now on, with its client of MoCert made as the app makes it but with ``changes``
    (another transport, another source of certificates' status)."""
    client = _client(marketplace, mocert, **changes)
    marketplace.app.extensions["marketplace"]["twfido"] = client
    return client


def _tampering(marketplace, mocert) -> TamperingMoCert:
    kept = json.loads((marketplace.instance / "marketplace-agency.json").read_text())
    tampering, session = TamperingMoCert(checksum.agency_key(kept["api_key"])), requests.Session()
    session.mount(mocert, tampering)
    _use_client(marketplace, mocert, session=session)
    return tampering


def _approved_login(mocert, market: str, phone) -> tuple[requests.Session, dict]:
    """A login the person approves on the phone: the browser, and the page's first poll after."""
    http = requests.Session()
    page = waiting_page(http, market)
    phone.approve_sp(phone.sp_request(mocert, shown(page, "mobile-ticket")))
    return http, status(http, market, page)


def _self_signed_like_the_persons() -> str:
    """A certificate for 王小明 that MoCert's mobile CA did not issue: base64 DER."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "王小明")])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()


def _flip_last_digit(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


TAMPERINGS = {
    # (what MoCert's answer says instead, whether its idp_checksum is sealed again over that)
    "idp_checksum": (lambda result, seen: result.update(idp_checksum=_flip_last_digit(result["idp_checksum"])),
                     False),
    "hashed_id_num": (lambda result, seen: result.update(
        hashed_id_num=hashlib.sha256(b"B223456782").hexdigest()), True),  # as if about another person
    "signed_response": (lambda result, seen: result.update(  # an earlier login's approval, replayed
        signed_response=seen[0]["signed_response"], cert=seen[0]["cert"]), True),
    "cert": (lambda result, seen: result.update(cert=_self_signed_like_the_persons()), True),
    "cert_not_text": (lambda result, seen: result.update(cert=12345), True),
}


@pytest.mark.parametrize("field", sorted(TAMPERINGS))
def test_an_approval_mocert_answers_altered_logs_nobody_in(mocert, marketplace, phone, field):
    tampering = _tampering(marketplace, mocert)
    earlier, answer = _approved_login(mocert, marketplace.url, phone)  # untouched: believed
    assert answer["status"] == "logged_in"
    change, tampering.reseal = TAMPERINGS[field]
    tampering.change = lambda result: change(result, tampering.approved)

    http, answer = _approved_login(mocert, marketplace.url, phone)
    assert (answer["status"], answer["message"]["zh"]) == ("failed", "登入失敗，請再試一次。")
    assert len(tampering.approved) == 2  # MoCert did answer an approval: the marketplace did not believe it
    assert http.get(f"{marketplace.url}/join", allow_redirects=False, timeout=10).headers["Location"] == "/"
    assert "mobile_login" not in _session(marketplace, http)  # the login ended: not asked again
    assert status(http, marketplace.url, http.get(f"{marketplace.url}/login/mobile", timeout=10))["status"] == "ended"


def test_an_approval_from_a_phone_revoked_since_logs_nobody_in_and_says_why(mocert, marketplace, pki, phone):
    market, http = marketplace.url, requests.Session()
    page = waiting_page(http, market)
    phone.approve_sp(phone.sp_request(mocert, shown(page, "mobile-ticket")))
    # The person unbinds the phone at MoCert (lost, say) before the marketplace reads the approval: MoCert
    # still answers it, and its mobile CA now says the certificate is revoked.
    person = Browser(mocert, pki)
    person.card_login()
    [device] = person.http.get(f"{mocert}/api/v1/devices", timeout=10).json()["devices"]
    unbound = person.http.delete(f"{mocert}/api/v1/devices/{device['id']}", json={"reason": "lost"},
                                 headers={"X-CSRF-Token": person.csrf()}, timeout=10)
    assert unbound.json()["device"]["status"] == "revoked"

    answer = status(http, market, page)
    assert answer["status"] == "revoked"
    assert answer["message"]["zh"].startswith("此手機的行動自然人憑證已被廢止") and "revoked" in answer["message"]["en"]
    assert http.get(f"{market}/join", allow_redirects=False, timeout=10).headers["Location"] == "/"
    assert status(http, market, page)["status"] == "ended"


def test_when_the_certificates_status_cannot_be_learnt_the_page_keeps_waiting_and_the_login_follows(
    mocert, marketplace, phone
):
    reachable = False

    def fetch(url: str, body: bytes | None) -> bytes:  # the mobile CA's OCSP responder and CRL, away a moment
        if not reachable:
            raise RevocationUnknown(f"{url} did not answer (the test)")
        return fetch_url(url, body)

    _use_client(marketplace, mocert, revocation=Sources(fetch=fetch))
    market, http = marketplace.url, requests.Session()
    page = waiting_page(http, market)
    phone.approve_sp(phone.sp_request(mocert, shown(page, "mobile-ticket")))
    first = time.monotonic()
    assert status(http, market, page) == {"status": "pending"}  # not refused: not known to be revoked either
    reachable = True
    time.sleep(max(0.0, 4.1 - (time.monotonic() - first)))  # the next poll MoCert is asked again
    assert status(http, market, page) == {"status": "logged_in", "next": "/join"}
