"""OpenID Connect Back-Channel Logout 1.0: a site that registered a ``backchannel_logout_uri`` is posted a
signed logout token when a session it logged in through ends — the person's logout (MoCert's own, or the
site's RP-initiated one), an administrator revoking the phone, the person unbinding it. The token is queued
in the ending's transaction and posted after its commit (here: ``deliver_due``, as the courier calls it),
retried, and its outcome audited."""

from __future__ import annotations

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from app import wiring
from app.extensions import db
from app.models import AuditEvent, BackchannelLogout, Device, OidcClient, utcnow
from app.oidc.oauth2 import BACKCHANNEL_LOGOUT_EVENT
from app.services import clients as client_service

from tests.factories import make_staff

from ..admin.support import ADMIN_ID, AdminBrowser
from .support import RP, Browser, exchange, login, query, rp_authorization

EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def site():
    """A site's back-channel logout endpoint: records each post (content type, form) and answers ``status``."""

    class Site:
        posts: list[dict] = []
        status = 200

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            Site.posts.append({"path": self.path, "type": self.headers.get("Content-Type"),
                               "form": {k: v[0] for k, v in parse_qs(body).items()}})
            self.send_response(Site.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Site.uri = f"http://127.0.0.1:{server.server_port}/backchannel-logout"
    yield Site
    server.shutdown()


@pytest.fixture
def bcl_client(add_client, site):
    return add_client("--name", "Example RP", "--redirect-uri", f"{RP}/cb", "--post-logout-redirect-uri",
                      f"{RP}/bye", "--backchannel-logout-uri", site.uri)


def _deliver(app, now=None) -> dict:
    with app.app_context():
        return wiring.parts().backchannel_logouts.deliver_due(now=now)


def _deliveries(app) -> list[BackchannelLogout]:
    with app.app_context():
        rows = list(db.session.scalars(select(BackchannelLogout).order_by(BackchannelLogout.id)))
        db.session.expunge_all()
        return rows


def _events(app, tag) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id)))


def _verified(discovery, logout_token, client_id) -> tuple[dict, dict]:
    """The token checked as §2.6 asks a site to: by the provider's JWKS, iss, aud, iat/exp. (header, claims)."""
    keys = KeySet.import_key_set(requests.get(discovery["jwks_uri"], timeout=10).json())
    token = jwt.decode(logout_token, keys, algorithms=discovery["id_token_signing_alg_values_supported"])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": discovery["issuer"]},
                          aud={"essential": True, "value": client_id},
                          iat={"essential": True}, exp={"essential": True}).validate(token.claims)
    return token.header, token.claims


def _logout(browser: Browser) -> None:
    done = browser.http.post(f"{browser.issuer}/api/v1/logout", headers={"X-CSRF-Token": browser.csrf()}, timeout=10)
    assert done.json() == {"status": "logged_out"}


def test_discovery_says_back_channel_logout_with_sid_is_supported(discovery):
    assert discovery["backchannel_logout_supported"] is True
    assert discovery["backchannel_logout_session_supported"] is True
    assert "sid" in discovery["claims_supported"]


def test_logout_posts_a_signed_logout_token_with_the_id_tokens_sid_and_pairwise_sub(
    app, browser, discovery, bcl_client, site
):
    _, id_token, _ = login(browser, discovery, bcl_client)
    assert id_token["sid"]

    _logout(browser)
    # Queued with the logout's commit, nothing posted yet (the courier posts after the commit).
    [queued] = _deliveries(app)
    assert queued.sent_at is None and queued.attempts == 0 and site.posts == []
    [logout_event] = _events(app, "session:logout")
    assert logout_event.details["backchannel_logouts"] == 1

    assert _deliver(app) == {"sent": 1, "retrying": 0, "failed": 0}
    [post] = site.posts
    assert post["path"] == "/backchannel-logout" and post["type"] == "application/x-www-form-urlencoded"
    assert set(post["form"]) == {"logout_token"}
    header, claims = _verified(discovery, post["form"]["logout_token"], bcl_client["client_id"])
    assert header["typ"] == "logout+jwt" and header["alg"] == "RS256" and header["kid"] == id_token["header"]["kid"]
    assert claims["iss"] == discovery["issuer"] and claims["aud"] == bcl_client["client_id"]
    assert claims["sub"] == id_token["sub"] and claims["sid"] == id_token["sid"]
    assert claims["events"] == {EVENT: {}} and BACKCHANNEL_LOGOUT_EVENT == EVENT
    assert "nonce" not in claims and len(claims["jti"]) >= 32
    assert 0 < claims["exp"] - claims["iat"] <= 300

    [delivered] = _deliveries(app)
    assert delivered.sent_at is not None and delivered.attempts == 1
    [sent] = _events(app, "oidc:backchannel_logout:sent")
    assert sent.details["client"] == bcl_client["client_id"] and sent.details["auth_session"] == delivered.auth_session_id
    assert _deliver(app) == {"sent": 0, "retrying": 0, "failed": 0}  # sent once, never again
    assert len(site.posts) == 1


