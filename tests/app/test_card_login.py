"""POST /api/v1/card-login/*: every way a card login succeeds and fails, and what it leaves behind."""

import itertools
from datetime import timedelta

import pytest
from cryptography import x509
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import AuditEvent, AuthSession, CardLogin, utcnow
from tests import forged
from tests.support import ApiClient, begin_card_login, card_login, card_of, make_signature, register


def _events(app, tag=None):
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        if tag:
            query = query.where(AuditEvent.tag == tag)
        return list(db.session.scalars(query))


def test_begin_gives_what_make_signature_needs(client, app):
    begin = begin_card_login(client)
    assert begin["tbsEncoding"] == "NONE"
    assert begin["hashAlgorithm"] == "SHA256"
    assert begin["expires_in"] == 120
    assert len(begin["login_id"]) >= 40 and "nonce:" in begin["tbs"]
    with app.app_context():
        stored = db.session.get(CardLogin, begin["login_id"])
        assert stored.tbs == begin["tbs"] and stored.consumed_at is None


@pytest.mark.parametrize("signature_type", ["PKCS7", "PKCS1"])
def test_an_unknown_valid_card_asks_for_registration(client, pki, app, signature_type):
    response = card_login(client, pki, card_of(pki, "A123456789"), signature_type)
    assert response.status_code == 200
    assert response.get_json() == {"status": "registration_required"}
    [event] = _events(app, "card:login:success")
    assert event.details["registration_required"] is True


@pytest.mark.parametrize("signature_type", ["PKCS7", "PKCS1"])
def test_a_registered_card_logs_in_with_a_fresh_session(client, pki, app, signature_type):
    assert register(client, pki).status_code == 201
    client.post("/api/v1/logout")
    client.raw.set_cookie("mocert_session", "planted-by-an-attacker")
    response = card_login(client, pki, card_of(pki, "A123456789"), signature_type)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "logged_in"
    assert body["account"]["national_id_masked"] == "A12****789"
    assert client.get("/api/v1/account").status_code == 200
    assert response.headers.get("Set-Cookie", "").startswith("mocert_session=")
    assert "planted-by-an-attacker" not in response.headers["Set-Cookie"]
    assert len(_events(app, "card:login:success")) == 2


def test_a_replayed_signature_is_refused(client, pki, app):
    begin = begin_card_login(client)
    signed = make_signature(pki, card_of(pki, "A123456789"), begin["tbs"])
    first = client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})
    again = client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})
    assert first.status_code == 200
    assert again.status_code == 409 and again.get_json()["error"] == "replayed"
    with app.app_context():
        assert db.session.get(CardLogin, begin["login_id"]).outcome == "registration_required"
    assert _events(app, "card:login:failure")[-1].details["reason"] == "replayed"


def test_an_expired_challenge_is_refused_and_used_up(client, pki, app):
    begin = begin_card_login(client)
    with app.app_context():
        db.session.execute(
            update(CardLogin).where(CardLogin.id == begin["login_id"]).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    signed = make_signature(pki, card_of(pki, "A123456789"), begin["tbs"])
    response = client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})
    assert response.status_code == 410 and response.get_json()["error"] == "challenge_expired"
    again = client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})
    assert again.get_json()["error"] == "replayed"


def test_a_login_id_that_was_never_issued_is_refused(client, pki):
    signed = make_signature(pki, card_of(pki, "A123456789"), "anything")
    response = client.post("/api/v1/card-login/complete", json={"login_id": "no-such-login", **signed})
    assert response.status_code == 404 and response.get_json()["error"] == "challenge_unknown"


def test_a_signature_over_the_wrong_tbs_is_refused(client, pki, app):
    begin = begin_card_login(client)
    other = begin_card_login(client)
    signed = make_signature(pki, card_of(pki, "A123456789"), other["tbs"])
    response = client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})
    assert response.status_code == 401 and response.get_json()["error"] == "tbs_mismatch"
    with app.app_context():
        assert db.session.get(CardLogin, begin["login_id"]).outcome == "tbs_mismatch"


@pytest.mark.parametrize("signature_type", ["PKCS7", "PKCS1"])
def test_a_tampered_signature_is_refused(client, pki, signature_type):
    import base64

    begin = begin_card_login(client)
    signed = make_signature(pki, card_of(pki, "A123456789"), begin["tbs"], signature_type)
    raw = bytearray(base64.b64decode(signed["signature"]))
    raw[-5] ^= 0xFF
    signed["signature"] = base64.b64encode(bytes(raw)).decode()
    response = client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})
    assert response.status_code == 401 and response.get_json()["error"] == "bad_signature"


@pytest.mark.parametrize(
    ("national_id", "status", "http_status", "code"),
    [
        ("F131313136", "expired", 401, "certificate_expired"),
        ("K120000006", "revoked", 401, "certificate_revoked"),
    ],
)
def test_expired_and_revoked_cards_cannot_log_in(client, pki, app, national_id, status, http_status, code):
    response = card_login(client, pki, card_of(pki, national_id, status))
    assert response.status_code == http_status
    assert response.get_json()["error"] == code
    assert response.get_json()["message"]
    [event] = _events(app, "card:login:failure")
    assert event.details["reason"] == code


def test_when_the_ocsp_responder_is_down_the_crl_still_decides(client, pki, revocation_server):
    revocation_server.down.add("ocsp")
    assert card_login(client, pki, card_of(pki, "A123456789")).status_code == 200
    assert card_login(client, pki, card_of(pki, "K120000006", "revoked")).get_json()["error"] == "certificate_revoked"


def test_when_revocation_cannot_be_checked_the_login_fails_clearly(client, pki, revocation_server):
    revocation_server.down.update({"ocsp", "crl"})
    response = card_login(client, pki, card_of(pki, "A123456789"))
    assert response.status_code == 503
    assert response.get_json()["error"] == "revocation_unknown"
    assert "try again later" in response.get_json()["message"].lower() or "稍後" in response.get_json()["message"]


def test_a_card_from_an_unknown_issuer_is_refused(client, tmp_path):
    from iccard.demo_pki import DemoPKI

    stranger = DemoPKI.create(tmp_path / "stranger", "http://127.0.0.1:9")
    response = card_login(client, stranger, stranger.cards[0])
    assert response.status_code == 401 and response.get_json()["error"] == "unknown_issuer"


@pytest.mark.parametrize(
    "change",
    [
        {"signature": "%%% not base64 %%%"},
        {"signature": "MIIB"},  # base64, but not DER
        {"signatureType": "PKCS1", "certb64": "bm90IGEgY2VydA=="},  # certb64 is not a certificate
    ],
)
def test_malformed_base64_and_der_are_400_and_use_up_nothing(client, app, pki, change):
    begin = begin_card_login(client)
    signed = {**make_signature(pki, card_of(pki, "A123456789"), begin["tbs"]), **change}
    response = client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})
    assert response.status_code == 400 and response.get_json()["error"] == "malformed_input"
    assert _events(app, "card:login:failure")[-1].details["reason"] == "malformed_input"
    assert _unspent(app, begin["login_id"])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"login_id": 12, "signatureType": "PKCS7", "signature": "x"},
        {"login_id": "x", "signatureType": "RAW", "signature": "x"},
        {"login_id": "x", "signatureType": "PKCS7", "signature": ["x"]},
        ["not", "an", "object"],
    ],
)
def test_requests_of_the_wrong_shape_are_400_and_use_up_nothing(client, app, body):
    begin = begin_card_login(client)
    if isinstance(body, dict) and body.get("login_id") == "x":
        body["login_id"] = begin["login_id"]
    response = client.post("/api/v1/card-login/complete", json=body)
    assert response.status_code == 400 and response.get_json()["error"] == "malformed_input"
    with app.app_context():
        assert db.session.get(CardLogin, begin["login_id"]).consumed_at is None


def test_a_body_that_is_not_json_is_400(client):
    response = client.post("/api/v1/card-login/complete", data="login_id=x", content_type="text/plain")
    assert response.status_code == 400 and response.get_json()["error"] == "malformed_input"


def test_an_oversized_body_is_413(client):
    response = client.post("/api/v1/card-login/complete", json={"signature": "A" * (128 * 1024)})
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


def test_state_changing_requests_need_the_csrf_token(client):
    response = client.raw.post("/api/v1/card-login/begin")
    assert response.status_code == 400 and response.get_json()["error"] == "csrf_failed"


def test_logout_ends_the_server_session_so_a_copied_cookie_is_worthless(client, pki, app):
    register(client, pki)
    cookie = client.raw.get_cookie("mocert_session").value
    assert client.post("/api/v1/logout").status_code == 200
    client.raw.set_cookie("mocert_session", cookie)  # someone kept a copy of the old cookie
    response = client.get("/api/v1/account")
    assert response.status_code == 401 and response.get_json()["error"] == "login_required"
    assert len(_events(app, "session:logout")) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuthSession).where(AuthSession.ended_at.is_(None))) == 0


