"""The example relying party 臺灣雲市集: its subsidy rules, its store, its registration at MoCert, and a
person joining through a real OpenID Connect login at MoCert (Authlib's client, real HTTP both sides)."""

from __future__ import annotations

import ast
import base64
import html
import json
import re
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from examples.marketplace import subsidy
from examples.marketplace.app import ConfigurationError, create_app, instance_secret
from examples.marketplace.registration import (
    AGENCY_NAME, CLIENT_ID, CLIENT_NAME, RegistrationError, register, register_agency,
)
from examples.marketplace.store import Store, TaxIdTaken
from examples.marketplace.subsidy import SUBSIDY_POINTS, Company, InvalidPrice, InvalidTaxId, is_valid_tax_id
from tests.support import card_of, make_signature

ROOT = Path(__file__).resolve().parents[2]
VALID_TAX_ID = "04595257"


# -- 統一編號 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tax_id", [
    "04595257",  # products' digit sum 40: divisible by 10 (the old rule too)
    "22099131",  # 30
    "10458575",  # 7th digit 7, sum 30 (28 counted as 10)
    "10458574",  # 7th digit 7, sum 29: valid only because 28's digits may count as 1 (29 + 1 = 30)
    "04595252",  # sum 35: valid by the 2023 rule (divisible by 5), not by the old one
])
def test_valid_tax_ids(tax_id):
    assert is_valid_tax_id(tax_id)


@pytest.mark.parametrize("tax_id", [
    "04595258",  # sum 41
    "12345678",  # sum 42
    "10458573",  # 7th digit 7, sum 28: neither 28 nor 29 divisible by 5
    "10458584",  # 7th digit 8, sum 24: sum + 1 would pass, but that alternative is only for a 7
    "0459525",  # seven digits
    "045952570",  # nine
    "0459525a",
    "０４５９５２５７",  # full-width digits
    "",
])
def test_invalid_tax_ids(tax_id):
    assert not is_valid_tax_id(tax_id)


