"""What an outsider sends cannot break us: text the database and UTF-8 cannot hold, JSON nested without end,
a Host that is no host name, ids beyond the columns, and the answer when something fails anyway."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, Binding, Device
from tests.factories import make_account
from tests.support import card_login, card_of, register

NUL, SURROGATE = "\x00", "\ud800"


def _events(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent))


def _refused(response, *, page: bool = False) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    if page:
        assert response.mimetype == "text/html" and "無法" in response.get_data(as_text=True)
    else:
        assert response.get_json()["error"] == "invalid_characters", response.get_json()


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "page"),
    [
        ("GET", "/admin/clients/%00", {}, True),
        ("GET", "/api/v1/bindings/%00", {}, False),
        ("GET", "/api/v1/login-requests/%00", {}, False),
        ("GET", "/login?next=%00", {}, True),
        ("GET", "/api/v1/admin/audit?site=%00", {}, False),
        ("GET", "/authorize?response_type=code&client_id=%00", {}, True),
        ("POST", "/oauth/token", {"data": {"grant_type": "authorization_code", "client_id": NUL, "code": "x"}}, False),
        ("POST", "/oauth/token", {"data": {"grant_type": "authorization_code", "code": "x"},
                                  "headers": {"Authorization": "Basic " + base64.b64encode(b"%00:secret").decode()}},
         False),
        ("POST", "/oauth/revoke", {"data": {"token": "x", "client_id": "a\x00b"}}, False),
        ("POST", "/oidc/logout", {"data": {"client_id": NUL}}, True),
        ("POST", "/api/v1/card-login/begin", {"headers": {"User-Agent": "agent" + NUL}}, False),
    ],
)
def test_nul_in_a_path_query_form_or_credentials_is_refused_at_the_door(app, client, pki, method, path, kwargs, page):
    """Before: /admin/clients/%00 was audited with \\u0000, and on PostgreSQL client_id=%00 was a 500."""
    with app.app_context():
        make_account(pki, card_of(pki, "A123456789"))
    card_login(client, pki, card_of(pki, "A123456789"))
    before = _events(app)
    _refused(client.raw.open(path, method=method, **kwargs), page=page)
    assert _events(app) == before  # nothing audited, nothing changed


@pytest.mark.parametrize("header", ["Basic " + base64.b64encode(b"\xff\xfe:secret").decode(), "Basic \xe9t\xe9"])
def test_basic_credentials_that_are_not_utf8_or_not_ascii_are_refused(client, header):
    """Authlib decodes client_secret_basic strictly: invalid UTF-8 there was a 500, and a header that is not
    ASCII (gunicorn passes such bytes on) a ValueError from its base64 decoding on every route."""
    for path, form in (("/oauth/token", {"grant_type": "authorization_code", "code": "x"}), ("/oauth/revoke", {"token": "x"})):
        response = client.raw.post(path, data=form, headers={"Authorization": header})
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_characters", path
    assert client.raw.get("/", headers={"Authorization": header}).status_code == 400


@pytest.mark.parametrize("bad", [NUL, SURROGATE, "\udfff", "ok" + NUL])
def test_json_with_nul_or_a_lone_surrogate_is_refused_as_a_value_or_a_key(client, bad):
    escaped = bad.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    for body in ({"login_id": escaped}, {escaped: "x"}, {"x": [{"y": escaped}]}):
        raw = json.dumps(body)  # ensure_ascii: the bad text travels as \\u escapes
        response = client.post("/api/v1/card-login/complete", data=raw, content_type="application/json")
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_characters", raw


def _json_routes(app):
    """Every route taking a body, with its path arguments filled in."""
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"GET", "HEAD", "OPTIONS"}):
            path = rule.rule
            for argument in rule.arguments:
                path = path.replace(f"<int:{argument}>", "1")
                path = path.replace(f"<any(suspend, resume, revoke):{argument}>", "revoke")
                path = path.replace(f"<any('rotate-secret', disable, enable):{argument}>", "disable")
                path = path.replace(f"<any(disable, enable):{argument}>", "disable")
                path = path.replace(f"<any(lock, unlock):{argument}>", "lock")
                path = path.replace(f"<path:{argument}>", "x").replace(f"<{argument}>", "x")
            yield method, path


@pytest.mark.parametrize("logged_in", [False, True])
def test_deeply_nested_json_is_a_400_on_every_route(app, client, pki, logged_in):
    """30,000 brackets were a RecursionError (500), unauthenticated, wherever a JSON body is read."""
    if logged_in:
        register(client, pki)
    deep = "[" * 30_000 + "]" * 30_000
    nested = '{"a":' * 40 + "1" + "}" * 40  # parses, but deeper than any body we take
    seen = 0
    for method, path in _json_routes(app):
        for body in (deep, nested):
            response = client.raw.open(path, method=method, data=body, content_type="application/json",
                                       headers={"X-CSRF-Token": client.csrf()})
            assert response.status_code < 500, (method, path, response.get_data(as_text=True)[:200])
            if response.is_json and response.get_json().get("error") == "json_too_deep":
                seen += 1
    assert seen >= 8  # the card login, registration, the phone's binding and login, the login requests…


def test_a_json_body_within_the_depth_still_works(client, pki, app):
    register(client, pki)
    response = client.post("/api/v1/account/verify-email", json={"code": "000000", "extra": [[[[{"a": [1]}]]]]})
    assert response.status_code in (200, 400) and response.get_json()["error"] != "json_too_deep"


@pytest.mark.parametrize("path", ["/", "/login", "/api/v1/csrf", "/.well-known/openid-configuration"])
def test_a_host_header_label_over_63_characters_is_a_400(client, path):
    """Werkzeug refuses it (IDNA), then our error page could not build its links: a 500 on every route."""
    response = client.raw.get(path, headers={"Host": "a" * 64 + ".example"})
    assert response.status_code == 400
    if path.startswith("/api/") or path.startswith("/.well-known/"):
        assert response.get_json()["error"] == "invalid_host"
    else:
        assert response.mimetype == "text/html" and "MoCert" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/oauth/revoke", "/oauth/token"])
def test_a_host_header_of_bad_punycode_is_a_400(app, path):
    """Routing takes ``xn--zz``; decoding it for the request's URL (Authlib asks for it) failed: a 500.
    (Werkzeug's test client cannot send it: it decodes the URL itself, so the request goes in as WSGI.)"""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    environ = EnvironBuilder(path=path, method="POST", data={"token": "x"}).get_environ()
    environ["HTTP_HOST"] = "xn--zz"
    body, status, headers = run_wsgi_app(app, environ, buffered=True)
    assert status.startswith("400") and json.loads(b"".join(body))["error"] == "invalid_host"


def test_ids_beyond_the_32_bit_columns_are_404(app, client, pki):
    """The id columns are 32-bit on PostgreSQL: 2³¹ and up overflowed the driver (500) instead of a 404."""
    register(client, pki)
    token = client.csrf()
    for device_id in (2**31 - 1, 2**31, 2**40, 2**63 - 1, 2**63, 10**30):
        for method in ("PATCH", "DELETE"):
            response = client.raw.open(f"/api/v1/devices/{device_id}", method=method, json={"name": "x", "reason": "x"},
                                       headers={"X-CSRF-Token": token})
            assert response.status_code == 404, (device_id, method, response.get_json())
        assert client.post(f"/api/v1/devices/{device_id}/renew").status_code == 404
        assert client.get(f"/api/v1/devices/{device_id}/certificate").status_code == 404


def test_unstorable_text_never_spends_a_binding_token(app, client, pki):
    """A lone surrogate in device_name reached the database after the binding token was spent."""
    import json

    from webauthn.phone import PhoneBrowser, SoftwareAuthenticator

    with app.app_context():
        make_account(pki, card_of(pki, "A123456789"))
        from app.models import Account, utcnow

        db.session.scalar(select(Account)).email_verified_at = utcnow()
        db.session.commit()
    card_login(client, pki, card_of(pki, "A123456789"))
    created = client.post("/api/v1/bindings", json={}).get_json()
    token = created["url"].rsplit("/", 1)[1]
    phone_http, phone = app.test_client(), PhoneBrowser(SoftwareAuthenticator(None))
    options = phone_http.post(f"/api/v1/m/bind/{token}/options", json={}).get_json()["publicKey"]
    credential = phone.create(options, origin="http://localhost")
    for name in (SURROGATE, "手機" + NUL):
        raw = json.dumps({"credential": credential, "device_name": name})
        refused = phone_http.post(f"/api/v1/m/bind/{token}/complete", data=raw, content_type="application/json")
        assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_characters"
    with app.app_context():
        assert db.session.scalar(select(Binding.consumed_at)) is None
    done = phone_http.post(f"/api/v1/m/bind/{token}/complete", json={"credential": credential, "device_name": "手機"})
    assert done.status_code == 201, done.get_json()
    device_id = done.get_json()["device"]["id"]
    rename = client.raw.patch(f"/api/v1/devices/{device_id}", data=json.dumps({"name": SURROGATE}),
                              content_type="application/json", headers={"X-CSRF-Token": client.csrf()})
    assert rename.status_code == 400 and rename.get_json()["error"] == "invalid_characters"
    with app.app_context():
        assert db.session.scalar(select(Device.name)) == "手機"


def test_a_lone_surrogate_in_the_email_code_counts_no_attempt(app, client, pki, mailbox):
    import json

    from app.models import EmailVerification

    register(client, pki)
    for code in (SURROGATE * 6, "12345" + NUL):
        response = client.post("/api/v1/account/verify-email", data=json.dumps({"code": code}),
                               content_type="application/json")
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_characters"
    with app.app_context():
        assert db.session.scalar(select(EmailVerification.failed_attempts)) == 0


def test_a_login_request_naming_a_nul_client_is_a_400(client):
    """The authorize query inside the JSON is decoded again: %00 there reached PostgreSQL."""
    response = client.post("/api/v1/login-requests", json={"authorize": "response_type=code&client_id=%00"})
    assert response.status_code == 400 and response.get_json()["error"] == "malformed_input"


# -- when something fails anyway -------------------------------------------------------------------------


@pytest.fixture
def failing_app(app):
    """The app with a route that fails, errors handled as in production (not propagated to the test)."""

    def boom():
        raise RuntimeError("a bug")

    app.add_url_rule("/boom", "boom", boom)
    app.add_url_rule("/api/v1/boom", "api_boom", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def test_a_500_answers_json_under_the_api_and_a_page_elsewhere(failing_app):
    http = failing_app.test_client()
    api = http.get("/api/v1/boom")
    assert api.status_code == 500 and api.get_json()["error"] == "internal_error"
    assert "a bug" not in api.get_data(as_text=True)
    page = http.get("/boom")
    assert page.status_code == 500 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "<html" in text and "MoCert" in text and "請稍後再試" in text and "a bug" not in text


def test_a_500_whose_page_cannot_be_rendered_still_answers_a_page(failing_app, monkeypatch):
    from app import errors

    def broken(*args, **kwargs):
        raise RuntimeError("the template is broken too")

    monkeypatch.setattr(errors, "render_template", broken)
    page = failing_app.test_client().get("/boom")
    assert page.status_code == 500 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "<html" in text and "請稍後再試" in text and "Please try again later" in text