def test_card_login_is_rate_limited_per_client(app_config, pki):
    from app import create_app
    from app.extensions import db as database
    from tests.support import ApiClient

    app_config.RATELIMIT_ENABLED = True
    app_config.CARD_LOGIN_RATE_LIMIT = "3/minute"
    app = create_app(app_config)
    with app.app_context():
        database.create_all()
    client = ApiClient(app.test_client())
    statuses = [client.post("/api/v1/card-login/begin").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    with app.app_context():
        database.drop_all()


def test_two_racing_completions_of_one_challenge_log_in_once(client, pki, app):
    import threading

    from tests.factories import make_account

    with app.app_context():
        make_account(pki, card_of(pki, "A123456789"))
    begin = begin_card_login(client)
    signed = make_signature(pki, card_of(pki, "A123456789"), begin["tbs"])
    token = client.csrf()
    statuses = []

    def attempt():
        response = client.raw.post(
            "/api/v1/card-login/complete",
            json={"login_id": begin["login_id"], **signed},
            headers={"X-CSRF-Token": token},
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 409, 409, 409]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuthSession)) == 1


def test_a_new_login_ends_the_session_it_replaces(client, pki, app):
    from tests.factories import make_account

    with app.app_context():
        make_account(pki, card_of(pki, "A123456789"))
    card_login(client, pki, card_of(pki, "A123456789"))
    old_cookie = client.raw.get_cookie("mocert_session").value
    card_login(client, pki, card_of(pki, "A123456789"))
    with app.app_context():
        live = db.session.scalar(select(func.count()).select_from(AuthSession).where(AuthSession.ended_at.is_(None)))
    assert live == 1
    client.raw.set_cookie("mocert_session", old_cookie)
    assert client.get("/api/v1/account").status_code == 401


# -- a stranger's certificate: nothing fetched, nothing spent -------------------------------------


def _der(certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return certificate.public_bytes(Encoding.DER)


def _complete_as(client, key, certificate_der, signature_type="PKCS7"):
    begin = begin_card_login(client)
    signed = forged.sign_as(key, certificate_der, begin["tbs"], signature_type)
    return begin, client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})


def _unspent(app, login_id) -> bool:
    with app.app_context():
        login = db.session.get(CardLogin, login_id)
        return login.consumed_at is None and login.outcome is None


@pytest.mark.parametrize("signature_type", ["PKCS7", "PKCS1"])
@pytest.mark.parametrize("kind", ["self_signed", "from_an_unconfigured_ca", "forged_in_the_issuing_ca_name"])
def test_a_certificate_no_configured_ca_issued_makes_the_server_fetch_nothing(
    client, app, pki, revocation_server, request_recorder, kind, signature_type
):
    stranger = forged.STRANGERS[kind](pki, request_recorder.url)
    begin, response = _complete_as(client, stranger.key, _der(stranger.certificate), signature_type)
    assert response.status_code == 401 and response.get_json()["error"] == "unknown_issuer"
    assert request_recorder.requests == [] and revocation_server.requests == []
    [event] = _events(app, "card:login:failure")
    assert event.details["reason"] == "unknown_issuer"
    assert _unspent(app, begin["login_id"])  # refused before the challenge was used


def test_a_demo_card_whose_revocation_host_is_not_allowed_is_not_checked_there(
    client, app, pki, revocation_server, request_recorder
):
    card = forged.issued_by_the_demo_ca(pki, request_recorder.url)
    _, response = _complete_as(client, card.key, _der(card.certificate))
    assert response.status_code == 503 and response.get_json()["error"] == "revocation_unknown"
    assert request_recorder.requests == []
    assert _events(app, "card:login:failure")[-1].details["reason"] == "revocation_unknown"


def test_the_demo_pki_address_is_an_allowed_revocation_host_while_this_server_serves_it(app_config, pki):
    from app.wiring import trust_settings

    app_config.CARD_REVOCATION_HOSTS = ("https://crl-moica.moi.gov.tw",)
    settings = trust_settings(vars(app_config))
    assert set(settings.revocation_origins) == {"https://crl-moica.moi.gov.tw", pki.manifest["base_url"]}
    app_config.SERVE_DEMO_PKI = False
    assert trust_settings(vars(app_config)).revocation_origins == ("https://crl-moica.moi.gov.tw",)


