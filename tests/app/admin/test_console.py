"""The administration console at /admin: the pages an admin and an auditor see, and the forms on them
doing what the API does (with the CSRF token and a reason, audited with actor and reason), submitted as a
browser would, over real HTTP, as the forms appear on the pages."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import func, select

from app.audit import record
from app.extensions import db
from app.models import Account, Agency, AuditEvent, Device, OidcClient, ServiceToken, utcnow

from ..oidc.support import RP, Browser
from .support import ZH, AdminBrowser, Console, agency_key, forms

pytestmark = pytest.mark.usefixtures("staff")


@pytest.fixture
def admin_console(admin_browser) -> Console:
    return Console(admin_browser)


@pytest.fixture
def auditor_console(auditor_browser) -> Console:
    return Console(auditor_browser)


class ExtraTags(StrEnum):
    """An event no code records, written here to see how the trail shows it."""

    PAGING = "test:paging"


def _wang(app) -> int:
    with app.app_context():
        return db.session.scalar(select(Account.id).where(Account.name == "王小明"))


def _device_id(app) -> int:
    with app.app_context():
        return db.session.scalars(select(Device.id)).one()


def _device(app, device_id) -> Device:
    with app.app_context():
        device = db.session.get(Device, device_id)
        db.session.expunge(device)
        return device


def _events(app, tag) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id)))


def _session(app, console: Console) -> str:
    """What the browser's session cookie holds, decoded (it is signed, not encrypted)."""
    cookie = console.browser.http.cookies.get(app.config["SESSION_COOKIE_NAME"])
    return str(app.session_interface.get_signing_serializer(app).loads(cookie))


def _text(page: requests.Response) -> str:
    return html.unescape(page.text)


def test_the_pages_show_an_admin_everything_and_its_forms(app, issuer, phone, admin_console, add_client):
    client = add_client()
    person, device_id = _wang(app), _device_id(app)
    index = admin_console.get("/admin")
    assert index.status_code == 200 and "尋找民眾" in index.text
    assert index.headers["Cache-Control"] == "no-store"

    found = admin_console.submit(index, "/admin", by="national_id", q="a123456789")
    assert found.status_code == 200 and "A123456789" not in found.request.url  # a POST: no ID in the URL
    assert f'href="/admin/accounts/{person}"' in found.text and "A12****789" in found.text

    page = admin_console.get(f"/admin/accounts/{person}")
    assert page.status_code == 200
    text = _text(page)
    assert "王小明" in text and "A12****789" in text and "我的手機" in text
    assert f'data-device-id="{device_id}" data-status="active"' in text
    assert re.search(r'data-event="device:bound"', text)
    shown = forms(page)
    for action in (f"/admin/accounts/{person}/devices/{device_id}/suspend",
                   f"/admin/accounts/{person}/devices/{device_id}/revoke",
                   f"/admin/accounts/{person}/lock", f"/admin/accounts/{person}/role"):
        assert action in shown and shown[action]["csrf_token"], action
    assert f"/admin/accounts/{person}/devices/{device_id}/resume" not in shown  # it is not suspended

    clients_page = admin_console.get("/admin/clients")
    assert "Example RP" in clients_page.text and "/admin/clients" in forms(clients_page)
    client_page = admin_console.get(f"/admin/clients/{client['client_id']}")
    assert client_page.status_code == 200 and f"{RP}/cb" in client_page.text
    assert f"/admin/clients/{client['client_id']}/rotate-secret" in forms(client_page)
    assert admin_console.get("/admin/audit").status_code == 200
    assert "/admin/tokens" in forms(admin_console.get("/admin/tokens"))
    assert admin_console.get("/admin/accounts/999999").status_code == 404
    assert admin_console.get("/admin/clients/nope").status_code == 404

    english = admin_console.get(f"/admin/accounts/{person}", headers={"Accept-Language": "en"})
    assert "Phones and mobile certificates" in english.text and "Revoke permanently" in english.text
    # The site's menu leads staff to the console.
    assert 'id="nav-admin"' in admin_console.get("/account").text


