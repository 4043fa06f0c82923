"""Certificates a stranger might send at a card login, for the tests that refuse them.

Two kinds: certificates that do not come from a configured CA (self-signed, from a CA we do not trust,
forged in a trusted CA's name), each naming ``url`` wherever a certificate can name an address (AIA
caIssuers and OCSP, CRL distribution point); and demo cards re-issued by the demo CA with one defect
(a key we cannot use, a duplicated or an unreadable extension), signed for real so that only the defect
is wrong.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from asn1crypto import cms
from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from iccard.demo_pki import MOICA_POLICY_OID, DemoCard, DemoPKI


@dataclass(frozen=True)
class Stranger:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _name(common_name: str, **extra) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if "serial" in extra:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, extra["serial"]))
    return x509.Name(attributes)


def _citizen(subject_key, issuer_name: x509.Name, signing_key, key_id_of, url: str) -> x509.Certificate:
    """A citizen-shaped signing certificate naming ``url`` for its issuer, OCSP and CRL."""
    now = _now()
    url = url.rstrip("/")
    return (
        x509.CertificateBuilder()
        .subject_name(_name("陌生人", serial="9999999999999999"))
        .issuer_name(issuer_name)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(MOICA_POLICY_OID), None)]),
            critical=False,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(f"{url}/stranger.crl")], None, None, None)]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{url}/ocsp")
                    ),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(f"{url}/issuer.cer")
                    ),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
        .add_extension(key_id_of, critical=False)
        .sign(signing_key, hashes.SHA256())
    )


def self_signed(url: str) -> Stranger:
    key = _key()
    certificate = _citizen(
        key, _name("陌生人", serial="9999999999999999"), key,
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), url,
    )
    return Stranger(certificate, key)


def from_an_unconfigured_ca(url: str) -> Stranger:
    key, ca_key = _key(), _key()
    certificate = _citizen(
        key, _name("Stranger CA"), ca_key, x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), url
    )
    return Stranger(certificate, key)


def forged_in_the_name_of(issuer: x509.Certificate, url: str, *, copy_key_id: bool) -> Stranger:
    """The configured CA's name, another key; with ``copy_key_id`` even its key identifier."""
    key, forger = _key(), _key()
    if copy_key_id:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        key_id = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    else:
        key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(forger.public_key())
    return Stranger(_citizen(key, issuer.subject, forger, key_id, url), key)


def issued_by_the_demo_ca(pki: DemoPKI, url: str) -> Stranger:
    """A genuine card of the demo CA whose OCSP and CRL addresses are ``url``."""
    key = _key()
    certificate = _citizen(
        key, pki.issuer_certificate.subject, demo_issuer_key(pki),
        x509.AuthorityKeyIdentifier.from_issuer_public_key(demo_issuer_key(pki).public_key()), url,
    )
    return Stranger(certificate, key)


# Each certificate no configured CA issued, by what it pretends: (pki, url) -> Stranger.
STRANGERS = {
    "self_signed": lambda pki, url: self_signed(url),
    "from_an_unconfigured_ca": lambda pki, url: from_an_unconfigured_ca(url),
    "forged_in_the_issuing_ca_name": lambda pki, url: forged_in_the_name_of(
        pki.issuer_certificate, url, copy_key_id=False
    ),
    "forged_with_the_issuing_ca_key_identifier": lambda pki, url: forged_in_the_name_of(
        pki.issuer_certificate, url, copy_key_id=True
    ),
    "forged_in_the_root_name": lambda pki, url: forged_in_the_name_of(pki.root_certificate, url, copy_key_id=True),
}


def demo_issuer_key(pki: DemoPKI) -> rsa.RSAPrivateKey:
    return serialization.load_pem_private_key((pki.directory / "issuer.key.pem").read_bytes(), None)


def sign_as(key, certificate_der: bytes, tbs: str, signature_type: str = "PKCS7") -> dict:
    """The component's MakeSignature answer for ``tbs``, signed with ``key`` and carrying ``certificate_der``.

    For PKCS7 the SignedData is built with a well-formed stand-in certificate of the same issuer and
    serial number, then the stand-in is swapped for ``certificate_der``: so a certificate that no library
    would sign with still travels inside a real SignedData, as a stranger could send it.
    """
    data = tbs.encode("utf-8")
    if signature_type == "PKCS1":
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        stand_in = _stand_in(key, asn1_x509.Certificate.load(certificate_der))
        built = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(data)
            .add_signer(stand_in, key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )
        content_info = cms.ContentInfo.load(built)
        content_info["content"]["certificates"] = cms.CertificateSet(
            [cms.CertificateChoices(name="certificate", value=asn1_x509.Certificate.load(certificate_der))]
        )
        signature = content_info.dump()
    return {
        "signatureType": signature_type,
        "signature": base64.b64encode(signature).decode(),
        "certb64": base64.b64encode(certificate_der).decode(),
    }


