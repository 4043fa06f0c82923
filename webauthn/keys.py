"""Credential public keys: COSE_Key (RFC 9053) to ``cryptography`` keys, and assertion signatures.

Only the three algorithms the options ask for are accepted: ES256 (-7, EC2 on P-256), RS256 (-257, RSA
PKCS#1 v1.5 with SHA-256, at least 2048 bits) and EdDSA (-8, OKP Ed25519). Parsed keys are cached on the
COSE bytes, so the hot path (an assertion against a stored key) neither decodes CBOR nor builds the key
again; python-fido2's ``CoseKey.verify`` rebuilds the key on every call, which is why it is not used here.
"""

from __future__ import annotations

import functools
from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from fido2 import cbor

from .errors import WebAuthnError

CredentialPublicKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey]

ES256 = -7
RS256 = -257
EDDSA = -8
SUPPORTED_ALGORITHMS = (ES256, RS256, EDDSA)

_KTY, _ALG, _CRV, _X, _Y, _N, _E = 1, 3, -1, -2, -3, -1, -2
_KTY_OKP, _KTY_EC2, _KTY_RSA = 1, 2, 3
_CRV_P256, _CRV_ED25519 = 1, 6
MIN_RSA_BITS = 2048


def cose_algorithm(cose: bytes) -> int:
    """Return the COSE ``alg`` of a supported key; raise ``WebAuthnError`` as ``public_key_from_cose``."""
    return _parse(bytes(cose))[1]


def public_key_from_cose(cose: bytes) -> CredentialPublicKey:
    """Return the ``cryptography`` public key of a COSE_Key (as stored from a registration).

    Returns an ``EllipticCurvePublicKey`` (P-256), an ``RSAPublicKey`` or an ``Ed25519PublicKey``. The
    result is cached on the bytes (``functools.lru_cache``).

    Raises ``WebAuthnError("malformed")`` when the bytes are not a CBOR map, and
    ``WebAuthnError("unsupported_algorithm")`` for any key that is not ES256, RS256 or EdDSA as above
    (including points not on the curve and RSA keys under 2048 bits).
    """
    if not isinstance(cose, (bytes, bytearray, memoryview)):
        raise WebAuthnError("malformed", "COSE key is not bytes")
    return _parse(bytes(cose))[0]


@functools.lru_cache(maxsize=4096)
def _parse(cose: bytes) -> tuple[CredentialPublicKey, int]:
    try:
        data, rest = cbor.decode_from(cose)
    except Exception as exc:  # fido2's CBOR raises ValueError, KeyError, IndexError, struct.error...
        raise WebAuthnError("malformed", f"COSE key is not CBOR: {exc!r}") from None
    if rest or not isinstance(data, dict):
        raise WebAuthnError("malformed", "COSE key is not a single CBOR map")
    kty, alg = data.get(_KTY), data.get(_ALG)
    try:
        if kty == _KTY_EC2 and alg == ES256 and data.get(_CRV) == _CRV_P256:
            x, y = data.get(_X), data.get(_Y)
            if not (isinstance(x, bytes) and isinstance(y, bytes) and len(x) == 32 and len(y) == 32):
                raise ValueError("bad EC2 coordinates")
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y), ES256
        if kty == _KTY_RSA and alg == RS256:
            n, e = data.get(_N), data.get(_E)
            if not (isinstance(n, bytes) and isinstance(e, bytes) and n and e):
                raise ValueError("bad RSA parameters")
            key = rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()
            if key.key_size < MIN_RSA_BITS:
                raise ValueError(f"RSA key of {key.key_size} bits")
            return key, RS256
        if kty == _KTY_OKP and alg == EDDSA and data.get(_CRV) == _CRV_ED25519:
            x = data.get(_X)
            if not (isinstance(x, bytes) and len(x) == 32):
                raise ValueError("bad Ed25519 key")
            return ed25519.Ed25519PublicKey.from_public_bytes(x), EDDSA
    except (ValueError, TypeError) as exc:
        raise WebAuthnError("unsupported_algorithm", f"unusable COSE key: {exc}") from None
    raise WebAuthnError("unsupported_algorithm", f"COSE key kty={kty!r} alg={alg!r} is not accepted")


# The signature schemes, made once: they are immutable, and building them cost a microsecond a verify.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def verify_cose_signature(cose: bytes, signature: bytes, data: bytes) -> bool:
    """Return whether ``signature`` over ``data`` verifies with the stored COSE key ``cose`` (bytes).

    The key is parsed once per process (cached as for :func:`public_key_from_cose`, which raises the same
    ``WebAuthnError`` for a key that is not accepted); the algorithm is the key's COSE ``alg``."""
    key, alg = _parse(cose if type(cose) is bytes else bytes(cose))
    try:
        if alg == ES256:
            key.verify(signature, data, _ECDSA_SHA256)
        elif alg == RS256:
            key.verify(signature, data, _PKCS1V15, _SHA256)
        elif alg == EDDSA:
            key.verify(signature, data)
        else:  # pragma: no cover - _parse returns only these three
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
