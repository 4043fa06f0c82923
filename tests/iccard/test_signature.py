"""The two answers of MakeSignature, verified as the component produces them."""

import base64
from datetime import datetime, timezone

import pytest
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from iccard import errors
from iccard.card_login import new_tbs
from iccard.signature import decode_base64, verify_pkcs1, verify_pkcs7
from tests.support import card_of, make_signature

TBS = new_tbs("http://localhost", datetime(2026, 11, 28, tzinfo=timezone.utc))


@pytest.fixture
def card(pki):
    return card_of(pki, "A123456789")


def _decoded(response):
    return base64.b64decode(response["signature"]), base64.b64decode(response["certb64"])


def test_pkcs7_attached_signature_yields_the_signer_certificate(pki, card):
    signature, cert_der = _decoded(make_signature(pki, card, TBS, "PKCS7"))
    signer = verify_pkcs7(TBS.encode(), signature)
    assert signer.public_bytes(serialization.Encoding.DER) == cert_der


def test_pkcs7_detached_signature_is_checked_against_the_tbs(pki, card):
    signature = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(TBS.encode())
        .add_signer(pki.card_certificate(card), pki.card_key(card), hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.DetachedSignature])
    )
    verify_pkcs7(TBS.encode(), signature)
    with pytest.raises(errors.TbsMismatch):
        verify_pkcs7(b"another text", signature)


def test_pkcs7_over_another_text_is_a_tbs_mismatch(pki, card):
    signature, _ = _decoded(make_signature(pki, card, "some other challenge", "PKCS7"))
    with pytest.raises(errors.TbsMismatch):
        verify_pkcs7(TBS.encode(), signature)


def test_pkcs7_with_a_tampered_signature_is_refused(pki, card):
    signature, _ = _decoded(make_signature(pki, card, TBS, "PKCS7"))
    tampered = bytearray(signature)
    # The RSA signature value is the last 256 bytes of SignerInfo, which ends the structure.
    tampered[-10] ^= 0x01
    with pytest.raises(errors.BadSignature):
        verify_pkcs7(TBS.encode(), bytes(tampered))


def test_pkcs7_signed_by_one_card_but_carrying_anothers_certificate_is_refused(pki, card):
    other = card_of(pki, "B223456782")
    signature = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(TBS.encode())
        .add_signer(pki.card_certificate(card), pki.card_key(other), hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    with pytest.raises(errors.BadSignature):
        verify_pkcs7(TBS.encode(), signature)


def test_pkcs7_naming_its_signers_issuer_in_other_string_types_still_finds_the_signer(pki, card):
    # Names compare as RFC 5280 says, not byte for byte: the same bytes are only the quick case.
    signature, cert_der = _decoded(make_signature(pki, card, TBS, "PKCS7"))
    info = cms.ContentInfo.load(signature)
    sid = info["content"]["signer_infos"][0]["sid"].chosen
    respelled = asn1_x509.Name.build(sid["issuer"].native, use_printable=True)
    assert respelled.dump() != sid["issuer"].dump() and respelled == sid["issuer"]
    sid["issuer"] = respelled
    signer = verify_pkcs7(TBS.encode(), info.dump(force=True))
    assert signer.public_bytes(serialization.Encoding.DER) == cert_der


@pytest.mark.parametrize("garbage", [b"", b"\x30\x03\x02\x01\x01", b"not der at all", b"\x30\x82\xff\xff"])
def test_pkcs7_malformed_der_is_malformed_input(garbage):
    with pytest.raises(errors.MalformedInput):
        verify_pkcs7(TBS.encode(), garbage)


def test_pkcs1_signature_over_the_tbs_verifies(pki, card):
    signature, cert_der = _decoded(make_signature(pki, card, TBS, "PKCS1"))
    verify_pkcs1(TBS.encode(), signature, cert_der, "sha256")


@pytest.mark.parametrize("hash_name", ["SHA384", "SHA512"])
def test_pkcs1_with_other_sha2_hashes_verifies(pki, card, hash_name):
    signature, cert_der = _decoded(make_signature(pki, card, TBS, "PKCS1", hash_name))
    verify_pkcs1(TBS.encode(), signature, cert_der, hash_name.lower())


def test_pkcs1_over_another_text_is_a_bad_signature(pki, card):
    signature, cert_der = _decoded(make_signature(pki, card, "another", "PKCS1"))
    with pytest.raises(errors.BadSignature):
        verify_pkcs1(TBS.encode(), signature, cert_der, "sha256")


def test_pkcs1_with_malformed_certificate_is_malformed_input(pki, card):
    signature, _ = _decoded(make_signature(pki, card, TBS, "PKCS1"))
    with pytest.raises(errors.MalformedInput):
        verify_pkcs1(TBS.encode(), signature, b"\x30\x00", "sha256")


def test_sha1_is_not_accepted(pki, card):
    signature, cert_der = _decoded(make_signature(pki, card, TBS, "PKCS1"))
    with pytest.raises(errors.MalformedInput):
        verify_pkcs1(TBS.encode(), signature, cert_der, "sha1")


@pytest.mark.parametrize("value", [None, "", "***", "YWJj=ZZ", 12])
def test_bad_base64_is_malformed_input(value):
    with pytest.raises(errors.MalformedInput):
        decode_base64(value, "signature")
