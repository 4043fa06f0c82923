"""The full national ID: only to a client allowed it, only after the person types it, never stored in the clear."""

from __future__ import annotations

import html
import json
import logging
import re
import secrets

import pytest
import requests
from sqlalchemy import MetaData, select

from app.extensions import db
from app.models import AuditEvent, OidcAuthorizationCode, OidcToken
from app.oidc import national_id as oidc_national_id

from .support import RP, query, rp_session, verify_id_token

NATIONAL_ID = "A123456789"  # the person's (王小明, the browser fixture's card)
SOMEONE_ELSES = "B223456782"  # a valid ID, but not theirs
SCOPE = "openid profile national_id offline_access"


@pytest.fixture
def app_config(app_config):
    app_config.RATELIMIT_ENABLED = True  # as in production: wrong IDs are counted
    return app_config


@pytest.fixture
def agency(add_client) -> dict:
    return add_client("--name", "戶政司 Household Registration", "--redirect-uri", f"{RP}/cb", "--allow-national-id")


class Authorization:
    """One authorization request from a relying party, driven through the person's browser."""

    def __init__(self, browser, discovery, client, scope=SCOPE) -> None:
        self.browser, self.discovery, self.client = browser, discovery, client
        self.rp = rp_session(client, scope=scope)
        self.verifier, self.nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        url, self.state = self.rp.create_authorization_url(
            discovery["authorization_endpoint"], code_verifier=self.verifier, nonce=self.nonce
        )
        self.page = browser.get(url)

    def answer(self, national_id: str | None = None, decision: str = "approve") -> requests.Response:
        """Submit the consent form on the current page (with the typed ID, when given)."""
        page = self.page
        assert page.status_code in (200, 400), page.text
        action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        fields = {k: html.unescape(v) for k, v in fields.items()} | {"decision": decision}
        if national_id is not None:
            fields["national_id"] = national_id
        response = self.browser.http.post(
            self.browser.issuer + action, data=fields, allow_redirects=False, timeout=30
        )
        self.page = response
        return response

    def tokens(self, callback: str) -> tuple[dict, dict]:
        assert query(callback)["state"] == self.state
        token = self.rp.fetch_token(
            self.discovery["token_endpoint"], authorization_response=callback, code_verifier=self.verifier
        )
        claims = verify_id_token(self.discovery, token["id_token"], self.client["client_id"], self.nonce)
        return token, claims


def userinfo(discovery, access_token: str) -> dict:
    response = requests.get(
        discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def tags(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.tag).order_by(AuditEvent.id)))


