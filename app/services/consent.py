"""Consent at ``/authorize``: what a site asks of the person, whether they granted it before, their answer.

A grant is remembered per person and site as the union of the scopes granted so far, so the site's next
login for the same scopes goes through without the page. ``prompt=consent`` asks again, and a site
allowed the full national ID that asks for it gets the page every time: the person types the ID there
(``app/oidc/national_id.py``), since MoCert cannot read it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..audit import Tags, record
from ..extensions import db
from ..models import Account, OidcClient, OidcConsent, utcnow
from ..oidc.claims import releases_national_id


@dataclass(frozen=True)
class ConsentRequest:
    client: OidcClient
    scopes: list[str]  # as the site asked for them
    asks_national_id: bool  # the full ID, typed by the person on the page
    granted_before: bool  # an earlier grant covers these scopes and the site did not ask again

    @property
    def needs_answer(self) -> bool:
        """Whether the person must answer on the consent page before the site hears back."""
        return self.asks_national_id or not self.granted_before


def request_for(account: Account, client: OidcClient, scopes: list[str], *, ask_again: bool = False) -> ConsentRequest:
    """What ``client`` asks of ``account`` for ``scopes``; ``ask_again``: the request said ``prompt=consent``."""
    earlier = _consent(account, client)
    granted_before = earlier is not None and set(scopes) <= set(earlier.scopes) and not ask_again
    return ConsentRequest(client=client, scopes=list(scopes), asks_national_id=releases_national_id(client, scopes),
                          granted_before=granted_before)


def grant(account: Account, asked: ConsentRequest) -> None:
    """The person approved (committed): the scopes join those granted to the site before."""
    consent = _consent(account, asked.client)
    if consent is None:
        consent = OidcConsent(account_id=account.id, client_id=asked.client.id, scopes=[])
        db.session.add(consent)
    consent.scopes = sorted(set(consent.scopes) | set(asked.scopes))
    consent.granted_at = utcnow()
    record(Tags.OIDC_CONSENT_GRANTED, account=account, client=asked.client.client_id, scopes=asked.scopes)
    db.session.commit()


def deny(account: Account, asked: ConsentRequest) -> None:
    """The person declined (committed); what they granted before stays."""
    record(Tags.OIDC_CONSENT_DENIED, account=account, client=asked.client.client_id, scopes=asked.scopes)
    db.session.commit()


def _consent(account: Account, client: OidcClient) -> OidcConsent | None:
    return db.session.scalar(
        select(OidcConsent).where(OidcConsent.account_id == account.id, OidcConsent.client_id == client.id)
    )
