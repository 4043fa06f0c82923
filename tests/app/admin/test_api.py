"""The administration API: devices stopped at once, accounts locked, relying parties managed, the audit
trail read and exported, by an admin session or a scoped service token, and nothing by an auditor."""

from __future__ import annotations

import base64
import csv
import io
from datetime import timedelta
from enum import StrEnum

import pytest
import requests
from sqlalchemy import select, update

from app.extensions import db
from app.models import (Account, Agency, AuditEvent, AuthSession, Device, MobileCertificate, OidcClient, ServiceToken,
                        utcnow)
from webauthn.phone import ServerError

from ..oidc.support import RP, Browser, Computer, query
from ..oidc.support import rp_authorization as _authorize_url
from .support import ADMIN_ID, AdminBrowser, agency_key

pytestmark = pytest.mark.usefixtures("staff")


class ExtraTags(StrEnum):
    """Events no code records, written here to see how the trail shows them."""

    FORMULA = "test:formula"


def _phone_login(issuer, discovery, rp_client, phone, computer):
    """The phone logs the computer in to the RP; returns the RP's OAuth session holding its tokens."""
    rp, url, state, verifier, nonce = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    phone.approve(phone.login_request(started["url"]))
    done = computer.complete(started["login_request_id"])
    assert done.status_code == 200, done.text
    callback = computer.back_to_site(done.json()["redirect"])
    rp.fetch_token(discovery["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    return rp


def _api(issuer, token, method, path, body=None):
    return requests.request(method, f"{issuer}/api/v1/admin{path}", json=body,
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _device_id(app) -> int:
    with app.app_context():
        return db.session.scalars(select(Device.id)).one()


def _events(app, tag):
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id)))


def _refused_login(discovery, rp_client, phone, issuer, pki):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = Computer(issuer, pki).start(url)
    with pytest.raises(ServerError) as refused:
        phone.approve(phone.login_request(started["url"]))
    return refused.value


def test_a_revoked_device_fails_its_next_login_refresh_and_userinfo(
    app, issuer, pki, discovery, rp_client, phone, computer, service_token
):
    rp = _phone_login(issuer, discovery, rp_client, phone, computer)
    assert rp.get(discovery["userinfo_endpoint"]).status_code == 200
    assert computer.get(f"{issuer}/api/v1/account").status_code == 200
    device_id = _device_id(app)

    token = service_token("read", "devices:write")
    revoked = _api(issuer, token, "POST", f"/devices/{device_id}/revoke", {"reason": "手機遺失 lost phone"})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["device"]["status"] == "revoked"

    # The very next request of every kind is refused.
    assert rp.get(discovery["userinfo_endpoint"]).status_code == 401
    refresh = requests.post(discovery["token_endpoint"], auth=(rp_client["client_id"], rp_client["client_secret"]),
                            data={"grant_type": "refresh_token", "refresh_token": rp.token["refresh_token"]}, timeout=30)
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    assert computer.get(f"{issuer}/api/v1/account").status_code == 401
    assert _refused_login(discovery, rp_client, phone, issuer, pki).code == "device_revoked"

    with app.app_context():
        device = db.session.get(Device, device_id)
        assert device.revocation_reason == "手機遺失 lost phone" and device.revoked_at is not None
        assert all(c.revoked_at is not None for c in db.session.scalars(select(MobileCertificate)))
    [event] = _events(app, "device:revoked")
    assert event.actor.startswith("service:") and event.details["reason"] == "手機遺失 lost phone"
    assert event.details["sessions_ended"] >= 1 and event.details["tokens_revoked"] >= 1
    # Revocation is final.
    again = _api(issuer, token, "POST", f"/devices/{device_id}/resume", {"reason": "found it"})
    assert again.status_code == 409 and again.json()["error"] == "device_revoked"


def test_a_suspended_device_works_again_after_resume(
    app, issuer, pki, discovery, rp_client, phone, computer, admin_browser
):
    rp = _phone_login(issuer, discovery, rp_client, phone, computer)
    device_id = _device_id(app)
    suspended = admin_browser.api("POST", f"/devices/{device_id}/suspend", {"reason": "暫停 reported missing"})
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["device"]["status"] == "suspended"
    assert rp.get(discovery["userinfo_endpoint"]).status_code == 401
    assert computer.get(f"{issuer}/api/v1/account").status_code == 401
    assert _refused_login(discovery, rp_client, phone, issuer, pki).code == "device_suspended"

    resumed = admin_browser.api("POST", f"/devices/{device_id}/resume", {"reason": "found in the office"})
    assert resumed.status_code == 200 and resumed.json()["device"]["status"] == "active"
    again = _phone_login(issuer, discovery, rp_client, phone, Computer(issuer, pki))
    assert again.get(discovery["userinfo_endpoint"]).status_code == 200
    [event] = _events(app, "device:suspended")
    assert event.actor.startswith("account:") and event.details["reason"] == "暫停 reported missing"
    assert _events(app, "device:resumed")


