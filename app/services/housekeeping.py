"""Removing what has no use left: spent challenges, stale bindings, old email codes.

Run from cron (``flask --app wsgi purge``); nothing on the login path pays for it. The audit trail keeps
the story of each of them: only the working rows go.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_

from ..extensions import db
from ..models import Binding, CardLogin, EmailVerification, utcnow

KEEP = timedelta(days=1)


def purge() -> dict[str, int]:
    """Delete rows whose use ended more than a day ago; returns how many of each kind went."""
    cutoff = utcnow() - KEEP
    removed = {}
    # A card login proves a card for a pending registration for REGISTRATION_TTL (minutes), so a day is plenty.
    removed["card_logins"] = db.session.execute(
        delete(CardLogin).where(CardLogin.expires_at < cutoff, CardLogin.registered_at.is_(None))
    ).rowcount
    removed["bindings"] = db.session.execute(
        delete(Binding).where(Binding.expires_at < cutoff, Binding.completed_at.is_(None))
    ).rowcount
    removed["email_verifications"] = db.session.execute(
        delete(EmailVerification).where(
            or_(EmailVerification.verified_at < cutoff, EmailVerification.expires_at < cutoff)
        )
    ).rowcount
    db.session.commit()
    return removed