def test_the_plus_one_alternative_is_only_for_a_7_in_seventh_place():
    def digit_sum(tax_id):
        return sum(p // 10 + p % 10 for p in (int(d) * w for d, w in zip(tax_id, subsidy.TAX_ID_WEIGHTS)))

    # Both sums are 4 below a multiple of 5; only the 7 in seventh place lets 28 count as 1.
    assert digit_sum("10458574") % 5 == 4 and digit_sum("10458584") % 5 == 4
    assert is_valid_tax_id("10458574") and not is_valid_tax_id("10458584")


def test_a_company_needs_a_valid_tax_id_and_a_name():
    with pytest.raises(InvalidTaxId):
        Company("小明商行", "12345678")
    with pytest.raises(ValueError):
        Company("  ", VALID_TAX_ID)
    assert Company("小明商行", f" {VALID_TAX_ID} ").tax_id == VALID_TAX_ID


# -- points and payments ----------------------------------------------------------------------------------


def test_joining_grants_30000_points_exactly_once():
    company = Company("小明商行", VALID_TAX_ID)
    assert company.join() == SUBSIDY_POINTS == 30_000
    assert company.join() == 0 and company.points == 30_000
    company.pay(60_000)  # spends all 30,000
    assert company.points == 0
    assert company.join() == 0 and company.points == 0  # spent points are not given again


def test_a_company_with_another_subsidy_gets_no_points_and_pays_in_full():
    company = Company("客家茶行", VALID_TAX_ID, has_other_subsidy=True)
    assert company.join() == 0 and company.points == 0
    company.points = 5_000  # even with a balance (say, from bad data), nothing is paid from points
    assert company.pay(24_000) == subsidy.Payment(price=24_000, points=0, own_funds=24_000)
    assert company.points == 5_000


@pytest.mark.parametrize(("balance", "price", "points", "own_funds"), [
    (30_000, 24_000, 12_000, 12_000),  # half the price
    (30_000, 9_999, 4_999, 5_000),  # odd price: points never more than the company pays
    (30_000, 80_000, 30_000, 50_000),  # capped at the balance
    (3_000, 24_000, 3_000, 21_000),
    (0, 24_000, 0, 24_000),
    (30_000, 1, 0, 1),
])
def test_points_cover_at_most_half_the_price_and_at_most_the_balance(balance, price, points, own_funds):
    company = Company("小明商行", VALID_TAX_ID, points=balance)
    payment = company.pay(price)
    assert (payment.points, payment.own_funds) == (points, own_funds)
    assert payment.points <= payment.own_funds and payment.points + payment.own_funds == price
    assert company.points == balance - points


def test_quote_does_not_spend_and_pay_spends_until_the_points_run_out():
    company = Company("小明商行", VALID_TAX_ID)
    company.join()
    assert company.quote(36_000).points == 18_000 and company.points == 30_000
    assert company.pay(36_000) == subsidy.Payment(36_000, 18_000, 18_000)
    assert company.pay(36_000) == subsidy.Payment(36_000, 12_000, 24_000)
    assert company.pay(36_000) == subsidy.Payment(36_000, 0, 36_000)


@pytest.mark.parametrize("price", [0, -100, 10.5, True, "100"])
def test_a_price_is_a_positive_whole_number(price):
    with pytest.raises(InvalidPrice):
        Company("小明商行", VALID_TAX_ID).quote(price)


# -- the store ----------------------------------------------------------------------------------------


def test_store_joins_once_per_person_and_once_per_tax_id(tmp_path):
    store = Store(tmp_path / "m.db")
    joined = store.join("iss sub-1", Company("小明商行", VALID_TAX_ID))
    assert joined.points == 30_000
    store.buy("iss sub-1", subsidy.product("pos"))
    # Joining again returns the company as it is: no second 30,000.
    again = store.join("iss sub-1", Company("小明商行", VALID_TAX_ID))
    assert again.points == 12_000 and Store(tmp_path / "m.db").company_of("iss sub-1").points == 12_000
    with pytest.raises(TaxIdTaken):
        store.join("iss sub-2", Company("冒名商行", VALID_TAX_ID))
    assert store.company_of("iss sub-2") is None
    with pytest.raises(LookupError):
        store.buy("iss sub-2", subsidy.product("pos"))
    [purchase] = store.purchases_of("iss sub-1")
    assert purchase.product == "pos" and purchase.payment == subsidy.Payment(36_000, 18_000, 18_000)


def test_store_counts_attempts_within_their_window_and_all_or_none(tmp_path):
    store = Store(tmp_path / "m.db")
    ip, push = ("visitor:203.0.113.1", 2, 60), ("push:abc", 1, 600)
    assert store.count_attempt([ip], now=0) is None
    assert store.count_attempt([ip, push], now=1) is None
    assert store.count_attempt([ip], now=2) == "visitor:203.0.113.1"  # two in the last minute
    assert store.count_attempt([ip], now=60) is None  # the first no longer counts
    # The address is full again and the push too: neither is counted, so the address frees at 61, not later.
    assert store.count_attempt([push, ip], now=60.5) == "push:abc"
    assert store.count_attempt([ip], now=61) is None
    assert store.count_attempt([("visitor:203.0.113.2", 2, 60), push], now=300) == "push:abc"  # any address
    assert store.count_attempt([push], now=601) is None


# -- configuration and layout ----------------------------------------------------------------------------


def test_the_example_imports_nothing_from_mocerts_packages():
    imported = set()
    for path in (ROOT / "examples").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert "authlib" in imported  # the standard client library does the OIDC work
    assert "twfido" in imported  # the shipped package computes the TW FidO API's checksums and checks
    assert not imported & {"app", "iccard", "webauthn", "config", "wsgi"}


def test_secret_key_is_random_kept_in_instance_and_credentials_are_required(tmp_path):
    secret = instance_secret(tmp_path / "marketplace_secret_key")
    assert len(secret) == 64 and instance_secret(tmp_path / "marketplace_secret_key") == secret
    assert stat.S_IMODE((tmp_path / "marketplace_secret_key").stat().st_mode) == 0o600
    assert instance_secret(tmp_path / "other") != secret
    with pytest.raises(ConfigurationError):
        create_app({"INSTANCE_DIR": tmp_path, "CLIENT_ID": None, "CLIENT_FILE": tmp_path / "none.json",
                    "DATABASE": tmp_path / "m.db"})
    (tmp_path / "client.json").write_text(json.dumps({"client_id": "c1", "client_secret": "s1"}))
    app = create_app({"INSTANCE_DIR": tmp_path, "CLIENT_ID": None, "CLIENT_FILE": tmp_path / "client.json",
                      "SECRET_KEY": None, "DATABASE": tmp_path / "m.db"})
    assert app.secret_key == instance_secret(tmp_path / "marketplace_secret_key")
    assert app.config["SESSION_COOKIE_NAME"] != "mocert_session"


# -- registration at MoCert (its real CLI) ----------------------------------------------------------------


def test_registration_adds_the_client_once_and_keeps_its_secret_private(app, mocert_cli, tmp_path):
    client_file = tmp_path / "instance" / "marketplace-client.json"
    message = register(mocert_cli, public_url="http://localhost:5001", client_file=client_file)
    assert "registered" in message
    credentials = json.loads(client_file.read_text())
    assert credentials["client_id"] == CLIENT_ID and len(credentials["client_secret"]) > 30
    assert stat.S_IMODE(client_file.stat().st_mode) == 0o600

    assert "already registered" in register(mocert_cli, public_url="http://localhost:5001", client_file=client_file)
    assert json.loads(client_file.read_text()) == credentials  # not replaced
    code, listing = mocert_cli(["clients", "list"])
    assert code == 0 and listing.count(CLIENT_ID) == 1 and CLIENT_NAME in listing

    # The client exists but this file lost its secret: say so, never register twice.
    with pytest.raises(RegistrationError, match="--client-id"):
        register(mocert_cli, public_url="http://localhost:5001", client_file=tmp_path / "elsewhere.json")
    mocert_cli(["clients", "disable", CLIENT_ID])
    with pytest.raises(RegistrationError, match="disabled"):
        register(mocert_cli, public_url="http://localhost:5001", client_file=client_file)


def test_registration_adds_the_agency_once_keeps_its_key_private_and_takes_it_back_when_the_key_is_lost(
    app, mocert_cli, tmp_path
):
    def listing():
        code, output = mocert_cli(["agencies", "list"])
        assert code == 0
        return [json.loads(line) for line in output.splitlines()]

    agency_file = tmp_path / "instance" / "marketplace-agency.json"
    assert "registered at MoCert" in register_agency(mocert_cli, public_url="http://localhost:5001/",
                                                     agency_file=agency_file)
    kept = json.loads(agency_file.read_text())
    assert set(kept) == {"sp_service_id", "api_key"} and len(base64.b64decode(kept["api_key"])) == 32
    assert stat.S_IMODE(agency_file.stat().st_mode) == 0o600
    [agency] = listing()
    assert (agency["sp_service_id"], agency["name"], agency["callback_url"]) == (
        kept["sp_service_id"], AGENCY_NAME, "http://localhost:5001/login/mobile")

    assert "already registered" in register_agency(mocert_cli, public_url="http://localhost:5001",
                                                   agency_file=agency_file)
    assert json.loads(agency_file.read_text()) == kept and len(listing()) == 1

    # The file is lost: MoCert shows a key once, so the same agency gets a new one rather than a twin.
    elsewhere = tmp_path / "elsewhere.json"
    assert "key rotated" in register_agency(mocert_cli, public_url="http://localhost:5001", agency_file=elsewhere)
    again = json.loads(elsewhere.read_text())
    assert again["sp_service_id"] == kept["sp_service_id"] and again["api_key"] != kept["api_key"]
    assert len(listing()) == 1

    mocert_cli(["agencies", "disable", kept["sp_service_id"]])
    with pytest.raises(RegistrationError, match="disabled"):
        register_agency(mocert_cli, public_url="http://localhost:5001", agency_file=elsewhere)


# -- a person joins through MoCert --------------------------------------------------------------------------


def query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def csrf_of(page: requests.Response) -> str:
    return html.unescape(re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1))