def test_an_allowed_client_gets_the_id_the_person_types_in_the_id_token_userinfo_and_after_a_refresh(
    app, browser, discovery, agency
):
    flow = Authorization(browser, discovery, agency)
    assert flow.page.status_code == 200 and 'name="national_id"' in flow.page.text
    callback = flow.answer(" a123456789 ")  # typed as people type it
    assert callback.status_code == 302, callback.text
    token, claims = flow.tokens(callback.headers["Location"])

    assert claims["national_id"] == NATIONAL_ID and claims["national_id_masked"] == "A12****789"
    info = userinfo(discovery, token["access_token"])
    assert info["national_id"] == NATIONAL_ID and info["sub"] == claims["sub"]

    refreshed = flow.rp.refresh_token(discovery["token_endpoint"], refresh_token=token["refresh_token"])
    assert userinfo(discovery, refreshed["access_token"])["national_id"] == NATIONAL_ID
    again = flow.rp.refresh_token(discovery["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert userinfo(discovery, again["access_token"])["national_id"] == NATIONAL_ID

    with app.app_context():
        # It moved along: only the newest token holds it; the code and the rotated tokens let it go.
        assert db.session.scalars(select(OidcAuthorizationCode.national_id_sealed)).all() == [None]
        sealed = db.session.scalars(select(OidcToken.national_id_sealed).order_by(OidcToken.id)).all()
        assert sealed[:-1] == [None, None] and sealed[-1] is not None
    assert "oidc:national_id:confirmed" in tags(app)
    assert "national_id" in discovery["claims_supported"] and "national_id_masked" in discovery["claims_supported"]


def test_the_id_is_asked_every_time_even_when_consent_is_remembered(browser, discovery, agency):
    first = Authorization(browser, discovery, agency)
    assert first.answer(NATIONAL_ID).status_code == 302
    second = Authorization(browser, discovery, agency)
    assert second.page.status_code == 200 and 'name="national_id"' in second.page.text
    refused = Authorization(browser, discovery, agency)  # nobody can type it without the page
    assert refused.answer(None).status_code == 400 and "請輸入身分證統一編號" in refused.page.text
    url, _ = rp_session(agency, scope="openid national_id").create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=secrets.token_urlsafe(48), prompt="none"
    )
    assert query(browser.get(url).headers["Location"])["error"] == "consent_required"


def test_the_consent_page_says_who_gets_it_and_why_in_chinese_then_english(browser, discovery, agency):
    page = Authorization(browser, discovery, agency).page.text
    assert "提供給 戶政司 Household Registration 的身分證統一編號" in page
    assert "政府機關" in page and "只在這次登入時傳送給 戶政司 Household Registration" in page
    assert "每次都會詢問" in page
    browser.http.headers["Accept-Language"] = "en"
    page = Authorization(browser, discovery, agency).page.text
    assert "Your national ID number for 戶政司 Household Registration" in page
    assert "government agency" in page and "sends it only to 戶政司 Household Registration, for this login" in page
    assert "Asked every time" in page


def test_a_wrong_id_is_refused_on_the_page_and_audited_without_what_was_typed(app, browser, discovery, agency):
    flow = Authorization(browser, discovery, agency)
    wrong = flow.answer(SOMEONE_ELSES)
    assert wrong.status_code == 400 and "這不是您帳號的身分證統一編號。您還可以再試 2 次。" in wrong.text
    assert 'aria-invalid="true"' in wrong.text
    not_an_id = flow.answer("A123456788")  # check digit typo: costs no attempt
    assert not_an_id.status_code == 400 and "身分證統一編號格式不正確" in not_an_id.text
    browser.http.headers["Accept-Language"] = "en"
    english = flow.answer(SOMEONE_ELSES)
    assert "This is not the national ID number of your account. You can try 1 more time." in english.text

    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.tag == "oidc:national_id:mismatch").order_by(AuditEvent.id)
        ).all()
        assert [e.details["attempts_left"] for e in events] == [2, 1]
        assert all(e.details["client"] == agency["client_id"] for e in events)
        assert SOMEONE_ELSES not in json.dumps([e.details for e in events])
    assert "oidc:consent:granted" not in tags(app)

    done = flow.answer(NATIONAL_ID)  # the right one still works, on the same page
    assert done.status_code == 302 and "code" in query(done.headers["Location"])


def test_repeated_wrong_ids_end_with_access_denied_and_a_new_authorization_does_not_refill(
    app, browser, discovery, agency
):
    flow = Authorization(browser, discovery, agency)
    assert [flow.answer(SOMEONE_ELSES).status_code for _ in range(2)] == [400, 400]
    ended = flow.answer(SOMEONE_ELSES)
    assert ended.status_code == 302
    answer = query(ended.headers["Location"])
    assert answer["error"] == "access_denied" and answer["state"] == flow.state

    retry = Authorization(browser, discovery, agency)
    refused = retry.answer(NATIONAL_ID)  # even the right ID, until the window passes
    assert query(refused.headers["Location"])["error"] == "access_denied"
    assert tags(app).count("oidc:national_id:mismatch") == 3
    assert tags(app).count("oidc:national_id:locked") == 2
    assert "oidc:login:success" not in tags(app)


def test_a_client_not_allowed_never_receives_it_even_asking_and_posting_it(app, browser, discovery, add_client):
    other = add_client()
    flow = Authorization(browser, discovery, other, scope="openid profile national_id")
    assert flow.page.status_code == 200 and 'name="national_id"' not in flow.page.text
    callback = flow.answer(NATIONAL_ID)  # a forged field changes nothing
    token, claims = flow.tokens(callback.headers["Location"])
    info = userinfo(discovery, token["access_token"])
    for released in (claims, info):
        assert "national_id" not in released and "national_id_masked" not in released
        assert NATIONAL_ID not in json.dumps(released)
    with app.app_context():
        assert db.session.scalars(select(OidcAuthorizationCode.national_id_sealed)).all() == [None]
        assert db.session.scalars(select(OidcToken.national_id_sealed)).all() == [None]
    assert not any(tag.startswith("oidc:national_id:") for tag in tags(app))