def test_an_auditor_reads_but_cannot_change_anything(app, issuer, phone, auditor_browser, staff):
    device_id = _device_id(app)
    found = auditor_browser.api("GET", "/accounts?national_id=A123456789")
    assert found.status_code == 200 and [a["name"] for a in found.json()["accounts"]] == ["王小明"]
    assert auditor_browser.api("GET", "/audit").status_code == 200

    account_id = found.json()["accounts"][0]["id"]
    attempts = [
        ("POST", f"/devices/{device_id}/revoke", {"reason": "x"}),
        ("POST", f"/devices/{device_id}/suspend", {"reason": "x"}),
        ("POST", f"/accounts/{account_id}/lock", {"reason": "x"}),
        ("POST", f"/accounts/{account_id}/role", {"role": "admin", "reason": "x"}),
        ("POST", "/clients", {"name": "X", "redirect_uris": [f"{RP}/x"], "reason": "x"}),
        ("POST", "/service-tokens", {"name": "x", "scopes": ["read"]}),
    ]
    for method, path, body in attempts:
        response = auditor_browser.api(method, path, body)
        assert response.status_code == 403 and response.json()["error"] == "forbidden", (path, response.text)
    with app.app_context():
        assert db.session.get(Device, device_id).status == "active"
        assert db.session.get(Account, account_id).locked_at is None and db.session.get(Account, account_id).role is None
        assert db.session.scalar(select(db.func.count(OidcClient.id))) == 0
    denied = _events(app, "admin:denied")
    assert len(denied) == len(attempts) and {e.actor for e in denied} == {f"account:{staff['auditor']}"}


def test_without_a_login_it_is_401_and_without_a_role_403(issuer, pki, person):
    plain = Browser(issuer, pki)
    assert plain.get(f"{issuer}/api/v1/admin/audit").status_code == 401
    plain.card_login()
    response = plain.get(f"{issuer}/api/v1/admin/audit")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


def test_a_change_without_the_csrf_token_or_a_reason_is_refused_and_changes_nothing(app, issuer, phone, admin_browser):
    device_id = _device_id(app)
    no_csrf = admin_browser.http.post(f"{issuer}/api/v1/admin/devices/{device_id}/revoke", json={"reason": "x"},
                                      timeout=30)
    assert no_csrf.status_code == 400 and no_csrf.json()["error"] == "csrf_failed"
    for body in ({}, {"reason": "   "}, {"reason": 5}, {"reason": "x" * 201}):
        response = admin_browser.api("POST", f"/devices/{device_id}/revoke", body)
        assert response.status_code == 400 and response.json()["error"].startswith("reason_"), body
    not_json = admin_browser.http.post(f"{issuer}/api/v1/admin/devices/{device_id}/revoke", data="reason=x",
                                       headers={"X-CSRF-Token": admin_browser.csrf()}, timeout=30)
    assert not_json.status_code == 400
    assert admin_browser.api("POST", "/devices/999999/revoke", {"reason": "x"}).status_code == 404
    with app.app_context():
        assert db.session.get(Device, device_id).status == "active"
    assert not _events(app, "device:revoked")


def test_an_admin_cannot_act_on_their_own_devices_or_account(app, issuer, pki, phone):
    """王小明, whose phone is bound, is made an admin: the console will not touch his own phone or account."""
    assert app.test_cli_runner().invoke(args=["admin", "grant", "A123456789", "--role", "admin"]).exit_code == 0
    browser = AdminBrowser(issuer, pki)
    browser.card_login("A123456789")
    device_id = _device_id(app)
    response = browser.api("POST", f"/devices/{device_id}/revoke", {"reason": "mine"})
    assert response.status_code == 403 and response.json()["error"] == "own_device"
    with app.app_context():
        account_id = db.session.scalar(select(Account.id).where(Account.name == "王小明"))
    response = browser.api("POST", f"/accounts/{account_id}/lock", {"reason": "mine"})
    assert response.status_code == 403 and response.json()["error"] == "own_account"
    with app.app_context():
        assert db.session.get(Device, device_id).status == "active"