def mocert_card_login(http: requests.Session, mocert: str, pki) -> None:
    """The card login as MoCert's login page makes it, signed as the cross-platform component would."""
    headers = {"X-CSRF-Token": http.get(f"{mocert}/api/v1/csrf", timeout=10).json()["csrf_token"]}
    begin = http.post(f"{mocert}/api/v1/card-login/begin", headers=headers, timeout=10).json()
    signed = make_signature(pki, card_of(pki, "A123456789"), begin["tbs"])
    done = http.post(f"{mocert}/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed},
                     headers=headers, timeout=30)
    assert done.json()["status"] == "logged_in", done.text


def card_login_path(http: requests.Session, mocert: str, login_page: str) -> str:
    """The card login page (``/login?next=/authorize?...``) MoCert sends the person to, directly or by the
    "Log in with IC card" link of its page that also offers the phone (``/authorize/login``)."""
    if login_page.startswith("/authorize/login?"):
        page = http.get(mocert + login_page, timeout=10)
        login_page = html.unescape(re.search(r'id="login-card"[^>]*href="([^"]+)"', page.text).group(1))
    assert login_page.startswith("/login?next=%2Fauthorize%3F") or login_page.startswith("/login?next=/authorize?")
    return login_page


def log_in(http: requests.Session, mocert: str, marketplace: str, pki) -> requests.Response:
    """From the marketplace's /login through MoCert's login and consent back to /callback's answer."""
    to_mocert = http.get(f"{marketplace}/login", allow_redirects=False, timeout=10)
    assert to_mocert.status_code == 302 and to_mocert.headers["Location"].startswith(f"{mocert}/authorize?")
    request = query(to_mocert.headers["Location"])
    assert request["code_challenge_method"] == "S256" and request["code_challenge"] and request["nonce"]
    assert request["scope"] == "openid profile email" and request["redirect_uri"] == f"{marketplace}/callback"

    to_login = http.get(to_mocert.headers["Location"], allow_redirects=False, timeout=10)
    assert to_login.status_code == 302
    card_login_page = card_login_path(http, mocert, to_login.headers["Location"])
    mocert_card_login(http, mocert, pki)
    consent = http.get(mocert + query(mocert + card_login_page)["next"], allow_redirects=False, timeout=10)
    if consent.status_code == 302:  # consent given before: MoCert remembers it
        return http.get(consent.headers["Location"], allow_redirects=False, timeout=30)
    assert consent.status_code == 200 and "臺灣雲市集（示範）" in consent.text
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', consent.text).group(1))
    back = http.post(mocert + action, data={"csrf_token": csrf_of(consent), "decision": "approve"},
                     allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["Location"].startswith(f"{marketplace}/callback?code=")
    return http.get(back.headers["Location"], allow_redirects=False, timeout=30)


def test_a_responsible_person_logs_in_with_the_card_joins_buys_and_logs_out(mocert, marketplace, person, pki):
    market = marketplace.url
    http = requests.Session()
    assert "以自然人憑證登入" in http.get(market, timeout=10).text

    callback = log_in(http, mocert, market, pki)
    assert callback.status_code == 302 and callback.headers["Location"] == "/join"
    join_page = http.get(f"{market}/join", timeout=10)
    assert "王小明" in join_page.text  # the name came from MoCert (ID token and userinfo)

    refused = http.post(f"{market}/join", data={"csrf_token": csrf_of(join_page), "name": "小明雲端商行",
                                                "tax_id": "12345678"}, allow_redirects=False, timeout=10)
    assert refused.status_code == 400 and "統一編號不正確" in refused.text
    joined = http.post(f"{market}/join", data={"csrf_token": csrf_of(join_page), "name": "小明雲端商行",
                                               "tax_id": VALID_TAX_ID}, timeout=10)
    assert joined.url == f"{market}/company"
    assert re.search(r'id="points">30,000<', joined.text) and "小明雲端商行" in joined.text
    assert joined.headers["Cache-Control"] == "no-store"  # a logged-in page is never kept for Back

    # A purchase without the session's CSRF token does nothing.
    forged = http.post(f"{market}/buy/pos", data={"csrf_token": "forged"}, timeout=10)
    assert forged.status_code == 400
    assert re.search(r'id="points">30,000<', http.get(f"{market}/company", timeout=10).text)

    token = csrf_of(joined)
    # Buying asks first, with what it would cost; a post that did not come from that page buys nothing.
    unasked = http.post(f"{market}/buy/pos", data={"csrf_token": token}, allow_redirects=False, timeout=10)
    assert unasked.status_code == 303 and unasked.headers["Location"] == "/buy/pos"
    asked = http.get(f"{market}/buy/pos", timeout=10)
    assert dict(re.findall(r'id="([a-z-]+)">([\d,]+)<', asked.text)) == {
        "price": "36,000", "paid-points": "18,000", "own-funds": "18,000", "points": "12,000"}
    assert 'id="confirm-purchase"' in asked.text and "點數一經折抵即不退還" in asked.text
    assert re.search(r'id="points">30,000<', http.get(f"{market}/company", timeout=10).text)
    bought = http.post(f"{market}/buy/pos", data={"csrf_token": token, "confirm": "yes"}, timeout=10)
    assert bought.status_code == 200 and re.fullmatch(rf"{market}/purchases/\d+", bought.url)  # redirected
    split = dict(re.findall(r'id="([a-z-]+)">([\d,]+)<', bought.text))
    assert split == {"price": "36,000", "paid-points": "18,000", "own-funds": "18,000", "points": "12,000"}
    reloaded = http.get(bought.url, timeout=10)  # a reload shows the purchase and buys nothing
    assert dict(re.findall(r'id="([a-z-]+)">([\d,]+)<', reloaded.text)) == split
    assert requests.get(bought.url, allow_redirects=False, timeout=10).status_code == 302  # not without a login
    again = dict(re.findall(r'id="([a-z-]+)">([\d,]+)<',
                            http.post(f"{market}/buy/pos", data={"csrf_token": token, "confirm": "yes"},
                                      timeout=10).text))
    assert again == {"price": "36,000", "paid-points": "12,000", "own-funds": "24,000", "points": "0"}

    # RP-initiated logout: MoCert ends its session (the ID token hints who) and sends the person back.
    to_mocert = http.post(f"{market}/logout", data={"csrf_token": token}, allow_redirects=False, timeout=10)
    assert to_mocert.status_code == 302
    end_session = to_mocert.headers["Location"]
    assert end_session.startswith(f"{mocert}/oidc/logout?")
    assert query(end_session)["post_logout_redirect_uri"] == f"{market}/"
    assert query(end_session)["id_token_hint"].count(".") == 2
    back = http.get(end_session, allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["Location"] == f"{market}/?state={query(end_session)['state']}"
    home = http.get(back.headers["Location"], timeout=10)
    assert "您已登出" in home.text and "王小明" not in home.text
    assert http.get(f"{mocert}/api/v1/account", timeout=10).status_code == 401
    assert http.get(f"{market}/company", allow_redirects=False, timeout=10).headers["Location"] == "/"
    # Back to a logged-in page after logging out: it was not kept, and asking for it again leads to the front
    # page and its ways to log in, not to MoCert's login page.
    assert "請先登入" in http.get(f"{market}/company", timeout=10).text
    assert "Cache-Control" not in home.headers or "no-store" not in home.headers["Cache-Control"]

    # Logging in again finds the company as it was: the 30,000 points were granted once.
    later = requests.Session()
    back_in = log_in(later, mocert, market, pki)
    assert back_in.status_code == 302 and back_in.headers["Location"] == "/company"
    assert http.get(f"{market}/join", allow_redirects=False, timeout=10).headers["Location"] == "/"
    company = later.get(f"{market}/join", timeout=10)  # joining again leads to the company page
    assert company.url == f"{market}/company" and re.search(r'id="points">0<', company.text)


def test_a_callback_with_a_forged_state_or_an_error_logs_nobody_in(marketplace):
    http = requests.Session()
    http.get(f"{marketplace.url}/login", allow_redirects=False, timeout=10)
    forged = http.get(f"{marketplace.url}/callback", params={"code": "x", "state": "forged"}, timeout=10)
    assert forged.status_code == 400 and "登入失敗" in forged.text
    denied = http.get(f"{marketplace.url}/callback", params={"error": "access_denied", "state": "s"}, timeout=10)
    assert denied.status_code == 400
    assert http.get(f"{marketplace.url}/company", allow_redirects=False, timeout=10).headers["Location"] == "/"
