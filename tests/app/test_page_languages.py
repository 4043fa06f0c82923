"""Every page and error page speaks the language it is rendered in: no English sentence on a zh-TW page, no
Chinese on an English one.

The pages are found by walking the app's url_map (a GET route that renders HTML and is not listed here fails
the test until it is), rendered in both languages with the state each needs (tests/factories.py), and read
as a person sees them: text and the attributes a screen reader speaks, plus the scripts' translated strings
(the ``mocert-i18n`` JSON blocks), without code samples and without what is marked in another language.

What counts (a heuristic, decided here):

- zh-TW: a piece of text with no CJK character and at least three ASCII words, once URLs, email addresses and
  the allowed terms (``ALLOWED_TERMS``: product and standard names, QR, PIN, IC, ...) are taken out, is an
  English sentence.
- English: any CJK character is a finding, except inside an element marked ``lang="zh-Hant-TW"`` (the
  brand's 行動自然人憑證, the language switcher's 繁體中文) and except the data the state holds (a person's
  name from their card, a device's or an agency's name, ``DATA``), which is shown as it was given.
"""

from __future__ import annotations

import ast
import json
import re
from html.parser import HTMLParser
from datetime import timedelta
from pathlib import Path

import pytest
from flask import abort

from app.extensions import db
from app.models import Account, utcnow
from app.services import sessions
from app.wiring import parts
from app.wiring import DEMO_SUPPORT_CONTACTS
from tests.factories import ADMIN_ID, make_agency, make_device, make_oidc_client, make_staff
from tests.support import ApiClient, card_login, card_of

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the pages do not depend on it

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "app" / "templates"
ZH = {"Accept-Language": "zh-TW"}
EN = {"Accept-Language": "en"}

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")
WORD = re.compile(r"[A-Za-z]+(?:['’][a-z]+)?")  # a whole whitespace-separated token: ids and hashes are not words
URL_OR_EMAIL = re.compile(r"\b(?:https?://|/)\S*|\S+@\S+|\b[\w.-]+\.(?:example|com|tw|gov)\b\S*")
# Names a zh-TW page writes in Latin letters on purpose: products, standards, parts of the card stack.
ALLOWED_TERMS = re.compile(
    r"\b(?:MoCert|QR|PIN|IC|OpenID|Connect|OIDC|TW|FidO|FIDO|WebAuthn|Android|iOS|iPhone|Chrome|Safari|Edge|"
    r"Firefox|HiCOS|JSON|API|ID|IDs|CSV|JWKS|HTTPS?|URIs?|URLs?|IP|CIDR|PEM|SHA-?\d*|RS256|ES256|EdDSA|"
    r"client_secret_\w+|private_key_jwt|none|openid|profile|email|phone|offline_access|national_id|"
    r"pairwise|public|admin|auditor|ATH|SIGN|BATSIGN|MOICA|GRCA|OCSP|CRL|CA|Web|Push|GMT|UTC)\b"
)
# Text the pages show as given, not written by us: the factories' names, the demo cards' holders, an agency's
# name and the hint its request carries, the demo's support contacts (a deployment's own, in the language it
# writes them), the reason `flask admin grant` records.
DATA = ("王小明", "陳美玲", "林志豪", "我的手機", "登入臺灣雲市集", "臺灣雲市集", "granted with flask admin grant",
        *(line for contact in DEMO_SUPPORT_CONTACTS for line in (contact["name"], *contact["hours"])))
# Chinese an English page shows on purpose, beside its English: the names a person reads on the card, the
# component's installer and MOICA's own pages, so that they can match them (decided: no other Chinese).
PROPER_NAMES = ("行動自然人憑證", "自然人憑證", "跨平台網頁元件")
SKIPPED_TAGS = {"script", "style", "code", "pre", "kbd", "samp", "svg", "template"}
SPOKEN_ATTRIBUTES = ("aria-label", "placeholder", "title", "alt")

# GET routes that answer no HTML page (files, JSON, redirects, a script), named so that a new page is not.
NOT_PAGES = {
    "static", "main.favicon", "main.set_language", "main.healthz", "main.readyz", "oidc.jwks", "oidc.discovery", "oidc.userinfo",
    "inbox.service_worker", "admin_console.audit_csv", "demo_pki.issuer_certificate", "demo_pki.crl",
    "demo_pki.moica_profile_certificate", "demo_pki.moica_profile_crl", "mobile_pki.ca_certificate",
    "mobile_pki.crl", "mobile_pki.ocsp_get",
}