def test_finding_an_account_by_national_id_email_phone_or_name(app, issuer, person, phone, admin_browser):
    with app.app_context():
        db.session.get(Account, person).email, db.session.get(Account, person).phone = "wang@example.com", "+886912000111"
        db.session.commit()
    for query_string in ("national_id=a123456789", "email=Wang@Example.com", "phone=0912-000-111", "name=小明"):
        response = admin_browser.api("GET", f"/accounts?{query_string}")
        assert response.status_code == 200, response.text
        assert [a["national_id_masked"] for a in response.json()["accounts"]] == ["A12****789"], query_string
    assert admin_browser.api("GET", "/accounts?national_id=A223456781").json()["accounts"] == []  # valid, unknown
    for bad in ("", "national_id=A12", "email=nope", "national_id=A123456789&email=wang@example.com", "name=%25"):
        response = admin_browser.api("GET", f"/accounts?{bad}")
        assert response.status_code in (200, 400), bad
        if bad != "name=%25":
            assert response.status_code == 400, bad
        else:
            assert response.json()["accounts"] == []  # a literal %, not a wildcard

    account_id = admin_browser.api("GET", "/accounts?name=王").json()["accounts"][0]["id"]
    detail = admin_browser.api("GET", f"/accounts/{account_id}").json()["account"]
    assert detail["cards"] and detail["cards"][0]["name"] == "王小明"
    [device] = detail["devices"]
    assert device["name"] == "我的手機" and device["certificates"][0]["status"] == "good"
    assert any(e["event"] == "device:bound" for e in detail["events"])
    assert admin_browser.api("GET", "/accounts/999999").status_code == 404
    # The search is audited by its kind, never by the value looked for.
    searched = _events(app, "admin:accounts:searched")
    assert {e.details["by"] for e in searched} >= {"national_id", "email", "phone", "name"}
    assert not any("A123456789" in str(e.details) or "wang@" in str(e.details) for e in searched)


def test_a_locked_account_cannot_log_in_and_its_sessions_end(app, issuer, pki, person, admin_browser):
    owner = Browser(issuer, pki)
    owner.card_login()
    assert owner.get(f"{issuer}/api/v1/account").status_code == 200
    locked = admin_browser.api("POST", f"/accounts/{person}/lock", {"reason": "identity theft reported"})
    assert locked.status_code == 200 and locked.json()["account"]["locked"] is True
    assert owner.get(f"{issuer}/api/v1/account").status_code == 401
    with pytest.raises(KeyError):  # the answer is an error, not a "status"
        Browser(issuer, pki).card_login()
    refused = _events(app, "card:login:failure")
    assert refused and refused[-1].details["reason"] == "account_locked"
    assert admin_browser.api("POST", f"/accounts/{person}/lock", {"reason": "again"}).status_code == 409

    assert admin_browser.api("POST", f"/accounts/{person}/unlock", {"reason": "verified in person"}).status_code == 200
    Browser(issuer, pki).card_login()
    tags = [e.tag for e in _events(app, "account:locked") + _events(app, "account:unlocked")]
    assert tags == ["account:locked", "account:unlocked"]