def test_an_auditor_reads_everything_but_sees_no_forms_to_change_it(app, issuer, phone, auditor_console, add_client):
    client = add_client()
    person = _wang(app)
    page = auditor_console.get(f"/admin/accounts/{person}")
    assert page.status_code == 200 and "我的手機" in page.text
    assert list(forms(page)) == []
    assert list(forms(auditor_console.get("/admin/clients"))) == []
    assert list(forms(auditor_console.get(f"/admin/clients/{client['client_id']}"))) == []
    assert list(forms(auditor_console.get("/admin"))) == ["/admin"]  # searching only
    assert auditor_console.get("/admin/audit").status_code == 200
    assert auditor_console.get("/admin/tokens").status_code == 403
    assert "/admin/tokens" not in auditor_console.get("/admin").text  # not in the menu either


def test_an_auditors_forged_posts_are_refused_and_change_nothing(app, issuer, phone, auditor_console, add_client,
                                                                 staff):
    client = add_client()
    person, device_id = _wang(app), _device_id(app)
    csrf = auditor_console.csrf()
    attempts = [
        (f"/admin/accounts/{person}/devices/{device_id}/revoke", {}),
        (f"/admin/accounts/{person}/devices/{device_id}/suspend", {}),
        (f"/admin/accounts/{person}/lock", {}),
        (f"/admin/accounts/{person}/role", {"role": "admin"}),
        ("/admin/clients", {"name": "X", "redirect_uris": f"{RP}/x"}),
        (f"/admin/clients/{client['client_id']}/disable", {}),
        (f"/admin/clients/{client['client_id']}/rotate-secret", {}),
        ("/admin/tokens", {"name": "x", "scope": "read"}),
    ]
    for path, fields in attempts:
        response = auditor_console.post(path, {"csrf_token": csrf, "reason": "forged", **fields})
        assert response.status_code == 403, (path, response.status_code)
        assert "您沒有權限" in response.text or "權限" in response.text, path
    with app.app_context():
        assert db.session.get(Device, device_id).status == "active"
        account = db.session.get(Account, person)
        assert account.locked_at is None and account.role is None
        assert db.session.scalar(select(func.count(OidcClient.id))) == 1
        assert db.session.scalar(select(OidcClient.disabled_at)) is None
        assert db.session.scalar(select(func.count(ServiceToken.id))) == 0
    denied = _events(app, "admin:denied")
    assert len(denied) >= len(attempts) and {e.actor for e in denied} == {f"account:{staff['auditor']}"}


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(app, issuer, phone, admin_console):
    person, device_id = _wang(app), _device_id(app)
    for path in (f"/admin/accounts/{person}/devices/{device_id}/revoke", f"/admin/accounts/{person}/lock"):
        response = admin_console.post(path, {"reason": "no token"})
        assert response.status_code == 400 and response.headers["Content-Type"].startswith("text/html")
        assert "頁面已過期" in response.text or "重新整理" in response.text
    wrong = admin_console.post(f"/admin/accounts/{person}/lock", {"reason": "x", "csrf_token": "forged"})
    assert wrong.status_code == 400
    assert _device(app, device_id).status == "active"
    with app.app_context():
        assert db.session.get(Account, person).locked_at is None
    assert not _events(app, "device:revoked") and not _events(app, "account:locked")


def test_a_change_without_a_reason_shows_why_and_changes_nothing(app, issuer, phone, admin_console):
    person, device_id = _wang(app), _device_id(app)
    page = admin_console.get(f"/admin/accounts/{person}")
    for action in (f"/admin/accounts/{person}/devices/{device_id}/revoke", f"/admin/accounts/{person}/lock"):
        for reason in ("", "   ", "x" * 201):
            response = admin_console.submit(page, action, reason=reason)
            assert response.status_code == 400, (action, reason)
            assert 'id="console-error"' in response.text
            assert "請說明原因" in response.text or "原因最多" in response.text
            assert "王小明" in response.text  # the same page again, with its forms
    assert _device(app, device_id).status == "active"
    with app.app_context():
        assert db.session.get(Account, person).locked_at is None
    assert not _events(app, "device:revoked") and not _events(app, "account:locked")


