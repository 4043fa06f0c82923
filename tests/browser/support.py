"""Helpers of the browser tests."""

from __future__ import annotations

from tests.factories import make_account
from tests.support import card_of

VIRTUAL_PHONE = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


def verified_account(app, pki, national_id="A123456789"):
    """The card holder's account, registered with a confirmed email (binding a phone needs one)."""
    from app.models import utcnow

    with app.app_context():
        make_account(pki, card_of(pki, national_id), email_verified_at=utcnow())
