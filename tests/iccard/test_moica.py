"""iccard.moica: the real CAs are told from anything wearing their names by their key identifiers."""

import pytest
from cryptography import x509

from iccard import moica
from iccard.certificate import key_identifier


@pytest.mark.parametrize(("file", "ca"), [("GRCA-G3.cer", "GRCA"), ("MOICA-G3.cer", "MOICA")])
def test_the_shipped_g3_certificates_are_the_real_cas(real_trust, file, ca):
    certificate = x509.load_der_x509_certificate((real_trust / file).read_bytes())
    assert key_identifier(certificate) == moica.KEY_IDENTIFIERS[ca, "G3"]
    assert x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest == key_identifier(certificate)
    assert certificate.subject in moica.REAL_KEYS_BY_NAME
    assert not moica.wears_a_real_name(certificate)


@pytest.mark.parametrize("file", ["GRCA-G2.pem", "GRCA-G3.pem", "MOICA-G2.pem", "MOICA-G3.pem"])
def test_the_moica_profile_demo_cas_wear_the_real_names_on_other_keys(moica_pki, file):
    certificate = x509.load_pem_x509_certificate((moica_pki.directory / file).read_bytes())
    assert certificate.subject in moica.REAL_KEYS_BY_NAME
    assert moica.wears_a_real_name(certificate)


def test_a_certificate_of_another_name_is_no_concern_of_this_check(pki):
    assert not moica.wears_a_real_name(pki.issuer_certificate)


def test_a_g3_name_with_the_real_key_identifier_copied_onto_another_key_is_not_the_real_ca(moica_pki):
    from cryptography.hazmat.primitives import hashes, serialization

    demo = x509.load_pem_x509_certificate((moica_pki.directory / "MOICA-G3.pem").read_bytes())
    key = serialization.load_pem_private_key((moica_pki.directory / "GRCA-G3.key.pem").read_bytes(), None)
    builder = (
        x509.CertificateBuilder().subject_name(demo.subject).issuer_name(demo.issuer).public_key(demo.public_key())
        .serial_number(demo.serial_number).not_valid_before(demo.not_valid_before_utc)
        .not_valid_after(demo.not_valid_after_utc)
        .add_extension(x509.SubjectKeyIdentifier(moica.KEY_IDENTIFIERS["MOICA", "G3"]), critical=False)
    )
    look_alike = builder.sign(key, hashes.SHA256())
    assert key_identifier(look_alike) == moica.KEY_IDENTIFIERS["MOICA", "G3"]
    assert moica.wears_a_real_name(look_alike)