def test_revocation_hosts_are_read_from_the_environment(monkeypatch):
    from config import TestingConfig

    monkeypatch.setenv("MOCERT_CARD_REVOCATION_HOSTS", "https://crl-moica.moi.gov.tw, http://OCSP.moica.example:8080")
    assert TestingConfig().CARD_REVOCATION_HOSTS == ("https://crl-moica.moi.gov.tw", "http://ocsp.moica.example:8080")
    # A mistyped value stops the server at start, not at the first card login.
    monkeypatch.setenv("MOCERT_CARD_REVOCATION_HOSTS", "crl-moica.moi.gov.tw")
    with pytest.raises(SystemExit, match="MOCERT_CARD_REVOCATION_HOSTS"):
        TestingConfig()


# -- a card certificate with a defect: a clear 4xx, audited, the challenge unspent -----------------


@pytest.mark.parametrize("signature_type", ["PKCS7", "PKCS1"])
@pytest.mark.parametrize(
    ("defect", "http_status", "code"),
    [
        ("ed25519_key", 401, "certificate_not_accepted"),
        ("unknown_key_algorithm", 401, "certificate_not_accepted"),
        ("duplicated_extension", 400, "malformed_input"),
        ("truncated_extension", 400, "malformed_input"),
        ("garbled_extension", 400, "malformed_input"),
    ],
)
def test_a_card_certificate_with_a_defect_is_refused_before_the_challenge_is_used(
    client, app, pki, defect, http_status, code, signature_type
):
    card = card_of(pki, "A123456789")
    begin, response = _complete_as(client, pki.card_key(card), forged.with_defect(pki, card, defect), signature_type)
    assert response.status_code == http_status, response.get_json()
    assert response.get_json()["error"] == code and response.get_json()["message"]
    [event] = _events(app, "card:login:failure")
    assert event.details["reason"] == code and event.details["login_id"] == begin["login_id"]
    assert _unspent(app, begin["login_id"])
    # The challenge is still good for the real card.
    signed = make_signature(pki, card, begin["tbs"], signature_type)
    again = client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})
    assert again.status_code == 200 and again.get_json()["status"] == "registration_required"


# -- cards of the real MOICA profile (our keys, the real CAs' subjects and extensions), G2 and G3 ----------

_moica_numbers = itertools.count(1)


def _moica_card(moica_pki, **options):
    return moica_pki.issue_card("李大同", "A234567891", f"LOGI{next(_moica_numbers):012d}", **options)


def _of_generation(moica_pki, generation):
    return next(c for c in moica_pki.cards if c.generation == generation and c.card_number.startswith("MOIC"))


@pytest.mark.parametrize("generation", ["G2", "G3"])
def test_a_moica_card_with_digital_signature_alone_logs_in_with_both_generations_trusted(
    moica_client, moica_pki, revocation_server, generation
):
    card = _of_generation(moica_pki, generation)
    usage = moica_pki.card_certificate(card).extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.content_commitment
    response = card_login(moica_client, moica_pki, card)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "registration_required"}
    # Asked over HTTP: the card's status at MOICA, and MOICA's at GRCA.
    assert any(p.endswith("/moica-profile/moica/ocsp") for p in revocation_server.requests)
    assert any("/moica-profile/grca/" in p or "/moica-profile/GRCA-" in p for p in revocation_server.requests)


def test_g2_and_g3_cards_are_told_apart_by_authority_key_identifier(moica_client, moica_pki, app):
    g2, g3 = (moica_pki.card_certificate(_of_generation(moica_pki, g)) for g in ("G2", "G3"))
    assert g2.issuer == g3.issuer  # the same MOICA name: only the key identifier differs
    aki = {c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier for c in (g2, g3)}
    assert aki == {
        moica_pki.certificate(f"MOICA-{g}").extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        for g in ("G2", "G3")
    }
    for generation in ("G2", "G3"):
        assert card_login(moica_client, moica_pki, _of_generation(moica_pki, generation)).status_code == 200


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"key_usage": x509.KeyUsage(False, True, False, False, False, False, False, False, False)},
                     id="nonRepudiation-without-digitalSignature"),
        pytest.param({"key_usage": x509.KeyUsage(False, False, True, True, False, False, False, False, False)},
                     id="encryption-usage"),
        pytest.param({"policy": False}, id="without-the-moica-policy"),
    ],
)
def test_a_moica_card_without_digital_signature_or_the_policy_is_refused(moica_client, moica_pki, app, options):
    response = card_login(moica_client, moica_pki, _moica_card(moica_pki, **options))
    assert response.status_code == 401 and response.get_json()["error"] == "certificate_not_accepted"


