"""The demo PKI has the shape of the real one: GRCA → MOICA (pathLen 0) → MOICA-like citizen certificates."""

import random
import stat
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID, SignatureAlgorithmOID

from iccard.certificate import CitizenCertificate
from iccard.demo_pki import DEMO_PEOPLE, ISSUER_NAME, MOICA_POLICY_OID, ROOT_NAME, DemoPKI, citizen_key_usage
from tests.support import card_of, demo_pki_of_before_encryption_certificates


def test_the_chain_is_root_then_an_issuing_ca_limited_to_path_length_zero(pki):
    root, issuer = pki.root_certificate, pki.issuer_certificate
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ROOT_NAME
    assert issuer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ISSUER_NAME
    issuer.verify_directly_issued_by(root)
    constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0


def test_citizen_certificates_look_like_moicas(pki):
    card = card_of(pki, "A123456789")
    cert = pki.card_certificate(card)
    cert.verify_directly_issued_by(pki.issuer_certificate)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey) and cert.public_key().key_size == 2048
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert [a.oid for a in cert.subject] == [NameOID.COUNTRY_NAME, NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER]
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value.isdigit()
    assert len(cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value) == 16
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    # The real profile: digitalSignature alone (no nonRepudiation, no encipherment).
    assert usage.critical and usage.value == citizen_key_usage("signing")
    assert usage.value.digital_signature and not usage.value.content_commitment and not usage.value.key_encipherment
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [MOICA_POLICY_OID]
    citizen = CitizenCertificate.from_certificate(cert)
    assert (citizen.name, citizen.id_last4) == ("王小明", "6789")
    crl_urls = [
        n.value for p in cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
        for n in p.full_name
    ]
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    ocsp_urls = [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP]
    assert crl_urls == [f"{pki.manifest['base_url']}/pki/demo/issuer.crl"]
    assert ocsp_urls == [f"{pki.manifest['base_url']}/pki/demo/ocsp"]


def test_each_card_has_an_encryption_certificate_beside_its_signing_one_as_real_cards_do(pki):
    for card in pki.cards:
        signing, encryption = pki.card_certificate(card), pki.card_encryption_certificate(card)
        encryption.verify_directly_issued_by(pki.issuer_certificate)
        assert encryption.subject == signing.subject
        assert encryption.serial_number == card.encryption_serial != signing.serial_number == card.certificate_serial
        assert encryption.public_key().public_numbers() != signing.public_key().public_numbers()
        assert encryption.public_key().public_numbers() == pki.card_encryption_key(card).public_key().public_numbers()
        assert encryption.public_key().key_size == 2048
        usage = encryption.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_encipherment and usage.value.data_encipherment
        assert not usage.value.digital_signature and not usage.value.content_commitment
        for kind in (x509.CertificatePolicies, x509.CRLDistributionPoints, x509.AuthorityInformationAccess,
                     x509.AuthorityKeyIdentifier):
            same = signing.extensions.get_extension_for_class(kind)
            assert encryption.extensions.get_extension_for_class(kind) == same
        assert (encryption.not_valid_before_utc, encryption.not_valid_after_utc) == (
            signing.not_valid_before_utc, signing.not_valid_after_utc
        )
        same_person = ("name", "subject_serial", "id_last4", "issuer")
        assert [getattr(CitizenCertificate.from_certificate(encryption), a) for a in same_person] == [
            getattr(CitizenCertificate.from_certificate(signing), a) for a in same_person
        ]


def test_a_demo_pki_made_before_encryption_certificates_gets_them_on_the_next_init_demo(tmp_path):
    import json

    old = demo_pki_of_before_encryption_certificates(tmp_path / "old")
    manifest = json.loads((old.directory / "manifest.json").read_text())
    signing_before = {c["card_number"]: (old.directory / "cards" / f"{c['card_number']}.pem").read_bytes()
                      for c in manifest["cards"]}

    upgraded = DemoPKI(old.directory)
    assert upgraded.ensure_card_encryption() == [c["card_number"] for c in manifest["cards"]]
    assert DemoPKI(old.directory).ensure_card_encryption() == []  # once only
    again = DemoPKI(old.directory)
    for card in again.cards:
        assert (again.directory / "cards" / f"{card.card_number}.pem").read_bytes() == signing_before[card.card_number]
        assert again.card_encryption_certificate(card).serial_number == card.encryption_serial
        assert stat.S_IMODE((again.directory / "cards" / f"{card.card_number}.enc.key.pem").stat().st_mode) == 0o600
    expired = next(c for c in again.cards if c.status == "expired")
    assert again.card_encryption_certificate(expired).not_valid_after_utc < datetime.now(timezone.utc)
    gone = next(c for c in again.cards if c.status == "revoked")
    assert {e.serial_number for e in x509.load_der_x509_crl(again.crl())} == {
        gone.certificate_serial, gone.encryption_serial
    }


