"""Test helpers: a card that answers MakeSignature as the cross-platform component does."""

from __future__ import annotations

import base64
import os

import pytest

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7

from iccard.demo_pki import DemoCard, DemoPKI

def missing(reason: str) -> None:
    """A part of the machine a test needs is missing: skip, or fail under CI (where nothing may skip)."""
    if os.environ.get("CI"):
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


_HASHES = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}


def make_signature(pki: DemoPKI, card: DemoCard, tbs: str, signature_type: str = "PKCS7", hash_algorithm: str = "SHA256") -> dict:
    """The fields of the component's ``MakeSignature`` answer, signed with the demo card's key."""
    key, cert = pki.card_key(card), pki.card_certificate(card)
    data = tbs.encode("utf-8")
    algorithm = _HASHES[hash_algorithm]()
    if signature_type == "PKCS7":
        # Attached content, signed attributes, signer certificate inside: what HiPKI returns.
        signature = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(data)
            .add_signer(cert, key, algorithm)
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )
    else:
        signature = key.sign(data, padding.PKCS1v15(), algorithm)
    return {
        "func": "sign",
        "ret_code": 0,
        "last_error": 0,
        "signatureType": signature_type,
        "signature": base64.b64encode(signature).decode(),
        "certb64": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
        "cardSN": card.card_number,
    }


def card_of(pki: DemoPKI, national_id: str, status: str = "valid") -> DemoCard:
    return next(c for c in pki.cards if c.national_id == national_id and c.status == status)


def begin_card_login(client) -> dict:
    response = client.post("/api/v1/card-login/begin")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def card_login(client, pki: DemoPKI, card: DemoCard, signature_type: str = "PKCS7"):
    """Begin a card login, sign its challenge with the card as the component would, complete it."""
    begin = begin_card_login(client)
    signed = make_signature(pki, card, begin["tbs"], signature_type, begin["hashAlgorithm"])
    return client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **signed})


REGISTRATION = {"national_id": "A123456789", "email": "wang@example.com", "phone": "0912-345-678"}


def register(client, pki: DemoPKI, national_id: str = "A123456789", status: str = "valid", **fields):
    """Card login with an unknown card, then register; returns the registration response."""
    response = card_login(client, pki, card_of(pki, national_id, status))
    assert response.get_json()["status"] == "registration_required", response.get_json()
    return client.post("/api/v1/account/register", json={**REGISTRATION, "national_id": national_id, **fields})


def make_account(pki: DemoPKI, card: DemoCard, *, name: str | None = None, link_card: bool = True):
    """An account as an earlier registration with ``card`` left it (call inside an app context)."""
    from flask import current_app

    from app.extensions import db
    from app.models import Account, CardCertificate
    from iccard import national_id as nid
    from iccard.certificate import CitizenCertificate

    citizen = CitizenCertificate.from_certificate(pki.card_certificate(card))
    account = Account(
        national_id_hash=nid.keyed_hash(card.national_id, current_app.config["NATIONAL_ID_HMAC_KEY"].encode()),
        national_id_masked=nid.mask(card.national_id),
        name=name or card.name,
        email="person@example.com",
        phone="+886912345678",
    )
    db.session.add(account)
    if link_card:
        db.session.add(CardCertificate.from_citizen(citizen, account))
    db.session.commit()
    db.session.refresh(account)
    return account


def browser_card_login(page, base_url: str, pki: DemoPKI, national_id: str, status: str = "valid") -> dict:
    """A card login made with the browser page's own cookies, signed as the component would (the popup
    itself is tested with the agent)."""
    csrf = page.request.get(f"{base_url}/api/v1/csrf").json()["csrf_token"]
    begin = page.request.post(f"{base_url}/api/v1/card-login/begin", headers={"X-CSRF-Token": csrf}).json()
    signed = make_signature(pki, card_of(pki, national_id, status), begin["tbs"])
    response = page.request.post(
        f"{base_url}/api/v1/card-login/complete",
        data={"login_id": begin["login_id"], **signed},
        headers={"X-CSRF-Token": csrf},
    )
    return response.json()