def test_roles_are_granted_and_removed_by_admins(app, issuer, person, admin_browser):
    granted = admin_browser.api("POST", f"/accounts/{person}/role", {"role": "auditor", "reason": "new colleague"})
    assert granted.status_code == 200 and granted.json()["account"]["role"] == "auditor"
    bad = admin_browser.api("POST", f"/accounts/{person}/role", {"role": "root", "reason": "x"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_role"
    removed = admin_browser.api("POST", f"/accounts/{person}/role", {"role": None, "reason": "left the team"})
    assert removed.json()["account"]["role"] is None
    assert [e.details["role"] for e in _events(app, "admin:role:granted")][-1] == "auditor"
    assert _events(app, "admin:role:removed")[-1].details["reason"] == "left the team"


def test_relying_parties_are_created_edited_rotated_and_disabled(app, issuer, admin_browser):
    created = admin_browser.api("POST", "/clients", {
        "name": "內政部 MOI", "redirect_uris": ["https://moi.example/cb"], "allow_national_id": True,
        "reason": "agreement 2026-11",
    })
    assert created.status_code == 201, created.text
    client_id, secret = created.json()["client"]["client_id"], created.json()["client_secret"]
    assert "national_id" in created.json()["client"]["allowed_scopes"]
    with app.app_context():
        row = db.session.scalar(select(OidcClient).where(OidcClient.client_id == client_id))
        assert row.check_client_secret(secret) and secret not in row.client_secret_hash

    edited = admin_browser.api("PATCH", f"/clients/{client_id}", {
        "redirect_uris": ["https://moi.example/cb", "https://moi.example/cb2"], "allow_national_id": False,
        "reason": "second callback",
    })
    assert edited.status_code == 200, edited.text
    assert edited.json()["client"]["redirect_uris"][-1] == "https://moi.example/cb2"
    assert "national_id" not in edited.json()["client"]["allowed_scopes"]
    for bad in ({"redirect_uris": ["http://moi.example/cb"]}, {"redirect_uris": []},
                {"redirect_uris": ["https://moi.example/cb#x"]}, {"sector": "other"}, {"allowed_scopes": ["email"]}):
        response = admin_browser.api("PATCH", f"/clients/{client_id}", {**bad, "reason": "x"})
        assert response.status_code == 400, bad
    assert admin_browser.api("PATCH", f"/clients/{client_id}", {"name": "X"}).status_code == 400  # no reason

    rotated = admin_browser.api("POST", f"/clients/{client_id}/rotate-secret", {"reason": "leaked in a ticket"})
    new_secret = rotated.json()["client_secret"]
    with app.app_context():
        row = db.session.scalar(select(OidcClient).where(OidcClient.client_id == client_id))
        assert row.check_client_secret(new_secret) and not row.check_client_secret(secret)
        assert row.redirect_uris == ["https://moi.example/cb", "https://moi.example/cb2"]

    disabled = admin_browser.api("POST", f"/clients/{client_id}/disable", {"reason": "contract ended"})
    assert disabled.json()["client"]["disabled_at"] is not None
    token = requests.post(f"{issuer}/oauth/token", auth=(client_id, new_secret),
                          data={"grant_type": "authorization_code", "code": "x", "redirect_uri": "https://moi.example/cb"},
                          timeout=30)
    assert token.status_code in (400, 401) and token.json()["error"] == "invalid_client"
    listed = admin_browser.api("GET", "/clients").json()["clients"]
    assert [c["name"] for c in listed] == ["內政部 MOI"]
    tags = [e.tag for e in _events(app, "oidc:client:added") + _events(app, "oidc:client:changed")
            + _events(app, "oidc:client:secret_rotated") + _events(app, "oidc:client:disabled")]
    assert len(tags) == 4
    assert admin_browser.api("POST", "/clients/nope/disable", {"reason": "x"}).status_code == 404


def test_agencies_are_added_rotated_and_disabled_with_the_key_shown_once(app, issuer, admin_browser, staff):
    added = admin_browser.api("POST", "/agencies", {
        "name": "臺灣雲市集", "allowed_ips": ["203.0.113.0/24", "2001:db8::1"],
        "callback_url": "https://market.example.tw/fido", "reason": "合約 2026-12",
    })
    assert added.status_code == 201, added.text
    agency, api_key = added.json()["agency"], added.json()["api_key"]
    sp_service_id = agency["sp_service_id"]
    assert agency["allowed_ips"] == ["203.0.113.0/24", "2001:db8::1/128"] and agency["state"] == "active"
    assert agency["callback_url"] == "https://market.example.tw/fido" and "api_key" not in agency
    assert len(base64.b64decode(api_key, validate=True)) == 32 and agency_key(app, sp_service_id) == api_key

    # Listed, never with its key: not in the list, not in the audit trail.
    listed = admin_browser.api("GET", "/agencies")
    assert listed.status_code == 200 and [a["sp_service_id"] for a in listed.json()["agencies"]] == [sp_service_id]
    assert api_key not in listed.text and api_key not in admin_browser.api("GET", "/audit").text

    rotated = admin_browser.api("POST", f"/agencies/{sp_service_id}/rotate-key", {"reason": "金鑰外洩 leaked"})
    assert rotated.status_code == 200, rotated.text
    new_key = rotated.json()["api_key"]
    assert new_key != api_key and agency_key(app, sp_service_id) == new_key
    assert rotated.json()["agency"]["key_rotated_at"] is not None
    assert new_key not in admin_browser.api("GET", "/agencies").text

    disabled = admin_browser.api("POST", f"/agencies/{sp_service_id}/disable", {"reason": "合約終止"})
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["agency"]["state"] == "disabled" and disabled.json()["agency"]["disabled_at"]
    assert "api_key" not in disabled.json()
    assert admin_browser.api("GET", "/agencies").json()["agencies"][0]["state"] == "disabled"
    refused = admin_browser.api("POST", f"/agencies/{sp_service_id}/rotate-key", {"reason": "again"})
    assert (refused.status_code, refused.json()["error"]) == (409, "agency_disabled")
    assert agency_key(app, sp_service_id) == new_key  # no key made for a disabled agency
    assert added.headers["Cache-Control"] == rotated.headers["Cache-Control"] == "no-store"

    # Each change audited with the admin as actor, the reason, and the agency, found by it.
    admin_actor = f"account:{staff['admin']}"
    for tag, reason in (("agency:added", "合約 2026-12"), ("agency:key_rotated", "金鑰外洩 leaked"),
                        ("agency:disabled", "合約終止")):
        [event] = _events(app, tag)
        assert (event.actor, event.details["reason"], event.details["agency"]) == (admin_actor, reason, sp_service_id)
    found = admin_browser.api("GET", "/audit", params={"agency": sp_service_id}).json()["events"]
    assert [e["event"] for e in found] == ["agency:disabled", "agency:key_rotated", "agency:added"]
    assert all(e["agency"] == sp_service_id for e in found)
    for action in ("rotate-key", "disable"):
        unknown = admin_browser.api("POST", f"/agencies/SPNOSUCHAGENCY/{action}", {"reason": "x"})
        assert unknown.status_code == 404 and unknown.json()["error"] == "agency_unknown"


def test_an_auditor_lists_agencies_but_cannot_add_rotate_or_disable_them(app, issuer, auditor_browser, add_agency,
                                                                         staff):
    printed = add_agency()
    sp_service_id = printed["sp_service_id"]
    listed = auditor_browser.api("GET", "/agencies")
    assert listed.status_code == 200 and [a["name"] for a in listed.json()["agencies"]] == ["臺灣雲市集"]
    assert printed["api_key"] not in listed.text
    attempts = [
        ("/agencies", {"name": "X", "reason": "x"}),
        (f"/agencies/{sp_service_id}/rotate-key", {"reason": "x"}),
        (f"/agencies/{sp_service_id}/disable", {"reason": "x"}),
    ]
    for path, body in attempts:
        response = auditor_browser.api("POST", path, body)
        assert response.status_code == 403 and response.json()["error"] == "forbidden", (path, response.text)
        assert response.json()["scope"] == "agencies:write" and "api_key" not in response.json()
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Agency.id))) == 1
        agency = db.session.scalar(select(Agency))
        assert agency.disabled_at is None and agency.key_rotated_at is None
    assert agency_key(app, sp_service_id) == printed["api_key"]
    denied = _events(app, "admin:denied")
    assert len(denied) == len(attempts) and {e.actor for e in denied} == {f"account:{staff['auditor']}"}
    assert not _events(app, "agency:key_rotated") and not _events(app, "agency:disabled")