def test_devices_are_suspended_resumed_and_revoked_through_the_forms(app, issuer, phone, admin_console, staff):
    person, device_id = _wang(app), _device_id(app)
    admin_actor = f"account:{staff['admin']}"
    base = f"/admin/accounts/{person}/devices/{device_id}"

    done = admin_console.submit(admin_console.get(f"/admin/accounts/{person}"), f"{base}/suspend", reason="手機可能遺失")
    assert done.status_code == 302 and urlsplit(done.headers["Location"]).path == f"/admin/accounts/{person}"
    page = admin_console.follow(done)
    assert "已停用" in page.text and f'data-device-id="{device_id}" data-status="suspended"' in page.text
    assert f"{base}/resume" in forms(page) and f"{base}/suspend" not in forms(page)
    assert _device(app, device_id).status == "suspended"

    page = admin_console.follow(admin_console.submit(page, f"{base}/resume", reason="找到了"))
    assert f'data-device-id="{device_id}" data-status="active"' in page.text

    revoked = admin_console.follow(admin_console.submit(page, f"{base}/revoke", reason="確認遺失 lost for good"))
    assert f'data-device-id="{device_id}" data-status="revoked"' in revoked.text
    assert "確認遺失 lost for good" in _text(revoked)
    assert not any(path.startswith(base) for path in forms(revoked))  # nothing more to do with it
    device = _device(app, device_id)
    assert device.status == "revoked" and device.revocation_reason == "確認遺失 lost for good"

    for tag, reason in (("device:suspended", "手機可能遺失"), ("device:resumed", "找到了"),
                        ("device:revoked", "確認遺失 lost for good")):
        [event] = _events(app, tag)
        assert event.actor == admin_actor and event.details["reason"] == reason and event.details["device"] == device_id
    # Revocation is final: resuming is refused on the page, with the service's reason, at 409.
    again = admin_console.post(f"{base}/resume", {"csrf_token": admin_console.csrf(), "reason": "undo"})
    assert again.status_code == 409 and 'id="console-error"' in again.text
    assert _device(app, device_id).status == "revoked"
    # A device is acted on only under its own person.
    elsewhere = admin_console.post(f"/admin/accounts/{staff['admin']}/devices/{device_id}/suspend",
                                   {"csrf_token": admin_console.csrf(), "reason": "x"})
    assert elsewhere.status_code == 404


def test_accounts_are_locked_unlocked_and_given_roles_through_the_forms(app, issuer, pki, person, admin_console, staff):
    owner = Browser(issuer, pki)
    owner.card_login()
    page = admin_console.get(f"/admin/accounts/{person}")
    locked = admin_console.follow(admin_console.submit(page, f"/admin/accounts/{person}/lock", reason="身分遭冒用"))
    assert 'data-state="locked"' in locked.text and "身分遭冒用" in locked.text
    assert owner.get(f"{issuer}/api/v1/account").status_code == 401  # the person's session ended
    assert f"/admin/accounts/{person}/lock" not in forms(locked)

    unlocked = admin_console.follow(admin_console.submit(locked, f"/admin/accounts/{person}/unlock", reason="臨櫃確認"))
    assert 'data-state="open"' in unlocked.text

    made = admin_console.follow(admin_console.submit(unlocked, f"/admin/accounts/{person}/role", role="auditor",
                                                     reason="新同事"))
    assert "稽核人員" in made.text
    with app.app_context():
        assert db.session.get(Account, person).role == "auditor"
    bad = admin_console.submit(made, f"/admin/accounts/{person}/role", role="root", reason="x")
    assert bad.status_code == 400 and 'id="console-error"' in bad.text
    removed = admin_console.follow(admin_console.submit(made, f"/admin/accounts/{person}/role", role="", reason="離職"))
    assert removed.status_code == 200
    with app.app_context():
        assert db.session.get(Account, person).role is None

    admin_actor = f"account:{staff['admin']}"
    for tag, reason in (("account:locked", "身分遭冒用"), ("account:unlocked", "臨櫃確認"),
                        ("admin:role:granted", "新同事"), ("admin:role:removed", "離職")):
        events = [e for e in _events(app, tag) if e.actor == admin_actor]
        assert [e.details["reason"] for e in events] == [reason], tag