def test_two_sites_each_get_their_own_sub_and_sid_and_a_site_without_a_uri_gets_nothing(
    app, browser, discovery, add_client, site
):
    first = add_client("--name", "A", "--redirect-uri", f"{RP}/cb", "--backchannel-logout-uri", site.uri)
    second = add_client("--name", "B", "--redirect-uri", "https://other.example/cb", "--backchannel-logout-uri",
                        site.uri)
    plain = add_client("--name", "C", "--redirect-uri", f"{RP}/cb")
    _, first_id_token, _ = login(browser, discovery, first)
    rp, url, state, verifier, nonce = rp_authorization(discovery, second, redirect_uri="https://other.example/cb")
    browser.authorize(url)
    _, plain_id_token, _ = login(browser, discovery, plain)
    assert plain_id_token["sid"] not in (first_id_token["sid"], None)  # its own, as every client's

    _logout(browser)
    _deliver(app)
    keys = KeySet.import_key_set(requests.get(discovery["jwks_uri"], timeout=10).json())
    tokens = {}
    for post in site.posts:
        claims = jwt.decode(post["form"]["logout_token"], keys).claims
        tokens[claims["aud"]] = claims
    # A, which exchanged its code, and B, whose code could still have been (an exchange beside the logout
    # would not have been seen), are told; C registered no URI.
    assert set(tokens) == {first["client_id"], second["client_id"]}
    assert tokens[first["client_id"]]["sid"] == first_id_token["sid"]
    assert len(site.posts) == 2


def test_the_rp_initiated_logout_tells_the_site_too(app, browser, discovery, bcl_client, site):
    token, id_token, _ = login(browser, discovery, bcl_client)
    out = browser.get(discovery["end_session_endpoint"],
                      params={"id_token_hint": token["id_token"], "post_logout_redirect_uri": f"{RP}/bye"})
    assert out.status_code == 302
    [oidc_logout] = _events(app, "oidc:logout")
    assert oidc_logout.details["backchannel_logouts"] == 1
    assert _deliver(app)["sent"] == 1
    _, claims = _verified(discovery, site.posts[0]["form"]["logout_token"], bcl_client["client_id"])
    assert claims["sid"] == id_token["sid"]


def _phone_login(discovery, client, phone, computer) -> dict:
    """The phone logs the computer in to the site; returns the site's verified ID token claims."""
    rp, url, state, verifier, nonce = rp_authorization(discovery, client)
    started = computer.start(url)
    phone.approve(phone.login_request(started["url"]))
    done = computer.complete(started["login_request_id"])
    assert done.status_code == 200, done.text
    callback = computer.back_to_site(done.json()["redirect"])
    token = rp.fetch_token(discovery["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    return jwt.decode(token["id_token"], KeySet.import_key_set(
        requests.get(discovery["jwks_uri"], timeout=10).json())).claims


def test_an_admins_revocation_of_the_phone_queues_in_its_transaction_and_delivers(
    app, issuer, pki, discovery, bcl_client, phone, computer, site
):
    id_token = _phone_login(discovery, bcl_client, phone, computer)
    make_staff(app, pki)
    admin = AdminBrowser(issuer, pki)
    admin.card_login(ADMIN_ID)
    with app.app_context():
        device_id = db.session.scalars(select(Device.id)).one()
    revoked = admin.api("POST", f"/devices/{device_id}/revoke", {"reason": "reported stolen"})
    assert revoked.status_code == 200, revoked.text
    [revoked] = _events(app, "device:revoked")
    assert revoked.details["backchannel_logouts"] == 1 and revoked.details["sessions_ended"] == 1
    assert [d.sent_at for d in _deliveries(app)] == [None]

    assert _deliver(app)["sent"] == 1
    _, claims = _verified(discovery, site.posts[0]["form"]["logout_token"], bcl_client["client_id"])
    assert (claims["sub"], claims["sid"]) == (id_token["sub"], id_token["sid"])