def test_the_demo_people_and_their_cards_are_the_readmes(pki):
    assert [(c.name, c.national_id, c.status) for c in pki.cards] == [(n, i, s) for n, i, _, s in DEMO_PEOPLE]
    expired = pki.card_certificate(card_of(pki, "F131313136", "expired"))
    replacement = pki.card_certificate(card_of(pki, "F131313136"))
    now = datetime.now(timezone.utc)
    assert expired.not_valid_after_utc < now < replacement.not_valid_after_utc
    assert expired.public_key().public_numbers() != replacement.public_key().public_numbers()
    assert {c.pin for c in pki.cards} == {"123456"}


def test_private_keys_are_readable_by_their_owner_only(pki):
    keys = list(pki.directory.rglob("*.key.pem"))
    assert len(keys) >= 3 + len(DEMO_PEOPLE)  # root, card CA, mobile CA, the cards
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in keys)


def test_the_crl_lists_exactly_the_revoked_card(pki):
    crl = x509.load_der_x509_crl(pki.crl())
    assert crl.is_signature_valid(pki.issuer_certificate.public_key())
    revoked = card_of(pki, "K120000006", "revoked")
    # Both of its certificates: a revoked card is revoked whole.
    assert sorted(entry.serial_number for entry in crl) == sorted(
        [revoked.certificate_serial, revoked.encryption_serial]
    )
    assert crl.next_update_utc > crl.last_update_utc


def test_the_ocsp_responder_says_good_revoked_or_unauthorized(pki):
    def ask(cert):
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, pki.issuer_certificate, hashes.SHA256()).build()
        return ocsp.load_der_ocsp_response(pki.ocsp_response(request.public_bytes(serialization.Encoding.DER)))

    good = ask(pki.card_certificate(card_of(pki, "A123456789")))
    assert good.certificate_status == ocsp.OCSPCertStatus.GOOD and good.next_update_utc is not None
    revoked = ask(pki.card_certificate(card_of(pki, "K120000006", "revoked")))
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason == x509.ReasonFlags.key_compromise
    good_encryption = ask(pki.card_encryption_certificate(card_of(pki, "A123456789")))
    assert good_encryption.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert good_encryption.serial_number == card_of(pki, "A123456789").encryption_serial
    revoked_encryption = ask(pki.card_encryption_certificate(card_of(pki, "K120000006", "revoked")))
    assert revoked_encryption.certificate_status == ocsp.OCSPCertStatus.REVOKED
    stranger = ask(pki.issuer_certificate)  # not one of this CA's cards
    assert stranger.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    garbage = ocsp.load_der_ocsp_response(pki.ocsp_response(b"garbage"))
    assert garbage.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def _cert_id(pki, certificate: x509.Certificate) -> dict:
    """The CertID naming ``certificate`` under the issuing CA, as cryptography's builder makes it."""
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, pki.issuer_certificate, hashes.SHA256()).build()
    return {
        "hash_algorithm": {"algorithm": "sha256"},
        "issuer_name_hash": request.issuer_name_hash,
        "issuer_key_hash": request.issuer_key_hash,
        "serial_number": request.serial_number,
    }


def _request_der(*cert_ids: dict) -> bytes:
    """An OCSP request asking about each of ``cert_ids`` (cryptography's builder makes one-entry requests only)."""
    return asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": c} for c in cert_ids]}}).dump()


