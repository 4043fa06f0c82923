"""What the provider refuses, and how: the right error, at the right place."""

from __future__ import annotations

import html
import json
import re
import secrets
import time

import requests
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from app.oidc.keys import read_keys

from .support import RP, authorize_url, code_for, exchange, login, pkce, query, verify_id_token


def userinfo(discovery, access_token):
    return requests.get(discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}, timeout=10)


def refresh(discovery, client, refresh_token):
    return requests.post(discovery["token_endpoint"], auth=(client["client_id"], client["client_secret"]),
                         data={"grant_type": "refresh_token", "refresh_token": refresh_token}, timeout=30)


def test_wrong_redirect_uri_shows_an_error_page_and_never_redirects(browser, discovery, add_client):
    client = add_client()
    _, challenge = pkce()
    response = browser.get(authorize_url(discovery, client["client_id"], redirect_uri="https://evil.example/cb",
                                         challenge=challenge))
    assert response.status_code == 400 and "Location" not in response.headers
    unknown = browser.get(authorize_url(discovery, "no-such-client", challenge=challenge))
    assert unknown.status_code == 400 and "Location" not in unknown.headers


def test_reused_code_is_rejected_and_revokes_what_it_gave(app, browser, discovery, add_client):
    client = add_client()
    code, verifier = code_for(browser, discovery, client, scope="openid offline_access")
    first = exchange(discovery, client, code, verifier).json()
    assert userinfo(discovery, first["access_token"]).status_code == 200
    second = exchange(discovery, client, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert userinfo(discovery, first["access_token"]).status_code == 401
    assert refresh(discovery, client, first["refresh_token"]).json()["error"] == "invalid_grant"
    with app.app_context():
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.tag == "oidc:code:reused")) is not None


def test_pkce_required_for_public_clients_and_verified(browser, discovery, add_client):
    public = add_client("--name", "SPA", "--redirect-uri", f"{RP}/cb", "--public")
    assert public["client_secret"] is None
    missing = browser.get(authorize_url(discovery, public["client_id"]))
    assert missing.status_code == 302
    assert {"error": "invalid_request", "state": "st"}.items() <= query(missing.headers["Location"]).items()
    plain = browser.get(authorize_url(discovery, public["client_id"], code_challenge="x" * 43,
                                      code_challenge_method="plain"))
    assert query(plain.headers["Location"])["error"] == "invalid_request"

    code, verifier = code_for(browser, discovery, public)
    wrong = exchange(discovery, public, code, pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    code, verifier = code_for(browser, discovery, public)
    assert "id_token" in exchange(discovery, public, code, verifier).json()


def test_bad_client_credentials_and_disabled_client(app, browser, discovery, add_client):
    client = add_client()
    code, verifier = code_for(browser, discovery, client)
    bad = exchange(discovery, {**client, "client_secret": "wrong"}, code, verifier)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"

    code, verifier = code_for(browser, discovery, client)
    token = exchange(discovery, client, code, verifier).json()
    result = app.test_cli_runner().invoke(args=["clients", "disable", client["client_id"]])
    assert result.exit_code == 0, result.output
    assert userinfo(discovery, token["access_token"]).status_code == 401
    _, challenge = pkce()
    page = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge))
    assert page.status_code == 400 and "Location" not in page.headers
    listing = app.test_cli_runner().invoke(args=["clients", "list"]).output
    assert f"{client['client_id']}\tdisabled" in listing


def test_consent_denied_gives_access_denied(app, browser, discovery, add_client):
    client = add_client()
    _, challenge = pkce()
    callback = browser.authorize(authorize_url(discovery, client["client_id"], challenge=challenge), decision="deny")
    assert {"error": "access_denied", "state": "st"}.items() <= query(callback).items()
    with app.app_context():
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.tag == "oidc:consent:denied")) is not None


def test_consent_form_needs_its_csrf_token(browser, discovery, add_client):
    client = add_client()
    _, challenge = pkce()
    url = authorize_url(discovery, client["client_id"], challenge=challenge)
    response = browser.http.post(url, data={"decision": "approve"}, allow_redirects=False, timeout=10)
    assert response.status_code == 400 and "Location" not in response.headers


def test_without_a_session_prompt_none_says_login_required_and_otherwise_login_comes_first(
    issuer, pki, person, discovery, add_client
):
    from .support import Browser

    client = add_client()
    browser = Browser(issuer, pki)
    _, challenge = pkce()
    none = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge, prompt="none"))
    assert {"error": "login_required", "state": "st"}.items() <= query(none.headers["Location"]).items()

    to_login = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge))
    assert to_login.headers["Location"].startswith("/authorize/login?")  # our login page: phone or card
    card_link = card_login_link(browser.get(issuer + to_login.headers["Location"]).text)
    login_page = browser.get(issuer + card_link)
    assert 'data-next-url="/authorize?' in login_page.text
    browser.card_login()
    next_url = query(issuer + card_link)["next"]
    assert "code" in query(browser.authorize(issuer + next_url))


