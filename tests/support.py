"""Test helpers: a card that answers MakeSignature as the cross-platform component does."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7

from iccard.demo_pki import DemoCard, DemoPKI

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
