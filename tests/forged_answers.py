"""Revocation answers a man in the middle might serve (OCSP and CRLs are fetched over plain HTTP), for the
tests that show none of them is kept: signed with the forger's own key, or the CA's real answer with its
signature altered; and an answer from a responder the CA really delegated to, which is kept.

``serve_once`` has the revocation server (tests/conftest.py) answer with one of them, once.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from iccard import ca_status
from iccard.demo_pki import DemoPKI, MoicaProfilePKI
from tests.forged import _key, _now

FORGERIES = ("another_key", "tampered")
TEN_YEARS = timedelta(days=3650)


def _tampered(der: bytes) -> bytes:
    return der[:-1] + bytes([der[-1] ^ 0x01])  # the last byte is the signature's


def _ocsp_signer(subject: x509.Name, issuer_name: x509.Name, key, signing_key, **extensions) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - timedelta(days=1))
        .not_valid_after(_now() + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    )
    for extension in extensions.values():
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def grca_ocsp(moica_pki: MoicaProfilePKI, how: str):
    """GRCA's OCSP answer about MOICA G3 as a forger makes it: "good" for ten years, signed with a key of its
    own (with a certificate in GRCA's name for OCSP signing, sent along); or GRCA's real answer, altered."""
    grca = moica_pki.certificate("GRCA-G3")

    def forge(body: bytes) -> bytes:
        if how == "tampered":
            return _tampered(moica_pki.ocsp_response("grca", body))
        key = _key()
        impostor = _ocsp_signer(grca.subject, grca.subject, key, key)
        return ca_status.answer(
            ca_status.load_ocsp_request(body), impostor, key, status=ocsp.OCSPCertStatus.GOOD, revocation=None,
            this_update=_now() - timedelta(minutes=1), next_update=_now() + TEN_YEARS, certificates=[impostor],
        )

    return forge


def grca_crl(moica_pki: MoicaProfilePKI, generation: str, how: str):
    """GRCA's CRL as a forger makes it: empty, valid for ten years, signed with its own key; or the real one,
    altered."""

    def forge(body: bytes) -> bytes:
        if how == "tampered":
            return _tampered(moica_pki.crl(f"GRCA-{generation}"))
        return ca_status.sign_crl(
            moica_pki.certificate(f"GRCA-{generation}"), _key(), [], number=1,
            this_update=_now() - timedelta(minutes=1), next_update=_now() + TEN_YEARS,
        )

    return forge


def demo_crl(pki: DemoPKI) -> bytes:
    """The demo CA's CRL as a forger makes it: empty, valid for ten years, in the CA's name, its own key."""
    return ca_status.sign_crl(
        pki.issuer_certificate, _key(), [], number=1, this_update=_now() - timedelta(minutes=1),
        next_update=_now() + TEN_YEARS,
    )


def grca_crl_lasting(moica_pki: MoicaProfilePKI, generation: str, lasts: timedelta):
    """GRCA's own CRL, genuinely signed, with a nextUpdate ``lasts`` away (GRCA's real ones hold 36 hours)."""
    grca = f"GRCA-{generation}"
    key = serialization.load_pem_private_key((moica_pki.directory / f"{grca}.key.pem").read_bytes(), None)

    def sign(body: bytes) -> bytes:
        return ca_status.sign_crl(
            moica_pki.certificate(grca), key, [], number=2, this_update=_now() - timedelta(minutes=1),
            next_update=_now() + lasts,
        )

    return sign


def delegated_demo_ocsp(pki: DemoPKI, issuer_key):
    """The demo CA's "good" answer, signed by an OCSP responder it certified (RFC 6960 4.2.2.2)."""
    key = _key()
    responder = _ocsp_signer(
        x509.Name.from_rfc4514_string("CN=Demo OCSP Responder,O=MoCert Demo,C=TW"),
        pki.issuer_certificate.subject,
        key,
        issuer_key,
        nocheck=x509.OCSPNoCheck(),
        aki=x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.issuer_certificate.public_key()),
    )

    def answer(body: bytes) -> bytes:
        return ca_status.answer(
            ca_status.load_ocsp_request(body), responder, key, status=ocsp.OCSPCertStatus.GOOD, revocation=None,
            this_update=_now() - timedelta(minutes=1), next_update=_now() + timedelta(hours=1),
            certificates=[responder],
        )

    return answer


def unknown_demo_ocsp(pki: DemoPKI, issuer_key):
    """The demo CA's own, genuine answer that it does not know the certificate ("unknown", RFC 6960 2.2)."""

    def answer(body: bytes) -> bytes:
        return ca_status.answer(
            ca_status.load_ocsp_request(body), pki.issuer_certificate, issuer_key, status=ocsp.OCSPCertStatus.UNKNOWN,
            revocation=None, this_update=_now() - timedelta(minutes=1), next_update=_now() + timedelta(hours=1),
        )

    return answer


def serve_once(revocation_server, part: str, forge) -> list[bytes]:
    """Have ``forge``'s answer served once for ``part``; the list returned fills with what was served (a forger
    that raised would have made a plain 500, not a forgery)."""
    served: list[bytes] = []

    def serve(body: bytes) -> bytes:
        served.append(forge(body))
        return served[-1]

    revocation_server.forged[part] = serve
    return served
