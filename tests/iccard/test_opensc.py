"""OpenSC, which we did not write, takes the emulated card for a PIV card: it reads and signs with it.

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


@pytest.mark.parametrize("key_id", KEY_IDS)
def test_pkcs15_tool_reads_the_demo_certificate(run, pcsc_stack, virtual_card, pki, demo_card, key_id):
    result = run("pkcs15-tool", "--reader", pcsc_stack.reader_name, "--read-certificate", key_id)
    assert x509.load_pem_x509_certificate(result.stdout) == pki.card_certificate(demo_card)


def test_pkcs11_lists_the_certificates_and_reads_them_back(run, pkcs11_tool, virtual_card, pki, demo_card, tmp_path):
    listing = run(*pkcs11_tool, "--list-objects").stdout.decode()
    serial = f"{pki.card_certificate(demo_card).serial_number:X}"
    assert "Certificate for Digital Signature" in listing and "Certificate for PIV Authentication" in listing
    assert serial in listing.upper()
    run(*pkcs11_tool, "--read-object", "--type", "cert", "--id", "02", "--output-file", str(tmp_path / "cert.der"))
    assert x509.load_der_x509_certificate((tmp_path / "cert.der").read_bytes()) == pki.card_certificate(demo_card)


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
