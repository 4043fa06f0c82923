"""Recorded registration responses of real authenticators (``recordings/<name>.json``) and ways to spoil them.

Each file holds the browser's ``toJSON()`` of the credential, what the relying party expected
(challenge, origin, RP ID, whether it asked for user verification), the time it was made (``now``, with
``now_basis`` saying how we know) and where it was published (``source``).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

from fido2 import cbor

from tests.webauthn.softkey import b64url, unb64url
from webauthn import TrustPolicy, VerifiedRegistration, verify_registration

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE / "recordings"
ROOTS = HERE / "roots"

_RECORDED: Any = object()  # "the time the recording was made"

NAMES = ["packed", "packed-self", "fido-u2f", "tpm", "android-key", "android-safetynet", "apple", "none"]


def load(name: str) -> dict[str, Any]:
    return json.loads((RECORDINGS / f"{name}.json").read_text())


def now_of(recording: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(recording["now"])


def verify(
    recording: dict[str, Any],
    *,
    credential: dict[str, Any] | None = None,
    now: dt.datetime | None = _RECORDED,
    trust: TrustPolicy | None = None,
    **overrides: Any,
) -> VerifiedRegistration:
    expected = recording["expected"]
    arguments = dict(
        expected_challenge=unb64url(expected["challenge"]),
        expected_origin=expected["origin"],
        expected_rp_id=expected["rp_id"],
        require_user_verification=expected["require_user_verification"],
        now=now_of(recording) if now is _RECORDED else now,
        trust=trust,
    )
    arguments.update(overrides)
    return verify_registration(credential or recording["credential"], **arguments)


def attestation_object(credential: dict[str, Any]) -> dict[str, Any]:
    return cbor.decode(unb64url(credential["response"]["attestationObject"]))


def with_attestation_object(recording: dict[str, Any], attestation: dict[str, Any]) -> dict[str, Any]:
    credential = copy.deepcopy(recording["credential"])
    credential["response"]["attestationObject"] = b64url(cbor.encode(attestation))
    return credential


def flip(data: bytes, index: int) -> bytes:
    index %= len(data)
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def statement_certificates(recording: dict[str, Any]) -> list[bytes]:
    statement = attestation_object(recording["credential"])["attStmt"]
    if "x5c" in statement:
        return list(statement["x5c"])
    if "response" in statement:  # android-safetynet: the chain is in the JWS header
        header = json.loads(unb64url(statement["response"].split(b".")[0].decode()))
        import base64

        return [base64.b64decode(c) for c in header["x5c"]]
    return []