def test_agencies_take_a_token_with_their_own_scope_not_the_sites_one(app, issuer, service_token):
    sites_only = service_token("read", "clients:write")
    refused = _api(issuer, sites_only, "POST", "/agencies", {"name": "X", "reason": "automation"})
    assert refused.status_code == 403 and refused.json()["scope"] == "agencies:write"
    assert _api(issuer, sites_only, "GET", "/agencies").status_code == 200  # read is enough to list

    token = service_token("agencies:write")
    added = _api(issuer, token, "POST", "/agencies", {"name": "自動化 Automation", "reason": "provisioning"})
    assert added.status_code == 201, added.text
    [event] = _events(app, "agency:added")
    assert event.actor.startswith("service:") and event.details["reason"] == "provisioning"


@pytest.mark.parametrize(
    ("body", "error", "said"),
    [
        ({"name": "   "}, "invalid_name", "name"),
        ({"name": None}, "invalid_name", "name"),
        ({"name": ["臺灣雲市集"]}, "invalid_name", "name"),
        ({"allowed_ips": ["not-a-network"]}, "invalid_allowed_ips", "not-a-network"),
        ({"allowed_ips": ["10.0.0.0/33"]}, "invalid_allowed_ips", "10.0.0.0/33"),
        ({"allowed_ips": ["203.0.113.5/24"]}, "invalid_allowed_ips", "203.0.113.0/24"),  # host bits: named
        ({"allowed_ips": False}, "invalid_allowed_ips", "allowed_ips"),
        ({"allowed_ips": [5]}, "invalid_allowed_ips", "allowed_ips"),
        ({"allowed_ips": {"203.0.113.0/24": True}}, "invalid_allowed_ips", "allowed_ips"),
        ({"allowed_ips": ["10.0.0.%d" % n for n in range(51)]}, "invalid_allowed_ips", "50"),
        ({"callback_url": "http://market.example.tw/fido"}, "invalid_callback_url", "http://market.example.tw/fido"),
        ({"callback_url": "market.example.tw/fido"}, "invalid_callback_url", "market.example.tw/fido"),
        ({"callback_url": "https://market.example.tw/fido#x"}, "invalid_callback_url", "#x"),
        ({"callback_url": "https://[::1/cb"}, "invalid_callback_url", "[::1"),
        ({"callback_url": 42}, "invalid_callback_url", "callback_url"),
        ({"reason": ""}, "reason_required", "reason"),
        ({"reason": "x" * 201}, "reason_too_long", "200"),
    ],
)
def test_a_refused_agency_is_a_4xx_that_says_why_and_registers_nothing(app, admin_browser, body, error, said):
    response = admin_browser.api("POST", "/agencies", {"name": "臺灣雲市集", "reason": "合約", **body},
                                 headers={"Accept-Language": "en"})
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["error"] == error and "api_key" not in answer
    assert said in answer["message"] or said == answer.get("field"), answer
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Agency.id))) == 0
    assert not _events(app, "agency:added")


