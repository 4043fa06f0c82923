"""OpenSC, which we did not write, takes the emulated card for a PIV card: it reads it, signs and decrypts with
it, and changes its PIN.

Each tool runs with its own empty HOME, so no OpenSC file cache from another run can answer for the card.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

MESSAGE = "登入 MoCert 的挑戰".encode()
KEY_IDS = {"01": "PIV Authentication (9A)", "02": "Digital Signature (9C)"}  # OpenSC's PIV object ids
# What each OpenSC certificate id holds: 03 is Key Management (9D), 05 the first retired key-management object
CERTIFICATE_IDS = {"01": "signing", "02": "signing", "03": "encryption", "05": "issuing CA"}


def certificate_of(pki, card, role: str) -> x509.Certificate:
    return {
        "signing": pki.card_certificate,
        "encryption": pki.card_encryption_certificate,
        "issuing CA": lambda _: pki.issuer_certificate,
    }[role](card)


@pytest.fixture
def run(opensc, tmp_path):
    home = tmp_path / "home"
    home.mkdir()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            args, capture_output=True, timeout=60, env={**os.environ, "HOME": str(home), "OPENSC_DEBUG": "0"}
        )
        if check:
            output = f"{result.stdout.decode()}\n{result.stderr.decode()}"
            assert result.returncode == 0, f"{' '.join(args)} failed:\n{output}"
        return result

    return run


@pytest.fixture
def pkcs11_tool(opensc, pcsc_stack) -> tuple[str, ...]:
    """pkcs11-tool over OpenSC's module, on the vpcd reader's slot."""
    return ("pkcs11-tool", "--module", str(opensc), "--slot-description", pcsc_stack.reader_name)


def test_opensc_names_the_card_a_piv_card(run, pcsc_stack, virtual_card):
    result = run("opensc-tool", "--reader", pcsc_stack.reader_name, "--name")
    assert "Personal Identity Verification Card" in result.stdout.decode()


@pytest.mark.parametrize("key_id, role", CERTIFICATE_IDS.items())
def test_pkcs15_tool_reads_the_demo_certificate(run, pcsc_stack, virtual_card, pki, demo_card, key_id, role):
    result = run("pkcs15-tool", "--reader", pcsc_stack.reader_name, "--read-certificate", key_id)
    assert x509.load_pem_x509_certificate(result.stdout) == certificate_of(pki, demo_card, role)


def test_pkcs11_lists_the_certificates_and_reads_them_back(run, pkcs11_tool, virtual_card, pki, demo_card, tmp_path):
    listing = run(*pkcs11_tool, "--list-objects").stdout.decode()
    for label in (
        "Certificate for PIV Authentication",
        "Certificate for Digital Signature",
        "Certificate for Key Management",
        "Retired Certificate for Key Management 1",
    ):
        assert f"label:      {label}\n" in listing
    for certificate in (pki.card_certificate(demo_card), pki.card_encryption_certificate(demo_card)):
        assert f"{certificate.serial_number:X}" in listing.upper()
    for key_id, role in CERTIFICATE_IDS.items():
        output = tmp_path / f"cert-{key_id}.der"
        run(*pkcs11_tool, "--read-object", "--type", "cert", "--id", key_id, "--output-file", str(output))
        assert x509.load_der_x509_certificate(output.read_bytes()) == certificate_of(pki, demo_card, role)


def test_pkcs11_offers_the_key_management_key_for_decryption(run, pkcs11_tool, virtual_card, demo_card):
    listing = run(*pkcs11_tool, "--login", "--pin", demo_card.pin, "--list-objects", "--type", "privkey").stdout
    key_management = listing.decode().split("label:      KEY MAN key\n", 1)[1].split("Private Key Object", 1)[0]
    assert "ID:         03" in key_management and "Usage:      decrypt, unwrap" in key_management


@pytest.mark.parametrize("key_id", KEY_IDS)
def test_pkcs11_tool_signs_and_the_signature_verifies(run, pkcs11_tool, virtual_card, pki, demo_card, tmp_path, key_id):
    (tmp_path / "data").write_bytes(MESSAGE)
    run(
        *pkcs11_tool, "--login", "--pin", demo_card.pin, "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", key_id,
        "--input-file", str(tmp_path / "data"), "--output-file", str(tmp_path / "signature"),
    )  # fmt: skip
    signature = (tmp_path / "signature").read_bytes()
    pki.card_certificate(demo_card).public_key().verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_a_wrong_pin_through_pkcs11_is_refused_and_counted_by_the_card(
    run, pkcs11_tool, virtual_card, emulator, tmp_path
):
    (tmp_path / "data").write_bytes(MESSAGE)
    result = run(
        *pkcs11_tool, "--login", "--pin", "000000", "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "02",
        "--input-file", str(tmp_path / "data"), "--output-file", str(tmp_path / "signature"),
        check=False,
    )  # fmt: skip
    assert result.returncode != 0 and b"CKR_PIN_INCORRECT" in result.stdout + result.stderr
    assert emulator.pin_tries_left == 2
    assert not (tmp_path / "signature").exists() or not (tmp_path / "signature").read_bytes()


def test_pkcs11_tool_decrypts_with_the_encryption_key(run, pkcs11_tool, virtual_card, pki, demo_card, tmp_path):
    ciphertext = pki.card_encryption_certificate(demo_card).public_key().encrypt(MESSAGE, padding.PKCS1v15())
    (tmp_path / "ciphertext").write_bytes(ciphertext)
    run(
        *pkcs11_tool, "--login", "--pin", demo_card.pin, "--decrypt", "--mechanism", "RSA-PKCS", "--id", "03",
        "--input-file", str(tmp_path / "ciphertext"), "--output-file", str(tmp_path / "plaintext"),
    )  # fmt: skip
    assert (tmp_path / "plaintext").read_bytes() == MESSAGE


def test_pkcs11_tool_changes_the_pin_and_only_the_new_one_signs(
    run, pkcs11_tool, virtual_card, emulator, pki, demo_card, tmp_path
):
    result = run(*pkcs11_tool, "--change-pin", "--pin", demo_card.pin, "--new-pin", "24681357")
    assert b"PIN successfully changed" in result.stdout + result.stderr
    (tmp_path / "data").write_bytes(MESSAGE)
    sign = (
        "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "01",
        "--input-file", str(tmp_path / "data"), "--output-file", str(tmp_path / "signature"),
    )  # fmt: skip
    run(*pkcs11_tool, "--login", "--pin", "24681357", *sign)
    signature = (tmp_path / "signature").read_bytes()
    pki.card_certificate(demo_card).public_key().verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    (tmp_path / "signature").unlink()
    refused = run(*pkcs11_tool, "--login", "--pin", demo_card.pin, *sign, check=False)
    assert refused.returncode != 0 and b"CKR_PIN_INCORRECT" in refused.stdout + refused.stderr
    assert emulator.pin_tries_left == 2 and not (tmp_path / "signature").exists()