class VisibleText(HTMLParser):
    """The page's text as a person meets it: (text, marked language) pieces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[tuple[str, str | None]] = []
        self._stack: list[tuple[str, str | None, bool]] = []  # tag, lang, skipped
        self._i18n = False

    def _lang(self) -> str | None:
        return next((lang for _tag, lang, _skip in reversed(self._stack) if lang), None)

    def _skipped(self) -> bool:
        return any(skip for _tag, _lang, skip in self._stack)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._i18n = tag == "script" and "mocert-i18n" in (attrs.get("class") or "")
        lang = attrs.get("lang") if tag != "html" else None
        for name in SPOKEN_ATTRIBUTES:
            if attrs.get(name) and not self._skipped():
                self.pieces.append((attrs[name], lang or self._lang()))
        if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.pieces.append((attrs["value"], lang or self._lang()))
        if tag not in ("meta", "link", "input", "br", "img", "hr", "source"):
            self._stack.append((tag, lang, tag in SKIPPED_TAGS))

    def handle_endtag(self, tag):
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self._i18n and self._stack and self._stack[-1][0] == "script":
            self.pieces.extend((text, self._lang()) for text in json.loads(data).values())
            return
        if data.strip() and not self._skipped():
            self.pieces.append((" ".join(data.split()), self._lang()))


def visible_text(page: str) -> list[tuple[str, str | None]]:
    parser = VisibleText()
    parser.feed(page)
    return parser.pieces


def english_sentences(page: str) -> list[str]:
    """English sentences on a zh-TW page, and Chinese sentences followed by a half-width space."""
    found = []
    for text, lang in visible_text(page):
        if lang != "en" and re.search(r"[。，；：！？] ", text):
            found.append(text)
        if lang == "en" or CJK.search(text) or text in DATA:
            continue
        tokens = ALLOWED_TERMS.sub(" ", URL_OR_EMAIL.sub(" ", text)).split()
        words = [token for token in tokens if WORD.fullmatch(token.strip(".,;:!?()[]\"'“”‘’"))]
        if len(words) >= 3:
            found.append(text)
    return found


def chinese_text(page: str) -> list[str]:
    found = []
    for text, lang in visible_text(page):
        if lang == "zh-Hant-TW":
            continue
        for name in (*DATA, *PROPER_NAMES):
            text = text.replace(name, "")
        if CJK.search(text):
            found.append(text)
    return found


def wrong_language(page: str, headers: dict) -> list[str]:
    return english_sentences(page) if headers is ZH else chinese_text(page)


# -- the state the pages need ------------------------------------------------------------------------------


@pytest.fixture
def state(app, pki):
    """Staff (陳美玲 the admin, with a bound phone), an OIDC client and an agency: each page's ids. 王小明 is
    not registered: his card login is the one the registration page needs."""
    ids = make_staff(app, pki)
    with app.app_context():
        admin = db.session.get(Account, ids["admin"])
        admin.email_verified_at = utcnow()
        make_device(admin)
        _, card_session = sessions.open(admin, method="card", lifetime=timedelta(minutes=10))
        db.session.commit()
        _, bind_token = parts().devices.create_binding(admin, card_session)  # the phone's bind page needs a live one
    rp, agency = make_oidc_client(app), make_agency(app)
    return {"account_id": ids["admin"], "client_id": rp["client_id"], "sp_service_id": agency["sp_service_id"],
            "token": "not-a-real-token", "bind_token": bind_token}


def logged_in(app, pki, national_id: str):
    client = ApiClient(app.test_client())
    assert card_login(client, pki, card_of(pki, national_id)).status_code == 200
    return client.raw


def authorize_query(client_id: str, **extra) -> str:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": "https://rp.example/cb",
              "scope": "openid profile", "state": "s", "nonce": "n", **extra}
    return "&".join(f"{k}={v}" for k, v in params.items())


def page_paths(app, state) -> dict[str, list[str]]:
    """Each GET route that renders HTML: the paths that show it (some pages have several states)."""
    query = authorize_query(state["client_id"])
    shown = {
        "oidc.authorize": [f"/authorize?{query}"],  # the consent page (logged in)
        "oidc_login.login_page": [f"/authorize/login?{query}"],
        "oidc.logout": ["/oidc/logout", f"/oidc/logout?client_id={state['client_id']}"],
        "sp_phone.phone_request_page": ["/m/sp?sp_ticket=not-a-ticket"],
        "phone.phone_bind_page": [f"/m/bind/{state['bind_token']}"],
    }
    paths = {}
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in NOT_PAGES or rule.rule.startswith("/api/"):
            continue
        paths[rule.endpoint] = shown.get(rule.endpoint) or [rule.rule.replace("<int:", "<").replace(
            "<account_id>", str(state["account_id"])).replace("<client_id>", state["client_id"]).replace(
            "<sp_service_id>", state["sp_service_id"]).replace("<token>", state["token"])]
    return paths


@SQLITE
@pytest.mark.parametrize("headers", [ZH, EN], ids=["zh-TW", "en"])
def test_every_page_speaks_one_language(app, pki, state, headers):
    admin, newcomer = logged_in(app, pki, ADMIN_ID), logged_in(app, pki, "A123456789")
    findings = {}
    for endpoint, paths in sorted(page_paths(app, state).items()):
        for path in paths:
            response = (newcomer if endpoint == "account.register_page" else admin).get(path, headers=headers)
            assert response.status_code == 200 and response.mimetype == "text/html", (path, response.status_code)
            found = wrong_language(response.get_data(as_text=True), headers)
            if found:
                findings[path] = found
    assert findings == {}, json.dumps(findings, ensure_ascii=False, indent=1)


@SQLITE
@pytest.mark.parametrize("headers", [ZH, EN], ids=["zh-TW", "en"])
def test_every_error_page_speaks_one_language(app, pki, state, headers):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a bug is answered with the 500 page, as in production
    for status in (400, 401, 403, 404, 405, 410, 413, 429):
        app.add_url_rule(f"/test/abort/{status}", f"abort_{status}", lambda status=status: abort(status))
    app.add_url_rule("/test/bug", "bug", lambda: 1 / 0)
    client = app.test_client()
    pages = {f"/test/abort/{status}": status for status in (400, 401, 403, 410, 413, 429)}
    pages |= {"/nope": 404, "/test/bug": 500}
    findings = {}
    for path, status in pages.items():
        response = client.get(path, headers=headers)
        assert response.status_code == status and response.mimetype == "text/html", path
        findings[path] = wrong_language(response.get_data(as_text=True), headers)
    response = client.post("/help", headers=headers)  # a GET page posted to: 405
    assert response.status_code == 405
    findings["POST /help"] = wrong_language(response.get_data(as_text=True), headers)
    # The OIDC error page: an unknown client, and a known one with a redirect URI it did not register.
    for query in (authorize_query("no-such-client"),
                  authorize_query(state["client_id"], redirect_uri="https://evil.example/cb")):
        response = client.get(f"/authorize?{query}", headers=headers)
        assert response.status_code == 400 and response.mimetype == "text/html", query
        findings[f"/authorize?{query}"] = wrong_language(response.get_data(as_text=True), headers)
    response = client.post("/moise/sp/fidoRedirect/web", data={}, headers=headers)  # no agency's request: refused
    assert response.status_code == 400
    findings["POST /moise/sp/fidoRedirect/web"] = wrong_language(response.get_data(as_text=True), headers)
    findings = {path: found for path, found in findings.items() if found}
    assert findings == {}, json.dumps(findings, ensure_ascii=False, indent=1)


@SQLITE
@pytest.mark.parametrize("path, method, status", [("/api/v1/nope", "get", 404), ("/api/v1/csrf", "post", 405)])
def test_api_framework_errors_are_in_the_persons_language(client, path, method, status):
    zh = getattr(client, method)(path, headers=ZH)
    en = getattr(client, method)(path, headers=EN)
    assert zh.status_code == en.status_code == status
    assert CJK.search(zh.get_json()["message"]) and not CJK.search(en.get_json()["message"])
    assert zh.get_json()["error"] == en.get_json()["error"]


def test_every_audit_detail_key_has_a_label():
    """Each keyword app.audit.record is called with (its ``**details``) is labelled in the console."""
    from app.admin.console import AUDIT_DETAIL_LABELS

    keys = set()
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "record":
                keys |= {keyword.arg for keyword in node.keywords if keyword.arg}
    assert "service_tokens_revoked" in keys  # the calls were found
    assert sorted(keys - {"account", "actor", "reason"} - set(AUDIT_DETAIL_LABELS)) == []  # reason: shown apart


def test_the_heuristic_sees_english_and_chinese():
    page = ('<html lang="zh-Hant-TW"><body><p>The client does not exist on this server.</p>'
            '<p>PIN 碼錯誤。 還可嘗試 2 次。</p><p>請以 QR Code 登入 MoCert</p><code>python -m iccard.agent --emulate now</code>'
            '<p lang="en">English on purpose</p><button aria-label="Close this dialog now">x</button></body></html>')
    assert english_sentences(page) == ["The client does not exist on this server.", "PIN 碼錯誤。 還可嘗試 2 次。",
                                       "Close this dialog now"]
    assert chinese_text('<html lang="en"><p>Log in <span lang="zh-Hant-TW">行動自然人憑證</span></p>'
                        '<p>王小明</p><p>帳號</p></html>') == ["帳號"]


# Templates no page renders on its own: the layouts and partials the pages extend or include, and the service
# worker (JavaScript, in NOT_PAGES).
NOT_RENDERED_HERE = {"base.html", "admin/layout.html", "admin/_macros.html", "admin/_client_form.html", "inbox_sw.js"}


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@SQLITE
@pytest.mark.parametrize("headers", [ZH, EN], ids=["zh-TW", "en"])
def test_the_pages_a_post_answers_speak_one_language_and_every_template_is_rendered(app, pki, state, headers):
    from flask import template_rendered

    from tests.app.agency_client import AgencyClient

    rendered: set[str] = set()

    def note(sender, template, context, **extra):
        rendered.add(template.name)

    admin, newcomer = logged_in(app, pki, ADMIN_ID), logged_in(app, pki, "A123456789")
    with app.app_context():
        agency, api_key = parts().agencies.add(actor="test", name="臺灣雲市集", callback_url="https://sp.example/cb")
        agency_client = AgencyClient("http://localhost", agency.sp_service_id, api_key)
        form, malformed = agency_client.web_form(), agency_client.web_form(time_limit="29")
    template_rendered.connect(note, app)
    try:
        for endpoint, paths in sorted(page_paths(app, state).items()):  # the GET pages, as the test above
            for path in paths:
                (newcomer if endpoint == "account.register_page" else admin).get(path, headers=headers)
        token = _csrf(admin.get("/admin", headers=headers).get_data(as_text=True))
        answers = {
            "POST /admin (a search)": admin.post("/admin", data={"csrf_token": token, "by": "any", "q": "陳"},
                                                 headers=headers),
            "POST /admin/tokens (its secret, once)": admin.post(
                "/admin/tokens", data={"csrf_token": token, "name": "SIEM", "scope": "read", "expires_in_days": "30"},
                headers=headers),
            "POST /admin/tokens (the form again, refused)": admin.post(
                "/admin/tokens", data={"csrf_token": token, "name": "SIEM", "expires_in_days": "30"}, headers=headers),
            "POST /moise/sp/fidoRedirect/web (the agency's request)": app.test_client().post(
                "/moise/sp/fidoRedirect/web", data=form, headers=headers),
            "POST /moise/sp/fidoRedirect/web (the agency's, malformed: posted back with its code)":
                app.test_client().post("/moise/sp/fidoRedirect/web", data=malformed, headers=headers),
        }
        for status in (404, 500):
            app.test_client().get("/nope" if status == 404 else "/help", headers=headers)
        app.test_client().post("/moise/sp/fidoRedirect/web", data={}, headers=headers)  # refused: its own page
    finally:
        template_rendered.disconnect(note, app)
    assert [answer.status_code for answer in answers.values()] == [200, 201, 400, 200, 200]
    findings = {name: wrong_language(answer.get_data(as_text=True), headers) for name, answer in answers.items()}
    assert {name: found for name, found in findings.items() if found} == {}
    templates = {str(path.relative_to(TEMPLATES)) for path in TEMPLATES.rglob("*") if path.is_file()}
    assert templates - rendered - NOT_RENDERED_HERE == set(), "a page no language test renders"
