"""DecryptData on an emulated demo card: EnvelopedData as other tools make it, PKCS#1 blocks, refusals."""

import base64
import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from iccard import decrypter, errors
from iccard.cards import PivSlot
from iccard.emulator import InProcessReader, PivCardEmulator
from iccard.errors import DecryptionFailed, WrongPin

SECRET = "公文附件 attachment".encode()


@pytest.fixture
def card(reader):
    with PivSlot(reader).open() as card:
        yield card


@pytest.fixture
def encryption_pem(pki, demo_card, tmp_path):
    path = tmp_path / "enc.pem"
    path.write_bytes(pki.card_encryption_certificate(demo_card).public_bytes(serialization.Encoding.PEM))
    return path


def _request(cipher: bytes, cipher_type="PKCS7", plain_encoding="base64"):
    return decrypter.DecryptRequest.from_decrypt_data(
        {"cipher": base64.b64encode(cipher).decode(), "cipherType": cipher_type, "plainEncoding": plain_encoding}
    )


@pytest.mark.parametrize("options", [["-aes256"], ["-des3"], ["-aes128", "-keyid"]],
                         ids=["aes256", "3des", "subject-key-identifier"])
def test_enveloped_data_made_by_openssl_opens_with_the_card(card, encryption_pem, tmp_path, options):
    (tmp_path / "msg").write_bytes(SECRET)
    envelope = subprocess.run(
        ["openssl", "cms", "-encrypt", "-binary", "-outform", "DER", "-in", tmp_path / "msg", *options, encryption_pem],
        capture_output=True, check=True, timeout=30,
    ).stdout
    assert decrypter.decrypt(card, "123456", _request(envelope)) == SECRET


def test_a_pkcs1_block_opens_with_the_card_and_a_wrong_pin_does_not(card, pki, demo_card):
    block = pki.card_encryption_certificate(demo_card).public_key().encrypt(SECRET, padding.PKCS1v15())
    with pytest.raises(WrongPin):
        decrypter.decrypt(card, "000000", _request(block, "PKCS1"))
    assert decrypter.decrypt(card, "123456", _request(block, "PKCS1")) == SECRET


def test_the_plaintext_is_given_as_text_or_base64_as_asked():
    assert _request(b"x", plain_encoding="none").plain_text(SECRET) == SECRET.decode()
    assert _request(b"x").plain_text(b"\xff\x00") == "/wA="
    with pytest.raises(decrypter.DecryptRequestError):
        _request(b"x", plain_encoding="none").plain_text(b"\xff\x00")


def test_a_form_posted_plus_that_arrived_as_a_space_is_read_back():
    request = decrypter.DecryptRequest.from_decrypt_data({"cipher": "+/+/", "cipherType": "PKCS1"})
    assert request.ciphertext == base64.b64decode("+/+/")
    assert decrypter.DecryptRequest.from_decrypt_data({"cipher": " / /"}).ciphertext == request.ciphertext
    assert decrypter.DecryptRequest.from_decrypt_data({"cipher": "%2B%2F%2B%2F"}).ciphertext == request.ciphertext


# -- EnvelopedData as other encryptors may write it -----------------------------------------------------


def _envelope(rid: cms.RecipientIdentifier, wrapped_key: bytes, content: bytes, iv: bytes,
              algorithm: str = "aes128_cbc") -> bytes:
    """EnvelopedData built field by field, for what openssl and cryptography will not write."""
    version = "v2" if rid.name == "subject_key_identifier" else "v0"
    recipient = cms.RecipientInfo(name="ktri", value=cms.KeyTransRecipientInfo({
        "version": version, "rid": rid, "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
        "encrypted_key": wrapped_key,
    }))
    return cms.ContentInfo({"content_type": "enveloped_data", "content": cms.EnvelopedData({
        "version": "v2" if version == "v2" else "v0",
        "recipient_infos": [recipient],
        "encrypted_content_info": {"content_type": "data", "encrypted_content": content,
                                   "content_encryption_algorithm": {"algorithm": algorithm, "parameters": iv}},
    })}).dump()


