"""The state tests start from, built one way: accounts, their cards, devices, relying parties, agencies.

Plain functions, called inside an app context (the OIDC client goes through ``flask clients add`` and the
agency through ``flask agencies add``, as a deployment registers them). Each builds what an earlier flow
would have left in the database, so a test can start from it instead of replaying the flow.
"""

from __future__ import annotations

import json
import secrets

from iccard.certificate import CitizenCertificate
from iccard.demo_pki import DemoCard, DemoPKI

RP = "https://rp.example"
ADMIN_ID = "B223456782"  # 陳美玲
AUDITOR_ID = "F131313136"  # 林志豪


def make_card_certificate(pki: DemoPKI, card: DemoCard, account=None):
    """The card certificate row a card login with ``card`` records (linked to ``account`` if given)."""
    from app.models import CardCertificate

    return CardCertificate.from_citizen(CitizenCertificate.from_certificate(pki.card_certificate(card)), account)


def make_account(pki: DemoPKI, card: DemoCard, *, name: str | None = None, link_card: bool = True,
                 email: str = "person@example.com", phone: str = "+886912345678", email_verified_at=None,
                 role: str | None = None):
    """An account as an earlier registration with ``card`` left it (committed, refreshed)."""
    from flask import current_app

    from app.extensions import db
    from app.models import Account
    from app.services.tokens import NationalIdHash
    from iccard import national_id as nid

    national_id_hash = NationalIdHash(current_app.config["NATIONAL_ID_HMAC_KEY"].encode())
    account = Account(
        national_id_hash=national_id_hash(card.national_id),
        national_id_masked=nid.mask(card.national_id),
        name=name or card.name,
        email=email,
        phone=phone,
        email_verified_at=email_verified_at,
        role=role,
    )
    db.session.add(account)
    if link_card:
        db.session.add(make_card_certificate(pki, card, account))
    db.session.commit()
    db.session.refresh(account)
    return account


def make_device(account, *, name: str = "我的手機", status: str = "active", **columns):
    """A bound phone's row as the binding flow stores it, without a mobile certificate (committed)."""
    from app.extensions import db
    from app.models import Device

    device = Device(
        account_id=account.id,
        name=name,
        credential_id=columns.pop("credential_id", secrets.token_bytes(16)),
        public_key=columns.pop("public_key", b"cose-key"),
        aaguid=columns.pop("aaguid", "00000000-0000-0000-0000-000000000000"),
        attestation_format=columns.pop("attestation_format", "none"),
        attestation_type=columns.pop("attestation_type", "none"),
        status=status,
        **columns,
    )
    db.session.add(device)
    db.session.commit()
    db.session.refresh(device)
    return device


def make_oidc_client(app, *args: str) -> dict:
    """A relying party registered by ``flask clients add ARGS`` (by default "Example RP" at RP/cb); its JSON."""
    args = args or ("--name", "Example RP", "--redirect-uri", f"{RP}/cb")
    result = app.test_cli_runner().invoke(args=["clients", "add", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def make_agency(app, *args: str) -> dict:
    """An agency registered by ``flask agencies add ARGS`` (by default "臺灣雲市集", calls from anywhere); its
    JSON, with the API key that is printed only then."""
    args = args or ("--name", "臺灣雲市集")
    result = app.test_cli_runner().invoke(args=["agencies", "add", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def make_staff(app, pki) -> dict[str, int]:
    """陳美玲 an admin and 林志豪 an auditor, granted by ``flask admin grant`` as a deployment would: their
    account ids by role."""
    from app.extensions import db
    from app.models import Account
    from tests.support import card_of

    with app.app_context():
        make_account(pki, card_of(pki, ADMIN_ID))
        make_account(pki, card_of(pki, AUDITOR_ID))
    runner = app.test_cli_runner()
    for national_id, role in ((ADMIN_ID, "admin"), (AUDITOR_ID, "auditor")):
        result = runner.invoke(args=["admin", "grant", national_id, "--role", role])
        assert result.exit_code == 0, result.output
    with app.app_context():
        return {role: db.session.scalar(db.select(Account.id).where(Account.role == role)) for role in ("admin", "auditor")}