def test_an_admin_sees_no_forms_for_their_own_account_and_devices(app, issuer, pki, phone):
    """王小明, whose phone is bound, is made an admin: his own page has no action forms, and forging one fails."""
    assert app.test_cli_runner().invoke(args=["admin", "grant", "A123456789", "--role", "admin"]).exit_code == 0
    browser = AdminBrowser(issuer, pki)
    browser.card_login("A123456789")
    console = Console(browser)
    person, device_id = _wang(app), _device_id(app)
    page = console.get(f"/admin/accounts/{person}")
    assert page.status_code == 200 and "我的手機" in page.text and list(forms(page)) == []
    forged = console.post(f"/admin/accounts/{person}/devices/{device_id}/revoke",
                          {"csrf_token": console.csrf(), "reason": "mine"})
    assert forged.status_code == 403 and 'id="console-error"' in forged.text
    assert _device(app, device_id).status == "active"


def test_sites_are_registered_edited_rotated_and_disabled_in_the_console(app, issuer, admin_console, staff):
    page = admin_console.get("/admin/clients")
    created = admin_console.submit(page, "/admin/clients", name="內政部 MOI", redirect_uris="https://moi.example/cb\r\n",
                                   post_logout_redirect_uris="", scope=["profile", "email"], allow_national_id="on",
                                   allow_card_login="on", token_endpoint_auth_method="client_secret_basic",
                                   reason="協議 2026-11")
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    client_id = html.unescape(re.search(r'id="new-client-id">([^<]+)<', created.text).group(1))
    secret = html.unescape(re.search(r'id="secret-value"[^>]*value="([^"]+)"', created.text).group(1))
    assert secret not in _session(app, admin_console)  # not kept for a later page, not even in the cookie
    with app.app_context():
        row = db.session.scalar(select(OidcClient).where(OidcClient.client_id == client_id))
        assert row.check_client_secret(secret) and row.allowed_scopes == ["openid", "profile", "email", "national_id"]
    listed = admin_console.get("/admin/clients")
    assert "內政部 MOI" in listed.text and secret not in listed.text
    client_page = admin_console.get(f"/admin/clients/{client_id}")
    assert secret not in client_page.text

    # Edit: a second callback, no IC card on its login page, no national ID.
    edit = f"/admin/clients/{client_id}"
    saved = admin_console.submit(client_page, edit, name="內政部 MOI",
                                 redirect_uris="https://moi.example/cb\nhttps://moi.example/cb2",
                                 post_logout_redirect_uris="https://moi.example/bye", scope=["profile"],
                                 reason="第二個回呼網址")
    assert saved.status_code == 302
    shown = admin_console.follow(saved)
    assert "https://moi.example/cb2" in shown.text
    with app.app_context():
        row = db.session.scalar(select(OidcClient).where(OidcClient.client_id == client_id))
        assert row.redirect_uris == ["https://moi.example/cb", "https://moi.example/cb2"]
        assert row.post_logout_redirect_uris == ["https://moi.example/bye"]
        assert row.allowed_scopes == ["openid", "profile"]
        assert row.allow_national_id is False and row.allow_card_login is False
    [changed] = _events(app, "oidc:client:changed")
    assert changed.details["reason"] == "第二個回呼網址" and changed.actor == f"account:{staff['admin']}"

    refused = admin_console.submit(shown, edit, name="內政部 MOI", redirect_uris="http://moi.example/cb", reason="x")
    assert refused.status_code == 400 and "http://moi.example/cb" in refused.text  # the form keeps what was typed
    with app.app_context():
        assert db.session.scalar(select(OidcClient.redirect_uris).where(OidcClient.client_id == client_id))[0] == \
            "https://moi.example/cb"

    rotated = admin_console.submit(shown, f"{edit}/rotate-secret", reason="在工單中外洩")
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new_secret = html.unescape(re.search(r'id="secret-value"[^>]*value="([^"]+)"', rotated.text).group(1))
    with app.app_context():
        row = db.session.scalar(select(OidcClient).where(OidcClient.client_id == client_id))
        assert row.check_client_secret(new_secret) and not row.check_client_secret(secret)

    disabled = admin_console.follow(admin_console.submit(shown, f"{edit}/disable", reason="合約終止"))
    assert 'id="client-state" data-state="disabled"' in disabled.text
    token = requests.post(f"{issuer}/oauth/token", auth=(client_id, new_secret), timeout=30, data={
        "grant_type": "authorization_code", "code": "x", "redirect_uri": "https://moi.example/cb"})
    assert token.json()["error"] == "invalid_client"
    enabled = admin_console.follow(admin_console.submit(disabled, f"{edit}/enable", reason="續約"))
    assert 'id="client-state" data-state="enabled"' in enabled.text

    tags = ["oidc:client:added", "oidc:client:secret_rotated", "oidc:client:disabled", "oidc:client:enabled"]
    for tag in tags:
        [event] = _events(app, tag)
        assert event.actor == f"account:{staff['admin']}" and event.details["client"] == client_id
    # The site's page lists its own events.
    assert 'data-event="oidc:client:enabled"' in enabled.text