def _served_status(revocation_server, body: bytes) -> ocsp.OCSPResponseStatus:
    """The response status from the demo responder over HTTP (an HTTP error status raises)."""
    request = urllib.request.Request(
        f"{revocation_server.url}/pki/demo/ocsp", data=body, headers={"Content-Type": "application/ocsp-request"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "application/ocsp-response"
        return ocsp.load_der_ocsp_response(response.read()).response_status


def test_a_request_for_several_certificates_gets_malformed_request(pki, revocation_server):
    good, revoked = (
        _cert_id(pki, pki.card_certificate(card_of(pki, *card)))
        for card in (("A123456789",), ("K120000006", "revoked"))
    )
    alone = ocsp.load_der_ocsp_response(pki.ocsp_response(_request_der(good)))  # each alone is answered
    assert alone.certificate_status == ocsp.OCSPCertStatus.GOOD
    both = _request_der(good, revoked)
    malformed = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert ocsp.load_der_ocsp_response(pki.ocsp_response(both)).response_status == malformed
    assert _served_status(revocation_server, both) == malformed


def test_no_ocsp_request_however_broken_gets_a_server_error(pki, revocation_server):
    cert_id = _cert_id(pki, pki.card_certificate(card_of(pki, "A123456789")))
    valid = _request_der(cert_id)
    assert _served_status(revocation_server, valid) == ocsp.OCSPResponseStatus.SUCCESSFUL
    rng = random.Random(6960)
    malformed = [
        b"",
        *(rng.randbytes(size) for size in (1, 7, 64, 4096)),
        *(valid[:cut] for cut in range(1, len(valid))),
        _request_der(),  # no entries
        _request_der(cert_id, cert_id),
        _request_der({**cert_id, "issuer_key_hash": b"\0" * 20}),  # not a SHA-256
        _request_der({**cert_id, "serial_number": -cert_id["serial_number"]}),
    ]
    for body in malformed:
        assert _served_status(revocation_server, body) == ocsp.OCSPResponseStatus.MALFORMED_REQUEST, body
    for at in range(len(valid)):  # a flipped byte may still leave a request (of another serial, say)
        flipped = valid[:at] + bytes([valid[at] ^ 0xFF]) + valid[at + 1:]
        assert _served_status(revocation_server, flipped) in (
            ocsp.OCSPResponseStatus.SUCCESSFUL,
            ocsp.OCSPResponseStatus.UNAUTHORIZED,
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
        )


# -- the real MOICA profile, on our keys -----------------------------------------------------------------


def _extension_shape(cert: x509.Certificate) -> list:
    """Each extension's OID, criticality and value, in order; key identifiers and addresses left out (ours
    are our keys' and our server's), the AIA's access methods kept in order."""
    shape = []
    for extension in cert.extensions:
        value = extension.value
        if isinstance(value, (x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier, x509.CRLDistributionPoints)):
            value = None
        elif isinstance(value, x509.AuthorityInformationAccess):
            value = [d.access_method for d in value]
        shape.append((extension.oid, extension.critical, value))
    return shape


@pytest.mark.parametrize("authority", ["GRCA-G3", "MOICA-G3"])
def test_the_g3_cas_have_the_real_subjects_and_extension_sets(moica_pki, real_trust, authority):
    real = x509.load_der_x509_certificate((real_trust / f"{authority}.cer").read_bytes())
    ours = moica_pki.certificate(authority)
    assert (ours.subject, ours.issuer) == (real.subject, real.issuer)
    assert ours.subject.public_bytes() == real.subject.public_bytes()  # the same string types too
    assert _extension_shape(ours) == _extension_shape(real)
    assert ours.public_key().key_size == real.public_key().key_size == 4096
    assert ours.signature_algorithm_oid == real.signature_algorithm_oid


def test_the_moica_g3_certificate_names_grca_g3s_crl_and_ocsp_at_the_demo_not_the_real_hosts(moica_pki):
    moica, grca = moica_pki.certificate("MOICA-G3"), moica_pki.certificate("GRCA-G3")
    moica.verify_directly_issued_by(grca)
    here = f"{moica_pki.manifest['base_url']}/pki/demo/moica-profile"
    [point] = moica.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for n in point.full_name] == [f"{here}/GRCA-G3.crl"]
    aia = moica.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == [f"{here}/GRCA-G3.cer", f"{here}/grca/ocsp"]
    aki = moica.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == grca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki.authority_cert_issuer is None and aki.authority_cert_serial_number is None  # keyid only, as real


def test_moica_g2_has_moica_g3s_very_name_under_grca_g2_and_declares_no_ocsp(moica_pki):
    g2, g3, root = (moica_pki.certificate(a) for a in ("MOICA-G2", "MOICA-G3", "GRCA-G2"))
    assert g2.subject == g3.subject
    assert root.subject.rfc4514_string() == "O=Government Root Certification Authority,C=TW"
    g2.verify_directly_issued_by(root)
    assert (g2.public_key().key_size, root.public_key().key_size) == (2048, 4096)
    assert g2.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    aia = g2.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_method for d in aia] == [AuthorityInformationAccessOID.CA_ISSUERS]
    usage = g2.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    for extension in (x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier):
        assert g2.extensions.get_extension_for_class(extension) != g3.extensions.get_extension_for_class(extension)


