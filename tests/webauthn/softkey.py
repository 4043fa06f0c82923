"""A software authenticator for the ceremony tests: keys made here, responses in the browser's toJSON() shape.

Every flag, counter, field and byte is under the test's control, so each check of the verifier can be
exercised on its own. Attestation: "none", "packed" self attestation, or "packed" with an x5c chain
under a test CA (``TestCA``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from fido2 import cbor

UP, UV, BE, BS, AT, ED = 0x01, 0x04, 0x08, 0x10, 0x40, 0x80
OID_FIDO_AAGUID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


def make_key(alg: int):
    if alg == -7:
        return ec.generate_private_key(ec.SECP256R1())
    if alg == -257:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == -8:
        return ed25519.Ed25519PrivateKey.generate()
    if alg == -35:
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(alg)


def cose_key(alg: int, private_key) -> bytes:
    public = private_key.public_key()
    if alg == -7:
        n = public.public_numbers()
        return cbor.encode({1: 2, 3: -7, -1: 1, -2: n.x.to_bytes(32, "big"), -3: n.y.to_bytes(32, "big")})
    if alg == -35:
        n = public.public_numbers()
        return cbor.encode({1: 2, 3: -35, -1: 2, -2: n.x.to_bytes(48, "big"), -3: n.y.to_bytes(48, "big")})
    if alg == -257:
        n = public.public_numbers()
        return cbor.encode({1: 3, 3: -257, -1: n.n.to_bytes(256, "big"), -2: n.e.to_bytes(3, "big")})
    if alg == -8:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return cbor.encode({1: 1, 3: -8, -1: 6, -2: public.public_bytes(Encoding.Raw, PublicFormat.Raw)})
    raise ValueError(alg)


def sign(private_key, data: bytes) -> bytes:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        algorithm = hashes.SHA256() if private_key.curve.key_size == 256 else hashes.SHA384()
        return private_key.sign(data, ec.ECDSA(algorithm))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return private_key.sign(data)


def _name(cn: str, ou: str | None = None) -> x509.Name:
    parts = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MoCert Test"),
    ]
    if ou:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(parts)


@dataclass
class TestCA:
    """A root CA that issues packed attestation certificates (and anything else a test needs)."""

    __test__ = False  # not a pytest class

    name: str = "MoCert Test Attestation Root"
    not_before: dt.datetime = field(default_factory=lambda: utc(2020, 1, 1))
    not_after: dt.datetime = field(default_factory=lambda: utc(2040, 1, 1))

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(self.name)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def der(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.certificate.public_bytes(Encoding.DER)

    def issue_packed(
        self,
        public_key,
        *,
        aaguid: bytes | None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("MoCert Test Authenticator", "Authenticator Attestation"))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or utc(2021, 1, 1))
            .not_valid_after(not_after or utc(2031, 1, 1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if aaguid is not None:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(OID_FIDO_AAGUID, b"\x04\x10" + aaguid), critical=False
            )
        return builder.sign(self.key, hashes.SHA256())


@dataclass
class SoftAuthenticator:
    """One credential on a made-up authenticator. Each call can override flags, counter and fields."""

    alg: int = -7
    aaguid: bytes = field(default_factory=lambda: bytes.fromhex("6d6f6365727474657374617574680001"))
    counter: int = 0
    user_present: bool = True
    user_verified: bool = True
    backup_eligible: bool = False
    backup_state: bool = False
    attestation: str = "packed-self"  # "none", "packed-self", "packed-x5c"
    ca: TestCA | None = None
    user_handle: bytes = b"user-1234"

    def __post_init__(self) -> None:
        self.credential_id = os.urandom(32)
        self.key = make_key(self.alg)
        self.public_key = cose_key(self.alg, self.key)
        self.attestation_key = ec.generate_private_key(ec.SECP256R1())
        self.attestation_certificate: x509.Certificate | None = None
        if self.attestation == "packed-x5c":
            ca = self.ca or TestCA()
            self.ca = ca
            self.attestation_certificate = ca.issue_packed(self.attestation_key.public_key(), aaguid=self.aaguid)

    # -- pieces -----------------------------------------------------------------------------------

    def flags(self, *, attested: bool, **override: bool) -> int:
        values = {
            "user_present": self.user_present,
            "user_verified": self.user_verified,
            "backup_eligible": self.backup_eligible,
            "backup_state": self.backup_state,
        }
        values.update(override)
        flags = (UP if values["user_present"] else 0) | (UV if values["user_verified"] else 0)
        flags |= (BE if values["backup_eligible"] else 0) | (BS if values["backup_state"] else 0)
        return flags | (AT if attested else 0)

    def auth_data(self, rp_id: str, *, attested: bool, counter: int | None = None, **flags: bool) -> bytes:
        data = hashlib.sha256(rp_id.encode()).digest()
        data += struct.pack(">BI", self.flags(attested=attested, **flags), self.counter if counter is None else counter)
        if attested:
            data += self.aaguid + struct.pack(">H", len(self.credential_id)) + self.credential_id + self.public_key
        return data

    @staticmethod
    def client_data(type_: str, challenge: bytes, origin: str, **extra: Any) -> bytes:
        body = {"type": type_, "challenge": b64url(challenge), "origin": origin, "crossOrigin": False}
        body.update(extra)
        return json.dumps(body, separators=(",", ":")).encode()

    def statement(self, auth_data: bytes, client_data_hash: bytes) -> tuple[str, dict]:
        if self.attestation == "none":
            return "none", {}
        if self.attestation == "packed-self":
            return "packed", {"alg": self.alg, "sig": sign(self.key, auth_data + client_data_hash)}
        assert self.attestation_certificate is not None
        from cryptography.hazmat.primitives.serialization import Encoding

        return "packed", {
            "alg": -7,
            "sig": sign(self.attestation_key, auth_data + client_data_hash),
            "x5c": [self.attestation_certificate.public_bytes(Encoding.DER)],
        }

    # -- ceremonies ---------------------------------------------------------------------------------

    def create(
        self,
        *,
        challenge: bytes,
        origin: str = "https://mocert.example",
        rp_id: str = "mocert.example",
        type_: str = "webauthn.create",
        client_extra: dict[str, Any] | None = None,
        transports: list[str] | None = None,
        attachment: str | None = "platform",
        **flags: bool,
    ) -> dict[str, Any]:
        client_data = self.client_data(type_, challenge, origin, **(client_extra or {}))
        auth_data = self.auth_data(rp_id, attested=True, **flags)
        fmt, statement = self.statement(auth_data, hashlib.sha256(client_data).digest())
        attestation_object = cbor.encode({"fmt": fmt, "attStmt": statement, "authData": auth_data})
        credential: dict[str, Any] = {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": ["internal", "hybrid"] if transports is None else transports,
            },
            "clientExtensionResults": {},
        }
        if attachment is not None:
            credential["authenticatorAttachment"] = attachment
        return credential

    def get(
        self,
        *,
        challenge: bytes,
        origin: str = "https://mocert.example",
        rp_id: str = "mocert.example",
        type_: str = "webauthn.get",
        counter: int | None = None,
        client_extra: dict[str, Any] | None = None,
        user_handle: bytes | None | str = "default",
        **flags: bool,
    ) -> dict[str, Any]:
        client_data = self.client_data(type_, challenge, origin, **(client_extra or {}))
        auth_data = self.auth_data(rp_id, attested=False, counter=counter, **flags)
        signature = sign(self.key, auth_data + hashlib.sha256(client_data).digest())
        handle = self.user_handle if user_handle == "default" else user_handle
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(handle) if isinstance(handle, bytes) else None,
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }
