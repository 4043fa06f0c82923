"""The phone's side of binding, login and agencies' requests over HTTP, against a test double of MoCert's phone
API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support import free_port
from twfido import ticket
from webauthn.phone import (
    InvalidStateError,
    LinkError,
    NotAllowedError,
    PhoneClient,
    PhoneLink,
    SecurityError,
    ServerError,
    SpTicket,
    SpTicketError,
)


@pytest.fixture
def client(browser) -> PhoneClient:
    return PhoneClient(browser, timeout=10)


def test_a_binding_link_gives_the_api_urls_under_the_public_url():
    link = PhoneLink.parse("https://auth.example.tw/mocert/m/bind/AbC-12_x")

    assert (link.kind, link.token, link.origin) == ("bind", "AbC-12_x", "https://auth.example.tw")
    assert link.api_url("options") == "https://auth.example.tw/mocert/api/v1/m/bind/AbC-12_x/options"
    assert PhoneLink.parse("http://localhost:5000/m/login/t1/").api_url("complete") == (
        "http://localhost:5000/api/v1/m/login/t1/complete"
    )


@pytest.mark.parametrize(
    "url",
    ["https://example.com/", "https://example.com/m/bind/", "example.com/m/bind/x", "https://example.com/m/bind/x?y=1"],
)
def test_what_is_not_a_binding_or_login_url_is_refused(url):
    with pytest.raises(LinkError):
        PhoneLink.parse(url)


def test_a_link_of_the_other_kind_is_refused():
    with pytest.raises(LinkError, match="is a login URL, not a binding URL"):
        PhoneLink.parse("https://example.com/m/login/x", "bind")


def test_a_plain_http_link_other_than_localhost_is_refused_before_anything_is_sent():
    with pytest.raises(SecurityError):
        PhoneLink.parse("http://auth.example.tw/m/bind/x")


def test_binding_over_http_registers_the_phone(client, phone_api, authenticator):
    device = client.bind(phone_api.bind_url("tok"), "Test phone")

    assert device["name"] == "Test phone" and device["status"] == "active"
    assert set(device) == {"id", "name", "bound_at", "expires_at", "status"}
    assert len(phone_api.credentials) == 1
    assert authenticator.credentials()[0].credential_id == phone_api.credentials[0].credential_id
    assert [r["path"] for r in phone_api.requests] == ["/api/v1/m/bind/tok/options", "/api/v1/m/bind/tok/complete"]


def test_the_phone_sends_no_cookie_and_no_csrf_token(client, phone_api):
    client.bind(phone_api.bind_url("tok"), "Test phone")  # every answer of the double sets a cookie
    client.login(phone_api.login_url("login-1"))

    assert len(phone_api.requests) == 4
    for request in phone_api.requests:
        headers = {name.lower() for name in request["headers"]}
        assert "cookie" not in headers and "x-csrf-token" not in headers
        assert request["headers"]["Content-Type"] == "application/json"


def test_a_login_shows_its_client_and_match_code_and_is_approved(client, phone_api):
    client.bind(phone_api.bind_url("tok"), "Test phone")

    request = client.login_request(phone_api.login_url("login-1"))
    assert (request.client_name, request.match_code) == ("Demo Bank", "42")
    assert request.public_key["allowCredentials"]
    assert client.approve(request) == {"status": "approved"}
    assert phone_api.approved == ["login-1"]


def test_a_login_not_confirmed_sends_nothing_more(client, phone_api):
    client.bind(phone_api.bind_url("tok"), "Test phone")

    assert client.login(phone_api.login_url("login-1"), confirm=lambda request: False) is None
    assert phone_api.requests[-1]["path"] == "/api/v1/m/login/login-1/options"
    assert phone_api.approved == []


def test_binding_twice_is_refused_by_the_phone(client, phone_api):
    client.bind(phone_api.bind_url("tok"), "Test phone")

    with pytest.raises(InvalidStateError):
        client.bind(phone_api.bind_url("tok-2"), "Test phone")
    assert len(phone_api.credentials) == 1


def test_the_servers_error_becomes_a_server_error_with_its_code_and_message(client, phone_api):
    with pytest.raises(ServerError) as raised:
        client.bind(f"{phone_api.public_url}/m/bind/unknown", "Test phone")

    assert (raised.value.status, raised.value.code) == (404, "bind_not_found")
    assert raised.value.message == "This link is unknown or has expired."


def test_a_status_other_than_the_contracts_is_an_error(client, phone_api, monkeypatch):
    real = phone_api._bind_complete
    monkeypatch.setattr(phone_api, "_bind_complete", lambda *args: (200, real(*args)[1]))

    with pytest.raises(ServerError) as raised:
        client.bind(phone_api.bind_url("tok"), "Test phone")
    assert (raised.value.status, raised.value.code) == (200, "unexpected_status")


def test_an_unreachable_server_is_a_server_error(client):
    port = free_port()  # closed again before the request: nothing listens there

    with pytest.raises(ServerError) as raised:
        client.binding_offer(f"http://localhost:{port}/m/bind/tok")
    assert (raised.value.status, raised.value.code) == (None, "unreachable")


# -- agencies' requests (TW FidO) --------------------------------------------------------------------------

TICKET = ticket.encode({"transaction_id": "t-1", "op_code": "ATH", "sp_service_id": "SP0001", "sp_ticket_id": "id-1"})


@pytest.fixture
def bound_client(client, phone_api) -> PhoneClient:
    client.bind(phone_api.bind_url("tok"), "Test phone")
    return client


def _paths(phone_api) -> list[str]:
    return [request["path"] for request in phone_api.requests]


def test_a_login_request_shows_the_agency_and_its_hint_and_is_approved(bound_client, phone_api):
    request = bound_client.sp_request(phone_api.public_url, phone_api.sp_ticket("ATH", hint="登入臺灣雲市集"))

    assert (request.sp_name, request.hint, request.op_code) == ("臺灣雲市集", "登入臺灣雲市集", "ATH")
    assert request.sign_data is None and request.sign_data_set is None
    assert request.expires_at > datetime.now(UTC)
    assert request.public_key["allowCredentials"] and request.public_key["userVerification"] == "required"
    assert bound_client.approve_sp(request) == {"status": "approved"}
    assert phone_api.sp_answers == {request.ticket.fields["sp_ticket_id"]: "approved"}
    assert _paths(phone_api)[-2:] == ["/api/v1/m/sp-requests/options", "/api/v1/m/sp-requests/complete"]
    assert not any("Cookie" in sent["headers"] for sent in phone_api.requests)


def test_a_sign_request_shows_the_text_it_signs(bound_client, phone_api):
    sp_ticket = phone_api.sp_ticket("SIGN", hint="簽署契約", sign_data="我同意第 3 條")

    request = bound_client.sp_request(phone_api.public_url, sp_ticket)

    assert (request.op_code, request.sign_data, request.sign_data_set) == ("SIGN", "我同意第 3 條", None)
    assert bound_client.approve_sp(request) == {"status": "approved"}


def test_a_batch_request_lists_every_text_it_signs_in_order(bound_client, phone_api):
    items = ["契約 A", "契約 B", "契約 C"]

    request = bound_client.sp_request(phone_api.public_url, phone_api.sp_ticket("BATSIGN", sign_data_set=items))

    assert (request.op_code, request.sign_data, request.sign_data_set) == ("BATSIGN", None, tuple(items))
    assert bound_client.approve_sp(request) == {"status": "approved"}


def test_a_declined_request_is_answered_without_signing(bound_client, phone_api, authenticator):
    signed_before = authenticator.credentials()[0].sign_count
    request = bound_client.sp_request(phone_api.public_url, phone_api.sp_ticket("SIGN", sign_data="轉帳 1,000 元"))

    assert bound_client.decline_sp(request) == {"status": "declined"}

    assert phone_api.sp_answers == {request.ticket.fields["sp_ticket_id"]: "declined"}
    assert _paths(phone_api)[-2:] == ["/api/v1/m/sp-requests/options", "/api/v1/m/sp-requests/decline"]
    assert authenticator.credentials()[0].sign_count == signed_before


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t[:-4],
        lambda t: t[:40] + ("A" if t[40] != "A" else "B") + t[41:],
        lambda t: t.split(".")[0],
        lambda t: t + " " + t,
        lambda t: "",
    ],
    ids=["cut", "mistyped", "digest-left-off", "pasted-twice", "empty"],
)
def test_a_cut_or_mistyped_ticket_is_refused_before_anything_is_sent(client, phone_api, damage):
    with pytest.raises(SpTicketError, match="cut or mistyped"):
        client.sp_request(phone_api.public_url, damage(phone_api.sp_ticket()))
    assert phone_api.requests == []
    assert issubclass(SpTicketError, LinkError)


def test_an_mweb2app_link_gives_the_server_the_ticket_and_the_way_back(bound_client, phone_api):
    sp_ticket = phone_api.sp_ticket()
    link = phone_api.sp_link(sp_ticket, rtn_url="https://market.example.tw/back?step=2", rtn_val="s-1")

    parsed = SpTicket.parse(link)
    assert (parsed.ticket, parsed.base_url) == (sp_ticket, phone_api.public_url)
    assert (parsed.return_url, parsed.return_value) == ("https://market.example.tw/back?step=2", "s-1")

    request = bound_client.sp_request(None, link)
    assert (request.base_url, request.origin) == (phone_api.public_url, phone_api.public_url)
    assert bound_client.approve_sp(request) == {"status": "approved"}


def test_an_mweb2app_link_under_a_path_keeps_the_path_and_may_leave_out_the_way_back():
    parsed = SpTicket.parse(f"https://auth.example.tw/mocert/m/sp/?sp_ticket={TICKET}")

    assert (parsed.base_url, parsed.fields["sp_ticket_id"]) == ("https://auth.example.tw/mocert", "id-1")
    assert (parsed.return_url, parsed.return_value) == (None, None)


@pytest.mark.parametrize(
    "url",
    [
        "https://auth.example.tw/m/sp",
        "https://auth.example.tw/m/sp?rtn_url=https://market.example.tw/",
        f"https://auth.example.tw/m/login/x?sp_ticket={TICKET}",
        f"https://auth.example.tw/m/sp?sp_ticket={TICKET}&sp_ticket={TICKET}",
        f"ftp://auth.example.tw/m/sp?sp_ticket={TICKET}",
    ],
    ids=["no-ticket", "no-ticket-but-a-way-back", "other-page", "two-tickets", "not-http"],
)
def test_what_is_not_an_mweb2app_link_is_refused(url):
    with pytest.raises(LinkError):
        SpTicket.parse(url)


def test_an_mweb2app_link_to_a_plain_http_server_is_refused():
    with pytest.raises(SecurityError):
        SpTicket.parse(f"http://auth.example.tw/m/sp?sp_ticket={TICKET}")


def test_a_bare_ticket_needs_the_servers_url(client):
    with pytest.raises(LinkError, match="does not say which server"):
        client.sp_request(None, TICKET)


def test_the_server_given_is_asked_even_when_the_link_names_another(bound_client, phone_api):
    elsewhere = phone_api.sp_link(phone_api.sp_ticket()).replace(phone_api.public_url, "https://auth.example.tw")

    request = bound_client.sp_request(phone_api.public_url, elsewhere)

    assert request.base_url == phone_api.public_url and request.ticket.base_url == "https://auth.example.tw"


def test_the_servers_refusal_of_a_request_is_surfaced_with_its_code_and_message(bound_client, phone_api):
    sp_ticket = phone_api.sp_ticket()
    bound_client.approve_sp(bound_client.sp_request(phone_api.public_url, sp_ticket))

    with pytest.raises(ServerError) as raised:
        bound_client.sp_request(phone_api.public_url, sp_ticket)
    assert (raised.value.status, raised.value.code) == (409, "sp_request_answered")
    assert raised.value.message == "This request has been answered already."

    with pytest.raises(ServerError) as raised:
        bound_client.sp_request(phone_api.public_url, TICKET)  # well formed, but not the server's
    assert (raised.value.status, raised.value.code) == (404, "sp_request_not_found")


@pytest.mark.parametrize(
    "op_code, shown",
    [
        ("SIGN", {"sign_data": "我同意第 4 條"}),
        ("SIGN", {"hint": "登入"}),
        ("BATSIGN", {"sign_data_set": ["契約 A", "契約 X"]}),
        ("ATH", {"op_code": "SIGN", "sign_data": "我同意第 3 條"}),
    ],
    ids=["other-text", "other-hint", "other-batch-item", "login-shown-as-signing"],
)
def test_a_request_that_would_sign_other_than_what_is_shown_is_refused(
    bound_client, phone_api, monkeypatch, op_code, shown
):
    real = phone_api._sp_options

    def showing_something_else(ticket_id, request):
        status, answer = real(ticket_id, request)
        return status, {**answer, **shown}

    monkeypatch.setattr(phone_api, "_sp_options", showing_something_else)
    sp_ticket = phone_api.sp_ticket(op_code, sign_data="我同意第 3 條", sign_data_set=["契約 A", "契約 B"])

    with pytest.raises(ServerError) as raised:
        bound_client.sp_request(phone_api.public_url, sp_ticket)
    assert raised.value.code == "challenge_mismatch"


def test_an_operation_the_phone_does_not_do_is_refused(bound_client, phone_api):
    with pytest.raises(ServerError, match="'NFCSIGN'") as raised:
        bound_client.sp_request(phone_api.public_url, phone_api.sp_ticket("NFCSIGN"))
    assert raised.value.code == "bad_response"


def test_a_phone_not_bound_cannot_approve_a_request(client, phone_api):
    request = client.sp_request(phone_api.public_url, phone_api.sp_ticket())

    with pytest.raises(NotAllowedError):
        client.approve_sp(request)
    assert phone_api.sp_answers == {}