def test_the_owner_unbinding_the_phone_tells_the_site(app, issuer, pki, discovery, bcl_client, phone, computer, site):
    _phone_login(discovery, bcl_client, phone, computer)
    owner = Browser(issuer, pki)
    owner.card_login()
    with app.app_context():
        device_id = db.session.scalars(select(Device.id)).one()
    gone = owner.http.delete(f"{issuer}/api/v1/devices/{device_id}", json={"reason": "new phone"},
                             headers={"X-CSRF-Token": owner.csrf()}, timeout=10)
    assert gone.status_code == 200, gone.text
    [unbound] = _events(app, "device:unbound")
    assert unbound.details["backchannel_logouts"] == 1
    assert _deliver(app)["sent"] == 1 and len(site.posts) == 1


def test_a_site_that_keeps_failing_is_retried_with_growing_waits_then_given_up_and_audited(
    app, browser, discovery, bcl_client, site
):
    login(browser, discovery, bcl_client)
    _logout(browser)
    site.status = 503
    now = utcnow()
    with app.app_context():
        logouts = wiring.parts().backchannel_logouts
        attempts, first_wait = logouts.attempts, logouts.retry_after
    assert (attempts, first_wait) == (5, timedelta(seconds=10))

    assert _deliver(app, now) == {"sent": 0, "retrying": 1, "failed": 0}
    assert _deliver(app, now + timedelta(seconds=9)) == {"sent": 0, "retrying": 0, "failed": 0}  # not due yet
    waited = timedelta(0)
    for attempt in range(2, attempts + 1):
        waited += first_wait * 2 ** (attempt - 2)  # 10, 20, 40, 80 s
        outcome = _deliver(app, now + waited)
        assert outcome == ({"sent": 0, "retrying": 1, "failed": 0} if attempt < attempts
                           else {"sent": 0, "retrying": 0, "failed": 1})
    assert len(site.posts) == attempts
    [given_up] = _deliveries(app)
    assert given_up.failed_at is not None and given_up.sent_at is None and given_up.last_error == "http_503"
    [failed] = _events(app, "oidc:backchannel_logout:failed")
    assert failed.details["reason"] == "http_503" and failed.details["attempts"] == attempts
    assert failed.details["client"] == bcl_client["client_id"]
    assert _events(app, "oidc:backchannel_logout:sent") == []
    assert _deliver(app, now + timedelta(days=1))["failed"] == 0  # given up for good


def test_a_site_back_after_a_failure_gets_the_token_on_the_retry(app, browser, discovery, bcl_client, site):
    login(browser, discovery, bcl_client)
    _logout(browser)
    site.status = 500
    now = utcnow()
    assert _deliver(app, now)["retrying"] == 1
    site.status = 204  # "no content" is as good as 200
    assert _deliver(app, now + timedelta(seconds=10))["sent"] == 1
    [sent] = _events(app, "oidc:backchannel_logout:sent")
    assert sent.details["attempts"] == 2


def test_an_unreachable_site_is_a_failure_too(app, browser, discovery, add_client):
    client = add_client("--name", "Gone", "--redirect-uri", f"{RP}/cb", "--backchannel-logout-uri",
                        "http://127.0.0.1:9/nothing-listens")
    login(browser, discovery, client)
    _logout(browser)
    assert _deliver(app)["retrying"] == 1
    assert _deliveries(app)[0].last_error == "unreachable"


