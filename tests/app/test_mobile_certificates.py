"""Mobile certificates: one year on the same calendar date, the credential's key, no trace of the ID."""

from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fido2 import cbor
from fido2.cose import ES256

from app.services.mobile_certificates import CREDENTIAL_URN, MobileCA, one_year_later


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2026, 11, 28, 21, 5, tzinfo=timezone.utc), datetime(2027, 11, 28, 21, 5, tzinfo=timezone.utc)),
        (datetime(2028, 2, 29, 8, 0, tzinfo=timezone.utc), datetime(2029, 2, 28, 8, 0, tzinfo=timezone.utc)),
        (datetime(2027, 2, 28, 8, 0, tzinfo=timezone.utc), datetime(2028, 2, 28, 8, 0, tzinfo=timezone.utc)),
        (datetime(2027, 12, 31, 23, 59, tzinfo=timezone.utc), datetime(2028, 12, 31, 23, 59, tzinfo=timezone.utc)),
    ],
)
def test_one_year_later_is_the_same_calendar_date_and_29_february_becomes_28(start, end):
    assert one_year_later(start) == end


def test_the_certificate_certifies_the_credential_key_for_one_year(pki):
    ca = MobileCA.load(str(pki.directory / "mobile-ca.pem"), str(pki.directory / "mobile-ca.key.pem"))
    key = ec.generate_private_key(ec.SECP256R1())
    cose = cbor.encode(dict(ES256.from_cryptography_key(key.public_key())))
    bound = datetime(2028, 2, 29, 10, 30, tzinfo=timezone.utc)
    certificate = ca.issue(
        cose_public_key=cose, name="王小明", pseudonym="0123456789ABCDEF", credential_id=b"\x01\x02\xff", not_before=bound
    )
    certificate.verify_directly_issued_by(ca.certificate)
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()
    assert certificate.not_valid_before_utc == bound
    assert certificate.not_valid_after_utc == datetime(2029, 2, 28, 10, 30, tzinfo=timezone.utc)
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "王小明"
    assert certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "0123456789ABCDEF"
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [CREDENTIAL_URN + "AQL_"]
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