def test_the_typed_ids_appear_in_no_table_and_no_log(app, browser, discovery, agency, caplog):
    caplog.set_level(logging.DEBUG)
    flow = Authorization(browser, discovery, agency)
    flow.answer(SOMEONE_ELSES)
    token, _ = flow.tokens(flow.answer(NATIONAL_ID).headers["Location"])
    refreshed = flow.rp.refresh_token(discovery["token_endpoint"], refresh_token=token["refresh_token"])
    assert userinfo(discovery, refreshed["access_token"])["national_id"] == NATIONAL_ID

    typed_ids = [NATIONAL_ID, SOMEONE_ELSES]
    with app.app_context():
        tables = MetaData()
        tables.reflect(bind=db.engine)  # every table there is, not just the models'
        assert {"oidc_tokens", "oidc_authorization_codes", "audit_events", "accounts"} <= set(tables.tables)
        scanned = set()
        with db.engine.connect() as connection:
            for table in tables.sorted_tables:
                for row in connection.execute(table.select()):
                    for column, value in zip(table.columns, row, strict=True):
                        if isinstance(value, (bytes, memoryview)):
                            text = bytes(value).decode("latin-1")
                        elif isinstance(value, (dict, list)):
                            text = json.dumps(value, ensure_ascii=False)
                        elif isinstance(value, str):
                            text = value
                        else:
                            continue
                        scanned.add(f"{table.name}.{column.name}")
                        for typed in typed_ids:
                            assert typed not in text.upper(), f"{typed} in {table.name}.{column.name}"
        assert {"oidc_tokens.national_id_sealed", "oidc_authorization_codes.scope", "audit_events.details",
                "accounts.national_id_hash", "card_certificates.der"} <= scanned
        sealed = select(OidcToken.national_id_sealed).where(OidcToken.national_id_sealed.isnot(None))
        assert len(db.session.scalars(sealed).all()) == 1  # it is there, sealed
    assert not any(typed in caplog.text for typed in typed_ids)


def test_purge_lets_sealed_ids_go_with_their_rows(app, browser, discovery, agency):
    flow = Authorization(browser, discovery, agency)
    token, _ = flow.tokens(flow.answer(NATIONAL_ID).headers["Location"])
    revoked = requests.post(discovery["revocation_endpoint"], data={"token": token["access_token"]},
                            auth=(agency["client_id"], agency["client_secret"]), timeout=10)
    assert revoked.status_code == 200
    with app.app_context():
        assert db.session.scalars(select(OidcToken.national_id_sealed)).all() == [None]  # revoked: gone at once
        # A code nobody exchanged keeps its sealed ID only until purge sees it expired.
        code = db.session.scalars(select(OidcAuthorizationCode)).one()
        code.used_at = None
        code.national_id_sealed = oidc_national_id.seal(
            NATIONAL_ID, purpose=oidc_national_id.CODE, client_id=code.client_id, account_id=code.account_id
        )
        code.expires_at = code.created_at
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["purge"])
    assert "oidc_sealed_national_ids: 1 removed" in result.output
    with app.app_context():
        assert db.session.scalars(select(OidcAuthorizationCode.national_id_sealed)).all() == [None]


def test_a_sealed_id_opens_only_for_its_purpose_client_and_account():
    key = oidc_national_id.seal_key(secrets.token_hex(32))
    sealed = oidc_national_id.seal_with(key, NATIONAL_ID, purpose="token", client_id=1, account_id=2)
    assert NATIONAL_ID.encode() not in sealed
    assert oidc_national_id.open_with(key, sealed, purpose="token", client_id=1, account_id=2) == NATIONAL_ID
    for other in ({"purpose": "authorization_code", "client_id": 1, "account_id": 2},
                  {"purpose": "token", "client_id": 3, "account_id": 2},
                  {"purpose": "token", "client_id": 1, "account_id": 4}):
        with pytest.raises(oidc_national_id.InvalidSeal):
            oidc_national_id.open_with(key, sealed, **other)
    with pytest.raises(oidc_national_id.InvalidSeal):
        oidc_national_id.open_with(oidc_national_id.seal_key(secrets.token_hex(32)), sealed,
                                   purpose="token", client_id=1, account_id=2)