def card_login_link(page: str) -> str:
    """The "Log in with IC card" link of our login page at /authorize (to /login?next=<the request>)."""
    return html.unescape(re.search(r'id="login-card" class="[^"]*" href="([^"]+)"', page).group(1))


def test_login_page_ignores_a_next_that_is_not_a_local_path(client):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"):
        page = client.get("/login", query_string={"next": target}).get_data(as_text=True)
        assert 'data-next-url=""' in page
    assert 'data-next-url="/authorize?x=1"' in client.get("/login?next=/authorize%3Fx%3D1").get_data(as_text=True)


def test_max_age_and_prompt_login_force_a_fresh_login(browser, discovery, add_client):
    client = add_client()
    code_for(browser, discovery, client)  # consent given
    time.sleep(1.1)
    _, challenge = pkce()
    old = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge, max_age="0"))
    assert old.headers["Location"].startswith("/authorize/login?")
    assert browser.get(authorize_url(discovery, client["client_id"], challenge=challenge, max_age="3600")
                       ).headers["Location"].startswith(f"{RP}/cb?code=")
    forced = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge, prompt="login"))
    assert forced.headers["Location"].startswith("/authorize/login?")
    none = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge, max_age="0", prompt="none"))
    assert query(none.headers["Location"])["error"] == "login_required"
    # After a new card login, the marked request goes through.
    card_link = card_login_link(browser.get(browser.issuer + old.headers["Location"]).text)
    browser.card_login()
    next_url = query(browser.issuer + card_link)["next"]
    assert "code" in query(browser.authorize(browser.issuer + next_url))


def test_pairwise_subjects_differ_between_sectors_and_public_is_shared(browser, discovery, add_client):
    a = add_client("--name", "A", "--redirect-uri", "https://a.example/cb")
    a2 = add_client("--name", "A2", "--redirect-uri", "https://a.example/cb")
    b = add_client("--name", "B", "--redirect-uri", "https://b.example/cb")
    p1 = add_client("--name", "P1", "--redirect-uri", "https://p1.example/cb", "--subject-type", "public")
    p2 = add_client("--name", "P2", "--redirect-uri", "https://p2.example/cb", "--subject-type", "public")

    def sub(client, host):
        verifier, challenge = pkce()
        url = authorize_url(discovery, client["client_id"], redirect_uri=f"https://{host}/cb", challenge=challenge)
        code = query(browser.authorize(url))["code"]
        token = requests.post(discovery["token_endpoint"], auth=(client["client_id"], client["client_secret"]), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": f"https://{host}/cb",
            "code_verifier": verifier}, timeout=30).json()
        return verify_id_token(discovery, token["id_token"], client["client_id"])["sub"]

    first = sub(a, "a.example")
    assert sub(a, "a.example") == first == sub(a2, "a.example")  # stable, and per sector
    assert sub(b, "b.example") != first
    assert sub(p1, "p1.example") == sub(p2, "p2.example") != first


def test_es256_client_gets_an_es256_id_token(browser, discovery, add_client):
    client = add_client("--name", "EC", "--redirect-uri", f"{RP}/cb", "--id-token-alg", "ES256")
    _, claims, _ = login(browser, discovery, client, scope="openid")
    assert claims["header"]["alg"] == "ES256"


def test_key_rotation_keeps_the_old_key_published_and_signs_with_the_new(app, browser, discovery, add_client):
    client = add_client()
    _, before, _ = login(browser, discovery, client, scope="openid")
    result = app.test_cli_runner().invoke(args=["oidc", "rotate-key", "--alg", "RS256"])
    assert result.exit_code == 0, result.output
    kids = {k["kid"] for k in requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]}
    _, after, _ = login(browser, discovery, client, scope="openid")
    assert after["header"]["kid"] != before["header"]["kid"]
    assert {before["header"]["kid"], after["header"]["kid"]} <= kids
    # Long after the new key took over, the old one is no longer published.
    retire_after = app.config["OIDC_KEY_RETIRE_AFTER"]
    later = time.time() + retire_after.total_seconds() + 10
    kids = {k.kid for k in read_keys(app.config["OIDC_KEYS_DIR"]).published(retire_after, now=later)}
    assert before["header"]["kid"] not in kids and after["header"]["kid"] in kids


