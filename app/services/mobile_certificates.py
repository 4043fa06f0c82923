"""Issuing mobile certificates (行動自然人憑證): X.509 certificates for a bound phone's credential key.

Valid one year from binding (or renewal), on the same calendar date; a certificate issued on 29 February
ends on 28 February. Independent of the card: nothing here looks at the card that proved the person.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from flask import Flask, current_app

import webauthn

CREDENTIAL_URN = "urn:mocert:credential:"


def one_year_later(moment: datetime) -> datetime:
    """The same calendar date a year on; 29 February becomes 28 February."""
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:  # 29 February into a common year
        return moment.replace(year=moment.year + 1, day=28)


@dataclass(frozen=True)
class MobileCA:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @classmethod
    def load(cls, certificate_path: str, key_path: str) -> MobileCA:
        certificate = x509.load_pem_x509_certificate(Path(certificate_path).read_bytes())
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), None)
        return cls(certificate, key)

    def issue(
        self, *, cose_public_key: bytes, name: str, pseudonym: str, credential_id: bytes, not_before: datetime
    ) -> x509.Certificate:
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, pseudonym),
            ]
        )
        credential = base64.urlsafe_b64encode(credential_id).rstrip(b"=").decode()
        public_key = webauthn.public_key_from_cose(cose_public_key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(one_year_later(not_before))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(CREDENTIAL_URN + credential)]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.certificate.public_key()), critical=False
            )
        )
        algorithm = None if isinstance(self.key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        return builder.sign(self.key, algorithm)


def pseudonym(national_id_hash: str) -> str:
    """A stable serial for the certificate subject that does not reveal (or lead to) the national ID."""
    key = current_app.config["NATIONAL_ID_HMAC_KEY"].encode()
    return hmac.new(key, f"mobile:{national_id_hash}".encode(), hashlib.sha256).hexdigest()[:16].upper()


_lock = threading.Lock()


def mobile_ca(app: Flask | None = None) -> MobileCA:
    """The configured CA, loaded once per application on first use."""
    app = app or current_app._get_current_object()
    ca = app.extensions.get("mocert.mobile_ca")
    if ca is None:
        with _lock:
            ca = app.extensions.get("mocert.mobile_ca")
            if ca is None:
                ca = MobileCA.load(app.config["MOBILE_CA_CERT"], app.config["MOBILE_CA_KEY"])
                app.extensions["mocert.mobile_ca"] = ca
    return ca
