"""DecryptData on an emulated demo card: EnvelopedData as other tools make it, PKCS#1 blocks, refusals."""

import base64
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from iccard import decrypter
from iccard.cards import PivSlot
from iccard.errors import WrongPin

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