def test_a_public_site_has_no_secret_to_show(app, issuer, admin_console):
    created = admin_console.submit(admin_console.get("/admin/clients"), "/admin/clients", name="App",
                                   redirect_uris="http://localhost:8080/cb", scope=["profile"],
                                   token_endpoint_auth_method="none", reason="mobile app")
    assert created.status_code == 201 and 'id="secret-value"' not in created.text
    assert "PKCE" in created.text


def _shown_key(page: requests.Response) -> str:
    return html.unescape(re.search(r'id="secret-value"[^>]*value="([^"]+)"', page.text).group(1))


def test_agencies_are_registered_rotated_and_disabled_in_the_console_with_the_key_shown_once(
    app, issuer, admin_console, staff
):
    page = admin_console.get("/admin/agencies")
    assert page.status_code == 200 and "/admin/agencies" in forms(page)
    created = admin_console.submit(page, "/admin/agencies", name="臺灣雲市集", allowed_ips="203.0.113.0/24\r\n2001:db8::1",
                                   callback_url="https://market.example.tw/fido", reason="合約 2026-12")
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    sp_service_id = html.unescape(re.search(r'id="new-sp-service-id">([^<]+)<', created.text).group(1))
    api_key = _shown_key(created)
    assert agency_key(app, sp_service_id) == api_key
    assert "只顯示這一次" in created.text  # the warning, in zh-TW
    assert api_key not in _session(app, admin_console)  # not kept for a later page, not even in the cookie

    # Never shown again: not in the list, not on the agency's page, not in the audit trail.
    listed = admin_console.get("/admin/agencies")
    row = re.search(rf'<tr data-agency-id="{sp_service_id}">(.*?)</tr>', listed.text, re.S).group(1)
    assert "臺灣雲市集" in row and "203.0.113.0/24" in row and "2001:db8::1/128" in row
    assert "https://market.example.tw/fido" in row and 'data-state="active"' in row
    agency_page = admin_console.get(f"/admin/agencies/{sp_service_id}")
    assert agency_page.status_code == 200 and 'data-event="agency:added"' in agency_page.text
    for shown in (listed, agency_page, admin_console.get("/admin/audit")):
        assert api_key not in shown.text

    base = f"/admin/agencies/{sp_service_id}"
    rotated = admin_console.submit(agency_page, f"{base}/rotate-key", reason="金鑰外洩")
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new_key = _shown_key(rotated)
    assert new_key != api_key and agency_key(app, sp_service_id) == new_key
    assert new_key not in admin_console.get(base).text

    disabled = admin_console.follow(admin_console.submit(agency_page, f"{base}/disable", reason="合約終止"))
    assert 'id="agency-state" data-state="disabled"' in disabled.text
    assert f"{base}/rotate-key" not in forms(disabled) and f"{base}/disable" not in forms(disabled)
    with app.app_context():
        assert db.session.scalar(select(Agency.disabled_at)) is not None

    admin_actor = f"account:{staff['admin']}"
    for tag, reason in (("agency:added", "合約 2026-12"), ("agency:key_rotated", "金鑰外洩"),
                        ("agency:disabled", "合約終止")):
        [event] = _events(app, tag)
        assert (event.actor, event.details["reason"], event.details["agency"]) == (admin_actor, reason, sp_service_id)
        assert f'data-event="{tag}"' in disabled.text  # the agency's page lists its own events
    trail = admin_console.get("/admin/audit", params={"agency": sp_service_id})
    assert re.findall(r'data-event="([^"]+)"', trail.text) == ["agency:disabled", "agency:key_rotated", "agency:added"]
    assert admin_console.get("/admin/agencies/SPNOSUCHAGENCY").status_code == 404


