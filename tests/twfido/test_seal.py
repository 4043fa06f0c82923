"""``python -m twfido.seal``: the checksum a shell cannot make, and the check of one."""

import base64
import hashlib
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parents[2]
KEY = base64.b64encode(bytes(range(32))).decode()


def _seal(*args):
    return subprocess.run([sys.executable, "-m", "twfido.seal", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_the_checksum_it_prints_opens_to_the_digest_of_the_fields_in_order():
    done = _seal("--key", KEY, "t-1", "SP0001", "A123456789", "ATH", "I-SCAN", "登入", "")
    assert done.returncode == 0, done.stderr
    raw = bytes.fromhex(done.stdout.strip())
    plain = AESGCM(base64.b64decode(KEY)).decrypt(raw[:12], raw[12:], None)
    assert plain == hashlib.sha256("t-1SP0001A123456789ATHI-SCAN登入".encode()).hexdigest().encode()


def test_a_checksum_is_checked_against_the_fields(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    sealed = _seal("--key", f"@{key_file}", "a", "b").stdout.strip()
    assert _seal("--key", KEY, "--check", sealed, "a", "b").returncode == 0
    refused = _seal("--key", KEY, "--check", sealed, "a", "c")
    assert refused.returncode == 1 and "does not hold" in refused.stderr


def test_a_key_that_is_not_32_bytes_of_base64_is_a_usage_error():
    done = _seal("--key", base64.b64encode(b"short").decode(), "a")
    assert done.returncode == 2 and "5 bytes" in done.stderr
