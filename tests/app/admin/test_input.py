"""Audit rows holding text the database cannot query (written before the door refused it) never break a
view; what is audited from now on always can be queried; odd admin input is a 400."""

from __future__ import annotations

import csv
import io
from enum import StrEnum

import pytest
from sqlalchemy import func, select

from app import audit_chain
from app.audit import record
from app.extensions import db
from app.models import AuditEvent, ServiceToken, utcnow

from ..oidc.support import RP
from .support import Console

pytestmark = pytest.mark.usefixtures("staff")

NUL, SURROGATE = "\x00", "\ud800"


class ExtraTags(StrEnum):
    """An event no code records, written here to see how the trail shows it."""

    ODD = "test:odd"


@pytest.fixture
def site(admin_browser) -> str:
    made = admin_browser.api("POST", "/clients", {"name": "RP", "redirect_uris": [f"{RP}/cb"], "reason": "test"})
    assert made.status_code == 201, made.text
    return made.json()["client"]["client_id"]


def _insert_raw(app, tag: str, details: dict, **columns) -> None:
    """An event as the trail held it before the door: details as given, sealed into the chain."""
    with app.app_context():
        db.session.add(AuditEvent(occurred_at=utcnow(), tag=tag, actor=columns.get("actor", "anonymous"),
                                  account_id=columns.get("account_id"), details=details))
        db.session.commit()
        audit_chain.seal(db.session)


def test_rows_already_holding_nul_or_lone_surrogates_never_break_a_view(app, issuer, admin_browser, site, staff):
    """Before: on PostgreSQL ->> failed for every row after one holding \\u0000 (the site and device filters
    and every console client page: 500); on SQLite a lone surrogate broke the audit page and cut the CSV."""
    _insert_raw(app, "admin:denied", {"path": "/admin/clients/" + NUL, "scope": "staff"}, account_id=staff["auditor"])
    _insert_raw(app, "test:odd", {"client": site, "device": 7, "reason": "壞" + SURROGATE, "k" + NUL: [NUL]},
                account_id=staff["auditor"])
    _insert_raw(app, "test:after", {"client": site, "device": 7})

    for params in ({"site": site}, {"device": 7}, {"site": site, "device": 7}, {}):
        response = admin_browser.api("GET", "/audit", params=params)
        assert response.status_code == 200, (params, response.text[:300])
        tags = [e["event"] for e in response.json()["events"]]
        if params:
            assert tags[:2] == ["test:after", "test:odd"], params  # the odd row is still found
    odd = next(e for e in admin_browser.api("GET", "/audit", params={"site": site}).json()["events"]
               if e["event"] == "test:odd")
    assert odd["details"]["reason"] == "壞\ufffd" and odd["details"]["k\ufffd"] == ["\ufffd"]

    console = Console(admin_browser)
    for path in (f"/admin/clients/{site}", "/admin/audit", f"/admin/audit?site={site}", "/admin/audit?device=7",
                 f"/admin/accounts/{staff['auditor']}"):
        page = console.get(path)
        assert page.status_code == 200, (path, page.text[:300])
    assert "壞\ufffd" in console.get("/admin/audit").text

    exported = admin_browser.api("GET", "/audit.csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    with app.app_context():
        assert len(rows) - 1 == db.session.scalar(select(func.count()).select_from(AuditEvent))  # none cut off
    assert rows[-1][2] != "" and any(row[2] == "test:odd" for row in rows)
    with app.app_context():
        assert audit_chain.verify(db.session).whole  # nothing was edited to get here


def test_what_is_audited_is_always_storable_and_queryable(app, issuer, admin_browser, site):
    with app.app_context(), app.test_request_context(headers={"User-Agent": "agent" + NUL}):
        record(ExtraTags.ODD, actor="account:" + NUL, client=site, device=8, path="/x" + NUL,
               nested={"k" + SURROGATE: [NUL, {"deep": SURROGATE + "ok"}]})
        db.session.commit()
        stored = db.session.scalar(select(AuditEvent).where(AuditEvent.tag == "test:odd"))
        assert stored.details["path"] == "/x\ufffd" and stored.actor == "account:\ufffd"
        assert stored.details["nested"] == {"k\ufffd": ["\ufffd", {"deep": "\ufffdok"}]}
        assert stored.user_agent == "agent\ufffd"
        assert audit_chain.verify(db.session).whole
    found = admin_browser.api("GET", "/audit", params={"site": site, "device": 8})
    assert found.status_code == 200 and [e["event"] for e in found.json()["events"]] == ["test:odd"]


def test_a_non_admin_asking_for_a_nul_client_is_refused_unaudited(app, issuer, admin_browser):
    before = admin_browser.api("GET", "/audit").json()["events"][0]["id"]
    assert admin_browser.get(f"{issuer}/admin/clients/%00").status_code == 400
    assert admin_browser.api("GET", "/audit", params={"site": NUL}).status_code == 400
    assert admin_browser.api("GET", "/audit").json()["events"][0]["id"] == before


@pytest.mark.parametrize("role", [["admin"], {"admin": 1}, 5, True, "root"])
def test_a_role_that_is_not_a_role_name_is_a_400(app, admin_browser, person, role):
    """A list was unhashable in the role lookup: a 500."""
    response = admin_browser.api("POST", f"/accounts/{person}/role", {"role": role, "reason": "test"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_role", response.text


@pytest.mark.parametrize("days", ["9" * 4400, "9" * 20, "٣", "0", "-1", "1.5", "x"])
def test_an_expiry_that_is_not_1_to_3650_days_is_a_400_in_the_console(app, admin_browser, days):
    """4,400 digits passed isdecimal() and int() refused them (ValueError, 500)."""
    console = Console(admin_browser)
    page = console.get("/admin/tokens")
    response = console.submit(page, "/admin/tokens", name="bot", scope="read", expires_in_days=days)
    assert response.status_code == 400, response.text[:300]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ServiceToken)) == 0


@pytest.mark.parametrize("days", ["9" * 4400, "9" * 4000, "1e400", "[[1]]", '"3"'])
def test_an_expiry_that_is_not_1_to_3650_days_is_a_400_in_the_api(app, admin_browser, days):
    import requests

    body = '{"name": "bot", "scopes": ["read"], "expires_in_days": ' + days + "}"
    response = admin_browser.http.post(f"{admin_browser.issuer}/api/v1/admin/service-tokens", data=body,
                                       headers={"X-CSRF-Token": admin_browser.csrf(),
                                                "Content-Type": "application/json"}, timeout=30)
    assert isinstance(response, requests.Response) and response.status_code == 400, response.text[:300]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ServiceToken)) == 0


def test_ids_beyond_the_32_bit_columns_are_404_or_400(admin_browser, person):
    for big in (2**31, 2**40, 2**63 - 1):
        assert admin_browser.api("GET", f"/accounts/{big}").status_code == 404
        assert admin_browser.api("POST", f"/accounts/{big}/lock", {"reason": "x"}).status_code == 404
        assert admin_browser.api("POST", f"/devices/{big}/revoke", {"reason": "x"}).status_code == 404
        assert admin_browser.api("POST", f"/service-tokens/{big}/revoke", {"reason": "x"}).status_code == 404
        assert admin_browser.get(f"{admin_browser.issuer}/admin/accounts/{big}").status_code == 404
        for name in ("account", "device", "before"):
            response = admin_browser.api("GET", "/audit", params={name: big})
            assert response.status_code == 400 and response.json()["error"] == f"invalid_{name}", name
    assert admin_browser.api("GET", "/audit", params={"device": 2**31 - 1}).status_code == 200
