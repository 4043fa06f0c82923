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