def test_private_key_jwt_client_authentication(browser, discovery, add_client, tmp_path):
    key = ECKey.generate_key("P-256", parameters={"kid": "rp-key"})
    jwks_file = tmp_path / "rp-jwks.json"
    jwks_file.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
    client = add_client("--name", "JWT RP", "--redirect-uri", f"{RP}/cb",
                        "--token-endpoint-auth-method", "private_key_jwt", "--jwks-file", str(jwks_file))
    assert client["client_secret"] is None

    def assertion(signing_key):
        now = int(time.time())
        claims = {"iss": client["client_id"], "sub": client["client_id"], "aud": discovery["token_endpoint"],
                  "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(12)}
        return jwt.encode({"alg": "ES256", "kid": "rp-key"}, claims, signing_key)

    def with_assertion(signing_key):
        code, verifier = code_for(browser, discovery, client)
        return exchange(discovery, client, code, verifier, client_assertion=assertion(signing_key),
                        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer")

    assert "id_token" in with_assertion(key).json()
    wrong = with_assertion(ECKey.generate_key("P-256", parameters={"kid": "rp-key"}))
    assert wrong.status_code in (400, 401) and wrong.json()["error"] == "invalid_client", wrong.text


def test_refresh_tokens_rotate_and_only_with_offline_access(browser, discovery, add_client):
    client = add_client()
    code, verifier = code_for(browser, discovery, client, scope="openid")
    assert "refresh_token" not in exchange(discovery, client, code, verifier).json()

    code, verifier = code_for(browser, discovery, client, scope="openid offline_access")
    first = exchange(discovery, client, code, verifier).json()
    second = refresh(discovery, client, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    replay = refresh(discovery, client, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # The replay of a rotated-out token revokes the family: the new pair stops working too.
    assert userinfo(discovery, second["access_token"]).status_code == 401
    assert refresh(discovery, client, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_revocation_endpoint(app, browser, discovery, add_client):
    client = add_client()
    code, verifier = code_for(browser, discovery, client, scope="openid offline_access")
    token = exchange(discovery, client, code, verifier).json()
    other = add_client()
    foreign = requests.post(discovery["revocation_endpoint"], auth=(other["client_id"], other["client_secret"]),
                            data={"token": token["access_token"]}, timeout=10)
    assert foreign.status_code == 400 and userinfo(discovery, token["access_token"]).status_code == 200
    revoked = requests.post(discovery["revocation_endpoint"], auth=(client["client_id"], client["client_secret"]),
                            data={"token": token["refresh_token"], "token_type_hint": "refresh_token"}, timeout=10)
    assert revoked.status_code == 200
    assert userinfo(discovery, token["access_token"]).status_code == 401
    assert refresh(discovery, client, token["refresh_token"]).json()["error"] == "invalid_grant"
    with app.app_context():
        assert db.session.scalar(select(AuditEvent).where(AuditEvent.tag == "oidc:token:revoked")) is not None


def test_logout_without_a_valid_hint_asks_first_and_redirects_only_to_registered_uris(app, browser, discovery,
                                                                                       add_client):
    client = add_client("--name", "RP", "--redirect-uri", f"{RP}/cb", "--post-logout-redirect-uri", f"{RP}/bye")
    unregistered = browser.get(discovery["end_session_endpoint"], params={
        "client_id": client["client_id"], "post_logout_redirect_uri": "https://evil.example/"})
    assert unregistered.status_code == 200 and "csrf_token" in unregistered.text  # confirm page
    done = browser.consent(unregistered)
    assert done.status_code == 200 and "Location" not in done.headers  # logged out, no redirect
    assert browser.get(discovery["authorization_endpoint"] + "?x=1").status_code == 400

    browser.card_login()
    page = browser.get(discovery["end_session_endpoint"], params={
        "client_id": client["client_id"], "post_logout_redirect_uri": f"{RP}/bye", "state": "s"})
    assert browser.consent(page).headers["Location"] == f"{RP}/bye?state=s"
    with app.app_context():
        assert len(db.session.scalars(select(AuditEvent).where(AuditEvent.tag == "oidc:logout")).all()) == 2


def test_clients_add_prints_exactly_one_json_object(app):
    result = app.test_cli_runner().invoke(
        args=["clients", "add", "--name", "X", "--redirect-uri", f"{RP}/cb", "--client-id", "x-client"]
    )
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert set(body) == {"client_id", "client_secret"} and body["client_id"] == "x-client"
    assert result.stdout.count("\n") == 1
    refused = app.test_cli_runner().invoke(
        args=["clients", "add", "--name", "Y", "--redirect-uri", f"{RP}/cb", "--scope", "openid national_id"])
    # Refused in words, as a usage error (2), not a crash: a command has no request to take a language from.
    assert refused.exit_code == 2
    assert "national_id" in refused.output and " / " in refused.output


def test_token_and_revocation_over_plain_http_to_another_host_are_refused_not_a_500(client, add_client):
    """Authlib refuses http except to localhost, outside its error handling: a foreign Host header on an
    http server (a proxy that does not say https, a fuzzer) made a 500 (found by the fuzz)."""
    add_client()
    for path, form in (("/oauth/token", {"grant_type": "authorization_code", "code": "x"}),
                       ("/oauth/revoke", {"token": "x"})):
        response = client.raw.post(path, data=form, base_url="http://evil.example")
        assert response.status_code == 400, (path, response.status_code, response.data[:200])
        assert response.get_json()["error"] == "insecure_transport"