def test_an_agency_change_needs_the_csrf_token_and_a_json_body(app, issuer, admin_browser, add_agency):
    sp_service_id = add_agency()["sp_service_id"]
    no_csrf = admin_browser.http.post(f"{issuer}/api/v1/admin/agencies/{sp_service_id}/disable",
                                      json={"reason": "x"}, timeout=30)
    assert no_csrf.status_code == 400 and no_csrf.json()["error"] == "csrf_failed"
    not_json = admin_browser.http.post(f"{issuer}/api/v1/admin/agencies", data="name=X&reason=x",
                                       headers={"X-CSRF-Token": admin_browser.csrf()}, timeout=30)
    assert not_json.status_code == 400 and not_json.json()["error"] == "malformed_input"
    assert Browser(issuer, admin_browser.pki).get(f"{issuer}/api/v1/admin/agencies").status_code == 401
    with app.app_context():
        assert db.session.scalar(select(Agency.disabled_at)) is None


def test_the_audit_trail_filters_and_exports_csv(app, issuer, pki, discovery, rp_client, phone, computer, admin_browser):
    _phone_login(issuer, discovery, rp_client, phone, computer)
    device_id = _device_id(app)
    admin_browser.api("POST", f"/devices/{device_id}/suspend", {"reason": "=HYPERLINK(\"http://evil\")"})

    def events(**params):
        response = admin_browser.api("GET", "/audit", params=params)
        assert response.status_code == 200, response.text
        return response.json()["events"]

    by_device = events(device=device_id)
    assert by_device and all(e["device"] == device_id for e in by_device)
    assert {"device:bound", "mobile:login:success", "device:suspended"} <= {e["event"] for e in by_device}
    by_site = events(site=rp_client["client_id"])
    assert by_site and all(e["site"] == rp_client["client_id"] for e in by_site)
    assert {e["event"] for e in events(event="device:")} >= {"device:bound", "device:suspended"}
    assert all(e["event"].startswith("mobile:login") for e in events(event="mobile:login"))
    with app.app_context():
        admin_actor = db.session.scalar(select(AuditEvent.actor).where(AuditEvent.tag == "device:suspended"))
    assert [e["event"] for e in events(actor=admin_actor, event="device:")] == ["device:suspended"]
    assert events(since=(utcnow() + timedelta(hours=1)).isoformat()) == []
    everything = events(limit=500)
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    page = admin_browser.api("GET", "/audit", params={"limit": 2}).json()
    assert len(page["events"]) == 2 and page["next_before"] == page["events"][-1]["id"]
    assert events(before=page["next_before"], limit=1)[0]["id"] < page["next_before"]
    for bad in ({"device": "x"}, {"since": "yesterday"}, {"limit": "-1"}, {"account": "1e9"}):
        response = admin_browser.api("GET", "/audit", params=bad)
        assert response.status_code == 400, bad

    exported = admin_browser.api("GET", "/audit.csv", params={"device": device_id})
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "occurred_at (UTC)", "event"]
    assert {row[2] for row in rows[1:]} == {e["event"] for e in by_device}
    suspended = next(row for row in rows[1:] if row[2] == "device:suspended")
    assert suspended[9].startswith("{") and "HYPERLINK" in suspended[9]
    assert _events(app, "admin:audit:exported")[-1].details["filter"] == {"device_id": device_id}


def test_the_csv_export_quotes_what_a_spreadsheet_would_run(app, issuer, admin_browser):
    with app.app_context():
        from app.audit import record

        record(ExtraTags.FORMULA, actor="=cmd|' /C calc'!A0")
        db.session.commit()
    rows = list(csv.reader(io.StringIO(admin_browser.api("GET", "/audit.csv", params={"event": "test:"})
                                       .content.decode("utf-8-sig"))))
    assert rows[1][3] == "'=cmd|' /C calc'!A0"