def test_the_agency_key_warning_is_in_english_on_an_english_page(app, issuer, admin_console):
    page = admin_console.get("/admin/agencies", headers={"Accept-Language": "en"})
    shown = forms(page)["/admin/agencies"]
    created = admin_console.browser.http.post(
        f"{issuer}/admin/agencies", data={**shown, "name": "Marketplace", "reason": "contract"},
        headers={"Accept-Language": "en"}, allow_redirects=False, timeout=30)
    assert created.status_code == 201 and "shown only now" in created.text


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"name": "   "}, "請為機關取一個"),
        ({"allowed_ips": "203.0.113.0/24\nnot-a-network"}, "not-a-network 不是 IP 位址"),
        ({"allowed_ips": "203.0.113.5/24"}, "203.0.113.0/24"),  # host bits: the network meant is named
        ({"callback_url": "http://market.example.tw/fido"}, "不是不含片段"),
        ({"callback_url": "https://market.example.tw/fido#top"}, "不是不含片段"),
        ({"reason": ""}, "請說明原因"),
    ],
)
def test_a_refused_agency_shows_why_on_the_same_page_and_registers_nothing(app, issuer, admin_console, fields,
                                                                           said):
    page = admin_console.get("/admin/agencies")
    typed = {"name": "臺灣雲市集", "allowed_ips": "198.51.100.0/24", "callback_url": "https://market.example.tw/fido",
             "reason": "合約", **fields}
    refused = admin_console.submit(page, "/admin/agencies", **typed)
    assert refused.status_code == 400 and 'id="console-error"' in refused.text
    error = html.unescape(re.search(r'id="console-error">([^<]+)<', refused.text).group(1))
    assert said in error, error
    assert "/admin/agencies" in forms(refused)  # the form again, keeping what was typed
    assert html.escape(typed["callback_url"]) in refused.text and 'id="secret-value"' not in refused.text
    with app.app_context():
        assert db.session.scalar(select(func.count(Agency.id))) == 0
    assert not _events(app, "agency:added")


def test_an_auditor_sees_the_agencies_but_no_forms_and_forged_posts_change_nothing(
    app, issuer, auditor_console, add_agency, staff
):
    printed = add_agency()
    base = f"/admin/agencies/{printed['sp_service_id']}"
    listed = auditor_console.get("/admin/agencies")
    assert listed.status_code == 200 and "臺灣雲市集" in listed.text and list(forms(listed)) == []
    page = auditor_console.get(base)
    assert page.status_code == 200 and list(forms(page)) == [] and printed["api_key"] not in page.text
    csrf = auditor_console.csrf()
    for path in ("/admin/agencies", f"{base}/rotate-key", f"{base}/disable"):
        response = auditor_console.post(path, {"csrf_token": csrf, "name": "X", "reason": "forged"})
        assert response.status_code == 403 and "權限" in response.text, path
        assert 'id="secret-value"' not in response.text
    with app.app_context():
        agency = db.session.scalar(select(Agency))
        assert db.session.scalar(select(func.count(Agency.id))) == 1
        assert agency.disabled_at is None and agency.key_rotated_at is None
    assert agency_key(app, printed["sp_service_id"]) == printed["api_key"]
    assert len(_events(app, "admin:denied")) == 3