def test_a_card_whose_key_identifier_names_g3_but_that_g2_signed_is_refused(moica_client, moica_pki, revocation_server):
    response = card_login(moica_client, moica_pki, _moica_card(moica_pki, generation="G3", signed_by="G2"))
    assert response.status_code == 401 and response.get_json()["error"] == "unknown_issuer"
    assert revocation_server.requests == []


# -- the issuing CA's own status, at GRCA ------------------------------------------------------------------


@pytest.mark.parametrize(("language", "says"), [("en", "certification authority that issued this card"),
                                                ("zh-TW", "簽發此卡片的憑證機構")])
@pytest.mark.parametrize("generation", ["G2", "G3"])
def test_with_grca_unreachable_and_nothing_cached_the_login_is_refused_saying_so(
    moica_client, moica_pki, revocation_server, app, generation, language, says
):
    revocation_server.down.update({"root-ocsp", "root-crl"})
    moica_client.raw.set_cookie("mocert_lang", language)
    begin = begin_card_login(moica_client)
    signed = make_signature(moica_pki, _of_generation(moica_pki, generation), begin["tbs"])
    response = moica_client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})
    assert response.status_code == 503
    assert response.get_json()["error"] == "issuer_revocation_unknown"
    assert says in response.get_json()["message"]
    # Audited with its reason, and the challenge's outcome written with it (one transaction, see _refused).
    [event] = _events(app, "card:login:failure")
    assert event.details["reason"] == "issuer_revocation_unknown"
    assert event.details["login_id"] == begin["login_id"]
    with app.app_context():
        assert db.session.get(CardLogin, begin["login_id"]).outcome == "issuer_revocation_unknown"


def test_with_grca_unreachable_a_cached_answer_keeps_logins_working_until_cleared(
    moica_client, moica_app_config, moica_pki, revocation_server
):
    from app import create_app

    card = _of_generation(moica_pki, "G3")
    assert card_login(moica_client, moica_pki, card).status_code == 200  # GRCA up: its answer is cached
    revocation_server.down.update({"root-ocsp", "root-crl"})
    revocation_server.requests.clear()
    assert card_login(moica_client, moica_pki, card).status_code == 200
    assert not any("/moica-profile/grca/" in p or "/moica-profile/GRCA-" in p for p in revocation_server.requests)
    # A server started afresh has nothing cached: the same card is refused while GRCA is unreachable.
    restarted = create_app(moica_app_config)
    response = card_login(ApiClient(restarted.test_client()), moica_pki, card)
    assert response.status_code == 503 and response.get_json()["error"] == "issuer_revocation_unknown"
    with restarted.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize(
    ("down", "still_asked"),
    [
        ("root-ocsp", "/moica-profile/GRCA-G3.crl"),  # GRCA's OCSP down: its CRL decides
        ("root-crl", "/moica-profile/grca/ocsp"),  # GRCA's CRL down: its OCSP decides
        ("crl", "/moica-profile/moica/ocsp"),  # the card's CRL down: MOICA's OCSP decides
    ],
)
def test_with_one_of_two_revocation_sources_down_a_g3_card_still_logs_in(
    moica_client, moica_pki, revocation_server, down, still_asked
):
    revocation_server.down.add(down)
    response = card_login(moica_client, moica_pki, _of_generation(moica_pki, "G3"))
    assert response.status_code == 200, response.get_json()
    assert any(p.endswith(still_asked) for p in revocation_server.requests)


def test_a_forged_grca_answer_served_once_does_not_refuse_later_logins(moica_client, moica_pki, revocation_server):
    # A man in the middle answers once for GRCA, OCSP and CRL, "good" for ten years under a key of its own: that
    # login is refused, and it leaves nothing behind, so the next login, on GRCA's real answers, goes through.
    from tests.forged_answers import grca_crl, grca_ocsp, serve_once

    card = _of_generation(moica_pki, "G3")
    ocsp = serve_once(revocation_server, "root-ocsp", grca_ocsp(moica_pki, "another_key"))
    crl = serve_once(revocation_server, "root-crl", grca_crl(moica_pki, "G3", "another_key"))
    response = card_login(moica_client, moica_pki, card)
    assert response.status_code == 503 and response.get_json()["error"] == "issuer_revocation_unknown"
    assert len(ocsp) == len(crl) == 1
    assert card_login(moica_client, moica_pki, card).status_code == 200