def test_the_uri_is_registered_by_the_cli_and_the_api_view_and_checked(app, add_client, site):
    client = add_client("--name", "X", "--redirect-uri", f"{RP}/cb", "--backchannel-logout-uri",
                        "https://rp.example/bcl", "--backchannel-logout-session-required")
    with app.app_context():
        view = client_service.client_view(client_service.get(client["client_id"]))
        assert view["backchannel_logout_uri"] == "https://rp.example/bcl"
        assert view["backchannel_logout_session_required"] is True
        # The per-process copy carries it (services/client_directory.py copies every column).
        copy = wiring.parts().clients.get(client["client_id"])
        assert copy.backchannel_logout_uri == "https://rp.example/bcl" and copy.backchannel_logout_session_required
        row = client_service.get(client["client_id"])
        client_service.update(row, {"backchannel_logout_uri": ""}, actor="test", reason="no more")
        assert client_service.get(client["client_id"]).backchannel_logout_uri is None
    for bad in ("http://rp.example/bcl", "https://rp.example/bcl#frag", "https://a.example/x https://b.example/y"):
        result = app.test_cli_runner().invoke(args=["clients", "add", "--name", "Y", "--redirect-uri", f"{RP}/cb",
                                                    "--backchannel-logout-uri", bad])
        assert result.exit_code != 0, bad
    with app.app_context():
        assert db.session.scalar(select(OidcClient).where(OidcClient.name == "Y")) is None


def test_a_code_of_a_session_that_ended_before_its_exchange_gets_no_id_token_and_the_site_is_told(
    app, browser, discovery, bcl_client, site
):
    rp, url, state, verifier, _ = rp_authorization(discovery, bcl_client, scope="openid")
    code = query(browser.authorize(url))["code"]
    _logout(browser)  # between the code and its exchange
    [owed] = _deliveries(app)  # the code could still be exchanged (an exchange beside the logout is not seen)
    assert owed.client_id is not None and owed.attempts == 0
    refused = exchange(discovery, bcl_client, code, verifier)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert _deliver(app)["sent"] == 1 and len(site.posts) == 1


def test_a_claim_that_ran_out_is_recorded_only_by_the_courier_that_took_it_again(
    app, browser, discovery, bcl_client, site
):
    login(browser, discovery, bcl_client)
    _logout(browser)
    with app.app_context():
        logouts = wiring.parts().backchannel_logouts
        first_post = logouts.post
        later, taken = [], []

        def slow_post(uri, token, *, timeout):
            # While the first courier's post is out, its claim runs out and a second courier takes the row.
            if not taken:
                taken.append(True)
                later.append(_deliver(app, utcnow() + timedelta(hours=1)))
            first_post(uri, token, timeout=timeout)

        logouts.post = slow_post
        try:
            first = logouts.deliver_due()
        finally:
            logouts.post = first_post
    assert later == [{"sent": 1, "retrying": 0, "failed": 0}] and first == {"sent": 0, "retrying": 0, "failed": 0}
    assert len(site.posts) == 2  # posted twice (the site spends each jti once), recorded once
    assert len(_events(app, "oidc:backchannel_logout:sent")) == 1
    [delivered] = _deliveries(app)
    assert delivered.attempts == 2 and delivered.sent_at is not None and delivered.failed_at is None


def test_a_delivery_whose_token_cannot_be_made_does_not_hold_up_the_others(
    app, browser, discovery, add_client, site
):
    clients = [add_client("--name", name, "--redirect-uri", f"{RP}/cb", "--backchannel-logout-uri", site.uri)
               for name in ("First", "Second")]
    for client in clients:
        login(browser, discovery, client)
    _logout(browser)
    with app.app_context():
        logouts = wiring.parts().backchannel_logouts
        make_token = logouts.make_token

        def broken_for_first(client, account_id, auth_session_id):
            if client.client_id == clients[0]["client_id"]:
                raise RuntimeError("no signing key for its algorithm")
            return make_token(client, account_id, auth_session_id)

        logouts.make_token = broken_for_first
        try:
            outcome = logouts.deliver_due()
        finally:
            logouts.make_token = make_token
    assert outcome == {"sent": 1, "retrying": 1, "failed": 0}
    [post] = site.posts
    assert _verified(discovery, post["form"]["logout_token"], clients[1]["client_id"])[1]["aud"] == clients[1]["client_id"]


def test_a_post_reads_the_sites_status_and_never_waits_for_its_body():
    from app.backchannel import post_logout_token

    released = threading.Event()
    finished = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.flush()
            # The body comes only once the post returned: a post that waited for it would wait here 10 s.
            finished.append(released.wait(10))

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        post_logout_token(f"http://127.0.0.1:{server.server_port}/bcl", "t", timeout=30)
        released.set()
    finally:
        server.shutdown()
    assert finished == [True]