def test_the_audit_page_filters_pages_and_links_its_csv_export(app, issuer, phone, admin_console, staff):
    person, device_id = _wang(app), _device_id(app)
    admin_console.submit(admin_console.get(f"/admin/accounts/{person}"),
                         f"/admin/accounts/{person}/devices/{device_id}/suspend", reason='=HYPERLINK("x")')
    with app.app_context():
        for number in range(60):
            record(ExtraTags.PAGING, actor="cli", number=number)
        db.session.commit()

    by_device = admin_console.get("/admin/audit", params={"device": device_id})
    tags = re.findall(r'data-event="([^"]+)"', by_device.text)
    assert tags and tags[0] == "device:suspended" and "device:bound" in tags and "test:paging" not in tags
    assert 'value="%d"' % device_id in by_device.text  # the filter form keeps its values

    admin_actor = f"account:{staff['admin']}"
    mine = admin_console.get("/admin/audit", params={"actor": admin_actor, "event": "device:"})
    assert re.findall(r'data-event="([^"]+)"', mine.text) == ["device:suspended"]
    assert "陳美玲" in mine.text  # the actor by name
    assert re.findall(r'data-event="([^"]+)"', admin_console.get(
        "/admin/audit", params={"account": person, "event": "device:s"}).text) == ["device:suspended"]
    later = (utcnow() + timedelta(hours=1)).astimezone(ZoneInfo("Asia/Taipei")).strftime("%Y-%m-%dT%H:%M")
    assert "data-event=" not in admin_console.get("/admin/audit", params={"since": later}).text
    assert "data-event=" in admin_console.get("/admin/audit", params={"until": later}).text

    # Newest first, 50 a page, and an "older" link that keeps the filter.
    first = admin_console.get("/admin/audit", params={"event": "test:paging"})
    ids = [int(i) for i in re.findall(r'data-event-id="(\d+)"', first.text)]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    older = html.unescape(re.search(r'id="audit-older" href="([^"]+)"', first.text).group(1))
    assert "event=test%3Apaging" in older or "event=test:paging" in older
    rest = admin_console.get(older)
    rest_ids = [int(i) for i in re.findall(r'data-event-id="(\d+)"', rest.text)]
    assert len(rest_ids) == 10 and max(rest_ids) < min(ids) and 'id="audit-older"' not in rest.text

    for bad in ({"device": "x"}, {"since": "yesterday"}, {"account": "-1"}):
        response = admin_console.get("/admin/audit", params=bad)
        assert response.status_code == 400 and 'id="console-error"' in response.text, bad

    link = html.unescape(re.search(r'id="audit-csv" href="([^"]+)"', by_device.text).group(1))
    assert urlsplit(link).path == "/admin/audit.csv" and f"device={device_id}" in link
    exported = admin_console.get(link)
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "occurred_at (UTC)", "event"]
    assert [row[2] for row in rows[1:]] == tags
    suspended = next(row for row in rows[1:] if row[2] == "device:suspended")
    assert "HYPERLINK" in suspended[9] and suspended[3] == admin_actor
    [exported_event] = _events(app, "admin:audit:exported")
    assert exported_event.details["filter"] == {"device_id": device_id} and exported_event.actor == admin_actor
    assert admin_console.get("/admin/audit.csv", params={"since": "nope"}).status_code == 400