def _stand_in(key, original: asn1_x509.Certificate) -> x509.Certificate:
    """A throwaway certificate with the issuer name and serial number ``original`` claims."""
    now = _now()
    issuer = x509.Name.from_rfc4514_string("CN=stand-in")
    builder = (
        x509.CertificateBuilder()
        .subject_name(issuer)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(original.serial_number)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
    )
    built = asn1_x509.Certificate.load(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    tbs = built["tbs_certificate"]
    tbs["issuer"] = original["tbs_certificate"]["issuer"].copy()
    return x509.load_der_x509_certificate(_signed(tbs, key))


# -- a demo card with one defect ------------------------------------------------------------------


def _ed25519_key_info() -> asn1_keys.PublicKeyInfo:
    der = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return asn1_keys.PublicKeyInfo.load(der)


def _unknown_key_info() -> asn1_keys.PublicKeyInfo:
    algorithm = _sequence(asn1_core.ObjectIdentifier("1.3.6.1.4.1.55555.1.1").dump())
    return asn1_keys.PublicKeyInfo.load(_sequence(algorithm, b"\x03\x05\x00\xde\xad\xbe\xef"))


def _sequence(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return b"\x30" + _length(len(body)) + body


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _extension(oid: str, value: bytes, critical: bool = False) -> asn1_x509.Extension:
    """An extension whose value is exactly ``value``, however broken."""
    parts = [asn1_core.ObjectIdentifier(oid).dump()]
    if critical:
        parts.append(asn1_core.Boolean(True).dump())
    parts.append(asn1_core.OctetString(value).dump())
    return asn1_x509.Extension.load(_sequence(*parts))


def _with_extension_value(extensions, oid: str, value: bytes) -> asn1_x509.Extensions:
    kept = [asn1_x509.Extension.load(e.dump()) for e in extensions if e["extn_id"].dotted != oid]
    return asn1_x509.Extensions([*kept, _extension(oid, value)])


AUTHORITY_KEY_IDENTIFIER = "2.5.29.35"
KEY_USAGE = "2.5.29.15"

DEFECTS = {
    # a key no citizen card has: Ed25519, and an algorithm nobody knows
    "ed25519_key": lambda tbs: tbs.__setitem__("subject_public_key_info", _ed25519_key_info()),
    "unknown_key_algorithm": lambda tbs: tbs.__setitem__("subject_public_key_info", _unknown_key_info()),
    # RFC 5280 §4.2: at most one instance of an extension
    "duplicated_extension": lambda tbs: tbs.__setitem__(
        "extensions",
        asn1_x509.Extensions(
            [asn1_x509.Extension.load(e.dump()) for e in tbs["extensions"]]
            + [asn1_x509.Extension.load(e.dump()) for e in tbs["extensions"] if e["extn_id"].dotted == KEY_USAGE]
        ),
    ),
    # the authority key identifier cut short: a SEQUENCE announcing 22 bytes that holds 12
    "truncated_extension": lambda tbs: tbs.__setitem__(
        "extensions",
        _with_extension_value(tbs["extensions"], AUTHORITY_KEY_IDENTIFIER, b"\x30\x16\x80\x14" + b"\x01" * 10),
    ),
    # a key usage that is not DER at all
    "garbled_extension": lambda tbs: tbs.__setitem__(
        "extensions", _with_extension_value(tbs["extensions"], KEY_USAGE, b"\xff\x00garbage\x01")
    ),
}


def with_defect(pki: DemoPKI, card: DemoCard, defect: str) -> bytes:
    """DER of ``card``'s certificate with ``defect``, re-signed by the demo CA (same issuer and serial)."""
    original = asn1_x509.Certificate.load(pki.card_certificate(card).public_bytes(serialization.Encoding.DER))
    tbs = asn1_x509.TbsCertificate.load(original["tbs_certificate"].dump())
    DEFECTS[defect](tbs)
    return _signed(tbs, demo_issuer_key(pki))


def _signed(tbs: asn1_x509.TbsCertificate, issuer_key: rsa.RSAPrivateKey) -> bytes:
    tbs_der = tbs.dump()
    signature = issuer_key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA256())
    return asn1_x509.Certificate(
        {
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs_der),
            "signature_algorithm": {"algorithm": "sha256_rsa"},
            "signature_value": signature,
        }
    ).dump()
