"""`flask purge` removes spent working rows and keeps what is still of use."""

from datetime import timedelta

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import CardLogin, EmailVerification, utcnow
from tests.support import begin_card_login, register


def test_purge_removes_spent_challenges_and_old_codes_but_keeps_live_ones(client, pki, app):
    register(client, pki)  # leaves a used card login (registered) and an email code
    stale = begin_card_login(client)["login_id"]
    fresh = begin_card_login(client)["login_id"]
    with app.app_context():
        db.session.execute(
            update(CardLogin).where(CardLogin.id == stale).values(expires_at=utcnow() - timedelta(days=2))
        )
        db.session.execute(update(EmailVerification).values(expires_at=utcnow() - timedelta(days=2)))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0 and "card_logins: 1 removed" in result.output
    with app.app_context():
        assert db.session.get(CardLogin, stale) is None
        assert db.session.get(CardLogin, fresh) is not None
        assert db.session.scalar(select(func.count()).select_from(CardLogin).where(CardLogin.registered_at.isnot(None))) == 1
        assert db.session.scalar(select(func.count()).select_from(EmailVerification)) == 0


def test_purge_keeps_codes_whose_tokens_live_and_drops_dead_tokens(app):
    from app.models import Account, AuthSession, OidcAuthorizationCode, OidcClient, OidcToken

    old = utcnow() - timedelta(days=3)
    with app.app_context():
        account = Account(national_id_hash="h" * 64, national_id_masked="A12****789", name="n", email="e@x.tw", phone="+886912345678")
        session = AuthSession(token_hash="t" * 64, account=account, method="card", expires_at=old)
        client = OidcClient(client_id="c", name="c", redirect_uris=["https://rp.example/cb"], token_endpoint_auth_method="none", sector="rp.example")
        db.session.add_all([account, session, client])
        db.session.flush()

        def code(tag):
            row = OidcAuthorizationCode(code_hash=tag * 64, client_id=client.id, account_id=account.id,
                                        auth_session_id=session.id, auth_method="card", redirect_uri="https://rp.example/cb",
                                        scope="openid", auth_time=old, acr="a", amr=[], expires_at=old, used_at=old)
            db.session.add(row)
            db.session.flush()
            return row

        kept, dropped = code("k"), code("d")
        db.session.add_all([
            OidcToken(client_id=client.id, account_id=account.id, auth_method="card", authorization_code_id=kept.id,
                      access_token_hash="1" * 64, refresh_token_hash="2" * 64, scope="openid", expires_at=old,
                      refresh_expires_at=utcnow() + timedelta(days=10)),
            OidcToken(client_id=client.id, account_id=account.id, auth_method="card", authorization_code_id=dropped.id,
                      access_token_hash="3" * 64, scope="openid", expires_at=old),
        ])
        db.session.commit()
        kept_id, dropped_id = kept.id, dropped.id
    result = app.test_cli_runner().invoke(args=["purge"])
    assert "oidc_tokens: 1 removed" in result.output and "oidc_codes: 1 removed" in result.output
    with app.app_context():
        assert db.session.get(OidcAuthorizationCode, kept_id) is not None
        assert db.session.get(OidcAuthorizationCode, dropped_id) is None


def test_purge_removes_spent_inbox_sessions_and_the_subscriptions_of_unbound_phones(app, issuer, phone):
    from app.models import Device, InboxSession, PushSubscription
    from app.services.tokens import digest
    from app.wiring import parts

    from .inbox_client import PhoneInbox

    open_one, spent = PhoneInbox(issuer, phone), PhoneInbox(issuer, phone)
    assert open_one.open().status_code == 200 and spent.open().status_code == 200
    PhoneInbox(issuer, phone).options()  # asked for, never answered
    with app.app_context():
        device = db.session.scalar(select(Device))
        db.session.add(PushSubscription(device_id=device.id, endpoint="https://fcm.googleapis.com/fcm/send/x",
                                        p256dh="k", auth="a"))
        long_ago = utcnow() - timedelta(days=2)
        db.session.execute(update(InboxSession).where(InboxSession.access_hash.is_(None)).values(expires_at=long_ago))
        db.session.execute(update(InboxSession).where(InboxSession.access_hash == digest(spent.token)).values(
            expires_at=long_ago, access_expires_at=long_ago))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["purge"])
    assert "inbox_sessions: 2 removed" in result.output and "push_subscriptions: 0 removed" in result.output
    assert open_one.listing().status_code == 200
    with app.app_context():
        parts().devices.revoke(db.session.scalar(select(Device)), actor="test", reason="lost")
    result = app.test_cli_runner().invoke(args=["purge"])
    assert "push_subscriptions: 1 removed" in result.output


def test_purge_keeps_an_agencys_finished_request_but_forgets_who_it_was(app, issuer, agency, phone):
    from app.models import SpRequest

    old = agency.ticket("A123456789").result["sp_ticket"]
    assert phone.approve_sp(phone.sp_request(issuer, old)) == {"status": "approved"}
    recent = agency.ticket("A123456789").result["sp_ticket"]
    assert phone.approve_sp(phone.sp_request(issuer, recent)) == {"status": "approved"}
    with app.app_context():
        first = db.session.scalars(select(SpRequest).order_by(SpRequest.id)).first()
        first.expires_at = utcnow() - timedelta(days=2)
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["purge"])
    assert "sp_request_results: 1 removed" in result.output
    with app.app_context():
        kept, live = db.session.scalars(select(SpRequest).order_by(SpRequest.id)).all()
        assert (kept.hashed_id_num, kept.signed_response, kept.cert) == (None, None, None)
        assert kept.transaction_id  # still there: the transaction_id stays spent
        assert live.hashed_id_num and live.signed_response and live.cert
    assert agency.result(recent).code == "0"