def _aes_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CBC over ``data`` as it is (no padding added): the caller decides what the padding looks like."""
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _padded(data: bytes) -> bytes:
    fill = 16 - len(data) % 16
    return data + bytes([fill]) * fill


def _by_issuer(certificate: x509.Certificate, issuer: asn1_x509.Name) -> cms.RecipientIdentifier:
    return cms.RecipientIdentifier(name="issuer_and_serial_number", value=cms.IssuerAndSerialNumber(
        {"issuer": issuer, "serial_number": certificate.serial_number}))


def test_a_recipient_whose_issuer_name_was_re_encoded_is_still_this_card(card, pki, demo_card):
    certificate = pki.card_encryption_certificate(demo_card)
    # The issuer's CN and O are UTF8String in the certificate; this encryptor wrote PrintableString.
    issuer = asn1_x509.Name.build({"country_name": "TW", "organization_name": "MoCert Demo",
                                   "common_name": "MoCert Demo MOICA"}, use_printable=True)
    assert issuer.dump() != certificate.issuer.public_bytes()  # not the same bytes: the same name
    key, iv = os.urandom(16), os.urandom(16)
    wrapped = certificate.public_key().encrypt(key, padding.PKCS1v15())
    envelope = _envelope(_by_issuer(certificate, issuer), wrapped, _aes_cbc(key, iv, _padded(SECRET)), iv)
    assert decrypter.decrypt(card, "123456", _request(envelope)) == SECRET


def test_a_recipient_named_by_key_identifier_matches_a_certificate_that_states_none(pki, demo_card, tmp_path):
    # A card whose encryption certificate has no subject key identifier: the encryptor computed it from
    # the key (RFC 5280 method 1), as we must.
    key = pki.card_encryption_key(demo_card)
    now = datetime.now(timezone.utc)
    bare = (x509.CertificateBuilder().subject_name(pki.card_encryption_certificate(demo_card).subject)
            .issuer_name(pki.issuer_certificate.subject).public_key(key.public_key()).serial_number(7)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256()))  # who signed it does not matter to decrypting
    with pytest.raises(x509.ExtensionNotFound):
        bare.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    emulator = PivCardEmulator(
        card_number=demo_card.card_number, key=pki.card_key(demo_card), certificate=pki.card_certificate(demo_card),
        pin="123456", state_dir=tmp_path, encryption_key=key, encryption_certificate=bare)
    content_key, iv = os.urandom(16), os.urandom(16)
    rid = cms.RecipientIdentifier(name="subject_key_identifier",
                                  value=x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest)
    envelope = _envelope(rid, key.public_key().encrypt(content_key, padding.PKCS1v15()),
                         _aes_cbc(content_key, iv, _padded(SECRET)), iv)
    with PivSlot(InProcessReader(emulator)).open() as card:
        assert decrypter.decrypt(card, "123456", _request(envelope)) == SECRET


def test_every_way_an_envelope_fails_to_decrypt_says_the_same(card, pki, demo_card):
    certificate = pki.card_encryption_certificate(demo_card)
    rid = _by_issuer(certificate, asn1_x509.Name.load(certificate.issuer.public_bytes()))
    wrap = lambda key: certificate.public_key().encrypt(key, padding.PKCS1v15())  # noqa: E731
    key, iv = os.urandom(16), os.urandom(16)
    failures = {
        # The card's own: the wrapped key is no PKCS#1 block for this key.
        "wrapped key": _envelope(rid, bytes(256), _aes_cbc(key, iv, _padded(SECRET)), iv),
        # A key that unwraps, but is 16 bytes for AES-256.
        "key length": _envelope(rid, wrap(key), _aes_cbc(key, iv, _padded(SECRET)), iv, "aes256_cbc"),
        # The right key, the content's padding broken (a last byte of 0 is never PKCS#7 padding).
        "content padding": _envelope(rid, wrap(key), _aes_cbc(key, iv, bytes(32)), iv),
    }
    messages = {}
    for name, envelope in failures.items():
        with pytest.raises(DecryptionFailed) as refused:
            decrypter.decrypt(card, "123456", _request(envelope))
        messages[name] = str(refused.value)
    assert len(set(messages.values())) == 1, messages


def test_no_encryption_key_is_a_card_error_with_the_others():
    assert issubclass(errors.NoEncryptionKey, errors.CardError)
    assert errors.NoEncryptionKey.code == "no_encryption_key"