def test_service_tokens_are_made_shown_once_and_revoked_in_the_console(app, issuer, admin_console, staff):
    page = admin_console.get("/admin/tokens")
    none_chosen = admin_console.submit(page, "/admin/tokens", name="SIEM", expires_in_days="30")
    assert none_chosen.status_code == 400 and 'id="console-error"' in none_chosen.text
    too_long = admin_console.submit(page, "/admin/tokens", name="SIEM", scope=["read"], expires_in_days="-3")
    assert too_long.status_code == 400
    made = admin_console.submit(page, "/admin/tokens", name="SIEM 匯出", scope=["read"], expires_in_days="30")
    assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
    raw = html.unescape(re.search(r'id="secret-value"[^>]*value="([^"]+)"', made.text).group(1))
    assert raw.startswith("mocert_st_")

    def api(token):
        return requests.get(f"{issuer}/api/v1/admin/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)

    assert api(raw).json()["scopes"] == ["read"]
    listed = admin_console.get("/admin/tokens")
    assert "SIEM 匯出" in listed.text and raw not in listed.text
    with app.app_context():
        token_id = db.session.scalar(select(ServiceToken.id))
    revoked = admin_console.follow(admin_console.submit(listed, f"/admin/tokens/{token_id}/revoke", reason="換新"))
    assert 'data-state="revoked"' in revoked.text
    assert api(raw).status_code == 401
    [event] = _events(app, "admin:service_token:revoked")
    assert event.actor == f"account:{staff['admin']}" and event.details["reason"] == "換新"


def test_a_search_that_cannot_be_done_says_why(app, issuer, person, admin_console):
    page = admin_console.get("/admin")
    for by, value in (("national_id", "A12"), ("email", "nope"), ("nonsense", "x")):
        response = admin_console.submit(page, "/admin", by=by, q=value)
        assert response.status_code == 400 and 'id="console-error"' in response.text, by
    nobody = admin_console.submit(page, "/admin", by="national_id", q="A223456781")
    assert nobody.status_code == 200 and 'id="search-results"' not in nobody.text
    by_name = admin_console.submit(page, "/admin", by="name", q="小明")
    assert f'href="/admin/accounts/{person}"' in by_name.text


def test_one_search_box_finds_a_person_by_whatever_is_typed(app, issuer, person, admin_console):
    with app.app_context():
        db.session.get(Account, person).email, db.session.get(Account, person).phone = "wang@example.com", "+886912000111"
        db.session.commit()
    page = admin_console.get("/admin")
    assert re.search(r'<option value="any" selected>', page.text)  # the default: no kind to choose first
    for typed in ("小明", "a123456789", "Wang@Example.com", "0912-000-111", "+886 912 000 111"):
        found = admin_console.submit(page, "/admin", by="any", q=typed)
        assert found.status_code == 200 and f'href="/admin/accounts/{person}"' in found.text, typed
    mistyped = admin_console.submit(page, "/admin", by="any", q="A123456780")  # a wrong check digit
    assert mistyped.status_code == 400 and 'id="console-error"' in mistyped.text
    kinds = [event.details["by"] for event in _events(app, "admin:accounts:searched")][-5:]
    assert kinds == ["name", "national_id", "email", "phone", "phone"]  # the refused one found nobody: not a search


def test_people_without_a_role_get_403_and_visitors_are_sent_to_log_in(app, issuer, pki, person):
    visitor = Browser(issuer, pki)
    response = visitor.get(f"{issuer}/admin/audit?event=device:")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == ["/admin/audit?event=device:"]
    assert visitor.get(f"{issuer}/admin").status_code == 302

    visitor.card_login()
    for path in ("/admin", "/admin/audit", "/admin/clients", "/admin/agencies", "/admin/tokens", "/admin/audit.csv"):
        response = visitor.get(f"{issuer}{path}", headers=ZH)
        assert response.status_code == 403 and response.headers["Content-Type"].startswith("text/html"), path
    assert 'id="nav-admin"' not in visitor.get(f"{issuer}/account").text
    forged = visitor.http.post(f"{issuer}/admin/accounts/{person}/lock", allow_redirects=False, timeout=30,
                               data={"csrf_token": visitor.csrf(), "reason": "x"})
    assert forged.status_code == 403
    with app.app_context():
        assert db.session.get(Account, person).locked_at is None


def test_the_console_shows_and_reads_times_in_taiwan_time_and_exports_utc(app, issuer, admin_console):
    with app.app_context():
        record(ExtraTags.PAGING, actor="cli", number=1)
        db.session.commit()
        occurred = db.session.scalars(select(AuditEvent.occurred_at).where(AuditEvent.tag == "test:paging")).one()
    local = occurred.astimezone(ZoneInfo("Asia/Taipei"))
    page = admin_console.get("/admin/audit", params={"event": "test:paging"})
    assert f"{local:%Y/%m/%d %H:%M:%S} UTC+08:00" in page.text
    assert "臺灣時間 (Asia/Taipei, UTC+08:00)" in page.text

    # What the form's datetime-local inputs send has no zone: it is Taiwan time (read as UTC, "a minute
    # before" would be eight hours off and find nothing, or everything).
    before, after = ((local + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M") for m in (-1, 1))

    def found(**span) -> bool:
        return 'data-event="test:paging"' in admin_console.get(
            "/admin/audit", params={"event": "test:paging", **span}).text
    assert found(since=before) and found(until=after) and found(since=before, until=after)
    assert not found(until=before) and not found(since=after)

    exported = admin_console.get("/admin/audit.csv", params={"event": "test:paging"})
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][1] == "occurred_at (UTC)" and datetime.fromisoformat(rows[1][1]) == occurred
    assert rows[1][1].endswith("+00:00")
