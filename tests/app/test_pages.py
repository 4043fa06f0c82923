"""Pages, language choice, help contacts, health checks, CLI."""

import json

import pytest
from sqlalchemy import select

from app import wiring
from app.extensions import db
from app.models import AuditEvent
from tests.support import card_login, card_of


def test_pages_speak_traditional_chinese_by_default(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'lang="zh-Hant-TW"' in page and "以自然人憑證 IC 卡登入" in page


def test_accept_language_english_gets_english(client):
    page = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert 'lang="en"' in page and "Log in with your IC card" in page


def test_the_language_switch_is_remembered_and_is_no_open_redirect(client):
    response = client.get("/lang/en?next=//evil.example/")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Log in with your IC card" in client.get("/login").get_data(as_text=True)
    client.get("/lang/zh_Hant_TW?next=/help")
    assert "使用說明" in client.get("/help").get_data(as_text=True)


def test_api_errors_follow_the_language_too(client, pki):
    response = card_login(client, pki, card_of(pki, "K120000006", "revoked"))
    assert response.get_json()["message"] == "此卡片的憑證已被廢止。"


def test_help_lists_what_to_prepare_and_the_demo_hotline(client):
    page = client.get("/help", headers={"Accept-Language": "en"}).get_data(as_text=True)
    for needed in ("card reader", "cross-platform component", "Android 7", "iOS 14", "0800-080-117"):
        assert needed in page


def test_help_shows_the_contacts_a_deployment_configures(app, tmp_path):
    contacts = tmp_path / "contacts.json"
    contacts.write_text(json.dumps([{"name": "本機關服務台", "phone": "02-1234-5678", "hours": ["平日 9-17"], "url": ""}]))
    app.config["SUPPORT_CONTACTS"] = str(contacts)
    wiring.install(app)  # the contacts are read at startup
    page = app.test_client().get("/help").get_data(as_text=True)
    assert "本機關服務台" in page and "02-1234-5678" in page and "0800-080-117" not in page


def test_unknown_pages_are_404_pages_and_unknown_api_paths_json(client):
    assert client.get("/nope").status_code == 404
    response = client.get("/api/v1/nope")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"


def test_healthz_and_readyz_answer(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_database_does_not_answer(app_config):
    from app import create_app

    app_config.SQLALCHEMY_DATABASE_URI = "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2"
    response = create_app(app_config).test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["error"] == "database_unavailable"


def test_audit_events_record_ip_and_user_agent(client, pki, app):
    card_login(client, pki, card_of(pki, "A123456789"))
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.tag == "card:login:success"))
    assert event.ip == "127.0.0.1" and event.user_agent.startswith("Werkzeug")
    assert event.actor == "anonymous" and event.occurred_at.tzinfo is not None


def test_mail_also_goes_to_the_console_in_development(app, capsys, mailbox):
    from app.mail import send_mail

    app.config["MAIL_TO_CONSOLE"] = True
    with app.app_context():
        send_mail("someone@example.com", "subject line", "the body 123456")
    assert "the body 123456" in capsys.readouterr().out
    assert mailbox.messages[-1]["Subject"] == "subject line"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pki_init_demo_creates_the_demo_once(app, tmp_path):
    app.config["DEMO_PKI_DIR"] = tmp_path / "demo"
    runner = app.test_cli_runner()
    first = runner.invoke(args=["pki", "init-demo", "--base-url", "http://localhost:5000"])
    assert first.exit_code == 0 and "TEST000000000005" in first.output
    root = (tmp_path / "demo" / "root.pem").read_bytes()
    again = runner.invoke(args=["pki", "init-demo"])
    assert again.exit_code == 0 and "already" in again.output
    assert (tmp_path / "demo" / "root.pem").read_bytes() == root


def test_pages_cannot_be_framed_and_run_only_our_scripts(client):
    response = client.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_the_icon_is_named_by_every_page_and_found_at_the_old_address_too(client):
    page = client.get("/help")
    assert 'rel="icon" href="/static/favicon.svg"' in page.get_data(as_text=True)
    old = client.get("/favicon.ico")
    assert old.status_code == 301 and old.headers["Location"].endswith("/static/favicon.svg")
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"


def test_a_card_issuer_is_shown_by_its_name_and_only_moicas_name_is_moicas(app):
    from app.i18n import issuer_name
    from iccard.moica import MOICA_NAME

    with app.test_request_context(headers={"Accept-Language": "zh-TW"}):
        assert issuer_name(MOICA_NAME.rfc4514_string()) == "內政部憑證管理中心"
        assert issuer_name("CN=MoCert Demo MOICA,O=MoCert Demo,C=TW") == "MoCert Demo MOICA"  # the demo's is no MOICA
        assert issuer_name("O=Some CA,C=TW") == "Some CA" and issuer_name(None) == "—"