@pytest.mark.parametrize("generation", ["G2", "G3"])
def test_moica_profile_citizen_certificates_are_a_signing_and_an_encryption_one(moica_pki, generation):
    card = next(c for c in moica_pki.cards if c.generation == generation)
    moica = moica_pki.certificate(f"MOICA-{generation}")
    moica_key_id = moica.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    signing, encryption = moica_pki.card_certificate(card), moica_pki.card_encryption_certificate(card)
    for cert, purpose in ((signing, "signing"), (encryption, "encryption")):
        cert.verify_directly_issued_by(moica)
        assert [a.oid for a in cert.subject] == [NameOID.COUNTRY_NAME, NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER]
        assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == card.subject_serial
        assert len(card.subject_serial) == 16 and card.subject_serial.isdigit()
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value == citizen_key_usage(purpose)
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
        assert [p.policy_identifier.dotted_string for p in policies] == [MOICA_POLICY_OID]
        assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == moica_key_id
        assert CitizenCertificate.from_certificate(cert).id_last4 == card.national_id[-4:]
    assert signing.serial_number != encryption.serial_number


def _ask(pki, responder, cert, issuer):
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    return ocsp.load_der_ocsp_response(pki.ocsp_response(responder, request.public_bytes(serialization.Encoding.DER)))


def test_grca_answers_for_its_moica_by_ocsp_and_crl(moica_pki):
    moica, grca = moica_pki.certificate("MOICA-G3"), moica_pki.certificate("GRCA-G3")
    answer = _ask(moica_pki, "grca", moica, grca)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD and answer.serial_number == moica.serial_number
    assert answer.next_update_utc is not None
    # MOICA's responder does not speak for GRCA's certificates, nor GRCA's for the cards; GRCA G2 has none.
    assert _ask(moica_pki, "moica", moica, grca).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    card = moica_pki.card_certificate(next(c for c in moica_pki.cards if c.generation == "G3"))
    assert _ask(moica_pki, "grca", card, moica).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    g2 = (moica_pki.certificate("MOICA-G2"), moica_pki.certificate("GRCA-G2"))
    assert _ask(moica_pki, "grca", *g2).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    for generation in ("G2", "G3"):
        crl = x509.load_der_x509_crl(moica_pki.crl(f"GRCA-{generation}"))
        assert crl.is_signature_valid(moica_pki.certificate(f"GRCA-{generation}").public_key())
        assert crl.issuer == moica_pki.certificate(f"GRCA-{generation}").subject and list(crl) == []


def test_a_revoked_moica_profile_card_is_revoked_whole_on_its_generations_crl_and_ocsp(moica_pki):
    card = moica_pki.issue_card("周杰", "A187654321", "REVO000000000001", generation="G2")
    moica_pki.revoke_card(card)
    moica = moica_pki.certificate("MOICA-G2")
    listed = {entry.serial_number for entry in x509.load_der_x509_crl(moica_pki.crl("MOICA-G2"))}
    assert {card.certificate_serial, card.encryption_serial} <= listed
    assert not listed & {entry.serial_number for entry in x509.load_der_x509_crl(moica_pki.crl("MOICA-G3"))}
    for cert in (moica_pki.card_certificate(card), moica_pki.card_encryption_certificate(card)):
        assert _ask(moica_pki, "moica", cert, moica).certificate_status == ocsp.OCSPCertStatus.REVOKED


def test_the_demo_server_serves_the_moica_profile_revocation_answers(moica_pki, revocation_server):
    here = f"{revocation_server.url}/pki/demo/moica-profile"
    for authority in moica_pki.AUTHORITIES:
        with urllib.request.urlopen(f"{here}/{authority}.crl", timeout=10) as response:
            assert x509.load_der_x509_crl(response.read()).is_signature_valid(
                moica_pki.certificate(authority).public_key()
            )
        with urllib.request.urlopen(f"{here}/{authority}.cer", timeout=10) as response:
            assert x509.load_der_x509_certificate(response.read()) == moica_pki.certificate(authority)
    request = ocsp.OCSPRequestBuilder().add_certificate(
        moica_pki.certificate("MOICA-G3"), moica_pki.certificate("GRCA-G3"), hashes.SHA256()
    ).build()
    posted = urllib.request.Request(
        f"{here}/grca/ocsp", data=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(posted, timeout=10) as response:
        assert ocsp.load_der_ocsp_response(response.read()).certificate_status == ocsp.OCSPCertStatus.GOOD
    for unknown in ("NOBODY-G3.crl", "root.crl", "other/ocsp"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{here}/{unknown}", timeout=10)
        assert refused.value.code in (404, 405)
