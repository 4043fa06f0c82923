"""Removing what has no use left: spent challenges, stale bindings, old email codes, dead OIDC tokens
and the national IDs sealed in them, and what agencies' finished requests held of their person.

Run from cron (``flask --app wsgi purge``); nothing on the login path pays for it. The audit trail keeps
the story of each of them: only the working rows go.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, exists, or_, select, update

from ..extensions import db
from ..models import (
    BackchannelLogout,
    Binding,
    CardLogin,
    Device,
    DeviceStatus,
    EmailVerification,
    InboxSession,
    LoginRequest,
    OidcAuthorizationCode,
    OidcClientAssertion,
    OidcToken,
    PushSubscription,
    SpRequest,
    utcnow,
)

KEEP = timedelta(days=1)


def purge() -> dict[str, int]:
    """Delete rows whose use ended more than a day ago; returns how many of each kind went."""
    cutoff = utcnow() - KEEP
    removed = {}
    # A card login proves a card for a pending registration for REGISTRATION_TTL (minutes), so a day is plenty.
    removed["card_logins"] = db.session.execute(
        delete(CardLogin).where(CardLogin.expires_at < cutoff, CardLogin.registered_at.is_(None))
    ).rowcount
    removed["login_requests"] = db.session.execute(delete(LoginRequest).where(LoginRequest.expires_at < cutoff)).rowcount
    removed["bindings"] = db.session.execute(
        delete(Binding).where(Binding.expires_at < cutoff, Binding.completed_at.is_(None))
    ).rowcount
    # An inbox that was never opened ends with its challenge; an opened one with its token.
    removed["inbox_sessions"] = db.session.execute(
        delete(InboxSession).where(
            InboxSession.expires_at < cutoff,
            or_(InboxSession.access_expires_at.is_(None), InboxSession.access_expires_at < cutoff),
        )
    ).rowcount
    # An unbound phone is sent no notice again.
    removed["push_subscriptions"] = db.session.execute(
        delete(PushSubscription).where(PushSubscription.device_id.in_(
            select(Device.id).where(Device.status == DeviceStatus.REVOKED.value)))
    ).rowcount
    removed["email_verifications"] = db.session.execute(
        delete(EmailVerification).where(
            or_(EmailVerification.verified_at < cutoff, EmailVerification.expires_at < cutoff)
        )
    ).rowcount
    # A back-channel logout sent or given up: its story is in the audit trail.
    removed["backchannel_logouts"] = db.session.execute(
        delete(BackchannelLogout).where(or_(BackchannelLogout.sent_at < cutoff, BackchannelLogout.failed_at < cutoff))
    ).rowcount
    # A national ID sealed in a row that stays (kept to spot a replay) goes once the row can no longer be
    # used: a code used or expired, a token revoked or expired with its refresh token.
    now = utcnow()
    removed["oidc_sealed_national_ids"] = db.session.execute(
        update(OidcAuthorizationCode)
        .where(
            OidcAuthorizationCode.national_id_sealed.isnot(None),
            or_(OidcAuthorizationCode.used_at.isnot(None), OidcAuthorizationCode.expires_at < now),
        )
        .values(national_id_sealed=None)
    ).rowcount + db.session.execute(
        update(OidcToken)
        .where(
            OidcToken.national_id_sealed.isnot(None),
            or_(
                OidcToken.revoked_at.isnot(None),
                and_(
                    OidcToken.expires_at < now,
                    or_(OidcToken.refresh_expires_at.is_(None), OidcToken.refresh_expires_at < now),
                ),
            ),
        )
        .values(national_id_sealed=None)
    ).rowcount
    # Tokens whose every use is over (the refresh token too, when there is one)…
    removed["oidc_tokens"] = db.session.execute(
        delete(OidcToken).where(
            or_(
                and_(OidcToken.refresh_token_hash.is_(None), OidcToken.expires_at < cutoff),
                OidcToken.refresh_expires_at < cutoff,
            )
        )
    ).rowcount
    # …then the codes they came from: a used code is kept while its tokens live, to revoke them on replay.
    removed["oidc_codes"] = db.session.execute(
        delete(OidcAuthorizationCode).where(
            OidcAuthorizationCode.expires_at < cutoff,
            ~exists(select(OidcToken.id).where(OidcToken.authorization_code_id == OidcAuthorizationCode.id)),
        )
    ).rowcount
    removed["oidc_client_assertions"] = db.session.execute(
        delete(OidcClientAssertion).where(OidcClientAssertion.expires_at < cutoff)
    ).rowcount
    # An agency's request stays (its transaction_id is single use for good), but what identifies the person
    # goes once no poll can read it: hashed_id_num (the contract's plain SHA-256, which the ~10^9 valid IDs
    # cannot hide), the signed response and the phone's certificate.
    removed["sp_request_results"] = db.session.execute(
        update(SpRequest)
        .where(
            SpRequest.expires_at < cutoff,
            or_(SpRequest.hashed_id_num.isnot(None), SpRequest.signed_response.isnot(None), SpRequest.cert.isnot(None)),
        )
        .values(hashed_id_num=None, signed_response=None, cert=None)
    ).rowcount
    db.session.commit()
    return removed