def test_service_tokens_are_scoped_hashed_and_revocable(app, issuer, phone, service_token, admin_browser):
    device_id = _device_id(app)
    reader = service_token("read")
    assert _api(issuer, reader, "GET", "/accounts?name=王").status_code == 200
    denied = _api(issuer, reader, "POST", f"/devices/{device_id}/suspend", {"reason": "x"})
    assert denied.status_code == 403
    # A token cannot mint, revoke or grant: those need an admin in person.
    assert _api(issuer, service_token(), "POST", "/service-tokens", {"name": "x", "scopes": ["read"]}).status_code == 403
    assert _api(issuer, "mocert_st_unknown", "GET", "/audit").status_code == 401
    assert _api(issuer, "", "GET", "/audit").status_code == 401
    with app.app_context():
        assert all(reader not in t.token_hash for t in db.session.scalars(select(ServiceToken)))

    made = admin_browser.api("POST", "/service-tokens", {"name": "SIEM export", "scopes": ["read"], "expires_in_days": 30})
    assert made.status_code == 201, made.text
    raw, token_id = made.json()["service_token"], made.json()["token"]["id"]
    assert _api(issuer, raw, "GET", "/audit").status_code == 200
    assert admin_browser.api("POST", f"/service-tokens/{token_id}/revoke", {"reason": "rotated"}).status_code == 200
    assert _api(issuer, raw, "GET", "/audit").status_code == 401
    for bad in ({"name": "x", "scopes": ["roles:write"]}, {"name": "", "scopes": ["read"]},
                {"name": "x", "scopes": ["read"], "expires_in_days": 0}):
        assert admin_browser.api("POST", "/service-tokens", bad).status_code == 400, bad
    with app.app_context():
        db.session.execute(update(ServiceToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert _api(issuer, reader, "GET", "/audit").status_code == 401  # expired


def test_admin_sessions_end_after_fifteen_idle_minutes(app, issuer, admin_browser, staff):
    assert admin_browser.api("GET", "/me").json()["role"] == "admin"
    with app.app_context():
        db.session.execute(
            update(AuthSession).where(AuthSession.account_id == staff["admin"])
            .values(created_at=utcnow() - timedelta(minutes=16), last_seen_at=utcnow() - timedelta(minutes=16))
        )
        db.session.commit()
    assert admin_browser.api("GET", "/me").status_code == 401
    assert _events(app, "session:idle_ended")


def test_the_cli_grants_and_removes_roles_and_refuses_unknown_people(app, person):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["admin", "grant", "A123456789", "--role", "auditor"]).exit_code == 0
    with app.app_context():
        assert db.session.get(Account, person).role == "auditor"
    assert runner.invoke(args=["admin", "remove", "A123456789"]).exit_code == 0
    with app.app_context():
        assert db.session.get(Account, person).role is None
    assert runner.invoke(args=["admin", "grant", "A223456781", "--role", "admin"]).exit_code != 0  # not registered
    assert runner.invoke(args=["admin", "grant", "nonsense", "--role", "admin"]).exit_code != 0
    assert runner.invoke(args=["admin", "grant", ADMIN_ID, "--role", "root"]).exit_code != 0


def _code_callback(issuer, discovery, rp_client, phone, computer):
    """A phone login up to the redirect back to the RP: the code not yet exchanged."""
    rp, url, state, verifier, nonce = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    phone.approve(phone.login_request(started["url"]))
    done = computer.complete(started["login_request_id"])
    return rp, computer.back_to_site(done.json()["redirect"]), verifier


@pytest.mark.parametrize("action", ["revoke", "lock"])
def test_a_code_issued_just_before_a_revocation_or_lock_gets_no_tokens(
    app, issuer, discovery, rp_client, phone, computer, service_token, person, action
):
    rp, callback, verifier = _code_callback(issuer, discovery, rp_client, phone, computer)
    token = service_token()
    path = f"/devices/{_device_id(app)}/revoke" if action == "revoke" else f"/accounts/{person}/lock"
    assert _api(issuer, token, "POST", path, {"reason": "stolen"}).status_code == 200
    code = query(callback)["code"]
    exchanged = requests.post(discovery["token_endpoint"], auth=(rp_client["client_id"], rp_client["client_secret"]),
                              data={"grant_type": "authorization_code", "code": code, "redirect_uri": f"{RP}/cb",
                                    "code_verifier": verifier}, timeout=30)
    assert exchanged.status_code == 400 and exchanged.json()["error"] == "invalid_grant"
    assert "id_token" not in exchanged.json()


def test_a_login_approved_just_before_a_suspension_opens_no_session(
    app, issuer, discovery, rp_client, phone, computer, service_token
):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    phone.approve(phone.login_request(started["url"]))
    _api(issuer, service_token(), "POST", f"/devices/{_device_id(app)}/suspend", {"reason": "lost"})
    done = computer.complete(started["login_request_id"])
    assert done.status_code == 403 and done.json()["error"] == "device_suspended"
    assert computer.get(f"{issuer}/api/v1/account").status_code == 401
    assert not _events(app, "mobile:login:success")
    assert _events(app, "mobile:login:failure")[-1].details["reason"] == "device_suspended"


def test_a_revoked_device_is_never_brought_back_by_an_action_that_read_it_earlier(app, phone, service_token, issuer):
    """Two admins at once: the suspension that read the phone as active before the revocation is refused."""
    from app import refusals, wiring
    from app.services.refusals import Refusal

    device_id = _device_id(app)
    with app.test_request_context():
        stale = db.session.get(Device, device_id)  # read as active
        assert stale.status == "active"
        assert _api(issuer, service_token(), "POST", f"/devices/{device_id}/revoke", {"reason": "stolen"}).ok
        with pytest.raises(Refusal) as refused:
            wiring.parts().devices.suspend(stale, actor="test", reason="late")
        assert refusals.lookup(refused.value).status == 409
        db.session.expire_all()
        assert db.session.get(Device, device_id).status == "revoked"
        assert all(c.revoked for c in db.session.scalars(select(MobileCertificate)))
    assert not _events(app, "device:suspended")


def test_locking_holds_the_phones_certificates_and_ends_the_tokens_the_person_made(
    app, issuer, pki, phone, person, admin_browser, staff
):
    # 王小明 (with a phone) is made an admin and makes a service token; then 陳美玲 locks him.
    assert app.test_cli_runner().invoke(args=["admin", "grant", "A123456789", "--role", "admin"]).exit_code == 0
    wang = AdminBrowser(issuer, pki)
    wang.card_login("A123456789")
    made = wang.api("POST", "/service-tokens", {"name": "his script", "scopes": ["read"]})
    raw = made.json()["service_token"]
    assert _api(issuer, raw, "GET", "/me").status_code == 200

    assert admin_browser.api("POST", f"/accounts/{person}/lock", {"reason": "left the agency"}).status_code == 200
    assert _api(issuer, raw, "GET", "/me").status_code == 401
    with app.app_context():
        [certificate] = db.session.scalars(select(MobileCertificate)).all()
        assert certificate.on_hold
    [event] = _events(app, "account:locked")
    assert event.details["service_tokens_revoked"] == 1 and event.details["certificates_held"]
    # A phone of a locked person is not resumed behind the lock; unlocking releases the certificate.
    device_id = _device_id(app)
    assert admin_browser.api("POST", f"/devices/{device_id}/resume", {"reason": "x"}).status_code == 409
    assert admin_browser.api("POST", f"/accounts/{person}/unlock", {"reason": "back"}).status_code == 200
    with app.app_context():
        assert not db.session.scalars(select(MobileCertificate)).one().on_hold


def test_removing_an_admins_role_ends_the_tokens_they_made(app, issuer, admin_browser, person, staff):
    raw = admin_browser.api("POST", "/service-tokens", {"name": "x", "scopes": ["read"]}).json()["service_token"]
    assert app.test_cli_runner().invoke(args=["admin", "remove", ADMIN_ID]).exit_code == 0
    assert _api(issuer, raw, "GET", "/me").status_code == 401


def test_a_person_without_a_role_is_refused_and_the_refusal_audited(app, issuer, pki, person):
    plain = Browser(issuer, pki)
    plain.card_login()
    assert plain.get(f"{issuer}/api/v1/admin/me").status_code == 403
    [denied] = _events(app, "admin:denied")
    assert denied.account_id == person and denied.details["scope"] == "staff"


def test_searching_by_a_post_keeps_the_national_id_out_of_the_url(issuer, person, admin_browser):
    found = admin_browser.api("POST", "/accounts/search", {"national_id": "A123456789"})
    assert found.status_code == 200 and [a["name"] for a in found.json()["accounts"]] == ["王小明"]
    assert admin_browser.api("POST", "/accounts/search", {"national_id": 5}).status_code == 400
    assert admin_browser.api("POST", "/accounts/search", ["x"]).status_code == 400


def test_out_of_range_input_is_a_4xx_not_a_500(admin_browser):
    assert admin_browser.api("GET", "/accounts/99999999999999999999999").status_code == 404
    assert admin_browser.api("POST", "/devices/99999999999999999999999/revoke", {"reason": "x"}).status_code == 404
    for until in ("9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+10:00"):
        assert admin_browser.api("GET", "/audit", params={"until": until}).status_code == 400
    bad_uri = admin_browser.api("POST", "/clients", {"name": "X", "redirect_uris": ["https://[::1/cb"], "reason": "x"})
    assert bad_uri.status_code == 400 and bad_uri.json()["error"] == "invalid_redirect_uris"


def test_a_private_key_jwt_client_is_registered_with_its_public_keys_only(admin_browser):
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256")
    body = {"name": "JWT RP", "redirect_uris": [f"{RP}/cb"], "token_endpoint_auth_method": "private_key_jwt",
            "reason": "agency with keys"}
    made = admin_browser.api("POST", "/clients", {**body, "jwks": {"keys": [key.as_dict(private=False)]}})
    assert made.status_code == 201 and made.json()["client_secret"] is None
    for jwks in ({"keys": [key.as_dict(private=True)]}, {"keys": []}, {"keys": [{"kty": "nope"}]}, "x", None):
        refused = admin_browser.api("POST", "/clients", {**body, "jwks": jwks})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_jwks", jwks


def test_client_ids_never_look_like_command_line_options(app):
    """A random id once began with "-", and `flask clients disable <id>` read it as an option."""
    from app.services import clients
    from app.services.refusals import Refusal

    with app.test_request_context():
        ids = [clients.create(actor="test", name=f"RP {n}", redirect_uris=[f"{RP}/cb"])[0].client_id for n in range(40)]
        assert all(not client_id.startswith("-") for client_id in ids)
        for bad in ("-x", "a b", "x" * 65, "名"):
            with pytest.raises(Refusal):
                clients.create(actor="test", name="X", redirect_uris=[f"{RP}/cb"], client_id=bad)
