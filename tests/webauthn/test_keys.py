"""COSE keys to cryptography keys: the three accepted algorithms, cached; everything else refused."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fido2 import cbor

from tests.webauthn.softkey import cose_key, make_key
from webauthn import WebAuthnError, public_key_from_cose


@pytest.mark.parametrize(
    "alg, kind", [(-7, ec.EllipticCurvePublicKey), (-257, rsa.RSAPublicKey), (-8, ed25519.Ed25519PublicKey)]
)
def test_accepted_cose_keys_become_cryptography_keys(alg, kind):
    private_key = make_key(alg)
    public_key = public_key_from_cose(cose_key(alg, private_key))
    assert isinstance(public_key, kind)
    assert public_key == private_key.public_key()


def test_parsed_keys_are_cached_on_the_bytes():
    cose = cose_key(-7, make_key(-7))
    assert public_key_from_cose(cose) is public_key_from_cose(bytes(cose)) is public_key_from_cose(bytearray(cose))


def _ec2(changes):
    key = make_key(-7).public_key().public_numbers()
    fields = {1: 2, 3: -7, -1: 1, -2: key.x.to_bytes(32, "big"), -3: key.y.to_bytes(32, "big")}
    fields.update(changes)
    return cbor.encode({k: v for k, v in fields.items() if v is not None})


@pytest.mark.parametrize(
    "cose",
    [
        cose_key(-35, make_key(-35)),  # ES384
        _ec2({3: -37}),  # PS256 label on an EC key
        _ec2({-1: 2}),  # P-384 curve id with P-256 coordinates
        _ec2({-3: b"\x00" * 32}),  # not on the curve
        _ec2({-2: b"\x01" * 31}),
        _ec2({3: None}),  # no alg
        cbor.encode({1: 3, 3: -257, -1: (2**1023 + 1).to_bytes(128, "big"), -2: b"\x01\x00\x01"}),  # RSA-1024
        cbor.encode({1: 1, 3: -8, -1: 7, -2: b"\x01" * 57}),  # Ed448
        cbor.encode({1: 4, 3: -7}),
    ],
    ids=["es384", "ps256-label-on-ec", "p384-id-p256-point", "off-curve", "short-x", "no-alg", "rsa-1024", "ed448",
         "symmetric"],  # the keys are random: ids from them would differ between the parallel workers
)
def test_other_keys_are_unsupported_algorithm(cose):
    with pytest.raises(WebAuthnError) as caught:
        public_key_from_cose(cose)
    assert caught.value.reason == "unsupported_algorithm"


@pytest.mark.parametrize("cose", [b"", b"\xff", b"\x01", cbor.encode([1, 2]), cbor.encode({1: 2}) + b"\x00", "pQEC"])
def test_bytes_that_are_not_a_cose_map_are_malformed(cose):
    with pytest.raises(WebAuthnError) as caught:
        public_key_from_cose(cose)
    assert caught.value.reason == "malformed"
