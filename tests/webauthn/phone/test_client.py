"""The phone's side of binding and login over HTTP, against a test double of MoCert's phone API."""

from __future__ import annotations

import pytest

from webauthn.phone import (
    InvalidStateError,
    LinkError,
    PhoneClient,
    PhoneLink,
    SecurityError,
    ServerError,
)

from tests.support import free_port


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
