"""The assertion path's own parsing (issue 14) reads and refuses exactly what fido2's classes did."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random

import pytest
from fido2 import cbor
from fido2.webauthn import AuthenticatorData, CollectedClientData

from tests.webauthn.softkey import SoftAuthenticator, b64url, sign
from webauthn import verify_authentication
from webauthn._ceremony import authenticator_data_head, parse_client_data
from webauthn._encoding import Malformed, b64url_decode

ORIGIN = "https://mocert.example"
RP_ID = "mocert.example"


def head_by_fido2(raw: bytes):
    try:
        parsed = AuthenticatorData(raw)
    except Exception:
        return "malformed"
    return parsed.rp_id_hash, int(parsed.flags), parsed.counter


def head(raw: bytes):
    try:
        return authenticator_data_head(raw)
    except Malformed:
        return "malformed"


def test_authenticator_data_of_any_length_and_flags_is_read_or_refused_as_fido2_does():
    rng = random.Random(37)
    extensions = cbor.encode({"credProtect": 1})
    for length, flags in itertools.product([0, 1, 32, 33, 36, 37, 38, 40, 60], range(256)):
        raw = bytearray(rng.getrandbits(8) for _ in range(length))
        if length > 32:
            raw[32] = flags
        assert head(bytes(raw)) == head_by_fido2(bytes(raw)), (length, flags)
        with_extensions = bytes(raw[:37]) + extensions
        if length >= 37:
            assert head(with_extensions) == head_by_fido2(with_extensions), flags


def parsed_by_fido2(raw: bytes):
    """The client data as the path read it before issue 14: fido2's class, then the strict challenge."""
    try:
        client_data = CollectedClientData(raw)
        if not isinstance(client_data.type, str) or not isinstance(client_data.origin, str):
            return "malformed"
        b64url_decode(client_data._data["challenge"], "challenge")
    except Exception:
        return "malformed"
    return client_data.type, client_data.challenge, client_data.origin, client_data._data


def parsed(raw: bytes):
    try:
        return tuple(parse_client_data(raw))
    except Malformed:
        return "malformed"


GOOD = {"type": "webauthn.get", "challenge": b64url(b"c" * 32), "origin": ORIGIN, "crossOrigin": False}
ODD_VALUES = [None, 42, 1.5, True, "", "!!", "AB+/", "a", [], {}, ["webauthn.get"], "webauthn.get", b64url(b"x")]


def _client_data_variants():
    yield json.dumps(GOOD).encode()
    for key, value in itertools.product(["type", "challenge", "origin"], ODD_VALUES):
        yield json.dumps({**GOOD, key: value}).encode()
    for key in ["type", "challenge", "origin"]:
        yield json.dumps({k: v for k, v in GOOD.items() if k != key}).encode()
    text = json.dumps(GOOD)
    yield text.encode("utf-16")  # json.loads of bytes would take it; the spec (and fido2) say UTF-8
    yield text.encode("utf-32")
    yield b"\xef\xbb\xbf" + text.encode()  # a byte-order mark
    yield f"  {text}\n".encode()  # whitespace around: JSON allows it
    yield (text[:-1] + ',"type":"webauthn.create"}').encode()  # a member twice: the last one counts
    yield b"[" * 10_000
    rng = random.Random(11)
    for _ in range(300):
        yield bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))


@pytest.mark.parametrize("raw", list(_client_data_variants()), ids=lambda raw: repr(raw)[:40])
def test_client_data_is_read_or_refused_as_fido2_did(raw):
    assert parsed(raw) == parsed_by_fido2(raw)


def test_an_assertion_whose_authenticator_data_carries_extensions_verifies():
    """The ED flag: the authenticator data is longer than 37 bytes and goes through fido2's parser."""
    authenticator = SoftAuthenticator(counter=5)
    challenge = os.urandom(32)
    assertion = authenticator.get(challenge=challenge)
    client_data = b64url_decode(assertion["response"]["clientDataJSON"], "clientDataJSON")
    auth_data = bytearray(authenticator.auth_data(RP_ID, attested=False))
    auth_data[32] |= 0x80
    auth_data = bytes(auth_data) + cbor.encode({"credProtect": 2})
    assertion["response"]["authenticatorData"] = b64url(auth_data)
    signature = sign(authenticator.key, auth_data + hashlib.sha256(client_data).digest())
    assertion["response"]["signature"] = b64url(signature)
    result = verify_authentication(
        assertion,
        expected_challenge=challenge,
        expected_origin=ORIGIN,
        expected_rp_id=RP_ID,
        credential_public_key=authenticator.public_key,
        current_sign_count=4,
    )
    assert (result.new_sign_count, result.user_present, result.user_verified) == (5, True, True)
    assert result.authenticator_data == auth_data
